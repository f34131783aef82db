// attention_impl.h and elementwise_impl.h on AVX-512 F/BW/VL (compiled with those flags;
// selected only when the CPU has them).
#if defined(__GNUC__) && !defined(__clang__)  // clang has no such warning
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"  // the same false positive at -O1 (asan preset)
#include "backend/cpu/attention_impl.h"
#include "backend/cpu/elementwise_impl.h"

namespace inferd::cpu {

const AttnKernels* Avx512AttnKernelsImpl() {
  static const AttnKernels k{"avx512", TileImpl<VecAvx512>, MergeImpl<VecAvx512>};
  return &k;
}

const VecKernels* Avx512VecKernelsImpl() {
  static const VecKernels k{"avx512", SiluMulImpl<VecAvx512>, GeluTanhMulImpl<VecAvx512>};
  return &k;
}

}  // namespace inferd::cpu
