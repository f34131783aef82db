// The quantized matmul (backend/cpu/qgemm.h): packing, the definition of its numerics
// against a float64 evaluation, ISA paths bit for bit against the plain kernel, and batch
// invariance through cpu::MatMul.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/qgemm.h"
#include "backend/cpu/cpu_ops.h"
#include "backend_test_util.h"
#include "format/ggml_int.h"
#include "util/cpu_features.h"

namespace inferd {
namespace {

using backend_test::OwnedMatrix;
using backend_test::RandomVec;

// Every matrix of these tests is packed for the int8 kernels.
OwnedMatrix MakeMatrix(GgmlType type, int64_t rows, int64_t cols, uint32_t seed) {
  return backend_test::MakeMatrix(type, rows, cols, seed, /*pack=*/true);
}

// Quantized activations owned by a test, in the activation block of the type they were
// made for (cpu::ActBlockOf: 32, or 256 with two-level scales for the K-quants and IQ4_XS).
struct Acts {
  int64_t block = cpu::kQBlock;
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int32_t> s, e, aux, s16;
  cpu::QuantActs view(cpu::PackedType type, int64_t k) {
    const int64_t tokens = static_cast<int64_t>(q.size()) / k, nb = k / cpu::kQBlock;
    s16.resize(tokens * nb);
    cpu::ComputeSums16(q.data(), tokens, k, s16.data(), e.empty() ? nullptr : e.data());
    if (block == cpu::kQBlock) {
      aux.resize(s.size());
      cpu::ComputeAux(type, d.data(), s.data(), static_cast<int64_t>(s.size()), aux.data());
    }
    return {q.data(), d.data(), aux.data(), k, nb, s16.data(), nullptr, e.empty() ? nullptr : e.data()};
  }
  // The scale of element i of token t: d, or d_u * 2^e_b.
  float scale(int64_t t, int64_t i, int64_t k) const {
    const float di = d[(t * k + i) / block];
    return e.empty() ? di : std::ldexp(di, e[(t * k + i) / cpu::kQBlock]);
  }
};

Acts Quantize(const cpu::QKernels& kern, const std::vector<float>& x, int64_t t, int64_t k, int64_t block) {
  Acts a;
  a.block = block;
  a.q.resize(t * k);
  a.d.resize(t * k / block);
  a.s.resize(t * k / cpu::kQBlock);
  if (block != cpu::kQBlock) a.e.resize(t * k / cpu::kQBlock);
  kern.quantize(x.data(), k, t, k, block, a.q.data(), a.d.data(), a.s.data(), a.e.empty() ? nullptr : a.e.data());
  return a;
}
Acts Quantize(const cpu::QKernels& kern, const std::vector<float>& x, int64_t t, int64_t k, cpu::PackedType type) {
  return Quantize(kern, x, t, k, cpu::ActBlockOf(type));
}

class QGemmTest : public ::testing::TestWithParam<GgmlType> {};

// Columns for a test that wants `cols` (a multiple of 32): the K-quants need whole 256-blocks.
int64_t ColsFor(GgmlType type, int64_t cols) {
  const int64_t blk = GgmlBlockSize(type);
  return blk <= 32 ? cols : (cols + blk - 1) / blk * blk;
}

// cpu::MatMul on packed weights equals the float64 evaluation of qgemm.h's definition
// (activations quantized per block, weights dequantized exactly) to fp32 rounding, and is
// close to the unquantized product.
TEST_P(QGemmTest, MatchesDefinitionAndFloatProduct) {
  const GgmlType type = GetParam();
  if (!GgmlTypeIsSupported(type)) GTEST_SKIP() << "no reference DequantizeRow";
  const int64_t rows = 37, cols = ColsFor(type, 256), tokens = 11;
  OwnedMatrix w = MakeMatrix(type, rows, cols, 1);
  ASSERT_NE(w.packed, nullptr);
  auto x = RandomVec(static_cast<size_t>(tokens * cols), 2);
  Matrix pm = w.m;
  pm.packed = w.packed.get();
  std::vector<float> y(static_cast<size_t>(tokens * rows));
  cpu::MatMul(pm, x.data(), tokens, y.data());

  const auto& p = *static_cast<const cpu::PackedMatrix*>(w.packed.get());
  Acts a = Quantize(cpu::GenericQKernels(), x, tokens, cols, p.type);
  std::vector<float> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    DequantizeRow(type, w.m.row(r), row.data(), cols);
    for (int64_t t = 0; t < tokens; ++t) {
      double def = 0, exact = 0, mag = 0;
      for (int64_t k = 0; k < cols; ++k) {
        const double xq = double(a.q[t * cols + k]) * a.scale(t, k, cols);
        def += double(row[k]) * xq;
        exact += double(row[k]) * x[t * cols + k];
        mag += std::abs(double(row[k]) * x[t * cols + k]);
      }
      const float got = y[t * rows + r];
      ASSERT_NEAR(got, def, 1e-5 * mag) << "row " << r << " token " << t;
      // int8 activations: each element is off by at most d / 2 = amax / 254 (of its block).
      ASSERT_NEAR(got, exact, 0.01 * mag) << "row " << r << " token " << t;
    }
  }
}

// The integer form that packing starts from (format/ggml_int.h) gives the values of the
// reference dequantization (bit-exact to gguf-py) to fp32 rounding, over random blocks.
TEST_P(QGemmTest, IntegerFormMatchesDequantize) {
  const GgmlType type = GetParam();
  IntQuantInfo info;
  if (!IntQuantInfoOf(type, &info)) GTEST_SKIP() << "multiplied from its own layout";
  if (!GgmlTypeIsSupported(type)) GTEST_SKIP() << "no reference DequantizeRow";
  const int64_t n = 64;
  std::vector<uint8_t> raw(GgmlTypeSize(type) * n);
  backend_test::RandomBlocks(type, n, 21, raw.data());
  std::vector<float> ref(static_cast<size_t>(n * info.unit));
  DequantizeRow(type, raw.data(), ref.data(), n * info.unit);
  IntBlock blk;
  for (int64_t b = 0; b < n; ++b) {
    DecodeIntBlock(type, raw.data() + b * GgmlTypeSize(type), &blk);
    for (int e = 0; e < info.unit; ++e) {
      const double want = ref[b * info.unit + e], got = IntBlockValue(info, blk, e);
      ASSERT_NEAR(got, want, 1e-6 * std::abs(want) + 1e-12) << "block " << b << " element " << e;
    }
  }
}

// Every available ISA kernel gives bit-identical quantized activations and outputs to the
// plain one, for all tile shapes (tokens 1..19, group counts 1..5).
TEST_P(QGemmTest, IsaPathsAreBitIdentical) {
  const GgmlType type = GetParam();
  const std::vector<const cpu::QKernels*> tables = backend_test::SimdQKernels();
  if (tables.empty()) GTEST_SKIP() << "no SIMD kernels on this CPU";
  // 5 blocks: an odd count leaves a block pair half empty; K-quants: 2 super-blocks.
  const int64_t rows = 80, cols = GgmlBlockSize(type) > 32 ? 512 : 160, tokens = 19;
  OwnedMatrix w = MakeMatrix(type, rows, cols, 3);
  const auto& p = *static_cast<const cpu::PackedMatrix*>(w.packed.get());
  auto x = RandomVec(static_cast<size_t>(tokens * cols), 4, 3.0f);
  for (int i = 0; i < cpu::ActBlockOf(p.type); ++i) x[cols + i] = 0.0f;  // an all-zero block: d = 0
  const cpu::QKernels& gen = cpu::GenericQKernels();
  Acts ga = Quantize(gen, x, tokens, cols, p.type);
  const cpu::QuantActs gv = ga.view(p.type, cols);
  for (const cpu::QKernels* k : tables) {
    SCOPED_TRACE(k->name);
    Acts ka = Quantize(*k, x, tokens, cols, p.type);
    ASSERT_EQ(ka.q, ga.q);
    ASSERT_EQ(0, std::memcmp(ka.d.data(), ga.d.data(), ga.d.size() * 4));
    ASSERT_EQ(ka.s, ga.s);
    ASSERT_EQ(ka.e, ga.e);
    for (int64_t nt : {1, 2, 3, 4, 5, 7, 8, 9, 16, 19}) {
      for (int64_t ng : {1, 2, 3, 4, 5}) {
        std::vector<float> y1(nt * ng * 16, -1.0f), y2(nt * ng * 16, -2.0f);
        gen.gemm(p, 0, ng, gv, 0, nt, y1.data(), ng * 16);
        k->gemm(p, 0, ng, gv, 0, nt, y2.data(), ng * 16);
        ASSERT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * 4)) << nt << " tokens x " << ng << " groups";
      }
    }
    // An offset token range and group range address the same outputs.
    std::vector<float> all(tokens * 80), part(3 * 32);
    gen.gemm(p, 0, 5, gv, 0, tokens, all.data(), 80);
    k->gemm(p, 2, 2, gv, 5, 3, part.data(), 32);
    for (int t = 0; t < 3; ++t) ASSERT_EQ(0, std::memcmp(&part[t * 32], &all[(5 + t) * 80 + 32], 32 * 4)) << t;
  }
  // The VNNI unit kernel both ways: IQ4 look-ups by vpshufb with nibble masks, and by vpermb
  // where the CPU has AVX512-VBMI (the table takes the latter there).
  if (!cpu::Avx512VnniQKernels() || !cpu::IsUnitType(p.type)) return;
  for (bool vbmi : {false, true}) {
    if (vbmi && !GetCpuFeatures().avx512vbmi) continue;
    SCOPED_TRACE(vbmi ? "unit vnni, vpermb" : "unit vnni, vpshufb");
    for (int64_t nt : {1, 2, 5, 8, 9, 19}) {
      for (int64_t ng : {1, 3}) {
        std::vector<float> y1(nt * ng * 16, -1.0f), y2(nt * ng * 16, -2.0f);
        gen.gemm(p, 0, ng, gv, 0, nt, y1.data(), ng * 16);
        cpu::GemmUnitAvx512Vnni(p, 0, ng, gv, 0, nt, y2.data(), ng * 16, vbmi);
        ASSERT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * 4)) << nt << " tokens x " << ng << " groups";
      }
    }
  }
}

