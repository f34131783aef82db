// Quantized matmul on the CPU: int8 activations x 4/8-bit weights, integer dot products per
// 32-element block (VNNI vpdpbusd on AVX-512, vpmaddubsw on AVX2, plain C elsewhere).
//
// Numerics (identical on every ISA path, for any batch, tile or thread split):
//   activations, per token row and 32-element block b:
//     amax = max|x|, d = amax / 127, id = d ? 1 / d : 0, q_i = nearbyint(x_i * id) (ties to
//     even, in [-127, 127]), s = sum q_i
//   weights keep their GGUF codes u_i and fp16 scales: Q4_0 w = d_w (u - 8), Q4_1
//   w = d_w u + m_w, Q8_0 w = d_w q (packed as u = q + 128)
//   per block the integer i = sum u_i q_i - off * s (off = 8 for Q4_0, 128 for Q8_0, 0 for
//   Q4_1) is exact in int32, so the order of the integer sums is free; then, in fp32,
//     acc = fma(d_w * d, float(i), acc)          (every type)
//     acc = fma(m_w, d * float(s), acc)          (Q4_1)
//   over blocks b = 0, 1, ... in order, from acc = 0. y = acc.
// So a token's outputs depend only on its own activations and the weights.
//
// Packed weights (built once at load): rows in groups of 16. For each block b, a group
// holds the 16 rows' quant bytes interleaved 4 bytes at a time (chunk c = bytes 4c..4c+3
// of rows 0..15: 64 bytes; a vpdpbusd lane is a row), their 16 fp16 scales and (Q4_1)
// their 16 fp16 mins. Blocks go in pairs, so that a group is one contiguous stream of
// whole cache lines (one prefetch stream per group):
//   pair = [qs b][qs b+1][d b][d b+1]([m b][m b+1])   (Q4_0 576, Q4_1 640, Q8_0 1088 bytes)
// An odd last block leaves its pair half empty.
//
// The other integer types (Q5_0, Q5_1, IQ4_NL, the K-quants, IQ4_XS, and inferd's I4Z128 of
// AWQ / GPTQ checkpoints) use the "unit" layout and numerics of UnitLayout below, over their
// integer form (format/ggml_int.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "format/ggml_types.h"
#include "format/matrix.h"

