// The counter-based uniform of sample/sampler.cc (CounterUniform), callable from host and
// device code with the same bits: integer hashing (two splitmix64 finalizer rounds) and a
// 53-bit mantissa scaled by 2^-53, both exact. Without nvcc the qualifiers vanish, so host
// tests can compare it with inferd::CounterUniform.
#pragma once

#include <cstdint>

#include "util/host_device.h"

namespace inferd::cuda {

INFERD_HOST_DEVICE inline uint64_t CounterMix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) from (seed, counter): bit-identical to inferd::CounterUniform.
INFERD_HOST_DEVICE inline double CounterUniformHD(uint64_t seed, uint64_t counter) {
  const uint64_t z = CounterMix64(CounterMix64(seed + 0x9E3779B97F4A7C15ull) ^ (counter * 0xD1B54A32D192ED03ull));
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

}  // namespace inferd::cuda
