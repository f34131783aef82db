// The two 8-bit floating-point formats of OCP's "8-bit Floating Point" specification (v1.0),
// the ones vLLM's --kv-cache-dtype fp8_e4m3 / fp8_e5m2 and torch.float8_e4m3fn /
// torch.float8_e5m2 name:
//   E4M3FN: sign, 4 exponent bits (bias 7), 3 mantissa bits; no infinities, one NaN per sign
//           (S.1111.111); largest finite 448 (0x7E), smallest subnormal 2^-9.
//   E5M2:   sign, 5 exponent bits (bias 15), 2 mantissa bits; IEEE-like (the high byte of an
//           fp16): infinities 0x7C, NaNs 0x7D..0x7F; largest finite 57344 (0x7B), smallest
//           subnormal 2^-16.
// Conversions from fp32 round to nearest, ties to even (as torch's casts do) and saturate:
// a finite value beyond the largest finite, and an infinity, become +-max (torch's cast gives
// NaN for E4M3FN and inf for E5M2 there). NaN becomes NaN (0x7F | sign for E4M3FN, 0x7E |
// sign for E5M2). Conversions to fp32 are exact.
#pragma once

#include <cstdint>

namespace inferd {

inline constexpr float kFp8E4M3Max = 448.0f;
inline constexpr float kFp8E5M2Max = 57344.0f;

uint8_t Fp32ToFp8E4M3(float f);
uint8_t Fp32ToFp8E5M2(float f);
float Fp8E4M3ToFp32(uint8_t b);
float Fp8E5M2ToFp32(uint8_t b);

}  // namespace inferd
