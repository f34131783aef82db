// Paged attention (backend/cpu/attention.h): against float64 dense attention over contexts
// that span several split-K partitions, ISA kernels bit for bit, and batch invariance
// (a row's output does not depend on which rows share its tile or step).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/cpu_ops.h"
#include "ops/forward.h"
#include "backend_test_util.h"

namespace inferd {
namespace {

using backend_test::RandomVec;


using cpu::KvElem;

// A cache with one sequence of `len` tokens written through a scrambled block table.
struct Fixture {
  int64_t heads, kv_heads, d, bs, len;
  KvElem elem;
  // kc / vc hold halves or codes in their first bytes for those formats; ks / vs the scales
  // of code formats.
  std::vector<float> kc, vc, k, v, q;
  std::vector<uint16_t> ks, vs;
  std::vector<int32_t> table, pos;
  Fixture(int64_t heads_, int64_t kv_heads_, int64_t d_, int64_t bs_, int64_t len_, uint32_t seed,
          KvElem elem_ = KvElem::kF32)
      : heads(heads_), kv_heads(kv_heads_), d(d_), bs(bs_), len(len_), elem(elem_) {
    const int64_t nblocks = (len + bs - 1) / bs;
    table.resize(nblocks);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), std::mt19937(seed));
    kc.assign((nblocks + 1) * bs * kv_heads * d, NAN);  // unwritten slots hold NaN: never read
    vc = kc;
    ks.assign((nblocks + 1) * bs * kv_heads, 0x7E00);  // NaN scales where nothing was written
    vs = ks;
    k = RandomVec(len * kv_heads * d, seed + 1, 2.0f);
    v = RandomVec(len * kv_heads * d, seed + 2);
    q = RandomVec(len * heads * d, seed + 3, 2.0f);
    pos.resize(len);
    std::iota(pos.begin(), pos.end(), 0);
    ops::AttnSeq seq{0, len, len, table.data()};
    cpu::WriteKv(view(), {&seq, 1}, pos.data(), k.data(), v.data());
    // The reference sees what the cache holds.
    if (elem == KvElem::kF16) {
      for (auto& x : k) x = Fp16ToFp32(Fp32ToFp16(x));
      for (auto& x : v) x = Fp16ToFp32(Fp32ToFp16(x));
    } else if (cpu::IsKvCode(elem)) {
      for (int64_t t = 0; t < len; ++t)
        for (int64_t g = 0; g < kv_heads; ++g) {
          const int32_t blk = table[t / bs];
          const int64_t sb = (blk * kv_heads + g) * bs + t % bs;
          const auto* kcodes = reinterpret_cast<const uint8_t*>(kc.data()) + (blk * kv_heads + g) * d * bs + t % bs;
          const auto* vcodes = reinterpret_cast<const uint8_t*>(vc.data()) + sb * d;
          for (int64_t i = 0; i < d; ++i) {
            k[(t * kv_heads + g) * d + i] = Fp16ToFp32(ks[sb]) * cpu::KvCodeValue(elem, kcodes[i * bs]);
            v[(t * kv_heads + g) * d + i] = Fp16ToFp32(vs[sb]) * cpu::KvCodeValue(elem, vcodes[i]);
          }
        }
    }
  }
  cpu::KvLayerView view() { return {kc.data(), vc.data(), bs, kv_heads, d, elem, ks.data(), vs.data()}; }
  // Rows [first, first + n) as one sequence of a batch.
  std::vector<float> alibi;  // per query head, empty: none
  std::vector<float> Run(int64_t first, int64_t n, float scale, int64_t window = 0, float softcap = 0.0f) {
    ops::AttnSeq seq{0, n, first + n, table.data()};
    std::vector<float> out(n * heads * d);
    const cpu::AttnOptions o{scale, window, softcap, alibi.empty() ? nullptr : alibi.data()};
    cpu::PagedAttention(view(), {&seq, 1}, &pos[first], &q[first * heads * d], heads, o, out.data());
    return out;
  }
  // float64 attention of row t over keys (t - window, t] (all of [0, t] when window is 0).
  double Dense(int64_t t, int64_t h, int64_t i, float scale, int64_t window = 0, double softcap = 0) const {
    const int64_t g = h / (heads / kv_heads);
    const int64_t j0 = window > 0 ? std::max<int64_t>(0, t - window + 1) : 0;
    std::vector<double> p(t + 1, -1e300);
    double mx = -1e300, sum = 0;
    for (int64_t j = j0; j <= t; ++j) {
      double s = 0;
      for (int64_t c = 0; c < d; ++c) s += double(q[(t * heads + h) * d + c]) * k[(j * kv_heads + g) * d + c];
      p[j] = s * scale;
      if (softcap > 0) p[j] = softcap * std::tanh(p[j] / softcap);
      if (!alibi.empty()) p[j] += double(alibi[h]) * double(j - t);
      mx = std::max(mx, p[j]);
    }
    for (int64_t j = j0; j <= t; ++j) sum += (p[j] = std::exp(p[j] - mx));
    double o = 0;
    for (int64_t j = j0; j <= t; ++j) o += p[j] / sum * v[(j * kv_heads + g) * d + i];
    return o;
  }
};

