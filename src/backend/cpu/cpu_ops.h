// The CPU kernels of the forward pass (implemented in cpu_ops.cc over the per-ISA kernels of
// this directory); the CPU backend (backend/cpu_backend.cc) implements ops::Ops with them.
// Kernels see weight rows (format/matrix.h), never model types.
//
// Batch invariance: every op computes each output element with an arithmetic order that
// depends only on that element's inputs (its token row, its weight row, its sequence's
// KV), never on the number of tokens in the batch, their order, or the thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "backend/cpu/kv_quant.h"
#include "format/matrix.h"
#include "ops/batch.h"

namespace inferd::cpu {

using ops::AttnSeq;

// y[t, r] = sum_k x[t, k] * W[r, k]   x: [T, W.cols]  y: [T, W.rows]
// With w.packed (after PackMatrix) integer types quantize the activations to int8 per
// 32-element block and multiply with integer dot products, as llama.cpp does; float types
// (F32 / F16 / BF16 panels) multiply in fp32 (numerics of both in backend/cpu/qgemm.h).
// Otherwise rows are dequantized and multiplied in fp32 (kernels.h).
void MatMul(const Matrix& w, const float* x, int64_t num_tokens, float* y);

// One matmul whose output rows go to several arrays: rows [r0, r0 + outs[0].rows) of w to
// outs[0].y as [T, outs[0].rows], the next ones to outs[1].y, ... (sum of rows = w.rows).
// For fused matrices (LayerWeights::wqkv, w_gate_up: ConcatPacked).
struct MatMulOut {
  float* y;
  int64_t rows;
};
void MatMulSegments(const Matrix& w, const float* x, int64_t num_tokens, std::span<const MatMulOut> outs);

// The packed form of one matrix for the quantized kernels (nullptr when it has none); the
// caller keeps it alive. INFERD_CPU_MATMUL=fp32 in the environment is read by the caller.
std::shared_ptr<const void> PackMatrix(const Matrix& w);
// y[t, :] = x[t, :] / rms(x[t, :]) * weight   x, y: [T, d]; y may alias x
void RmsNorm(const float* x, const float* weight, int64_t num_tokens, int64_t d, float eps, float* y);

// out[t, i] = silu(gate[t, i]) * up[t, i]   all [T, n]; out may alias gate
void SiluMul(const float* gate, const float* up, int64_t count, float* out);
// out[t, i] = gelu_tanh(gate[t, i]) * up[t, i], gelu_tanh(x) = x / (1 + exp(-2u)) with
// u = sqrt(2 / pi) (x + 0.044715 x^3) (= 0.5 x (1 + tanh u)); out may alias gate
void GeluTanhMul(const float* gate, const float* up, int64_t count, float* out);

// x[i] *= s
void Scale(float* x, int64_t count, float s);
// x[i] = c * tanh(x[i] / c)
void Softcap(float* x, int64_t count, float c);

// out[t, :] = dequantized row ids[t] of emb   out: [T, emb.cols]
void Embedding(const Matrix& emb, std::span<const int32_t> ids, float* out);

// y[t, :] += b for every row   y: [T, n]
void AddBias(float* y, const float* b, int64_t num_tokens, int64_t n);

// a[i] += b[i]
void Add(float* a, const float* b, int64_t count);

// Rotary position embedding applied in place to x: [T, num_heads, head_dim].
// cos_sin: [T, head_dim / 2, 2] (cos, sin) per token; neox selects pairs (i, i + d/2)
// instead of (2i, 2i + 1).
void Rope(float* x, int64_t num_tokens, int64_t num_heads, int64_t head_dim, const float* cos_sin,
          bool neox);

struct KvLayerView {
  void* k = nullptr;   // [num_blocks, num_kv_heads, head_dim, block_size] (keys side by side)
  void* v = nullptr;   // [num_blocks, num_kv_heads, block_size, head_dim]
  int64_t block_size = 16, num_kv_heads = 0, head_dim = 0;
  KvElem elem = KvElem::kF32;  // kv_quant.h
  uint16_t* ks = nullptr;      // code formats: fp16 scales [num_blocks, num_kv_heads, block_size]
  uint16_t* vs = nullptr;
};

// Writes k, v ([T, num_kv_heads, head_dim]) of each row into the cache slot of its position;
// code formats quantize each (row, KV head) vector with its own scale (QuantizeKvVector).
void WriteKv(const KvLayerView& kv, std::span<const AttnSeq> seqs, const int32_t* positions,
             const float* k, const float* v);

struct AttnOptions {
  float scale = 1.0f;              // query scale
  int64_t sliding_window = 0;      // W > 0: row t sees (positions[t] - W, positions[t]]
  float softcap = 0.0f;            // > 0: scaled scores s become softcap * tanh(s / softcap)
  const float* alibi = nullptr;    // [num_heads] ALiBi slopes: score += slope * (key - query position)
};

// Causal attention through block tables: row t of sequence s attends to positions
// [0, positions[t]] of s (or its window), with the options above.
// q, out: [T, num_heads, head_dim]; head_dim <= 256. Split-K over partitions of 512
// positions; numerics in backend/cpu/attention.h.
void PagedAttention(const KvLayerView& kv, std::span<const AttnSeq> seqs, const int32_t* positions,
                    const float* q, int64_t num_heads, const AttnOptions& o, float* out);

}  // namespace inferd::cpu
