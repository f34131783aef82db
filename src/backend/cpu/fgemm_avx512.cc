// The float panels' AVX-512 kernel (qgemm.h): the 16 rows of a group are the 16 lanes of one
// zmm register, each lane its own fma chain over k in order (BF16: over column pairs, two
// fmas each; CPUs with AVX512-BF16 run fgemm_avx512bf16.cc instead), so the bits equal
// GemmFloatGeneric's (and the AVX2 kernel's). Against AVX2 it halves the weight loads,
// conversions and fmas per product. Tiles: 4 groups x 1 token (decode, four panel streams
// prefetched ahead), 2 groups x 2 tokens, and 2 groups x up to 8 tokens (prefill: 16
// accumulators; each column load serves 8 tokens, each broadcast 2 groups).
#include "backend/cpu/avx512_intrin.h"

#include "backend/cpu/prefetch.h"
#include "backend/cpu/qgemm.h"
#include "backend/cpu/token_tiles.h"

namespace inferd::cpu {
namespace {

template <PackedType kType>
inline __m512 LoadPanelColumn512(const uint8_t* p) {
  if constexpr (kType == PackedType::kF32) {
    return _mm512_loadu_ps(p);
  } else {
    static_assert(kType == PackedType::kF16);
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
}

// BF16 column pairs without vdpbf16ps (qgemm.h): the pair dwords split by a shift (even)
// and a mask (odd), two fmas per pair in vdpbf16ps's order; the products are exact, so the
// bits are the instruction's.
template <int NG, int NT>
void PairTile512(const uint8_t* grp, size_t gstride, int64_t cols, const float* xr, int64_t ldx, float* y,
                 int64_t ldy) {
  const __m512i hi_mask = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  __m512 acc[NG][NT];
  for (int g = 0; g < NG; ++g) {
    for (int t = 0; t < NT; ++t) acc[g][t] = _mm512_setzero_ps();
  }
  const int64_t np = Bf16PairCols(cols) / 2;
  for (int64_t p = 0; p < np; ++p) {
    const uint8_t* pair = grp + static_cast<size_t>(p) * 64;
    if constexpr (NT <= 2) {
      for (int g = 0; g < NG; ++g) PrefetchAhead(pair + g * gstride, 64);
    }
    __m512 we[NG], wo[NG];
    for (int g = 0; g < NG; ++g) {
      const __m512i v = _mm512_loadu_si512(pair + g * gstride);
      we[g] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
      wo[g] = _mm512_castsi512_ps(_mm512_and_si512(v, hi_mask));
    }
    for (int t = 0; t < NT; ++t) {
      const __m512 xe = _mm512_set1_ps(xr[t * ldx + 2 * p]);
      const __m512 xo = _mm512_set1_ps(xr[t * ldx + 2 * p + 1]);
      for (int g = 0; g < NG; ++g) {
        acc[g][t] = _mm512_fmadd_ps(wo[g], xo, acc[g][t]);
        acc[g][t] = _mm512_fmadd_ps(we[g], xe, acc[g][t]);
      }
    }
  }
  for (int g = 0; g < NG; ++g) {
    for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ldy + g * kGroupRows, acc[g][t]);
  }
}

// F32 / F16: y[t * ldy + 16 g + l] for NG groups and NT tokens from x (row stride ldx).
template <PackedType kType, int NG, int NT>
void FloatTile512(const uint8_t* grp, size_t gstride, int64_t cols, const float* x, int64_t ldx, float* y,
                  int64_t ldy) {
  constexpr size_t kColBytes = kGroupRows * FloatElemBytes(kType);
  constexpr int64_t kColsPerLine = 64 / kColBytes;
  __m512 acc[NG][NT];
  for (int g = 0; g < NG; ++g) {
    for (int t = 0; t < NT; ++t) acc[g][t] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < cols; ++k) {
    const uint8_t* col = grp + static_cast<size_t>(k) * kColBytes;
    if constexpr (NT <= 2) {
      if (k % kColsPerLine == 0) {
        for (int g = 0; g < NG; ++g) PrefetchAhead(col + g * gstride, 64);
      }
    }
    __m512 wv[NG];
    for (int g = 0; g < NG; ++g) wv[g] = LoadPanelColumn512<kType>(col + g * gstride);
    for (int t = 0; t < NT; ++t) {
      const __m512 b = _mm512_set1_ps(x[t * ldx + k]);
      for (int g = 0; g < NG; ++g) acc[g][t] = _mm512_fmadd_ps(wv[g], b, acc[g][t]);
    }
  }
  for (int g = 0; g < NG; ++g) {
    for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ldy + g * kGroupRows, acc[g][t]);
  }
}

// The tile of NG groups x NT tokens of the activations a (from token t0), by type.
template <PackedType kType, int NG, int NT>
void PanelTile512(const uint8_t* grp, size_t gstride, int64_t cols, const QuantActs& a, int64_t t0, float* y,
                  int64_t ldy) {
  if constexpr (kType == PackedType::kBF16) {
    PairTile512<NG, NT>(grp, gstride, cols, a.xr + t0 * Bf16PairCols(cols), Bf16PairCols(cols), y, ldy);
  } else {
    FloatTile512<kType, NG, NT>(grp, gstride, cols, a.x + t0 * a.k, a.k, y, ldy);
  }
}

template <PackedType kType>
void PanelGemm512(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                  float* y, int64_t ldy) {
  ForPanelTiles(ng, nt, [&](auto groups, auto tokens, int64_t gi, int64_t t) {
    constexpr int kNg = decltype(groups)::value, kNt = decltype(tokens)::value;
    float* yt = y + t * ldy + gi * kGroupRows;
    PanelTile512<kType, kNg, kNt>(w.group(g0 + gi), w.group_bytes, w.cols, a, t0 + t, yt, ldy);
  });
}

}  // namespace

void GemmFloatAvx512(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                     float* y, int64_t ldy) {
  switch (w.type) {
    case PackedType::kF32: return PanelGemm512<PackedType::kF32>(w, g0, ng, a, t0, nt, y, ldy);
    case PackedType::kF16: return PanelGemm512<PackedType::kF16>(w, g0, ng, a, t0, nt, y, ldy);
    default: return PanelGemm512<PackedType::kBF16>(w, g0, ng, a, t0, nt, y, ldy);
  }
}

}  // namespace inferd::cpu