struct Shape {
  int64_t heads, kv_heads, d, bs, len;
  KvElem elem = KvElem::kF32;
};

class AttentionTest : public ::testing::TestWithParam<Shape> {};

TEST_P(AttentionTest, MatchesDenseAndIsInvariant) {
  const Shape sh = GetParam();
  Fixture f(sh.heads, sh.kv_heads, sh.d, sh.bs, sh.len, 7, sh.elem);
  const float scale = 1.0f / std::sqrt(static_cast<float>(sh.d));
  const auto all = f.Run(0, sh.len, scale);
  // Against float64 dense attention, at rows in every partition.
  for (int64_t t : {int64_t{0}, int64_t{1}, sh.len / 2, sh.len - 1}) {
    for (int64_t h = 0; h < sh.heads; ++h)
      for (int64_t i = 0; i < sh.d; i += 7)
        ASSERT_NEAR(all[(t * sh.heads + h) * sh.d + i], f.Dense(t, h, i, scale), 2e-5) << t << " " << h << " " << i;
  }
  // A row alone (a decode step) and rows in other chunkings equal the prefill rows bit for bit.
  for (int64_t t : {int64_t{0}, sh.len / 3, sh.len - 1}) {
    const auto one = f.Run(t, 1, scale);
    ASSERT_EQ(0, std::memcmp(one.data(), &all[t * sh.heads * sh.d], one.size() * 4)) << "row " << t;
  }
  const int64_t mid = sh.len / 2;
  const auto tail = f.Run(mid, sh.len - mid, scale);
  ASSERT_EQ(0, std::memcmp(tail.data(), &all[mid * sh.heads * sh.d], tail.size() * 4));
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionTest,
                         ::testing::Values(Shape{9, 3, 64, 16, 1100},  // SmolLM2: 3 partitions
                                           Shape{4, 4, 128, 32, 600},  // MHA, Llama-2 head size
                                           Shape{8, 1, 80, 8, 70},     // MQA, small blocks, d % 16 != 0
                                           Shape{2, 2, 16, 1, 33},     // one-slot blocks
                                           Shape{4, 2, 48, 64, 530},
                                           Shape{9, 3, 64, 16, 700, KvElem::kF16},  // fp16 cache
                                           Shape{8, 1, 80, 8, 70, KvElem::kF16},
                                           // Quantized caches (the reference dequantizes)
                                           Shape{9, 3, 64, 16, 1100, KvElem::kInt8},
                                           Shape{8, 1, 80, 8, 70, KvElem::kInt8},
                                           Shape{4, 2, 48, 64, 530, KvElem::kFp8E4M3},
                                           Shape{2, 2, 16, 1, 33, KvElem::kFp8E4M3},
                                           Shape{9, 3, 64, 16, 700, KvElem::kFp8E5M2},
                                           Shape{8, 1, 80, 8, 70, KvElem::kFp8E5M2}));

