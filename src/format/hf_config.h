// Hugging Face model directory metadata: generation_config.json (config.json describes the
// model: model/hf_config.h).
// Tokenizer files (tokenizer.json, tokenizer.model, tokenizer_config.json) are read by
// src/tokenizer (Tokenizer::FromHfDir).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "inferd/status.h"
#include "util/file.h"  // ReadFileToString
#include "util/json.h"  // ParseJson for config files

namespace inferd {

// Default sampling values from generation_config.json (absent fields stay nullopt).
struct GenerationDefaults {
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int> top_k, max_new_tokens;
  std::vector<int> eos_token_ids;
};
StatusOr<GenerationDefaults> LoadGenerationConfig(const std::string& path_or_dir);

}  // namespace inferd
