// qgemm.h on AVX-512 + VNNI (compiled with -mavx512f/bw/vl/vnni; selected only when the CPU
// has them). One zmm lane is one weight row of a 16-row group: vpdpbusd multiplies the
// group's unsigned weight codes by four broadcast int8 activations and sums them into the
// row's int32 lane, so no horizontal reduction is needed anywhere.
#include "backend/cpu/avx512_intrin.h"

#include <cstring>

#include "backend/cpu/prefetch.h"
#include "backend/cpu/qgemm.h"
#include "backend/cpu/quantize_acts.h"
#include "backend/cpu/token_tiles.h"
#include "util/cpu_features.h"

namespace inferd::cpu {
namespace {

// Four int8 activations broadcast to every lane: a load-port broadcast (vpbroadcastd
// zmm, m32) or, with one use, vpdpbusd's embedded {1to16} operand; never through a GPR.
inline __m512i Bcast4(const int8_t* p) { return _mm512_broadcastd_epi32(_mm_loadu_si32(p)); }

inline float AbsMax32(const float* x) {
  return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x)), _mm512_abs_ps(_mm512_loadu_ps(x + 16))));
}

// q of a 32-block at inverse scale id; returns their sum.
inline int32_t QuantizeBlock(const float* xb, float id, int8_t* qb) {
  const __m512 idv = _mm512_set1_ps(id);
  const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb), idv));
  const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + 16), idv));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qb), _mm512_cvtepi32_epi8(q0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qb + 16), _mm512_cvtepi32_epi8(q1));
  return _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
}

void Quantize(const float* x, int64_t ldx, int64_t nt, int64_t k, int64_t block, int8_t* q, float* d, int32_t* s,
              int32_t* e) {
  QuantizeActRows(x, ldx, nt, k, block, q, d, s, e, AbsMax32, QuantizeBlock);
}

// NG groups x NT tokens. kSplit: two integer chains per token (short tiles are latency-bound
// on one chain); integer sums are exact, so the split does not change any result. NG = 2
// (Q4 prefill): each broadcast activation serves both groups' vpdpbusd. `stream`: this tile
// is the first pass over the group's weights (the only one in decode), which it prefetches
// kDecodePrefetchBytes ahead.
template <PackedType kType, int NG, int NT>
void Tile(const PackedMatrix& w, const uint8_t* grp0, const QuantActs& a, int64_t t0, float* y, int64_t ldy,
          bool stream) {
  constexpr int kChunks = kType == PackedType::kQ8_0 ? 8 : 4;
  constexpr int kSplit = NT == 1 ? 2 : 1;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512 acc[NG][NT];
  for (auto& g : acc)
    for (auto& v : g) v = _mm512_setzero_ps();
  const int8_t* aq[NT];
  const float* ad[NT];
  const int32_t* ax[NT];
  for (int t = 0; t < NT; ++t) {
    aq[t] = a.q + (t0 + t) * a.k;
    ad[t] = a.d + (t0 + t) * a.nb;
    ax[t] = a.aux + (t0 + t) * a.nb;
  }
  const int64_t nb = w.nb;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* qs[NG];
    for (int g = 0; g < NG; ++g) qs[g] = grp0 + g * w.group_bytes + w.qs_offset(b);
    if (stream && (b & 1) == 0) {
      for (int g = 0; g < NG; ++g) PrefetchAhead(grp0 + g * w.group_bytes + w.pair(b), static_cast<int>(w.pair_bytes));
    }
    __m512i isum[NG][NT][kSplit];
    for (auto& g : isum)
      for (auto& v : g)
        for (auto& s : v) s = _mm512_setzero_si512();
    for (int c = 0; c < kChunks; ++c) {
      if constexpr (kType == PackedType::kQ8_0) {
        __m512i wv[NG];
        for (int g = 0; g < NG; ++g) wv[g] = _mm512_load_si512(reinterpret_cast<const void*>(qs[g] + 64 * c));
        for (int t = 0; t < NT; ++t) {
          const __m512i av = Bcast4(aq[t] + b * kQBlock + 4 * c);
          for (int g = 0; g < NG; ++g) {
            __m512i& s = isum[g][t][c % kSplit];
            s = _mm512_dpbusd_epi32(s, wv[g], av);
          }
        }
      } else {
        __m512i lo[NG], hi[NG];
        for (int g = 0; g < NG; ++g) {
          const __m512i wv = _mm512_load_si512(reinterpret_cast<const void*>(qs[g] + 64 * c));
          lo[g] = _mm512_and_si512(wv, low4);
          hi[g] = _mm512_and_si512(_mm512_srli_epi16(wv, 4), low4);
        }
        for (int t = 0; t < NT; ++t) {
          const __m512i al = Bcast4(aq[t] + b * kQBlock + 4 * c), ah = Bcast4(aq[t] + b * kQBlock + 16 + 4 * c);
          for (int g = 0; g < NG; ++g) {
            isum[g][t][0] = _mm512_dpbusd_epi32(isum[g][t][0], lo[g], al);
            isum[g][t][kSplit - 1] = _mm512_dpbusd_epi32(isum[g][t][kSplit - 1], hi[g], ah);
          }
        }
      }
    }
    for (int g = 0; g < NG; ++g) {
      const uint8_t* grp = grp0 + g * w.group_bytes;
      const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(grp + w.d_offset(b))));
      if constexpr (kType == PackedType::kQ4_1) {
        const __m512 mw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(grp + w.m_offset(b))));
        for (int t = 0; t < NT; ++t) {
          __m512i s = isum[g][t][0];
          if constexpr (kSplit == 2) s = _mm512_add_epi32(s, isum[g][t][1]);
          float dsa;
          std::memcpy(&dsa, &ax[t][b], 4);
          acc[g][t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(ad[t][b])), _mm512_cvtepi32_ps(s), acc[g][t]);
          acc[g][t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(dsa), acc[g][t]);
        }
      } else {
        for (int t = 0; t < NT; ++t) {
          __m512i s = isum[g][t][0];
          if constexpr (kSplit == 2) s = _mm512_add_epi32(s, isum[g][t][1]);
          s = _mm512_sub_epi32(s, _mm512_set1_epi32(ax[t][b]));
          acc[g][t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(ad[t][b])), _mm512_cvtepi32_ps(s), acc[g][t]);
        }
      }
    }
  }
  for (int g = 0; g < NG; ++g)
    for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ldy + g * kGroupRows, acc[g][t]);
}

