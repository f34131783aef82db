// attention_impl.h on AVX-512 F (compiled with -mavx512f; selected only when present).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "backend/cpu/attention_impl.h"

namespace inferd::cpu {

const AttnKernels* Avx512AttnKernelsImpl() {
  static const AttnKernels k{"avx512", TileImpl<VecAvx512>, MergeImpl<VecAvx512>};
  return &k;
}

}  // namespace inferd::cpu
