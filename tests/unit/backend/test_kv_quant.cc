// The 1-byte KV cache codes (backend/cpu/kv_quant.h): the code values the kernels read, the
// per-vector scale, rounding and saturation (the fp8 conversions themselves:
// tests/unit/util/test_float8.cc; all of it against torch: tests/reference/test_kv_quant.py).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <vector>

#include "backend/cpu/kv_quant.h"
#include "backend/cpu/vec16.h"
#include "format/ggml_types.h"
#include "util/float8.h"

namespace inferd {
namespace {

using cpu::KvElem;

// What the kernels read: int8 as an integer, e5m2 as the high byte of an fp16, e4m3 rebuilt
// as fp16 bits times 2^8, equal to the format's value for every code but e4m3's NaNs.
TEST(KvQuant, CodeValuesAreTheFormatsValues) {
  for (int c = 0; c < 256; ++c) {
    const auto b = static_cast<uint8_t>(c);
    EXPECT_EQ(cpu::KvCodeValue(KvElem::kInt8, b), static_cast<float>(static_cast<int8_t>(b)));
    const float e5 = cpu::KvCodeValue(KvElem::kFp8E5M2, b);
    if (std::isnan(Fp8E5M2ToFp32(b))) {
      EXPECT_TRUE(std::isnan(e5));
    } else {
      EXPECT_EQ(std::bit_cast<uint32_t>(e5), std::bit_cast<uint32_t>(Fp8E5M2ToFp32(b))) << c;
    }
    const float e4 = cpu::KvCodeValue(KvElem::kFp8E4M3, b);
    if ((b & 0x7F) == 0x7F) {
      EXPECT_EQ(e4, (b & 0x80) ? -480.0f : 480.0f);  // never written
    } else {
      EXPECT_EQ(std::bit_cast<uint32_t>(e4), std::bit_cast<uint32_t>(Fp8E4M3ToFp32(b))) << c;
    }
  }
}

// The plain vector type's widening (the kernels' reference, vec16.h) gives the code values
// (e4m3: / 2^8, folded into the scale by the kernels).
TEST(KvQuant, GenericWideningMatchesCodeValues) {
  uint8_t bytes[256];
  for (int c = 0; c < 256; ++c) bytes[c] = static_cast<uint8_t>(c);
  for (int c0 = 0; c0 < 256; c0 += 16) {
    const auto i8 = cpu::VecGeneric::Load(reinterpret_cast<const cpu::CodeInt8*>(bytes + c0));
    const auto e4 = cpu::VecGeneric::Load(reinterpret_cast<const cpu::CodeE4M3*>(bytes + c0));
    const auto e5 = cpu::VecGeneric::LoadN(reinterpret_cast<const cpu::CodeE5M2*>(bytes + c0), 16);
    for (int j = 0; j < 16; ++j) {
      const auto b = static_cast<uint8_t>(c0 + j);
      EXPECT_EQ(i8.Lane(j), cpu::KvCodeValue(KvElem::kInt8, b));
      EXPECT_EQ(e4.Lane(j) * cpu::kFp8E4M3HalfUnit, cpu::KvCodeValue(KvElem::kFp8E4M3, b)) << int(b);
      const float v5 = cpu::KvCodeValue(KvElem::kFp8E5M2, b);
      if (!std::isnan(v5)) {
        EXPECT_EQ(e5.Lane(j), v5) << int(b);
      }
    }
  }
  const auto part = cpu::VecGeneric::LoadN(reinterpret_cast<const cpu::CodeInt8*>(bytes + 250), 3);
  EXPECT_EQ(part.Lane(2), -4.0f);  // 252
  EXPECT_EQ(part.Lane(3), 0.0f);   // lanes >= n are 0
}

TEST(KvQuant, ScaleIsAmaxOverMaxInFp16AndCodesAreNearest) {
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  for (KvElem e : {KvElem::kInt8, KvElem::kFp8E4M3, KvElem::kFp8E5M2}) {
    SCOPED_TRACE(cpu::KvElemName(e));
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<float> x(64);
      for (auto& v : x) v = dist(rng);
      uint8_t codes[64 * 3];
      const uint16_t s = cpu::QuantizeKvVector(e, x.data(), 64, codes, 3);  // strided, like K
      float amax = 0;
      for (float v : x) amax = std::max(amax, std::fabs(v));
      ASSERT_EQ(s, Fp32ToFp16(amax / cpu::KvCodeMax(e)));
      const float sf = Fp16ToFp32(s);
      for (int i = 0; i < 64; ++i) {
        const float y = x[i] / sf;
        const uint8_t c = codes[3 * i];
        const float got = cpu::KvCodeValue(e, c);
        ASSERT_LE(std::fabs(got), cpu::KvCodeMax(e));
        // No code is nearer to y (ties: the even one, checked against the conversions above).
        for (int o = 0; o < 256; ++o) {
          const float other = cpu::KvCodeValue(e, static_cast<uint8_t>(o));
          if (std::isnan(other) || std::fabs(other) > cpu::KvCodeMax(e)) continue;
          ASSERT_LE(std::fabs(got - y), std::fabs(other - y)) << "x " << x[i] << " code " << int(c) << " vs " << o;
        }
        const uint8_t direct = e == KvElem::kInt8     ? static_cast<uint8_t>(static_cast<int8_t>(std::nearbyint(y)))
                               : e == KvElem::kFp8E4M3 ? Fp32ToFp8E4M3(y)
                                                       : Fp32ToFp8E5M2(y);
        ASSERT_EQ(c, direct);
      }
    }
  }
}

TEST(KvQuant, SaturatesWhenTheFp16ScaleRoundsDown) {
  // amax / 127 = 8.9e-8 lies between the fp16 subnormals 5.96e-8 and 1.19e-7 and rounds to
  // the smaller: amax / s = 190 > 127, so the largest elements saturate.
  const float s_small = std::ldexp(1.0f, -24);
  std::vector<float> x = {8.9e-8f * 127.0f, -8.9e-8f * 127.0f, 0.5f * 8.9e-8f * 127.0f, 0.0f};
  uint8_t codes[4];
  const uint16_t s = cpu::QuantizeKvVector(KvElem::kInt8, x.data(), 4, codes, 1);
  ASSERT_EQ(Fp16ToFp32(s), s_small);
  EXPECT_EQ(static_cast<int8_t>(codes[0]), 127);
  EXPECT_EQ(static_cast<int8_t>(codes[1]), -127);
  EXPECT_EQ(static_cast<int8_t>(codes[2]), 95);  // 94.8
  EXPECT_EQ(codes[3], 0);
  // fp8: the same vector saturates at +-max.
  for (KvElem e : {KvElem::kFp8E4M3, KvElem::kFp8E5M2}) {
    const float m = cpu::KvCodeMax(e);
    std::vector<float> y = {m * 8.9e-8f, -m * 8.9e-8f};
    const uint16_t se = cpu::QuantizeKvVector(e, y.data(), 2, codes, 1);
    ASSERT_EQ(Fp16ToFp32(se), s_small) << cpu::KvElemName(e);
    EXPECT_EQ(cpu::KvCodeValue(e, codes[0]), m);
    EXPECT_EQ(cpu::KvCodeValue(e, codes[1]), -m);
  }
  // Very large vectors: the scale stops at fp16's largest finite value, codes saturate.
  std::vector<float> big = {1e30f, -2.0f};
  const uint16_t sb = cpu::QuantizeKvVector(KvElem::kInt8, big.data(), 2, codes, 1);
  EXPECT_EQ(Fp16ToFp32(sb), 65504.0f);
  EXPECT_EQ(static_cast<int8_t>(codes[0]), 127);
  EXPECT_EQ(static_cast<int8_t>(codes[1]), 0);
}

TEST(KvQuant, ZeroAndNonFiniteVectors) {
  for (KvElem e : {KvElem::kInt8, KvElem::kFp8E4M3, KvElem::kFp8E5M2}) {
    uint8_t codes[3] = {1, 2, 3};
    const float zeros[3] = {0.0f, -0.0f, 0.0f};
    EXPECT_EQ(cpu::QuantizeKvVector(e, zeros, 3, codes, 1), 0);  // s = 0: codes 0, reads as 0
    EXPECT_EQ(codes[0] | codes[1] | codes[2], 0);
    // Too small for a nonzero fp16 scale: all 0 as well.
    const float tiny[3] = {1e-12f, -1e-12f, 0.0f};
    EXPECT_EQ(cpu::QuantizeKvVector(e, tiny, 3, codes, 1), 0);
    EXPECT_EQ(codes[0] | codes[1], 0);
    // NaN or inf: NaN scale, codes 0 (the vector reads as NaN).
    for (float bad : {NAN, INFINITY, -INFINITY}) {
      const float x[3] = {1.0f, bad, 2.0f};
      codes[0] = codes[1] = codes[2] = 7;
      const uint16_t s = cpu::QuantizeKvVector(e, x, 3, codes, 1);
      EXPECT_TRUE(std::isnan(Fp16ToFp32(s)));
      EXPECT_EQ(codes[0] | codes[1] | codes[2], 0);
    }
  }
}

}  // namespace
}  // namespace inferd
