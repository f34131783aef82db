// Architecture hyper-parameters of a decoder-only transformer, independent of file format.
// Filled from GGUF metadata (model/loader.cc) or from a Hugging Face config.json
// (format/hf_config.cc); consumed by the forward pass and the KV-cache sizing.
#pragma once

#include <cstdint>
#include <string>

#include "inferd/status.h"

namespace inferd {

enum class RopeStyle {
  kNormal,  // GGML "normal": rotate adjacent pairs (x[2i], x[2i+1]); GGUF llama Q/K are permuted for it
  kNeox,    // rotate halves (x[i], x[i + d/2]); HF rotate_half, qwen2, and HF llama checkpoints
};

enum class RopeScaling { kNone, kLinear, kLlama3 };

// The longest context a config may declare: past every released model (Llama 4 Scout's
// 10M) with room; beyond it a number in a file is a mistake or an attack.
inline constexpr int64_t kMaxContextLength = int64_t{1} << 30;

struct ModelConfig {
  std::string arch;          // "llama", "mistral", "qwen2", "baichuan" (lower-case family name)
  std::string name;          // human-readable (general.name), may be empty
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;          // d_model
  int64_t intermediate_size = 0;    // FFN width
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;         // == num_heads for MHA, < for GQA/MQA
  int64_t head_dim = 0;             // usually hidden_size / num_heads
  int64_t max_position_embeddings = 2048;  // training context length
  // Where max_position_embeddings came from, for errors about it ("max_position_embeddings
  // in config.json", "llama.context_length in the GGUF").
  std::string context_length_key = "max_position_embeddings";
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeStyle rope_style = RopeStyle::kNormal;
  RopeScaling rope_scaling = RopeScaling::kNone;
  float rope_factor = 1.0f;                 // linear / llama3 factor
  float rope_low_freq_factor = 1.0f;        // llama3
  float rope_high_freq_factor = 4.0f;       // llama3
  int64_t rope_original_max_position = 8192;  // llama3
  bool tie_word_embeddings = false;
  bool qkv_bias = false;             // Qwen2

  // Checks that sizes are positive and consistent (heads divide, head_dim even, ...).
  Status Validate() const;
  // Total parameters implied by the shapes (embeddings counted once when tied).
  int64_t NumParameters() const;
  // Bytes of K+V per token for all layers at `bytes_per_elem`.
  int64_t KvBytesPerToken(int64_t bytes_per_elem) const {
    return 2 * num_layers * num_kv_heads * head_dim * bytes_per_elem;
  }
};

// Architectures inferd runs, for error messages: "llama, mistral, qwen2, baichuan".
const char* SupportedArchitectures();

}  // namespace inferd
