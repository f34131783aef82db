// Software prefetch for the decode kernels (any ISA).
#pragma once

#include <xmmintrin.h>

#include <cstdint>

namespace inferd::cpu {

// Decode kernels (one token: the packed int8 tiles, the float dot_quant_row) prefetch their
// weight stream this many bytes ahead, a line at a time between the computations: a decode
// step reads every weight once, and the hardware prefetcher alone left the kernels waiting
// on memory (BENCHMARKS.md, "Decode prefetch").
constexpr int kDecodePrefetchBytes = 4096;

// Prefetches the `bytes` (a multiple of 64) at p + kDecodePrefetchBytes.
inline void PrefetchAhead(const uint8_t* p, int bytes) {
  const char* ahead = reinterpret_cast<const char*>(p) + kDecodePrefetchBytes;
  for (int off = 0; off < bytes; off += 64) _mm_prefetch(ahead + off, _MM_HINT_T0);
}

}  // namespace inferd::cpu