namespace inferd::cpu {

constexpr int kGroupRows = 16;
constexpr int kQBlock = 32;

enum class PackedType : uint8_t {
  kQ4_0, kQ4_1, kQ8_0, kQ5_0, kQ5_1, kIQ4_NL, kQ2_K, kQ3_K, kQ4_K, kQ5_K, kQ6_K, kIQ4_XS, kI4Z128,
  kF32, kF16, kBF16  // float panels (below)
};

// Float matrices (F32, F16, BF16) are packed as k-major panels: a group holds its 16 rows'
// elements column by column (element (l, k) at k * 16 + l, the file's own element type, the
// group padded to 64 bytes), so that decode streams one contiguous panel per group and a
// prefill tile loads 16 rows' values of one column with one or two vector loads. Numerics
// (F32, F16): one fma chain per output over k in order, from 0 (no activation rounding):
//   acc = fma(w[r][k], x[t][k], acc)   for k = 0, 1, ..., cols - 1;   y = acc
// BF16 goes by column pairs, as AVX512-BF16's vdpbf16ps computes it: element (l, k) at
// (k / 2) * 32 + 2 l + k % 2 (a lane's dword is the pair; odd cols end in a zero), the
// activations rounded to bf16 once (xb = RoundToBf16(x), ties to even; QuantActs::xb or,
// widened to fp32, ::xr), and
//   acc = (acc + w[r][2p+1] * xb[t][2p+1]) + w[r][2p] * xb[t][2p]   for p = 0, 1, ...
// in fp32, each addition rounded to nearest even. A product of two bf16 values is exact in
// fp32, so fma(w, xb, acc) gives the same bits: ISAs without vdpbf16ps use two fmas. (For
// products or sums below 2^-126 the instruction's subnormal handling differs by CPU: Intel
// flushes them, this AMD keeps some; inferd's tests stay in the normal range.)
// Either way every ISA path gives the same bits for any batch, tile or thread split, and a
// token's outputs depend only on its own activations.
constexpr bool IsFloatType(PackedType t) {
  return t == PackedType::kF32 || t == PackedType::kF16 || t == PackedType::kBF16;
}
constexpr size_t FloatElemBytes(PackedType t) { return t == PackedType::kF32 ? 4 : 2; }
// Elements per row of the bf16 activations (QuantActs::xb): cols rounded up to a pair.
constexpr int64_t Bf16PairCols(int64_t cols) { return cols + (cols & 1); }

// fp32 -> bf16, nearest even, NaN kept quiet: format's Fp32ToBf16, inline so that the
// kernels' row loops vectorize. Static (as RoundBf16Rows): each ISA's file compiles its own
// copy with its own flags, where an inline function with external linkage would be one
// symbol across files, and the linker could keep the AVX-512 copy for the AVX2 table.
static inline uint16_t RoundToBf16(float f) {
  uint32_t x;
  static_assert(sizeof(x) == sizeof(f));
  std::memcpy(&x, &f, 4);
  const uint32_t r = (x + 0x7FFFu + ((x >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>((x & 0x7FFFFFFFu) > 0x7F800000u ? (x >> 16) | 0x40u : r);
}
// Rows t < nt of x (stride ldx, k elements) rounded to bf16, in rows of Bf16PairCols(k) (a
// zero pads an odd k): as bf16 pairs into xb (vdpbf16ps's operand) and / or widened back to
// fp32 into xr (the fma kernels'); a null pointer skips that form.
static inline void RoundBf16Rows(const float* x, int64_t ldx, int64_t nt, int64_t k, uint16_t* xb, float* xr) {
  const int64_t kp = Bf16PairCols(k);
  for (int64_t t = 0; t < nt; ++t) {
    const float* in = x + t * ldx;
    if (xb) {
      uint16_t* o = xb + t * kp;
      for (int64_t i = 0; i < k; ++i) o[i] = RoundToBf16(in[i]);
      if (kp != k) o[k] = 0;
    }
    if (xr) {
      float* o = xr + t * kp;
      for (int64_t i = 0; i < k; ++i) {
        const uint32_t bits = static_cast<uint32_t>(RoundToBf16(in[i])) << 16;
        std::memcpy(&o[i], &bits, 4);
      }
      if (kp != k) o[k] = 0.0f;
    }
  }
}

// Unit types: w = D * sc_j * (v(u) - z) - Dmin * m_j per 16-element sub-block j
// (format/ggml_int.h). Numerics, per row, token and 32-block b (activations as above, plus
// S0, S1: the sums of q over the block's two 16-element halves):
//   I = sum_e sc_{j(e)} v(u_e) q_e - z (sc_0 S0 + sc_1 S1)      exact int32
//   J = m_0 S0 + m_1 S1                                         (integer mins)
//   acc = fma(D * d, float(I), acc)                             D: the block's d (32-types)
//   acc = fma(-(Dmin * d), float(J), acc)                       (integer mins)
//   acc = fma(m_b, d * float(S0 + S1), acc)                     (Q5_1's fp16 min)
// except the types with one D per 256-element unit (the K-quants, IQ4_XS: CoarseActs). Their
// activations have two-level scales: per 256-element unit u, amax_u = max |x| and
// d_u = amax_u / 127 / 16; per 32-block b of it the smallest e_b in 0..4 with
// amax_b <= amax_u * 2^(e_b - 4), and q_i = nearbyint(x_i / (d_u * 2^e_b)) (|q| <= 127). So a
// block's scale is within 2x of its own amax / 127, and the integers of a unit add up exactly
// before one float step per unit and token:
//   I_u = sum_b (2^e_b sum_j sc_j dot_j - z sum_j sc_j S'_j)    S'_j = 2^e_b S_j
//   J_u = sum_b sum_j m_j S'_j                                  (integer mins)
//   acc = fma(D * d_u, float(I_u), acc)
//   acc = fma(-(Dmin * d_u), float(J_u), acc)
// |I_u| < 2^31 for every type (Q6_K's worst case is 2^30.99); the kernels' intermediate int32
// sums may wrap, the result does not. (llama.cpp's Q8_K has one scale per 256.)
// Layout: a group (16 rows) is a sequence of units of `blocks` 32-blocks (a block pair, a
// 128-element I4Z128 block, or a 256-element super-block), each padded to 64 bytes:
//   codes   per block: lo plane, then per block: hi plane
//           P4 (256 B): chunk c (64 B) byte 4 r + i: u[4c+i] & 15 | (u[16+4c+i] & 15) << 4
//           L2 (128 B): vector v (64 B) byte 4 r + i, bits 2k..2k+1: u[4(4v+k)+i] & 3
//           H1 (64 B):  byte 4 r + i, bit k: the top bit of u[4k+i] (bit 4 or bit 2 for L2)
//           H2 (128 B): vector v byte 4 r + i, bits 2k..2k+1: u[4(4v+k)+i] >> 4
//   sc      per block: a byte per row (sc per 32) or two (sc_0, sc_1 per 16); Q2_K keeps
//           its min in the high nibble of the same byte
//   m       per block: a byte per row (Q4_K, Q5_K; I4Z128: the zero z, the same in the
//           unit's 4 blocks, so J = z (S0 + S1) and w = D u - Dmin z with D = Dmin = s)
//   D       16 fp16 per block (32-types) or per unit; Dmin 16 fp16 per unit (or Q5_1's m per block)
// where r is the row in the group (so rows 8h..8h+7 are the 32-byte half h of a 64-byte row).
enum class CodeKind : uint8_t { kP4, kP4H1, kP4H2, kL2, kL2H1 };
struct UnitLayout {
  int blocks = 0;          // 32-blocks per unit: 2, 4 (I4Z128) or 8
  CodeKind code = CodeKind::kP4;
  bool lut = false;        // IQ4: v(u) = kIq4Values[u]
  int z_shift = -1;        // z = 1 << z_shift; -1: z = 0
  int sc_bytes = 0;        // per block per group: 0 (sc = 1), 16 (per 32), 32 (per 16)
  bool sc_min_nibbles = false;  // Q2_K: byte = sc | m << 4
  bool m_bytes = false;    // Q4_K, Q5_K, I4Z128: 16 bytes of m per block
  bool fp_min = false;     // Q5_1: 16 fp16 m per block at dmin_off
  bool d_per_block = false;  // D per 32-block (the 2-block units), else one per unit
  bool int_min = false;    // J term with Dmin per unit (Q2_K, Q4_K, Q5_K, I4Z128)
  int lo_bytes = 0, hi_bytes = 0;
  int sc_off = 0, m_off = 0, d_off = 0, dmin_off = 0, unit_bytes = 0;
  constexpr int lo_off(int b) const { return b * lo_bytes; }
  constexpr int hi_off(int b) const { return blocks * lo_bytes + b * hi_bytes; }
};
constexpr UnitLayout MakeUnitLayout(int blocks, CodeKind code, bool lut, int z_shift, int sc_bytes, bool nibbles,
                                    bool m_bytes, bool fp_min, bool int_min) {
  UnitLayout L;
  L.blocks = blocks;
  L.code = code;
  L.lut = lut;
  L.z_shift = z_shift;
  L.sc_bytes = sc_bytes;
  L.sc_min_nibbles = nibbles;
  L.m_bytes = m_bytes;
  L.fp_min = fp_min;
  L.int_min = int_min;
  L.d_per_block = blocks == 2;
  L.lo_bytes = (code == CodeKind::kL2 || code == CodeKind::kL2H1) ? 128 : 256;
  L.hi_bytes = (code == CodeKind::kP4H1 || code == CodeKind::kL2H1) ? 64 : code == CodeKind::kP4H2 ? 128 : 0;
  L.sc_off = blocks * (L.lo_bytes + L.hi_bytes);
  L.m_off = L.sc_off + blocks * sc_bytes;
  L.d_off = L.m_off + (m_bytes ? blocks * 16 : 0);
  L.dmin_off = L.d_off + (L.d_per_block ? blocks * 32 : 32);
  const int end = L.dmin_off + (fp_min ? blocks * 32 : int_min ? 32 : 0);
  L.unit_bytes = (end + 63) / 64 * 64;
  return L;
}
constexpr UnitLayout UnitLayoutOf(PackedType t) {
  switch (t) {
    case PackedType::kQ5_0: return MakeUnitLayout(2, CodeKind::kP4H1, false, 4, 0, false, false, false, false);
    case PackedType::kQ5_1: return MakeUnitLayout(2, CodeKind::kP4H1, false, -1, 0, false, false, true, false);
    case PackedType::kIQ4_NL: return MakeUnitLayout(2, CodeKind::kP4, true, -1, 0, false, false, false, false);
    case PackedType::kQ2_K: return MakeUnitLayout(8, CodeKind::kL2, false, -1, 32, true, false, false, true);
    case PackedType::kQ3_K: return MakeUnitLayout(8, CodeKind::kL2H1, false, 2, 32, false, false, false, false);
    case PackedType::kQ4_K: return MakeUnitLayout(8, CodeKind::kP4, false, -1, 16, false, true, false, true);
    case PackedType::kQ5_K: return MakeUnitLayout(8, CodeKind::kP4H1, false, -1, 16, false, true, false, true);
    case PackedType::kQ6_K: return MakeUnitLayout(8, CodeKind::kP4H2, false, 5, 32, false, false, false, false);
    case PackedType::kIQ4_XS: return MakeUnitLayout(8, CodeKind::kP4, true, -1, 16, false, false, false, false);
    // 4 blocks per unit (one I4Z128 block of 128); 1152 bytes per 16 rows x 128: 4.5 bits
    // per weight, D and Dmin both s (a dedicated per-row-zero term would need 4.25).
    case PackedType::kI4Z128:
      return MakeUnitLayout(4, CodeKind::kP4, false, -1, 0, false, /*m_bytes=*/true, false, /*int_min=*/true);
    default: return UnitLayout{};
  }
}
constexpr bool IsUnitType(PackedType t) { return UnitLayoutOf(t).blocks != 0; }
// Two-level activation scales per 256 (see the numerics above) for the 8-block unit types.
constexpr bool CoarseActs(PackedType t) { return UnitLayoutOf(t).blocks == 8; }
constexpr int kCoarseBlock = 256;
constexpr int kMaxActShift = 4;  // e_b in 0..4
// The activation block of a type: 256 for CoarseActs, else 32 (float panels: unused).
constexpr int ActBlockOf(PackedType t) { return CoarseActs(t) ? kCoarseBlock : kQBlock; }

// Calls f(std::integral_constant<PackedType, T>{}) for the unit type t (the ISA kernels'
// per-type dispatch); does nothing for other types.
template <class F>
inline void VisitUnitType(PackedType t, F&& f) {
  using P = PackedType;
  switch (t) {
    case P::kQ5_0: return f(std::integral_constant<P, P::kQ5_0>{});
    case P::kQ5_1: return f(std::integral_constant<P, P::kQ5_1>{});
    case P::kIQ4_NL: return f(std::integral_constant<P, P::kIQ4_NL>{});
    case P::kQ2_K: return f(std::integral_constant<P, P::kQ2_K>{});
    case P::kQ3_K: return f(std::integral_constant<P, P::kQ3_K>{});
    case P::kQ4_K: return f(std::integral_constant<P, P::kQ4_K>{});
    case P::kQ5_K: return f(std::integral_constant<P, P::kQ5_K>{});
    case P::kQ6_K: return f(std::integral_constant<P, P::kQ6_K>{});
    case P::kIQ4_XS: return f(std::integral_constant<P, P::kIQ4_XS>{});
    case P::kI4Z128: return f(std::integral_constant<P, P::kI4Z128>{});
    default: return;
  }
}

struct PackedMatrix {
  PackedType type = PackedType::kQ4_0;
  int64_t rows = 0, cols = 0;
  int64_t num_groups = 0;   // ceil(rows / 16); rows past `rows` in the last group are zero
  int64_t nb = 0;           // blocks per row (cols / 32)
  size_t qs_bytes = 0;      // quant bytes of one block of one group: 256 (Q4) or 512 (Q8)
  size_t pair_bytes = 0;    // two blocks of one group, a multiple of 64
  size_t group_bytes = 0;   // one group, all blocks
  int64_t num_units = 0;    // unit types: units per group
  // A composite (Compose): the rows of parts[0], then of parts[1], ... each packed in its own
  // type; `data` is null and the other fields but rows, cols, num_groups are unused.
  std::vector<std::shared_ptr<const PackedMatrix>> parts;
  uint8_t* data = nullptr;  // 64-byte aligned, num_groups * group_bytes
  std::unique_ptr<uint8_t, void (*)(void*)> owner{nullptr, nullptr};

  const uint8_t* group(int64_t g) const { return data + static_cast<size_t>(g) * group_bytes; }
  // Within a group: block b's chunks, scales and mins.
  size_t pair(int64_t b) const { return static_cast<size_t>(b >> 1) * pair_bytes; }
  size_t qs_offset(int64_t b) const { return pair(b) + static_cast<size_t>(b & 1) * qs_bytes; }
  size_t d_offset(int64_t b) const { return pair(b) + 2 * qs_bytes + static_cast<size_t>(b & 1) * 32; }
  size_t m_offset(int64_t b) const { return pair(b) + 2 * qs_bytes + 64 + static_cast<size_t>(b & 1) * 32; }
};

// True for the GGML types that have a packed form: Q4_0, Q4_1, Q8_0 and the unit types,
// with cols a multiple of the type's block (32, 128 or 256); F32, F16 and BF16 (float
// panels) with any cols.
bool CanPack(const Matrix& w);
// Repacks w (precondition: CanPack(w)). The result owns its memory.
std::unique_ptr<PackedMatrix> Pack(const Matrix& w);
// Bytes a packed matrix holds (a composite: its parts').
size_t PackedBytes(const PackedMatrix& p);
// The rows of several packed matrices one after the other, or nullptr when they differ in
// type or columns, or one but the last has rows % 16 != 0.
std::unique_ptr<PackedMatrix> Concat(const std::vector<const PackedMatrix*>& parts);

// Quantized activations of T token rows of k elements (k % 32 == 0), nb = k / 32, in
// blocks of ActBlockOf(type) (32 or 256): q [T][k], d [T][k / block] (per 256: d_u),
// e [T][nb] (per 256: each 32-block's e_b; else null), aux [T][nb] the per-type correction:
// off * s as int32 (Q4_0, Q8_0) or the float bits of d * s (Q4_1, Q5_1), with s the sum of a
// 32-block's q; s16 [T][nb] (unit types) each 32-block's two 16-element sums as int16s,
// S0 | S1 << 16, times 2^e_b for per-256 activations (at most 16 * 2032, so still int16).
// x [T][k]: the activations themselves, for float panels (q, d, aux, s16 are then unused);
// xb [T][Bf16PairCols(k)]: x rounded to bf16, for BF16 panels with vdpbf16ps; xr: the same
// values as fp32, for the BF16 fma kernels (QKernels::bf16_pairs says which one a table reads).
struct QuantActs {
  const int8_t* q = nullptr;
  const float* d = nullptr;
  const int32_t* aux = nullptr;
  int64_t k = 0, nb = 0;
  const int32_t* s16 = nullptr;
  const float* x = nullptr;
  const int32_t* e = nullptr;
  const uint16_t* xb = nullptr;
  const float* xr = nullptr;
};

struct QKernels {
  const char* name;
  // Quantizes rows t < nt of x (row stride ldx) into q / d / s as described above, in
  // blocks of `block` (32, or 256 with two-level scales: then e [nt][k / 32] too): d
  // [nt][k / block], s [nt][k / 32] the sums of each 32-block's q.
  void (*quantize)(const float* x, int64_t ldx, int64_t nt, int64_t k, int64_t block, int8_t* q, float* d,
                   int32_t* s, int32_t* e);
  // y[t * ldy + 16 * (g - g0) + l] = row 16 g + l of w times token t0 + t, for g in
  // [g0, g0 + ng), t < nt. Writes all 16 lanes of every group (y holds them).
  void (*gemm)(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
               float* y, int64_t ldy);
  // RoundBf16Rows, vectorized for the ISA.
  void (*round_bf16)(const float* x, int64_t ldx, int64_t nt, int64_t k, uint16_t* xb, float* xr);
  // BF16 panels read QuantActs::xb (true: vdpbf16ps) or ::xr.
  bool bf16_pairs;
};

const QKernels& GenericQKernels();
const QKernels* Avx2QKernels();        // nullptr without AVX2 + FMA + F16C
const QKernels* Avx512VnniQKernels();  // nullptr without AVX-512 F/BW/VL + VNNI
// The best available, capped by INFERD_CPU_KERNELS=generic|avx2|avx512 as the float kernels.
const QKernels& QuantKernels();

// Several packed matrices of equal columns as one composite (PackedMatrix::parts), for fused
// QKV / gate-up whose parts differ in type (a Q4_K_M file's Q6_K attn_v): one activation
// quantization and one parallel region. Null when the columns differ.
std::shared_ptr<const PackedMatrix> Compose(std::vector<std::shared_ptr<const PackedMatrix>> parts);

// Per-type correction term from the block sums (see QuantActs::aux).
void ComputeAux(PackedType type, const float* d, const int32_t* s, int64_t n, int32_t* aux);
// QuantActs::s16 of nt token rows of quantized activations q (row stride k).
// With e (per-256 activations): each block's sums times 2^e_b.
void ComputeSums16(const int8_t* q, int64_t nt, int64_t k, int32_t* s16, const int32_t* e = nullptr);
// Per 256 of a row (generic reference of every ISA's quantize): the e_b of its 8 blocks from
// their amax, and d_u. The ISA kernels compute amax their own way (max is exact) and call it.
float CoarseScales(const float* amax8, int32_t* e8);

// The float panels' kernels (fgemm*.cc), with QKernels::gemm's contract.
void GemmFloatGeneric(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                      float* y, int64_t ldy);
void GemmFloatAvx2(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                   float* y, int64_t ldy);
// AVX-512 F/BW/VL (called from the AVX-512 VNNI table; AVX-512 CPUs without VNNI run the AVX2 one).
void GemmFloatAvx512(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                     float* y, int64_t ldy);
// BF16 panels with vdpbf16ps (AVX-512 F/BW/VL + BF16; the VNNI table calls it where the CPU
// has AVX512-BF16, else GemmFloatAvx512).
void GemmBf16Avx512Bf16(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                        float* y, int64_t ldy);

// The unit types' kernels (qgemm_unit*.cc), with QKernels::gemm's contract.
void GemmUnitGeneric(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                     float* y, int64_t ldy);
void GemmUnitAvx2(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                  float* y, int64_t ldy);
// AVX-512 F/BW/VL + VNNI (called from the VNNI table); vbmi: the IQ4 look-ups by vpermb
// (only where the CPU has AVX512-VBMI; the same bits either way).
void GemmUnitAvx512Vnni(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
                        float* y, int64_t ldy, bool vbmi);
// Packs w (a unit type, cols a multiple of its block) into p's layout.
void PackUnits(const Matrix& w, PackedMatrix* p);

}  // namespace inferd::cpu
