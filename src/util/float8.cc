#include "util/float8.h"

#include <bit>
#include <cmath>
#include <limits>

namespace inferd {
namespace {

// Rounds |f| (bits `abs`, finite, below the saturation threshold) to a format with kMant
// mantissa bits and exponent bias kBias, ties to even; returns the code without its sign.
// Normal results drop 23 - kMant mantissa bits of fp32 with the carry bumping the exponent
// (as Fp32ToFp16 does); below the smallest normal 2^(1 - kBias) the code is the integer
// round(|f| / 2^(1 - kBias - kMant)), whose value 2^kMant is the smallest normal's code.
template <int kMant, int kBias>
uint32_t RoundMagnitude(uint32_t abs) {
  constexpr int kDrop = 23 - kMant;
  constexpr uint32_t kMinNormalBits = static_cast<uint32_t>(127 + 1 - kBias) << 23;
  if (abs < kMinNormalBits) {
    // Exact: a power-of-two scaling of a value far from fp32's range limits.
    const float units = std::bit_cast<float>(abs) * std::ldexp(1.0f, kBias - 1 + kMant);
    return static_cast<uint32_t>(std::nearbyint(units));  // default rounding: ties to even
  }
  uint32_t v = abs - (static_cast<uint32_t>(127 - kBias) << 23);
  v += (1u << (kDrop - 1)) - 1 + ((v >> kDrop) & 1u);
  return v >> kDrop;
}

}  // namespace

uint8_t Fp32ToFp8E4M3(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 24) & 0x80u;
  const uint32_t abs = x & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return static_cast<uint8_t>(sign | 0x7Fu);  // NaN
  if (abs >= 0x43E00000u) return static_cast<uint8_t>(sign | 0x7Eu);  // >= 448 (and inf): saturate
  return static_cast<uint8_t>(sign | RoundMagnitude<3, 7>(abs));     // <= 0x7E: rounds below 448 stay <= 448
}

uint8_t Fp32ToFp8E5M2(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 24) & 0x80u;
  const uint32_t abs = x & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return static_cast<uint8_t>(sign | 0x7Eu);  // NaN
  if (abs >= 0x47600000u) return static_cast<uint8_t>(sign | 0x7Bu);  // >= 57344 (and inf): saturate
  return static_cast<uint8_t>(sign | RoundMagnitude<2, 15>(abs));
}

float Fp8E4M3ToFp32(uint8_t b) {
  const int e = (b >> 3) & 0xF, m = b & 7;
  float v;
  if (e == 15 && m == 7) {
    v = std::numeric_limits<float>::quiet_NaN();
  } else if (e == 0) {
    v = std::ldexp(static_cast<float>(m), -9);  // subnormal: m 2^-9
  } else {
    v = std::ldexp(static_cast<float>(8 + m), e - 10);  // (1 + m / 8) 2^(e - 7)
  }
  return (b & 0x80) ? -v : v;
}

float Fp8E5M2ToFp32(uint8_t b) {
  const int e = (b >> 2) & 0x1F, m = b & 3;
  float v;
  if (e == 31) {
    v = m == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  } else if (e == 0) {
    v = std::ldexp(static_cast<float>(m), -16);  // subnormal: m 2^-16
  } else {
    v = std::ldexp(static_cast<float>(4 + m), e - 17);  // (1 + m / 4) 2^(e - 15)
  }
  return (b & 0x80) ? -v : v;
}

}  // namespace inferd
