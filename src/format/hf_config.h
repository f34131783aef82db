// Hugging Face model directory metadata: config.json, generation_config.json.
// Tokenizer files (tokenizer.json, tokenizer.model, tokenizer_config.json) are read by
// src/tokenizer (Tokenizer::FromHfDir).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "inferd/status.h"
#include "util/json.h"  // ParseJson for config files
#include "model/config.h"

namespace inferd {

// Parses config.json. Supported "architectures": LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM, BaichuanForCausalLM (others: Unimplemented naming the supported list).
// HF checkpoints use NeoX-style RoPE (rotate_half), so rope_style is kNeox for all of them.
// Reads rope_scaling {"type"/"rope_type": "linear"|"llama3", factor, ...}, head_dim,
// tie_word_embeddings, num_key_value_heads (defaults to num_attention_heads).
StatusOr<ModelConfig> ParseHfConfig(const nlohmann::json& config);
StatusOr<ModelConfig> LoadHfConfig(const std::string& model_dir);

// Writes config.json for `config` (the inverse of ParseHfConfig, LlamaForCausalLM or
// Qwen2ForCausalLM) with torch_dtype `dtype` ("float16"/"bfloat16"), bos/eos ids.
nlohmann::json MakeHfConfig(const ModelConfig& config, const std::string& dtype,
                            int bos_token_id, int eos_token_id);

// Default sampling values from generation_config.json (absent fields stay nullopt).
struct GenerationDefaults {
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int> top_k, max_new_tokens;
  std::vector<int> eos_token_ids;
};
StatusOr<GenerationDefaults> LoadGenerationConfig(const std::string& path_or_dir);

// Reads a whole file into a string (NotFound / InvalidArgument on failure).
StatusOr<std::string> ReadFileToString(const std::string& path);


}  // namespace inferd
