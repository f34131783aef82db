// qgemm.h's unit types on AVX-512 + VNNI (compiled with -mavx512f/bw/vl/vnni; called from the
// VNNI table only). A zmm lane is one row of a 16-row group, as in qgemm_avx512vnni.cc: a
// 64-byte code plane is rebuilt into the 16 rows' unsigned codes of one sub-vector (4
// elements per row) and vpdpbusd adds their products with 4 broadcast activations into the
// row's int32 lane. Per block and token two chains: dot_0 over sub-vectors 0-3 (sub-block 0),
// dot_1 over 4-7, then
//   I = sc_0 (dot_0 - z' S_0) + sc_1 (dot_1 - z' S_1)
// with z' = z, or 128 for the IQ4 look-up types, whose signed values v are fed to vpdpbusd
// as the unsigned v + 128. Every integer equals the reference's exactly (no int16 stage that
// could saturate) and the float steps are the same operations in the same order, so the
// results are bit-identical to GemmUnitGeneric and GemmUnitAvx2.
// CoarseActs types (TileCoarse) add 2^e_b sum_j sc_j dot_j into the unit's I per block and
// apply the z and min terms once per unit, each block's as one vpdpwssd of per-row int16
// pairs with the token's scaled (S'_0, S'_1); then the float steps once per unit.
#include "backend/cpu/avx512_intrin.h"

#include <cstring>
#include <utility>

#include "backend/cpu/prefetch.h"
#include "backend/cpu/qgemm.h"
#include "backend/cpu/token_tiles.h"
#include "format/ggml_int.h"

namespace inferd::cpu {
namespace {

inline __m512i Load(const uint8_t* p) { return _mm512_load_si512(reinterpret_cast<const void*>(p)); }
inline __m512i Bcast4(const int8_t* p) { return _mm512_broadcastd_epi32(_mm_loadu_si32(p)); }
inline __m512 LoadHalves(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

template <int kFrom, int kTo>
inline __m512i MoveBits(__m512i v) {  // bit kFrom of every byte to bit kTo (others masked later)
  if constexpr (kFrom < kTo) return _mm512_slli_epi16(v, kTo - kFrom);
  else if constexpr (kFrom > kTo) return _mm512_srli_epi16(v, kFrom - kTo);
  else return v;
}

// The 16 rows' unsigned codes of sub-vector K (elements 4K..4K+3) of block bi; the look-up
// types' values biased by 128. kVbmi (look-up types on CPUs with AVX512-VBMI): vpermb looks
// up 64 entries, the 16 values four times, so the nibble needs no mask (bits 4-5 of the
// index only pick a copy).
template <PackedType kType, int K, bool kVbmi>
inline __m512i Code(const uint8_t* unit, int bi) {
  constexpr UnitLayout L = UnitLayoutOf(kType);
  const uint8_t* lo = unit + L.lo_off(bi);
  const uint8_t* hi = unit + L.hi_off(bi);
  __m512i c;
  if constexpr (L.lut) {  // v + 128 = v ^ 0x80 as a byte, in [1, 241]
    const __m512i lut = _mm512_xor_si512(
        _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4Values))), _mm512_set1_epi8(-128));
    const __m512i v = Load(lo + 64 * (K % 4));
    const __m512i nib = K < 4 ? v : _mm512_srli_epi16(v, 4);
    if constexpr (kVbmi) return Permb(lut, nib);
    return _mm512_shuffle_epi8(lut, _mm512_and_si512(nib, _mm512_set1_epi8(15)));
  }
  if constexpr (L.code == CodeKind::kL2 || L.code == CodeKind::kL2H1) {
    c = _mm512_and_si512(_mm512_srli_epi16(Load(lo + 64 * (K / 4)), 2 * (K % 4)), _mm512_set1_epi8(3));
  } else {
    const __m512i v = Load(lo + 64 * (K % 4));
    c = _mm512_and_si512(K < 4 ? v : _mm512_srli_epi16(v, 4), _mm512_set1_epi8(15));
  }
  if constexpr (L.code == CodeKind::kP4H1) {
    c = _mm512_or_si512(c, _mm512_and_si512(MoveBits<K, 4>(Load(hi)), _mm512_set1_epi8(0x10)));
  } else if constexpr (L.code == CodeKind::kL2H1) {
    c = _mm512_or_si512(c, _mm512_and_si512(MoveBits<K, 2>(Load(hi)), _mm512_set1_epi8(0x04)));
  } else if constexpr (L.code == CodeKind::kP4H2) {
    c = _mm512_or_si512(c, _mm512_and_si512(MoveBits<2 * (K % 4), 4>(Load(hi + 64 * (K / 4))), _mm512_set1_epi8(0x30)));
  }
  return c;
}

