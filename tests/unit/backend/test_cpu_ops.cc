// CPU ops against plain double-precision references, ISA paths against each other, and the
// batch-invariance property (a row's result does not depend on the rest of the batch).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <vector>

#include "backend/cpu/elementwise.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/cpu_ops.h"
#include "backend_test_util.h"

namespace inferd {
namespace {

using backend_test::MakeMatrix;
using backend_test::OwnedMatrix;
using backend_test::RandomVec;


// y = x W^T in double over the reference dequantization.
std::vector<double> ReferenceMatMul(const Matrix& w, const std::vector<float>& x, int64_t t) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  std::vector<double> y(static_cast<size_t>(t * w.rows));
  for (int64_t r = 0; r < w.rows; ++r) {
    DequantizeRow(w.type, w.row(r), row.data(), w.cols);
    for (int64_t i = 0; i < t; ++i) {
      double s = 0;
      for (int64_t k = 0; k < w.cols; ++k) s += static_cast<double>(row[k]) * x[i * w.cols + k];
      y[i * w.rows + r] = s;
    }
  }
  return y;
}

class MatMulTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(MatMulTest, MatchesReferenceAndIsBatchInvariant) {
  const GgmlType type = GetParam();
  const int64_t rows = 37, cols = 256, tokens = 11;
  OwnedMatrix w = MakeMatrix(type, rows, cols, 1);
  auto x = RandomVec(static_cast<size_t>(tokens * cols), 2);
  std::vector<float> y(static_cast<size_t>(tokens * rows));
  cpu::MatMul(w.m, x.data(), tokens, y.data());
  auto ref = ReferenceMatMul(w.m, x, tokens);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], 1e-4 * (1 + std::abs(ref[i]))) << i;
  // Small batches (the fused path) give the same rows as the large batch.
  for (int64_t nb : {2, 3, 5, 8}) {
    std::vector<float> part(static_cast<size_t>(nb * rows));
    cpu::MatMul(w.m, x.data(), nb, part.data());
    ASSERT_EQ(0, std::memcmp(part.data(), y.data(), sizeof(float) * nb * rows)) << nb << " tokens";
  }
  // Each token alone gives bit-identical rows.
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<float> one(static_cast<size_t>(rows));
    cpu::MatMul(w.m, &x[t * cols], 1, one.data());
    ASSERT_EQ(0, std::memcmp(one.data(), &y[t * rows], sizeof(float) * rows)) << "token " << t;
  }
}

INSTANTIATE_TEST_SUITE_P(Types, MatMulTest,
                         ::testing::Values(GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ4_0,
                                           GgmlType::kQ4_1, GgmlType::kQ8_0),
                         [](const auto& info) { return GgmlTypeName(static_cast<uint32_t>(info.param)); });

TEST(MatMul, OddInnerDimensionIsPadded) {
  const int64_t rows = 5, cols = 13, tokens = 3;
  OwnedMatrix w = MakeMatrix(GgmlType::kF32, rows, cols, 3);
  auto x = RandomVec(static_cast<size_t>(tokens * cols), 4);
  std::vector<float> y(static_cast<size_t>(tokens * rows));
  cpu::MatMul(w.m, x.data(), tokens, y.data());
  auto ref = ReferenceMatMul(w.m, x, tokens);
  for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], ref[i], 1e-5);
}

