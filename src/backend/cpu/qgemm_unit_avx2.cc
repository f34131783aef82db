// qgemm.h's unit types on AVX2 + FMA + F16C. A 16-row group is two ymm halves (rows 0-7,
// 8-15), a lane one row's 4 bytes. Per block and half the codes of the 8 sub-vectors (4
// elements per row each) are rebuilt from the planes with shifts and masks, multiplied by
// broadcast activations with vpmaddubsw, summed in int16 while that cannot overflow, and
// scaled per sub-block by vpmaddwd with the row's sc in place of the usual vector of ones.
// The integers equal the reference's exactly and the float steps are the same operations,
// so the results are bit-identical to GemmUnitGeneric. CoarseActs types shift a block's
// integer by its e_b (the sums in s16 come scaled), keep the unit's I and J per lane and take
// the float steps once per unit.
#include <immintrin.h>

#include <cstring>

#include "backend/cpu/avx2_util.h"
#include "backend/cpu/prefetch.h"
#include "backend/cpu/qgemm.h"
#include "format/ggml_int.h"

namespace inferd::cpu {
namespace {

using avx2::Bcast32;

inline __m256i Load(const uint8_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }

// Moves bit `from` of every byte to bit `to` (both < 8; the other bits are masked later).
template <int kFrom, int kTo>
inline __m256i MoveBits(__m256i v) {
  if constexpr (kFrom < kTo) return _mm256_slli_epi16(v, kTo - kFrom);
  else if constexpr (kFrom > kTo) return _mm256_srli_epi16(v, kFrom - kTo);
  else return v;
}

// The codes of sub-vector k (elements 4k..4k+3 of every row of half h) of block bi.
template <PackedType kType, int K>
inline __m256i Code(const uint8_t* unit, int bi, int h) {
  constexpr UnitLayout L = UnitLayoutOf(kType);
  const uint8_t* lo = unit + L.lo_off(bi) + 32 * h;
  const uint8_t* hi = unit + L.hi_off(bi) + 32 * h;
  __m256i c;
  if constexpr (L.code == CodeKind::kL2 || L.code == CodeKind::kL2H1) {
    c = _mm256_and_si256(_mm256_srli_epi16(Load(lo + 64 * (K / 4)), 2 * (K % 4)), _mm256_set1_epi8(3));
  } else {
    const __m256i v = Load(lo + 64 * (K % 4));
    c = _mm256_and_si256(K < 4 ? v : _mm256_srli_epi16(v, 4), _mm256_set1_epi8(15));
  }
  if constexpr (L.code == CodeKind::kP4H1) {
    c = _mm256_or_si256(c, _mm256_and_si256(MoveBits<K, 4>(Load(hi)), _mm256_set1_epi8(0x10)));
  } else if constexpr (L.code == CodeKind::kL2H1) {
    c = _mm256_or_si256(c, _mm256_and_si256(MoveBits<K, 2>(Load(hi)), _mm256_set1_epi8(0x04)));
  } else if constexpr (L.code == CodeKind::kP4H2) {
    c = _mm256_or_si256(c, _mm256_and_si256(MoveBits<2 * (K % 4), 4>(Load(hi + 64 * (K / 4))), _mm256_set1_epi8(0x30)));
  }
  if constexpr (L.lut) {
    const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4Values)));
    c = _mm256_shuffle_epi8(lut, c);
  }
  return c;
}

template <PackedType kType, int... K>
inline void Codes(const uint8_t* unit, int bi, int h, __m256i* cv, std::integer_sequence<int, K...>) {
  ((cv[K] = Code<kType, K>(unit, bi, h)), ...);
}