// A block's per-row integers besides the codes: sub-block scales (int32 lanes) and the
// integer-min term's multiplier.
template <PackedType kType>
struct BlockScales {
  __m512i sc0, sc1;  // sc_bytes 16: sc0 == sc1
  __m512i mp;        // Q2_K: (m_0, m_1) int16 pairs; Q4_K, Q5_K, I4Z128: m as int32
  BlockScales(const uint8_t* unit, int bi) {
    constexpr UnitLayout L = UnitLayoutOf(kType);
    const uint8_t* s = unit + L.sc_off + L.sc_bytes * bi;
    if constexpr (L.sc_bytes == 16) {
      sc0 = sc1 = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
    } else if constexpr (L.sc_bytes == 32) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s));
      __m512i pairs;  // lane r: (sc_0, sc_1) as int16s
      if constexpr (L.sc_min_nibbles) {
        const __m256i m4 = _mm256_set1_epi8(15);
        pairs = _mm512_cvtepu8_epi16(_mm256_and_si256(raw, m4));
        mp = _mm512_cvtepu8_epi16(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4));
      } else {
        pairs = _mm512_cvtepi8_epi16(raw);
      }
      sc0 = _mm512_srai_epi32(_mm512_slli_epi32(pairs, 16), 16);
      sc1 = _mm512_srai_epi32(pairs, 16);
    }
    if constexpr (L.m_bytes) mp = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(unit + L.m_off + 16 * bi)));
  }
};

// Per-row int16 pairs for block bi's z and min terms, for vpdpwssd with a token's S0 | S1:
// zp = (-z' sc_0, -z' sc_1) (|z' sc| <= 4096), mp = (m_0, m_1); per-32 values twice.
template <PackedType kType>
struct PairTerms {
  __m512i zp, mp;
  PairTerms(const uint8_t* unit, int bi) {
    constexpr UnitLayout L = UnitLayoutOf(kType);
    constexpr int kZ = L.lut ? 128 : L.z_shift < 0 ? 0 : 1 << L.z_shift;
    const uint8_t* s = unit + L.sc_off + L.sc_bytes * bi;
    auto twice = [](__m512i v) {  // the low int16 of each int32 lane in both halves
      return _mm512_or_si512(_mm512_and_si512(v, _mm512_set1_epi32(0xFFFF)), _mm512_slli_epi32(v, 16));
    };
    if constexpr (kZ != 0) {
      if constexpr (L.sc_bytes == 32) {
        const __m512i pairs = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s)));
        zp = _mm512_mullo_epi16(pairs, _mm512_set1_epi16(static_cast<int16_t>(-kZ)));
      } else {
        static_assert(L.sc_bytes == 16);
        const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
        zp = twice(_mm512_mullo_epi32(sc, _mm512_set1_epi32(-kZ)));
      }
    }
    if constexpr (L.sc_min_nibbles) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s));
      mp = _mm512_cvtepu8_epi16(_mm256_and_si256(_mm256_srli_epi16(raw, 4), _mm256_set1_epi8(15)));
    } else if constexpr (L.m_bytes) {
      mp = twice(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(unit + L.m_off + 16 * bi))));
    }
  }
};