// A sliding window: keys before it get no weight, whatever chunk, block or partition they
// share with visible ones; rows alone equal rows in a prefill bit for bit.
TEST(Attention, SlidingWindowMatchesDense) {
  for (const Shape sh : {Shape{4, 2, 64, 16, 1100}, Shape{8, 1, 80, 8, 70}, Shape{4, 4, 32, 24, 300, KvElem::kF16},
                         Shape{4, 4, 32, 24, 300, KvElem::kInt8}}) {
    Fixture f(sh.heads, sh.kv_heads, sh.d, sh.bs, sh.len, 5, sh.elem);
    const float scale = 1.0f / std::sqrt(static_cast<float>(sh.d));
    for (int64_t window : {int64_t{1}, int64_t{7}, int64_t{40}, int64_t{600}}) {
      const auto all = f.Run(0, sh.len, scale, window);
      for (int64_t t : {int64_t{0}, window - 1, window, sh.len / 2, sh.len - 1}) {
        if (t < 0 || t >= sh.len) continue;
        for (int64_t h = 0; h < sh.heads; ++h)
          for (int64_t i = 0; i < sh.d; i += 5)
            ASSERT_NEAR(all[(t * sh.heads + h) * sh.d + i], f.Dense(t, h, i, scale, window), 2e-5)
                << "window " << window << " row " << t << " head " << h << " elem " << i;
      }
      for (int64_t t : {sh.len / 3, sh.len - 1}) {
        const auto one = f.Run(t, 1, scale, window);
        ASSERT_EQ(0, std::memcmp(one.data(), &all[t * sh.heads * sh.d], one.size() * 4)) << "row " << t;
      }
    }
    // A window as long as the context is full attention, bit for bit.
    const auto full = f.Run(0, sh.len, scale);
    const auto wide = f.Run(0, sh.len, scale, sh.len);
    ASSERT_EQ(0, std::memcmp(full.data(), wide.data(), full.size() * 4));
  }
}

// ALiBi (Baichuan-13B): each head's scores gain slope * (key - query position), across
// blocks and split-K partitions, alone or with a window; the slopes are the standard ones.
TEST(Attention, AlibiMatchesDense) {
  const std::vector<float> s8 = ops::AlibiSlopes(8);
  for (int h = 0; h < 8; ++h) EXPECT_EQ(s8[h], std::ldexp(1.0f, -(h + 1)));  // 2^-1 .. 2^-8
  // 40 heads (Baichuan-13B): 32 of 2^(-(h + 1) / 4), then 8 of 2^(-(2 (h - 32) + 1) / 8).
  const std::vector<float> s40 = ops::AlibiSlopes(40);
  EXPECT_FLOAT_EQ(s40[31], std::pow(2.0f, -8.0f));
  EXPECT_FLOAT_EQ(s40[32], std::pow(2.0f, -1.0f / 8.0f));
  EXPECT_FLOAT_EQ(s40[39], std::pow(2.0f, -15.0f / 8.0f));
  Fixture f(6, 2, 64, 16, 700, 13);
  f.alibi = ops::AlibiSlopes(6);
  const float scale = 1.0f / 8.0f;
  for (int64_t window : {int64_t{0}, int64_t{100}}) {
    const auto all = f.Run(0, 700, scale, window);
    for (int64_t t : {int64_t{0}, int64_t{1}, int64_t{350}, int64_t{699}})
      for (int64_t h = 0; h < 6; ++h)
        for (int64_t i = 0; i < 64; i += 7)
          ASSERT_NEAR(all[(t * 6 + h) * 64 + i], f.Dense(t, h, i, scale, window), 2e-5)
              << "window " << window << " row " << t << " head " << h;
    const auto one = f.Run(699, 1, scale, window);
    ASSERT_EQ(0, std::memcmp(one.data(), &all[699 * 6 * 64], one.size() * 4));
  }
  // The bias changes the result (a kernel that ignored it would not pass).
  const auto with = f.Run(0, 700, scale);
  f.alibi.clear();
  const auto without = f.Run(0, 700, scale);
  EXPECT_GT(std::abs(with[699 * 6 * 64] - without[699 * 6 * 64]) + std::abs(with[350 * 6 * 64 + 64] - without[350 * 6 * 64 + 64]), 1e-3);
}

