#include "backend/cpu/kv_quant.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "format/ggml_types.h"
#include "util/float8.h"

namespace inferd::cpu {

const char* KvElemName(KvElem e) {
  switch (e) {
    case KvElem::kF32: return "fp32";
    case KvElem::kF16: return "fp16";
    case KvElem::kInt8: return "int8";
    case KvElem::kFp8E4M3: return "fp8_e4m3";
    case KvElem::kFp8E5M2: return "fp8_e5m2";
  }
  return "?";
}

float KvCodeMax(KvElem e) {
  switch (e) {
    case KvElem::kInt8: return 127.0f;
    case KvElem::kFp8E4M3: return kFp8E4M3Max;
    case KvElem::kFp8E5M2: return kFp8E5M2Max;
    default: return 0.0f;
  }
}

namespace {

constexpr uint16_t kHalfNaN = 0x7E00;
constexpr float kHalfMax = 65504.0f;

template <class Encode>
void EncodeAll(const float* x, int64_t n, float s, uint8_t* codes, int64_t stride, Encode encode) {
  for (int64_t i = 0; i < n; ++i) codes[i * stride] = encode(x[i] / s);
}

}  // namespace

uint16_t QuantizeKvVector(KvElem e, const float* x, int64_t n, uint8_t* codes, int64_t stride) {
  float amax = 0.0f;
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    finite = finite && a <= std::numeric_limits<float>::max();  // false for NaN and inf
    amax = amax < a ? a : amax;
  }
  const uint16_t s = finite ? Fp32ToFp16(std::min(amax / KvCodeMax(e), kHalfMax)) : kHalfNaN;
  const float sf = Fp16ToFp32(s);
  if (!finite || sf == 0.0f) {
    for (int64_t i = 0; i < n; ++i) codes[i * stride] = 0;
    return s;
  }
  switch (e) {
    case KvElem::kInt8:
      EncodeAll(x, n, sf, codes, stride, [](float y) {
        // Round to nearest even by adding and subtracting 1.5 * 2^23 (exact for |y| <= 2^22;
        // std::nearbyint is a libm call on baseline x86-64).
        const float r = (std::clamp(y, -127.0f, 127.0f) + 12582912.0f) - 12582912.0f;
        return static_cast<uint8_t>(static_cast<int8_t>(r));
      });
      break;
    case KvElem::kFp8E4M3: EncodeAll(x, n, sf, codes, stride, Fp32ToFp8E4M3); break;
    case KvElem::kFp8E5M2: EncodeAll(x, n, sf, codes, stride, Fp32ToFp8E5M2); break;
    default: break;
  }
  return s;
}

float KvCodeValue(KvElem e, uint8_t c) {
  switch (e) {
    case KvElem::kInt8: return static_cast<float>(static_cast<int8_t>(c));
    case KvElem::kFp8E4M3: return Fp16ToFp32(Fp8E4M3HalfBits(c)) * kFp8E4M3HalfUnit;
    case KvElem::kFp8E5M2: return Fp16ToFp32(static_cast<uint16_t>(c << 8));
    default: return std::numeric_limits<float>::quiet_NaN();
  }
}

}  // namespace inferd::cpu
