#include "format/ggml_types.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace inferd {
namespace {

void PutHalf(std::vector<uint8_t>& b, size_t at, float f) {
  const uint16_t h = Fp32ToFp16(f);
  std::memcpy(b.data() + at, &h, 2);
}

std::vector<float> Dequant(GgmlType t, const std::vector<uint8_t>& b) {
  const int64_t n = static_cast<int64_t>(b.size() / GgmlTypeSize(t)) * GgmlBlockSize(t);
  std::vector<float> out(static_cast<size_t>(n));
  DequantizeRow(t, b.data(), out.data(), n);
  return out;
}

// inferd's internal I4Z128 (AWQ / GPTQ rows): named and dequantized, but no GGML id, so a
// GGUF file can neither hold it nor list it among the supported types.
TEST(GgmlTypes, InternalI4Z128) {
  const uint32_t id = static_cast<uint32_t>(GgmlType::kI4Z128);
  EXPECT_EQ(GgmlTypeName(id), "i4z128");
  EXPECT_FALSE(GgmlTypeIsKnown(id));
  EXPECT_TRUE(GgmlTypeIsSupported(GgmlType::kI4Z128));
  EXPECT_EQ(GgmlBlockSize(GgmlType::kI4Z128), 128);
  EXPECT_EQ(GgmlTypeSize(GgmlType::kI4Z128), 67u);
  EXPECT_EQ(GgmlRowSize(GgmlType::kI4Z128, 4096), 32u * 67u);
  EXPECT_EQ(SupportedGgmlTypeNames().find("i4z128"), std::string::npos);
  // s = 0.5, z = 3; element e has code e % 16: qs[16 i + l] = (l) | (l << 4) for l < 16.
  std::vector<uint8_t> b(67, 0);
  PutHalf(b, 0, 0.5f);
  b[2] = 3;
  for (int i = 0; i < 4; ++i) {
    for (int l = 0; l < 16; ++l) b[3 + 16 * i + l] = static_cast<uint8_t>(l | (15 - l) << 4);
  }
  const std::vector<float> y = Dequant(GgmlType::kI4Z128, b);
  ASSERT_EQ(y.size(), 128u);
  for (int e = 0; e < 128; ++e) {
    const int u = e % 32 < 16 ? e % 16 : 15 - e % 16;
    EXPECT_EQ(y[e], 0.5f * static_cast<float>(u - 3)) << e;
  }
}

TEST(GgmlTypes, TableMatchesGgml) {
  EXPECT_EQ(GgmlTypeName(12), "q4_K");
  EXPECT_EQ(GgmlTypeName(30), "bf16");
  EXPECT_EQ(GgmlTypeName(4), "type(4)");
  EXPECT_EQ(GgmlTypeName(16), "iq2_xxs");
  EXPECT_EQ(GgmlTypeName(39), "mxfp4");
  EXPECT_EQ(GgmlTypeName(42), "q2_0");
  EXPECT_TRUE(GgmlTypeIsKnown(23));
  EXPECT_TRUE(GgmlTypeIsKnown(42));  // the last id of the pinned llama.cpp's ggml.h
  EXPECT_FALSE(GgmlTypeIsKnown(31));
  EXPECT_FALSE(GgmlTypeIsKnown(43));
  EXPECT_FALSE(GgmlTypeIsKnown(1000));
  EXPECT_TRUE(GgmlTypeIsSupported(GgmlType::kQ6_K));
  EXPECT_TRUE(GgmlTypeIsSupported(GgmlType::kQ2_K));
  EXPECT_TRUE(GgmlTypeIsSupported(GgmlType::kIQ4_XS));
  EXPECT_FALSE(GgmlTypeIsSupported(GgmlType::kQ8_K));
  EXPECT_FALSE(GgmlTypeIsSupported(GgmlType::kNVFP4));
  for (GgmlType t : {GgmlType::kIQ2_XXS, GgmlType::kIQ2_XS, GgmlType::kIQ2_S, GgmlType::kIQ3_XXS, GgmlType::kIQ3_S,
                     GgmlType::kIQ1_S, GgmlType::kIQ1_M, GgmlType::kTQ1_0, GgmlType::kTQ2_0, GgmlType::kMXFP4}) {
    EXPECT_TRUE(GgmlTypeIsSupported(t));
    EXPECT_TRUE(GgmlTypeIsReferenceOnly(t));
  }
  for (GgmlType t : {GgmlType::kF16, GgmlType::kQ4_0, GgmlType::kQ2_K, GgmlType::kIQ4_NL, GgmlType::kIQ4_XS}) {
    EXPECT_FALSE(GgmlTypeIsReferenceOnly(t));
  }
  EXPECT_FALSE(GgmlTypeIsSupported(static_cast<GgmlType>(4)));
  EXPECT_EQ(SupportedGgmlTypeNames(), "f32, f16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K, "
            "iq2_xxs, iq2_xs, iq3_xxs, iq1_s, iq4_nl, iq3_s, iq2_s, iq4_xs, iq1_m, bf16, tq1_0, tq2_0, mxfp4");
  const struct { GgmlType t; int64_t block; size_t bytes; } expected[] = {
      {GgmlType::kF32, 1, 4},      {GgmlType::kF16, 1, 2},      {GgmlType::kBF16, 1, 2},
      {GgmlType::kQ4_0, 32, 18},   {GgmlType::kQ4_1, 32, 20},   {GgmlType::kQ5_0, 32, 22},
      {GgmlType::kQ5_1, 32, 24},   {GgmlType::kQ8_0, 32, 34},   {GgmlType::kQ8_1, 32, 40},
      {GgmlType::kQ2_K, 256, 84},  {GgmlType::kQ3_K, 256, 110}, {GgmlType::kQ4_K, 256, 144},
      {GgmlType::kQ5_K, 256, 176}, {GgmlType::kQ6_K, 256, 210}, {GgmlType::kQ8_K, 256, 292},
      {GgmlType::kIQ2_XXS, 256, 66}, {GgmlType::kIQ2_XS, 256, 74}, {GgmlType::kIQ3_XXS, 256, 98},
      {GgmlType::kIQ1_S, 256, 50}, {GgmlType::kIQ4_NL, 32, 18},   {GgmlType::kIQ3_S, 256, 110},
      {GgmlType::kIQ2_S, 256, 82},  {GgmlType::kIQ4_XS, 256, 136}, {GgmlType::kIQ1_M, 256, 56},
      {GgmlType::kTQ1_0, 256, 54},  {GgmlType::kTQ2_0, 256, 66},  {GgmlType::kMXFP4, 32, 17},
      {GgmlType::kNVFP4, 64, 36},   {GgmlType::kQ1_0, 128, 18},   {GgmlType::kQ2_0, 64, 18},
  };
  for (const auto& e : expected) {
    EXPECT_EQ(GgmlBlockSize(e.t), e.block) << GgmlTypeName(static_cast<uint32_t>(e.t));
    EXPECT_EQ(GgmlTypeSize(e.t), e.bytes) << GgmlTypeName(static_cast<uint32_t>(e.t));
  }
  EXPECT_EQ(GgmlRowSize(GgmlType::kQ4_K, 576 * 4), 9u * 144u);
  EXPECT_EQ(GgmlRowSize(GgmlType::kF16, 7), 14u);
}

TEST(Fp16, KnownValues) {
  EXPECT_EQ(Fp32ToFp16(1.0f), 0x3C00);
  EXPECT_EQ(Fp32ToFp16(-2.0f), 0xC000);
  EXPECT_EQ(Fp32ToFp16(65504.0f), 0x7BFF);
  EXPECT_EQ(Fp32ToFp16(65520.0f), 0x7C00);  // rounds up to inf
  EXPECT_EQ(Fp32ToFp16(65519.0f), 0x7BFF);
  EXPECT_EQ(Fp32ToFp16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.0f, -25)), 0x0000);  // tie -> even (0)
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(Fp32ToFp16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 ulp tie -> even (2)
  EXPECT_EQ(Fp32ToFp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie -> even
  EXPECT_EQ(Fp32ToFp16(1.0f + std::ldexp(3.0f, -11)), 0x3C02);  // tie -> even (up)
  EXPECT_EQ(Fp32ToFp16(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(Fp16ToFp32(Fp32ToFp16(std::nanf("")))));
  EXPECT_EQ(Fp16ToFp32(0x3555), 0.333251953125f);
  EXPECT_EQ(Fp16ToFp32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(Fp16ToFp32(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_TRUE(std::isinf(Fp16ToFp32(0xFC00)));
  // Every finite half survives the round trip exactly.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00) continue;
    ASSERT_EQ(Fp32ToFp16(Fp16ToFp32(static_cast<uint16_t>(h))), h) << h;
  }
}

TEST(Bf16, KnownValues) {
  EXPECT_EQ(Fp32ToBf16(1.0f), 0x3F80);
  EXPECT_EQ(Bf16ToFp32(0x3F80), 1.0f);
  EXPECT_EQ(Fp32ToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);  // tie -> even
  EXPECT_EQ(Fp32ToBf16(1.0f + std::ldexp(3.0f, -8)), 0x3F82);
  EXPECT_TRUE(std::isnan(Bf16ToFp32(Fp32ToBf16(std::nanf("")))));
  for (uint32_t b = 0; b < 0x10000; ++b) {
    if ((b & 0x7F80) == 0x7F80) continue;
    ASSERT_EQ(Fp32ToBf16(Bf16ToFp32(static_cast<uint16_t>(b))), b);
  }
}

// Hand-made blocks: each test sets scales and codes so the expected values are obvious.

TEST(Dequantize, Q4_0) {
  std::vector<uint8_t> b(18);
  PutHalf(b, 0, 0.5f);
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = Dequant(GgmlType::kQ4_0, b);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 0.5f);
    EXPECT_EQ(y[16 + j], (15 - j - 8) * 0.5f);
  }
}

TEST(Dequantize, Q4_1) {
  std::vector<uint8_t> b(20);
  PutHalf(b, 0, 0.25f);
  PutHalf(b, 2, -1.0f);
  for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<uint8_t>(j | (3 << 4));
  const std::vector<float> y = Dequant(GgmlType::kQ4_1, b);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], j * 0.25f - 1.0f);
    EXPECT_EQ(y[16 + j], 3 * 0.25f - 1.0f);
  }
}