// Per-lane int16 pairs: sc0 = (sc_0, sc_0), sc1 = (sc_1, sc_1), scp = (sc_0, sc_1); mp = (m_0, m_1).
template <PackedType kType>
inline void Scales(const uint8_t* unit, int bi, int h, __m256i* sc0, __m256i* sc1, __m256i* scp, __m256i* mp) {
  constexpr UnitLayout L = UnitLayoutOf(kType);
  const uint8_t* s = unit + L.sc_off + L.sc_bytes * bi;
  auto dup = [](__m256i x) {  // the low int16 of x (sign-extended int32) in both halves
    return _mm256_or_si256(_mm256_and_si256(x, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(x, 16));
  };
  if constexpr (L.sc_bytes == 0) {
    *sc0 = *sc1 = *scp = _mm256_set1_epi16(1);
  } else if constexpr (L.sc_bytes == 16) {
    *sc0 = *sc1 = *scp = dup(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s + 8 * h))));
  } else {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 16 * h));
    if constexpr (L.sc_min_nibbles) {
      const __m128i m4 = _mm_set1_epi8(15);
      *scp = _mm256_cvtepu8_epi16(_mm_and_si128(raw, m4));
      *mp = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), m4));
    } else {
      *scp = _mm256_cvtepi8_epi16(raw);
    }
    const __m256i low = _mm256_set1_epi32(0xFFFF);
    *sc0 = _mm256_or_si256(_mm256_and_si256(*scp, low), _mm256_slli_epi32(*scp, 16));
    *sc1 = _mm256_or_si256(_mm256_srli_epi32(*scp, 16), _mm256_andnot_si256(low, *scp));
  }
  if constexpr (L.m_bytes) {
    *mp = dup(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(unit + L.m_off + 16 * bi + 8 * h))));
  }
}

// One token (decode): both halves of a group per block, so the group streams once.
template <PackedType kType>
void TileOneToken(const PackedMatrix& w, const uint8_t* grp, const QuantActs& a, int64_t t0, float* y) {
  constexpr UnitLayout L = UnitLayoutOf(kType);
  // vpmaddubsw results summed in int16 before one vpmaddwd: |u| <= 31 gives 4 x 2 x 31 x 127
  // < 2^15; 6-bit codes 2 sub-vectors; signed LUT values (sign trick, up to 127) only one.
  constexpr int P = L.lut ? 1 : L.code == CodeKind::kP4H2 ? 2 : 4;
  constexpr bool kCoarse = CoarseActs(kType);
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t u = 0; u < w.num_units; ++u) {
    const uint8_t* unit = grp + u * L.unit_bytes;
    __m256 dunit[2], dmin[2];
    __m256i iu[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()}, ju[2] = {iu[0], iu[0]};  // kCoarse
    if constexpr (!L.d_per_block) {
      for (int h = 0; h < 2; ++h) {
        dunit[h] = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(unit + L.d_off + 16 * h)));
        if constexpr (L.int_min)
          dmin[h] = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(unit + L.dmin_off + 16 * h)));
      }
    }
    const int nbi = static_cast<int>(std::min<int64_t>(L.blocks, w.nb - u * L.blocks));
    for (int bi = 0; bi < nbi; ++bi) {
      const int64_t b = u * L.blocks + bi;
      constexpr int kShare = (L.unit_bytes / L.blocks + 63) / 64 * 64;  // a block's share of the unit
      PrefetchAhead(unit + bi * kShare, kShare);
      for (int h = 0; h < 2; ++h) {
        __m256i cv[8];
        Codes<kType>(unit, bi, h, cv, std::make_integer_sequence<int, 8>{});
        __m256i sc0, sc1, scp, mp = _mm256_setzero_si256();
        Scales<kType>(unit, bi, h, &sc0, &sc1, &scp, &mp);
        __m256 dw, fmin = _mm256_setzero_ps();
        if constexpr (L.d_per_block) {
          dw = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(unit + L.d_off + 32 * bi + 16 * h)));
          if constexpr (L.fp_min)
            fmin = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(unit + L.dmin_off + 32 * bi + 16 * h)));
        } else {
          dw = dunit[h];
        }
        const int8_t* aq = a.q + t0 * a.k + b * kQBlock;
        __m256i isum = _mm256_setzero_si256();
        for (int k0 = 0; k0 < 8; k0 += P) {
          __m256i p16 = _mm256_setzero_si256();
          for (int k = k0; k < k0 + P; ++k) {
            const __m256i av = Bcast32(aq + 4 * k);
            const __m256i d = L.lut ? _mm256_maddubs_epi16(_mm256_abs_epi8(cv[k]), _mm256_sign_epi8(av, cv[k]))
                                    : _mm256_maddubs_epi16(cv[k], av);
            p16 = k == k0 ? d : _mm256_add_epi16(p16, d);
          }
          isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p16, k0 < 4 ? sc0 : sc1));
        }
        const __m256i s01 = _mm256_set1_epi32(a.s16[t0 * a.nb + b]);
        if constexpr (kCoarse) isum = _mm256_sllv_epi32(isum, _mm256_set1_epi32(a.e[t0 * a.nb + b]));
        if constexpr (L.z_shift >= 0) isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(_mm256_madd_epi16(scp, s01), L.z_shift));
        if constexpr (kCoarse) {
          iu[h] = _mm256_add_epi32(iu[h], isum);
          if constexpr (L.int_min) ju[h] = _mm256_add_epi32(ju[h], _mm256_madd_epi16(mp, s01));
          continue;
        }
        const __m256 da = _mm256_set1_ps(a.d[t0 * a.nb + b]);
        acc[h] = _mm256_fmadd_ps(_mm256_mul_ps(dw, da), _mm256_cvtepi32_ps(isum), acc[h]);
        if constexpr (L.int_min) {
          const __m256 j = _mm256_cvtepi32_ps(_mm256_madd_epi16(mp, s01));
          acc[h] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin[h], da), j, acc[h]);
        }
        if constexpr (L.fp_min) {
          float dsa;
          std::memcpy(&dsa, &a.aux[t0 * a.nb + b], 4);
          acc[h] = _mm256_fmadd_ps(fmin, _mm256_set1_ps(dsa), acc[h]);
        }
      }
    }
    if constexpr (kCoarse) {
      const __m256 da = _mm256_set1_ps(a.d[t0 * w.num_units + u]);
      for (int h = 0; h < 2; ++h) {
        acc[h] = _mm256_fmadd_ps(_mm256_mul_ps(dunit[h], da), _mm256_cvtepi32_ps(iu[h]), acc[h]);
        if constexpr (L.int_min) {
          acc[h] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin[h], da), _mm256_cvtepi32_ps(ju[h]), acc[h]);
        }
      }
    }
  }
  _mm256_storeu_ps(y, acc[0]);
  _mm256_storeu_ps(y + 8, acc[1]);
}

