// baichuan: Llama with the QKV projections fused in one W_pack matrix. Baichuan-7B
// (BaiChuanForCausalLM, its own spelling) uses RoPE; BaichuanForCausalLM is the 13B and
// Baichuan2 name, which uses ALiBi unless hidden_size is 4096 (the 7B size), as vLLM decides.
#include <string>

#include "model/arch.h"

namespace inferd {
namespace {

constexpr int64_t kBaichuanRopeHiddenSize = 4096;

Status BaichuanFromHf(const nlohmann::json&, const std::string& hf_name, ModelConfig* c) {
  if (hf_name == "BaichuanForCausalLM" && c->hidden_size != kBaichuanRopeHiddenSize) {
    return Unimplemented("config.json: BaichuanForCausalLM with hidden_size " + std::to_string(c->hidden_size) +
                         " is Baichuan-13B, which uses ALiBi attention: not supported yet (Baichuan-7B, "
                         "BaiChuanForCausalLM or hidden_size 4096, uses RoPE and is)");
  }
  return Status::OK();
}

HfTensorNames BaichuanTensors() {
  HfTensorNames n;
  n.qkv = "self_attn.W_pack";
  return n;
}

}  // namespace

extern const ArchInfo kBaichuanArch{"baichuan",         {"baichuan"}, {"BaiChuanForCausalLM", "BaichuanForCausalLM"},
                                    nullptr,            BaichuanFromHf, BaichuanTensors()};

}  // namespace inferd
