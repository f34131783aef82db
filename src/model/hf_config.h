// config.json of a Hugging Face model directory → ModelConfig, through the family's
// ArchInfo (model/arch.h), and back (export-hf).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "inferd/status.h"
#include "model/config.h"

namespace inferd {

// Parses config.json. The family comes from "architectures" (others: Unimplemented naming
// the supported list). HF checkpoints use NeoX-style RoPE (rotate_half). Reads
// rope_scaling {"type"/"rope_type": "linear"|"llama3", factor, ...}, head_dim,
// tie_word_embeddings, num_key_value_heads (defaults to num_attention_heads), then the
// family's own keys.
StatusOr<ModelConfig> ParseHfConfig(const nlohmann::json& config);
StatusOr<ModelConfig> LoadHfConfig(const std::string& model_dir);

// Writes config.json for `config` (the inverse of ParseHfConfig for llama, mistral and
// qwen2) with torch_dtype `dtype` ("float16"/"bfloat16"), bos/eos ids.
StatusOr<nlohmann::json> MakeHfConfig(const ModelConfig& config, const std::string& dtype, int bos_token_id,
                                      int eos_token_id);

}  // namespace inferd
