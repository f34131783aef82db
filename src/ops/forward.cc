#include "ops/forward.h"

#include <cmath>
#include <optional>

namespace inferd::ops {

Status RunLayers(const ModelConfig& c, Ops& ops) {
  const float eps = c.rms_norm_eps;
  INFERD_RETURN_IF_ERROR(ops.Embed(Act::kX, c.embedding_scale));
  // The residual add of each block is deferred to the next norm (one fused op on the GPU).
  std::optional<Act> pending;
  for (int64_t li = 0; li < c.num_layers; ++li) {
    const LayerSpec spec = c.Layer(li);
    // Attention block.
    INFERD_RETURN_IF_ERROR(ops.AddRmsNorm(Act::kX, pending, li, Weight::kAttnNorm, eps, Act::kXn));
    INFERD_RETURN_IF_ERROR(ops.Linear(li, Weight::kQkv, c.qkv_bias));
    if (c.qk_norm) {
      INFERD_RETURN_IF_ERROR(ops.HeadRmsNorm(Act::kQ, li, Weight::kQNorm, eps));
      INFERD_RETURN_IF_ERROR(ops.HeadRmsNorm(Act::kK, li, Weight::kKNorm, eps));
    }
    if (!c.alibi) INFERD_RETURN_IF_ERROR(ops.Rope(li));
    INFERD_RETURN_IF_ERROR(
        ops.Attention(li, AttnParams{c.AttentionScale(), spec.sliding_window, c.attn_logit_softcap, c.alibi}));
    INFERD_RETURN_IF_ERROR(ops.Linear(li, Weight::kO, false));
    if (c.post_norms) INFERD_RETURN_IF_ERROR(ops.RmsNorm(Act::kO, li, Weight::kPostAttnNorm, eps));
    // Gated feed-forward block.
    INFERD_RETURN_IF_ERROR(ops.AddRmsNorm(Act::kX, Act::kO, li, Weight::kFfnNorm, eps, Act::kXn));
    INFERD_RETURN_IF_ERROR(ops.Linear(li, Weight::kGateUp, false));
    INFERD_RETURN_IF_ERROR(ops.GatedAct(c.activation));
    INFERD_RETURN_IF_ERROR(ops.Linear(li, Weight::kDown, false));
    if (c.post_norms) INFERD_RETURN_IF_ERROR(ops.RmsNorm(Act::kO, li, Weight::kPostFfnNorm, eps));
    pending = Act::kO;
  }
  if (pending) INFERD_RETURN_IF_ERROR(ops.Add(Act::kX, *pending));
  return Status::OK();
}

std::vector<float> AlibiSlopes(int64_t num_heads) {
  std::vector<float> out;
  if (num_heads <= 0) return out;
  int64_t n = 1;
  while (n * 2 <= num_heads) n *= 2;
  const double m0 = std::pow(2.0, -8.0 / static_cast<double>(n));
  const double m1 = std::pow(2.0, -4.0 / static_cast<double>(n));
  for (int64_t h = 0; h < num_heads; ++h) {
    out.push_back(static_cast<float>(h < n ? std::pow(m0, static_cast<double>(h + 1))
                                           : std::pow(m1, static_cast<double>(2 * (h - n) + 1))));
  }
  return out;
}

Status RunHead(const ModelConfig& c, Ops& ops, int64_t first, int64_t count) {
  return ops.Logits(first, count, c.rms_norm_eps, c.final_logit_softcap);
}

std::vector<double> RopeInvFreq(const ModelConfig& c, bool local, std::span<const float> freq_factors,
                                int64_t max_model_len) {
  const int64_t half = c.head_dim / 2;
  std::vector<double> inv(static_cast<size_t>(half));
  const double kPi = 3.14159265358979323846;
  const double theta = local ? static_cast<double>(c.rope_local_theta) : static_cast<double>(c.rope_theta);
  const std::vector<float>& ext_factors = c.LongRopeFactors(max_model_len);
  for (int64_t i = 0; i < half; ++i) {
    double f = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(c.head_dim));
    if (!local) {
      if (c.rope_scaling == RopeScaling::kLinear) {
        f /= c.rope_factor;
      } else if (c.rope_scaling == RopeScaling::kLlama3) {
        // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, the band
        // in between interpolated.
        const double orig = static_cast<double>(c.rope_original_max_position);
        const double low_wavelen = orig / c.rope_low_freq_factor;
        const double high_wavelen = orig / c.rope_high_freq_factor;
        const double wavelen = 2.0 * kPi / f;
        if (wavelen > low_wavelen) {
          f /= c.rope_factor;
        } else if (wavelen >= high_wavelen) {
          const double smooth = (orig / wavelen - c.rope_low_freq_factor) /
                                (c.rope_high_freq_factor - c.rope_low_freq_factor);
          f = (1.0 - smooth) * f / c.rope_factor + smooth * f;
        }
      } else if (c.rope_scaling == RopeScaling::kLongRope) {
        f /= ext_factors[static_cast<size_t>(i)];  // 1 / (factor_i * theta^(2i/d)); sizes: ModelConfig::Validate
      }
      if (static_cast<int64_t>(freq_factors.size()) == half) f /= freq_factors[static_cast<size_t>(i)];
    }
    inv[static_cast<size_t>(i)] = f;
  }
  return inv;
}

}  // namespace inferd::ops
