// GGML's codebook I-quants, ternary types and MXFP4, read block by block (blocks are not
// aligned in files: multi-byte fields are read with memcpy, little-endian). Block layouts
// are ggml-common.h's; the codebooks are data (ggml_iq_grids.h, generated from gguf-py).
#include "format/ggml_iquants.h"

#include <bit>
#include <cstring>

#include "format/ggml_iq_grids.h"
#include "format/ggml_types.h"

namespace inferd::ggml_iq {
namespace {

constexpr int kSub = 32;  // elements per sub-block of a 256-element super-block

uint16_t U16At(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
uint32_t U32At(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
float HalfAt(const uint8_t* p) { return Fp16ToFp32(U16At(p)); }

// Value j of a packed codebook entry (byte j), as float; IQ1_S's bytes are int8.
float GridU8(uint64_t entry, int j) { return static_cast<float>(static_cast<uint8_t>(entry >> (8 * j))); }
float GridI8(uint64_t entry, int j) { return static_cast<float>(static_cast<int8_t>(entry >> (8 * j))); }

// The sign byte of a 7-bit sign index (GGML's ksigns table): bit j set = value j negative;
// bit 7 is the parity of the other seven, so every group of 8 has an even count of minus signs.
uint8_t SignsOf(uint32_t index7) {
  return static_cast<uint8_t>(index7 | ((std::popcount(index7) & 1u) << 7));
}
float Sign(uint8_t signs, int j) { return ((signs >> j) & 1) != 0 ? -1.0f : 1.0f; }

// Writes 8 values db * grid[j] * sign(j) of an 8-wide codebook entry.
void Put8(float db, uint64_t entry, uint8_t signs, float* y) {
  for (int j = 0; j < 8; ++j) y[j] = db * GridU8(entry, j) * Sign(signs, j);
}

// The two 4-wide IQ3 entries of a group of 8.
void Put4x2(float db, uint32_t e0, uint32_t e1, uint8_t signs, float* y) {
  for (int j = 0; j < 4; ++j) {
    y[j] = db * GridU8(e0, j) * Sign(signs, j);
    y[j + 4] = db * GridU8(e1, j) * Sign(signs, j + 4);
  }
}

constexpr float kIq1Delta = 0.125f;

}  // namespace

// IQ2_XXS (66 B): half d; then per sub-block of 32 two uint32: aux0 = four 8-bit grid indices
// (one per group of 8), aux1 = four 7-bit sign indices (bits 7l..7l+6) and a 4-bit scale s
// (bits 28-31). value = d * (0.5 + s) * 0.25 * grid * sign.
void DequantIQ2_XXS(const uint8_t* b, float* y) {
  const float d = HalfAt(b);
  for (int ib = 0; ib < 8; ++ib) {
    const uint32_t aux0 = U32At(b + 2 + 8 * ib);
    const uint32_t aux1 = U32At(b + 2 + 8 * ib + 4);
    const float db = d * (0.5f + static_cast<float>(aux1 >> 28)) * 0.25f;
    for (int l = 0; l < 4; ++l) {
      Put8(db, kIq2xxsGrid[(aux0 >> (8 * l)) & 0xFF], SignsOf((aux1 >> (7 * l)) & 127), y + kSub * ib + 8 * l);
    }
  }
}

// IQ2_XS (74 B): half d; uint16 qs[32] (9-bit grid index, 7-bit sign index above it);
// uint8 scales[8], a 4-bit scale per 16 elements (low nibble first).
void DequantIQ2_XS(const uint8_t* b, float* y) {
  const float d = HalfAt(b);
  const uint8_t* scales = b + 66;
  for (int ib = 0; ib < 8; ++ib) {
    const float db[2] = {d * (0.5f + static_cast<float>(scales[ib] & 0x0F)) * 0.25f,
                         d * (0.5f + static_cast<float>(scales[ib] >> 4)) * 0.25f};
    for (int l = 0; l < 4; ++l) {
      const uint16_t q = U16At(b + 2 + 2 * (4 * ib + l));
      Put8(db[l / 2], kIq2xsGrid[q & 511], SignsOf(q >> 9), y + kSub * ib + 8 * l);
    }
  }
}

// IQ2_S (82 B): half d; uint8 qs[32] (low 8 bits of 10-bit grid indices); uint8 signs[32]
// (one explicit sign byte per group of 8); uint8 qh[8] (the indices' top 2 bits, group l of
// sub-block ib in bits 2l of qh[ib]); uint8 scales[8] as IQ2_XS.
void DequantIQ2_S(const uint8_t* b, float* y) {
  const float d = HalfAt(b);
  const uint8_t* qs = b + 2;
  const uint8_t* signs = b + 34;
  const uint8_t* qh = b + 66;
  const uint8_t* scales = b + 74;
  for (int ib = 0; ib < 8; ++ib) {
    const float db[2] = {d * (0.5f + static_cast<float>(scales[ib] & 0x0F)) * 0.25f,
                         d * (0.5f + static_cast<float>(scales[ib] >> 4)) * 0.25f};
    for (int l = 0; l < 4; ++l) {
      const int index = qs[4 * ib + l] | (((qh[ib] >> (2 * l)) & 3) << 8);
      Put8(db[l / 2], kIq2sGrid[index], signs[4 * ib + l], y + kSub * ib + 8 * l);
    }
  }
}

// IQ3_XXS (98 B): half d; uint8 qs[64] (8-bit indices of 4-wide entries, 8 per sub-block);
// then a uint32 per sub-block: four 7-bit sign indices and a 4-bit scale s (bits 28-31).
// value = d * (0.5 + s) * 0.5 * grid * sign.
void DequantIQ3_XXS(const uint8_t* b, float* y) {
  const float d = HalfAt(b);
  const uint8_t* qs = b + 2;
  for (int ib = 0; ib < 8; ++ib) {
    const uint32_t aux = U32At(b + 66 + 4 * ib);
    const float db = d * (0.5f + static_cast<float>(aux >> 28)) * 0.5f;
    for (int l = 0; l < 4; ++l) {
      Put4x2(db, kIq3xxsGrid[qs[8 * ib + 2 * l]], kIq3xxsGrid[qs[8 * ib + 2 * l + 1]],
             SignsOf((aux >> (7 * l)) & 127), y + kSub * ib + 8 * l);
    }
  }
}

// IQ3_S (110 B): half d; uint8 qs[64] (low 8 bits of 9-bit indices of 4-wide entries);
// uint8 qh[8] (bit k of qh[ib] = 9th bit of index 8 ib + k); uint8 signs[32] (a sign byte
// per group of 8); uint8 scales[4], a 4-bit scale s per sub-block (low nibble first).
// value = d * (1 + 2 s) * grid * sign.
void DequantIQ3_S(const uint8_t* b, float* y) {
  const float d = HalfAt(b);
  const uint8_t* qs = b + 2;
  const uint8_t* qh = b + 66;
  const uint8_t* signs = b + 74;
  const uint8_t* scales = b + 106;
  for (int ib = 0; ib < 8; ++ib) {
    const int s = (scales[ib / 2] >> (4 * (ib % 2))) & 0x0F;
    const float db = d * static_cast<float>(1 + 2 * s);
    for (int l = 0; l < 4; ++l) {
      const int k = 2 * l;
      const int i0 = qs[8 * ib + k] | (((qh[ib] >> k) & 1) << 8);
      const int i1 = qs[8 * ib + k + 1] | (((qh[ib] >> (k + 1)) & 1) << 8);
      Put4x2(db, kIq3sGrid[i0], kIq3sGrid[i1], signs[4 * ib + l], y + kSub * ib + 8 * l);
    }
  }
}

// IQ1_S (50 B): half d; uint8 qs[32] (low 8 bits of 11-bit indices of 8-wide entries in
// {-1, 0, 1}); uint16 qh[8], one per sub-block: the indices' top 3 bits (group l in bits
// 3l..3l+2), a 3-bit scale s (bits 12-14) and the sign of the shift delta (bit 15).
// value = d * (2 s + 1) * (grid + delta), delta = +-0.125.
void DequantIQ1_S(const uint8_t* b, float* y) {
  const float d = HalfAt(b);
  const uint8_t* qs = b + 2;
  for (int ib = 0; ib < 8; ++ib) {
    const uint16_t qh = U16At(b + 34 + 2 * ib);
    const float dl = d * static_cast<float>(2 * ((qh >> 12) & 7) + 1);
    const float delta = (qh & 0x8000) != 0 ? -kIq1Delta : kIq1Delta;
    for (int l = 0; l < 4; ++l) {
      const uint64_t entry = kIq1sGrid[qs[4 * ib + l] | (((qh >> (3 * l)) & 7) << 8)];
      for (int j = 0; j < 8; ++j) y[kSub * ib + 8 * l + j] = dl * (GridI8(entry, j) + delta);
    }
  }
}

// IQ1_M (56 B): uint8 qs[32] (low 8 bits of 11-bit indices); uint8 qh[16], a nibble per
// group of 8 (low nibble first): the index's top 3 bits and the delta's sign (bit 3);
// uint16 scales[4]: 3-bit scales per 16 elements (bits 3t..3t+2 of scales[ib / 2], t = 2 (ib
// % 2) + half), and in their top nibbles the 16 bits of the fp16 d (scales[0] lowest).
// value = d * (2 s + 1) * (grid + delta), delta = +-0.125.
void DequantIQ1_M(const uint8_t* b, float* y) {
  const uint8_t* qs = b;
  const uint8_t* qh = b + 32;
  uint16_t sc[4];
  for (int k = 0; k < 4; ++k) sc[k] = U16At(b + 48 + 2 * k);
  const uint16_t d_bits = static_cast<uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) |
                                                (sc[3] & 0xF000));
  const float d = Fp16ToFp32(d_bits);
  for (int ib = 0; ib < 8; ++ib) {
    const int shift = 6 * (ib % 2);
    const float dl[2] = {d * static_cast<float>(2 * ((sc[ib / 2] >> shift) & 7) + 1),
                         d * static_cast<float>(2 * ((sc[ib / 2] >> (shift + 3)) & 7) + 1)};
    for (int l = 0; l < 4; ++l) {
      const int nibble = (qh[2 * ib + l / 2] >> (4 * (l % 2))) & 0x0F;
      const uint64_t entry = kIq1sGrid[qs[4 * ib + l] | ((nibble & 7) << 8)];
      const float delta = (nibble & 8) != 0 ? -kIq1Delta : kIq1Delta;
      for (int j = 0; j < 8; ++j) y[kSub * ib + 8 * l + j] = dl[l / 2] * (GridI8(entry, j) + delta);
    }
  }
}

// TQ1_0 (54 B): uint8 qs[48]; uint8 qh[4]; half d. Ternary digits in base 3, five per byte
// (four per qh byte), stored as a fixed-point fraction: digit n of byte x is the top two bits
// of 3 * (uint8)(x * 3^n) / 256. Element order: for qs[0..31], digit n of byte m is element
// 32 n + m; for qs[32..47], 160 + 16 n + m; for qh, 240 + 4 n + m. value = d * (digit - 1).
void DequantTQ1_0(const uint8_t* b, float* y) {
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  const uint8_t* qs = b;
  const uint8_t* qh = b + 48;
  const float d = HalfAt(b + 52);
  auto value = [d](uint8_t byte, int n) {
    const uint8_t x = static_cast<uint8_t>(byte * kPow3[n]);  // wraps mod 256, as GGML's uint8
    const int digit = (static_cast<uint16_t>(x) * 3) >> 8;
    return d * static_cast<float>(digit - 1);
  };
  for (int n = 0; n < 5; ++n)
    for (int m = 0; m < 32; ++m) y[32 * n + m] = value(qs[m], n);
  for (int n = 0; n < 5; ++n)
    for (int m = 0; m < 16; ++m) y[160 + 16 * n + m] = value(qs[32 + m], n);
  for (int n = 0; n < 4; ++n)
    for (int m = 0; m < 4; ++m) y[240 + 4 * n + m] = value(qh[m], n);
}

// TQ2_0 (66 B): uint8 qs[64]; half d. Element 128 h + 32 l + m is (qs[32 h + m] >> 2l) & 3;
// value = d * (q - 1).
void DequantTQ2_0(const uint8_t* b, float* y) {
  const float d = HalfAt(b + 64);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, l = (e % 128) / 32, m = e % 32;
    const int q = (b[32 * h + m] >> (2 * l)) & 3;
    y[e] = d * static_cast<float>(q - 1);
  }
}

// MXFP4 (17 B): uint8 e (E8M0 shared exponent); uint8 qs[16] (FP4 E2M1 codes, nibbles as
// Q4_0). GGML keeps the E2M1 values doubled (integers) and halves the scale instead:
// d = 2^(e - 128), built from its bits (a subnormal for e < 2). value = d * table[q].
void DequantMXFP4(const uint8_t* b, float* y) {
  static constexpr int8_t kValues[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
  const uint32_t e = b[0];
  const float d = std::bit_cast<float>(e < 2 ? 0x00200000u << e : (e - 1) << 23);
  const uint8_t* qs = b + 1;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(kValues[qs[j] & 0x0F]);
    y[j + 16] = d * static_cast<float>(kValues[qs[j] >> 4]);
  }
}

}  // namespace inferd::ggml_iq