TEST(Dequantize, Q5_0AndQ5_1) {
  // qh bit i sets bit 4 of element i: set bits for elements 1 and 17 only.
  std::vector<uint8_t> b(22);
  PutHalf(b, 0, 2.0f);
  const uint32_t qh = (1u << 1) | (1u << 17);
  std::memcpy(b.data() + 2, &qh, 4);
  for (int j = 0; j < 16; ++j) b[6 + j] = static_cast<uint8_t>(j | (j << 4));
  std::vector<float> y = Dequant(GgmlType::kQ5_0, b);
  for (int j = 0; j < 16; ++j) {
    const int hi = j == 1 ? 16 : 0;
    EXPECT_EQ(y[j], (j + hi - 16) * 2.0f) << j;
    EXPECT_EQ(y[16 + j], (j + hi - 16) * 2.0f) << j;
  }
  std::vector<uint8_t> c(24);
  PutHalf(c, 0, 1.0f);
  PutHalf(c, 2, 0.5f);
  std::memcpy(c.data() + 4, &qh, 4);
  for (int j = 0; j < 16; ++j) c[8 + j] = static_cast<uint8_t>(j | (j << 4));
  y = Dequant(GgmlType::kQ5_1, c);
  EXPECT_EQ(y[0], 0.5f);
  EXPECT_EQ(y[1], 17.5f);
  EXPECT_EQ(y[17], 17.5f);
  EXPECT_EQ(y[31], 15.5f);
}

