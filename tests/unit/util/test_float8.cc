// util/float8.h: OCP E4M3FN / E5M2 conversions round to nearest even and saturate, checked by
// brute force (nearest code by scanning every code) over every fp16 value, the midpoints
// between codes and random fp32 values; decoding follows the formats' definitions.
// tests/reference/test_kv_quant.py checks the same against torch's float8 casts.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "util/float8.h"

namespace inferd {
namespace {

// IEEE half -> float, written here so that the test needs only util (exact for every half).
float HalfToFloat(uint16_t h) {
  const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
  float v;
  if (e == 31) {
    v = m == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  } else if (e == 0) {
    v = std::ldexp(static_cast<float>(m), -24);
  } else {
    v = std::ldexp(static_cast<float>(1024 + m), e - 25);
  }
  return (h & 0x8000) ? -v : v;
}

struct Fp8Format {
  const char* name;
  uint8_t (*encode)(float);
  float (*decode)(uint8_t);
  float max;
  uint8_t max_code;
  bool (*is_nan)(uint8_t);
};

const Fp8Format kE4M3{"e4m3", Fp32ToFp8E4M3, Fp8E4M3ToFp32, 448.0f, 0x7E,
                      [](uint8_t b) { return (b & 0x7F) == 0x7F; }};
const Fp8Format kE5M2{"e5m2", Fp32ToFp8E5M2, Fp8E5M2ToFp32, 57344.0f, 0x7B,
                      [](uint8_t b) { return (b & 0x7F) > 0x7C; }};

// The nearest finite code to x (|x| <= max), ties to the even code (even mantissa), by
// scanning every non-negative finite code: independent of the bit manipulation under test.
uint8_t NearestCode(const Fp8Format& f, float x) {
  const double a = std::fabs(static_cast<double>(x));
  int best = 0;
  for (int c = 1; c <= f.max_code; ++c) {
    const double dc = std::fabs(f.decode(static_cast<uint8_t>(c)) - a), db = std::fabs(f.decode(static_cast<uint8_t>(best)) - a);
    if (dc < db || (dc == db && (c & 1) == 0)) best = c;
  }
  return static_cast<uint8_t>(best | (std::signbit(x) ? 0x80 : 0));
}

TEST(Fp8, DecodeIsTheFormat) {
  // Spot values from the OCP specification's tables.
  EXPECT_EQ(Fp8E4M3ToFp32(0x7E), 448.0f);
  EXPECT_EQ(Fp8E4M3ToFp32(0x08), std::ldexp(1.0f, -6));  // smallest normal
  EXPECT_EQ(Fp8E4M3ToFp32(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(Fp8E4M3ToFp32(0x07), std::ldexp(7.0f, -9));
  EXPECT_EQ(Fp8E4M3ToFp32(0x38), 1.0f);
  EXPECT_EQ(Fp8E4M3ToFp32(0xB8), -1.0f);
  EXPECT_TRUE(std::isnan(Fp8E4M3ToFp32(0x7F)) && std::isnan(Fp8E4M3ToFp32(0xFF)));
  EXPECT_EQ(Fp8E4M3ToFp32(0x78), 256.0f);  // exponent 15 is a normal exponent in E4M3FN
  EXPECT_EQ(Fp8E5M2ToFp32(0x7B), 57344.0f);
  EXPECT_EQ(Fp8E5M2ToFp32(0x3C), 1.0f);
  EXPECT_EQ(Fp8E5M2ToFp32(0x04), std::ldexp(1.0f, -14));
  EXPECT_EQ(Fp8E5M2ToFp32(0x01), std::ldexp(1.0f, -16));
  EXPECT_EQ(Fp8E5M2ToFp32(0x7C), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(Fp8E5M2ToFp32(0x7D)));
  // e5m2 is the high byte of an fp16.
  for (int c = 0; c < 256; ++c) {
    const float h = HalfToFloat(static_cast<uint16_t>(c << 8)), e = Fp8E5M2ToFp32(static_cast<uint8_t>(c));
    if (std::isnan(e)) {
      EXPECT_TRUE(std::isnan(h)) << c;
    } else {
      EXPECT_EQ(std::bit_cast<uint32_t>(h), std::bit_cast<uint32_t>(e)) << c;
    }
  }
}

TEST(Fp8, EveryFiniteCodeRoundTrips) {
  for (const Fp8Format* f : {&kE4M3, &kE5M2}) {
    for (int c = 0; c < 256; ++c) {
      const auto b = static_cast<uint8_t>(c);
      if (f->is_nan(b)) {
        EXPECT_EQ(f->encode(f->decode(b)) & 0x7F, f->encode(NAN) & 0x7F) << f->name << " " << c;
        continue;
      }
      if (std::isinf(f->decode(b))) continue;  // saturates (below)
      EXPECT_EQ(f->encode(f->decode(b)), b) << f->name << " code " << c;
    }
  }
}

// Every fp16 value (finite ones inside the range, plus halfway points between codes), and
// random fp32 values over the whole range: round to nearest even, saturate beyond max.
TEST(Fp8, EncodeRoundsToNearestEvenAndSaturates) {
  for (const Fp8Format* f : {&kE4M3, &kE5M2}) {
    SCOPED_TRACE(f->name);
    std::vector<float> xs;
    for (uint32_t h = 0; h < 65536; ++h) xs.push_back(HalfToFloat(static_cast<uint16_t>(h)));
    for (int c = 0; c < f->max_code; ++c) {  // midpoints and their neighbours
      const float mid = 0.5f * (f->decode(static_cast<uint8_t>(c)) + f->decode(static_cast<uint8_t>(c + 1)));
      for (float x : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) {
        xs.push_back(x);
        xs.push_back(-x);
      }
    }
    std::mt19937 rng(3);
    for (int i = 0; i < 200000; ++i) {
      uint32_t bits = rng();
      if ((bits & 0x7F800000u) == 0x7F800000u) continue;  // inf / NaN: below
      xs.push_back(std::bit_cast<float>(bits));
    }
    std::uniform_real_distribution<float> in_range(-f->max * 1.1f, f->max * 1.1f);
    for (int i = 0; i < 200000; ++i) xs.push_back(in_range(rng));
    for (float x : xs) {
      if (std::isnan(x)) {
        EXPECT_TRUE(f->is_nan(f->encode(x)));
        continue;
      }
      const float clamped = std::clamp(x, -f->max, f->max);  // saturation; infinities too
      ASSERT_EQ(f->encode(x), NearestCode(*f, clamped)) << x;
    }
  }
}

}  // namespace
}  // namespace inferd
