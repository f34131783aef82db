// attention_impl.h and elementwise_impl.h for any CPU, and the choice of the kernels.
#include <cstdlib>
#include <string>

#include "backend/cpu/attention_impl.h"
#include "backend/cpu/elementwise_impl.h"
#include "util/cpu_features.h"

namespace inferd::cpu {

const AttnKernels* Avx2AttnKernelsImpl();
const AttnKernels* Avx512AttnKernelsImpl();
const VecKernels* Avx2VecKernelsImpl();
const VecKernels* Avx512VecKernelsImpl();

namespace {
bool HasAvx2() { return DetectedCpuLevel() >= CpuLevel::kAvx2; }
bool HasAvx512() { return DetectedCpuLevel() >= CpuLevel::kAvx512; }
}  // namespace

void GenericCodeTile(const AttnTile& t);  // attention_codes_generic.cc

namespace {
void GenericTile(const AttnTile& t) { IsKvCode(t.elem) ? GenericCodeTile(t) : TileFloatImpl<VecGeneric>(t); }
}  // namespace

const AttnKernels& GenericAttnKernels() {
  static const AttnKernels k{"generic", GenericTile, MergeImpl<VecGeneric>};
  return k;
}

const AttnKernels* Avx2AttnKernels() { return HasAvx2() ? Avx2AttnKernelsImpl() : nullptr; }
const AttnKernels* Avx512AttnKernels() { return HasAvx512() ? Avx512AttnKernelsImpl() : nullptr; }

const AttnKernels& AttentionKernels() {
  static const AttnKernels* table = [] {
    const CpuLevel level = UsableCpuLevel();  // INFERD_CPU_KERNELS caps it
    if (level >= CpuLevel::kAvx512) return Avx512AttnKernels();
    if (level >= CpuLevel::kAvx2) return Avx2AttnKernels();
    return &GenericAttnKernels();
  }();
  return *table;
}

const VecKernels& GenericVecKernels() {
  static const VecKernels k{"generic", SiluMulImpl<VecGeneric>, GeluTanhMulImpl<VecGeneric>, ToFp16Impl<VecGeneric>};
  return k;
}
const VecKernels* Avx2VecKernels() { return HasAvx2() ? Avx2VecKernelsImpl() : nullptr; }
const VecKernels* Avx512VecKernels() { return HasAvx512() ? Avx512VecKernelsImpl() : nullptr; }

const VecKernels& VectorKernels() {
  static const VecKernels* table = [] {
    const CpuLevel level = UsableCpuLevel();  // INFERD_CPU_KERNELS caps it
    if (level >= CpuLevel::kAvx512) return Avx512VecKernels();
    if (level >= CpuLevel::kAvx2) return Avx2VecKernels();
    return &GenericVecKernels();
  }();
  return *table;
}

}  // namespace inferd::cpu
