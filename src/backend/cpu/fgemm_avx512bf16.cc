// BF16 panels with AVX512-BF16 (qgemm.h): per column pair a group's 16 rows are one zmm of
// bf16 pairs, and vdpbf16ps adds both products of a lane into its fp32 accumulator (odd
// element first, each addition rounded: the definition GemmFloatGeneric's BF16 path and
// the fma kernels follow). 32 multiply-adds per instruction where fp32 fma does 16, and no
// widening of the weights. Tiles: 4 groups x 1 token (decode, the four panel streams
// prefetched ahead), else NG groups x up to 8 tokens (each pair load serves 8 tokens, each
// activation broadcast NG groups).
#include "backend/cpu/avx512_intrin.h"

#include <cstring>

#include "backend/cpu/prefetch.h"
#include "backend/cpu/qgemm.h"
#include "backend/cpu/token_tiles.h"

namespace inferd::cpu {
namespace {

template <int NG, int NT>
void DpTile(const uint8_t* grp, size_t gstride, int64_t np, const uint16_t* xb, int64_t ldx, float* y, int64_t ldy) {
  __m512 acc[NG][NT];
  for (int g = 0; g < NG; ++g) {
    for (int t = 0; t < NT; ++t) acc[g][t] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < np; ++p) {
    const uint8_t* pair = grp + static_cast<size_t>(p) * 64;
    if constexpr (NT <= 2) {
      for (int g = 0; g < NG; ++g) PrefetchAhead(pair + g * gstride, 64);
    }
    __m512bh wv[NG];
    for (int g = 0; g < NG; ++g) wv[g] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(pair + g * gstride));
    for (int t = 0; t < NT; ++t) {
      int32_t xp;
      std::memcpy(&xp, xb + t * ldx + 2 * p, 4);
      const __m512bh xv = reinterpret_cast<__m512bh>(_mm512_set1_epi32(xp));
      for (int g = 0; g < NG; ++g) acc[g][t] = _mm512_dpbf16_ps(acc[g][t], wv[g], xv);
    }
  }
  for (int g = 0; g < NG; ++g) {
    for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ldy + g * kGroupRows, acc[g][t]);
  }
}

}  // namespace

void GemmBf16Avx512Bf16(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                        float* y, int64_t ldy) {
  const int64_t kp = Bf16PairCols(w.cols);
  ForPanelTiles(ng, nt, [&](auto groups, auto tokens, int64_t gi, int64_t t) {
    constexpr int kNg = decltype(groups)::value, kNt = decltype(tokens)::value;
    float* yt = y + t * ldy + gi * kGroupRows;
    DpTile<kNg, kNt>(w.group(g0 + gi), w.group_bytes, kp / 2, a.xb + (t0 + t) * kp, kp, yt, ldy);
  });
}

}  // namespace inferd::cpu