TEST(Dequantize, Q8_0) {
  std::vector<uint8_t> b(34);
  PutHalf(b, 0, 0.125f);
  for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j * 8 - 128));
  const std::vector<float> y = Dequant(GgmlType::kQ8_0, b);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j * 8 - 128) * 0.125f);
}

// K-quant scale bytes: sub-block s < 4 has scale bytes[s] & 63 and min bytes[s+4] & 63.
// For s >= 4, scale = (bytes[s+4] & 15) | (bytes[s-4] >> 6) << 4, min = (bytes[s+4] >> 4) |
// (bytes[s] >> 6) << 4.
void PackKScales(const int sc[8], const int mn[8], uint8_t* out) {
  for (int s = 0; s < 4; ++s) {
    out[s] = static_cast<uint8_t>((sc[s] & 63) | ((sc[s + 4] >> 4) << 6));
    out[s + 4] = static_cast<uint8_t>((mn[s] & 63) | ((mn[s + 4] >> 4) << 6));
    out[s + 8] = static_cast<uint8_t>((sc[s + 4] & 15) | ((mn[s + 4] & 15) << 4));
  }
}

TEST(Dequantize, Q4_K) {
  std::vector<uint8_t> b(144);
  PutHalf(b, 0, 0.5f);
  PutHalf(b, 2, 0.25f);
  const int sc[8] = {1, 2, 3, 63, 17, 40, 5, 33};
  const int mn[8] = {0, 1, 2, 3, 63, 20, 48, 7};
  PackKScales(sc, mn, b.data() + 4);
  // qs[32c + l]: low nibble -> sub-block 2c element l, high nibble -> sub-block 2c+1.
  for (int i = 0; i < 128; ++i) b[16 + i] = static_cast<uint8_t>((i % 16) | (((i + 5) % 16) << 4));
  const std::vector<float> y = Dequant(GgmlType::kQ4_K, b);
  for (int s = 0; s < 8; ++s) {
    for (int l = 0; l < 32; ++l) {
      const int i = (s / 2) * 32 + l;
      const int q = s % 2 == 0 ? i % 16 : (i + 5) % 16;
      EXPECT_EQ(y[s * 32 + l], 0.5f * sc[s] * q - 0.25f * mn[s]) << s << "," << l;
    }
  }
}

