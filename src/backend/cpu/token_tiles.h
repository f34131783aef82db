// Splits nt tokens into tiles of 8 and one remainder tile, with the tile size as a
// compile-time constant for the kernels' register arrays (the AVX-512 GEMM kernels).
#pragma once

#include <cstdint>
#include <type_traits>

namespace inferd::cpu {

// Calls f(std::integral_constant<int, N>{}, t) for tiles [t, t + N) covering [0, nt), N <= 8.
template <class F>
inline void ForTokenTiles(int64_t nt, F&& f) {
  int64_t t = 0;
  for (; t + 8 <= nt; t += 8) f(std::integral_constant<int, 8>{}, t);
  switch (nt - t) {
    case 7: f(std::integral_constant<int, 7>{}, t); break;
    case 6: f(std::integral_constant<int, 6>{}, t); break;
    case 5: f(std::integral_constant<int, 5>{}, t); break;
    case 4: f(std::integral_constant<int, 4>{}, t); break;
    case 3: f(std::integral_constant<int, 3>{}, t); break;
    case 2: f(std::integral_constant<int, 2>{}, t); break;
    case 1: f(std::integral_constant<int, 1>{}, t); break;
    default: break;
  }
}

}  // namespace inferd::cpu
