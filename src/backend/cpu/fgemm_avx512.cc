// The float panels' AVX-512 kernel (qgemm.h): the 16 rows of a group are the 16 lanes of one
// zmm register, each lane its own fma chain over k in order, so the bits equal
// GemmFloatGeneric's (and the AVX2 kernel's). Against AVX2 it halves the weight loads,
// conversions and fmas per product. Tiles: 4 groups x 1 token (decode, four panel streams
// prefetched ahead), 2 groups x 2 tokens, and 2 groups x up to 8 tokens (prefill: 16
// accumulators; each column load serves 8 tokens, each broadcast 2 groups).
#include "backend/cpu/avx512_intrin.h"

#include "backend/cpu/prefetch.h"
#include "backend/cpu/qgemm.h"

namespace inferd::cpu {
namespace {

template <PackedType kType>
inline __m512 LoadPanelColumn512(const uint8_t* p) {
  if constexpr (kType == PackedType::kF32) {
    return _mm512_loadu_ps(p);
  } else if constexpr (kType == PackedType::kF16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  } else {  // bf16: the high half of an fp32
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

template <PackedType kType, int NG, int NT>
void PanelTile512(const uint8_t* grp, size_t gstride, int64_t cols, const float* x, int64_t ldx, float* y,
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

// NG groups (1 or 2), nt tokens in tiles of 8.
template <PackedType kType, int NG>
void PanelTokens512(const PackedMatrix& w, const uint8_t* grp, const float* x, int64_t ldx, int64_t nt, float* y,
                    int64_t ldy) {
  const size_t gs = w.group_bytes;
  int64_t t = 0;
  for (; t + 8 <= nt; t += 8) PanelTile512<kType, NG, 8>(grp, gs, w.cols, x + t * ldx, ldx, y + t * ldy, ldy);
  const float* xt = x + t * ldx;
  float* yt = y + t * ldy;
  switch (nt - t) {
    case 7: PanelTile512<kType, NG, 7>(grp, gs, w.cols, xt, ldx, yt, ldy); break;
    case 6: PanelTile512<kType, NG, 6>(grp, gs, w.cols, xt, ldx, yt, ldy); break;
    case 5: PanelTile512<kType, NG, 5>(grp, gs, w.cols, xt, ldx, yt, ldy); break;
    case 4: PanelTile512<kType, NG, 4>(grp, gs, w.cols, xt, ldx, yt, ldy); break;
    case 3: PanelTile512<kType, NG, 3>(grp, gs, w.cols, xt, ldx, yt, ldy); break;
    case 2: PanelTile512<kType, NG, 2>(grp, gs, w.cols, xt, ldx, yt, ldy); break;
    case 1: PanelTile512<kType, NG, 1>(grp, gs, w.cols, xt, ldx, yt, ldy); break;
    default: break;
  }
}

template <PackedType kType>
void PanelGemm512(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                  float* y, int64_t ldy) {
  const float* x = a.x + t0 * a.k;
  const size_t gs = w.group_bytes;
  int64_t gi = 0;
  if (nt == 1) {
    for (; gi + 4 <= ng; gi += 4) PanelTile512<kType, 4, 1>(w.group(g0 + gi), gs, w.cols, x, a.k, y + gi * kGroupRows, ldy);
  }
  for (; gi + 2 <= ng; gi += 2) PanelTokens512<kType, 2>(w, w.group(g0 + gi), x, a.k, nt, y + gi * kGroupRows, ldy);
  for (; gi < ng; ++gi) PanelTokens512<kType, 1>(w, w.group(g0 + gi), x, a.k, nt, y + gi * kGroupRows, ldy);
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