TEST(Dequantize, Q5_K) {
  std::vector<uint8_t> b(176);
  PutHalf(b, 0, 1.0f);
  PutHalf(b, 2, 0.5f);
  const int sc[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const int mn[8] = {8, 7, 6, 5, 4, 3, 2, 1};
  PackKScales(sc, mn, b.data() + 4);
  // qh[l] bit s = high bit of sub-block s element l: set it for odd l in even sub-blocks.
  for (int l = 0; l < 32; ++l) b[16 + l] = (l % 2) ? 0x55 : 0x00;
  for (int i = 0; i < 128; ++i) b[48 + i] = static_cast<uint8_t>(0x3 | (0xC << 4));
  const std::vector<float> y = Dequant(GgmlType::kQ5_K, b);
  for (int s = 0; s < 8; ++s) {
    for (int l = 0; l < 32; ++l) {
      const int q = (s % 2 == 0 ? 3 : 12) + ((s % 2 == 0 && l % 2 == 1) ? 16 : 0);
      EXPECT_EQ(y[s * 32 + l], 1.0f * sc[s] * q - 0.5f * mn[s]) << s << "," << l;
    }
  }
}

TEST(Dequantize, Q6_K) {
  std::vector<uint8_t> b(210);
  // Encode q(e) = (e * 7) % 64 for element e, then check value = d * scale[e / 16] * (q - 32).
  auto q_of = [](int e) { return (e * 7) % 64; };
  for (int e = 0; e < 256; ++e) {
    const int half = e / 128, r = e % 128, k = r / 32, l = r % 32;
    const int q = q_of(e);
    uint8_t& lo = b[half * 64 + l + (k % 2) * 32];
    lo = static_cast<uint8_t>(k < 2 ? (lo & 0xF0) | (q & 15) : (lo & 0x0F) | ((q & 15) << 4));
    b[128 + half * 32 + l] |= static_cast<uint8_t>((q >> 4) << (2 * k));
  }
  for (int s = 0; s < 16; ++s) b[192 + s] = static_cast<uint8_t>(static_cast<int8_t>(s * 9 - 70));
  PutHalf(b, 208, 0.125f);
  const std::vector<float> y = Dequant(GgmlType::kQ6_K, b);
  for (int e = 0; e < 256; ++e) {
    EXPECT_EQ(y[e], 0.125f * static_cast<float>((e / 16) * 9 - 70) * (q_of(e) - 32)) << e;
  }
}

// Q2_K and Q3_K share the 2-bit layout: element e = 128 h + 32 k + l (l < 32) is
// (qs[32 h + l] >> 2k) & 3, in sub-block 8 h + 2 k + l / 16.
void PutCode2(uint8_t* qs, int e, int q) {
  const int h = e / 128, k = (e % 128) / 32, l = e % 32;
  qs[32 * h + l] |= static_cast<uint8_t>((q & 3) << (2 * k));
}
int SubBlock16(int e) { return 8 * (e / 128) + 2 * ((e % 128) / 32) + (e % 32) / 16; }

TEST(Dequantize, Q2_K) {
  std::vector<uint8_t> b(84);
  for (int s = 0; s < 16; ++s) b[s] = static_cast<uint8_t>((s % 16) | (((s * 5) % 16) << 4));
  auto q_of = [](int e) { return (e * 3 + e / 7) % 4; };
  for (int e = 0; e < 256; ++e) PutCode2(b.data() + 16, e, q_of(e));
  PutHalf(b, 80, 0.5f);
  PutHalf(b, 82, 0.125f);
  const std::vector<float> y = Dequant(GgmlType::kQ2_K, b);
  for (int e = 0; e < 256; ++e) {
    const int s = SubBlock16(e);
    EXPECT_EQ(y[e], 0.5f * static_cast<float>(s) * q_of(e) - 0.125f * static_cast<float>((s * 5) % 16)) << e;
  }
}

TEST(Dequantize, Q3_K) {
  std::vector<uint8_t> b(110);
  auto q_of = [](int e) { return (e * 5 + e / 9) % 8 - 4; };  // [-4, 3]
  for (int e = 0; e < 256; ++e) {
    const int u = q_of(e) + 4;  // low 2 bits in qs; hmask bit set when u >= 4
    PutCode2(b.data() + 32, e, u & 3);
    if (u >= 4) b[e % 32] |= static_cast<uint8_t>(1u << (e / 32));
  }
  // 6-bit scales (stored + 32): low nibbles in bytes 0-7 (s < 8 low, s >= 8 high nibble of
  // byte s % 8), top 2 bits in bits 2 (s / 4) of byte 8 + s % 4.
  auto sc_of = [](int s) { return (s * 23 + 3) % 64; };
  for (int s = 0; s < 16; ++s) {
    b[96 + s % 8] |= static_cast<uint8_t>((sc_of(s) & 15) << (s < 8 ? 0 : 4));
    b[104 + s % 4] |= static_cast<uint8_t>((sc_of(s) >> 4) << (2 * (s / 4)));
  }
  PutHalf(b, 108, 0.25f);
  const std::vector<float> y = Dequant(GgmlType::kQ3_K, b);
  for (int e = 0; e < 256; ++e) {
    EXPECT_EQ(y[e], 0.25f * static_cast<float>(sc_of(SubBlock16(e)) - 32) * q_of(e)) << e;
  }
}

constexpr int kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

TEST(Dequantize, IQ4_NL) {
  std::vector<uint8_t> b(2 * 18);
  PutHalf(b, 0, 0.5f);
  PutHalf(b, 18, -2.0f);
  for (int j = 0; j < 16; ++j) {
    b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    b[20 + j] = static_cast<uint8_t>(((j * 7) % 16) | ((j * 3 % 16) << 4));
  }
  const std::vector<float> y = Dequant(GgmlType::kIQ4_NL, b);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * kIq4Levels[j]);
    EXPECT_EQ(y[j + 16], 0.5f * kIq4Levels[15 - j]);
    EXPECT_EQ(y[32 + j], -2.0f * kIq4Levels[(j * 7) % 16]);
    EXPECT_EQ(y[48 + j], -2.0f * kIq4Levels[j * 3 % 16]);
  }
}

