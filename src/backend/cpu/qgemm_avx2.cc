// qgemm.h on AVX2 + FMA + F16C (compiled with those flags; selected only when the CPU has
// them). A 16-row group is two ymm halves (rows 0-7, 8-15). vpmaddubsw + vpmaddwd form the
// 4-byte dot products; the integer block sums equal the VNNI kernel's, and the float
// steps are the same operations per lane, so results are bit-identical to it.
#include <immintrin.h>

#include <cstring>

#include "backend/cpu/avx2_util.h"
#include "backend/cpu/prefetch.h"
#include "backend/cpu/qgemm.h"
#include "backend/cpu/quantize_acts.h"

namespace inferd::cpu {
namespace {

using avx2::Bcast32;

inline float HMax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline int32_t HSum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

inline float AbsMax32(const float* x) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < 4; ++i) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + 8 * i), abs_mask));
  return HMax(m);
}

// q of a 32-block at inverse scale id; returns their sum.
inline int32_t QuantizeBlock(const float* xb, float id, int8_t* qb) {
  const __m256 idv = _mm256_set1_ps(id);
  __m256i qi[4];
  for (int i = 0; i < 4; ++i) qi[i] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 8 * i), idv));
  const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(qi[0], qi[1]), _mm256_add_epi32(qi[2], qi[3]));
  // int32 -> int8 in order: packs interleave 128-bit lanes, the permute restores order.
  const __m256i p16a = _mm256_packs_epi32(qi[0], qi[1]), p16b = _mm256_packs_epi32(qi[2], qi[3]);
  const __m256i p8 =
      _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16a, p16b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qb), p8);
  return HSum(sum);
}

void Quantize(const float* x, int64_t ldx, int64_t nt, int64_t k, int64_t block, int8_t* q, float* d, int32_t* s,
              int32_t* e) {
  QuantizeActRows(x, ldx, nt, k, block, q, d, s, e, AbsMax32, QuantizeBlock);
}

