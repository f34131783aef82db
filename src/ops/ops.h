// Operator declarations used by the model code. Each op has a CPU implementation in
// src/backend/cpu (the CUDA backend adds its own behind the same names).
//
// Batch invariance: every op computes each output element with an arithmetic order that
// depends only on that element's inputs (its token row, its weight row, its sequence's
// KV), never on the number of tokens in the batch, their order, or the thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "model/weights.h"

namespace inferd::ops {

// y[t, r] = sum_k x[t, k] * W[r, k]   x: [T, W.cols]  y: [T, W.rows]
// With w.packed (Q4_0 / Q4_1 / Q8_0 after PrepareWeights) activations are quantized to
// int8 per 32-element block and multiplied with integer dot products, as llama.cpp does
// (numerics in backend/cpu/qgemm.h); otherwise rows are dequantized and multiplied in fp32.
void MatMul(const Matrix& w, const float* x, int64_t num_tokens, float* y);

// One matmul whose output rows go to several arrays: rows [r0, r0 + outs[0].rows) of w to
// outs[0].y as [T, outs[0].rows], the next ones to outs[1].y, ... (sum of rows = w.rows).
// For the fused matrices of PrepareWeights (LayerWeights::wqkv, w_gate_up).
struct MatMulOut {
  float* y;
  int64_t rows;
};
void MatMulSegments(const Matrix& w, const float* x, int64_t num_tokens, std::span<const MatMulOut> outs);

// Repacks every matrix of `weights` once, at load, into the layout the backend's kernels
// want, and sets Matrix::packed (the copies are kept in weights.storage). Matrices without
// a packed form are left as they are. INFERD_CPU_MATMUL=fp32 in the environment skips it,
// so that every matmul runs in fp32 on dequantized rows (the exact mode tests use).
void PrepareWeights(ModelWeights& weights);
// The packed form of one matrix (nullptr when it has none); the caller keeps it alive.
std::shared_ptr<const void> PackMatrix(const Matrix& w);

// y[t, :] = x[t, :] / rms(x[t, :]) * weight   x, y: [T, d]; y may alias x
void RmsNorm(const float* x, const float* weight, int64_t num_tokens, int64_t d, float eps, float* y);

// out[t, i] = silu(gate[t, i]) * up[t, i]   all [T, n]; out may alias gate
void SiluMul(const float* gate, const float* up, int64_t count, float* out);

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

// Describes the sequences of a flat batch for paged attention.
struct AttnSeq {
  int64_t token_begin = 0;   // first row of this sequence in the flat batch
  int64_t num_tokens = 0;    // rows in this batch
  int64_t context_len = 0;   // tokens in KV after this step (= positions + 1 of the last row)
  const int32_t* block_table = nullptr;
};

struct KvLayerView {
  void* k = nullptr;   // [num_blocks, num_kv_heads, head_dim, block_size] (keys side by side)
  void* v = nullptr;   // [num_blocks, num_kv_heads, block_size, head_dim]
  int64_t block_size = 16, num_kv_heads = 0, head_dim = 0;
  bool fp16 = false;   // elements are IEEE half (rounded to nearest even on write), else fp32
};

// Writes k, v ([T, num_kv_heads, head_dim]) of each row into the cache slot of its position.
void WriteKv(const KvLayerView& kv, std::span<const AttnSeq> seqs, const int32_t* positions,
             const float* k, const float* v);

// Causal attention through block tables: row t of sequence s attends to positions
// [0, positions[t]] of s.   q, out: [T, num_heads, head_dim]; head_dim <= 256.
// Split-K over partitions of 512 positions; numerics in backend/cpu/attention.h.
void PagedAttention(const KvLayerView& kv, std::span<const AttnSeq> seqs, const int32_t* positions,
                    const float* q, int64_t num_heads, float scale, float* out);

}  // namespace inferd::ops
