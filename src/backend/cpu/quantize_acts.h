// The row loop of every ISA's QKernels::quantize (qgemm.h): per 32-block, or per 256 with
// two-level scales (CoarseScales). Each ISA brings its 32-element max |x| and its 32-block
// quantization at a given inverse scale (returning the sum of q); max is exact and the
// codes are nearbyint(x * id) everywhere, so every ISA gives the same bits.
#pragma once

#include <cstdint>

#include "backend/cpu/qgemm.h"

namespace inferd::cpu {

// Static: each ISA's file keeps its own copy (with external linkage the instantiations for
// the same function-pointer types would be one symbol, compiled with some file's flags).
template <class AbsMax32, class QuantizeBlock>
static inline void QuantizeActRows(const float* x, int64_t ldx, int64_t nt, int64_t k, int64_t block, int8_t* q,
                                   float* d, int32_t* s, int32_t* e, AbsMax32 abs_max,
                                   QuantizeBlock quantize_block) {
  const int64_t nb = k / kQBlock;
  for (int64_t t = 0; t < nt; ++t) {
    for (int64_t u = 0; u < k / block; ++u) {
      const float* xu = x + t * ldx + u * block;
      int8_t* qu = q + t * k + u * block;
      const int64_t b0 = t * nb + u * (block / kQBlock);
      if (block == kQBlock) {
        const float db = abs_max(xu) / 127.0f;
        d[b0] = db;
        s[b0] = quantize_block(xu, db != 0.0f ? 1.0f / db : 0.0f, qu);
        continue;
      }
      float amax[8];
      for (int b = 0; b < 8; ++b) amax[b] = abs_max(xu + b * kQBlock);
      const float du = CoarseScales(amax, e + b0);
      d[t * (k / block) + u] = du;
      for (int b = 0; b < 8; ++b) {
        const float db = du * static_cast<float>(1 << e[b0 + b]);
        s[b0 + b] = quantize_block(xu + b * kQBlock, db != 0.0f ? 1.0f / db : 0.0f, qu + b * kQBlock);
      }
    }
  }
}

}  // namespace inferd::cpu
