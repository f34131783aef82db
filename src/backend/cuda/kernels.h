// CUDA kernels of the inferd CUDA backend: host-callable launchers (implemented in
// kernels/*.cu), so that host code compiled by g++ (cuda_backend.cc, tests) calls them
// without CUDA syntax.
//
// Conventions, for every launcher:
// - every pointer is a device pointer unless the comment says "host";
// - the launcher only enqueues work on `stream` (no allocation, no synchronisation, no
//   host<->device copies), so each one can be captured into a CUDA graph; it returns
//   cudaGetLastError() after the launch (cudaSuccess when num_tokens == 0: nothing runs);
// - "dt" is the element type of activations, weights and the KV cache; arithmetic is in
//   fp32 (loads convert up, stores round to nearest even);
// - a row stride is in elements; activations with a stride may be views into a fused
//   buffer (q, k and v of a fused QKV matmul output [T, q_dim + 2 * kv_dim]);
// - batch invariance: each output element's arithmetic order depends only on its own
//   inputs (its row, its sequence's KV, the launch constants), never on how many rows or
//   sequences share the launch, so a request computes the same bits in any batch.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "format/ggml_types.h"
#include "sample/logit_edit.h"

namespace inferd::cuda {

enum class DType : uint8_t { kF32, kF16, kBF16 };
size_t DTypeBytes(DType dt);
const char* DTypeName(DType dt);  // "float32" | "float16" | "bfloat16"

// out[t, :] = table[ids[t], :]   table: [vocab, hidden]; out: [T, hidden]
cudaError_t Embedding(DType dt, const void* table, const int32_t* ids, int64_t num_tokens, int64_t hidden, void* out,
                      cudaStream_t stream);

// residual[t] += delta[t] (skipped when delta is nullptr); out[t] = residual[t] / rms(residual[t]) * weight
// residual, delta, out: [T, d] (dt); weight: [d] fp32. out must not alias residual.
cudaError_t AddRmsNorm(DType dt, void* residual, const void* delta, const float* weight, int64_t num_tokens,
                       int64_t d, float eps, void* out, cudaStream_t stream);

// out[i] = x[rows[i]] / rms(x[rows[i]]) * weight   x: [*, d]; out: [num_rows, d]; rows: [num_rows]
// (the final norm, only for the rows whose logits are wanted)
cudaError_t GatherRmsNorm(DType dt, const void* x, const int32_t* rows, int64_t num_rows, int64_t d,
                          const float* weight, float eps, void* out, cudaStream_t stream);

// y[t, 0:n] += bias   y: [T, row_stride] (dt); bias: [n] fp32
cudaError_t AddBias(DType dt, void* y, int64_t row_stride, const float* bias, int64_t num_tokens, int64_t n,
                    cudaStream_t stream);

// Rotary embedding in place. q: [T, num_heads, head_dim] and k: [T, num_kv_heads, head_dim],
// both with row stride `row_stride` (elements between rows t and t + 1).
// cos_sin: [max_positions, head_dim / 2, 2] fp32 (cos, sin), indexed by positions[t].
// neox pairs element i with i + head_dim / 2; otherwise 2i with 2i + 1 (as cpu::Rope).
cudaError_t Rope(DType dt, void* q, void* k, int64_t row_stride, const int32_t* positions, const float* cos_sin,
                 int64_t num_tokens, int64_t num_heads, int64_t num_kv_heads, int64_t head_dim, bool neox,
                 cudaStream_t stream);

// out[t, i] = silu(gate_up[t, i]) * gate_up[t, ffn + i]   gate_up: [T, 2 * ffn]; out: [T, ffn]
cudaError_t SiluMul(DType dt, const void* gate_up, int64_t num_tokens, int64_t ffn, void* out, cudaStream_t stream);

// Paged KV cache, per layer: k_cache and v_cache each [num_blocks, block_size, num_kv_heads, head_dim] (dt).
// Writes row t of k and v ([T, num_kv_heads, head_dim] with row stride row_stride) into
// slot slot_mapping[t] = block_id * block_size + offset; rows with slot -1 are skipped (padding).
cudaError_t WriteKv(DType dt, const void* k, const void* v, int64_t row_stride, const int64_t* slot_mapping,
                    int64_t num_tokens, int64_t num_kv_heads, int64_t head_dim, int64_t block_size, void* k_cache,
                    void* v_cache, cudaStream_t stream);

// Rows per prefill tile (query rows of one sequence that share K/V tiles in shared memory).
inline constexpr int kPrefillTileRows = 64;
// Keys per split-K partition of the decode kernel (flash-decoding).
inline constexpr int kDecodePartition = 512;

// Causal paged attention over a flat batch that mixes prefill chunks and decodes.
// Row t belongs to sequence row_seq[t] (-1: padding row, its output is written as zeros)
// and attends to positions [0, positions[t]] of that sequence's KV (already written by
// WriteKv for this step). Rows are split by the host into
//   - decode_rows[num_decode_rows]: rows computed by the split-K kernel: one partition
//     per kDecodePartition keys (partials in `workspace`, merged in partition order);
//   - prefill_tiles[2 * num_prefill_tiles]: (first row, number of rows <= kPrefillTileRows),
//     consecutive rows of one sequence with consecutive positions; FlashAttention-style
//     tiles with online softmax.
// Every row is in exactly one of the two lists (the host guarantees it).
// Both kernels must give the same result for a row up to fp32 rounding (tests compare both
// to a float64 reference), and each row's result depends only on its own q and KV.
struct AttentionParams {
  DType dt = DType::kF16;
  const void* q = nullptr;       // [T, num_heads, head_dim], row stride q_row_stride
  int64_t q_row_stride = 0;
  const void* k_cache = nullptr;  // layout of WriteKv
  const void* v_cache = nullptr;
  void* out = nullptr;            // [T, num_heads, head_dim] contiguous
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  int64_t max_blocks_per_seq = 0;
  const int32_t* row_seq = nullptr;       // [T]
  const int32_t* positions = nullptr;     // [T]
  const int32_t* decode_rows = nullptr;   // [num_decode_rows]
  int64_t num_decode_rows = 0;
  const int32_t* prefill_tiles = nullptr;  // [num_prefill_tiles, 2]
  int64_t num_prefill_tiles = 0;
  int64_t num_tokens = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0, block_size = 16;
  float scale = 1.0f;
  // Upper bound of positions[t] + 1 over decode rows (host value): fixes the number of
  // partitions of the launch (a CUDA graph captures it with max_model_len; partitions past
  // a row's context contribute nothing).
  int64_t max_context_len = 0;
  void* workspace = nullptr;  // at least AttentionWorkspaceBytes(...) bytes
  size_t workspace_bytes = 0;
};
size_t AttentionWorkspaceBytes(int64_t num_decode_rows, int64_t num_heads, int64_t head_dim, int64_t max_context_len);
// Supported head dims: 64, 80, 96, 128, 256 (cudaErrorInvalidValue otherwise).
cudaError_t PagedAttention(const AttentionParams& p, cudaStream_t stream);

// Weight-only quantized weights in GGUF block layout (Q8_0, Q4_0, Q4_K; rows of row_bytes).
// y[t, r] = sum_k x[t, k] * W[r, k]   x: [T, cols] (dt); y: [T, rows] (dt, row stride y_row_stride)
// For small T (decode); each block is dequantized in registers, fp32 accumulation.
cudaError_t QuantMatMul(DType dt, GgmlType wtype, const void* w, int64_t rows, int64_t cols, size_t row_bytes,
                        const void* x, int64_t num_tokens, void* y, int64_t y_row_stride, cudaStream_t stream);
// out[r, :] = dequantized row r of W   out: [rows, cols] (dt); for large batches (then cuBLAS)
cudaError_t Dequantize(GgmlType wtype, const void* w, int64_t rows, int64_t cols, size_t row_bytes, DType dt,
                       void* out, cudaStream_t stream);
bool QuantMatMulSupports(GgmlType wtype);

// out[i] = argmax_j logits[i, j] (lowest j on ties)   logits: [n, vocab] fp32; out: [n]
cudaError_t ArgMax(const float* logits, int64_t n, int64_t vocab, int32_t* out, cudaStream_t stream);

// ---------------------------------------------------------------- sampling (SampleRows)
// Token sampling on the device with the rules of sample/sampler.cc (SampleToken), so that only
// token ids (and optionally their raw logprobs) come back to the host.

// One row's sampling parameters (host fills, copies to the device).
struct DeviceSampleParams {
  float temperature = 1.0f;  // < 1e-5: greedy (as SamplingParams::greedy())
  int32_t top_k = 0;         // <= 0 or >= vocab: all
  float top_p = 1.0f;        // >= 1: off
  float min_p = 0.0f;        // <= 0: off
  uint64_t seed = 0;         // CounterUniform(seed, step), bit-identical to sample/sampler.cc
  uint64_t step = 0;
  int32_t edit_begin = 0, edit_end = 0;  // this row's entries in `edits`
  int32_t mask_row = -1;                  // this row's allowed-token mask in `masks`; -1: none
};

// The sparse logit edits of sample/logit_edit.h (built by BuildLogitEdits on the host).
using inferd::LogitEdit;

// n * vocab * 4 bytes: one fp32 scratch row per row (processed logits, then weights).
size_t SampleRowsWorkspaceBytes(int64_t n, int64_t vocab);
// For each row i of logits [n, vocab] fp32 (read only: the edits go to the workspace):
// out_tokens[i], and out_logprobs[i] (the log_softmax of the chosen token, as
// SampleResult::logprob: of the masked row when the row has a mask; nullptr: skipped).
// params: [n]; edits: indexed by each row's [edit_begin, edit_end) (nullptr when no row has
// edits); masks: [rows, mask_words] allowed-token bitmasks indexed by each row's mask_row
// (nullptr when no row has one; MaskAllows in sample/logit_edit.h). One CTA per row; vocab <=
// 2^21 (cudaErrorInvalidValue otherwise, or when the workspace is too small).
cudaError_t SampleRows(const float* logits, int64_t n, int64_t vocab, const DeviceSampleParams* params,
                       const LogitEdit* edits, const uint32_t* masks, int64_t mask_words, int32_t* out_tokens,
                       float* out_logprobs, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream);

}  // namespace inferd::cuda
