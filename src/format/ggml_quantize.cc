// Reference quantizers for Q5_0, Q4_K and Q6_K, following llama.cpp's quantize_row_*_ref
// (ggml-quants.c) step for step, so that a tensor quantized here has the codes
// llama-quantize writes (up to floating-point contraction there). Used by QuantizeRow.
#include "format/ggml_quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "format/ggml_int.h"

namespace inferd {
namespace {

constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest, ties to even, for |f| < 2^22: the float sum rounds the fraction away.
int NearestInt(float f) {
  const float v = f + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007FFFFF) - 0x00400000;
}

void PutHalf(uint8_t* p, float f) {
  const uint16_t h = Fp32ToFp16(f);
  std::memcpy(p, &h, 2);
}

// A symmetric scale for n values with codes in [-nmax, nmax - 1] that minimises the
// x^2-weighted squared error over 19 candidate scales (make_qx_quants, rmse_type 1).
float SymmetricScale(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) amax = ax, max = x[i];
  }
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return 0.0f;
  }
  auto code = [&](float iscale, int i) { return std::max(-nmax, std::min(nmax - 1, NearestInt(iscale * x[i]))); };
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = code(iscale, i);
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = code(iscale, i);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(nmax + code(iscale, i));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// An asymmetric scale and min (x ~ scale * L - min, L in [0, nmax]) minimising the weighted
// squared error over nstep + 1 candidate ranges (make_qkx2_quants, use_mad false).
float ScaleAndMin(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min, float rmin,
                  float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, 0);
    *the_min = -min;
    return 0.0f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = NearestInt(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    const float diff = scale * L[i] + min - x[i];
    best_error += weights[i] * (diff * diff);
  }
  uint8_t Laux[32];
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(0, std::min(nmax, NearestInt(iscale * (x[i] - min))));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        const float diff = this_scale * Laux[i] + this_min - x[i];
        cur_error += weights[i] * (diff * diff);
      }
      if (cur_error < best_error) {
        std::copy(Laux, Laux + n, L);
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Q5_0 {d, qh[4], qs[16]}: d = max / -16 (max: the value of largest magnitude).
void QuantizeQ5_0(const float* x, uint8_t* y) {
  float amax = 0, max = 0;
  for (int j = 0; j < 32; ++j) {
    if (amax < std::fabs(x[j])) amax = std::fabs(x[j]), max = x[j];
  }
  const float d = max / -16;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  PutHalf(y, d);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const int a = std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f)));
    const int b = std::min(31, static_cast<int>(static_cast<int8_t>(x[16 + j] * id + 16.5f)));
    y[6 + j] = static_cast<uint8_t>((a & 0x0F) | ((b & 0x0F) << 4));
    qh |= static_cast<uint32_t>((a >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((b >> 4) & 1) << (j + 16);
  }
  std::memcpy(y + 2, &qh, 4);
}

// Q4_K {d, dmin, scales[12], qs[128]}: 8 sub-blocks of 32 with their own scale and min
// (ScaleAndMin), both quantized to 6 bits against the super-block's largest.
void QuantizeQ4_K(const float* x, uint8_t* y) {
  uint8_t L[256];
  float weights[32], mins[8], scales[8];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = ScaleAndMin(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], -1.0f, 0.1f, 20);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  uint8_t* sc = y + 4;
  std::memset(sc, 0, 12);
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = std::min<uint8_t>(63, static_cast<uint8_t>(NearestInt(inv_scale * scales[j])));
    const uint8_t lm = std::min<uint8_t>(63, static_cast<uint8_t>(NearestInt(inv_min * mins[j])));
    if (j < 4) {
      sc[j] = ls;
      sc[j + 4] = lm;
    } else {
      sc[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      sc[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      sc[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  PutHalf(y, max_scale / 63.0f);
  PutHalf(y + 2, max_min / 63.0f);
  IntBlock blk;  // the 6-bit scales and mins as stored
  DecodeIntBlock(GgmlType::kQ4_K, y, &blk);
  const float dd = Fp16ToFp32(blk.d), dmin = Fp16ToFp32(blk.dmin);
  for (int j = 0; j < 8; ++j) {
    const float d = dd * blk.sc[2 * j];
    if (d == 0) continue;
    const float dm = dmin * blk.m[2 * j];
    for (int i = 0; i < 32; ++i) {
      L[32 * j + i] = static_cast<uint8_t>(std::max(0, std::min(15, NearestInt((x[32 * j + i] + dm) / d))));
    }
  }
  uint8_t* q = y + 16;
  for (int j = 0; j < 256; j += 64) {
    for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    q += 32;
  }
}

// Q6_K {ql[128], qh[64], scales[16], d}: 16 sub-blocks of 16 with symmetric scales
// (SymmetricScale), quantized to int8 against the largest.
void QuantizeQ6_K(const float* x, uint8_t* y) {
  int8_t L[256];
  float scales[16];
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < 16; ++ib) {
    scales[ib] = SymmetricScale(16, 32, x + 16 * ib, L + 16 * ib);
    if (std::fabs(scales[ib]) > max_abs_scale) max_abs_scale = std::fabs(scales[ib]), max_scale = scales[ib];
  }
  std::memset(y, 0, 210);
  if (max_abs_scale < kGroupMaxEps) return;  // d = 0
  const float iscale = -128.0f / max_scale;
  PutHalf(y + 208, 1 / iscale);
  int8_t* sc = reinterpret_cast<int8_t*>(y + 192);
  for (int ib = 0; ib < 16; ++ib) sc[ib] = static_cast<int8_t>(std::min(127, NearestInt(iscale * scales[ib])));
  const float dd = Fp16ToFp32(Fp32ToFp16(1 / iscale));
  for (int j = 0; j < 16; ++j) {
    const float d = dd * sc[j];
    if (d == 0) continue;
    for (int i = 0; i < 16; ++i) {
      L[16 * j + i] = static_cast<int8_t>(std::max(-32, std::min(31, NearestInt(x[16 * j + i] / d))) + 32);
    }
  }
  uint8_t* ql = y;
  uint8_t* qh = y + 128;
  for (int j = 0; j < 256; j += 128) {
    for (int l = 0; l < 32; ++l) {
      const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
      ql[l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
      qh[l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
    ql += 64;
    qh += 32;
  }
}

}  // namespace

bool QuantizeBlocks(GgmlType type, const float* x, uint8_t* y, int64_t nblocks) {
  void (*fn)(const float*, uint8_t*) = nullptr;
  switch (type) {
    case GgmlType::kQ5_0: fn = QuantizeQ5_0; break;
    case GgmlType::kQ4_K: fn = QuantizeQ4_K; break;
    case GgmlType::kQ6_K: fn = QuantizeQ6_K; break;
    default: return false;
  }
  const int64_t block = GgmlBlockSize(type);
  const size_t bytes = GgmlTypeSize(type);
  for (int64_t i = 0; i < nblocks; ++i) fn(x + i * block, y + static_cast<size_t>(i) * bytes);
  return true;
}

}  // namespace inferd