// Every kernel table available on this CPU gives bit-identical results to the generic one.
TEST(Kernels, AllIsaPathsAreBitIdentical) {
  const cpu::KernelTable& gen = cpu::GenericKernels();
  std::vector<const cpu::KernelTable*> tables;
  if (cpu::Avx2Kernels()) tables.push_back(cpu::Avx2Kernels());
  if (cpu::Avx512Kernels()) tables.push_back(cpu::Avx512Kernels());
  if (tables.empty()) GTEST_SKIP() << "CPU has no AVX2/FMA/F16C";
  for (const cpu::KernelTable* t : tables) {
    SCOPED_TRACE(t->name);
    for (int64_t n : {1, 7, 8, 15, 16, 17, 64, 100, 576}) {
      auto a = RandomVec(n, 5), b = RandomVec(n, 6);
      const float x = t->dot(a.data(), b.data(), n), y = gen.dot(a.data(), b.data(), n);
      EXPECT_EQ(0, std::memcmp(&x, &y, 4)) << n;
    }
    const int64_t kp = 96;
    const int nt = t->token_tile, nr = t->row_tile;
    auto x = RandomVec(nt * kp, 7), w = RandomVec(nr * kp, 8);
    std::vector<float> y1(nt * nr), y2(nt * nr);
    for (int tt : {1, nt})
      for (int rr : {1, nr}) {
        t->dot_tile(x.data(), kp, tt, w.data(), kp, rr, kp, y1.data(), nr);
        gen.dot_tile(x.data(), kp, tt, w.data(), kp, rr, kp, y2.data(), nr);
        for (int i = 0; i < tt; ++i)
          EXPECT_EQ(0, std::memcmp(&y1[i * nr], &y2[i * nr], sizeof(float) * rr)) << tt << "x" << rr;
      }
    std::vector<float> v1(100, 1.0f), v2(100, 1.0f);
    auto xs = RandomVec(100, 9);
    t->axpy(0.3f, xs.data(), v1.data(), 100);
    gen.axpy(0.3f, xs.data(), v2.data(), 100);
    EXPECT_EQ(0, std::memcmp(v1.data(), v2.data(), 400));
    for (GgmlType type :
         {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ8_0}) {
      OwnedMatrix m = MakeMatrix(type, cpu::kMaxQuantRows, 256, 9);
      std::vector<float> d1(256 * cpu::kMaxQuantRows), d2(256 * cpu::kMaxQuantRows);
      for (int r = 0; r < cpu::kMaxQuantRows; ++r) {
        t->dequant_row(type, m.m.row(r), &d1[r * 256], 256);
        gen.dequant_row(type, m.m.row(r), &d2[r * 256], 256);
      }
      EXPECT_EQ(0, std::memcmp(d1.data(), d2.data(), d1.size() * 4)) << GgmlTypeName(static_cast<uint32_t>(type));
      // The fused small-batch kernel equals a dot with the dequantized row, bit for bit, for
      // every token and row count.
      auto xq = RandomVec(256 * cpu::kMaxQuantTokens, 10);
      for (int nr = 1; nr <= cpu::kMaxQuantRows; ++nr) {
        for (int nt = 1; nt <= cpu::kMaxQuantTokens; ++nt) {
          std::vector<float> fused(nt * nr, -1.0f);
          if (!t->dot_quant_row ||
              !t->dot_quant_row(type, m.m.data, m.m.row_bytes, nr, xq.data(), 256, nt, 256, fused.data(), nr)) {
            break;
          }
          for (int i = 0; i < nt; ++i) {
            for (int r = 0; r < nr; ++r) {
              const float plain = gen.dot(&xq[i * 256], &d2[r * 256], 256);
              EXPECT_EQ(0, std::memcmp(&fused[i * nr + r], &plain, 4))
                  << "dot_quant_row " << GgmlTypeName(static_cast<uint32_t>(type)) << " nt=" << nt << " nr=" << nr
                  << " t=" << i << " r=" << r;
            }
          }
        }
      }
    }
  }
}

