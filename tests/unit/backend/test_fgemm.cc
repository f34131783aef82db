// Float panels (backend/cpu/qgemm.h, fgemm*.cc): F32, F16 and BF16 matrices packed k-major,
// one fma chain per output (BF16: column pairs over bf16 activations, vdpbf16ps's order).
// Checked: the plain kernel against a float64 evaluation, the ISA kernels (and AVX-512's
// two, with and without vdpbf16ps) bit for bit against the plain one for every tile shape,
// batch invariance through cpu::MatMul, fused segments (also beside an integer part) equal
// to separate matmuls, and the bf16 rounding of the activations.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/qgemm.h"
#include "backend_test_util.h"
#include "format/ggml_types.h"
#include "util/cpu_features.h"

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

// x as the float panel kernels take it: itself, and rounded to bf16 in both forms (kept
// alive by the caller in *bf).
struct Bf16Acts {
  std::vector<uint16_t> xb;
  std::vector<float> xr;
};
cpu::QuantActs FloatActs(const std::vector<float>& x, int64_t k, Bf16Acts* bf) {
  const int64_t nt = static_cast<int64_t>(x.size()) / k, kp = cpu::Bf16PairCols(k);
  bf->xb.assign(static_cast<size_t>(nt * kp), 0xFFFF);
  bf->xr.assign(static_cast<size_t>(nt * kp), -1.0f);
  cpu::RoundBf16Rows(x.data(), k, nt, k, bf->xb.data(), bf->xr.data());
  cpu::QuantActs a;
  a.x = x.data();
  a.k = k;
  a.xb = bf->xb.data();
  a.xr = bf->xr.data();
  return a;
}

// The values the kernel multiplies: x itself, or (BF16) x rounded to bf16.
std::vector<float> KernelInputs(GgmlType type, const std::vector<float>& x) {
  std::vector<float> out = x;
  if (type == GgmlType::kBF16) {
    for (float& v : out) v = Bf16ToFp32(Fp32ToBf16(v));
  }
  return out;
}

// The GEMM kernels under test: every SIMD table, and AVX-512's BF16 kernel without
// vdpbf16ps (the table picks vdpbf16ps where the CPU has it).
std::vector<std::pair<const char*, decltype(cpu::QKernels::gemm)>> SimdGemms() {
  std::vector<std::pair<const char*, decltype(cpu::QKernels::gemm)>> out;
  for (const cpu::QKernels* k : backend_test::SimdQKernels()) out.emplace_back(k->name, k->gemm);
  if (DetectedCpuLevel() >= CpuLevel::kAvx512) out.emplace_back("avx512 fma", cpu::GemmFloatAvx512);
  return out;
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
  const auto x0 = RandomVec(static_cast<size_t>(tokens * cols), 2, 2.0f);
  Bf16Acts xb;
  const cpu::QuantActs a = FloatActs(x0, cols, &xb);
  const std::vector<float> x = KernelInputs(type, x0);
  std::vector<float> y(static_cast<size_t>(tokens * 48), -1.0f);
  cpu::GenericQKernels().gemm(p, 0, p.num_groups, a, 0, tokens, y.data(), 48);
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
  Bf16Acts xb;
  const cpu::QuantActs a = FloatActs(x, cols, &xb);
  for (const auto& [name, gemm] : SimdGemms()) {
    SCOPED_TRACE(name);
    for (int64_t nt : {1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 19}) {
      for (int64_t ng : {1, 2, 3, 4, 5}) {
        std::vector<float> y1(nt * ng * 16, -1.0f), y2(nt * ng * 16, -2.0f);
        cpu::GenericQKernels().gemm(p, 0, ng, a, 0, nt, y1.data(), ng * 16);
        gemm(p, 0, ng, a, 0, nt, y2.data(), ng * 16);
        ASSERT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * 4)) << nt << " tokens x " << ng << " groups";
      }
    }
    std::vector<float> all(tokens * 80), part(3 * 32);
    cpu::GenericQKernels().gemm(p, 0, 5, a, 0, tokens, all.data(), 80);
    gemm(p, 2, 2, a, 5, 3, part.data(), 32);
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
  // BF16 rounds the activations (relative error up to 2^-9 per product): bound by the sum of
  // the products' magnitudes.
  const std::vector<float> wf = Dequantized(w);
  for (size_t i = 0; i < y.size(); ++i) {
    const int64_t t = static_cast<int64_t>(i) / rows, r = static_cast<int64_t>(i) % rows;
    double mag = 0;
    for (int64_t k = 0; k < cols; ++k) mag += std::fabs(static_cast<double>(wf[r * cols + k]) * x[t * cols + k]);
    const double tol = type == GgmlType::kBF16 ? std::ldexp(mag, -9) + 1e-6 : 1e-4 * (1.0 + std::fabs(unpacked[i]));
    ASSERT_NEAR(y[i], unpacked[i], tol) << i;
  }
  for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 33, 129}) {
    for (int64_t start : {int64_t{0}, tokens - n}) {
      std::vector<float> part(static_cast<size_t>(n * rows));
      cpu::MatMul(pm, &x[start * cols], n, part.data());
      ASSERT_EQ(0, std::memcmp(part.data(), &y[start * rows], sizeof(float) * n * rows)) << n << " from " << start;
    }
  }
}

