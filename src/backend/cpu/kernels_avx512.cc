// AVX-512 kernels (compiled with -mavx512f/bw/vl; selected only when the CPU has them).
// One zmm register holds the 16 accumulation lanes, so results equal the AVX2 and generic
// kernels bit for bit.
#include <immintrin.h>

#include <cstring>

#include "backend/cpu/kernels.h"

namespace inferd::cpu {
namespace {

inline float Reduce(__m512 v) {
  alignas(64) float l[16];
  _mm512_store_ps(l, v);
  return HorizontalSum16(l);
}

float Dot(const float* a, const float* b, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), acc);
  if (k < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - k)) - 1);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + k), _mm512_maskz_loadu_ps(m, b + k), acc);
  }
  return Reduce(acc);
}

// Register tile of up to 4 tokens x 4 weight rows: 16 zmm accumulators.
void DotTile(const float* x, int64_t ldx, int nt, const float* w, int64_t ldw, int nr, int64_t kp,
             float* y, int64_t ldy) {
  if (nt == 4 && nr == 4) {
    __m512 acc[4][4];
    for (auto& row : acc)
      for (auto& a : row) a = _mm512_setzero_ps();
    for (int64_t k = 0; k < kp; k += 16) {
      const __m512 w0 = _mm512_loadu_ps(w + k), w1 = _mm512_loadu_ps(w + ldw + k),
                   w2 = _mm512_loadu_ps(w + 2 * ldw + k), w3 = _mm512_loadu_ps(w + 3 * ldw + k);
      for (int t = 0; t < 4; ++t) {
        const __m512 xv = _mm512_loadu_ps(x + t * ldx + k);
        acc[t][0] = _mm512_fmadd_ps(xv, w0, acc[t][0]);
        acc[t][1] = _mm512_fmadd_ps(xv, w1, acc[t][1]);
        acc[t][2] = _mm512_fmadd_ps(xv, w2, acc[t][2]);
        acc[t][3] = _mm512_fmadd_ps(xv, w3, acc[t][3]);
      }
    }
    for (int t = 0; t < 4; ++t)
      for (int r = 0; r < 4; ++r) y[t * ldy + r] = Reduce(acc[t][r]);
    return;
  }
  if (nt == 1 && nr == 4) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t k = 0; k < kp; k += 16) {
      const __m512 xv = _mm512_loadu_ps(x + k);
      a0 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w + k), a0);
      a1 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w + ldw + k), a1);
      a2 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w + 2 * ldw + k), a2);
      a3 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w + 3 * ldw + k), a3);
    }
    y[0] = Reduce(a0);
    y[1] = Reduce(a1);
    y[2] = Reduce(a2);
    y[3] = Reduce(a3);
    return;
  }
  for (int t = 0; t < nt; ++t)
    for (int r = 0; r < nr; ++r) y[t * ldy + r] = Dot(x + t * ldx, w + r * ldw, kp);
}

void Axpy(float a, const float* x, float* y, int64_t n) {
  const __m512 av = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] = __builtin_fmaf(a, x[i], y[i]);
}

}  // namespace

const KernelTable* Avx512KernelsImpl() {
  static const KernelTable table{"avx512", 4, 4, DotTile, Dot, Axpy, Avx2DequantRow};
  return &table;
}

}  // namespace inferd::cpu
