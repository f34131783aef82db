// The unit types of qgemm.h (Q5_0, Q5_1, IQ4_NL, K-quants, IQ4_XS, I4Z128): packing from the
// integer form of format/ggml_int.h, and the plain reference kernel, one output at a time.
#include <cmath>
#include <cstring>

#include "backend/cpu/qgemm.h"
#include "format/ggml_int.h"

namespace inferd::cpu {
namespace {

GgmlType GgmlOf(PackedType t) {
  switch (t) {
    case PackedType::kQ5_0: return GgmlType::kQ5_0;
    case PackedType::kQ5_1: return GgmlType::kQ5_1;
    case PackedType::kIQ4_NL: return GgmlType::kIQ4_NL;
    case PackedType::kQ2_K: return GgmlType::kQ2_K;
    case PackedType::kQ3_K: return GgmlType::kQ3_K;
    case PackedType::kQ4_K: return GgmlType::kQ4_K;
    case PackedType::kQ5_K: return GgmlType::kQ5_K;
    case PackedType::kQ6_K: return GgmlType::kQ6_K;
    case PackedType::kIQ4_XS: return GgmlType::kIQ4_XS;
    case PackedType::kI4Z128: return GgmlType::kI4Z128;
    default: return GgmlType::kF32;
  }
}

uint16_t LoadHalf(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return h;
}

// Writes block bi (of the unit) of row r: the codes u[0..32) with sub-block scales and
// mins, into the planes of UnitLayout.
void PutBlock(const UnitLayout& L, uint8_t* unit, int bi, int r, const uint8_t* u, const int8_t* sc,
              const uint8_t* m) {
  uint8_t* lo = unit + L.lo_off(bi);
  uint8_t* hi = unit + L.hi_off(bi);
  for (int i = 0; i < 4; ++i) {
    for (int c = 0; c < 4; ++c) {  // P4 chunks; L2 uses (v, k) = (c / 2 ... ) below
      if (L.code == CodeKind::kP4 || L.code == CodeKind::kP4H1 || L.code == CodeKind::kP4H2) {
        lo[64 * c + 4 * r + i] = static_cast<uint8_t>((u[4 * c + i] & 15) | (u[16 + 4 * c + i] & 15) << 4);
      }
    }
    for (int v = 0; v < 2; ++v) {
      uint8_t l2 = 0, h2 = 0;
      for (int k = 0; k < 4; ++k) {
        const uint8_t e = u[4 * (4 * v + k) + i];
        l2 = static_cast<uint8_t>(l2 | (e & 3) << (2 * k));
        h2 = static_cast<uint8_t>(h2 | ((e >> 4) & 3) << (2 * k));
      }
      if (L.code == CodeKind::kL2 || L.code == CodeKind::kL2H1) lo[64 * v + 4 * r + i] = l2;
      if (L.code == CodeKind::kP4H2) hi[64 * v + 4 * r + i] = h2;
    }
    if (L.code == CodeKind::kP4H1 || L.code == CodeKind::kL2H1) {
      const int top = L.code == CodeKind::kP4H1 ? 4 : 2;
      uint8_t h1 = 0;
      for (int k = 0; k < 8; ++k) h1 = static_cast<uint8_t>(h1 | ((u[4 * k + i] >> top) & 1) << k);
      hi[4 * r + i] = h1;
    }
  }
  uint8_t* scp = unit + L.sc_off + bi * L.sc_bytes;
  if (L.sc_bytes == 16) scp[r] = static_cast<uint8_t>(sc[0]);
  if (L.sc_bytes == 32) {
    for (int j = 0; j < 2; ++j) {
      scp[2 * r + j] = L.sc_min_nibbles ? static_cast<uint8_t>((sc[j] & 15) | m[j] << 4) : static_cast<uint8_t>(sc[j]);
    }
  }
  if (L.m_bytes) unit[L.m_off + bi * 16 + r] = m[0];
}

// Reads code e (0..31) of block bi, row r back from the planes.
int CodeAt(const UnitLayout& L, const uint8_t* unit, int bi, int r, int e) {
  const uint8_t* lo = unit + L.lo_off(bi);
  const uint8_t* hi = unit + L.hi_off(bi);
  const int k = e / 4, i = e % 4;
  int u = 0;
  if (L.code == CodeKind::kL2 || L.code == CodeKind::kL2H1) {
    u = (lo[64 * (k / 4) + 4 * r + i] >> (2 * (k % 4))) & 3;
  } else {
    const uint8_t b = lo[64 * (k % 4) + 4 * r + i];
    u = k < 4 ? (b & 15) : (b >> 4);
  }
  if (L.code == CodeKind::kP4H1) u |= ((hi[4 * r + i] >> k) & 1) << 4;
  if (L.code == CodeKind::kL2H1) u |= ((hi[4 * r + i] >> k) & 1) << 2;
  if (L.code == CodeKind::kP4H2) u |= ((hi[64 * (k / 4) + 4 * r + i] >> (2 * (k % 4))) & 3) << 4;
  return u;
}

// Sub-block j's (0, 1) scale and min of block bi, row r.
int ScaleAt(const UnitLayout& L, const uint8_t* unit, int bi, int r, int j) {
  const uint8_t* scp = unit + L.sc_off + bi * L.sc_bytes;
  if (L.sc_bytes == 16) return static_cast<int8_t>(scp[r]);
  if (L.sc_bytes == 32) return L.sc_min_nibbles ? (scp[2 * r + j] & 15) : static_cast<int8_t>(scp[2 * r + j]);
  return 1;
}
int MinAt(const UnitLayout& L, const uint8_t* unit, int bi, int r, int j) {
  if (L.sc_min_nibbles) return unit[L.sc_off + bi * L.sc_bytes + 2 * r + j] >> 4;
  if (L.m_bytes) return unit[L.m_off + bi * 16 + r];
  return 0;
}

}  // namespace

void PackUnits(const Matrix& w, PackedMatrix* p) {
  const GgmlType gt = GgmlOf(p->type);
  const UnitLayout L = UnitLayoutOf(p->type);
  IntQuantInfo info;
  IntQuantInfoOf(gt, &info);
  const size_t gblock = GgmlTypeSize(gt);
  IntBlock blk;
  for (int64_t g = 0; g < p->num_groups; ++g) {
    uint8_t* grp = p->data + static_cast<size_t>(g) * p->group_bytes;
    for (int r = 0; r < kGroupRows; ++r) {
      const int64_t row = g * kGroupRows + r;
      if (row >= w.rows) break;  // padding rows stay zero: D = 0
      const uint8_t* src = w.row(row);
      for (int64_t gb = 0; gb < w.cols / info.unit; ++gb) {
        DecodeIntBlock(gt, src + gb * gblock, &blk);
        const int nblk = info.unit / kQBlock;  // 32-blocks in this GGML block
        for (int sb = 0; sb < nblk; ++sb) {
          const int64_t b = gb * nblk + sb;  // 32-block index in the row
          uint8_t* unit = grp + static_cast<size_t>(b / L.blocks) * L.unit_bytes;
          const int bi = static_cast<int>(b % L.blocks);
          PutBlock(L, unit, bi, r, blk.u + 32 * sb, blk.sc + 2 * sb, blk.m + 2 * sb);
          if (L.d_per_block) {
            std::memcpy(unit + L.d_off + 32 * bi + 2 * r, &blk.d, 2);
            if (L.fp_min) std::memcpy(unit + L.dmin_off + 32 * bi + 2 * r, &blk.dmin, 2);
          } else if (bi == 0) {
            std::memcpy(unit + L.d_off + 2 * r, &blk.d, 2);
            if (L.int_min) std::memcpy(unit + L.dmin_off + 2 * r, &blk.dmin, 2);
          }
        }
      }
    }
  }
}

void ComputeSums16(const int8_t* q, int64_t nt, int64_t k, int32_t* s16, const int32_t* e) {
  const int64_t nb = k / kQBlock;
  for (int64_t t = 0; t < nt; ++t) {
    for (int64_t b = 0; b < nb; ++b) {
      const int8_t* qb = q + t * k + b * kQBlock;
      int32_t s0 = 0, s1 = 0;
      for (int i = 0; i < 16; ++i) s0 += qb[i], s1 += qb[16 + i];
      if (e != nullptr) s0 <<= e[t * nb + b], s1 <<= e[t * nb + b];  // |s| <= 16 * 2032 < 2^15
      s16[t * nb + b] = static_cast<int32_t>((static_cast<uint32_t>(s0) & 0xFFFF) | static_cast<uint32_t>(s1) << 16);
    }
  }
}

// qgemm.h's unit-type definition, one output at a time. CoarseActs types sum their integers
// over a unit (in int64 here: the kernels' int32 sums may wrap on the way) and take one
// float step per unit.
void GemmUnitGeneric(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                     float* y, int64_t ldy) {
  const UnitLayout L = UnitLayoutOf(w.type);
  const bool coarse = CoarseActs(w.type);
  const int z = L.z_shift < 0 ? 0 : 1 << L.z_shift;
  const int64_t nd = coarse ? w.num_units : a.nb;  // activation scales per token row
  for (int64_t gi = 0; gi < ng; ++gi) {
    const uint8_t* grp = w.group(g0 + gi);
    for (int64_t t = 0; t < nt; ++t) {
      const int8_t* aq = a.q + (t0 + t) * a.k;
      for (int r = 0; r < kGroupRows; ++r) {
        float acc = 0.0f;
        int64_t isum = 0, jsum = 0;  // over a block, or a unit (coarse)
        for (int64_t b = 0; b < w.nb; ++b) {
          const uint8_t* unit = grp + static_cast<size_t>(b / L.blocks) * L.unit_bytes;
          const int bi = static_cast<int>(b % L.blocks);
          const int8_t* xq = aq + b * kQBlock;
          const int32_t s16 = a.s16[(t0 + t) * a.nb + b];
          const int32_t S[2] = {static_cast<int16_t>(s16 & 0xFFFF), static_cast<int16_t>(s16 >> 16)};  // (2^e S)
          const int64_t scale = coarse ? int64_t{1} << a.e[(t0 + t) * a.nb + b] : 1;
          for (int j = 0; j < 2; ++j) {
            const int32_t sc = ScaleAt(L, unit, bi, r, j);
            int32_t dot = 0;
            for (int e = 16 * j; e < 16 * j + 16; ++e) {
              const int u = CodeAt(L, unit, bi, r, e);
              dot += (L.lut ? kIq4Values[u] : u) * xq[e];
            }
            isum += sc * (dot * scale - z * S[j]);
            jsum += MinAt(L, unit, bi, r, j) * S[j];
          }
          if (coarse && bi + 1 < L.blocks && b + 1 < w.nb) continue;  // the unit goes on
          const float da = a.d[(t0 + t) * nd + (coarse ? b / L.blocks : b)];
          const int dsel = L.d_per_block ? 32 * bi : 0;
          const float dw = Fp16ToFp32(LoadHalf(unit + L.d_off + dsel + 2 * r));
          acc = std::fma(dw * da, static_cast<float>(isum), acc);
          if (L.int_min) {
            const float dmin = Fp16ToFp32(LoadHalf(unit + L.dmin_off + 2 * r));
            acc = std::fma(-(dmin * da), static_cast<float>(jsum), acc);
          }
          if (L.fp_min) {
            float dsa;
            std::memcpy(&dsa, &a.aux[(t0 + t) * a.nb + b], 4);
            acc = std::fma(Fp16ToFp32(LoadHalf(unit + L.dmin_off + 32 * bi + 2 * r)), dsa, acc);
          }
          isum = jsum = 0;
        }
        y[t * ldy + gi * kGroupRows + r] = acc;
      }
    }
  }
}

}  // namespace inferd::cpu
