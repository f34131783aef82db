// <immintrin.h> for the AVX-512 translation units (compiled with -mavx512f/bw/vl...).
// GCC 12 reports its own _mm512_undefined_* temporaries inside the widening and conversion
// intrinsics (_mm512_cvtph_ps, _mm512_cvtepu16_epi32, ...) as maybe-uninitialized, a false
// positive in avx512fintrin.h; at -O1 (the asan preset) the same shows as -Wuninitialized.
// Include this first; the pragmas stay in force for the rest of the file. Also: DpbusdBcast, SllvBcast,
// Permb.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)  // clang has no such warning
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>

namespace inferd::cpu {
// acc + vpdpbusd(c, the 4 bytes at p in every lane), with the broadcast folded into the
// instruction's memory operand ({1to16}); GCC 12 does not fold _mm512_set1_epi32 of a load,
// and a separate vpbroadcastd per vpdpbusd costs a slot in the unit tiles' inner loops.
inline __m512i DpbusdBcast(__m512i acc, __m512i c, const int8_t* p) {
  asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(c), "m"(*reinterpret_cast<const int32_t*>(p)));
  return acc;
}
// table[idx & 63] in every byte: AVX512-VBMI's vpermb, as inline asm so that a file built
// without -mavx512vbmi can hold it; callers check the CPU's avx512vbmi bit first.
inline __m512i Permb(__m512i table, __m512i idx) {
  __m512i r;
  asm("vpermb %1, %2, %0" : "=v"(r) : "v"(table), "v"(idx));
  return r;
}
// v << (the int32 at p) in every lane (vpsllvd with the broadcast folded, as above).
inline __m512i SllvBcast(__m512i v, const int32_t* p) {
  asm("vpsllvd %1%{1to16%}, %0, %0" : "+v"(v) : "m"(*p));
  return v;
}
}  // namespace inferd::cpu
