// Elementwise CPU kernels written once over vec16.h (elementwise_impl.h) and compiled per
// ISA, so that every ISA computes the same bits.
#pragma once

#include <cstdint>

namespace inferd::cpu {

struct VecKernels {
  const char* name;
  // out[i] = g / (1 + exp(-g)) * u[i] with g = gate[i] (exp: vec16.h Exp); out may alias gate.
  void (*silu_mul)(const float* gate, const float* up, int64_t n, float* out);
  // out[i] = g / (1 + exp(-2 sqrt(2/pi) (g + 0.044715 g^3))) * up[i] (GELU, tanh form).
  void (*gelu_tanh_mul)(const float* gate, const float* up, int64_t n, float* out);
  // out[i * stride] = fp16(x[i]) for i < n, nearest even (format's Fp32ToFp16: the f16 K/V
  // cache's writes).
  void (*to_fp16)(const float* x, int64_t n, uint16_t* out, int64_t stride);
};

const VecKernels& GenericVecKernels();
const VecKernels* Avx2VecKernels();    // nullptr without AVX2 + FMA
const VecKernels* Avx512VecKernels();  // nullptr without AVX-512 F/BW/VL
const VecKernels& VectorKernels();     // the best available (INFERD_CPU_KERNELS caps it)

}  // namespace inferd::cpu
