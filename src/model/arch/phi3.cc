// phi3 (Phi-3 mini/medium 4k and 128k, Phi-3.5-mini): Llama with [q; k; v] fused in one
// matrix (GGUF attn_qkv, HF qkv_proj) and [gate; up] fused in another (GGUF ffn_up of 2 x ffn
// rows, HF gate_up_proj); NeoX RoPE; a sliding window over every layer when the model
// declares one (transformers applies it; llama.cpp currently drops it, so the two agree up to
// the window's length).
//
// LongRoPE (the 128k models, Phi-3.5): inverse frequency i is 1 / (factor_i * base^(2i/d))
// with a long or a short factor set, and cos and sin are multiplied by an attention factor.
// Which set: the long one when the engine's maximum model length exceeds the original
// (pre-training) context, else the short one, fixed per engine as llama.cpp fixes it per
// context (ModelConfig::LongRopeFactors says why). GGUF: tensors rope_factors_long/short.weight,
// phi3.rope.scaling.original_context_length (absent: the context length) and
// phi3.rope.scaling.attn_factor, as llama.cpp's converter writes them. config.json: a
// rope_scaling / rope_parameters object of type "longrope" (or "su"), read by
// model/hf_config.cc. RoPE over part of each head (Phi-4-mini) is refused.
#include <fmt/format.h>

#include <cmath>

#include "model/arch.h"
#include "model/config_json.h"

namespace inferd {
namespace {

// A LongRoPE factor tensor of the GGUF: head_dim / 2 floats.
Status ReadRopeFactors(const GgufFile& f, const char* name, int64_t head_dim, std::vector<float>* out) {
  const GgufTensorInfo* t = f.FindTensor(name);
  if (t == nullptr) {
    return InvalidArgument(fmt::format("gguf: LongRoPE needs both rope_factors_long.weight and "
                                       "rope_factors_short.weight; '{}' is missing",
                                       name));
  }
  if (t->type != GgmlType::kF32 && t->type != GgmlType::kF16 && t->type != GgmlType::kBF16) {
    return Unimplemented(fmt::format("gguf: tensor '{}' must be f32, f16 or bf16, got {}", name,
                                     GgmlTypeName(static_cast<uint32_t>(t->type))));
  }
  if (t->shape.size() != 1 || t->num_elements() != head_dim / 2) {
    return InvalidArgument(fmt::format("gguf: tensor '{}' has {} elements in {} dimensions, expected a vector of "
                                       "head_dim / 2 = {}",
                                       name, t->num_elements(), t->shape.size(), head_dim / 2));
  }
  out->assign(static_cast<size_t>(head_dim / 2), 0.0f);
  DequantizeRow(t->type, t->data, out->data(), head_dim / 2);
  for (float x : *out) {
    if (!(x > 0.0f) || !std::isfinite(x)) {
      return InvalidArgument(fmt::format("gguf: tensor '{}' must hold positive finite factors, got {}", name, x));
    }
  }
  return Status::OK();
}

Status Phi3FromGguf(const GgufFile& f, const std::string& prefix, ModelConfig* c) {
  c->rope_style = RopeStyle::kNeox;
  c->sliding_window = f.GetInt(prefix + "attention.sliding_window").value_or(0);
  if (auto dims = f.GetInt(prefix + "rope.dimension_count"); dims && *dims != c->head_dim) {
    return Unimplemented(fmt::format("gguf: {}rope.dimension_count {} is less than the head dimension {} (RoPE over "
                                     "part of each head, Phi-4-mini); not supported",
                                     prefix, *dims, c->head_dim));
  }
  // llama.cpp applies the attention factor whenever the key is present.
  c->rope_attn_factor = static_cast<float>(f.GetFloat(prefix + "rope.scaling.attn_factor").value_or(1.0));
  if (f.FindTensor("rope_factors_long.weight") == nullptr && f.FindTensor("rope_factors_short.weight") == nullptr) {
    return Status::OK();
  }
  c->rope_scaling = RopeScaling::kLongRope;
  c->rope_original_max_position =
      f.GetInt(prefix + "rope.scaling.original_context_length").value_or(c->max_position_embeddings);
  INFERD_RETURN_IF_ERROR(ReadRopeFactors(f, "rope_factors_long.weight", c->head_dim, &c->rope_long_factors));
  return ReadRopeFactors(f, "rope_factors_short.weight", c->head_dim, &c->rope_short_factors);
}

Status Phi3FromHf(const nlohmann::json& j, const std::string&, ModelConfig* c) {
  // rope_scaling "longrope" / "su" is read by the common reader (model/hf_config.cc).
  return config_json::GetInt(j, "sliding_window", &c->sliding_window);
}

HfTensorNames Phi3Tensors() {
  HfTensorNames n;
  n.qkv = "self_attn.qkv_proj";
  n.gate_up = "mlp.gate_up_proj.weight";
  return n;
}

}  // namespace

extern const ArchInfo kPhi3Arch{"phi3", {"phi3"}, {"Phi3ForCausalLM"}, Phi3FromGguf, Phi3FromHf, Phi3Tensors()};

}  // namespace inferd
