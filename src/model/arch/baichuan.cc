// baichuan: Llama with the QKV projections fused in one W_pack matrix. Baichuan-7B and
// Baichuan2-7B use RoPE; Baichuan-13B and Baichuan2-13B use ALiBi (no rotary embedding; a
// per-head linear bias on the attention scores). The variant is not written in the files:
//   HF:   BaiChuanForCausalLM (Baichuan-7B's own spelling) is RoPE; BaichuanForCausalLM (the
//         13B and Baichuan2 name) is ALiBi unless hidden_size is 4096, the 7B size, as vLLM
//         decides.
//   GGUF: 40 layers (the 13B) is ALiBi, anything else RoPE, as llama.cpp decides.
// Baichuan2 (vocabulary 125 696) normalises the rows of its LM head: done at load for HF
// directories (vLLM's rule); a GGUF carries whatever its converter wrote.
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

// Baichuan2's vocabulary; its modeling code normalises the LM head's rows at inference
// (NormHead), which vLLM recognises by this size.
constexpr int64_t kBaichuan2VocabSize = 125696;

Status BaichuanFromHf(const nlohmann::json&, const std::string& hf_name, ModelConfig* c) {
  c->alibi = hf_name == "BaichuanForCausalLM" && c->hidden_size != kBaichuanRopeHiddenSize;
  c->normalize_lm_head = c->vocab_size == kBaichuan2VocabSize;
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
