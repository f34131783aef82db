// qwen2 (QKV bias) and qwen3 (QK-norm, head_dim from the config): NeoX RoPE in both.
#include "model/arch.h"
#include "model/config_json.h"

namespace inferd {
namespace {

// Qwen2/3 configs carry "sliding_window" but apply it only with use_sliding_window (and
// then only to the layers from max_window_layers on), which released models leave off.
Status CheckNoSlidingWindow(const nlohmann::json& j) {
  bool use = false;
  INFERD_RETURN_IF_ERROR(config_json::GetBool(j, "use_sliding_window", &use));
  if (use) return Unimplemented("config.json: use_sliding_window with max_window_layers is not supported yet");
  return Status::OK();
}

Status Qwen2FromGguf(const GgufFile&, const std::string&, ModelConfig* c) {
  c->rope_style = RopeStyle::kNeox;
  c->qkv_bias = true;
  return Status::OK();
}
Status Qwen2FromHf(const nlohmann::json& j, const std::string&, ModelConfig* c) {
  c->qkv_bias = true;  // on q/k/v, not on o
  return CheckNoSlidingWindow(j);
}

Status Qwen3FromGguf(const GgufFile&, const std::string&, ModelConfig* c) {
  c->rope_style = RopeStyle::kNeox;
  c->qk_norm = true;
  return Status::OK();
}
Status Qwen3FromHf(const nlohmann::json& j, const std::string&, ModelConfig* c) {
  c->qk_norm = true;
  bool bias = false;
  INFERD_RETURN_IF_ERROR(config_json::GetBool(j, "attention_bias", &bias));
  c->qkv_bias = bias;
  return CheckNoSlidingWindow(j);
}

}  // namespace

extern const ArchInfo kQwen2Arch{"qwen2", {"qwen2"}, {"Qwen2ForCausalLM"}, Qwen2FromGguf, Qwen2FromHf, {}};
extern const ArchInfo kQwen3Arch{"qwen3", {"qwen3"}, {"Qwen3ForCausalLM"}, Qwen3FromGguf, Qwen3FromHf, {}};

}  // namespace inferd