// Several tokens (prefill, batched decode): one half (8 rows) at a time, so that the
// accumulators, int32 sums and int16 partial sums of NT tokens stay in the 16 ymm registers;
// each code vector is built once and used by all NT tokens. The group (a few KB to tens of
// KB) stays in L1/L2 across the halves and token tiles.
template <PackedType kType, int NT>
void TileHalf(const PackedMatrix& w, const uint8_t* grp, int h, const QuantActs& a, int64_t t0, float* y,
              int64_t ldy) {
  constexpr UnitLayout L = UnitLayoutOf(kType);
  constexpr int P = L.lut ? 1 : L.code == CodeKind::kP4H2 ? 2 : 4;  // as in TileOneToken
  constexpr bool kCoarse = CoarseActs(kType);
  __m256 acc[NT];
  for (auto& v : acc) v = _mm256_setzero_ps();
  for (int64_t u = 0; u < w.num_units; ++u) {
    const uint8_t* unit = grp + u * L.unit_bytes;
    __m256i isum[NT], iu[NT], ju[NT];  // a block's I; (kCoarse) the unit's I and J
    if constexpr (kCoarse) {
      for (int t = 0; t < NT; ++t) iu[t] = ju[t] = _mm256_setzero_si256();
    }
    __m256 dunit = _mm256_setzero_ps(), dmin = _mm256_setzero_ps();
    if constexpr (!L.d_per_block) {
      dunit = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(unit + L.d_off + 16 * h)));
      if constexpr (L.int_min)
        dmin = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(unit + L.dmin_off + 16 * h)));
    }
    const int nbi = static_cast<int>(std::min<int64_t>(L.blocks, w.nb - u * L.blocks));
    for (int bi = 0; bi < nbi; ++bi) {
      const int64_t b = u * L.blocks + bi;
      __m256i sc0, sc1, scp, mp = _mm256_setzero_si256();
      Scales<kType>(unit, bi, h, &sc0, &sc1, &scp, &mp);
      const int8_t* aq[NT];
      for (int t = 0; t < NT; ++t) aq[t] = a.q + (t0 + t) * a.k + b * kQBlock;
      auto group_of = [&](auto k0_tag) {
        constexpr int k0 = decltype(k0_tag)::value;
        __m256i p16[NT];
        auto one = [&](auto k_tag) {
          constexpr int k = decltype(k_tag)::value;
          const __m256i c = Code<kType, k>(unit, bi, h);
          const __m256i ac = L.lut ? _mm256_abs_epi8(c) : c;
#pragma GCC unroll 8
          for (int t = 0; t < NT; ++t) {
            const __m256i av = Bcast32(aq[t] + 4 * k);
            const __m256i d = L.lut ? _mm256_maddubs_epi16(ac, _mm256_sign_epi8(av, c)) : _mm256_maddubs_epi16(ac, av);
            p16[t] = k == k0 ? d : _mm256_add_epi16(p16[t], d);
          }
        };
        [&]<int... I>(std::integer_sequence<int, I...>) {
          (one(std::integral_constant<int, k0 + I>{}), ...);
        }(std::make_integer_sequence<int, P>{});
#pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          const __m256i m = _mm256_madd_epi16(p16[t], k0 < 4 ? sc0 : sc1);
          isum[t] = k0 == 0 ? m : _mm256_add_epi32(isum[t], m);
        }
      };
      [&]<int... G>(std::integer_sequence<int, G...>) {
        (group_of(std::integral_constant<int, G * P>{}), ...);
      }(std::make_integer_sequence<int, 8 / P>{});
      __m256 dw = dunit, fmin = _mm256_setzero_ps();
      if constexpr (L.d_per_block) {
        dw = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(unit + L.d_off + 32 * bi + 16 * h)));
        if constexpr (L.fp_min)
          fmin = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(unit + L.dmin_off + 32 * bi + 16 * h)));
      }
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) {
        const __m256i s01 = _mm256_set1_epi32(a.s16[(t0 + t) * a.nb + b]);
        __m256i is = isum[t];
        if constexpr (kCoarse) is = _mm256_sllv_epi32(is, _mm256_set1_epi32(a.e[(t0 + t) * a.nb + b]));
        if constexpr (L.z_shift >= 0) is = _mm256_sub_epi32(is, _mm256_slli_epi32(_mm256_madd_epi16(scp, s01), L.z_shift));
        if constexpr (kCoarse) {
          iu[t] = _mm256_add_epi32(iu[t], is);
          if constexpr (L.int_min) ju[t] = _mm256_add_epi32(ju[t], _mm256_madd_epi16(mp, s01));
          continue;
        }
        const __m256 da = _mm256_set1_ps(a.d[(t0 + t) * a.nb + b]);
        acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, da), _mm256_cvtepi32_ps(is), acc[t]);
        if constexpr (L.int_min) {
          acc[t] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, da), _mm256_cvtepi32_ps(_mm256_madd_epi16(mp, s01)), acc[t]);
        }
        if constexpr (L.fp_min) {
          float dsa;
          std::memcpy(&dsa, &a.aux[(t0 + t) * a.nb + b], 4);
          acc[t] = _mm256_fmadd_ps(fmin, _mm256_set1_ps(dsa), acc[t]);
        }
      }
    }
    if constexpr (kCoarse) {
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) {
        const __m256 da = _mm256_set1_ps(a.d[(t0 + t) * w.num_units + u]);
        acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dunit, da), _mm256_cvtepi32_ps(iu[t]), acc[t]);
        if constexpr (L.int_min) {
          acc[t] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, da), _mm256_cvtepi32_ps(ju[t]), acc[t]);
        }
      }
    }
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(y + t * ldy + 8 * h, acc[t]);
}

