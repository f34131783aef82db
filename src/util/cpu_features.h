// The one CPU-feature detector: what this x86-64 CPU (and the OS, for the wide register
// state) supports, and which kernel level the CPU backend may use. Every kernel table
// (matmul, quantized GEMM, attention, vector ops) picks its implementation from
// UsableCpuLevel() so that they all agree.
//
// cpuid + xgetbv directly rather than __builtin_cpu_supports: GCC and clang spell the
// feature names differently (clang 14 has no "f16c"), and the OS check matters for
// AVX-512 in VMs that hide the state.
#pragma once

namespace inferd {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false;
  // Features within the AVX-512 levels (not levels): vdpbf16ps, vpermb.
  bool avx512bf16 = false, avx512vbmi = false;
};

// Detected once, cached.
const CpuFeatures& GetCpuFeatures();

enum class CpuLevel {
  kGeneric = 0,
  kAvx2 = 1,        // AVX2 + FMA + F16C
  kAvx512 = 2,      // + AVX-512 F/BW/VL
  kAvx512Vnni = 3,  // + AVX-512 VNNI
};

// The highest level the CPU supports, capped by INFERD_CPU_KERNELS=generic|avx2|avx512
// (for tests and side-by-side comparisons).
CpuLevel UsableCpuLevel();
// The highest level the CPU supports, without the cap (tests that run every table).
CpuLevel DetectedCpuLevel();

}  // namespace inferd
