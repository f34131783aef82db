// Element formats of the CPU KV cache, and the scalar definition of its 1-byte codes
// (--kv-cache-dtype int8 | fp8_e4m3 | fp8_e5m2; docs/quantized-formats.md §5).
//
// A quantized cache stores, for each token and KV head, the head_dim elements of K (and of
// V) as 1-byte codes c plus one fp16 scale s: element = s * value(c). The scale is set when
// the token is written and never changes: blocks fill token by token, so a token's codes
// depend only on its own K/V vector, never on its neighbours, on how the batch was formed,
// or on whether its prefix came from the prefix cache.
//
//   write: amax = max |x_i|;  s = fp16(min(amax / M, 65504))  (M = 127 | 448 | 57344)
//          c_i = round_to_nearest_even(x_i / float(s)), saturated to [-M, M]
//          (s = 0: every code 0; a NaN or infinity in x: s = NaN, codes 0, so the vector
//           reads as NaN as it would from an fp16 cache)
//   read:  value(c) exactly: int8 as a signed integer; e5m2 is the high byte of an fp16;
//          e4m3 is an fp16 with bits (c & 0x80) << 8 | (c & 0x7F) << 7 times 2^8
//          (subnormals included). The attention kernels widen codes in registers
//          (attention.h) and never make a dequantized copy.
//
// fp16(amax / M) may round below amax / M, so x / s can exceed M by a relative 2^-11 (and
// by more when s is an fp16 subnormal): the conversion saturates instead of overflowing.
#pragma once

#include <cstdint>

namespace inferd::cpu {

enum class KvElem : uint8_t {
  kF32,
  kF16,       // IEEE half, rounded to nearest even on write
  kInt8,      // codes -127..127
  kFp8E4M3,   // OCP E4M3FN codes (util/float8.h)
  kFp8E5M2,   // OCP E5M2 codes
};

inline bool IsKvCode(KvElem e) { return e == KvElem::kInt8 || e == KvElem::kFp8E4M3 || e == KvElem::kFp8E5M2; }
const char* KvElemName(KvElem e);

// M: the largest code value (127, 448, 57344).
float KvCodeMax(KvElem e);

// Quantizes one vector x[0:n] (a token's K or V of one KV head): code i goes to
// codes[i * stride]; returns the scale's fp16 bits. e is a code format.
uint16_t QuantizeKvVector(KvElem e, const float* x, int64_t n, uint8_t* codes, int64_t stride);

// value(c) as the kernels read it, exact. It equals util/float8.h's conversion for every code
// the writer produces; the e4m3 NaN codes 0x7F / 0xFF (never written: a NaN goes into the
// scale) read as +-480. e is a code format.
float KvCodeValue(KvElem e, uint8_t c);

// The fp16 bits whose value is an e4m3 code's value / 2^8 (sign, then exponent and mantissa
// shifted into place; a subnormal e4m3 is a subnormal fp16). The kernels widen with it.
inline uint16_t Fp8E4M3HalfBits(uint8_t c) {
  return static_cast<uint16_t>(((c & 0x80u) << 8) | ((c & 0x7Fu) << 7));
}
// The e4m3 factor the kernels move from the codes into the scale: value(c) = 2^8 * half.
inline constexpr float kFp8E4M3HalfUnit = 256.0f;

}  // namespace inferd::cpu
