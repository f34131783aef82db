#include "model/llama.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

namespace inferd {

LlamaModel::LlamaModel(const ModelConfig& config, const ModelWeights& weights)
    : config_(config), weights_(weights) {
  const int64_t half = config.head_dim / 2;
  inv_freq_.resize(half);
  const double kPi = 3.14159265358979323846;
  for (int64_t i = 0; i < half; ++i) {
    double f = std::pow(static_cast<double>(config.rope_theta), -2.0 * static_cast<double>(i) / config.head_dim);
    if (config.rope_scaling == RopeScaling::kLinear) {
      f /= config.rope_factor;
    } else if (config.rope_scaling == RopeScaling::kLlama3) {
      // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, the band
      // in between interpolated.
      const double orig = static_cast<double>(config.rope_original_max_position);
      const double low_wavelen = orig / config.rope_low_freq_factor;
      const double high_wavelen = orig / config.rope_high_freq_factor;
      const double wavelen = 2.0 * kPi / f;
      if (wavelen > low_wavelen) {
        f /= config.rope_factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (orig / wavelen - config.rope_low_freq_factor) /
                              (config.rope_high_freq_factor - config.rope_low_freq_factor);
        f = (1.0 - smooth) * f / config.rope_factor + smooth * f;
      }
    }
    if (!weights.rope_freq_factors.empty()) f /= weights.rope_freq_factors[i];
    inv_freq_[i] = f;
  }
}

int64_t LlamaModel::ScratchBytes(const ModelConfig& c, int64_t T) {
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  // x, xn, rows: hidden; q, attn: q_dim; k, v: kv_dim; gate, up: ffn; cos_sin: head_dim
  const int64_t floats = T * (3 * c.hidden_size + 2 * qd + 2 * kvd + 2 * c.intermediate_size + c.head_dim);
  return floats * static_cast<int64_t>(sizeof(float));
}

void LlamaModel::ComputeRope(const std::vector<int32_t>& positions) {
  const int64_t half = config_.head_dim / 2;
  for (size_t t = 0; t < positions.size(); ++t) {
    float* cs = &cos_sin_[t * config_.head_dim];
    for (int64_t i = 0; i < half; ++i) {
      const double theta = static_cast<double>(positions[t]) * inv_freq_[i];
      cs[2 * i] = static_cast<float>(std::cos(theta));
      cs[2 * i + 1] = static_cast<float>(std::sin(theta));
    }
  }
}

namespace {
void Grow(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
}
}  // namespace

Status LlamaModel::Forward(const ForwardBatch& batch, KvCache& kv, float* logits) {
  const ModelConfig& c = config_;
  const int64_t T = static_cast<int64_t>(batch.token_ids.size());
  if (T == 0) return Status::OK();
  if (static_cast<int64_t>(batch.positions.size()) != T) return Internal("forward: positions size mismatch");
  for (int32_t id : batch.token_ids) {
    if (id < 0 || id >= c.vocab_size) {
      return InvalidArgument(fmt::format("token id {} is out of range for vocabulary size {}", id, c.vocab_size));
    }
  }
  const int64_t h = c.hidden_size, d = c.head_dim, qd = c.num_heads * d, kvd = c.num_kv_heads * d;
  const int64_t ffn = c.intermediate_size;
  Grow(x_, T * h);
  Grow(xn_, T * h);
  Grow(q_, T * qd);
  Grow(k_, T * kvd);
  Grow(v_, T * kvd);
  Grow(attn_, T * qd);
  Grow(gate_, T * ffn);
  Grow(up_, T * ffn);
  Grow(cos_sin_, T * d);
  ComputeRope(batch.positions);

  ops::Embedding(weights_.tok_embd, batch.token_ids, x_.data());  // x: [T, hidden]
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const bool neox = c.rope_style == RopeStyle::kNeox;
  for (int64_t li = 0; li < c.num_layers; ++li) {
    const LayerWeights& l = weights_.layers[li];
    // Attention block.
    ops::RmsNorm(x_.data(), l.attn_norm.data(), T, h, c.rms_norm_eps, xn_.data());
    if (l.wqkv.packed) {  // one fused matmul
      const ops::MatMulOut outs[] = {{q_.data(), qd}, {k_.data(), kvd}, {v_.data(), kvd}};
      ops::MatMulSegments(l.wqkv, xn_.data(), T, outs);
    } else {
      ops::MatMul(l.wq, xn_.data(), T, q_.data());  // [T, num_heads, head_dim]
      ops::MatMul(l.wk, xn_.data(), T, k_.data());  // [T, num_kv_heads, head_dim]
      ops::MatMul(l.wv, xn_.data(), T, v_.data());  // [T, num_kv_heads, head_dim]
    }
    if (!l.bq.empty()) ops::AddBias(q_.data(), l.bq.data(), T, qd);
    if (!l.bk.empty()) ops::AddBias(k_.data(), l.bk.data(), T, kvd);
    if (!l.bv.empty()) ops::AddBias(v_.data(), l.bv.data(), T, kvd);
    ops::Rope(q_.data(), T, c.num_heads, d, cos_sin_.data(), neox);
    ops::Rope(k_.data(), T, c.num_kv_heads, d, cos_sin_.data(), neox);
    ops::KvLayerView view{kv.k(li), kv.v(li), kv.shape().block_size, c.num_kv_heads, d,
                          kv.shape().dtype == KvDtype::kF16};
    ops::WriteKv(view, batch.seqs, batch.positions.data(), k_.data(), v_.data());
    ops::PagedAttention(view, batch.seqs, batch.positions.data(), q_.data(), c.num_heads, scale, attn_.data());
    ops::MatMul(l.wo, attn_.data(), T, xn_.data());  // [T, hidden]
    ops::Add(x_.data(), xn_.data(), T * h);
    // SwiGLU feed-forward block.
    ops::RmsNorm(x_.data(), l.ffn_norm.data(), T, h, c.rms_norm_eps, xn_.data());
    if (l.w_gate_up.packed) {
      const ops::MatMulOut outs[] = {{gate_.data(), ffn}, {up_.data(), ffn}};
      ops::MatMulSegments(l.w_gate_up, xn_.data(), T, outs);
    } else {
      ops::MatMul(l.w_gate, xn_.data(), T, gate_.data());  // [T, ffn]
      ops::MatMul(l.w_up, xn_.data(), T, up_.data());      // [T, ffn]
    }
    ops::SiluMul(gate_.data(), up_.data(), T * ffn, gate_.data());
    ops::MatMul(l.w_down, gate_.data(), T, xn_.data());  // [T, hidden]
    ops::Add(x_.data(), xn_.data(), T * h);
  }
  // Final norm and LM head only for the rows whose logits are wanted.
  const int64_t n = static_cast<int64_t>(batch.logits_rows.size());
  Grow(rows_, n * h);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = batch.logits_rows[i];
    if (r < 0 || r >= T) return Internal("forward: logits row out of range");
    std::memcpy(&rows_[i * h], &x_[r * h], sizeof(float) * h);
  }
  ops::RmsNorm(rows_.data(), weights_.output_norm.data(), n, h, c.rms_norm_eps, rows_.data());
  ops::MatMul(weights_.output, rows_.data(), n, logits);  // [n, vocab]
  return Status::OK();
}

}  // namespace inferd
