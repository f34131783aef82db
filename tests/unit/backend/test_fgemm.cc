// Float panels (backend/cpu/qgemm.h, fgemm*.cc): F32, F16 and BF16 matrices packed k-major,
// one fma chain per output. Checked: the plain kernel against a float64 evaluation, the ISA
// kernels bit for bit against the plain one for every tile shape, batch invariance through
// cpu::MatMul, and fused segments (also beside an integer part) equal to separate matmuls.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/qgemm.h"
#include "backend_test_util.h"
#include "format/ggml_types.h"

namespace inferd {
namespace {

using backend_test::OwnedMatrix;
using backend_test::RandomVec;

class FloatPanelTest : public ::testing::TestWithParam<GgmlType> {};

std::vector<float> Dequantized(const OwnedMatrix& w) {
  std::vector<float> out(static_cast<size_t>(w.m.rows * w.m.cols));
  for (int64_t r = 0; r < w.m.rows; ++r) DequantizeRow(w.m.type, w.m.row(r), &out[r * w.m.cols], w.m.cols);
  return out;
}

cpu::QuantActs FloatActs(const std::vector<float>& x, int64_t k) {
  cpu::QuantActs a;
  a.x = x.data();
  a.k = k;
  return a;
}

TEST_P(FloatPanelTest, PlainKernelMatchesFloat64) {
  const GgmlType type = GetParam();
  const int64_t rows = 37, cols = 70, tokens = 5;  // a partial last group; cols not a multiple of 16
  OwnedMatrix w = backend_test::MakeMatrix(type, rows, cols, 1, /*pack=*/true);
  ASSERT_NE(w.packed, nullptr);
  const auto& p = *static_cast<const cpu::PackedMatrix*>(w.packed.get());
  EXPECT_TRUE(cpu::IsFloatType(p.type));
  EXPECT_EQ(p.num_groups, 3);
  const std::vector<float> wf = Dequantized(w);
  const auto x = RandomVec(static_cast<size_t>(tokens * cols), 2, 2.0f);
  std::vector<float> y(static_cast<size_t>(tokens * 48), -1.0f);
  cpu::GenericQKernels().gemm(p, 0, p.num_groups, FloatActs(x, cols), 0, tokens, y.data(), 48);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t r = 0; r < 48; ++r) {
      double ref = 0, mag = 0;
      for (int64_t k = 0; r < rows && k < cols; ++k) {
        ref += static_cast<double>(wf[r * cols + k]) * x[t * cols + k];
        mag += std::fabs(static_cast<double>(wf[r * cols + k]) * x[t * cols + k]);
      }
      EXPECT_NEAR(y[t * 48 + r], ref, 1e-6 * mag + 1e-30) << "token " << t << " row " << r;  // padding rows: 0
    }
  }
}

TEST_P(FloatPanelTest, IsaPathsAreBitIdentical) {
  const GgmlType type = GetParam();
  if (!cpu::Avx2QKernels()) GTEST_SKIP() << "no AVX2";
  const int64_t rows = 80, cols = 70, tokens = 19;
  OwnedMatrix w = backend_test::MakeMatrix(type, rows, cols, 3, /*pack=*/true);
  const auto& p = *static_cast<const cpu::PackedMatrix*>(w.packed.get());
  const auto x = RandomVec(static_cast<size_t>(tokens * cols), 4, 3.0f);
  const cpu::QuantActs a = FloatActs(x, cols);
  for (const cpu::QKernels* k : backend_test::SimdQKernels()) {
    SCOPED_TRACE(k->name);
    for (int64_t nt : {1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 19}) {
      for (int64_t ng : {1, 2, 3, 4, 5}) {
        std::vector<float> y1(nt * ng * 16, -1.0f), y2(nt * ng * 16, -2.0f);
        cpu::GenericQKernels().gemm(p, 0, ng, a, 0, nt, y1.data(), ng * 16);
        k->gemm(p, 0, ng, a, 0, nt, y2.data(), ng * 16);
        ASSERT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * 4)) << nt << " tokens x " << ng << " groups";
      }
    }
    std::vector<float> all(tokens * 80), part(3 * 32);
    cpu::GenericQKernels().gemm(p, 0, 5, a, 0, tokens, all.data(), 80);
    k->gemm(p, 2, 2, a, 5, 3, part.data(), 32);
    for (int t = 0; t < 3; ++t) ASSERT_EQ(0, std::memcmp(&part[t * 32], &all[(5 + t) * 80 + 32], 32 * 4)) << t;
  }
}

TEST_P(FloatPanelTest, BatchInvariantThroughMatMulAndCloseToTheRowPath) {
  const GgmlType type = GetParam();
  const int64_t rows = 50, cols = 96, tokens = 140;
  OwnedMatrix w = backend_test::MakeMatrix(type, rows, cols, 5, /*pack=*/true);
  Matrix pm = w.m;
  pm.packed = w.packed.get();
  const auto x = RandomVec(static_cast<size_t>(tokens * cols), 6);
  std::vector<float> y(static_cast<size_t>(tokens * rows)), unpacked(y.size());
  cpu::MatMul(pm, x.data(), tokens, y.data());
  cpu::MatMul(w.m, x.data(), tokens, unpacked.data());  // the row-wise fp32 path
  for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], unpacked[i], 1e-4f * (1.0f + std::fabs(unpacked[i]))) << i;
  for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 33, 129}) {
    for (int64_t start : {int64_t{0}, tokens - n}) {
      std::vector<float> part(static_cast<size_t>(n * rows));
      cpu::MatMul(pm, &x[start * cols], n, part.data());
      ASSERT_EQ(0, std::memcmp(part.data(), &y[start * rows], sizeof(float) * n * rows)) << n << " from " << start;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, FloatPanelTest, ::testing::Values(GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16),
                         [](const auto& info) { return GgmlTypeName(static_cast<uint32_t>(info.param)); });

// Fused QKV-style matrices: float panels concatenated, and an F16 part composed with a Q8_0
// part (one activation quantization for the integer part only), equal the separate matmuls.
TEST(FloatPanel, FusedSegmentsEqualSeparateMatMuls) {
  OwnedMatrix a = backend_test::MakeMatrix(GgmlType::kF16, 32, 96, 11, true),
              b = backend_test::MakeMatrix(GgmlType::kF16, 21, 96, 12, true),
              c = backend_test::MakeMatrix(GgmlType::kQ8_0, 16, 96, 13, true);
  auto packed = [](const OwnedMatrix& m) { return std::static_pointer_cast<const cpu::PackedMatrix>(m.packed); };
  std::shared_ptr<const cpu::PackedMatrix> cat = cpu::Concat({packed(a).get(), packed(b).get()});
  ASSERT_NE(cat, nullptr);
  std::shared_ptr<const cpu::PackedMatrix> comp = cpu::Compose({packed(a), packed(c), packed(b)});
  ASSERT_NE(comp, nullptr);
  backend_test::ExpectSegmentsEqualSeparate(*cat, {&a, &b}, {1, 2, 3, 7, 40});
  backend_test::ExpectSegmentsEqualSeparate(*comp, {&a, &c, &b}, {1, 2, 3, 7, 40});
}

}  // namespace
}  // namespace inferd
