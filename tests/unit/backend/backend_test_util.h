// Inputs shared by the CPU backend tests: random vectors and quantized weight matrices.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "format/ggml_int.h"
#include "format/ggml_types.h"
#include "model/weights.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/qgemm.h"

namespace inferd::backend_test {

// n floats uniform in (-scale, scale), a pure function of the seed.
inline std::vector<float> RandomVec(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// The SIMD quantized-matmul tables this CPU has (AVX2, AVX-512 VNNI), for comparing each
// with the plain kernels; empty on a CPU with neither.
inline std::vector<const cpu::QKernels*> SimdQKernels() {
  std::vector<const cpu::QKernels*> tables;
  if (cpu::Avx2QKernels()) tables.push_back(cpu::Avx2QKernels());
  if (cpu::Avx512VnniQKernels()) tables.push_back(cpu::Avx512VnniQKernels());
  return tables;
}

struct OwnedMatrix {
  std::vector<uint8_t> bytes;
  Matrix m;
  std::shared_ptr<const void> packed;  // cpu::PackMatrix(m) when asked for (m.packed stays null)
};

// Byte offsets of the fp16 fields of one GGML block, for the types without QuantizeRow.
inline std::vector<size_t> HalfFields(GgmlType type) {
  int off[2];
  const int n = IntBlockHalfFields(type, off);
  return std::vector<size_t>(off, off + n);
}

// n blocks of `type` of random bytes (every code, scale and min pattern) whose fp16 fields
// hold finite values of magnitude up to 2^-6.
inline void RandomBlocks(GgmlType type, int64_t n, uint32_t seed, uint8_t* out) {
  std::mt19937 rng(seed);
  const size_t bytes = GgmlTypeSize(type);
  for (size_t i = 0; i < bytes * n; ++i) out[i] = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> dist(-1.0f / 64, 1.0f / 64);
  for (int64_t b = 0; b < n; ++b) {
    for (size_t off : HalfFields(type)) {
      const uint16_t h = Fp32ToFp16(dist(rng));
      std::memcpy(out + b * bytes + off, &h, 2);
    }
  }
}

// A [rows, cols] matrix of random weights in (-0.5, 0.5) quantized to `type`, or of random
// blocks (RandomBlocks) for the types QuantizeRow does not write.
inline OwnedMatrix MakeMatrix(GgmlType type, int64_t rows, int64_t cols, uint32_t seed, bool pack = false) {
  OwnedMatrix o;
  o.m.type = type;
  o.m.rows = rows;
  o.m.cols = cols;
  o.m.row_bytes = GgmlRowSize(type, cols);
  o.bytes.resize(o.m.row_bytes * rows);
  if (!HalfFields(type).empty()) {
    RandomBlocks(type, rows * cols / GgmlBlockSize(type), seed, o.bytes.data());
  } else {
    auto v = RandomVec(static_cast<size_t>(rows * cols), seed, 0.5f);
    for (int64_t r = 0; r < rows; ++r) {
      EXPECT_TRUE(QuantizeRow(type, &v[r * cols], o.bytes.data() + r * o.m.row_bytes, cols).ok());
    }
  }
  o.m.data = o.bytes.data();
  if (pack) o.packed = cpu::PackMatrix(o.m);
  return o;
}

// The fused matrix `fused` (rows of parts a, b, c in order) through MatMulSegments writes
// each part's rows bit-identical to that part's own MatMul, for every token count.
inline void ExpectSegmentsEqualSeparate(const cpu::PackedMatrix& fused_packed, std::initializer_list<OwnedMatrix*> parts,
                                 std::initializer_list<int64_t> token_counts) {
  const int64_t cols = fused_packed.cols;
  Matrix fused;
  fused.type = (*parts.begin())->m.type;
  fused.rows = fused_packed.rows;
  fused.cols = cols;
  fused.packed = &fused_packed;
  for (int64_t tokens : token_counts) {
    auto x = RandomVec(static_cast<size_t>(tokens * cols), 15);
    std::vector<std::vector<float>> ys;
    std::vector<cpu::MatMulOut> outs;
    for (OwnedMatrix* m : parts) ys.emplace_back(static_cast<size_t>(tokens * m->m.rows));
    size_t i = 0;
    for (OwnedMatrix* m : parts) outs.push_back({ys[i++].data(), m->m.rows});
    cpu::MatMulSegments(fused, x.data(), tokens, outs);
    i = 0;
    for (OwnedMatrix* m : parts) {
      Matrix pm = m->m;
      pm.packed = m->packed.get();
      std::vector<float> ref(ys[i].size());
      cpu::MatMul(pm, x.data(), tokens, ref.data());
      ASSERT_EQ(0, std::memcmp(ref.data(), ys[i].data(), ref.size() * 4)) << tokens << " tokens, part " << i;
      ++i;
    }
  }
}

}  // namespace inferd::backend_test
