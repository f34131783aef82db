// attention_impl.h and elementwise_impl.h on AVX-512 F/BW/VL (compiled with those flags;
// selected only when the CPU has them).
#include "backend/cpu/avx512_intrin.h"
#include "backend/cpu/attention_impl.h"
#include "backend/cpu/elementwise_impl.h"
#include "format/ggml_types.h"

namespace inferd::cpu {

void Avx512CodeTile(const AttnTile& t);  // attention_codes_avx512.cc

namespace {
void Avx512Tile(const AttnTile& t) { IsKvCode(t.elem) ? Avx512CodeTile(t) : TileFloatImpl<VecAvx512>(t); }

// vcvtps2ph, 16 at a time (nearest even: the same bits as Fp32ToFp16, NaNs quieted alike).
void ToFp16Avx512(const float* x, int64_t n, uint16_t* out, int64_t stride) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    if (stride == 1) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), h);
    } else {
      alignas(32) uint16_t tmp[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), h);
      for (int j = 0; j < 16; ++j) out[(i + j) * stride] = tmp[j];
    }
  }
  for (; i < n; ++i) out[i * stride] = Fp32ToFp16(x[i]);
}
}  // namespace

const AttnKernels* Avx512AttnKernelsImpl() {
  static const AttnKernels k{"avx512", Avx512Tile, MergeImpl<VecAvx512>};
  return &k;
}

const VecKernels* Avx512VecKernelsImpl() {
  static const VecKernels k{"avx512", SiluMulImpl<VecAvx512>, GeluTanhMulImpl<VecAvx512>, ToFp16Avx512};
  return &k;
}

}  // namespace inferd::cpu
