// attention_impl.h and elementwise_impl.h on AVX2 + FMA (compiled with -mavx2 -mfma;
// selected only when the CPU has them).
#include "backend/cpu/attention_impl.h"
#include "backend/cpu/elementwise_impl.h"

namespace inferd::cpu {

void Avx2CodeTile(const AttnTile& t);  // attention_codes_avx2.cc

namespace {
void Avx2Tile(const AttnTile& t) { IsKvCode(t.elem) ? Avx2CodeTile(t) : TileFloatImpl<VecAvx2>(t); }
}  // namespace

const AttnKernels* Avx2AttnKernelsImpl() {
  static const AttnKernels k{"avx2", Avx2Tile, MergeImpl<VecAvx2>};
  return &k;
}

const VecKernels* Avx2VecKernelsImpl() {
  static const VecKernels k{"avx2", SiluMulImpl<VecAvx2>, GeluTanhMulImpl<VecAvx2>, ToFp16Impl<VecAvx2>};
  return &k;
}

}  // namespace inferd::cpu