// Sum of four u8 x s8 products per int32 lane (no saturation: |u| * |s| * 2 < 2^15 here).
inline __m256i Dot4(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

template <PackedType kType, int NT>
void Tile(const PackedMatrix& w, const uint8_t* grp, const QuantActs& a, int64_t t0, float* y, int64_t ldy) {
  constexpr int kChunks = kType == PackedType::kQ8_0 ? 8 : 4;
  const __m256i low4 = _mm256_set1_epi8(0x0F), flip = _mm256_set1_epi8(static_cast<char>(0x80));
  __m256 acc[NT][2];
  for (auto& t : acc) t[0] = t[1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < w.nb; ++b) {
    const uint8_t* qs = grp + w.qs_offset(b);
    if (NT == 1 && (b & 1) == 0) PrefetchAhead(grp + w.pair(b), static_cast<int>(w.pair_bytes));
    __m256i isum[NT][2];
    for (auto& t : isum) t[0] = t[1] = _mm256_setzero_si256();
    for (int c = 0; c < kChunks; ++c) {
      for (int h = 0; h < 2; ++h) {
        const __m256i wv = _mm256_load_si256(reinterpret_cast<const __m256i*>(qs + 64 * c + 32 * h));
        if constexpr (kType == PackedType::kQ8_0) {
          // u = q + 128: back to signed q, then |q| x (a * sign q) keeps maddubs in range.
          const __m256i qv = _mm256_xor_si256(wv, flip);
          const __m256i aq = _mm256_abs_epi8(qv);
          for (int t = 0; t < NT; ++t) {
            const __m256i av = Bcast32(a.q + (t0 + t) * a.k + b * kQBlock + 4 * c);
            isum[t][h] = _mm256_add_epi32(isum[t][h], Dot4(aq, _mm256_sign_epi8(av, qv)));
          }
        } else {
          const __m256i lo = _mm256_and_si256(wv, low4);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(wv, 4), low4);
          for (int t = 0; t < NT; ++t) {
            const int8_t* aq = a.q + (t0 + t) * a.k + b * kQBlock + 4 * c;
            isum[t][h] = _mm256_add_epi32(isum[t][h], Dot4(lo, Bcast32(aq)));
            isum[t][h] = _mm256_add_epi32(isum[t][h], Dot4(hi, Bcast32(aq + 16)));
          }
        }
      }
    }
    const __m128i* dp = reinterpret_cast<const __m128i*>(grp + w.d_offset(b));
    const __m256 dw[2] = {_mm256_cvtph_ps(_mm_load_si128(dp)), _mm256_cvtph_ps(_mm_load_si128(dp + 1))};
    for (int t = 0; t < NT; ++t) {
      const float da = a.d[(t0 + t) * a.nb + b];
      const int32_t aux = a.aux[(t0 + t) * a.nb + b];
      for (int h = 0; h < 2; ++h) {
        const __m256 scale = _mm256_mul_ps(dw[h], _mm256_set1_ps(da));
        if constexpr (kType == PackedType::kQ4_1) {
          const __m128i* mp = reinterpret_cast<const __m128i*>(grp + w.m_offset(b));
          float dsa;
          std::memcpy(&dsa, &aux, 4);
          acc[t][h] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(isum[t][h]), acc[t][h]);
          acc[t][h] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_load_si128(mp + h)), _mm256_set1_ps(dsa), acc[t][h]);
        } else if constexpr (kType == PackedType::kQ4_0) {
          const __m256i s = _mm256_sub_epi32(isum[t][h], _mm256_set1_epi32(aux));
          acc[t][h] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s), acc[t][h]);
        } else {  // Q8_0: the sign trick gave sum q a directly (= sum u a - 128 s)
          acc[t][h] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(isum[t][h]), acc[t][h]);
        }
      }
    }
  }
  for (int t = 0; t < NT; ++t) {
    _mm256_storeu_ps(y + t * ldy, acc[t][0]);
    _mm256_storeu_ps(y + t * ldy + 8, acc[t][1]);
  }
}

template <PackedType kType>
void GemmType(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt, float* y,
              int64_t ldy) {
  for (int64_t g = 0; g < ng; ++g) {
    const uint8_t* grp = w.group(g0 + g);
    float* yg = y + g * kGroupRows;
    int64_t t = 0;
    for (; t + 4 <= nt; t += 4) Tile<kType, 4>(w, grp, a, t0 + t, yg + t * ldy, ldy);
    switch (nt - t) {
      case 3: Tile<kType, 3>(w, grp, a, t0 + t, yg + t * ldy, ldy); break;
      case 2: Tile<kType, 2>(w, grp, a, t0 + t, yg + t * ldy, ldy); break;
      case 1: Tile<kType, 1>(w, grp, a, t0 + t, yg + t * ldy, ldy); break;
      default: break;
    }
  }
}

void Gemm(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt, float* y,
          int64_t ldy) {
  switch (w.type) {
    case PackedType::kQ4_0: return GemmType<PackedType::kQ4_0>(w, g0, ng, a, t0, nt, y, ldy);
    case PackedType::kQ4_1: return GemmType<PackedType::kQ4_1>(w, g0, ng, a, t0, nt, y, ldy);
    case PackedType::kQ8_0: return GemmType<PackedType::kQ8_0>(w, g0, ng, a, t0, nt, y, ldy);
    case PackedType::kF32:
    case PackedType::kF16:
    case PackedType::kBF16: return GemmFloatAvx2(w, g0, ng, a, t0, nt, y, ldy);  // float panels: fp32 fma either way
    default: return GemmUnitAvx2(w, g0, ng, a, t0, nt, y, ldy);
  }
}

}  // namespace

const QKernels* Avx2QKernelsImpl() {
  static const QKernels k{"avx2", Quantize, Gemm, RoundBf16Rows, false};
  return &k;
}

}  // namespace inferd::cpu
