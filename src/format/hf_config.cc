// config.json / generation_config.json of Hugging Face model directories.
//
// Every field is read through typed accessors that turn a wrong JSON type into an
// InvalidArgument naming the field; nlohmann exceptions never leave this file.
#include "format/hf_config.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace inferd {
namespace {

using json = nlohmann::json;

constexpr const char kSupportedHfArchitectures[] =
    "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, BaichuanForCausalLM";

// Baichuan-7B / Baichuan2-7B use RoPE; the 13B models (hidden_size 5120) use ALiBi, which
// inferd does not implement. HF gives both the same architecture name.
constexpr int64_t kBaichuanRopeHiddenSize = 4096;

std::string TypeName(const json& v) { return v.type_name(); }

// Reads an optional integer field; absent or null leaves *out unchanged.
Status GetInt(const json& j, const char* key, int64_t* out, bool required = false) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return InvalidArgument(std::string("config.json: required field '") + key + "' is missing");
    return Status::OK();
  }
  if (!it->is_number_integer()) {
    // Some configs write 4096.0; accept integral floats.
    if (it->is_number_float()) {
      const double d = it->get<double>();
      if (d > -9.0e18 && d < 9.0e18 && d == static_cast<double>(static_cast<int64_t>(d))) {
        *out = static_cast<int64_t>(d);
        return Status::OK();
      }
    }
    return InvalidArgument(std::string("config.json: '") + key + "' must be an integer, got " +
                           TypeName(*it) + " " + it->dump());
  }
  *out = it->get<int64_t>();
  return Status::OK();
}

Status GetFloat(const json& j, const char* key, float* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::OK();
  if (!it->is_number()) {
    return InvalidArgument(std::string("config.json: '") + key + "' must be a number, got " +
                           TypeName(*it) + " " + it->dump());
  }
  *out = it->get<float>();
  return Status::OK();
}

Status GetBool(const json& j, const char* key, bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::OK();
  if (!it->is_boolean()) {
    return InvalidArgument(std::string("config.json: '") + key + "' must be a boolean, got " +
                           TypeName(*it) + " " + it->dump());
  }
  *out = it->get<bool>();
  return Status::OK();
}

Status ParseRopeScaling(const json& j, ModelConfig* c) {
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return Status::OK();
  if (!it->is_object()) {
    return InvalidArgument("config.json: 'rope_scaling' must be an object or null, got " +
                           TypeName(*it));
  }
  const json& rs = *it;
  // Newer configs use "rope_type", older ones "type".
  std::string type;
  for (const char* key : {"rope_type", "type"}) {
    auto t = rs.find(key);
    if (t == rs.end() || t->is_null()) continue;
    if (!t->is_string()) {
      return InvalidArgument(std::string("config.json: 'rope_scaling.") + key + "' must be a string");
    }
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
    INFERD_RETURN_IF_ERROR(
        GetInt(rs, "original_max_position_embeddings", &c->rope_original_max_position));
  } else {
    return Unimplemented("config.json: rope_scaling type '" + type +
                         "' is not supported (linear, llama3 are)");
  }
  if (rs.find("factor") == rs.end()) {
    return InvalidArgument("config.json: rope_scaling of type '" + type + "' needs a 'factor'");
  }
  INFERD_RETURN_IF_ERROR(GetFloat(rs, "factor", &c->rope_factor));
  return Status::OK();
}

StatusOr<ModelConfig> ParseHfConfigImpl(const json& j) {
  if (!j.is_object()) return InvalidArgument("config.json: top level must be a JSON object");
  auto archs = j.find("architectures");
  if (archs == j.end() || !archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
    return InvalidArgument(std::string("config.json: 'architectures' must be a non-empty array of "
                                       "strings (supported: ") + kSupportedHfArchitectures + ")");
  }
  const std::string arch = (*archs)[0].get<std::string>();
  ModelConfig c;
  if (arch == "LlamaForCausalLM") {
    c.arch = "llama";
  } else if (arch == "MistralForCausalLM") {
    c.arch = "mistral";
  } else if (arch == "Qwen2ForCausalLM") {
    c.arch = "qwen2";
    c.qkv_bias = true;  // Qwen2 has biases on q/k/v projections (not on o)
  } else if (arch == "BaichuanForCausalLM" || arch == "BaiChuanForCausalLM") {
    c.arch = "baichuan";
  } else {
    return Unimplemented("config.json: architecture '" + arch + "' is not supported (supported: " +
                         kSupportedHfArchitectures + ")");
  }
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
  INFERD_RETURN_IF_ERROR(ParseRopeScaling(j, &c));
  if (c.arch == "baichuan" && c.hidden_size != kBaichuanRopeHiddenSize) {
    return Unimplemented("config.json: Baichuan with hidden_size " + std::to_string(c.hidden_size) +
                         " (13B) uses ALiBi attention, which is not supported; the 7B models "
                         "(hidden_size 4096, RoPE) are");
  }
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

std::string ConfigPathOrDir(const std::string& path_or_dir, const char* file) {
  std::error_code ec;
  if (std::filesystem::is_directory(path_or_dir, ec)) {
    return (std::filesystem::path(path_or_dir) / file).string();
  }
  return path_or_dir;
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

nlohmann::json MakeHfConfig(const ModelConfig& config, const std::string& dtype,
                            int bos_token_id, int eos_token_id) {
  std::string arch = "LlamaForCausalLM", model_type = "llama";
  if (config.arch == "qwen2") {
    arch = "Qwen2ForCausalLM";
    model_type = "qwen2";
  } else if (config.arch == "mistral") {
    arch = "MistralForCausalLM";
    model_type = "mistral";
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

StatusOr<GenerationDefaults> LoadGenerationConfig(const std::string& path_or_dir) {
  const std::string path = ConfigPathOrDir(path_or_dir, "generation_config.json");
  INFERD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  INFERD_ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(text, path));
  if (!j.is_object()) return InvalidArgument(path + ": top level must be a JSON object");
  GenerationDefaults g;
  auto bad = [&](const char* key, const char* want) {
    return InvalidArgument(path + ": '" + key + "' must be " + want + ", got " + j[key].dump());
  };
  for (auto [key, field] : {std::pair{"temperature", &g.temperature}, {"top_p", &g.top_p},
                            {"min_p", &g.min_p}, {"repetition_penalty", &g.repetition_penalty}}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_number()) return bad(key, "a number");
    *field = it->get<float>();
  }
  for (auto [key, field] : {std::pair{"top_k", &g.top_k}, {"max_new_tokens", &g.max_new_tokens}}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_number_integer()) return bad(key, "an integer");
    const int64_t v = it->get<int64_t>();
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
      return bad(key, "a 32-bit integer");
    }
    *field = static_cast<int>(v);
  }
  if (auto it = j.find("eos_token_id"); it != j.end() && !it->is_null()) {
    const json ids = it->is_array() ? *it : json::array({*it});
    for (const json& id : ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
          id.get<int64_t>() > std::numeric_limits<int>::max()) {
        return bad("eos_token_id", "a non-negative integer or an array of them");
      }
      g.eos_token_ids.push_back(static_cast<int>(id.get<int64_t>()));
    }
  }
  return g;
}

StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return NotFound("file '" + path + "' does not exist");
  if (std::filesystem::is_directory(path, ec)) {
    return InvalidArgument("'" + path + "' is a directory, expected a file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument("cannot open '" + path + "' for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return InvalidArgument("reading '" + path + "' failed");
  return ss.str();
}

}  // namespace inferd