// The BF16 numerics: within a pair the odd column's product is added first (vdpbf16ps's
// order), and an odd column count pads the last pair with a zero. Row [1, 2^-23, -1, 2^-24,
// 0.5] times ones: pair 0 gives 1 + 2^-23; pair 1, odd first, (1 + 2^-23) + 2^-24 is a tie
// that rounds to even, 1 + 2^-22, then - 1 = 2^-22 (even first: 1.5 * 2^-23, exact); pair 2
// adds 0.5 (and the pad's 0).
TEST(FloatPanel, Bf16PairsAddTheOddColumnFirst) {
  const int64_t cols = 5;
  const uint16_t row[cols] = {Fp32ToBf16(1.0f), Fp32ToBf16(0x1p-23f), Fp32ToBf16(-1.0f), Fp32ToBf16(0x1p-24f),
                              Fp32ToBf16(0.5f)};
  OwnedMatrix w = backend_test::MakeMatrix(GgmlType::kBF16, 16, cols, 21, /*pack=*/false);
  for (int64_t r = 0; r < 16; ++r) std::memcpy(w.bytes.data() + r * w.m.row_bytes, row, sizeof(row));
  const auto packed = cpu::Pack(w.m);
  const std::vector<float> x(cols, 1.0f);
  Bf16Acts xb;
  const cpu::QuantActs a = FloatActs(x, cols, &xb);
  float y[16];
  cpu::GenericQKernels().gemm(*packed, 0, 1, a, 0, 1, y, 16);
  for (int l = 0; l < 16; ++l) EXPECT_EQ(y[l], 0.5f + 0x1p-22f) << l;
  for (const auto& [name, gemm] : SimdGemms()) {
    float ys[16];
    gemm(*packed, 0, 1, a, 0, 1, ys, 16);
    EXPECT_EQ(ys[0], 0.5f + 0x1p-22f) << name;
  }
}

// Activations to bf16: nearest even, NaN stays NaN, as format's Fp32ToBf16; the ISA tables'
// row loops give the same bits.
TEST(FloatPanel, ActivationsRoundToBf16LikeTheFormat) {
  std::vector<float> x = RandomVec(3 * 37, 23, 100.0f);
  const float specials[] = {0.0f, -0.0f, 1.0f + 0x1p-8f, 1.0f + 0x1p-7f + 0x1p-8f, 0x1p-130f, 3.4e38f,
                            std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN()};
  for (size_t i = 0; i < std::size(specials); ++i) x[i * 3] = specials[i];
  const int64_t k = 37, kp = cpu::Bf16PairCols(k);
  ASSERT_EQ(kp, 38);
  std::vector<uint16_t> ref(3 * kp, 0xFFFF);
  std::vector<float> widened(3 * kp, -1.0f);
  cpu::RoundBf16Rows(x.data(), k, 3, k, ref.data(), widened.data());
  for (int64_t t = 0; t < 3; ++t) {
    for (int64_t i = 0; i < k; ++i) {
      ASSERT_EQ(ref[t * kp + i], Fp32ToBf16(x[t * k + i])) << t << " " << i;
      const float f = Bf16ToFp32(ref[t * kp + i]);
      ASSERT_EQ(0, std::memcmp(&f, &widened[t * kp + i], 4)) << t << " " << i;
    }
    EXPECT_EQ(ref[t * kp + k], 0);  // the odd column's pad
    EXPECT_EQ(widened[t * kp + k], 0.0f);
  }
  EXPECT_EQ(ref[6], 0x3F80);  // 1 + 2^-8 is a tie: to even (1.0)
  EXPECT_EQ(ref[9], 0x3F82);  // 1 + 2^-7 + 2^-8: a tie, to even (1 + 2^-6)
  for (const cpu::QKernels* kern : {&cpu::GenericQKernels(), cpu::Avx2QKernels(), cpu::Avx512VnniQKernels()}) {
    if (!kern) continue;
    std::vector<uint16_t> got(3 * kp, 0xFFFF);
    std::vector<float> got_r(3 * kp, -1.0f);
    kern->round_bf16(x.data(), k, 3, k, got.data(), nullptr);
    kern->round_bf16(x.data(), k, 3, k, nullptr, got_r.data());
    EXPECT_EQ(got, ref) << kern->name;
    EXPECT_EQ(0, std::memcmp(got_r.data(), widened.data(), widened.size() * 4)) << kern->name;
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
