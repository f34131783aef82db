// AVX-512 kernels (compiled with -mavx512f/bw/vl; selected only when the CPU has them).
// One zmm register holds the 16 accumulation lanes, so results equal the AVX2 and generic
// kernels bit for bit.
#include "backend/cpu/avx512_intrin.h"

#include <cstring>

#include "backend/cpu/kernels.h"
#include "backend/cpu/prefetch.h"

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

inline __m512 HalfToPs(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _mm512_set1_ps(_cvtsh_ss(h));
}

// Sixteen unsigned nibbles / signed bytes widened to floats.
inline __m512 U8ToPs(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)); }
inline __m512 I8ToPs(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v)); }

// The 32 weights of block `blk` of a row, as the dequantizers form them (d * q (+ m); the
// products are exact in fp32).
template <GgmlType kType>
inline void LoadBlock(const uint8_t* row, int64_t blk, __m512& w0, __m512& w1) {
  const __m128i low4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
  if constexpr (kType == GgmlType::kQ4_1) {
    const uint8_t* p = row + blk * 20;
    const __m512 d = HalfToPs(p), m = HalfToPs(p + 2);
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 4));
    w0 = _mm512_add_ps(_mm512_mul_ps(d, U8ToPs(_mm_and_si128(q, low4))), m);
    w1 = _mm512_add_ps(_mm512_mul_ps(d, U8ToPs(_mm_and_si128(_mm_srli_epi16(q, 4), low4))), m);
  } else if constexpr (kType == GgmlType::kQ4_0) {
    const uint8_t* p = row + blk * 18;
    const __m512 d = HalfToPs(p);
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
    w0 = _mm512_mul_ps(d, I8ToPs(_mm_sub_epi8(_mm_and_si128(q, low4), eight)));
    w1 = _mm512_mul_ps(d, I8ToPs(_mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), low4), eight)));
  } else if constexpr (kType == GgmlType::kQ8_0) {
    const uint8_t* p = row + blk * 34;
    const __m512 d = HalfToPs(p);
    w0 = _mm512_mul_ps(d, I8ToPs(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2))));
    w1 = _mm512_mul_ps(d, I8ToPs(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 18))));
  } else if constexpr (kType == GgmlType::kF16) {
    const uint8_t* p = row + blk * 64;
    w0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    w1 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)));
  } else {  // kBF16: bf16 -> fp32 is a 16-bit shift
    const uint8_t* p = row + blk * 64;
    w0 = _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
    w1 = _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32))), 16));
  }
}

// Lane l accumulates elements k = l (mod 16) in increasing k, exactly as DotTile does over
// a dequantized row: within a 32-element block, elements 0..15 then 16..31. The weights
// are formed once per block for all NT tokens. NR rows run side by side so that the FMA
// chains of different rows overlap (one row's chain alone is latency-bound); each row
// keeps its order.
template <GgmlType kType, int NT, int NR>
void DotQuantBlocks(const uint8_t* s, size_t row_bytes, const float* x, int64_t ldx, int64_t k, float* out,
                    int64_t ldo) {
  __m512 acc[NT][NR];
  for (auto& t : acc)
    for (auto& a : t) a = _mm512_setzero_ps();
  const int64_t nb = k / 32;
  const int64_t kBlockBytes = static_cast<int64_t>(GgmlRowSize(kType, 32));
  for (int64_t blk = 0; blk < nb; ++blk) {
    const int64_t b = blk * 32;
    // Rows are contiguous: together the NR streams prefetch every byte ahead.
    for (int r = 0; r < NR; ++r) PrefetchAhead(s + r * row_bytes + blk * kBlockBytes, 64);
    __m512 w0[NR], w1[NR];
    for (int r = 0; r < NR; ++r) LoadBlock<kType>(s + r * row_bytes, blk, w0[r], w1[r]);
    for (int t = 0; t < NT; ++t) {
      const __m512 x0 = _mm512_loadu_ps(x + t * ldx + b), x1 = _mm512_loadu_ps(x + t * ldx + b + 16);
      for (int r = 0; r < NR; ++r) {
        acc[t][r] = _mm512_fmadd_ps(x0, w0[r], acc[t][r]);
        acc[t][r] = _mm512_fmadd_ps(x1, w1[r], acc[t][r]);
      }
    }
  }
  for (int t = 0; t < NT; ++t)
    for (int r = 0; r < NR; ++r) out[t * ldo + r] = Reduce(acc[t][r]);
}

template <GgmlType kType, int NT>
void DotQuantRows(const uint8_t* s, size_t row_bytes, int nr, const float* x, int64_t ldx, int64_t k, float* out,
                  int64_t ldo) {
  switch (nr) {
    case 1: return DotQuantBlocks<kType, NT, 1>(s, row_bytes, x, ldx, k, out, ldo);
    case 2: return DotQuantBlocks<kType, NT, 2>(s, row_bytes, x, ldx, k, out, ldo);
    case 3: return DotQuantBlocks<kType, NT, 3>(s, row_bytes, x, ldx, k, out, ldo);
    default: return DotQuantBlocks<kType, NT, 4>(s, row_bytes, x, ldx, k, out, ldo);
  }
}

template <GgmlType kType>
void DotQuantType(const uint8_t* s, size_t row_bytes, int nr, const float* x, int64_t ldx, int nt, int64_t k,
                  float* out, int64_t ldo) {
  switch (nt) {
    case 1: return DotQuantRows<kType, 1>(s, row_bytes, nr, x, ldx, k, out, ldo);
    case 2: return DotQuantRows<kType, 2>(s, row_bytes, nr, x, ldx, k, out, ldo);
    case 3: return DotQuantRows<kType, 3>(s, row_bytes, nr, x, ldx, k, out, ldo);
    default: return DotQuantRows<kType, 4>(s, row_bytes, nr, x, ldx, k, out, ldo);
  }
}

bool DotQuantRow(GgmlType type, const void* rows, size_t row_bytes, int nr, const float* x, int64_t ldx, int nt,
                 int64_t k, float* out, int64_t ldo) {
  if (nr < 1 || nr > kMaxQuantRows || nt < 1 || nt > kMaxQuantTokens) return false;
  const auto* s = static_cast<const uint8_t*>(rows);
  switch (type) {
    case GgmlType::kQ4_0: DotQuantType<GgmlType::kQ4_0>(s, row_bytes, nr, x, ldx, nt, k, out, ldo); return true;
    case GgmlType::kQ4_1: DotQuantType<GgmlType::kQ4_1>(s, row_bytes, nr, x, ldx, nt, k, out, ldo); return true;
    case GgmlType::kQ8_0: DotQuantType<GgmlType::kQ8_0>(s, row_bytes, nr, x, ldx, nt, k, out, ldo); return true;
    case GgmlType::kF16: DotQuantType<GgmlType::kF16>(s, row_bytes, nr, x, ldx, nt, k, out, ldo); return true;
    case GgmlType::kBF16: DotQuantType<GgmlType::kBF16>(s, row_bytes, nr, x, ldx, nt, k, out, ldo); return true;
    default: return false;
  }
}

}  // namespace

const KernelTable* Avx512KernelsImpl() {
  static const KernelTable table{"avx512", 4, 4, DotTile, Dot, Axpy, Avx2DequantRow, DotQuantRow};
  return &table;
}

}  // namespace inferd::cpu
