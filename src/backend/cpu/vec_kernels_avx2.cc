// attention_impl.h and elementwise_impl.h on AVX2 + FMA (compiled with -mavx2 -mfma;
// selected only when the CPU has them).
#include "backend/cpu/attention_impl.h"
#include "backend/cpu/elementwise_impl.h"

namespace inferd::cpu {

const AttnKernels* Avx2AttnKernelsImpl() {
  static const AttnKernels k{"avx2", TileImpl<VecAvx2>, MergeImpl<VecAvx2>};
  return &k;
}

const VecKernels* Avx2VecKernelsImpl() {
  static const VecKernels k{"avx2", SiluMulImpl<VecAvx2>, GeluTanhMulImpl<VecAvx2>};
  return &k;
}

}  // namespace inferd::cpu
