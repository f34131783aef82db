// Small, deterministic 64-bit hashes (same value on every run and machine): for routing keys
// and hash rings, not for security.
#pragma once

#include <cstdint>
#include <string_view>

namespace inferd {

// splitmix64's output function of x + golden ratio: a bijective avalanche mix.
inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// FNV-1a over the bytes, started from a mixed seed, finished with SplitMix64.
inline uint64_t HashBytes(std::string_view bytes, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ SplitMix64(seed);
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return SplitMix64(h);
}

}  // namespace inferd
