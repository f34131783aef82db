// CPU micro-kernels behind the ops, selected once at start-up by CPU features.
//
// Every implementation of a kernel produces bit-identical results. Dot products use
// kLanes = 16 independent FMA accumulation lanes over k (lane l takes elements
// k ≡ l mod 16), then a fixed horizontal-sum order: one zmm register with AVX-512, two
// ymm registers with AVX2, sixteen scalars in the generic code. So results depend
// neither on the machine's ISA level nor on batch composition.
#pragma once

#include <cstdint>

#include "format/ggml_types.h"

namespace inferd::cpu {

constexpr int kLanes = 16;
constexpr int kMaxQuantTokens = 4;  // tokens per dot_quant_row call
constexpr int kMaxQuantRows = 4;    // rows per dot_quant_row call

struct KernelTable {
  const char* name;
  int token_tile, row_tile;  // register tile of dot_tile (nt <= token_tile, nr <= row_tile)
  // y[t * ldy + r] = dot(x[t * ldx : +kp], w[r * ldw : +kp]) for t < nt, r < nr.
  // kp is a multiple of kLanes.
  void (*dot_tile)(const float* x, int64_t ldx, int nt, const float* w, int64_t ldw, int nr,
                   int64_t kp, float* y, int64_t ldy);
  // dot(a, b) over n elements (any n): kLanes-lane FMA accumulation, tail zero-filled.
  float (*dot)(const float* a, const float* b, int64_t n);
  // y[i] = fma(a, x[i], y[i]) for i < n.
  void (*axpy)(float a, const float* x, float* y, int64_t n);
  // Dequantizes n elements (a whole row) of `type`; fast paths for the common types,
  // otherwise the reference DequantizeRow. Values are identical to the reference.
  void (*dequant_row)(GgmlType type, const void* src, float* dst, int64_t n);
  // Small-batch fast path: out[t * ldo + r] = dot(x[t * ldx : +k], dequant(row r)) for
  // t < nt <= kMaxQuantTokens and r < nr <= kMaxQuantRows (row r at rows + r * row_bytes),
  // with the same lanes and order as dot_tile on dequantized rows (so results are
  // bit-identical), dequantizing in registers once for all nt tokens (Q4_0, Q4_1, Q8_0, F16,
  // BF16). Returns false for
  // types it does not handle; may be nullptr. k % 32 == 0.
  bool (*dot_quant_row)(GgmlType type, const void* rows, size_t row_bytes, int nr, const float* x, int64_t ldx,
                        int nt, int64_t k, float* out, int64_t ldo);
};

const KernelTable& Kernels();
const KernelTable& GenericKernels();
// nullptr when the CPU lacks AVX2+FMA+F16C.
const KernelTable* Avx2Kernels();
// nullptr when the CPU lacks AVX-512F/BW/VL (or AVX2+FMA+F16C).
const KernelTable* Avx512Kernels();

// The AVX2 row dequantizer (fast paths for f16/bf16/q4_0/q4_1/q8_0), shared with AVX-512.
void Avx2DequantRow(GgmlType type, const void* src, float* dst, int64_t n);

// 16 lanes reduced as: a[i] = l[i] + l[i + 8]; then ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)).
inline float HorizontalSum16(const float* l) {
  float a[8];
  for (int i = 0; i < 8; ++i) a[i] = l[i] + l[i + 8];
  const float b0 = a[0] + a[4], b1 = a[1] + a[5], b2 = a[2] + a[6], b3 = a[3] + a[7];
  return (b0 + b2) + (b1 + b3);
}

}  // namespace inferd::cpu
