// qgemm.h on AVX-512 + VNNI (compiled with -mavx512f/bw/vl/vnni; selected only when the CPU
// has them). One zmm lane is one weight row of a 16-row group: vpdpbusd multiplies the
// group's unsigned weight codes by four broadcast int8 activations and sums them into the
// row's int32 lane, so no horizontal reduction is needed anywhere.
#include "backend/cpu/avx512_intrin.h"

#include <cstring>

#include "backend/cpu/prefetch.h"
#include "backend/cpu/qgemm.h"
#include "backend/cpu/token_tiles.h"

namespace inferd::cpu {
namespace {

// Four int8 activations broadcast to every lane: a load-port broadcast (vpbroadcastd
// zmm, m32) or, with one use, vpdpbusd's embedded {1to16} operand; never through a GPR.
inline __m512i Bcast4(const int8_t* p) { return _mm512_broadcastd_epi32(_mm_loadu_si32(p)); }

void Quantize(const float* x, int64_t ldx, int64_t nt, int64_t k, int8_t* q, float* d, int32_t* s) {
  const int64_t nb = k / kQBlock;
  for (int64_t t = 0; t < nt; ++t) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = x + t * ldx + b * kQBlock;
      const __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
      const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
      const float db = amax / 127.0f;
      const float id = db != 0.0f ? 1.0f / db : 0.0f;
      const __m512 idv = _mm512_set1_ps(id);
      const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, idv));
      const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, idv));
      int8_t* qb = q + t * k + b * kQBlock;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qb), _mm512_cvtepi32_epi8(q0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qb + 16), _mm512_cvtepi32_epi8(q1));
      d[t * nb + b] = db;
      s[t * nb + b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
  }
}

// One group x NT tokens. kSplit: two integer chains per token (short tiles are latency-bound
// on one chain); integer sums are exact, so the split does not change any result. `stream`:
// this tile is the only pass over the group's weights (decode, batched decode), which it
// prefetches kDecodePrefetchBytes ahead.
template <PackedType kType, int NT>
void Tile(const PackedMatrix& w, const uint8_t* grp, const QuantActs& a, int64_t t0, float* y, int64_t ldy,
          bool stream) {
  constexpr int kChunks = kType == PackedType::kQ8_0 ? 8 : 4;
  constexpr int kSplit = NT == 1 ? 2 : 1;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512 acc[NT];
  for (auto& v : acc) v = _mm512_setzero_ps();
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
    const uint8_t* qs = grp + w.qs_offset(b);
    if (stream && (b & 1) == 0) PrefetchAhead(grp + w.pair(b), static_cast<int>(w.pair_bytes));
    __m512i isum[NT][kSplit];
    for (auto& v : isum)
      for (auto& s : v) s = _mm512_setzero_si512();
    for (int c = 0; c < kChunks; ++c) {
      const __m512i wv = _mm512_load_si512(reinterpret_cast<const void*>(qs + 64 * c));
      if constexpr (kType == PackedType::kQ8_0) {
        for (int t = 0; t < NT; ++t) {
          __m512i& s = isum[t][c % kSplit];
          s = _mm512_dpbusd_epi32(s, wv, Bcast4(aq[t] + b * kQBlock + 4 * c));
        }
      } else {
        const __m512i lo = _mm512_and_si512(wv, low4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(wv, 4), low4);
        for (int t = 0; t < NT; ++t) {
          isum[t][0] = _mm512_dpbusd_epi32(isum[t][0], lo, Bcast4(aq[t] + b * kQBlock + 4 * c));
          isum[t][kSplit - 1] = _mm512_dpbusd_epi32(isum[t][kSplit - 1], hi, Bcast4(aq[t] + b * kQBlock + 16 + 4 * c));
        }
      }
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(grp + w.d_offset(b))));
    if constexpr (kType == PackedType::kQ4_1) {
      const __m512 mw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(grp + w.m_offset(b))));
      for (int t = 0; t < NT; ++t) {
        __m512i s = isum[t][0];
        if constexpr (kSplit == 2) s = _mm512_add_epi32(s, isum[t][1]);
        float dsa;
        std::memcpy(&dsa, &ax[t][b], 4);
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(ad[t][b])), _mm512_cvtepi32_ps(s), acc[t]);
        acc[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(dsa), acc[t]);
      }
    } else {
      for (int t = 0; t < NT; ++t) {
        __m512i s = isum[t][0];
        if constexpr (kSplit == 2) s = _mm512_add_epi32(s, isum[t][1]);
        s = _mm512_sub_epi32(s, _mm512_set1_epi32(ax[t][b]));
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(ad[t][b])), _mm512_cvtepi32_ps(s), acc[t]);
      }
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

// Tiles: one group and up to 8 tokens, each loaded weight chunk shared by the tile's tokens.
// Decode used to run 2-4 groups side by side for more independent chains; one group with
// the stream prefetched decodes the embedded model 1.2-1.7x faster here (BENCHMARKS.md,
// "One group per decode tile").
template <PackedType kType>
void GemmType(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt, float* y,
              int64_t ldy) {
  for (int64_t g = 0; g < ng; ++g) {  // a group's token tiles in turn, while it is in cache
    ForTokenTiles(nt, [&](auto nt_tag, int64_t t) {
      Tile<kType, decltype(nt_tag)::value>(w, w.group(g0 + g), a, t0 + t, y + t * ldy + g * kGroupRows, ldy, nt <= 8);
    });
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
    case PackedType::kBF16: return GemmFloatAvx512(w, g0, ng, a, t0, nt, y, ldy);
    default: return GemmUnitAvx512Vnni(w, g0, ng, a, t0, nt, y, ldy);
  }
}

}  // namespace

const QKernels* Avx512VnniQKernelsImpl() {
  static const QKernels k{"avx512vnni", Quantize, Gemm};
  return &k;
}

}  // namespace inferd::cpu
