// The float panels' AVX2 kernel (qgemm.h): the 16 rows of a group are two ymm lanes of eight,
// each lane its own fma chain over k in order (BF16: over column pairs, two fmas each), so
// the bits equal GemmFloatGeneric's. Tiles:
// 4 groups x 1 token (decode: eight independent chains hide the fma latency, four panel
// streams prefetched ahead), 2 groups x 2 tokens, and 1 group x up to 6 tokens (prefill:
// 12 accumulators; the panel column is loaded once per 6 tokens).
#include <immintrin.h>

#include "backend/cpu/prefetch.h"
#include "backend/cpu/qgemm.h"

namespace inferd::cpu {
namespace {

// Column k of a panel: the 16 rows' values widened to fp32, rows 0..7 and 8..15.
template <PackedType kType>
inline void LoadPanelColumn(const uint8_t* p, __m256& lo, __m256& hi) {
  if constexpr (kType == PackedType::kF32) {
    lo = _mm256_loadu_ps(reinterpret_cast<const float*>(p));
    hi = _mm256_loadu_ps(reinterpret_cast<const float*>(p) + 8);
  } else {
    static_assert(kType == PackedType::kF16);
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
    hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
  }
}

// BF16 column pairs (qgemm.h): per pair, rows 0..7 and 8..15 as two ymm of dwords (even
// element in the low half), widened by shifts; the activations come rounded to bf16 and
// widened (QuantActs::xr). acc = fma(odd, x_odd, acc) then fma(even, x_even, acc): the
// products are exact, so these are vdpbf16ps's bits.
template <int NG, int NT>
void PairTile(const uint8_t* grp, size_t gstride, int64_t cols, const float* xr, int64_t ldx, float* y,
              int64_t ldy) {
  __m256 acc[NG][NT][2];
  for (int g = 0; g < NG; ++g) {
    for (int t = 0; t < NT; ++t) acc[g][t][0] = acc[g][t][1] = _mm256_setzero_ps();
  }
  const int64_t np = Bf16PairCols(cols) / 2;
  for (int64_t p = 0; p < np; ++p) {
    const uint8_t* pair = grp + static_cast<size_t>(p) * 64;
    if constexpr (NT <= 2) {
      for (int g = 0; g < NG; ++g) PrefetchAhead(pair + g * gstride, 64);
    }
    // The odd columns for every token, then the even ones: each accumulator still takes its
    // pair odd first, and only two weight vectors per group are live (16 ymm registers).
    for (int half = 1; half >= 0; --half) {
      __m256 wv[NG][2];
      for (int g = 0; g < NG; ++g) {
        for (int h = 0; h < 2; ++h) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pair + g * gstride + 32 * h));
          // odd: the high half with the low one shifted out (a mask would take a 17th register)
          wv[g][h] = _mm256_castsi256_ps(_mm256_slli_epi32(half ? _mm256_srli_epi32(v, 16) : v, 16));
        }
      }
      for (int t = 0; t < NT; ++t) {
        const __m256 xv = _mm256_broadcast_ss(xr + t * ldx + 2 * p + half);
        for (int g = 0; g < NG; ++g) {
          for (int h = 0; h < 2; ++h) acc[g][t][h] = _mm256_fmadd_ps(wv[g][h], xv, acc[g][t][h]);
        }
      }
    }
  }
  for (int g = 0; g < NG; ++g) {
    for (int t = 0; t < NT; ++t) {
      _mm256_storeu_ps(y + t * ldy + g * kGroupRows, acc[g][t][0]);
      _mm256_storeu_ps(y + t * ldy + g * kGroupRows + 8, acc[g][t][1]);
    }
  }
}

