// AVX2 + FMA + F16C kernels (compiled with those flags; selected only when the CPU has them).
#include <immintrin.h>

#include <cstring>

#include "backend/cpu/kernels.h"

namespace inferd::cpu {
namespace {

inline float Reduce(__m256 v) {
  alignas(32) float l[8];
  _mm256_store_ps(l, v);
  return HorizontalSum8(l);
}

float Dot(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc);
  if (k < n) {
    alignas(32) float ta[8] = {0}, tb[8] = {0};
    std::memcpy(ta, a + k, sizeof(float) * (n - k));
    std::memcpy(tb, b + k, sizeof(float) * (n - k));
    acc = _mm256_fmadd_ps(_mm256_load_ps(ta), _mm256_load_ps(tb), acc);
  }
  return Reduce(acc);
}

// Register tile of up to 4 tokens x 2 weight rows: 8 accumulators.
void DotTile(const float* x, int64_t ldx, int nt, const float* w, int64_t ldw, int nr, int64_t kp,
             float* y, int64_t ldy) {
  if (nt == 4 && nr == 2) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,
           a30 = a00, a31 = a00;
    const float* w0 = w;
    const float* w1 = w + ldw;
    for (int64_t k = 0; k < kp; k += 8) {
      const __m256 v0 = _mm256_loadu_ps(w0 + k), v1 = _mm256_loadu_ps(w1 + k);
      __m256 xv = _mm256_loadu_ps(x + k);
      a00 = _mm256_fmadd_ps(xv, v0, a00);
      a01 = _mm256_fmadd_ps(xv, v1, a01);
      xv = _mm256_loadu_ps(x + ldx + k);
      a10 = _mm256_fmadd_ps(xv, v0, a10);
      a11 = _mm256_fmadd_ps(xv, v1, a11);
      xv = _mm256_loadu_ps(x + 2 * ldx + k);
      a20 = _mm256_fmadd_ps(xv, v0, a20);
      a21 = _mm256_fmadd_ps(xv, v1, a21);
      xv = _mm256_loadu_ps(x + 3 * ldx + k);
      a30 = _mm256_fmadd_ps(xv, v0, a30);
      a31 = _mm256_fmadd_ps(xv, v1, a31);
    }
    y[0] = Reduce(a00); y[1] = Reduce(a01);
    y[ldy] = Reduce(a10); y[ldy + 1] = Reduce(a11);
    y[2 * ldy] = Reduce(a20); y[2 * ldy + 1] = Reduce(a21);
    y[3 * ldy] = Reduce(a30); y[3 * ldy + 1] = Reduce(a31);
    return;
  }
  if (nt == 1 && nr == 2) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    for (int64_t k = 0; k < kp; k += 8) {
      const __m256 xv = _mm256_loadu_ps(x + k);
      a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w + k), a0);
      a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w + ldw + k), a1);
    }
    y[0] = Reduce(a0);
    y[1] = Reduce(a1);
    return;
  }
  for (int t = 0; t < nt; ++t)
    for (int r = 0; r < nr; ++r) y[t * ldy + r] = Dot(x + t * ldx, w + r * ldw, kp);
}

void Axpy(float a, const float* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] = __builtin_fmaf(a, x[i], y[i]);
}

inline float Half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// Q4_0 block: fp16 d, 16 bytes of nibbles; x[i] = d * (lo_i - 8), x[i+16] = d * (hi_i - 8).
void DequantQ4_0(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, src += 18, dst += 32) {
    const __m256 d = _mm256_set1_ps(Half(src));
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2));
    const __m128i lo = _mm_sub_epi8(_mm_and_si128(q, _mm_set1_epi8(0x0F)), _mm_set1_epi8(8));
    const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(0x0F)), _mm_set1_epi8(8));
    _mm256_storeu_ps(dst + 0, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
    _mm256_storeu_ps(dst + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
    _mm256_storeu_ps(dst + 16, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
    _mm256_storeu_ps(dst + 24, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
  }
}

// Q4_1 block: fp16 d, fp16 m, 16 bytes of nibbles; x = d * q + m (multiply, then add).
void DequantQ4_1(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, src += 20, dst += 32) {
    const __m256 d = _mm256_set1_ps(Half(src));
    const __m256 m = _mm256_set1_ps(Half(src + 2));
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 4));
    const __m128i lo = _mm_and_si128(q, _mm_set1_epi8(0x0F));
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(0x0F));
    auto emit = [&](__m128i v, float* out) {
      _mm256_storeu_ps(out, _mm256_add_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))), m));
    };
    emit(lo, dst);
    emit(_mm_srli_si128(lo, 8), dst + 8);
    emit(hi, dst + 16);
    emit(_mm_srli_si128(hi, 8), dst + 24);
  }
}

// Q8_0 block: fp16 d, 32 int8; x = d * q.
void DequantQ8_0(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, src += 34, dst += 32) {
    const __m256 d = _mm256_set1_ps(Half(src));
    for (int j = 0; j < 32; j += 8) {
      const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + 2 + j));
      _mm256_storeu_ps(dst + j, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))));
    }
  }
}

void DequantF16(const uint8_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i))));
  for (; i < n; ++i) dst[i] = Half(src + 2 * i);
}

void DequantBF16(const uint8_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i)));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
  }
  for (; i < n; ++i) {
    uint32_t bits = static_cast<uint32_t>(src[2 * i] | (src[2 * i + 1] << 8)) << 16;
    std::memcpy(dst + i, &bits, 4);
  }
}

void DequantRow(GgmlType type, const void* src, float* dst, int64_t n) {
  const auto* s = static_cast<const uint8_t*>(src);
  switch (type) {
    case GgmlType::kF32: std::memcpy(dst, s, sizeof(float) * n); return;
    case GgmlType::kF16: DequantF16(s, dst, n); return;
    case GgmlType::kBF16: DequantBF16(s, dst, n); return;
    case GgmlType::kQ4_0: DequantQ4_0(s, dst, n); return;
    case GgmlType::kQ4_1: DequantQ4_1(s, dst, n); return;
    case GgmlType::kQ8_0: DequantQ8_0(s, dst, n); return;
    default: DequantizeRow(type, src, dst, n); return;
  }
}

}  // namespace

const KernelTable* Avx2KernelsImpl() {
  static const KernelTable table{"avx2", DotTile, Dot, Axpy, DequantRow};
  return &table;
}

}  // namespace inferd::cpu
