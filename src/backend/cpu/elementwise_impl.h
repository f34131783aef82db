// elementwise.h as templates over a vec16.h type; see attention_impl.h for how the
// per-ISA translation units use them.
#pragma once

#include "backend/cpu/elementwise.h"
#include "backend/cpu/vec16.h"

namespace inferd::cpu {
namespace {

template <class V>
inline V Silu(V g) {
  return g / (V::Set1(1.0f) + Exp(V::Zero() - g));
}

// gelu_tanh(x) = 0.5 x (1 + tanh u) = x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3).
template <class V>
inline V GeluTanh(V x) {
  const V k = V::Set1(-2.0f * 0.7978845608028654f);
  const V u = x + V::Set1(0.044715f) * (x * x * x);
  return x / (V::Set1(1.0f) + Exp(k * u));
}

// out = act(gate) * up, 16 lanes at a time, the tail masked.
template <class V, V (*Act)(V)>
void GatedMulImpl(const float* gate, const float* up, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) (Act(V::Load(gate + i)) * V::Load(up + i)).Store(out + i);
  if (i < n) {
    const int r = static_cast<int>(n - i);
    (Act(V::LoadN(gate + i, r)) * V::LoadN(up + i, r)).StoreN(out + i, r);
  }
}

template <class V>
void SiluMulImpl(const float* gate, const float* up, int64_t n, float* out) {
  GatedMulImpl<V, Silu<V>>(gate, up, n, out);
}

template <class V>
void GeluTanhMulImpl(const float* gate, const float* up, int64_t n, float* out) {
  GatedMulImpl<V, GeluTanh<V>>(gate, up, n, out);
}

// out[i * stride] = fp16(x[i]): 16 at a time through V's half store, the tail by Fp32ToFp16
// (the same bits).
template <class V>
void ToFp16Impl(const float* x, int64_t n, uint16_t* out, int64_t stride) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    if (stride == 1) {
      V::Load(x + i).Store(out + i);
    } else {
      uint16_t tmp[16];
      V::Load(x + i).Store(tmp);
      for (int j = 0; j < 16; ++j) out[(i + j) * stride] = tmp[j];
    }
  }
  for (; i < n; ++i) out[i * stride] = Fp32ToFp16(x[i]);
}

}  // namespace
}  // namespace inferd::cpu
