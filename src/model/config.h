// Architecture hyper-parameters and features of a decoder-only transformer, independent of
// file format: the description of a family (docs/model-families.md). Filled from GGUF
// metadata or a Hugging Face config.json by the family's file in model/arch/; read by the
// one layer builder (ops/forward.h) and the KV-cache sizing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "inferd/status.h"

namespace inferd {

enum class RopeStyle {
  kNormal,  // GGML "normal": rotate adjacent pairs (x[2i], x[2i+1]); GGUF llama Q/K are permuted for it
  kNeox,    // rotate halves (x[i], x[i + d/2]); HF rotate_half, qwen2, and HF llama checkpoints
};

enum class RopeScaling {
  kNone,
  kLinear,
  kLlama3,
  kLongRope,  // Phi-3 128k / Phi-3.5: per-frequency divisors, a long and a short set (rope_long_factors)
};

// The activation of the gated FFN: act(gate) * up.
enum class Activation {
  kSilu,      // x * sigmoid(x) (llama, qwen, mistral)
  kGeluTanh,  // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) (gemma)
};

// What differs between the layers of one model.
struct LayerSpec {
  int64_t sliding_window = 0;  // 0: full causal attention; W: a query at p sees keys (p - W, p]
  bool local_rope = false;     // RoPE base rope_local_theta without scaling (gemma3 local layers)
};

// The longest context a config may declare: past every released model (Llama 4 Scout's
// 10M) with room; beyond it a number in a file is a mistake or an attack.
inline constexpr int64_t kMaxContextLength = int64_t{1} << 30;

struct ModelConfig {
  std::string arch;          // the family: "llama", "qwen3", "gemma3", ... (model/arch/)
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
  int64_t rope_original_max_position = 8192;  // llama3; LongRoPE: the pre-training context
  // Multiplies RoPE's cos and sin in the global layers (so attention scores scale by its
  // square): LongRoPE's attention factor, GGUF rope.scaling.attn_factor. 1: none.
  float rope_attn_factor = 1.0f;
  // LongRoPE: inverse frequency i is divided by factors[i], [head_dim / 2] each; empty otherwise.
  std::vector<float> rope_long_factors, rope_short_factors;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;             // Qwen2

  // Features (docs/model-families.md); the defaults are Llama's.
  Activation activation = Activation::kSilu;
  bool qk_norm = false;               // RMSNorm over each head of q and k before RoPE (qwen3, gemma3)
  bool post_norms = false;            // RMSNorm of the attention and FFN outputs before the residual (gemma2/3)
  bool alibi = false;                 // positions by ALiBi score biases instead of RoPE (baichuan-13B)
  // The LM head's rows are L2-normalised at load (Baichuan2's NormHead; HF checkpoints).
  bool normalize_lm_head = false;
  float embedding_scale = 0.0f;       // 0: none; else embeddings are multiplied by it (gemma: sqrt(hidden))
  float attention_scale = 0.0f;       // 0: 1 / sqrt(head_dim); else the query scale
  float final_logit_softcap = 0.0f;   // 0: none; else logits = c * tanh(logits / c) (gemma2)
  float attn_logit_softcap = 0.0f;    // 0: none; else attention scores s = c * tanh(s / c) (gemma2)
  int64_t sliding_window = 0;         // 0: none; else the window of the local layers
  // Which layers are local: 0 every layer (mistral), N: all but every N-th (gemma3: 6, 5:1).
  int64_t sliding_window_pattern = 0;
  float rope_local_theta = 0.0f;      // RoPE base of the local layers; 0: rope_theta (gemma3: 10000)

  // The features of layer i (window, RoPE base), from the fields above.
  LayerSpec Layer(int64_t i) const {
    LayerSpec s;
    const bool local = sliding_window > 0 && (sliding_window_pattern <= 0 || (i + 1) % sliding_window_pattern != 0);
    if (local) s.sliding_window = sliding_window;
    s.local_rope = local && rope_local_theta > 0.0f;
    return s;
  }
  float AttentionScale() const;  // attention_scale or 1 / sqrt(head_dim)
  // LongRoPE's factor set for an engine whose sequences reach `max_model_len` tokens: the
  // long factors when that exceeds the original context, else the short ones. The choice is
  // per engine, not per batch or sequence (transformers switches with each sequence's
  // length): the paged, prefix-cached KV cache keeps keys already rotated, so every key must
  // be rotated alike. llama.cpp decides the same way from its context size (n_ctx_seq).
  // max_model_len 0 means the model's context length (max_position_embeddings).
  bool LongRopeUsesLongFactors(int64_t max_model_len) const {
    return (max_model_len > 0 ? max_model_len : max_position_embeddings) > rope_original_max_position;
  }
  const std::vector<float>& LongRopeFactors(int64_t max_model_len) const {
    return LongRopeUsesLongFactors(max_model_len) ? rope_long_factors : rope_short_factors;
  }

  // Checks that sizes are positive and consistent (heads divide, head_dim even, ...).
  Status Validate() const;
  Status ValidateLongRope() const;  // part of Validate: LongRoPE's factors and original context
  // Total parameters implied by the shapes (embeddings counted once when tied).
  int64_t NumParameters() const;
  // Bytes of K+V per token for all layers at `bytes_per_elem`.
  int64_t KvBytesPerToken(int64_t bytes_per_elem) const {
    return 2 * num_layers * num_kv_heads * head_dim * bytes_per_elem;
  }
};


}  // namespace inferd