// silu(g) * u against the libm formula, every ISA bit for bit, tails and aliasing.
TEST(SiluMul, MatchesFormulaOnEveryIsa) {
  const int64_t n = 1000 + 7;
  auto g = RandomVec(n, 30, 20.0f), u = RandomVec(n, 31);
  g[0] = 0.0f, g[1] = -100.0f, g[2] = 100.0f, g[3] = -87.5f;
  std::vector<float> out(n);
  cpu::SiluMul(g.data(), u.data(), n, out.data());
  for (int64_t i = 0; i < n; ++i) {
    const double ref = double(g[i]) / (1.0 + std::exp(-double(g[i]))) * u[i];
    ASSERT_NEAR(out[i], ref, 4e-7 * std::abs(ref) + 1e-30) << i << " g=" << g[i];
  }
  std::vector<const cpu::VecKernels*> tables = {&cpu::GenericVecKernels()};
  if (cpu::Avx2VecKernels()) tables.push_back(cpu::Avx2VecKernels());
  if (cpu::Avx512VecKernels()) tables.push_back(cpu::Avx512VecKernels());
  for (const cpu::VecKernels* k : tables) {
    for (int64_t len : {n, int64_t{5}, int64_t{16}, int64_t{17}}) {
      std::vector<float> mine(len), aliased(g.begin(), g.begin() + len);
      k->silu_mul(g.data(), u.data(), len, mine.data());
      k->silu_mul(aliased.data(), u.data(), len, aliased.data());
      ASSERT_EQ(0, std::memcmp(mine.data(), out.data(), len * 4)) << k->name << " " << len;
      ASSERT_EQ(0, std::memcmp(aliased.data(), out.data(), len * 4)) << k->name << " aliased " << len;
    }
  }
}

// fp32 -> fp16 for the f16 K/V cache: every ISA (vcvtps2ph) equals format's Fp32ToFp16 bit
// for bit, over ties, subnormals, overflow to inf, infinities and NaNs; strided and not.
TEST(ToFp16, EveryIsaMatchesTheFormat) {
  std::vector<float> x = RandomVec(203, 32, 70000.0f);
  const float specials[] = {0.0f, -0.0f, 1.0f + 0x1p-11f, 1.0f + 0x1p-10f + 0x1p-11f, 65504.0f, 65519.0f, 65520.0f,
                            -1e9f, 0x1p-24f, 0x1p-25f, 0x1.8p-25f, 0x1p-26f, 0x1.3p-20f, 6.1e-5f,
                            std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN()};
  for (size_t i = 0; i < std::size(specials); ++i) x[5 + i] = specials[i];
  for (size_t i = 60; i < 120; ++i) x[i] *= 0x1p-36f;  // subnormal halves
  std::vector<const cpu::VecKernels*> tables = {&cpu::GenericVecKernels()};
  if (cpu::Avx2VecKernels()) tables.push_back(cpu::Avx2VecKernels());
  if (cpu::Avx512VecKernels()) tables.push_back(cpu::Avx512VecKernels());
  for (const cpu::VecKernels* k : tables) {
    for (int64_t stride : {1, 3}) {
      const int64_t n = static_cast<int64_t>(x.size());
      std::vector<uint16_t> out(n * stride, 0xABCD);
      k->to_fp16(x.data(), n, out.data(), stride);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(out[i * stride], Fp32ToFp16(x[i])) << k->name << " " << i << " x=" << x[i];
        for (int64_t j = 1; j < stride; ++j) ASSERT_EQ(out[i * stride + j], 0xABCD) << k->name;  // gaps untouched
      }
    }
  }
}

TEST(RmsNorm, MatchesFormula) {
  const int64_t d = 48;
  auto x = RandomVec(2 * d, 10), w = RandomVec(d, 11);
  std::vector<float> y(2 * d);
  cpu::RmsNorm(x.data(), w.data(), 2, d, 1e-5f, y.data());
  for (int t = 0; t < 2; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < d; ++i) ss += double(x[t * d + i]) * x[t * d + i];
    const double s = 1.0 / std::sqrt(ss / d + 1e-5);
    for (int64_t i = 0; i < d; ++i) EXPECT_NEAR(y[t * d + i], x[t * d + i] * s * w[i], 1e-5);
  }
}

