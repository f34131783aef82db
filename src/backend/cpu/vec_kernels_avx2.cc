// attention_impl.h and elementwise_impl.h on AVX2 + FMA (compiled with -mavx2 -mfma;
// selected only when the CPU has them).
#include "backend/cpu/attention_impl.h"
#include "backend/cpu/elementwise_impl.h"
#include "format/ggml_types.h"

namespace inferd::cpu {

void Avx2CodeTile(const AttnTile& t);  // attention_codes_avx2.cc

namespace {
void Avx2Tile(const AttnTile& t) { IsKvCode(t.elem) ? Avx2CodeTile(t) : TileFloatImpl<VecAvx2>(t); }

// vcvtps2ph, 8 at a time (nearest even: the same bits as Fp32ToFp16, NaNs quieted alike).
void ToFp16Avx2(const float* x, int64_t n, uint16_t* out, int64_t stride) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    if (stride == 1) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
    } else {
      alignas(16) uint16_t tmp[8];
      _mm_store_si128(reinterpret_cast<__m128i*>(tmp), h);
      for (int j = 0; j < 8; ++j) out[(i + j) * stride] = tmp[j];
    }
  }
  for (; i < n; ++i) out[i * stride] = Fp32ToFp16(x[i]);
}
}  // namespace

const AttnKernels* Avx2AttnKernelsImpl() {
  static const AttnKernels k{"avx2", Avx2Tile, MergeImpl<VecAvx2>};
  return &k;
}

const VecKernels* Avx2VecKernelsImpl() {
  static const VecKernels k{"avx2", SiluMulImpl<VecAvx2>, GeluTanhMulImpl<VecAvx2>, ToFp16Avx2};
  return &k;
}

}  // namespace inferd::cpu