TEST(Dequantize, IQ4_XS) {
  std::vector<uint8_t> b(136);
  PutHalf(b, 0, 0.125f);
  // Sub-block s's 6-bit scale (stored + 32): low 4 bits in nibble s % 2 of byte 4 + s / 2,
  // top 2 bits in bits 2s of the uint16 at byte 2.
  auto ls_of = [](int s) { return (s * 19 + 7) % 64; };
  uint16_t scales_h = 0;
  for (int s = 0; s < 8; ++s) {
    b[4 + s / 2] |= static_cast<uint8_t>((ls_of(s) & 15) << (4 * (s % 2)));
    scales_h |= static_cast<uint16_t>((ls_of(s) >> 4) << (2 * s));
  }
  std::memcpy(b.data() + 2, &scales_h, 2);
  for (int i = 0; i < 128; ++i) b[8 + i] = static_cast<uint8_t>((i % 16) | (((i * 5 + 1) % 16) << 4));
  const std::vector<float> y = Dequant(GgmlType::kIQ4_XS, b);
  for (int s = 0; s < 8; ++s) {
    const float dl = 0.125f * static_cast<float>(ls_of(s) - 32);
    for (int j = 0; j < 16; ++j) {
      const int i = 16 * s + j;
      EXPECT_EQ(y[32 * s + j], dl * kIq4Levels[i % 16]) << s << "," << j;
      EXPECT_EQ(y[32 * s + j + 16], dl * kIq4Levels[(i * 5 + 1) % 16]) << s << "," << j;
    }
  }
}

