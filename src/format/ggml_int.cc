// Decoding of GGML blocks into the integer form of ggml_int.h. The block layouts are
// GGML's (ggml-common.h); element order follows dequantize_row_* in ggml-quants.c.
#include "format/ggml_int.h"

#include <cstring>

namespace inferd {
namespace {

uint16_t HalfBits(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return h;
}

void SetScales32(IntBlock* out, int n_sub, int8_t sc) {
  for (int j = 0; j < n_sub; ++j) out->sc[j] = sc, out->m[j] = 0;
}

// Q5_0 {d, qh[4], qs[16]} and Q5_1 {d, m, qh[4], qs[16]}: element j < 16 is the low
// nibble of qs[j], j + 16 the high nibble; bit e of qh is element e's fifth bit.
void DecodeQ5(const uint8_t* qh_p, const uint8_t* qs, IntBlock* out) {
  uint32_t qh;
  std::memcpy(&qh, qh_p, 4);
  for (int j = 0; j < 16; ++j) {
    out->u[j] = static_cast<uint8_t>((qs[j] & 0x0F) | (((qh >> j) & 1) << 4));
    out->u[j + 16] = static_cast<uint8_t>((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
  }
}

// The 6-bit scale and min of sub-block j (0..7) of Q4_K / Q5_K's 12 scale bytes.
void K4ScaleAndMin(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Q4_K {d, dmin, scales[12], qs[128]}, Q5_K {d, dmin, scales[12], qh[32], qs[128]}: per 64
// elements i, sub-block 2i is the low nibbles of qs[32i..32i+32), 2i+1 the high ones; Q5_K's
// fifth bits are bits 2i and 2i+1 of qh[l].
void DecodeQ45K(const uint8_t* p, bool five, IntBlock* out) {
  out->d = HalfBits(p);
  out->dmin = HalfBits(p + 2);
  const uint8_t* scales = p + 4;
  const uint8_t* qh = p + 16;
  const uint8_t* qs = five ? p + 48 : p + 16;
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    K4ScaleAndMin(j, scales, &sc, &m);
    out->sc[2 * j] = out->sc[2 * j + 1] = static_cast<int8_t>(sc);
    out->m[2 * j] = out->m[2 * j + 1] = m;
  }
  for (int i = 0; i < 4; ++i) {
    for (int l = 0; l < 32; ++l) {
      uint8_t lo = qs[32 * i + l] & 0x0F, hi = qs[32 * i + l] >> 4;
      if (five) {
        lo = static_cast<uint8_t>(lo | (((qh[l] >> (2 * i)) & 1) << 4));
        hi = static_cast<uint8_t>(hi | (((qh[l] >> (2 * i + 1)) & 1) << 4));
      }
      out->u[64 * i + l] = lo;
      out->u[64 * i + 32 + l] = hi;
    }
  }
}

// Q6_K {ql[128], qh[64], scales[16] int8, d}: per 128 elements n, for l < 32 the four
// elements n + l + 32k take nibble (k / 2) of ql[64 n' + l + 32 (k % 2)] and bits 2k, 2k+1
// of qh[32 n' + l] (n' = n / 128).
void DecodeQ6K(const uint8_t* p, IntBlock* out) {
  const uint8_t* ql = p;
  const uint8_t* qh = p + 128;
  std::memcpy(out->sc, p + 192, 16);
  out->d = HalfBits(p + 208);
  for (int j = 0; j < 16; ++j) out->m[j] = 0;
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      for (int k = 0; k < 4; ++k) {
        const uint8_t low = ql[64 * half + l + 32 * (k % 2)];
        const uint8_t nib = k < 2 ? (low & 0x0F) : (low >> 4);
        const uint8_t high = (qh[32 * half + l] >> (2 * k)) & 3;
        out->u[128 * half + 32 * k + l] = static_cast<uint8_t>(nib | (high << 4));
      }
    }
  }
}

// Q3_K {hmask[32], qs[64], scales[12], d}: element e = 128 h + 32 j + l has low bits
// (qs[32 h + l] >> 2j) & 3 and high bit (hmask[l] >> (4 h + j)) & 1; value low - 4 when
// the high bit is clear, so u = low + 4 high, z = 4. 16 six-bit scales, biased by 32.
void DecodeQ3K(const uint8_t* p, IntBlock* out) {
  const uint8_t* hmask = p;
  const uint8_t* qs = p + 32;
  const uint8_t* s = p + 96;
  out->d = HalfBits(p + 108);
  for (int j = 0; j < 16; ++j) {
    const int low4 = j < 8 ? (s[j] & 0x0F) : (s[j - 8] >> 4);
    const int high2 = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    out->sc[j] = static_cast<int8_t>((low4 | (high2 << 4)) - 32);
    out->m[j] = 0;
  }
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, j = (e % 128) / 32, l = e % 32;
    const int low = (qs[32 * h + l] >> (2 * j)) & 3;
    const int high = (hmask[l] >> (4 * h + j)) & 1;
    out->u[e] = static_cast<uint8_t>(low | (high << 2));
  }
}

// Q2_K {scales[16], qs[64], d, dmin}: element e = 128 h + 32 j + l is (qs[32 h + l] >> 2j) & 3;
// sub-block scale byte: low nibble sc, high nibble m.
void DecodeQ2K(const uint8_t* p, IntBlock* out) {
  const uint8_t* qs = p + 16;
  out->d = HalfBits(p + 80);
  out->dmin = HalfBits(p + 82);
  for (int j = 0; j < 16; ++j) {
    out->sc[j] = static_cast<int8_t>(p[j] & 0x0F);
    out->m[j] = p[j] >> 4;
  }
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, j = (e % 128) / 32, l = e % 32;
    out->u[e] = static_cast<uint8_t>((qs[32 * h + l] >> (2 * j)) & 3);
  }
}

