// phi3 (Phi-3 mini/medium 4k): Llama with [q; k; v] fused in one matrix (GGUF attn_qkv, HF
// qkv_proj) and [gate; up] fused in another (GGUF ffn_up of 2 x ffn rows, HF gate_up_proj);
// NeoX RoPE; a sliding window over every layer when the model declares one (transformers
// applies it; llama.cpp currently drops it, so the two agree up to the window's length).
// LongRoPE (the 128k models' rope_factors_long/short) is refused until it is implemented.
#include "model/arch.h"
#include "model/config_json.h"

namespace inferd {
namespace {

Status Phi3FromGguf(const GgufFile& f, const std::string& prefix, ModelConfig* c) {
  c->rope_style = RopeStyle::kNeox;
  c->sliding_window = f.GetInt(prefix + "attention.sliding_window").value_or(0);
  if (f.FindTensor("rope_factors_long.weight") != nullptr || f.FindTensor("rope_factors_short.weight") != nullptr) {
    return Unimplemented("gguf: Phi-3 LongRoPE (rope_factors_long/short, the 128k-context models) is not supported "
                         "yet; the 4k models are");
  }
  return Status::OK();
}

Status Phi3FromHf(const nlohmann::json& j, const std::string&, ModelConfig* c) {
  // rope_scaling "longrope" / "su" is refused by the common reader (unknown type).
  return config_json::GetInt(j, "sliding_window", &c->sliding_window);
}

HfTensorNames Phi3Tensors() {
  HfTensorNames n;
  n.qkv = "self_attn.qkv_proj";
  n.gate_up = "mlp.gate_up_proj.weight";
  return n;
}

// internlm2: Llama's computation under its own names. Its GGUF (llama.cpp's converter
// reorders the grouped wqkv) loads as is; its HF checkpoint keeps q, k and v interleaved
// per KV head in attention.wqkv, which needs a reordering copy not written yet.
Status InternLm2FromHf(const nlohmann::json&, const std::string&, ModelConfig*) {
  return Unimplemented("config.json: InternLM2ForCausalLM checkpoints (grouped attention.wqkv) are not supported "
                       "yet; its GGUF conversion is");
}

}  // namespace

extern const ArchInfo kPhi3Arch{"phi3", {"phi3"}, {"Phi3ForCausalLM"}, Phi3FromGguf, Phi3FromHf, Phi3Tensors()};
extern const ArchInfo kInternLm2Arch{"internlm2", {"internlm2"}, {"InternLM2ForCausalLM"}, nullptr, InternLm2FromHf,
                                     {}};

}  // namespace inferd