TEST(Dequantize, TQ2_0) {
  std::vector<uint8_t> b(66);
  // Element e = 128 h + 32 l + m is (qs[32 h + m] >> 2l) & 3; value d * (q - 1).
  auto q_of = [](int e) { return (e * 7 + e / 5) % 4; };
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, l = (e % 128) / 32, m = e % 32;
    b[32 * h + m] |= static_cast<uint8_t>(q_of(e) << (2 * l));
  }
  PutHalf(b, 64, 0.5f);
  const std::vector<float> y = Dequant(GgmlType::kTQ2_0, b);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 0.5f * static_cast<float>(q_of(e) - 1)) << e;
}

TEST(Dequantize, TQ1_0) {
  // Ternary digits t in {0, 1, 2}, encoded as GGML does: the digits of a byte (5 in qs, 4 in
  // qh) read as a base-3 fraction, v = sum t_n 3^(4-n), stored as ceil(v * 256 / 243).
  // Element order: qs[m] (m < 32) holds elements 32 n + m; qs[32 + m] 160 + 16 n + m; qh[m]
  // 240 + 4 n + m.
  auto t_of = [](int e) { return (e * 5 + e / 3) % 3; };
  auto encode = [](const int* digits, int count) {
    int v = 0;
    for (int n = 0; n < 5; ++n) v = 3 * v + (n < count ? digits[n] : 0);
    return static_cast<uint8_t>((v * 256 + 242) / 243);
  };
  std::vector<uint8_t> b(54);
  int digits[5];
  for (int m = 0; m < 32; ++m) {
    for (int n = 0; n < 5; ++n) digits[n] = t_of(32 * n + m);
    b[m] = encode(digits, 5);
  }
  for (int m = 0; m < 16; ++m) {
    for (int n = 0; n < 5; ++n) digits[n] = t_of(160 + 16 * n + m);
    b[32 + m] = encode(digits, 5);
  }
  for (int m = 0; m < 4; ++m) {
    for (int n = 0; n < 4; ++n) digits[n] = t_of(240 + 4 * n + m);
    b[48 + m] = encode(digits, 4);
  }
  PutHalf(b, 52, -0.25f);
  const std::vector<float> y = Dequant(GgmlType::kTQ1_0, b);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], -0.25f * static_cast<float>(t_of(e) - 1)) << e;
}

TEST(Dequantize, MXFP4) {
  // E2M1 values doubled, with the E8M0 scale halved: d = 2^(e - 128).
  const float kE2M1x2[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
  std::vector<uint8_t> b(2 * 17);
  b[0] = 128;  // d = 1
  b[17] = 0;   // d = 2^-128, a subnormal
  for (int j = 0; j < 16; ++j) {
    b[1 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    b[18 + j] = static_cast<uint8_t>(j | (j << 4));
  }
  const std::vector<float> y = Dequant(GgmlType::kMXFP4, b);
  const float tiny = std::ldexp(1.0f, -128);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], kE2M1x2[j]);
    EXPECT_EQ(y[j + 16], kE2M1x2[15 - j]);
    EXPECT_EQ(y[32 + j], tiny * kE2M1x2[j]);
  }
}