// The largest codes (every code byte 0xFF) against activations that all quantize to +127 or
// all to -127: the int16 partial sums of the AVX2 kernels must not saturate, so they still
// equal the plain kernel's int32 arithmetic bit for bit; nor may the VNNI kernels' biased
// look-up values (v + 128) and zero-point terms overflow.
TEST_P(QGemmTest, ExtremeCodesDoNotSaturate) {
  const GgmlType type = GetParam();
  const std::vector<const cpu::QKernels*> tables = backend_test::SimdQKernels();
  if (tables.empty()) GTEST_SKIP() << "no SIMD kernels on this CPU";
  if (backend_test::HalfFields(type).empty()) GTEST_SKIP() << "8-bit-safe by construction (test_qgemm's other cases)";
  const int64_t rows = 16, cols = ColsFor(type, 64), tokens = 2;
  OwnedMatrix w = backend_test::MakeMatrix(type, rows, cols, 9);
  const size_t bb = GgmlTypeSize(type);
  std::vector<size_t> halves = backend_test::HalfFields(type);
  for (size_t b = 0; b < w.bytes.size() / bb; ++b) {
    for (size_t i = 0; i < bb; ++i) {
      bool half = false;
      for (size_t h : halves) half = half || i == h || i == h + 1;
      if (!half) w.bytes[b * bb + i] = 0xFF;
    }
  }
  w.packed = cpu::PackMatrix(w.m);
  const auto& p = *static_cast<const cpu::PackedMatrix*>(w.packed.get());
  std::vector<float> x(tokens * cols);
  for (int64_t i = 0; i < cols; ++i) x[i] = 1.0f, x[cols + i] = -1.0f;
  Acts a = Quantize(cpu::GenericQKernels(), x, tokens, cols, p.type);
  const cpu::QuantActs v = a.view(p.type, cols);
  std::vector<float> y1(tokens * 16);
  cpu::GenericQKernels().gemm(p, 0, 1, v, 0, tokens, y1.data(), 16);
  for (const cpu::QKernels* k : tables) {
    std::vector<float> y2(tokens * 16);
    k->gemm(p, 0, 1, v, 0, tokens, y2.data(), 16);
    ASSERT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * 4)) << k->name;
  }
}

