// Reference GGML block layouts. Every quantized block stores its scales as IEEE half
// (little-endian) followed by packed integer codes; the layouts below are GGML's on-disk
// format, so a block is read field by field with memcpy (blocks are not aligned in files).
#include "format/ggml_types.h"
#include "format/ggml_iquants.h"
#include "format/ggml_quantize.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

namespace inferd {
namespace {

static_assert(std::endian::native == std::endian::little,
              "GGUF blocks are little-endian; inferd reads them in place");

struct TypeTraits {
  uint32_t id;
  const char* name;
  int64_t block_size;  // elements per block
  size_t type_size;    // bytes per block
  bool supported;      // DequantizeRow implements it
};

// Every id GGML defines (gaps are ids GGML retired: 4, 5, 31-33, 36-38).
constexpr TypeTraits kTypes[] = {
    {0, "f32", 1, 4, true},          {1, "f16", 1, 2, true},
    {2, "q4_0", 32, 18, true},       {3, "q4_1", 32, 20, true},
    {6, "q5_0", 32, 22, true},       {7, "q5_1", 32, 24, true},
    {8, "q8_0", 32, 34, true},       {9, "q8_1", 32, 40, false},
    {10, "q2_K", 256, 84, true},     {11, "q3_K", 256, 110, true},
    {12, "q4_K", 256, 144, true},    {13, "q5_K", 256, 176, true},
    {14, "q6_K", 256, 210, true},    {15, "q8_K", 256, 292, false},
    {16, "iq2_xxs", 256, 66, true},  {17, "iq2_xs", 256, 74, true},
    {18, "iq3_xxs", 256, 98, true},  {19, "iq1_s", 256, 50, true},
    {20, "iq4_nl", 32, 18, true},    {21, "iq3_s", 256, 110, true},
    {22, "iq2_s", 256, 82, true},    {23, "iq4_xs", 256, 136, true},
    {24, "i8", 1, 1, false},         {25, "i16", 1, 2, false},
    {26, "i32", 1, 4, false},        {27, "i64", 1, 8, false},
    {28, "f64", 1, 8, false},        {29, "iq1_m", 256, 56, true},
    {30, "bf16", 1, 2, true},        {34, "tq1_0", 256, 54, true},
    {35, "tq2_0", 256, 66, true},    {39, "mxfp4", 32, 17, true},
    {40, "nvfp4", 64, 36, false},    {41, "q1_0", 128, 18, false},
    {42, "q2_0", 64, 18, false},
};

// inferd's internal types (ggml_types.h): ids outside GGML's, never in a GGUF file.
constexpr TypeTraits kInternalTypes[] = {
    {static_cast<uint32_t>(GgmlType::kI4Z128), "i4z128", 128, 67, true},
};

const TypeTraits* FindGgmlTraits(uint32_t id) {
  for (const TypeTraits& t : kTypes) {
    if (t.id == id) return &t;
  }
  return nullptr;
}

const TypeTraits* FindTraits(uint32_t id) {
  if (const TypeTraits* t = FindGgmlTraits(id)) return t;
  for (const TypeTraits& t : kInternalTypes) {
    if (t.id == id) return &t;
  }
  return nullptr;
}

// Block sizes (elements) shared by the formats below.
constexpr int kQk = 32;    // Q4_0 .. Q8_0
// K-quant super-blocks hold 256 elements: 8 sub-blocks of 32 (Q4_K/Q5_K) or 16 of 16
// (Q2_K/Q3_K/Q6_K).
constexpr int kKScaleBytes = 12;  // 8 packed 6-bit scales + 8 packed 6-bit mins

uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
float LoadHalf(const uint8_t* p) { return Fp16ToFp32(LoadU16(p)); }
void StoreHalf(uint8_t* p, float f) {
  uint16_t h = Fp32ToFp16(f);
  std::memcpy(p, &h, 2);
}

// Q4_0 block (18 B): half d; uint8 qs[16]. Element j (j < 16) is the low nibble of qs[j],
// element j + 16 the high nibble; value = (q - 8) * d.
void DequantQ4_0(const uint8_t* b, float* y) {
  const float d = LoadHalf(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < kQk / 2; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
    y[j + kQk / 2] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

// Q4_1 block (20 B): half d; half m; uint8 qs[16]; value = q * d + m (same nibble order).
void DequantQ4_1(const uint8_t* b, float* y) {
  const float d = LoadHalf(b);
  const float m = LoadHalf(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < kQk / 2; ++j) {
    y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
    y[j + kQk / 2] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

// Q5_0 block (22 B): half d; uint8 qh[4] (bit i = 5th bit of element i); uint8 qs[16]
// (nibbles as Q4_0); value = (q - 16) * d.
void DequantQ5_0(const uint8_t* b, float* y) {
  const float d = LoadHalf(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < kQk / 2; ++j) {
    const int hi0 = static_cast<int>((qh >> j) & 1u) << 4;
    const int hi1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
    y[j] = static_cast<float>(((qs[j] & 0x0F) | hi0) - 16) * d;
    y[j + kQk / 2] = static_cast<float>(((qs[j] >> 4) | hi1) - 16) * d;
  }
}

// Q5_1 block (24 B): half d; half m; uint8 qh[4]; uint8 qs[16]; value = q * d + m.
void DequantQ5_1(const uint8_t* b, float* y) {
  const float d = LoadHalf(b);
  const float m = LoadHalf(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < kQk / 2; ++j) {
    const int hi0 = static_cast<int>((qh >> j) & 1u) << 4;
    const int hi1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
    y[j] = static_cast<float>((qs[j] & 0x0F) | hi0) * d + m;
    y[j + kQk / 2] = static_cast<float>((qs[j] >> 4) | hi1) * d + m;
  }
}

// Q8_0 block (34 B): half d; int8 qs[32]; value = q * d.
void DequantQ8_0(const uint8_t* b, float* y) {
  const float d = LoadHalf(b);
  for (int j = 0; j < kQk; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

// The 12 scale bytes of Q4_K/Q5_K pack eight 6-bit (scale, min) pairs: pairs 0-3 in the
// low 6 bits of bytes 0-3 / 4-7; pairs 4-7 take their low 4 bits from bytes 8-11 and their
// top 2 bits from the spare high bits of bytes 0-3 / 4-7.
void ScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Q4_K super-block (144 B): half d; half dmin; uint8 scales[12]; uint8 qs[128].
// 8 sub-blocks of 32; sub-block pair (2i, 2i+1) uses the low / high nibbles of
// qs[32i .. 32i+31]; value = d * sc * q - dmin * m.
void DequantQ4_K(const uint8_t* b, float* y) {
  const float d = LoadHalf(b);
  const float dmin = LoadHalf(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 4 + kKScaleBytes;
  for (int is = 0; is < 8; is += 2) {
    uint8_t sc, m;
    ScaleMinK4(is, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    ScaleMinK4(is + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0x0F) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    q += 32;
  }
}

// Q5_K super-block (176 B): half d; half dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128].
// As Q4_K, plus the 5th bit of element l of sub-block s in bit s of qh[l].
void DequantQ5_K(const uint8_t* b, float* y) {
  const float d = LoadHalf(b);
  const float dmin = LoadHalf(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 4 + kKScaleBytes;
  const uint8_t* ql = qh + 32;
  for (int is = 0; is < 8; is += 2) {
    uint8_t sc, m;
    ScaleMinK4(is, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    ScaleMinK4(is + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    const uint8_t bit1 = static_cast<uint8_t>(1u << is), bit2 = static_cast<uint8_t>(2u << is);
    for (int l = 0; l < 32; ++l) {
      *y++ = d1 * static_cast<float>((ql[l] & 0x0F) + ((qh[l] & bit1) ? 16 : 0)) - m1;
    }
    for (int l = 0; l < 32; ++l) {
      *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & bit2) ? 16 : 0)) - m2;
    }
    ql += 32;
  }
}

// Q6_K super-block (210 B): uint8 ql[128] (low 4 bits); uint8 qh[64] (high 2 bits);
// int8 scales[16] (one per 16 elements); half d. value = d * scale * (q - 32).
// Each 128-element half uses ql[64], qh[32], scales[8]. For l < 32, element l + 32k takes
// its low 4 bits from: k=0 low nibble of ql[l], k=1 low nibble of ql[l+32], k=2 high nibble
// of ql[l], k=3 high nibble of ql[l+32]; its high 2 bits from qh[l] >> 2k; and its scale
// from scales[l / 16 + 2k].
void DequantQ6_K(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = LoadHalf(b + 208);
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

// Q2_K super-block (84 B): uint8 scales[16]; uint8 qs[64]; half d; half dmin.
// 16 sub-blocks of 16; scales[s] holds sub-block s's 4-bit scale (low nibble) and 4-bit min
// (high nibble). Each 128-element half reads 32 bytes of qs four times, 2 bits at a time:
// for l < 32, element l + 32k of the half is (qs[l] >> 2k) & 3, in sub-block 2k + l / 16.
// value = d * sc * q - dmin * m.
void DequantQ2_K(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* qs = b + 16;
  const float d = LoadHalf(b + 80);
  const float dmin = LoadHalf(b + 82);
  float dl[16], ml[16];
  for (int s = 0; s < 16; ++s) {
    dl[s] = d * static_cast<float>(scales[s] & 0x0F);
    ml[s] = dmin * static_cast<float>(scales[s] >> 4);
  }
  for (int e = 0; e < 256; ++e) {
    const int half = e / 128, k = (e % 128) / 32, l = e % 32;
    const int s = half * 8 + 2 * k + l / 16;
    y[e] = dl[s] * static_cast<float>((qs[half * 32 + l] >> (2 * k)) & 3) - ml[s];
  }
}

// Q3_K super-block (110 B): uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; half d.
// 16 sub-blocks of 16 with signed 6-bit scales (stored + 32): scale s takes its low 4 bits
// from the low (s < 8) or high (s >= 8) nibble of scales[s % 8] and its top 2 bits from
// bits 2 * (s / 4) of scales[8 + s % 4]. The 2 low bits of each code are laid out as Q2_K's;
// element e's third bit is bit e / 32 of hmask[e % 32], and a clear bit subtracts 4.
// value = d * (scale - 32) * q, q in [-4, 3].
void DequantQ3_K(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32;
  const uint8_t* sb = b + 96;
  const float d = LoadHalf(b + 108);
  float dl[16];
  for (int s = 0; s < 16; ++s) {
    const int lo = (sb[s % 8] >> (s < 8 ? 0 : 4)) & 0x0F;
    const int hi = (sb[8 + s % 4] >> (2 * (s / 4))) & 3;
    dl[s] = d * static_cast<float>((lo | (hi << 4)) - 32);
  }
  for (int e = 0; e < 256; ++e) {
    const int half = e / 128, k = (e % 128) / 32, l = e % 32;
    const int low = (qs[half * 32 + l] >> (2 * k)) & 3;
    const bool high = ((hmask[l] >> (e / 32)) & 1) != 0;
    const int q = low - (high ? 0 : 4);
    y[e] = dl[half * 8 + 2 * k + l / 16] * static_cast<float>(q);
  }
}

// IQ4_NL / IQ4_XS codes index a fixed non-linear table of 16 int8 levels.
constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                     1,    13,   25,  38,  53,  69,  89,  113};

// IQ4_NL block (18 B): half d; uint8 qs[16] (nibbles as Q4_0); value = d * table[q].
void DequantIQ4_NL(const uint8_t* b, float* y) {
  const float d = LoadHalf(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < kQk / 2; ++j) {
    y[j] = d * static_cast<float>(kIq4nlValues[qs[j] & 0x0F]);
    y[j + kQk / 2] = d * static_cast<float>(kIq4nlValues[qs[j] >> 4]);
  }
}

// IQ4_XS super-block (136 B): half d; uint16 scales_h; uint8 scales_l[4]; uint8 qs[128].
// 8 sub-blocks of 32, each laid out as an IQ4_NL block's codes (16 bytes of qs). Sub-block
// s's 6-bit scale: low 4 bits from nibble s % 2 of scales_l[s / 2], top 2 bits from bits
// 2s of scales_h. value = d * (scale - 32) * table[q].
void DequantIQ4_XS(const uint8_t* b, float* y) {
  const float d = LoadHalf(b);
  const uint16_t scales_h = LoadU16(b + 2);
  const uint8_t* scales_l = b + 4;
  const uint8_t* qs = b + 8;
  for (int s = 0; s < 8; ++s) {
    const int ls = ((scales_l[s / 2] >> (4 * (s % 2))) & 0x0F) | (((scales_h >> (2 * s)) & 3) << 4);
    const float dl = d * static_cast<float>(ls - 32);
    for (int j = 0; j < 16; ++j) {
      y[j] = dl * static_cast<float>(kIq4nlValues[qs[j] & 0x0F]);
      y[j + 16] = dl * static_cast<float>(kIq4nlValues[qs[j] >> 4]);
    }
    y += 32;
    qs += 16;
  }
}

// I4Z128 block (67 B, inferd-internal: AWQ / GPTQ rows): half s; uint8 z; uint8 qs[64].
// Per 32 elements i (0..3), qs[16 i + l] holds element 32 i + l in its low nibble and
// 32 i + 16 + l in its high nibble; value = (q - z) * s (exact in fp32).
void DequantI4Z128(const uint8_t* b, float* y) {
  const float s = LoadHalf(b);
  const int z = b[2];
  const uint8_t* qs = b + 3;
  for (int i = 0; i < 4; ++i) {
    for (int l = 0; l < 16; ++l) {
      y[32 * i + l] = static_cast<float>((qs[16 * i + l] & 0x0F) - z) * s;
      y[32 * i + 16 + l] = static_cast<float>((qs[16 * i + l] >> 4) - z) * s;
    }
  }
}

// Round-to-nearest reference quantizers, matching GGML's *_ref functions so that files
// written by inferd dequantize identically in other engines.
void QuantQ4_0(const float* x, uint8_t* b) {
  float amax = 0.0f, max = 0.0f;  // max keeps the sign of the largest-magnitude value
  for (int j = 0; j < kQk; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  StoreHalf(b, d);
  for (int j = 0; j < kQk / 2; ++j) {
    // +8.5 then truncation = round to nearest of x/d + 8; clamp the single value that can
    // reach 16 (the extreme itself maps to 0, the opposite extreme can overshoot).
    const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
    const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + kQk / 2] * id + 8.5f)));
    b[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
}

void QuantQ4_1(const float* x, uint8_t* b) {
  float lo = x[0], hi = x[0];
  for (int j = 1; j < kQk; ++j) {
    lo = std::min(lo, x[j]);
    hi = std::max(hi, x[j]);
  }
  const float d = (hi - lo) / 15.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  StoreHalf(b, d);
  StoreHalf(b + 2, lo);
  for (int j = 0; j < kQk / 2; ++j) {
    const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - lo) * id + 0.5f)));
    const int q1 =
        std::min(15, static_cast<int>(static_cast<int8_t>((x[j + kQk / 2] - lo) * id + 0.5f)));
    b[4 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
}

// std::lround for |v| < 2^31 (round half away from zero), without the libm call: v is
// exact in double, so adding +-0.5 there and truncating rounds exactly as lround does.
// NaN gives 0, as lround's LONG_MIN does after the int8 cast.
inline int RoundHalfAway(float v) {
  if (!(std::fabs(v) < 2147483520.0f)) return 0;
  return static_cast<int>(static_cast<double>(v) + std::copysign(0.5, static_cast<double>(v)));
}

void QuantQ8_0(const float* x, uint8_t* b) {
  float amax = 0.0f;
  for (int j = 0; j < kQk; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  StoreHalf(b, d);
  for (int j = 0; j < kQk; ++j) {
    b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(RoundHalfAway(x[j] * id)));
  }
}

}  // namespace

std::string GgmlTypeName(uint32_t type) {
  if (const TypeTraits* t = FindTraits(type)) return t->name;
  return "type(" + std::to_string(type) + ")";
}

bool GgmlTypeIsKnown(uint32_t type) { return FindGgmlTraits(type) != nullptr; }

bool GgmlTypeIsSupported(GgmlType type) {
  const TypeTraits* t = FindTraits(static_cast<uint32_t>(type));
  return t != nullptr && t->supported;
}

bool GgmlTypeIsReferenceOnly(GgmlType type) {
  switch (type) {
    case GgmlType::kIQ2_XXS:
    case GgmlType::kIQ2_XS:
    case GgmlType::kIQ2_S:
    case GgmlType::kIQ3_XXS:
    case GgmlType::kIQ3_S:
    case GgmlType::kIQ1_S:
    case GgmlType::kIQ1_M:
    case GgmlType::kTQ1_0:
    case GgmlType::kTQ2_0:
    case GgmlType::kMXFP4:
      return true;
    default:
      return false;
  }
}

std::string SupportedGgmlTypeNames() {
  std::string out;
  for (const TypeTraits& t : kTypes) {
    if (!t.supported) continue;
    if (!out.empty()) out += ", ";
    out += t.name;
  }
  return out;
}

int64_t GgmlBlockSize(GgmlType type) {
  const TypeTraits* t = FindTraits(static_cast<uint32_t>(type));
  return t != nullptr ? t->block_size : 0;
}

size_t GgmlTypeSize(GgmlType type) {
  const TypeTraits* t = FindTraits(static_cast<uint32_t>(type));
  return t != nullptr ? t->type_size : 0;
}

size_t GgmlRowSize(GgmlType type, int64_t n) {
  const TypeTraits* t = FindTraits(static_cast<uint32_t>(type));
  if (t == nullptr || n < 0) return 0;
  return static_cast<size_t>(n / t->block_size) * t->type_size;
}

void DequantizeRow(GgmlType type, const void* src, float* dst, int64_t n) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  const int64_t block = GgmlBlockSize(type);
  const size_t bytes = GgmlTypeSize(type);
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, s, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = Fp16ToFp32(LoadU16(s + 2 * i));
      return;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToFp32(LoadU16(s + 2 * i));
      return;
    default:
      break;
  }
  void (*fn)(const uint8_t*, float*) = nullptr;
  switch (type) {
    case GgmlType::kQ4_0: fn = DequantQ4_0; break;
    case GgmlType::kQ4_1: fn = DequantQ4_1; break;
    case GgmlType::kQ5_0: fn = DequantQ5_0; break;
    case GgmlType::kQ5_1: fn = DequantQ5_1; break;
    case GgmlType::kQ8_0: fn = DequantQ8_0; break;
    case GgmlType::kQ2_K: fn = DequantQ2_K; break;
    case GgmlType::kQ3_K: fn = DequantQ3_K; break;
    case GgmlType::kQ4_K: fn = DequantQ4_K; break;
    case GgmlType::kQ5_K: fn = DequantQ5_K; break;
    case GgmlType::kQ6_K: fn = DequantQ6_K; break;
    case GgmlType::kIQ4_NL: fn = DequantIQ4_NL; break;
    case GgmlType::kIQ4_XS: fn = DequantIQ4_XS; break;
    case GgmlType::kIQ2_XXS: fn = ggml_iq::DequantIQ2_XXS; break;
    case GgmlType::kIQ2_XS: fn = ggml_iq::DequantIQ2_XS; break;
    case GgmlType::kIQ2_S: fn = ggml_iq::DequantIQ2_S; break;
    case GgmlType::kIQ3_XXS: fn = ggml_iq::DequantIQ3_XXS; break;
    case GgmlType::kIQ3_S: fn = ggml_iq::DequantIQ3_S; break;
    case GgmlType::kIQ1_S: fn = ggml_iq::DequantIQ1_S; break;
    case GgmlType::kIQ1_M: fn = ggml_iq::DequantIQ1_M; break;
    case GgmlType::kTQ1_0: fn = ggml_iq::DequantTQ1_0; break;
    case GgmlType::kTQ2_0: fn = ggml_iq::DequantTQ2_0; break;
    case GgmlType::kMXFP4: fn = ggml_iq::DequantMXFP4; break;
    case GgmlType::kI4Z128: fn = DequantI4Z128; break;
    default:
      // Precondition violated (unsupported type): leave a recognisable pattern, not garbage.
      std::fill(dst, dst + n, std::nanf(""));
      return;
  }
  for (int64_t i = 0; i < n / block; ++i) fn(s + static_cast<size_t>(i) * bytes, dst + i * block);
}

Status QuantizeRow(GgmlType type, const float* src, void* dst, int64_t n) {
  uint8_t* d = static_cast<uint8_t*>(dst);
  const int64_t block = GgmlBlockSize(type);
  if (block == 0 || n < 0 || n % block != 0) {
    return InvalidArgument("QuantizeRow: " + std::to_string(n) + " elements is not a multiple of " +
                           GgmlTypeName(static_cast<uint32_t>(type)) + " block size " +
                           std::to_string(block));
  }
  const size_t bytes = GgmlTypeSize(type);
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(d, src, static_cast<size_t>(n) * sizeof(float));
      return Status::OK();
    case GgmlType::kF16:
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = type == GgmlType::kF16 ? Fp32ToFp16(src[i]) : Fp32ToBf16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return Status::OK();
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
    case GgmlType::kQ8_0: {
      void (*fn)(const float*, uint8_t*) =
          type == GgmlType::kQ4_0 ? QuantQ4_0 : type == GgmlType::kQ4_1 ? QuantQ4_1 : QuantQ8_0;
      for (int64_t i = 0; i < n / block; ++i) fn(src + i * block, d + static_cast<size_t>(i) * bytes);
      return Status::OK();
    }
    default:
      if (QuantizeBlocks(type, src, d, n / block)) return Status::OK();
      return Unimplemented("QuantizeRow: quantizing to " +
                           GgmlTypeName(static_cast<uint32_t>(type)) +
                           " is not implemented (f32, f16, bf16, q4_0, q4_1, q5_0, q8_0, q4_K, q6_K are)");
  }
}

// IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
float Fp16ToFp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // inf / nan (payload kept)
  } else if (exp != 0) {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;  // signed zero
  } else {
    // Subnormal half: normalise the mantissa into an fp32 normal.
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3FFu) << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t Fp32ToFp16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) {  // nan: keep it a quiet nan
    return static_cast<uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x3FFu));
  }
  if (abs >= 0x477FF000u) {  // rounds to >= 65520: overflow to inf
    return static_cast<uint16_t>(sign | 0x7C00u);
  }
  const int32_t exp = static_cast<int32_t>(abs >> 23) - 127;
  if (exp >= -14) {
    // Normal half: drop 13 mantissa bits with round-to-nearest-even; a carry out of the
    // mantissa correctly bumps the exponent.
    uint32_t v = abs - (static_cast<uint32_t>(127 - 15) << 23);
    v += 0x0FFFu + ((v >> 13) & 1u);
    return static_cast<uint16_t>(sign | (v >> 13));
  }
  if (exp < -25) return sign;  // below half the smallest subnormal: +-0
  // Subnormal half: value = mant * 2^-24; shift the (implicit-1) mantissa accordingly.
  const uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
  const int shift = -exp - 14 + 13;  // 14..24
  uint32_t v = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1);
  const uint32_t halfway = 1u << (shift - 1);
  if (rem > halfway || (rem == halfway && (v & 1u))) ++v;
  return static_cast<uint16_t>(sign | v);
}

float Bf16ToFp32(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

uint16_t Fp32ToBf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet nan
  x += 0x7FFFu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

}  // namespace inferd
