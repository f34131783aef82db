// The layer builder: the one forward pass of every family, as calls on ops::Ops. Both
// backends run it (docs/model-families.md); a family changes what it calls only through
// its ModelConfig.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "inferd/status.h"
#include "model/config.h"
#include "ops/ops.h"

namespace inferd::ops {

// Embedding through every layer; the final residual stream is left in Act::kX.
Status RunLayers(const ModelConfig& c, Ops& ops);
// Final norm, LM head and soft-capping for the batch's logits rows [first, first + count).
Status RunHead(const ModelConfig& c, Ops& ops, int64_t first, int64_t count);

// RoPE inverse frequencies [head_dim / 2] of the global layers (local = false: rope_theta
// with the model's scaling and GGUF rope_freqs factors) or of the local ones (local =
// true: rope_local_theta, unscaled), in double as both backends tabulate them. The backends
// multiply the global layers' cos and sin by c.rope_attn_factor. max_model_len: the
// engine's maximum sequence length, which picks LongRoPE's factor set
// (ModelConfig::LongRopeFactors); 0: the model's context length.
std::vector<double> RopeInvFreq(const ModelConfig& c, bool local, std::span<const float> freq_factors,
                                int64_t max_model_len);

// ALiBi slopes of `num_heads` heads (Press et al.; llama.cpp's max_alibi_bias 8): with n the
// largest power of two <= num_heads, head h < n gets 2^(-8 (h + 1) / n), the others the odd
// steps of the half-bias series, 2^(-4 (2 (h - n) + 1) / n).
std::vector<float> AlibiSlopes(int64_t num_heads);

}  // namespace inferd::ops
