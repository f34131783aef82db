// attention_impl.h and elementwise_impl.h on AVX-512 F/BW/VL (compiled with those flags;
// selected only when the CPU has them).
#include "backend/cpu/avx512_intrin.h"
#include "backend/cpu/attention_impl.h"
#include "backend/cpu/elementwise_impl.h"

namespace inferd::cpu {

void Avx512CodeTile(const AttnTile& t);  // attention_codes_avx512.cc

namespace {
void Avx512Tile(const AttnTile& t) { IsKvCode(t.elem) ? Avx512CodeTile(t) : TileFloatImpl<VecAvx512>(t); }
}  // namespace

const AttnKernels* Avx512AttnKernelsImpl() {
  static const AttnKernels k{"avx512", Avx512Tile, MergeImpl<VecAvx512>};
  return &k;
}

const VecKernels* Avx512VecKernelsImpl() {
  static const VecKernels k{"avx512", SiluMulImpl<VecAvx512>, GeluTanhMulImpl<VecAvx512>, ToFp16Impl<VecAvx512>};
  return &k;
}

}  // namespace inferd::cpu