// Tiles: one group and up to 8 tokens, each loaded weight chunk shared by the tile's tokens.
// Decode used to run 2-4 groups side by side for more independent chains; one group with
// the stream prefetched decodes the embedded model 1.2-1.4x faster here (BENCHMARKS.md,
// "VNNI kernels for every integer type"). Q4_0 / Q4_1 prefill (more than 8 tokens) runs
// pairs of groups x 6 tokens: 5-15% faster tiles (Q8_0's were 5-15% slower that way).
template <PackedType kType>
void GemmType(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt, float* y,
              int64_t ldy) {
  // The first tile over a group's weights prefetches them (`stream`); the later ones find
  // them in L2 (as in qgemm_unit_avx512vnni.cc: on matrices past the L3 the first tile
  // otherwise waits on memory for every group).
  auto one_group = [&](int64_t g, int64_t tb, int64_t te) {  // tokens [tb, te) of group g
    ForTokenTiles(te - tb, [&](auto nt_tag, int64_t t) {
      Tile<kType, 1, decltype(nt_tag)::value>(w, w.group(g0 + g), a, t0 + tb + t, y + (tb + t) * ldy + g * kGroupRows,
                                              ldy, tb + t == 0);
    });
  };
  int64_t g = 0;
  if (kType != PackedType::kQ8_0 && nt > 8) {
    for (; g + 2 <= ng; g += 2) {
      int64_t t = 0;
      for (; t + 6 <= nt; t += 6) {
        Tile<kType, 2, 6>(w, w.group(g0 + g), a, t0 + t, y + t * ldy + g * kGroupRows, ldy, t == 0);
      }
      one_group(g, t, nt);
      one_group(g + 1, t, nt);
    }
  }
  for (; g < ng; ++g) one_group(g, 0, nt);  // a group's token tiles in turn, while it is in cache
}

// BF16 panels take vdpbf16ps and bf16 pairs where the CPU has AVX512-BF16 (the table's
// bf16_pairs says the same), else the fma kernel and widened activations.
bool HasDpbf16() { return GetCpuFeatures().avx512bf16; }

void Gemm(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt, float* y,
          int64_t ldy) {
  switch (w.type) {
    case PackedType::kQ4_0: return GemmType<PackedType::kQ4_0>(w, g0, ng, a, t0, nt, y, ldy);
    case PackedType::kQ4_1: return GemmType<PackedType::kQ4_1>(w, g0, ng, a, t0, nt, y, ldy);
    case PackedType::kQ8_0: return GemmType<PackedType::kQ8_0>(w, g0, ng, a, t0, nt, y, ldy);
    case PackedType::kF32:
    case PackedType::kF16: return GemmFloatAvx512(w, g0, ng, a, t0, nt, y, ldy);
    case PackedType::kBF16:
      if (HasDpbf16()) return GemmBf16Avx512Bf16(w, g0, ng, a, t0, nt, y, ldy);
      return GemmFloatAvx512(w, g0, ng, a, t0, nt, y, ldy);
    default: return GemmUnitAvx512Vnni(w, g0, ng, a, t0, nt, y, ldy, GetCpuFeatures().avx512vbmi);
  }
}

}  // namespace

const QKernels* Avx512VnniQKernelsImpl() {
  static const QKernels k{"avx512vnni", Quantize, Gemm, RoundBf16Rows, HasDpbf16()};
  return &k;
}

}  // namespace inferd::cpu