// A token's outputs do not depend on the batch: every batch size (crossing the 8-token
// tiles and the 128-token cache chunks) gives the rows of the big batch bit for bit.
TEST_P(QGemmTest, BatchInvariantThroughMatMul) {
  const GgmlType type = GetParam();
  const int64_t rows = 50, cols = ColsFor(type, 96), tokens = 140;
  OwnedMatrix w = MakeMatrix(type, rows, cols, 5);
  Matrix pm = w.m;
  pm.packed = w.packed.get();
  auto x = RandomVec(static_cast<size_t>(tokens * cols), 6);
  std::vector<float> y(static_cast<size_t>(tokens * rows));
  cpu::MatMul(pm, x.data(), tokens, y.data());
  for (int64_t n : {1, 2, 3, 4, 5, 8, 9, 17, 33, 129}) {
    for (int64_t start : {int64_t{0}, tokens - n}) {
      std::vector<float> part(static_cast<size_t>(n * rows));
      cpu::MatMul(pm, &x[start * cols], n, part.data());
      ASSERT_EQ(0, std::memcmp(part.data(), &y[start * rows], sizeof(float) * n * rows)) << n << " from " << start;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, QGemmTest,
                         ::testing::Values(GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ8_0, GgmlType::kQ5_0,
                                           GgmlType::kQ5_1, GgmlType::kIQ4_NL, GgmlType::kQ2_K, GgmlType::kQ3_K,
                                           GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kIQ4_XS,
                                           GgmlType::kI4Z128),
                         [](const auto& info) { return GgmlTypeName(static_cast<uint32_t>(info.param)); });

// A fused matrix ([a; b; c], as PrepareWeights builds for QKV) writes each part's rows to
// its own output, bit-identical to the separate matmuls, for any batch size.
TEST(QGemm, ConcatenatedSegmentsEqualSeparateMatMuls) {
  OwnedMatrix a = MakeMatrix(GgmlType::kQ4_1, 64, 96, 11), b = MakeMatrix(GgmlType::kQ4_1, 32, 96, 12),
              c = MakeMatrix(GgmlType::kQ4_1, 21, 96, 13);
  std::vector<const cpu::PackedMatrix*> parts;
  for (OwnedMatrix* m : {&a, &b, &c}) parts.push_back(static_cast<const cpu::PackedMatrix*>(m->packed.get()));
  std::shared_ptr<const cpu::PackedMatrix> cat = cpu::Concat(parts);
  ASSERT_NE(cat, nullptr);
  EXPECT_EQ(cat->rows, 64 + 32 + 21);
  // Parts must end on a 16-row group (but the last) and agree in type and columns.
  EXPECT_EQ(cpu::Concat({parts[2], parts[0]}), nullptr);
  OwnedMatrix other = MakeMatrix(GgmlType::kQ8_0, 32, 96, 14);
  EXPECT_EQ(cpu::Concat({parts[0], static_cast<const cpu::PackedMatrix*>(other.packed.get())}), nullptr);
  backend_test::ExpectSegmentsEqualSeparate(*cat, {&a, &b, &c}, {1, 2, 3, 9});
}

// Parts of different types fused as a composite (cpu::Compose: Q4_K q, Q8_0 k, Q6_K v with a
// partial last group) write each part's rows bit-identical to the separate matmuls.
TEST(QGemm, ComposedPartsOfDifferentTypesEqualSeparateMatMuls) {
  OwnedMatrix a = MakeMatrix(GgmlType::kQ4_K, 48, 256, 21), b = MakeMatrix(GgmlType::kQ8_0, 16, 256, 22),
              c = MakeMatrix(GgmlType::kQ6_K, 21, 256, 23);
  std::vector<std::shared_ptr<const cpu::PackedMatrix>> parts;
  for (OwnedMatrix* m : {&a, &b, &c}) parts.push_back(std::static_pointer_cast<const cpu::PackedMatrix>(m->packed));
  EXPECT_EQ(cpu::Concat({parts[0].get(), parts[1].get()}), nullptr);  // types differ
  std::shared_ptr<const cpu::PackedMatrix> comp = cpu::Compose(parts);
  ASSERT_NE(comp, nullptr);
  EXPECT_EQ(comp->rows, 48 + 16 + 21);
  EXPECT_EQ(comp->num_groups, 3 + 1 + 2);
  OwnedMatrix narrow = MakeMatrix(GgmlType::kQ4_0, 16, 96, 24);
  EXPECT_EQ(cpu::Compose({parts[0], std::static_pointer_cast<const cpu::PackedMatrix>(narrow.packed)}), nullptr);
  backend_test::ExpectSegmentsEqualSeparate(*comp, {&a, &b, &c}, {1, 2, 3, 9, 40});
}

// Per-256 activations (the K-quants, IQ4_XS): each 32-block's scale d_u * 2^e_b is the
// smallest of the five that holds its amax in [-127, 127]: within 2x of amax_b / 127, or
// d_u (amax_u / 2032) for blocks 16x quieter than the unit's loudest; every ISA agrees.
TEST(QGemm, TwoLevelActivationScales) {
  const int64_t k = 512;
  auto x = RandomVec(static_cast<size_t>(k), 31);
  const float gains[16] = {1, 0.5f, 0.26f, 0.2f, 0.07f, 0.03f, 0.001f, 0, 4, 2, 1, 0.5f, 0.25f, 0.125f, 0.0625f, 0};
  for (int64_t b = 0; b < k / 32; ++b)
    for (int i = 0; i < 32; ++i) x[b * 32 + i] *= gains[b];
  x[8 * 32 + 5] = 4.0f;  // block 8: amax exactly 4 (the unit's loudest)
  for (int i = 0; i < 32; ++i) x[9 * 32 + i] = std::clamp(x[9 * 32 + i], -2.0f, 2.0f);
  x[9 * 32 + 3] = -2.0f;  // block 9: amax exactly 2
  Acts a = Quantize(cpu::GenericQKernels(), x, 1, k, cpu::kCoarseBlock);
  for (int64_t b = 0; b < k / 32; ++b) {
    float amax = 0, amax_u = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
    for (int i = 0; i < 256; ++i) amax_u = std::max(amax_u, std::fabs(x[b / 8 * 256 + i]));
    const float scale = a.scale(0, b * 32, k);
    ASSERT_EQ(a.d[b / 8], amax_u / 127.0f / 16.0f) << b;
    ASSERT_GE(a.e[b], 0);
    ASSERT_LE(a.e[b], cpu::kMaxActShift);
    if (a.e[b] > 0) {
      ASSERT_GE(scale * 127.0f, amax) << b;
      ASSERT_LT(scale * 127.0f, 2.0f * amax) << b;
    } else {
      ASSERT_LE(amax * 16.0f, amax_u) << b;
    }
    for (int i = 0; i < 32; ++i) {
      const int q = a.q[b * 32 + i];
      ASSERT_LE(std::abs(q), 127);
      ASSERT_EQ(q, static_cast<int>(std::nearbyint(x[b * 32 + i] / scale))) << b << " " << i;
    }
  }
  EXPECT_EQ(a.e[8], 4);  // the loudest block
  EXPECT_EQ(a.e[9], 3);  // amax 2 = 4 * 2^(3 - 4): the boundary is inclusive
  EXPECT_EQ(a.e[7], 0);  // an all-zero block
  for (const cpu::QKernels* kern : backend_test::SimdQKernels()) {
    Acts b = Quantize(*kern, x, 1, k, cpu::kCoarseBlock);
    EXPECT_EQ(b.q, a.q) << kern->name;
    EXPECT_EQ(b.e, a.e) << kern->name;
    EXPECT_EQ(b.d, a.d) << kern->name;
  }
}

TEST(QGemm, PackLayout) {
  OwnedMatrix w = MakeMatrix(GgmlType::kQ4_1, 20, 64, 7);
  const auto& p = *static_cast<const cpu::PackedMatrix*>(w.packed.get());
  EXPECT_EQ(p.num_groups, 2);
  EXPECT_EQ(p.nb, 2);
  EXPECT_EQ(p.group_bytes, 2u * (256 + 32 + 32));  // one pair of blocks
  EXPECT_EQ(p.qs_offset(1), 256u);
  EXPECT_EQ(p.d_offset(1), 512u + 32u);
  EXPECT_EQ(p.m_offset(0), 512u + 64u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p.data) % 64, 0u);
  // Row 17 = group 1 lane 1; block 1, chunk 2 holds its quant bytes 8..11.
  const uint8_t* src = w.m.row(17) + 20;  // block 1 of the GGML row
  const uint8_t* dst = p.group(1) + p.qs_offset(1) + 2 * 64 + 1 * 4;
  EXPECT_EQ(0, std::memcmp(dst, src + 4 + 8, 4));
  EXPECT_EQ(0, std::memcmp(p.group(1) + p.d_offset(1) + 2, src, 2));
  EXPECT_EQ(0, std::memcmp(p.group(1) + p.m_offset(1) + 2, src + 2, 2));
  // Rows past the end are zero.
  const uint8_t* pad = p.group(1) + p.d_offset(0) + 2 * 4;
  EXPECT_EQ(pad[0] | pad[1], 0);
  Matrix f16;
  f16.type = GgmlType::kF16;
  EXPECT_EQ(cpu::PackMatrix(f16), nullptr);
}

}  // namespace
}  // namespace inferd
