// Small helpers shared by the AVX2 kernel files (include only from translation units
// compiled with -mavx2).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace inferd::cpu::avx2 {

// Four int8 values (a 32-bit word) broadcast to every 32-bit lane.
inline __m256i Bcast32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

}  // namespace inferd::cpu::avx2