TEST(Dequantize, IQ2_XXS) {
  // Sub-block 0: grid entries 0-3 (iq2xxs_grid: 0 = all 8; 1 = 43 then 8s; 2 = 25, 25 then
  // 8s; 3 = 8, 43 then 8s), sign indices 1, 0, 127, 3 (sign bytes 0x81, 0x00, 0xff, 0x03:
  // bit 7 completes an even count of minus signs), scale 2: db = (0.5 + 2) * 0.25 = 0.625.
  std::vector<uint8_t> b(66);
  PutHalf(b, 0, 1.0f);
  const uint32_t aux0 = 0x03020100u;
  const uint32_t aux1 = 1u | (0u << 7) | (127u << 14) | (3u << 21) | (2u << 28);
  std::memcpy(b.data() + 2, &aux0, 4);
  std::memcpy(b.data() + 6, &aux1, 4);
  const std::vector<float> y = Dequant(GgmlType::kIQ2_XXS, b);
  const float want[32] = {-5, 5, 5, 5, 5, 5, 5, -5,                     // entry 0, signs 0x81
                          26.875f, 5, 5, 5, 5, 5, 5, 5,                 // entry 1, no signs
                          -15.625f, -15.625f, -5, -5, -5, -5, -5, -5,   // entry 2, all minus
                          -5, -26.875f, 5, 5, 5, 5, 5, 5};              // entry 3, signs 0x03
  for (int e = 0; e < 32; ++e) EXPECT_EQ(y[e], want[e]) << e;
  // Sub-blocks 1-7 are zero bytes: entry 0, no signs, scale 0 (db = 0.125): 8 * 0.125.
  for (int e = 32; e < 256; ++e) EXPECT_EQ(y[e], 1.0f) << e;
}

TEST(Dequantize, PlainTypes) {
  const float x[3] = {1.5f, -2.0f, 1e-3f};
  std::vector<uint8_t> f16(6), bf16(6), f32(12);
  ASSERT_TRUE(QuantizeRow(GgmlType::kF16, x, f16.data(), 3).ok());
  ASSERT_TRUE(QuantizeRow(GgmlType::kBF16, x, bf16.data(), 3).ok());
  ASSERT_TRUE(QuantizeRow(GgmlType::kF32, x, f32.data(), 3).ok());
  std::vector<float> y(3);
  DequantizeRow(GgmlType::kF32, f32.data(), y.data(), 3);
  EXPECT_EQ(y, std::vector<float>(x, x + 3));
  DequantizeRow(GgmlType::kF16, f16.data(), y.data(), 3);
  EXPECT_EQ(y[0], 1.5f);
  EXPECT_NEAR(y[2], 1e-3f, 1e-6f);
  DequantizeRow(GgmlType::kBF16, bf16.data(), y.data(), 3);
  EXPECT_EQ(y[1], -2.0f);
  EXPECT_NEAR(y[2], 1e-3f, 1e-5f);
}