// One group x NT tokens of a CoarseActs type. Per block: two integer chains per token (one
// per 16-element half), times the sub-block scales and 2^e_b, into the unit's I; the
// accumulators live in y, touched once per unit, so that the chains and I of 8 tokens stay
// in registers.
template <PackedType kType, int NT, bool kVbmi>
void TileCoarse(const PackedMatrix& w, const uint8_t* grp, const QuantActs& a, int64_t t0, float* y, int64_t ldy,
                bool stream) {
  constexpr UnitLayout L = UnitLayoutOf(kType);
  constexpr bool kZ = L.lut || L.z_shift >= 0;
  constexpr int kShare = (L.unit_bytes / L.blocks + 63) / 64 * 64;
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ldy, _mm512_setzero_ps());
  for (int64_t u = 0; u < w.num_units; ++u) {
    const uint8_t* unit = grp + u * L.unit_bytes;
    const int nbi = static_cast<int>(std::min<int64_t>(L.blocks, w.nb - u * L.blocks));
    __m512i isum[NT];
    for (auto& v : isum) v = _mm512_setzero_si512();
    for (int bi = 0; bi < nbi; ++bi) {
      const int64_t b = u * L.blocks + bi;
      const int8_t* aq[NT];
      for (int t = 0; t < NT; ++t) aq[t] = a.q + (t0 + t) * a.k + b * kQBlock;
      if (stream) PrefetchAhead(unit + bi * kShare, kShare);
      __m512i dot[NT][2];  // sub-blocks 0 and 1 (two chains also when sc is per 32: latency)
      for (auto& d : dot)
        for (auto& c : d) c = _mm512_setzero_si512();
      auto step = [&](auto k_tag) {
        constexpr int k = decltype(k_tag)::value;
        const __m512i c0 = Code<kType, k, kVbmi>(unit, bi), c1 = Code<kType, k + 4, kVbmi>(unit, bi);
#pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          dot[t][0] = DpbusdBcast(dot[t][0], c0, aq[t] + 4 * k);
          dot[t][1] = DpbusdBcast(dot[t][1], c1, aq[t] + 16 + 4 * k);
        }
      };
      [&]<int... K>(std::integer_sequence<int, K...>) {
        (step(std::integral_constant<int, K>{}), ...);
      }(std::make_integer_sequence<int, 4>{});
      const BlockScales<kType> sc(unit, bi);
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) {
        __m512i ib;
        if constexpr (L.sc_bytes == 32) {
          ib = _mm512_add_epi32(_mm512_mullo_epi32(dot[t][0], sc.sc0), _mm512_mullo_epi32(dot[t][1], sc.sc1));
        } else {
          ib = _mm512_mullo_epi32(_mm512_add_epi32(dot[t][0], dot[t][1]), sc.sc0);
        }
        isum[t] = _mm512_add_epi32(isum[t], SllvBcast(ib, a.e + (t0 + t) * a.nb + b));
      }
    }
    __m512i jsum[NT];
    for (auto& v : jsum) v = _mm512_setzero_si512();
    for (int bi = 0; bi < nbi; ++bi) {  // the z and min terms
      if constexpr (kZ || L.int_min) {
        const PairTerms<kType> pt(unit, bi);
        const int32_t* s16 = a.s16 + u * L.blocks + bi;
#pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          const __m512i s = _mm512_set1_epi32(s16[(t0 + t) * a.nb]);
          if constexpr (kZ) isum[t] = _mm512_dpwssd_epi32(isum[t], pt.zp, s);
          if constexpr (L.int_min) jsum[t] = _mm512_dpwssd_epi32(jsum[t], pt.mp, s);
        }
      }
    }
    const __m512 dw = LoadHalves(unit + L.d_off);
    __m512 dmin = _mm512_setzero_ps();
    if constexpr (L.int_min) dmin = LoadHalves(unit + L.dmin_off);
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const __m512 da = _mm512_set1_ps(a.d[(t0 + t) * w.num_units + u]);
      __m512 r = _mm512_loadu_ps(y + t * ldy);
      r = _mm512_fmadd_ps(_mm512_mul_ps(dw, da), _mm512_cvtepi32_ps(isum[t]), r);
      if constexpr (L.int_min) r = _mm512_fnmadd_ps(_mm512_mul_ps(dmin, da), _mm512_cvtepi32_ps(jsum[t]), r);
      _mm512_storeu_ps(y + t * ldy, r);
    }
  }
}

