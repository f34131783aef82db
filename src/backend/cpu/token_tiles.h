// Splits nt tokens into tiles of 8 and one remainder tile, with the tile size as a
// compile-time constant for the kernels' register arrays (the AVX-512 GEMM kernels); and
// the float panels' group x token tiles.
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

// The AVX-512 float panels' tiles (fgemm_avx512.cc, fgemm_avx512bf16.cc) over groups
// [0, ng) and tokens [0, nt): 4 groups x 1 token for one token (decode: four panel streams),
// else pairs of groups (and a last single group) in token tiles of up to 8. Calls
// f(integral_constant NG, integral_constant NT, first group, first token).
template <class F>
inline void ForPanelTiles(int64_t ng, int64_t nt, F&& f) {
  using G1 = std::integral_constant<int, 1>;
  using G2 = std::integral_constant<int, 2>;
  int64_t g = 0;
  if (nt == 1) {
    for (; g + 4 <= ng; g += 4) f(std::integral_constant<int, 4>{}, G1{}, g, int64_t{0});
  }
  for (; g + 2 <= ng; g += 2) ForTokenTiles(nt, [&](auto n, int64_t t) { f(G2{}, n, g, t); });
  for (; g < ng; ++g) ForTokenTiles(nt, [&](auto n, int64_t t) { f(G1{}, n, g, t); });
}

}  // namespace inferd::cpu
