// CPU micro-kernels behind the ops, selected once at start-up by CPU features.
//
// Every implementation of a kernel produces bit-identical results: the generic one
// emulates the 8-lane FMA accumulation and the fixed horizontal-sum order of the AVX2
// one. So results depend neither on the machine's ISA level nor on batch composition.
#pragma once

#include <cstdint>

#include "format/ggml_types.h"

namespace inferd::cpu {

struct KernelTable {
  const char* name;
  // y[t * ldy + r] = dot(x[t * ldx : +kp], w[r * ldw : +kp]) for t < nt (<= 4), r < nr (<= 2).
  // kp is a multiple of 8.
  void (*dot_tile)(const float* x, int64_t ldx, int nt, const float* w, int64_t ldw, int nr,
                   int64_t kp, float* y, int64_t ldy);
  // dot(a, b) over n elements (any n): 8-lane FMA accumulation, tail zero-filled.
  float (*dot)(const float* a, const float* b, int64_t n);
  // y[i] = fma(a, x[i], y[i]) for i < n.
  void (*axpy)(float a, const float* x, float* y, int64_t n);
  // Dequantizes n elements (a whole row) of `type`; fast paths for the common types,
  // otherwise the reference DequantizeRow. Values are identical to the reference.
  void (*dequant_row)(GgmlType type, const void* src, float* dst, int64_t n);
};

const KernelTable& Kernels();
const KernelTable& GenericKernels();
// nullptr when the CPU lacks AVX2+FMA+F16C.
const KernelTable* Avx2Kernels();

// Shared helper: 8 lanes reduced as ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
inline float HorizontalSum8(const float* l) {
  const float a0 = l[0] + l[4], a1 = l[1] + l[5], a2 = l[2] + l[6], a3 = l[3] + l[7];
  return (a0 + a2) + (a1 + a3);
}

}  // namespace inferd::cpu
