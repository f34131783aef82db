// attention_impl.h and elementwise_impl.h for any CPU, and the choice of the kernels.
#include <cstdlib>
#include <string>

#include "backend/cpu/attention_impl.h"
#include "backend/cpu/elementwise_impl.h"

namespace inferd::cpu {

const AttnKernels* Avx2AttnKernelsImpl();
const AttnKernels* Avx512AttnKernelsImpl();
const VecKernels* Avx2VecKernelsImpl();
const VecKernels* Avx512VecKernelsImpl();

namespace {
bool HasAvx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool HasAvx512() {
  return HasAvx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}
// INFERD_CPU_KERNELS=generic|avx2 caps the ISA (tests, comparisons).
std::string Cap() {
  const char* env = std::getenv("INFERD_CPU_KERNELS");
  return env ? env : "";
}
}  // namespace

const AttnKernels& GenericAttnKernels() {
  static const AttnKernels k{"generic", TileImpl<VecGeneric>, MergeImpl<VecGeneric>};
  return k;
}

const AttnKernels* Avx2AttnKernels() { return HasAvx2() ? Avx2AttnKernelsImpl() : nullptr; }
const AttnKernels* Avx512AttnKernels() { return HasAvx512() ? Avx512AttnKernelsImpl() : nullptr; }

const AttnKernels& AttentionKernels() {
  static const AttnKernels* table = [] {
    const std::string cap = Cap();
    if (cap != "generic" && cap != "avx2" && Avx512AttnKernels()) return Avx512AttnKernels();
    if (cap != "generic" && Avx2AttnKernels()) return Avx2AttnKernels();
    return &GenericAttnKernels();
  }();
  return *table;
}

const VecKernels& GenericVecKernels() {
  static const VecKernels k{"generic", SiluMulImpl<VecGeneric>};
  return k;
}
const VecKernels* Avx2VecKernels() { return HasAvx2() ? Avx2VecKernelsImpl() : nullptr; }
const VecKernels* Avx512VecKernels() { return HasAvx512() ? Avx512VecKernelsImpl() : nullptr; }

const VecKernels& VectorKernels() {
  static const VecKernels* table = [] {
    const std::string cap = Cap();
    if (cap != "generic" && cap != "avx2" && Avx512VecKernels()) return Avx512VecKernels();
    if (cap != "generic" && Avx2VecKernels()) return Avx2VecKernels();
    return &GenericVecKernels();
  }();
  return *table;
}

}  // namespace inferd::cpu
