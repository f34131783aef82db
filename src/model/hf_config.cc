// config.json → ModelConfig: the keys every family shares here, the rest in the family's
// ArchInfo::from_hf (model/arch/). Every field is read through config_json's typed
// accessors; nlohmann exceptions never leave this file.
#include "model/hf_config.h"

#include <charconv>
#include <cmath>
#include <filesystem>

#include "model/arch.h"
#include "model/config_json.h"
#include "util/file.h"
#include "util/json.h"

namespace inferd {
namespace {

using json = nlohmann::json;
using config_json::GetBool;
using config_json::GetFloat;
using config_json::GetInt;

// RoPE over only part of each head (Phi-4-mini's partial_rotary_factor 0.75) is refused, not
// silently run over the whole head. `where`: "" at the top level, else "rope_parameters.".
Status CheckFullRotary(const json& j, const std::string& where) {
  float partial = 1.0f;
  INFERD_RETURN_IF_ERROR(GetFloat(j, "partial_rotary_factor", &partial));
  if (partial != 1.0f) {
    return Unimplemented("config.json: '" + where + "partial_rotary_factor' " + std::to_string(partial) +
                         " (RoPE over part of each head) is not supported");
  }
  return Status::OK();
}

// LongRoPE's `key` ("long_factor") of the RoPE object `where`: head_dim / 2 positive numbers.
Status GetRopeFactors(const json& rs, const std::string& where, const char* key, int64_t head_dim,
                      std::vector<float>* out) {
  const std::string field = "config.json: '" + where + "." + key + "'";
  auto it = rs.find(key);
  if (it == rs.end() || it->is_null()) return InvalidArgument(field + " is missing (LongRoPE needs it)");
  if (!it->is_array()) return InvalidArgument(field + " must be an array of numbers, got " + std::string(it->type_name()));
  const int64_t want = head_dim / 2;
  if (static_cast<int64_t>(it->size()) != want) {  // checked before anything is copied
    return InvalidArgument(field + " has " + std::to_string(it->size()) + " entries, expected head_dim / 2 = " +
                           std::to_string(want));
  }
  out->clear();
  for (const json& x : *it) {
    const double v = x.is_number() ? x.get<double>() : 0.0;
    if (!(v > 0.0) || !std::isfinite(static_cast<float>(v))) {
      return InvalidArgument(field + " must hold positive finite numbers, got " + x.dump());
    }
    out->push_back(static_cast<float>(v));
  }
  return Status::OK();
}

// Phi-3 128k / Phi-3.5's LongRoPE ("longrope", or "su" in the first Phi-3 configs). What the
// object leaves out is resolved by ResolveLongRope once the whole config.json is read.
Status ParseLongRope(const json& rs, const std::string& where, ModelConfig* c) {
  c->rope_scaling = RopeScaling::kLongRope;
  INFERD_RETURN_IF_ERROR(GetRopeFactors(rs, where, "long_factor", c->head_dim, &c->rope_long_factors));
  INFERD_RETURN_IF_ERROR(GetRopeFactors(rs, where, "short_factor", c->head_dim, &c->rope_short_factors));
  c->rope_original_max_position = 0;  // 0: not given here
  INFERD_RETURN_IF_ERROR(GetInt(rs, "original_max_position_embeddings", &c->rope_original_max_position));
  c->rope_factor = 0.0f;  // 0: max_position_embeddings / original
  INFERD_RETURN_IF_ERROR(GetFloat(rs, "factor", &c->rope_factor));
  c->rope_attn_factor = 0.0f;  // 0: derived from the factor
  INFERD_RETURN_IF_ERROR(GetFloat(rs, "attention_factor", &c->rope_attn_factor));
  if (!(c->rope_factor >= 0.0f) || !(c->rope_attn_factor >= 0.0f) || !std::isfinite(c->rope_factor) ||
      !std::isfinite(c->rope_attn_factor)) {
    return InvalidArgument("config.json: '" + where + "': 'factor' and 'attention_factor' must be positive");
  }
  return Status::OK();
}

// LongRoPE's original context and attention factor, as transformers' _compute_longrope_parameters
// resolves them: the original context from the top-level original_max_position_embeddings
// (where Phi-3 writes it; transformers prefers it), else the RoPE object's; the attention
// factor as given, else from factor = the object's "factor" or max_position_embeddings /
// original: 1 when factor <= 1, else sqrt(1 + ln(factor) / ln(original)).
Status ResolveLongRope(const json& j, ModelConfig* c) {
  if (c->rope_scaling != RopeScaling::kLongRope) return Status::OK();
  INFERD_RETURN_IF_ERROR(GetInt(j, "original_max_position_embeddings", &c->rope_original_max_position));
  const int64_t orig = c->rope_original_max_position;
  if (orig <= 0 || orig > kMaxContextLength) {
    return InvalidArgument("config.json: LongRoPE needs 'original_max_position_embeddings' (top level or in the RoPE "
                           "object) between 1 and " + std::to_string(kMaxContextLength) + ", got " +
                           std::to_string(orig));
  }
  if (c->rope_attn_factor == 0.0f) {
    const double factor = c->rope_factor > 0.0f ? static_cast<double>(c->rope_factor)
                                                : static_cast<double>(c->max_position_embeddings) /
                                                      static_cast<double>(orig);
    c->rope_attn_factor =
        factor <= 1.0 || orig == 1 ? 1.0f
                                   : static_cast<float>(std::sqrt(1.0 + std::log(factor) / std::log(static_cast<double>(orig))));
  }
  c->rope_factor = 1.0f;  // LongRoPE scales through its factor arrays only
  return Status::OK();
}

// One RoPE description: transformers 4's "rope_scaling" object, or an object of transformers
// 5's "rope_parameters" (which also carries "rope_theta"). `where` names it in errors.
Status ParseRopeObject(const json& rs, const std::string& where, ModelConfig* c) {
  if (!rs.is_object()) {
    return InvalidArgument("config.json: '" + where + "' must be an object or null, got " + std::string(rs.type_name()));
  }
  INFERD_RETURN_IF_ERROR(GetFloat(rs, "rope_theta", &c->rope_theta));
  INFERD_RETURN_IF_ERROR(CheckFullRotary(rs, where + "."));
  // Newer configs use "rope_type", older ones "type".
  std::string type;
  for (const char* key : {"rope_type", "type"}) {
    auto t = rs.find(key);
    if (t == rs.end() || t->is_null()) continue;
    if (!t->is_string()) return InvalidArgument("config.json: '" + where + "." + key + "' must be a string");
    type = t->get<std::string>();
    break;
  }
  if (type.empty() || type == "default") return Status::OK();
  if (type == "linear") {
    c->rope_scaling = RopeScaling::kLinear;
  } else if (type == "llama3") {
    c->rope_scaling = RopeScaling::kLlama3;
    INFERD_RETURN_IF_ERROR(GetFloat(rs, "low_freq_factor", &c->rope_low_freq_factor));
    INFERD_RETURN_IF_ERROR(GetFloat(rs, "high_freq_factor", &c->rope_high_freq_factor));
    INFERD_RETURN_IF_ERROR(GetInt(rs, "original_max_position_embeddings", &c->rope_original_max_position));
  } else if (type == "dynamic") {
    // Dynamic NTK (InternLM2's checkpoints ship it): transformers changes the base only for a
    // sequence longer than max_position_embeddings, recomputing it from that sequence's
    // length, which a cache of rotated keys cannot follow. Within max_position_embeddings
    // (inferd's default maximum model length) it is plain RoPE, which is what runs here
    // (llama.cpp's converter drops it the same way).
    return Status::OK();
  } else if (type == "longrope" || type == "su") {
    return ParseLongRope(rs, where, c);
  } else {
    return Unimplemented("config.json: " + where + " type '" + type +
                         "' is not supported (linear, llama3, longrope, dynamic are)");
  }
  if (rs.find("factor") == rs.end()) {
    return InvalidArgument("config.json: " + where + " of type '" + type + "' needs a 'factor'");
  }
  INFERD_RETURN_IF_ERROR(GetFloat(rs, "factor", &c->rope_factor));
  return Status::OK();
}

Status ParseRopeScaling(const json& j, ModelConfig* c) {
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return Status::OK();
  return ParseRopeObject(*it, "rope_scaling", c);
}

// transformers 5 writes RoPE only as "rope_parameters": one object, or one per attention type
// ("full_attention", "sliding_attention": Gemma 3's global and local layers). It overrides the
// top-level keys when present.
Status ParseRopeParameters(const json& j, ModelConfig* c) {
  auto it = j.find("rope_parameters");
  if (it == j.end() || it->is_null()) return Status::OK();
  if (!it->is_object()) {
    return InvalidArgument("config.json: 'rope_parameters' must be an object or null, got " +
                           std::string(it->type_name()));
  }
  const bool per_type = it->contains("full_attention") || it->contains("sliding_attention");
  if (!per_type) return ParseRopeObject(*it, "rope_parameters", c);
  for (const auto& [key, value] : it->items()) {
    if (key != "full_attention" && key != "sliding_attention") {
      return InvalidArgument("config.json: 'rope_parameters." + key +
                             "': unknown attention type (full_attention, sliding_attention are known)");
    }
  }
  if (auto full = it->find("full_attention"); full != it->end()) {
    INFERD_RETURN_IF_ERROR(ParseRopeObject(*full, "rope_parameters.full_attention", c));
  }
  if (auto local = it->find("sliding_attention"); local != it->end()) {
    // The local layers' base; their RoPE is otherwise plain (Gemma 3 scales only the global one).
    ModelConfig l;
    INFERD_RETURN_IF_ERROR(ParseRopeObject(*local, "rope_parameters.sliding_attention", &l));
    if (l.rope_scaling != RopeScaling::kNone) {
      return Unimplemented("config.json: 'rope_parameters.sliding_attention': scaled RoPE in the local layers is "
                           "not supported");
    }
    if (local->contains("rope_theta")) c->rope_local_theta = l.rope_theta;
  }
  return Status::OK();
}

StatusOr<ModelConfig> ParseHfConfigImpl(const json& j) {
  if (!j.is_object()) return InvalidArgument("config.json: top level must be a JSON object");
  auto archs = j.find("architectures");
  if (archs == j.end() || !archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
    return InvalidArgument("config.json: 'architectures' must be a non-empty array of strings (supported: " +
                           SupportedHfArchitectures() + ")");
  }
  const std::string hf_name = (*archs)[0].get<std::string>();
  const ArchInfo* info = FindArchByHf(hf_name);
  if (info == nullptr) {
    return Unimplemented("config.json: architecture '" + hf_name + "' is not supported (supported: " +
                         SupportedHfArchitectures() + ")");
  }
  ModelConfig c;
  c.arch = info->name;
  c.rope_style = RopeStyle::kNeox;  // HF checkpoints rotate halves (rotate_half)
  if (auto name = j.find("_name_or_path"); name != j.end() && name->is_string()) {
    c.name = name->get<std::string>();
  }
  INFERD_RETURN_IF_ERROR(GetInt(j, "vocab_size", &c.vocab_size, true));
  INFERD_RETURN_IF_ERROR(GetInt(j, "hidden_size", &c.hidden_size, true));
  INFERD_RETURN_IF_ERROR(GetInt(j, "intermediate_size", &c.intermediate_size, true));
  INFERD_RETURN_IF_ERROR(GetInt(j, "num_hidden_layers", &c.num_layers, true));
  INFERD_RETURN_IF_ERROR(GetInt(j, "num_attention_heads", &c.num_heads, true));
  c.num_kv_heads = c.num_heads;
  INFERD_RETURN_IF_ERROR(GetInt(j, "num_key_value_heads", &c.num_kv_heads));
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  INFERD_RETURN_IF_ERROR(GetInt(j, "head_dim", &c.head_dim));
  // Baichuan-7B names its context "model_max_length"; max_position_embeddings wins if both.
  INFERD_RETURN_IF_ERROR(GetInt(j, "model_max_length", &c.max_position_embeddings));
  INFERD_RETURN_IF_ERROR(GetInt(j, "max_position_embeddings", &c.max_position_embeddings));
  c.context_length_key = j.contains("max_position_embeddings") || !j.contains("model_max_length")
                             ? "max_position_embeddings in config.json"
                             : "model_max_length in config.json";
  INFERD_RETURN_IF_ERROR(GetFloat(j, "rms_norm_eps", &c.rms_norm_eps));
  INFERD_RETURN_IF_ERROR(GetFloat(j, "rope_theta", &c.rope_theta));
  INFERD_RETURN_IF_ERROR(GetBool(j, "tie_word_embeddings", &c.tie_word_embeddings));
  INFERD_RETURN_IF_ERROR(CheckFullRotary(j, ""));
  INFERD_RETURN_IF_ERROR(ParseRopeScaling(j, &c));
  if (info->from_hf) INFERD_RETURN_IF_ERROR(info->from_hf(j, hf_name, &c));
  INFERD_RETURN_IF_ERROR(ParseRopeParameters(j, &c));
  INFERD_RETURN_IF_ERROR(ResolveLongRope(j, &c));
  return c;
}

// Shortest decimal that round-trips the float, so config.json shows 1e-05, not
// 9.999999747378752e-06.
json FloatJson(float f) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), f);
  double d = 0;
  std::from_chars(buf, r.ptr, d);
  return d;
}

}  // namespace

