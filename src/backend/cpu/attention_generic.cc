// attention_impl.h for any CPU, and the choice of the attention kernels.
#include <cstdlib>
#include <string>

#include "backend/cpu/attention_impl.h"

namespace inferd::cpu {

const AttnKernels* Avx2AttnKernelsImpl();
const AttnKernels* Avx512AttnKernelsImpl();

const AttnKernels& GenericAttnKernels() {
  static const AttnKernels k{"generic", TileImpl<VecGeneric>, MergeImpl<VecGeneric>};
  return k;
}

const AttnKernels* Avx2AttnKernels() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok ? Avx2AttnKernelsImpl() : nullptr;
}

const AttnKernels* Avx512AttnKernels() {
  static const bool ok = Avx2AttnKernels() != nullptr && __builtin_cpu_supports("avx512f") &&
                         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return ok ? Avx512AttnKernelsImpl() : nullptr;
}

const AttnKernels& AttentionKernels() {
  static const AttnKernels* table = [] {
    const char* env = std::getenv("INFERD_CPU_KERNELS");
    const std::string cap = env ? env : "";
    if (cap != "generic" && cap != "avx2" && Avx512AttnKernels()) return Avx512AttnKernels();
    if (cap != "generic" && Avx2AttnKernels()) return Avx2AttnKernels();
    return &GenericAttnKernels();
  }();
  return *table;
}

}  // namespace inferd::cpu