// Soft-capped scores (gemma2: c * tanh(s / c)), with and without a window.
TEST(Attention, SoftCapMatchesDense) {
  Fixture f(4, 2, 64, 16, 700, 9);
  const float scale = 1.0f / 8.0f;
  for (float cap : {0.5f, 5.0f, 50.0f}) {
    for (int64_t window : {int64_t{0}, int64_t{100}}) {
      const auto all = f.Run(0, 700, scale, window, cap);
      for (int64_t t : {int64_t{0}, int64_t{350}, int64_t{699}})
        for (int64_t h = 0; h < 4; ++h)
          for (int64_t i = 0; i < 64; i += 9)
            ASSERT_NEAR(all[(t * 4 + h) * 64 + i], f.Dense(t, h, i, scale, window, cap), 2e-5)
                << "cap " << cap << " window " << window << " row " << t;
    }
  }
  // A cap changes the result (the test would notice a kernel that ignored it).
  const auto capped = f.Run(0, 700, scale, 0, 0.5f), plain = f.Run(0, 700, scale);
  EXPECT_NE(0, std::memcmp(capped.data(), plain.data(), capped.size() * 4));
}

// Every ISA's tile and merge kernels give the plain kernels' bits.
TEST(Attention, IsaKernelsAreBitIdentical) {
  std::vector<const cpu::AttnKernels*> tables;
  if (cpu::Avx2AttnKernels()) tables.push_back(cpu::Avx2AttnKernels());
  if (cpu::Avx512AttnKernels()) tables.push_back(cpu::Avx512AttnKernels());
  if (tables.empty()) GTEST_SKIP() << "no SIMD kernels on this CPU";
  std::vector<Shape> shapes = {Shape{9, 3, 64, 16, 700}, Shape{8, 1, 80, 8, 50}, Shape{4, 4, 128, 32, 90},
                               Shape{9, 3, 64, 16, 700, KvElem::kF16}, Shape{8, 1, 80, 8, 50, KvElem::kF16}};
  for (KvElem e : {KvElem::kInt8, KvElem::kFp8E4M3, KvElem::kFp8E5M2}) {
    shapes.push_back(Shape{9, 3, 64, 16, 700, e});
    shapes.push_back(Shape{8, 1, 80, 8, 50, e});  // d % 16 != 0, partial chunks
    shapes.push_back(Shape{4, 4, 128, 32, 90, e});
  }
  for (int every_code = 0; every_code < 2; ++every_code)
  for (const Shape sh : shapes) {
    if (every_code && !cpu::IsKvCode(sh.elem)) continue;
    SCOPED_TRACE(std::string(cpu::KvElemName(sh.elem)) + (every_code ? ", every code" : ""));
    Fixture f(sh.heads, sh.kv_heads, sh.d, sh.bs, sh.len, 11, sh.elem);
    if (every_code) {
      // Random bytes over every code the writer can produce (subnormals and the largest
      // values included; not e5m2's infinities and NaNs), with random finite scales.
      std::mt19937 rng(5);
      const int64_t nblocks = static_cast<int64_t>(f.table.size());
      auto* kb = reinterpret_cast<uint8_t*>(f.kc.data());
      auto* vb = reinterpret_cast<uint8_t*>(f.vc.data());
      for (int64_t i = 0; i < nblocks * sh.bs * sh.kv_heads * sh.d; ++i) {
        for (uint8_t* b : {kb + i, vb + i}) {
          do *b = static_cast<uint8_t>(rng()); while (sh.elem == KvElem::kFp8E5M2 && (*b & 0x7C) == 0x7C);
        }
      }
      std::uniform_real_distribution<float> scale(0.0f, 0.02f);
      for (int64_t i = 0; i < nblocks * sh.bs * sh.kv_heads; ++i) {
        f.ks[i] = Fp32ToFp16(scale(rng));
        f.vs[i] = Fp32ToFp16(scale(rng));
      }
    }
    const int group = static_cast<int>(sh.heads / sh.kv_heads);
    // Plain, with a sliding window of 37 and soft-capping at 3 (gemma2's code paths), then
    // with ALiBi slopes.
    for (int variant = 0; variant < 3; ++variant)
    for (int64_t part = 0; part * cpu::kAttnPartition < sh.len; ++part) {
      cpu::AttnTile t;
      if (variant == 1) t.softcap = 3.0f;
      t.k = f.kc.data();
      t.v = f.vc.data();
      t.elem = sh.elem;
      t.ks = f.ks.data();
      t.vs = f.vs.data();
      t.block_size = sh.bs;
      t.num_kv_heads = sh.kv_heads;
      t.head_dim = sh.d;
      t.block_table = f.table.data();
      t.kv_head = sh.kv_heads - 1;
      t.scale = 0.125f;
      t.k0 = part * cpu::kAttnPartition;
      t.k1 = t.k0 + cpu::kAttnPartition;
      for (int64_t row : {int64_t{0}, sh.len / 2, sh.len - 2, sh.len - 1}) {
        for (int j = 0; j < group && t.nq < cpu::kAttnMaxQueries; ++j) {
          t.q[t.nq] = &f.q[(row * sh.heads + t.kv_head * group + j) * sh.d];
          t.first[t.nq] = variant == 1 ? std::max<int64_t>(0, row + 1 - 37) : 0;
          t.alibi[t.nq] = variant == 2 ? std::ldexp(1.0f, -(t.nq + 1)) * 3.0f : 0.0f;
          t.limit[t.nq++] = row + 1;
        }
      }
      std::vector<float> m1(t.nq), l1(t.nq), o1(t.nq * sh.d), m2(t.nq), l2(t.nq), o2(t.nq * sh.d);
      t.m = m1.data(), t.l = l1.data(), t.o = o1.data();
      cpu::GenericAttnKernels().tile(t);
      for (const cpu::AttnKernels* k : tables) {
        SCOPED_TRACE(k->name);
        t.m = m2.data(), t.l = l2.data(), t.o = o2.data();
        k->tile(t);
        ASSERT_EQ(0, std::memcmp(m1.data(), m2.data(), m1.size() * 4));
        ASSERT_EQ(0, std::memcmp(l1.data(), l2.data(), l1.size() * 4));
        ASSERT_EQ(0, std::memcmp(o1.data(), o2.data(), o1.size() * 4));
        std::vector<float> r1(sh.d), r2(sh.d);
        const int n = std::min(t.nq, 3);
        cpu::GenericAttnKernels().merge(n, m1.data(), l1.data(), o1.data(), sh.d, sh.d, r1.data());
        k->merge(n, m1.data(), l1.data(), o1.data(), sh.d, sh.d, r2.data());
        ASSERT_EQ(0, std::memcmp(r1.data(), r2.data(), r1.size() * 4));
      }
    }
  }
}

