// attention_impl.h on AVX2 + FMA (compiled with -mavx2 -mfma; selected only when present).
#include "backend/cpu/attention_impl.h"

namespace inferd::cpu {

const AttnKernels* Avx2AttnKernelsImpl() {
  static const AttnKernels k{"avx2", TileImpl<VecAvx2>, MergeImpl<VecAvx2>};
  return &k;
}

}  // namespace inferd::cpu
