// llama (Llama 1/2/3 incl. Llama-3 RoPE scaling, SmolLM, TinyLlama) and mistral: the
// defaults of ModelConfig and HfTensorNames are this family's.
#include "model/arch.h"
#include "model/config_json.h"

namespace inferd {
namespace {

// Mistral's config.json has "sliding_window" (4096 in v0.1, null from v0.2): every layer
// attends to the last `sliding_window` positions. llama.cpp's GGUF conversion drops it.
Status MistralFromHf(const nlohmann::json& j, const std::string&, ModelConfig* c) {
  return config_json::GetInt(j, "sliding_window", &c->sliding_window);
}

}  // namespace

extern const ArchInfo kLlamaArch{"llama", {"llama"}, {"LlamaForCausalLM"}, nullptr, nullptr, {}};
extern const ArchInfo kMistralArch{"mistral", {"mistral"}, {"MistralForCausalLM"}, nullptr, MistralFromHf, {}};

}  // namespace inferd