TEST(Rope, NormalAndNeoxRotatePairs) {
  const int64_t d = 8;
  std::vector<float> cs(d);
  for (int i = 0; i < d / 2; ++i) {
    cs[2 * i] = std::cos(0.3f * (i + 1));
    cs[2 * i + 1] = std::sin(0.3f * (i + 1));
  }
  auto x = RandomVec(d, 12);
  auto a = x, b = x;
  cpu::Rope(a.data(), 1, 1, d, cs.data(), /*neox=*/false);
  cpu::Rope(b.data(), 1, 1, d, cs.data(), /*neox=*/true);
  for (int i = 0; i < d / 2; ++i) {
    const float c = cs[2 * i], s = cs[2 * i + 1];
    EXPECT_NEAR(a[2 * i], x[2 * i] * c - x[2 * i + 1] * s, 1e-6);
    EXPECT_NEAR(a[2 * i + 1], x[2 * i] * s + x[2 * i + 1] * c, 1e-6);
    EXPECT_NEAR(b[i], x[i] * c - x[i + d / 2] * s, 1e-6);
    EXPECT_NEAR(b[i + d / 2], x[i] * s + x[i + d / 2] * c, 1e-6);
  }
}

// Paged attention through a scrambled block table against dense causal attention.
TEST(PagedAttention, MatchesDenseAttentionThroughBlockTable) {
  const int64_t heads = 4, kv_heads = 2, d = 16, bs = 4, len = 11, num_blocks = 8;
  std::vector<float> kc(num_blocks * bs * kv_heads * d, 0.0f), vc(kc.size(), 0.0f);
  const std::vector<int32_t> table = {5, 2, 7};  // positions 0-3 in block 5, 4-7 in 2, 8-10 in 7
  auto k = RandomVec(len * kv_heads * d, 13), v = RandomVec(len * kv_heads * d, 14);
  auto q = RandomVec(len * heads * d, 15);
  std::vector<int32_t> pos(len);
  for (int i = 0; i < len; ++i) pos[i] = i;
  ops::AttnSeq seq{0, len, len, table.data()};
  cpu::KvLayerView view{kc.data(), vc.data(), bs, kv_heads, d};
  cpu::WriteKv(view, {&seq, 1}, pos.data(), k.data(), v.data());
  std::vector<float> out(len * heads * d);
  const float scale = 0.25f;
  cpu::PagedAttention(view, {&seq, 1}, pos.data(), q.data(), heads, cpu::AttnOptions{scale}, out.data());
  for (int64_t t = 0; t < len; ++t)
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t g = h / (heads / kv_heads);
      std::vector<double> p(t + 1);
      double mx = -1e30, sum = 0;
      for (int64_t j = 0; j <= t; ++j) {
        double s = 0;
        for (int64_t i = 0; i < d; ++i) s += double(q[(t * heads + h) * d + i]) * k[(j * kv_heads + g) * d + i];
        p[j] = s * scale;
        mx = std::max(mx, p[j]);
      }
      for (auto& e : p) sum += (e = std::exp(e - mx));
      for (int64_t i = 0; i < d; ++i) {
        double o = 0;
        for (int64_t j = 0; j <= t; ++j) o += p[j] / sum * v[(j * kv_heads + g) * d + i];
        ASSERT_NEAR(out[(t * heads + h) * d + i], o, 1e-5) << t << " " << h << " " << i;
      }
    }
  // The last row computed alone (a decode step) is bit-identical to the prefill row.
  std::vector<float> one(heads * d);
  ops::AttnSeq last{0, 1, len, table.data()};
  const int32_t p_last = len - 1;
  cpu::PagedAttention(view, {&last, 1}, &p_last, &q[(len - 1) * heads * d], heads, cpu::AttnOptions{scale}, one.data());
  EXPECT_EQ(0, std::memcmp(one.data(), &out[(len - 1) * heads * d], sizeof(float) * heads * d));
}

}  // namespace
}  // namespace inferd