// One group (all 16 rows) x NT tokens; each code vector is built once and used by the NT
// tokens. `stream`: the first pass over the group's weights (the only one in decode),
// prefetched ahead (as in qgemm_avx512vnni.cc).
template <PackedType kType, int NT, bool kVbmi>
void Tile(const PackedMatrix& w, const uint8_t* grp, const QuantActs& a, int64_t t0, float* y, int64_t ldy,
          bool stream) {
  constexpr UnitLayout L = UnitLayoutOf(kType);
  constexpr int kZ = L.lut ? 128 : L.z_shift < 0 ? 0 : 1 << L.z_shift;
  constexpr int kShare = (L.unit_bytes / L.blocks + 63) / 64 * 64;  // a block's share of the unit
  __m512 acc[NT];
  for (auto& v : acc) v = _mm512_setzero_ps();
  for (int64_t u = 0; u < w.num_units; ++u) {
    const int nbi = static_cast<int>(std::min<int64_t>(L.blocks, w.nb - u * L.blocks));
    for (int bi = 0; bi < nbi; ++bi) {
      const int64_t b = u * L.blocks + bi;
      const int8_t* aq[NT];
      for (int t = 0; t < NT; ++t) aq[t] = a.q + (t0 + t) * a.k + b * kQBlock;
      const uint8_t* unit = grp + u * L.unit_bytes;
      if (stream) PrefetchAhead(unit + bi * kShare, kShare);
      __m512i dot[NT][2];
      for (auto& d : dot) d[0] = d[1] = _mm512_setzero_si512();
      auto step = [&](auto k_tag) {  // sub-vectors k (sub-block 0) and k + 4 (sub-block 1)
        constexpr int k = decltype(k_tag)::value;
        const __m512i c0 = Code<kType, k, kVbmi>(unit, bi), c1 = Code<kType, k + 4, kVbmi>(unit, bi);
#pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          if constexpr (NT == 1) {  // decode: folded broadcasts (measured: prefill tiles lose)
            dot[t][0] = DpbusdBcast(dot[t][0], c0, aq[t] + 4 * k);
            dot[t][1] = DpbusdBcast(dot[t][1], c1, aq[t] + 16 + 4 * k);
          } else {
            dot[t][0] = _mm512_dpbusd_epi32(dot[t][0], c0, Bcast4(aq[t] + 4 * k));
            dot[t][1] = _mm512_dpbusd_epi32(dot[t][1], c1, Bcast4(aq[t] + 16 + 4 * k));
          }
        }
      };
      [&]<int... K>(std::integer_sequence<int, K...>) {
        (step(std::integral_constant<int, K>{}), ...);
      }(std::make_integer_sequence<int, 4>{});
      const BlockScales<kType> sc(unit, bi);
      const __m512 dw = LoadHalves(unit + L.d_off + (L.d_per_block ? 32 * bi : 0));
      __m512 dmin = _mm512_setzero_ps(), fmin = _mm512_setzero_ps();
      if constexpr (L.int_min) dmin = LoadHalves(unit + L.dmin_off);
      if constexpr (L.fp_min) fmin = LoadHalves(unit + L.dmin_off + 32 * bi);
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) {
        const int32_t s16 = a.s16[(t0 + t) * a.nb + b];
        const int32_t S0 = static_cast<int16_t>(s16 & 0xFFFF), S1 = s16 >> 16;
        __m512i d0 = dot[t][0], d1 = dot[t][1], is;
        if constexpr (L.sc_bytes == 32) {
          if constexpr (kZ != 0) {
            d0 = _mm512_sub_epi32(d0, _mm512_set1_epi32(kZ * S0));
            d1 = _mm512_sub_epi32(d1, _mm512_set1_epi32(kZ * S1));
          }
          is = _mm512_add_epi32(_mm512_mullo_epi32(d0, sc.sc0), _mm512_mullo_epi32(d1, sc.sc1));
        } else {
          is = _mm512_add_epi32(d0, d1);
          if constexpr (kZ != 0) is = _mm512_sub_epi32(is, _mm512_set1_epi32(kZ * (S0 + S1)));
          if constexpr (L.sc_bytes == 16) is = _mm512_mullo_epi32(is, sc.sc0);
        }
        const __m512 da = _mm512_set1_ps(a.d[(t0 + t) * a.nb + b]);
        __m512& r = acc[t];
        r = _mm512_fmadd_ps(_mm512_mul_ps(dw, da), _mm512_cvtepi32_ps(is), r);
        if constexpr (L.int_min) {
          __m512i j;
          if constexpr (L.sc_min_nibbles) j = _mm512_madd_epi16(sc.mp, _mm512_set1_epi32(s16));
          else j = _mm512_mullo_epi32(sc.mp, _mm512_set1_epi32(S0 + S1));
          r = _mm512_fnmadd_ps(_mm512_mul_ps(dmin, da), _mm512_cvtepi32_ps(j), r);
        }
        if constexpr (L.fp_min) {
          float dsa;
          std::memcpy(&dsa, &a.aux[(t0 + t) * a.nb + b], 4);
          r = _mm512_fmadd_ps(fmin, _mm512_set1_ps(dsa), r);
        }
      }
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

// Tiles as in qgemm_avx512vnni.cc: one group at a time, its tokens in tiles of up to 8. The
// first tile of a group prefetches its weights ahead (`stream`), the later ones find them
// in L2: on a matrix past the L3 (7B's 11008 x 4096) the first tile otherwise waited on
// memory for every group (MatMul/q5_K/rows:11008/cols:4096/tokens:64: 394 -> 535-567 G
// multiply-adds/s, as on matrices that fit the L3).
template <PackedType kType, bool kVbmi>
void GemmType(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt, float* y,
              int64_t ldy) {
  for (int64_t g = 0; g < ng; ++g) {
    ForTokenTiles(nt, [&](auto nt_tag, int64_t t) {
      constexpr int kNt = decltype(nt_tag)::value;
      float* yt = y + t * ldy + g * kGroupRows;
      if constexpr (CoarseActs(kType)) TileCoarse<kType, kNt, kVbmi>(w, w.group(g0 + g), a, t0 + t, yt, ldy, t == 0);
      else Tile<kType, kNt, kVbmi>(w, w.group(g0 + g), a, t0 + t, yt, ldy, t == 0);
    });
  }
}

}  // namespace

void GemmUnitAvx512Vnni(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                        float* y, int64_t ldy, bool vbmi) {
  VisitUnitType(w.type, [&](auto type) {
    constexpr PackedType kType = decltype(type)::value;
    if constexpr (UnitLayoutOf(kType).lut) {
      if (vbmi) return GemmType<kType, true>(w, g0, ng, a, t0, nt, y, ldy);
    }
    GemmType<kType, false>(w, g0, ng, a, t0, nt, y, ldy);
  });
}

}  // namespace inferd::cpu
