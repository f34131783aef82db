// The float panels' plain kernel (qgemm.h): one fma chain per output, k in order. It is the
// reference the ISA kernels match bit for bit (built with -ffp-contract=off).
#include <cmath>
#include <cstring>

#include "backend/cpu/qgemm.h"
#include "format/ggml_types.h"

namespace inferd::cpu {
namespace {

float PanelElemAt(PackedType type, const uint8_t* p) {
  uint16_t h;
  switch (type) {
    case PackedType::kF32: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    case PackedType::kF16: std::memcpy(&h, p, 2); return Fp16ToFp32(h);
    default: std::memcpy(&h, p, 2); return Bf16ToFp32(h);
  }
}

}  // namespace

void GemmFloatGeneric(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                      float* y, int64_t ldy) {
  const size_t es = FloatElemBytes(w.type);
  for (int64_t gi = 0; gi < ng; ++gi) {
    const uint8_t* grp = w.group(g0 + gi);
    for (int64_t t = 0; t < nt; ++t) {
      const float* x = a.x + (t0 + t) * a.k;
      float acc[kGroupRows] = {};
      for (int64_t k = 0; k < w.cols; ++k) {
        const uint8_t* col = grp + static_cast<size_t>(k) * kGroupRows * es;
        for (int l = 0; l < kGroupRows; ++l) acc[l] = std::fma(PanelElemAt(w.type, col + l * es), x[k], acc[l]);
      }
      for (int l = 0; l < kGroupRows; ++l) y[t * ldy + gi * kGroupRows + l] = acc[l];
    }
  }
}

}  // namespace inferd::cpu