StatusOr<ModelConfig> ParseHfConfig(const nlohmann::json& config) {
  try {
    return ParseHfConfigImpl(config);
  } catch (const nlohmann::json::exception& e) {
    // Accessors check types first; this is a safety net for anything they missed.
    return InvalidArgument(std::string("config.json: unexpected value: ") + e.what());
  }
}

StatusOr<ModelConfig> LoadHfConfig(const std::string& model_dir) {
  const std::string path = (std::filesystem::path(model_dir) / "config.json").string();
  INFERD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  INFERD_ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(text, path));
  StatusOr<ModelConfig> c = ParseHfConfig(j);
  if (!c.ok()) return Status(c.status().code(), c.status().message() + " (in '" + path + "')");
  return c;
}

StatusOr<nlohmann::json> MakeHfConfig(const ModelConfig& config, const std::string& dtype, int bos_token_id,
                                      int eos_token_id) {
  std::string arch = "LlamaForCausalLM", model_type = "llama";
  if (config.arch == "qwen2") {
    arch = "Qwen2ForCausalLM";
    model_type = "qwen2";
  } else if (config.arch == "mistral") {
    arch = "MistralForCausalLM";
    model_type = "mistral";
  } else if (config.arch != "llama") {
    return Unimplemented("export-hf writes llama, mistral and qwen2 models; this one is " + config.arch);
  }
  json j = {
      {"architectures", {arch}},
      {"model_type", model_type},
      {"vocab_size", config.vocab_size},
      {"hidden_size", config.hidden_size},
      {"intermediate_size", config.intermediate_size},
      {"num_hidden_layers", config.num_layers},
      {"num_attention_heads", config.num_heads},
      {"num_key_value_heads", config.num_kv_heads},
      {"head_dim", config.head_dim},
      {"max_position_embeddings", config.max_position_embeddings},
      {"rms_norm_eps", FloatJson(config.rms_norm_eps)},
      {"rope_theta", FloatJson(config.rope_theta)},
      {"tie_word_embeddings", config.tie_word_embeddings},
      {"hidden_act", "silu"},
      {"torch_dtype", dtype},
      {"bos_token_id", bos_token_id},
      {"eos_token_id", eos_token_id},
      {"rope_scaling", nullptr},
  };
  if (config.rope_scaling == RopeScaling::kLinear) {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", FloatJson(config.rope_factor)}};
  } else if (config.rope_scaling == RopeScaling::kLlama3) {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", FloatJson(config.rope_factor)},
                         {"low_freq_factor", FloatJson(config.rope_low_freq_factor)},
                         {"high_freq_factor", FloatJson(config.rope_high_freq_factor)},
                         {"original_max_position_embeddings", config.rope_original_max_position}};
  }
  return j;
}

}  // namespace inferd
