#include "util/cpu_features.h"

#include <cpuid.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace inferd {
namespace {

uint64_t Xgetbv0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures Detect() {
  CpuFeatures f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  if (!osxsave || !avx) return CpuFeatures{};
  const uint64_t xcr0 = Xgetbv0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;           // SSE + AVX state saved by the OS
  const bool zmm_state = (xcr0 & 0xE6) == 0xE6;         // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!ymm_state) return CpuFeatures{};
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.avx2 = b & (1u << 5);
    if (zmm_state) {
      f.avx512f = b & (1u << 16);
      f.avx512bw = b & (1u << 30);
      f.avx512vl = b & (1u << 31);
      f.avx512vnni = c & (1u << 11);
      f.avx512vbmi = c & (1u << 1);
    }
  }
  if (zmm_state && __get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx512bf16 = a & (1u << 5);
  return f;
}

}  // namespace

const CpuFeatures& GetCpuFeatures() {
  static const CpuFeatures f = Detect();
  return f;
}

CpuLevel DetectedCpuLevel() {
  const CpuFeatures& f = GetCpuFeatures();
  if (!(f.avx2 && f.fma && f.f16c)) return CpuLevel::kGeneric;
  if (!(f.avx512f && f.avx512bw && f.avx512vl)) return CpuLevel::kAvx2;
  return f.avx512vnni ? CpuLevel::kAvx512Vnni : CpuLevel::kAvx512;
}

CpuLevel UsableCpuLevel() {
  static const CpuLevel level = [] {
    CpuLevel l = DetectedCpuLevel();
    const char* env = std::getenv("INFERD_CPU_KERNELS");
    const std::string cap = env ? env : "";
    if (cap == "generic") l = CpuLevel::kGeneric;
    if (cap == "avx2" && l > CpuLevel::kAvx2) l = CpuLevel::kAvx2;
    if (cap == "avx512" && l > CpuLevel::kAvx512Vnni) l = CpuLevel::kAvx512Vnni;
    return l;
  }();
  return level;
}

}  // namespace inferd
