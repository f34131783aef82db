// The float panels' plain kernel (qgemm.h): one fma chain per output, k in order (BF16: by
// column pairs, the odd column first, over the bf16-rounded activations xr). It is the
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

// BF16 pairs: acc = (acc + w_odd * x_odd) + w_even * x_even, each product exact in fp32.
void GemmBf16Generic(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                     float* y, int64_t ldy) {
  const int64_t kp = Bf16PairCols(w.cols);
  for (int64_t gi = 0; gi < ng; ++gi) {
    const uint8_t* grp = w.group(g0 + gi);
    for (int64_t t = 0; t < nt; ++t) {
      const float* xr = a.xr + (t0 + t) * kp;
      float acc[kGroupRows] = {};
      for (int64_t p = 0; p < kp / 2; ++p) {
        const uint8_t* pair = grp + static_cast<size_t>(p) * 2 * kGroupRows * 2;
        const float x0 = xr[2 * p], x1 = xr[2 * p + 1];
        for (int l = 0; l < kGroupRows; ++l) {
          acc[l] += PanelElemAt(PackedType::kBF16, pair + 4 * l + 2) * x1;
          acc[l] += PanelElemAt(PackedType::kBF16, pair + 4 * l) * x0;
        }
      }
      for (int l = 0; l < kGroupRows; ++l) y[t * ldy + gi * kGroupRows + l] = acc[l];
    }
  }
}

}  // namespace

void GemmFloatGeneric(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                      float* y, int64_t ldy) {
  if (w.type == PackedType::kBF16) return GemmBf16Generic(w, g0, ng, a, t0, nt, y, ldy);
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