template <PackedType kType>
void GemmType(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt, float* y,
              int64_t ldy) {
  for (int64_t g = 0; g < ng; ++g) {
    const uint8_t* grp = w.group(g0 + g);
    float* yg = y + g * kGroupRows;
    if (nt == 1) {
      TileOneToken<kType>(w, grp, a, t0, yg);
      continue;
    }
    for (int h = 0; h < 2; ++h) {
      int64_t t = 0;
      for (; t + 4 <= nt; t += 4) TileHalf<kType, 4>(w, grp, h, a, t0 + t, yg + t * ldy, ldy);
      switch (nt - t) {
        case 3: TileHalf<kType, 3>(w, grp, h, a, t0 + t, yg + t * ldy, ldy); break;
        case 2: TileHalf<kType, 2>(w, grp, h, a, t0 + t, yg + t * ldy, ldy); break;
        case 1: TileHalf<kType, 1>(w, grp, h, a, t0 + t, yg + t * ldy, ldy); break;
        default: break;
      }
    }
  }
}

}  // namespace

void GemmUnitAvx2(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt, float* y,
                  int64_t ldy) {
  VisitUnitType(w.type, [&](auto type) { GemmType<decltype(type)::value>(w, g0, ng, a, t0, nt, y, ldy); });
}

}  // namespace inferd::cpu