// Several sequences in one call give the rows each gives alone.
TEST(Attention, SequencesInOneBatchAreIndependent) {
  Fixture a(9, 3, 64, 16, 200, 21), b(9, 3, 64, 16, 600, 22);
  const float scale = 0.125f;
  const auto a_alone = a.Run(150, 50, scale), b_alone = b.Run(590, 10, scale);
  // Both sequences' caches in one buffer: b's blocks after a's.
  const int64_t a_blocks = static_cast<int64_t>(a.table.size()) + 1;
  std::vector<float> kc = a.kc, vc = a.vc;
  kc.insert(kc.end(), b.kc.begin(), b.kc.end());
  vc.insert(vc.end(), b.vc.begin(), b.vc.end());
  std::vector<int32_t> bt = b.table;
  for (auto& x : bt) x += static_cast<int32_t>(a_blocks);
  std::vector<int32_t> pos(a.pos.begin() + 150, a.pos.end());
  pos.insert(pos.end(), b.pos.begin() + 590, b.pos.end());
  std::vector<float> q(a.q.begin() + 150 * 9 * 64, a.q.end());
  q.insert(q.end(), b.q.begin() + 590 * 9 * 64, b.q.end());
  ops::AttnSeq seqs[2] = {{0, 50, 200, a.table.data()}, {50, 10, 600, bt.data()}};
  std::vector<float> out(60 * 9 * 64);
  cpu::KvLayerView view{kc.data(), vc.data(), 16, 3, 64};
  cpu::PagedAttention(view, seqs, pos.data(), q.data(), 9, cpu::AttnOptions{scale}, out.data());
  EXPECT_EQ(0, std::memcmp(out.data(), a_alone.data(), a_alone.size() * 4));
  EXPECT_EQ(0, std::memcmp(&out[50 * 9 * 64], b_alone.data(), b_alone.size() * 4));
}

}  // namespace
}  // namespace inferd
