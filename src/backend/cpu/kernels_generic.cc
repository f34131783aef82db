// Portable kernels. They reproduce the SIMD kernels' arithmetic exactly: sixteen
// independent FMA lanes over k, then HorizontalSum16.
#include <cmath>
#include <cstring>

#include "backend/cpu/kernels.h"

namespace inferd::cpu {
namespace {

float Dot(const float* a, const float* b, int64_t n) {
  float lane[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int l = 0; l < kLanes; ++l) lane[l] = std::fma(a[k + l], b[k + l], lane[l]);
  if (k < n) {  // zero-filled tail, as the SIMD kernels load it
    for (int l = 0; l < kLanes; ++l) {
      const bool in = k + l < n;
      lane[l] = std::fma(in ? a[k + l] : 0.0f, in ? b[k + l] : 0.0f, lane[l]);
    }
  }
  return HorizontalSum16(lane);
}

void DotTile(const float* x, int64_t ldx, int nt, const float* w, int64_t ldw, int nr, int64_t kp,
             float* y, int64_t ldy) {
  for (int t = 0; t < nt; ++t)
    for (int r = 0; r < nr; ++r) y[t * ldy + r] = Dot(x + t * ldx, w + r * ldw, kp);
}

void Axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::fma(a, x[i], y[i]);
}

void DequantRow(GgmlType type, const void* src, float* dst, int64_t n) {
  DequantizeRow(type, src, dst, n);
}

}  // namespace

const KernelTable& GenericKernels() {
  static const KernelTable table{"generic", 4, 2, DotTile, Dot, Axpy, DequantRow, nullptr};
  return table;
}

}  // namespace inferd::cpu
