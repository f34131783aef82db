// <immintrin.h> for the AVX-512 translation units (compiled with -mavx512f/bw/vl...).
// GCC 12 reports its own _mm512_undefined_* temporaries inside the widening and conversion
// intrinsics (_mm512_cvtph_ps, _mm512_cvtepu16_epi32, ...) as maybe-uninitialized, a false
// positive in avx512fintrin.h; at -O1 (the asan preset) the same shows as -Wuninitialized.
// Include this first; the pragmas stay in force for the rest of the file.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)  // clang has no such warning
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
