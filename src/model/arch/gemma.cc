// The Gemma family. All: GELU-tanh, embeddings scaled by sqrt(hidden), NeoX RoPE, tied
// embeddings by default, and HF RMSNorm weights stored as w for x * (1 + w) (GGUF stores
// 1 + w).
//   gemma   (1)  just that.
//   gemma2       norms after attention and after the FFN, attention and final logit
//                soft-capping, local (sliding-window) and global layers alternating,
//                query scale from query_pre_attn_scalar.
//   gemma3       gemma2's norms and query scale, QK-norm, no soft-capping, 5 local layers
//                (RoPE base 10 000, unscaled) to 1 global (the model's base and scaling).
#include <cmath>
#include <string>

#include "model/arch.h"
#include "model/config_json.h"

namespace inferd {
namespace {

constexpr float kGemma3LocalRopeBase = 10000.0f;

void GemmaFeatures(ModelConfig* c) {
  c->rope_style = RopeStyle::kNeox;
  c->activation = Activation::kGeluTanh;
  c->embedding_scale = std::sqrt(static_cast<float>(c->hidden_size));
}

void Gemma2Features(ModelConfig* c) {
  GemmaFeatures(c);
  c->post_norms = true;
  c->sliding_window_pattern = 2;  // even layers local, odd global
}

void Gemma3Features(ModelConfig* c) {
  GemmaFeatures(c);
  c->qk_norm = true;
  c->post_norms = true;
  c->sliding_window_pattern = 6;  // every 6th layer global
  c->rope_local_theta = kGemma3LocalRopeBase;
}

// The GGUF has no query_pre_attn_scalar: llama.cpp uses head_dim, except for the 27B models
// (gemma2: 46 layers, gemma3: 62), whose scalar is hidden / heads.
void GgufAttentionScale(ModelConfig* c, int64_t layers_27b) {
  const double scalar = c->num_layers == layers_27b ? static_cast<double>(c->hidden_size) / c->num_heads
                                                    : static_cast<double>(c->head_dim);
  c->attention_scale = static_cast<float>(1.0 / std::sqrt(scalar));
}

void GgufWindowAndCaps(const GgufFile& f, const std::string& prefix, ModelConfig* c) {
  c->sliding_window = f.GetInt(prefix + "attention.sliding_window").value_or(0);
  c->final_logit_softcap = static_cast<float>(f.GetFloat(prefix + "final_logit_softcapping").value_or(0.0));
  c->attn_logit_softcap = static_cast<float>(f.GetFloat(prefix + "attn_logit_softcapping").value_or(0.0));
}

Status GemmaFromGguf(const GgufFile&, const std::string&, ModelConfig* c) {
  GemmaFeatures(c);
  return Status::OK();
}
Status Gemma2FromGguf(const GgufFile& f, const std::string& prefix, ModelConfig* c) {
  Gemma2Features(c);
  GgufWindowAndCaps(f, prefix, c);
  GgufAttentionScale(c, 46);
  return Status::OK();
}
Status Gemma3FromGguf(const GgufFile& f, const std::string& prefix, ModelConfig* c) {
  Gemma3Features(c);
  GgufWindowAndCaps(f, prefix, c);
  GgufAttentionScale(c, 62);
  return Status::OK();
}

// HF gives the local/global split either as sliding_window_pattern (N: every N-th layer is
// global) or as layer_types ("sliding_attention" / "full_attention" per layer).
Status LayerPatternFromHf(const nlohmann::json& j, ModelConfig* c) {
  INFERD_RETURN_IF_ERROR(config_json::GetInt(j, "sliding_window_pattern", &c->sliding_window_pattern));
  auto it = j.find("layer_types");
  if (it == j.end() || it->is_null()) return Status::OK();
  if (!it->is_array() || static_cast<int64_t>(it->size()) != c->num_layers) {
    return InvalidArgument("config.json: 'layer_types' must be an array of num_hidden_layers strings");
  }
  int64_t first_full = 0;
  for (size_t i = 0; i < it->size(); ++i) {
    if ((*it)[i] == "full_attention") {
      first_full = static_cast<int64_t>(i) + 1;
      break;
    }
  }
  c->sliding_window_pattern = first_full == 0 ? c->num_layers + 1 : first_full;
  for (int64_t i = 0; i < c->num_layers; ++i) {
    const auto& t = (*it)[static_cast<size_t>(i)];
    const bool sliding = (i + 1) % c->sliding_window_pattern != 0;
    if (!t.is_string() || t != (sliding ? "sliding_attention" : "full_attention")) {
      return Unimplemented("config.json: 'layer_types' must repeat (sliding_attention x N-1, full_attention); "
                           "other layouts are not supported yet");
    }
  }
  return Status::OK();
}

// Keys every Gemma config.json shares: the activation (hidden_activation, or Gemma 1's
// hidden_act, which HF runs as the tanh approximation) and the tied default.
Status GemmaCommonFromHf(const nlohmann::json& j, ModelConfig* c) {
  c->tie_word_embeddings = true;  // Gemma's default; an explicit false is read below
  INFERD_RETURN_IF_ERROR(config_json::GetBool(j, "tie_word_embeddings", &c->tie_word_embeddings));
  std::string act;
  INFERD_RETURN_IF_ERROR(config_json::GetString(j, "hidden_act", &act));
  INFERD_RETURN_IF_ERROR(config_json::GetString(j, "hidden_activation", &act));
  if (!act.empty() && act != "gelu_pytorch_tanh" && act != "gelu") {
    return Unimplemented("config.json: hidden_activation '" + act + "' is not supported (gelu_pytorch_tanh is)");
  }
  return Status::OK();
}

// gemma2/3: window, pattern, soft-capping and the query scale.
Status GemmaLocalGlobalFromHf(const nlohmann::json& j, ModelConfig* c) {
  INFERD_RETURN_IF_ERROR(config_json::GetInt(j, "sliding_window", &c->sliding_window));
  INFERD_RETURN_IF_ERROR(LayerPatternFromHf(j, c));
  INFERD_RETURN_IF_ERROR(config_json::GetFloat(j, "final_logit_softcapping", &c->final_logit_softcap));
  INFERD_RETURN_IF_ERROR(config_json::GetFloat(j, "attn_logit_softcapping", &c->attn_logit_softcap));
  float scalar = static_cast<float>(c->head_dim);
  INFERD_RETURN_IF_ERROR(config_json::GetFloat(j, "query_pre_attn_scalar", &scalar));
  if (!(scalar > 0.0f)) return InvalidArgument("config.json: 'query_pre_attn_scalar' must be positive");
  c->attention_scale = 1.0f / std::sqrt(scalar);
  return Status::OK();
}

Status GemmaFromHf(const nlohmann::json& j, const std::string&, ModelConfig* c) {
  GemmaFeatures(c);
  return GemmaCommonFromHf(j, c);
}
Status Gemma2FromHf(const nlohmann::json& j, const std::string&, ModelConfig* c) {
  Gemma2Features(c);
  INFERD_RETURN_IF_ERROR(GemmaCommonFromHf(j, c));
  return GemmaLocalGlobalFromHf(j, c);
}
Status Gemma3FromHf(const nlohmann::json& j, const std::string&, ModelConfig* c) {
  Gemma3Features(c);
  INFERD_RETURN_IF_ERROR(GemmaCommonFromHf(j, c));
  INFERD_RETURN_IF_ERROR(config_json::GetFloat(j, "rope_local_base_freq", &c->rope_local_theta));
  return GemmaLocalGlobalFromHf(j, c);
}

HfTensorNames GemmaTensors(bool post_norms) {
  HfTensorNames n;
  if (post_norms) {
    n.post_attn_norm = "post_attention_layernorm.weight";
    n.ffn_norm = "pre_feedforward_layernorm.weight";
    n.post_ffn_norm = "post_feedforward_layernorm.weight";
  }
  n.norm_offset = 1.0f;
  return n;
}

}  // namespace

extern const ArchInfo kGemmaArch{"gemma", {"gemma"}, {"GemmaForCausalLM"}, GemmaFromGguf, GemmaFromHf,
                                 GemmaTensors(false)};
extern const ArchInfo kGemma2Arch{"gemma2", {"gemma2"}, {"Gemma2ForCausalLM"}, Gemma2FromGguf, Gemma2FromHf,
                                  GemmaTensors(true)};
extern const ArchInfo kGemma3Arch{"gemma3", {"gemma3"}, {"Gemma3ForCausalLM"}, Gemma3FromGguf, Gemma3FromHf,
                                  GemmaTensors(true)};

}  // namespace inferd
