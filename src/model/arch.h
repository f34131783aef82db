// The registry of model families (docs/model-families.md). A family is one ArchInfo in
// its own file under model/arch/: the names it goes by in GGUF and in config.json, how to
// read what differs from Llama in each, and where its tensors are in a HF checkpoint.
// Common keys (sizes, heads, norm epsilon, RoPE base and scaling) are read by the shared
// code in model/hf_config.cc and model/loader_gguf.cc before the family's hook runs.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "format/gguf.h"
#include "inferd/status.h"
#include "model/config.h"

namespace inferd {

// Tensor names of a HF checkpoint, relative to "model.layers.N." (per layer) or the
// root. nullptr: the family has no such tensor.
struct HfTensorNames {
  const char* embed = "model.embed_tokens.weight";
  const char* final_norm = "model.norm.weight";
  const char* lm_head = "lm_head.weight";
  const char* attn_norm = "input_layernorm.weight";
  const char* q = "self_attn.q_proj";   // ".weight" / ".bias" appended
  const char* k = "self_attn.k_proj";
  const char* v = "self_attn.v_proj";
  const char* qkv = nullptr;            // fused [q; k; v] rows (Baichuan's W_pack), instead of q/k/v
  // qkv's rows grouped per KV head instead: for each KV head, its num_heads / num_kv_heads
  // query heads, its key head, its value head (InternLM2's wqkv); regrouped on load.
  bool qkv_grouped = false;
  const char* o = "self_attn.o_proj.weight";
  const char* q_norm = "self_attn.q_norm.weight";
  const char* k_norm = "self_attn.k_norm.weight";
  const char* post_attn_norm = nullptr;
  const char* ffn_norm = "post_attention_layernorm.weight";
  const char* post_ffn_norm = nullptr;
  const char* gate = "mlp.gate_proj.weight";
  const char* gate_up = nullptr;        // fused [gate; up] rows (Phi-3's gate_up_proj), instead of gate/up
  const char* up = "mlp.up_proj.weight";
  const char* down = "mlp.down_proj.weight";
  // Added to every RMSNorm weight on load (Gemma computes x * (1 + w); GGUF stores 1 + w).
  float norm_offset = 0.0f;
};

struct ArchInfo {
  const char* name;                      // ModelConfig::arch
  std::vector<std::string> gguf_names;   // general.architecture values
  std::vector<std::string> hf_names;     // config.json "architectures" values
  // Family-specific configuration after the common keys; c->arch is set. The GGUF hook
  // reads keys under `prefix` ("gemma3.").
  Status (*from_gguf)(const GgufFile& f, const std::string& prefix, ModelConfig* c) = nullptr;
  Status (*from_hf)(const nlohmann::json& j, const std::string& hf_name, ModelConfig* c) = nullptr;
  HfTensorNames hf_tensors;
};

const ArchInfo* FindArchByGguf(const std::string& name);
const ArchInfo* FindArchByHf(const std::string& name);
const ArchInfo* FindArch(const std::string& family);  // by ArchInfo::name
// For errors: "llama, mistral, qwen2, qwen3, gemma3, baichuan" / "LlamaForCausalLM, ...".
std::string SupportedArchitectures();
std::string SupportedHfArchitectures();

}  // namespace inferd
