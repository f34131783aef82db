// AVX2 + FMA + F16C kernels (compiled with those flags; selected only when the CPU has them).
#include <immintrin.h>

#include <cstring>

#include "backend/cpu/kernels.h"
#include "backend/cpu/prefetch.h"

namespace inferd::cpu {
namespace {

// Lanes 0-7 live in `lo`, lanes 8-15 in `hi` (kLanes = 16, as the other kernels).
inline float Reduce(__m256 lo, __m256 hi) {
  alignas(32) float l[16];
  _mm256_store_ps(l, lo);
  _mm256_store_ps(l + 8, hi);
  return HorizontalSum16(l);
}

float Dot(const float* a, const float* b, int64_t n) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    lo = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), lo);
    hi = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8), _mm256_loadu_ps(b + k + 8), hi);
  }
  if (k < n) {
    alignas(32) float ta[16] = {0}, tb[16] = {0};
    std::memcpy(ta, a + k, sizeof(float) * (n - k));
    std::memcpy(tb, b + k, sizeof(float) * (n - k));
    lo = _mm256_fmadd_ps(_mm256_load_ps(ta), _mm256_load_ps(tb), lo);
    hi = _mm256_fmadd_ps(_mm256_load_ps(ta + 8), _mm256_load_ps(tb + 8), hi);
  }
  return Reduce(lo, hi);
}

// Register tile of up to 2 tokens x 2 weight rows, two accumulators (lo/hi) each.
void DotTile(const float* x, int64_t ldx, int nt, const float* w, int64_t ldw, int nr, int64_t kp,
             float* y, int64_t ldy) {
  if (nt == 2 && nr == 2) {
    __m256 a00l = _mm256_setzero_ps(), a00h = a00l, a01l = a00l, a01h = a00l;
    __m256 a10l = a00l, a10h = a00l, a11l = a00l, a11h = a00l;
    const float* w0 = w;
    const float* w1 = w + ldw;
    const float* x0 = x;
    const float* x1 = x + ldx;
    for (int64_t k = 0; k < kp; k += 16) {
      const __m256 w0l = _mm256_loadu_ps(w0 + k), w0h = _mm256_loadu_ps(w0 + k + 8);
      const __m256 w1l = _mm256_loadu_ps(w1 + k), w1h = _mm256_loadu_ps(w1 + k + 8);
      __m256 xl = _mm256_loadu_ps(x0 + k), xh = _mm256_loadu_ps(x0 + k + 8);
      a00l = _mm256_fmadd_ps(xl, w0l, a00l);
      a00h = _mm256_fmadd_ps(xh, w0h, a00h);
      a01l = _mm256_fmadd_ps(xl, w1l, a01l);
      a01h = _mm256_fmadd_ps(xh, w1h, a01h);
      xl = _mm256_loadu_ps(x1 + k);
      xh = _mm256_loadu_ps(x1 + k + 8);
      a10l = _mm256_fmadd_ps(xl, w0l, a10l);
      a10h = _mm256_fmadd_ps(xh, w0h, a10h);
      a11l = _mm256_fmadd_ps(xl, w1l, a11l);
      a11h = _mm256_fmadd_ps(xh, w1h, a11h);
    }
    y[0] = Reduce(a00l, a00h);
    y[1] = Reduce(a01l, a01h);
    y[ldy] = Reduce(a10l, a10h);
    y[ldy + 1] = Reduce(a11l, a11h);
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

// Small-batch path for the float types (KernelTable::dot_quant_row): a 16-element chunk of
// NR rows is widened to fp32 in registers once for all NT tokens, and accumulated into the
// lo / hi lanes in increasing k exactly as DotTile does over a dequantized row, so the result
// is bit-identical to the buffered path (and to the AVX-512 and generic kernels).
template <GgmlType kType>
inline void LoadChunk(const uint8_t* row, int64_t k, __m256& lo, __m256& hi) {
  if constexpr (kType == GgmlType::kF32) {
    lo = _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
    hi = _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k + 8);
  } else if constexpr (kType == GgmlType::kF16) {
    lo = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k)));
    hi = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k + 16)));
  } else {  // kBF16: a 16-bit shift
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * k));
    lo = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(v)), 16));
    hi = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(v, 1)), 16));
  }
}

