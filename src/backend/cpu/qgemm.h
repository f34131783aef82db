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
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "format/ggml_types.h"
#include "format/matrix.h"

namespace inferd::cpu {

constexpr int kGroupRows = 16;
constexpr int kQBlock = 32;

enum class PackedType : uint8_t { kQ4_0, kQ4_1, kQ8_0 };

struct PackedMatrix {
  PackedType type = PackedType::kQ4_0;
  int64_t rows = 0, cols = 0;
  int64_t num_groups = 0;   // ceil(rows / 16); rows past `rows` in the last group are zero
  int64_t nb = 0;           // blocks per row (cols / 32)
  size_t qs_bytes = 0;      // quant bytes of one block of one group: 256 (Q4) or 512 (Q8)
  size_t pair_bytes = 0;    // two blocks of one group, a multiple of 64
  size_t group_bytes = 0;   // one group, all blocks
  uint8_t* data = nullptr;  // 64-byte aligned, num_groups * group_bytes
  std::unique_ptr<uint8_t, void (*)(void*)> owner{nullptr, nullptr};

  const uint8_t* group(int64_t g) const { return data + static_cast<size_t>(g) * group_bytes; }
  // Within a group: block b's chunks, scales and mins.
  size_t pair(int64_t b) const { return static_cast<size_t>(b >> 1) * pair_bytes; }
  size_t qs_offset(int64_t b) const { return pair(b) + static_cast<size_t>(b & 1) * qs_bytes; }
  size_t d_offset(int64_t b) const { return pair(b) + 2 * qs_bytes + static_cast<size_t>(b & 1) * 32; }
  size_t m_offset(int64_t b) const { return pair(b) + 2 * qs_bytes + 64 + static_cast<size_t>(b & 1) * 32; }
};

// True for the GGML types that have a packed form (Q4_0, Q4_1, Q8_0) with cols % 32 == 0.
bool CanPack(const Matrix& w);
// Repacks w (precondition: CanPack(w)). The result owns its memory.
std::unique_ptr<PackedMatrix> Pack(const Matrix& w);
// The rows of several packed matrices one after the other, or nullptr when they differ in
// type or columns, or one but the last has rows % 16 != 0.
std::unique_ptr<PackedMatrix> Concat(const std::vector<const PackedMatrix*>& parts);

// Quantized activations of T token rows of k elements (k % 32 == 0), nb = k / 32:
// q [T][k], d [T][nb], s [T][nb] (sum of the block's q), aux [T][nb] the per-type
// correction: off * s as int32 (Q4_0, Q8_0) or the float bits of d * s (Q4_1).
struct QuantActs {
  const int8_t* q = nullptr;
  const float* d = nullptr;
  const int32_t* aux = nullptr;
  int64_t k = 0, nb = 0;
};

struct QKernels {
  const char* name;
  // Quantizes rows t < nt of x (row stride ldx) into q / d / s as described above.
  void (*quantize)(const float* x, int64_t ldx, int64_t nt, int64_t k, int8_t* q, float* d, int32_t* s);
  // y[t * ldy + 16 * (g - g0) + l] = row 16 g + l of w times token t0 + t, for g in
  // [g0, g0 + ng), t < nt. Writes all 16 lanes of every group (y holds them).
  void (*gemm)(const PackedMatrix& w, int64_t g0, int64_t ng, const QuantActs& a, int64_t t0, int64_t nt,
               float* y, int64_t ldy);
};

const QKernels& GenericQKernels();
const QKernels* Avx2QKernels();        // nullptr without AVX2 + FMA + F16C
const QKernels* Avx512VnniQKernels();  // nullptr without AVX-512 F/BW/VL + VNNI
// The best available, capped by INFERD_CPU_KERNELS=generic|avx2|avx512 as the float kernels.
const QKernels& QuantKernels();

// Per-type correction term from the block sums (see QuantActs::aux).
void ComputeAux(PackedType type, const float* d, const int32_t* s, int64_t n, int32_t* aux);

}  // namespace inferd::cpu