// IQ4_XS {d, scales_h u16, scales_l[4], qs[128]}: sub-block ib's 6-bit scale, biased by 32;
// codes as IQ4_NL per 32 (qs[16 ib + j]: low nibble element j, high nibble j + 16).
void DecodeIq4Xs(const uint8_t* p, IntBlock* out) {
  out->d = HalfBits(p);
  const uint16_t sh = HalfBits(p + 2);
  const uint8_t* sl = p + 4;
  const uint8_t* qs = p + 8;
  for (int ib = 0; ib < 8; ++ib) {
    const int ls = ((sl[ib / 2] >> (4 * (ib % 2))) & 0x0F) | (((sh >> (2 * ib)) & 3) << 4);
    out->sc[2 * ib] = out->sc[2 * ib + 1] = static_cast<int8_t>(ls - 32);
    out->m[2 * ib] = out->m[2 * ib + 1] = 0;
    for (int j = 0; j < 16; ++j) {
      out->u[32 * ib + j] = qs[16 * ib + j] & 0x0F;
      out->u[32 * ib + 16 + j] = qs[16 * ib + j] >> 4;
    }
  }
}

// I4Z128 {s, z, qs[64]} (ggml_types.h): per 32 elements i, qs[16 i + l] holds element
// 32 i + l (low nibble) and 32 i + 16 + l (high nibble). Q4_K's form with sc = 1, every
// m_j = z and D = Dmin = s.
void DecodeI4Z128(const uint8_t* p, IntBlock* out) {
  out->d = out->dmin = HalfBits(p);
  for (int j = 0; j < 8; ++j) out->sc[j] = 1, out->m[j] = p[2];
  const uint8_t* qs = p + 3;
  for (int i = 0; i < 4; ++i) {
    for (int l = 0; l < 16; ++l) {
      out->u[32 * i + l] = qs[16 * i + l] & 0x0F;
      out->u[32 * i + 16 + l] = qs[16 * i + l] >> 4;
    }
  }
}

}  // namespace