template <GgmlType kType, int NT, int NR>
void DotFloatRows(const uint8_t* rows, size_t row_bytes, const float* x, int64_t ldx, int64_t k, float* out,
                  int64_t ldo) {
  __m256 lo[NT][NR], hi[NT][NR];
  for (int t = 0; t < NT; ++t)
    for (int r = 0; r < NR; ++r) lo[t][r] = hi[t][r] = _mm256_setzero_ps();
  constexpr int64_t kElem = kType == GgmlType::kF32 ? 4 : 2;
  for (int64_t c = 0; c < k; c += 16) {
    if ((c * kElem) % 64 == 0) {  // rows are contiguous: together the NR streams prefetch all bytes ahead
      for (int r = 0; r < NR; ++r) PrefetchAhead(rows + r * row_bytes + c * kElem, 64);
    }
    __m256 wl[NR], wh[NR];
    for (int r = 0; r < NR; ++r) LoadChunk<kType>(rows + r * row_bytes, c, wl[r], wh[r]);
    for (int t = 0; t < NT; ++t) {
      const __m256 xl = _mm256_loadu_ps(x + t * ldx + c), xh = _mm256_loadu_ps(x + t * ldx + c + 8);
      for (int r = 0; r < NR; ++r) {
        lo[t][r] = _mm256_fmadd_ps(xl, wl[r], lo[t][r]);
        hi[t][r] = _mm256_fmadd_ps(xh, wh[r], hi[t][r]);
      }
    }
  }
  for (int t = 0; t < NT; ++t)
    for (int r = 0; r < NR; ++r) out[t * ldo + r] = Reduce(lo[t][r], hi[t][r]);
}

// NT x NR <= 4 register tiles (two ymm accumulators each) over the caller's nt x nr.
template <GgmlType kType>
void DotFloatType(const uint8_t* s, size_t row_bytes, int nr, const float* x, int64_t ldx, int nt, int64_t k,
                  float* out, int64_t ldo) {
  for (int t = 0; t < nt;) {
    const int tt = nt - t >= 4 ? 4 : nt - t >= 2 ? 2 : 1;
    const float* xt = x + t * ldx;
    float* ot = out + t * ldo;
    for (int r = 0; r < nr;) {
      const uint8_t* sr = s + r * row_bytes;
      if (tt == 1 && nr - r >= 4) {
        DotFloatRows<kType, 1, 4>(sr, row_bytes, xt, ldx, k, ot + r, ldo), r += 4;
      } else if (tt <= 2 && nr - r >= 2) {
        if (tt == 1) DotFloatRows<kType, 1, 2>(sr, row_bytes, xt, ldx, k, ot + r, ldo);
        else DotFloatRows<kType, 2, 2>(sr, row_bytes, xt, ldx, k, ot + r, ldo);
        r += 2;
      } else {
        if (tt == 4) DotFloatRows<kType, 4, 1>(sr, row_bytes, xt, ldx, k, ot + r, ldo);
        else if (tt == 2) DotFloatRows<kType, 2, 1>(sr, row_bytes, xt, ldx, k, ot + r, ldo);
        else DotFloatRows<kType, 1, 1>(sr, row_bytes, xt, ldx, k, ot + r, ldo);
        r += 1;
      }
    }
    t += tt;
  }
}

bool DotQuantRow(GgmlType type, const void* rows, size_t row_bytes, int nr, const float* x, int64_t ldx, int nt,
                 int64_t k, float* out, int64_t ldo) {
  if (nr < 1 || nr > kMaxQuantRows || nt < 1 || nt > kMaxQuantTokens || k % 16 != 0) return false;
  const auto* s = static_cast<const uint8_t*>(rows);
  switch (type) {
    case GgmlType::kF32: DotFloatType<GgmlType::kF32>(s, row_bytes, nr, x, ldx, nt, k, out, ldo); return true;
    case GgmlType::kF16: DotFloatType<GgmlType::kF16>(s, row_bytes, nr, x, ldx, nt, k, out, ldo); return true;
    case GgmlType::kBF16: DotFloatType<GgmlType::kBF16>(s, row_bytes, nr, x, ldx, nt, k, out, ldo); return true;
    default: return false;
  }
}

}  // namespace

void Avx2DequantRow(GgmlType type, const void* src, float* dst, int64_t n) {
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

const KernelTable* Avx2KernelsImpl() {
  static const KernelTable table{"avx2", 2, 2, DotTile, Dot, Axpy, Avx2DequantRow, DotQuantRow};
  return &table;
}

}  // namespace inferd::cpu