// Round trip: |x - dequant(quant(x))| <= half a quantization step (+ fp16 scale rounding).
TEST(Quantize, RoundTripErrorBounds) {
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const int64_t n = 32 * 64;
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  x[5] = 0.0f;
  for (int64_t i = 64; i < 96; ++i) x[i] = 0.0f;  // an all-zero block

  for (GgmlType t : {GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ8_0}) {
    SCOPED_TRACE(GgmlTypeName(static_cast<uint32_t>(t)));
    std::vector<uint8_t> q(GgmlRowSize(t, n));
    ASSERT_TRUE(QuantizeRow(t, x.data(), q.data(), n).ok());
    std::vector<float> y(n);
    DequantizeRow(t, q.data(), y.data(), n);
    for (int64_t blk = 0; blk < n / 32; ++blk) {
      float lo = x[blk * 32], hi = lo, amax = 0;
      for (int j = 0; j < 32; ++j) {
        lo = std::min(lo, x[blk * 32 + j]);
        hi = std::max(hi, x[blk * 32 + j]);
        amax = std::max(amax, std::fabs(x[blk * 32 + j]));
      }
      // Step size per format; the bound allows half a step plus fp16 rounding of scales.
      // Q4_0 is asymmetric: codes span [-8, 7] * d with the extreme at -8, so values of
      // the opposite sign near amax clamp to 7 and may be off by up to a full step.
      const float step = t == GgmlType::kQ4_0 ? amax / 8 : t == GgmlType::kQ4_1 ? (hi - lo) / 15 : amax / 127;
      const float bound = step * (t == GgmlType::kQ4_0 ? 1.0f : 0.5f) + amax * 2e-3f + 1e-7f;
      for (int j = 0; j < 32; ++j) {
        const int64_t i = blk * 32 + j;
        ASSERT_LE(std::fabs(x[i] - y[i]), bound) << "i=" << i;
      }
    }
    for (int64_t i = 64; i < 96; ++i) EXPECT_EQ(y[i], 0.0f);
  }
  // Q8_0 is much finer than Q4: check an RMS bound too.
  std::vector<uint8_t> q(GgmlRowSize(GgmlType::kQ8_0, n));
  ASSERT_TRUE(QuantizeRow(GgmlType::kQ8_0, x.data(), q.data(), n).ok());
  std::vector<float> y(n);
  DequantizeRow(GgmlType::kQ8_0, q.data(), y.data(), n);
  double se = 0;
  for (int64_t i = 0; i < n; ++i) se += (x[i] - y[i]) * (x[i] - y[i]);
  EXPECT_LT(std::sqrt(se / n), 0.01);
}

TEST(Quantize, Q8_0RoundsHalfAwayFromZeroLikeGgml) {
  // amax 127 -> d = 1, so x * id is x: ties round away from zero (ggml's roundf), and
  // random values round as std::lround does.
  std::vector<float> x(32, 0.0f);
  const float ties[] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, -1.5f, 126.5f, -126.5f, 0.49999997f, -0.49999997f};
  std::copy(std::begin(ties), std::end(ties), x.begin());
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-127.0f, 127.0f);
  for (size_t i = std::size(ties); i < x.size(); ++i) x[i] = u(rng);
  std::vector<uint8_t> q(34);
  ASSERT_TRUE(QuantizeRow(GgmlType::kQ8_0, x.data(), q.data(), 32).ok());
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(static_cast<int8_t>(q[2 + j]), static_cast<int8_t>(std::lround(x[j]))) << "x=" << x[j];
  }
  EXPECT_EQ(static_cast<int8_t>(q[3]), 3);
  EXPECT_EQ(static_cast<int8_t>(q[4]), -3);
  EXPECT_EQ(static_cast<int8_t>(q[11]), 0);
}

TEST(Quantize, Q4_0MatchesGgmlReferenceRounding) {
  // Largest magnitude is -4 -> d = -4 / -8 = 0.5; x / d + 8.5 truncated: 1.2 -> 10 (2.4 + 8.5
  // = 10.9 -> 10), -4 -> 0, 3.9 -> 15 (clamped from 16.3).
  std::vector<float> x(32, 0.0f);
  x[0] = -4.0f;
  x[1] = 1.2f;
  x[2] = 3.9f;
  std::vector<uint8_t> q(18);
  ASSERT_TRUE(QuantizeRow(GgmlType::kQ4_0, x.data(), q.data(), 32).ok());
  EXPECT_EQ(Fp16ToFp32(static_cast<uint16_t>(q[0] | (q[1] << 8))), 0.5f);
  EXPECT_EQ(q[2] & 15, 0);
  EXPECT_EQ(q[3] & 15, 10);
  EXPECT_EQ(q[4] & 15, 15);
  EXPECT_EQ(q[5] & 15, 8);
}

TEST(Quantize, UnsupportedAndBadLength) {
  float x[256] = {};
  uint8_t out[1024];
  EXPECT_EQ(QuantizeRow(GgmlType::kQ5_K, x, out, 256).code(), StatusCode::kUnimplemented);
  EXPECT_EQ(QuantizeRow(GgmlType::kIQ4_XS, x, out, 256).code(), StatusCode::kUnimplemented);
  EXPECT_EQ(QuantizeRow(GgmlType::kQ4_K, x, out, 255).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(QuantizeRow(GgmlType::kQ8_0, x, out, 33).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace inferd