// F32 / F16: y[t * ldy + 16 g + l] for NG groups from grp (group stride gstride) and NT
// tokens from x (row stride ldx).
template <PackedType kType, int NG, int NT>
void FloatTile(const uint8_t* grp, size_t gstride, int64_t cols, const float* x, int64_t ldx, float* y,
               int64_t ldy) {
  constexpr size_t kColBytes = kGroupRows * FloatElemBytes(kType);
  constexpr int64_t kColsPerLine = 64 / kColBytes;  // panel columns per cache line: 1 or 2
  __m256 acc[NG][NT][2];
  for (int g = 0; g < NG; ++g) {
    for (int t = 0; t < NT; ++t) acc[g][t][0] = acc[g][t][1] = _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < cols; ++k) {
    const uint8_t* col = grp + static_cast<size_t>(k) * kColBytes;
    if constexpr (NT <= 2) {  // decode: the weights stream from memory once
      if (k % kColsPerLine == 0) {
        for (int g = 0; g < NG; ++g) PrefetchAhead(col + g * gstride, 64);
      }
    }
    for (int g = 0; g < NG; ++g) {
      __m256 lo, hi;
      LoadPanelColumn<kType>(col + g * gstride, lo, hi);
      for (int t = 0; t < NT; ++t) {
        const __m256 b = _mm256_broadcast_ss(x + t * ldx + k);
        acc[g][t][0] = _mm256_fmadd_ps(lo, b, acc[g][t][0]);
        acc[g][t][1] = _mm256_fmadd_ps(hi, b, acc[g][t][1]);
      }
    }
  }
  for (int g = 0; g < NG; ++g) {
    for (int t = 0; t < NT; ++t) {
      _mm256_storeu_ps(y + t * ldy + g * kGroupRows, acc[g][t][0]);
      _mm256_storeu_ps(y + t * ldy + g * kGroupRows + 8, acc[g][t][1]);
    }
  }
}

// The tile of NG groups x NT tokens of the activations a (from token t0), by type.
template <PackedType kType, int NG, int NT>
void PanelTile(const uint8_t* grp, size_t gstride, int64_t cols, const QuantActs& a, int64_t t0, float* y,
               int64_t ldy) {
  if constexpr (kType == PackedType::kBF16) {
    PairTile<NG, NT>(grp, gstride, cols, a.xr + t0 * Bf16PairCols(cols), Bf16PairCols(cols), y, ldy);
  } else {
    FloatTile<kType, NG, NT>(grp, gstride, cols, a.x + t0 * a.k, a.k, y, ldy);
  }
}

// One group, tokens [t0, t0 + nt) in tiles of 6.
template <PackedType kType>
void PanelGroupTokens(const PackedMatrix& w, const uint8_t* grp, const QuantActs& a, int64_t t0, int64_t nt,
                      float* y, int64_t ldy) {
  const size_t gs = w.group_bytes;
  int64_t t = 0;
  for (; t + 6 <= nt; t += 6) PanelTile<kType, 1, 6>(grp, gs, w.cols, a, t0 + t, y + t * ldy, ldy);
  switch (nt - t) {
    case 5: PanelTile<kType, 1, 5>(grp, gs, w.cols, a, t0 + t, y + t * ldy, ldy); break;
    case 4: PanelTile<kType, 1, 4>(grp, gs, w.cols, a, t0 + t, y + t * ldy, ldy); break;
    case 3: PanelTile<kType, 1, 3>(grp, gs, w.cols, a, t0 + t, y + t * ldy, ldy); break;
    case 2: PanelTile<kType, 1, 2>(grp, gs, w.cols, a, t0 + t, y + t * ldy, ldy); break;
    case 1: PanelTile<kType, 1, 1>(grp, gs, w.cols, a, t0 + t, y + t * ldy, ldy); break;
    default: break;
  }
}

template <PackedType kType>
void PanelGemm(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt, float* y,
              int64_t ldy) {
  const size_t gs = w.group_bytes;
  int64_t gi = 0;
  if (nt == 1) {
    for (; gi + 4 <= ng; gi += 4) PanelTile<kType, 4, 1>(w.group(g0 + gi), gs, w.cols, a, t0, y + gi * kGroupRows, ldy);
  } else if (nt == 2) {
    for (; gi + 2 <= ng; gi += 2) PanelTile<kType, 2, 2>(w.group(g0 + gi), gs, w.cols, a, t0, y + gi * kGroupRows, ldy);
  }
  for (; gi < ng; ++gi) PanelGroupTokens<kType>(w, w.group(g0 + gi), a, t0, nt, y + gi * kGroupRows, ldy);
}

}  // namespace

void GemmFloatAvx2(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                   float* y, int64_t ldy) {
  switch (w.type) {
    case PackedType::kF32: return PanelGemm<PackedType::kF32>(w, g0, ng, a, t0, nt, y, ldy);
    case PackedType::kF16: return PanelGemm<PackedType::kF16>(w, g0, ng, a, t0, nt, y, ldy);
    default: return PanelGemm<PackedType::kBF16>(w, g0, ng, a, t0, nt, y, ldy);
  }
}

}  // namespace inferd::cpu