bool IntQuantInfoOf(GgmlType type, IntQuantInfo* info) {
  IntQuantInfo i;
  switch (type) {
    case GgmlType::kQ5_0: i = {32, 5, 16, false, false, 32, false, false}; break;
    case GgmlType::kQ5_1: i = {32, 5, 0, false, false, 32, false, true}; break;
    case GgmlType::kIQ4_NL: i = {32, 4, 0, true, false, 32, false, false}; break;
    case GgmlType::kQ2_K: i = {256, 2, 0, false, true, 16, true, false}; break;
    case GgmlType::kQ3_K: i = {256, 3, 4, false, true, 16, false, false}; break;
    case GgmlType::kQ4_K: i = {256, 4, 0, false, true, 32, true, false}; break;
    case GgmlType::kQ5_K: i = {256, 5, 0, false, true, 32, true, false}; break;
    case GgmlType::kQ6_K: i = {256, 6, 32, false, true, 16, false, false}; break;
    case GgmlType::kIQ4_XS: i = {256, 4, 0, true, true, 32, false, false}; break;
    case GgmlType::kI4Z128: i = {128, 4, 0, false, false, 32, true, false}; break;
    default: return false;
  }
  if (info != nullptr) *info = i;
  return true;
}

void DecodeIntBlock(GgmlType type, const uint8_t* src, IntBlock* out) {
  switch (type) {
    case GgmlType::kQ5_0:
      out->d = HalfBits(src);
      out->dmin = 0;
      SetScales32(out, 2, 1);
      DecodeQ5(src + 2, src + 6, out);
      return;
    case GgmlType::kQ5_1:
      out->d = HalfBits(src);
      out->dmin = HalfBits(src + 2);
      SetScales32(out, 2, 1);
      DecodeQ5(src + 4, src + 8, out);
      return;
    case GgmlType::kIQ4_NL:
      out->d = HalfBits(src);
      out->dmin = 0;
      SetScales32(out, 2, 1);
      for (int j = 0; j < 16; ++j) {
        out->u[j] = src[2 + j] & 0x0F;
        out->u[j + 16] = src[2 + j] >> 4;
      }
      return;
    case GgmlType::kQ2_K: return DecodeQ2K(src, out);
    case GgmlType::kQ3_K: return DecodeQ3K(src, out);
    case GgmlType::kQ4_K: return DecodeQ45K(src, false, out);
    case GgmlType::kQ5_K: return DecodeQ45K(src, true, out);
    case GgmlType::kQ6_K: return DecodeQ6K(src, out);
    case GgmlType::kIQ4_XS: return DecodeIq4Xs(src, out);
    case GgmlType::kI4Z128: return DecodeI4Z128(src, out);
    default: return;
  }
}

int IntBlockHalfFields(GgmlType type, int offsets[2]) {
  switch (type) {
    case GgmlType::kQ5_0: case GgmlType::kIQ4_NL: case GgmlType::kIQ4_XS: case GgmlType::kI4Z128:
      offsets[0] = 0;
      return 1;
    case GgmlType::kQ5_1: case GgmlType::kQ4_K: case GgmlType::kQ5_K: offsets[0] = 0, offsets[1] = 2; return 2;
    case GgmlType::kQ2_K: offsets[0] = 80, offsets[1] = 82; return 2;
    case GgmlType::kQ3_K: offsets[0] = 108; return 1;
    case GgmlType::kQ6_K: offsets[0] = 208; return 1;
    default: return 0;
  }
}

double IntBlockValue(const IntQuantInfo& info, const IntBlock& b, int e) {
  const int j = e / 16;
  const double v = (info.lut ? kIq4Values[b.u[e]] : b.u[e]) - info.z;
  const double d = Fp16ToFp32(b.d), dmin = Fp16ToFp32(b.dmin);
  if (info.fp_min) return d * v + dmin;
  return d * b.sc[j] * v - (info.int_min ? dmin * b.m[j] : 0.0);
}

}  // namespace inferd
