#include "model/config.h"

#include <fmt/format.h>

#include <cmath>

namespace inferd {

Status ModelConfig::Validate() const {
  auto positive = [](const char* name, int64_t v) -> Status {
    if (v <= 0) return InvalidArgument(fmt::format("model config: {} must be positive, got {}", name, v));
    return Status::OK();
  };
  INFERD_RETURN_IF_ERROR(positive("vocab_size", vocab_size));
  INFERD_RETURN_IF_ERROR(positive("hidden_size", hidden_size));
  INFERD_RETURN_IF_ERROR(positive("intermediate_size", intermediate_size));
  INFERD_RETURN_IF_ERROR(positive("num_layers", num_layers));
  INFERD_RETURN_IF_ERROR(positive("num_heads", num_heads));
  INFERD_RETURN_IF_ERROR(positive("num_kv_heads", num_kv_heads));
  INFERD_RETURN_IF_ERROR(positive("head_dim", head_dim));
  if (num_heads % num_kv_heads != 0) {
    return InvalidArgument(fmt::format("model config: num_heads ({}) must be a multiple of num_kv_heads ({})",
                                       num_heads, num_kv_heads));
  }
  if (max_position_embeddings <= 0 || max_position_embeddings > kMaxContextLength) {
    return OutOfRange(fmt::format("model config: {} must be between 1 and {}, got {}", context_length_key,
                                  kMaxContextLength, max_position_embeddings));
  }
  if (head_dim % 2 != 0) return InvalidArgument(fmt::format("model config: head_dim must be even, got {}", head_dim));
  if (vocab_size > (int64_t{1} << 31) || hidden_size > (1 << 20) || num_layers > 4096 ||
      head_dim > 1024 || num_heads > 4096 || intermediate_size > (1 << 22)) {
    return OutOfRange("model config: sizes out of the supported range");
  }
  if (head_dim > 256) {  // the CPU attention kernel keeps a head in 16 vector registers
    return Unimplemented(fmt::format("model config: head_dim {} is not supported (at most 256)", head_dim));
  }
  if (!(rms_norm_eps > 0.0f) || !(rope_theta > 0.0f) || !(rope_factor > 0.0f)) {
    return InvalidArgument("model config: rms_norm_eps, rope_theta and rope factor must be positive");
  }
  if (!(rope_attn_factor > 0.0f) || !std::isfinite(rope_attn_factor)) {
    return InvalidArgument(fmt::format("model config: the RoPE attention factor must be positive and finite, got {}",
                                       rope_attn_factor));
  }
  INFERD_RETURN_IF_ERROR(ValidateLongRope());
  if (sliding_window < 0 || sliding_window_pattern < 0 || !(final_logit_softcap >= 0.0f) || !(attn_logit_softcap >= 0.0f) || !std::isfinite(attn_logit_softcap) ||
      !(attention_scale >= 0.0f) || !std::isfinite(attention_scale) || !(embedding_scale >= 0.0f) ||
      !std::isfinite(embedding_scale) || !(rope_local_theta >= 0.0f) || !std::isfinite(final_logit_softcap)) {
    return InvalidArgument("model config: sliding window, soft-capping, attention and embedding scales must be "
                           "non-negative and finite");
  }
  return Status::OK();
}

// The loaders check the factors where they read them (naming the field or tensor); this is
// the invariant the RoPE tables rely on, whatever filled the config.
Status ModelConfig::ValidateLongRope() const {
  if (rope_scaling != RopeScaling::kLongRope) {
    if (!rope_long_factors.empty() || !rope_short_factors.empty()) {
      return InvalidArgument("model config: LongRoPE factors are set but the RoPE scaling is not LongRoPE");
    }
    return Status::OK();
  }
  if (rope_original_max_position <= 0 || rope_original_max_position > kMaxContextLength) {
    return OutOfRange(fmt::format("model config: LongRoPE's original context must be between 1 and {}, got {}",
                                  kMaxContextLength, rope_original_max_position));
  }
  for (const auto* f : {&rope_long_factors, &rope_short_factors}) {
    const char* which = f == &rope_long_factors ? "long" : "short";
    if (static_cast<int64_t>(f->size()) != head_dim / 2) {
      return InvalidArgument(fmt::format("model config: LongRoPE {} factors have {} entries, expected head_dim / 2 = {}",
                                         which, f->size(), head_dim / 2));
    }
    for (float x : *f) {
      if (!(x > 0.0f) || !std::isfinite(x)) {
        return InvalidArgument(fmt::format("model config: LongRoPE {} factors must be positive and finite, got {}",
                                           which, x));
      }
    }
  }
  return Status::OK();
}

float ModelConfig::AttentionScale() const {
  return attention_scale > 0.0f ? attention_scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
}

int64_t ModelConfig::NumParameters() const {
  const int64_t q = num_heads * head_dim, kv = num_kv_heads * head_dim;
  int64_t per_layer = hidden_size * q + 2 * hidden_size * kv + q * hidden_size  // attention
                      + 3 * hidden_size * intermediate_size                    // SwiGLU FFN
                      + 2 * hidden_size;                                       // norms
  if (qkv_bias) per_layer += q + 2 * kv;
  if (qk_norm) per_layer += 2 * head_dim;
  if (post_norms) per_layer += 2 * hidden_size;
  int64_t total = num_layers * per_layer + vocab_size * hidden_size + hidden_size;
  if (!tie_word_embeddings) total += vocab_size * hidden_size;
  return total;
}

}  // namespace inferd
