// baichuan: Llama with the QKV projections fused in one W_pack matrix. Baichuan-7B and
// Baichuan2-7B use RoPE; Baichuan-13B and Baichuan2-13B use ALiBi (no rotary embedding; a
// per-head linear bias on the attention scores). The variant is not written in the files:
//   HF:   BaiChuanForCausalLM (Baichuan-7B's own spelling) is RoPE; BaichuanForCausalLM (the
//         13B and Baichuan2 name) is ALiBi unless hidden_size is 4096, the 7B size, as vLLM
//         decides.
//   GGUF: 40 layers (the 13B) is ALiBi, anything else RoPE, as llama.cpp decides.
#include <string>

#include "model/arch.h"

namespace inferd {
namespace {

constexpr int64_t kBaichuanRopeHiddenSize = 4096;
constexpr int64_t kBaichuan13BLayers = 40;

Status BaichuanFromGguf(const GgufFile&, const std::string&, ModelConfig* c) {
  c->alibi = c->num_layers == kBaichuan13BLayers;
  return Status::OK();
}

Status BaichuanFromHf(const nlohmann::json&, const std::string& hf_name, ModelConfig* c) {
  c->alibi = hf_name == "BaichuanForCausalLM" && c->hidden_size != kBaichuanRopeHiddenSize;
  return Status::OK();
}

HfTensorNames BaichuanTensors() {
  HfTensorNames n;
  n.qkv = "self_attn.W_pack";
  return n;
}

}  // namespace

extern const ArchInfo kBaichuanArch{"baichuan",         {"baichuan"},    {"BaiChuanForCausalLM", "BaichuanForCausalLM"},
                                    BaichuanFromGguf,   BaichuanFromHf,  BaichuanTensors()};

}  // namespace inferd
