// internlm2 (InternLM2, InternLM2.5): Llama's computation under its own names. Its GGUF
// loads as is: llama.cpp's converter splits the fused wqkv into attn_q/k/v (and permutes q
// and k for GGML's RoPE). Its HF checkpoint (remote code, InternLM2ForCausalLM) keeps q, k
// and v in one attention.wqkv whose rows are grouped per KV head: for each of num_kv_heads
// groups, the rows of its num_heads / num_kv_heads query heads, then its key head, then its
// value head (head_dim rows each), as modeling_internlm2.py reads them
// ("q (h gs d) -> q h gs d" with gs = 2 + heads / kv_heads); the loader regroups them into
// [q; k; v] (HfTensorNames::qkv_grouped). Biases (config "bias": true, no released model)
// are refused: inferd has no bias on the attention output.
//
// rope_scaling "dynamic" (InternLM2 and 2.5 ship it) is plain RoPE up to
// max_position_embeddings and is read as such by model/hf_config.cc.
#include "model/arch.h"
#include "model/config_json.h"

namespace inferd {
namespace {

Status InternLm2FromHf(const nlohmann::json& j, const std::string&, ModelConfig*) {
  bool bias = false;
  INFERD_RETURN_IF_ERROR(config_json::GetBool(j, "bias", &bias));
  if (bias) {
    return Unimplemented("config.json: InternLM2 with \"bias\": true (biases on wqkv and wo) is not supported");
  }
  return Status::OK();
}

HfTensorNames InternLm2Tensors() {
  HfTensorNames n;
  n.embed = "model.tok_embeddings.weight";
  n.final_norm = "model.norm.weight";
  n.lm_head = "output.weight";
  n.attn_norm = "attention_norm.weight";
  n.qkv = "attention.wqkv";
  n.qkv_grouped = true;
  n.o = "attention.wo.weight";
  n.ffn_norm = "ffn_norm.weight";
  n.gate = "feed_forward.w1.weight";
  n.up = "feed_forward.w3.weight";
  n.down = "feed_forward.w2.weight";
  return n;
}

}  // namespace

extern const ArchInfo kInternLm2Arch{"internlm2", {"internlm2"}, {"InternLM2ForCausalLM"}, nullptr, InternLm2FromHf,
                                     InternLm2Tensors()};

}  // namespace inferd
