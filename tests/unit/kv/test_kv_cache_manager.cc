// KvCacheManager: prefix hits, block tables and eviction order with exact ids, following the
// scenarios of vLLM's tests/v1/core/test_prefix_caching.py (block_size 16, 10 blocks; inferd has
// no reserved null block, so ids start at 0).
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "kv/kv_cache_manager.h"

namespace inferd {
namespace {

using Ids = std::vector<int32_t>;
constexpr int64_t kBs = 16;

Ids Table(const KvCacheManager& m, const std::string& id) {
  const std::span<const int32_t> t = m.BlockTable(id);
  return Ids(t.begin(), t.end());
}
Ids ToIds(std::optional<std::span<const int32_t>> t) { return t ? Ids(t->begin(), t->end()) : Ids{-999}; }

// 48 tokens: three full blocks of 0s, 1s and 2s, then `tail` copies of 3.
Ids Prompt(int tail) {
  Ids t;
  for (int32_t i = 0; i < 3; ++i) t.insert(t.end(), kBs, i);
  t.insert(t.end(), tail, 3);
  return t;
}

void ExpectInvariants(const KvCacheManager& m) {
  const Status s = m.pool().CheckInvariants();
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(KvCacheManager, PrefillMissHitReuseAndEvictionOrder) {
  KvCacheManager m(10, kBs, true);
  // Full miss: 3 full blocks + 7 tokens.
  const Ids p0 = Prompt(7);
  auto hit = m.GetComputedBlocks(p0, 0);
  EXPECT_TRUE(hit.blocks.empty());
  EXPECT_EQ(hit.num_tokens, 0);
  EXPECT_EQ(ToIds(m.AllocateSlots("0", 0, 55, hit)), (Ids{0, 1, 2, 3}));
  m.CacheBlocks("0", p0, 55, 0);
  // Full blocks carry the chain hash; the partial block carries none.
  BlockHash parent = 0;
  for (int32_t b = 0; b < 3; ++b) {
    const BlockHash h = HashBlockTokens(parent, std::span<const int32_t>(p0).subspan(b * kBs, kBs), 0);
    EXPECT_EQ(m.pool().block_hash(b), h) << b;
    EXPECT_EQ(m.pool().ref_cnt(b), 1);
    parent = h;
  }
  EXPECT_EQ(m.pool().block_hash(3), std::nullopt);

  // Hit while the original blocks are still in use.
  const Ids p1 = Prompt(5);
  hit = m.GetComputedBlocks(p1, 0);
  EXPECT_EQ(hit.blocks, (Ids{0, 1, 2}));
  EXPECT_EQ(hit.num_tokens, 3 * kBs);
  EXPECT_EQ(ToIds(m.AllocateSlots("1", hit.num_tokens, 53 - 48, hit)), (Ids{0, 1, 2, 4}));
  for (int32_t b : {0, 1, 2}) EXPECT_EQ(m.pool().ref_cnt(b), 2);
  EXPECT_EQ(m.num_free_blocks(), 5);

  m.Free("0");
  m.Free("1");
  EXPECT_EQ(m.num_free_blocks(), 10);
  // [never used 5..9] [req 0's tail 3] [req 1: 4, then the shared prefix in reverse]
  EXPECT_EQ(m.pool().FreeQueueForTest(), (Ids{5, 6, 7, 8, 9, 3, 4, 2, 1, 0}));

  // Hit when the cached blocks are free: they are taken out of the free queue.
  const Ids p2 = Prompt(6);
  hit = m.GetComputedBlocks(p2, 0);
  EXPECT_EQ(hit.blocks, (Ids{0, 1, 2}));
  EXPECT_EQ(ToIds(m.AllocateSlots("2", hit.num_tokens, 6, hit)), (Ids{0, 1, 2, 5}));
  EXPECT_EQ(m.num_free_blocks(), 6);
  EXPECT_EQ(m.pool().FreeQueueForTest(), (Ids{6, 7, 8, 9, 3, 4}));
  m.Free("2");
  EXPECT_EQ(m.pool().FreeQueueForTest(), (Ids{6, 7, 8, 9, 3, 4, 5, 2, 1, 0}));

  // Miss that needs every block: the ids come out in eviction order and the prefix is evicted.
  const Ids p3(10 * kBs, 99);
  hit = m.GetComputedBlocks(p3, 0);
  EXPECT_TRUE(hit.blocks.empty());
  EXPECT_EQ(ToIds(m.AllocateSlots("3", 0, 10 * kBs, hit)), (Ids{6, 7, 8, 9, 3, 4, 5, 2, 1, 0}));
  EXPECT_EQ(m.num_free_blocks(), 0);
  EXPECT_TRUE(m.pool().FreeQueueForTest().empty());
  EXPECT_DOUBLE_EQ(m.usage(), 1.0);
  for (int32_t b = 0; b < 10; ++b) EXPECT_EQ(m.pool().block_hash(b), std::nullopt);
  m.Free("3");
  EXPECT_TRUE(m.GetComputedBlocks(p0, 0).blocks.empty());
  ExpectInvariants(m);
}

TEST(KvCacheManager, PartialBlockIsCachedOnlyOnceFull) {
  KvCacheManager m(4, kBs, true);
  Ids t(20);
  for (int i = 0; i < 20; ++i) t[i] = 100 + i;
  ASSERT_TRUE(m.AllocateSlots("a", 0, 20));
  m.CacheBlocks("a", t, 20, 0);
  EXPECT_TRUE(m.pool().block_hash(0).has_value());
  EXPECT_FALSE(m.pool().block_hash(1).has_value());
  // Decode 12 more tokens, one per step: block 1 becomes full at 32 computed tokens.
  for (int i = 20; i < 32; ++i) {
    t.push_back(100 + i);
    ASSERT_TRUE(m.AllocateSlots("a", i, 1));
    m.CacheBlocks("a", t, i, 0);  // token i is not computed yet
    EXPECT_FALSE(m.pool().block_hash(1).has_value()) << i;
  }
  EXPECT_EQ(Table(m, "a"), (Ids{0, 1}));
  m.CacheBlocks("a", t, 32, 0);
  const BlockHash h0 = HashBlockTokens(0, std::span<const int32_t>(t).first(16), 0);
  EXPECT_EQ(m.pool().block_hash(1), HashBlockTokens(h0, std::span<const int32_t>(t).subspan(16, 16), 0));
  // Another request with these 32 tokens plus one more hits both blocks.
  Ids u = t;
  u.push_back(7);
  EXPECT_EQ(m.GetComputedBlocks(u, 0).blocks, (Ids{0, 1}));
  ExpectInvariants(m);
}

TEST(KvCacheManager, ChunkedPrefillCachesBlocksAsTheyFill) {
  KvCacheManager m(8, kBs, true);
  const Ids p = Prompt(7);  // 55 tokens
  ASSERT_TRUE(m.AllocateSlots("a", 0, 20));
  m.CacheBlocks("a", p, 20, 0);
  EXPECT_EQ(m.GetComputedBlocks(p, 0, false).num_tokens, 16);
  ASSERT_TRUE(m.AllocateSlots("a", 20, 20));
  m.CacheBlocks("a", p, 40, 0);
  EXPECT_EQ(m.GetComputedBlocks(p, 0, false).blocks, (Ids{0, 1}));
  EXPECT_EQ(ToIds(m.AllocateSlots("a", 40, 15)), (Ids{0, 1, 2, 3}));
  m.CacheBlocks("a", p, 55, 0);
  EXPECT_EQ(m.GetComputedBlocks(p, 0, false).blocks, (Ids{0, 1, 2}));
  ExpectInvariants(m);
}

TEST(KvCacheManager, AllCachedKeepsOneBlockToCompute) {
  KvCacheManager m(8, kBs, true);
  const Ids p = Prompt(0);  // exactly 3 full blocks
  ASSERT_TRUE(m.AllocateSlots("a", 0, 48));
  m.CacheBlocks("a", p, 48, 0);
  EXPECT_EQ(m.pool().block_hash(2).has_value(), true);
  m.Free("a");
  auto hit = m.GetComputedBlocks(p, 0);
  EXPECT_EQ(hit.blocks, (Ids{0, 1}));  // block 2 is recomputed for the last token's logits
  EXPECT_EQ(hit.num_tokens, 32);
  EXPECT_EQ(ToIds(m.AllocateSlots("b", hit.num_tokens, 16, hit)), (Ids{0, 1, 3}));
  // With one more token the third block is a hit.
  Ids q = p;
  q.push_back(5);
  hit = m.GetComputedBlocks(q, 0);
  EXPECT_EQ(hit.blocks, (Ids{0, 1, 2}));
  EXPECT_EQ(hit.num_tokens, 48);
  // Short prompts never hit.
  EXPECT_TRUE(m.GetComputedBlocks(Ids{}, 0).blocks.empty());
  EXPECT_TRUE(m.GetComputedBlocks(Ids(kBs, 0), 0).blocks.empty());
  ExpectInvariants(m);
}

TEST(KvCacheManager, FailedAllocationChangesNothing) {
  KvCacheManager m(5, kBs, true);
  const Ids p = Prompt(0);
  ASSERT_TRUE(m.AllocateSlots("a", 0, 48));
  m.CacheBlocks("a", p, 48, 0);
  ASSERT_TRUE(m.AllocateSlots("x", 0, 16));  // block 3, held
  m.Free("a");
  ASSERT_EQ(m.pool().FreeQueueForTest(), (Ids{4, 2, 1, 0}));
  // 3 cached free blocks + 2 new needed; 4 free but adopting 3 leaves 1: must fail, and
  // must not touch the hit or take the one free block.
  Ids q = p;
  q.insert(q.end(), 20, 8);  // 68 tokens -> 5 blocks
  const auto hit = m.GetComputedBlocks(q, 0);
  ASSERT_EQ(hit.blocks, (Ids{0, 1, 2}));
  EXPECT_FALSE(m.AllocateSlots("b", hit.num_tokens, 20, hit));
  EXPECT_EQ(m.num_free_blocks(), 4);
  EXPECT_EQ(m.pool().FreeQueueForTest(), (Ids{4, 2, 1, 0}));
  for (int32_t b : {0, 1, 2, 4}) EXPECT_EQ(m.pool().ref_cnt(b), 0);
  EXPECT_TRUE(m.BlockTable("b").empty());
  EXPECT_EQ(m.GetComputedBlocks(q, 0, false).blocks, (Ids{0, 1, 2}));  // nothing evicted
  // Growing an existing request past the pool fails the same way.
  EXPECT_FALSE(m.AllocateSlots("x", 16, 16 * 5));
  EXPECT_EQ(Table(m, "x"), (Ids{3}));
  EXPECT_EQ(m.num_free_blocks(), 4);
  ExpectInvariants(m);
  // 4 blocks' worth fits exactly: 3 adopted + 1 new.
  EXPECT_EQ(ToIds(m.AllocateSlots("b", hit.num_tokens, 16, hit)), (Ids{0, 1, 2, 4}));
  EXPECT_EQ(m.num_free_blocks(), 0);
  ExpectInvariants(m);
}

TEST(KvCacheManager, FirstAllocationAcceptsEitherComputedConvention) {
  // num_computed_tokens = 0 or = hit.num_tokens on the first call mean the same thing.
  for (const int64_t computed : {int64_t{0}, int64_t{48}}) {
    KvCacheManager m(8, kBs, true);
    const Ids p = Prompt(7);
    ASSERT_TRUE(m.AllocateSlots("a", 0, 55));
    m.CacheBlocks("a", p, 55, 0);
    const auto hit = m.GetComputedBlocks(p, 0);
    ASSERT_EQ(hit.num_tokens, 48);
    EXPECT_EQ(ToIds(m.AllocateSlots("b", computed, 7, hit)), (Ids{0, 1, 2, 4})) << computed;
  }
}

TEST(KvCacheManager, DecodeGrowsTheTableOneBlockAtATime) {
  KvCacheManager m(4, kBs, false);
  EXPECT_EQ(ToIds(m.AllocateSlots("a", 0, 15)), (Ids{0}));
  EXPECT_EQ(ToIds(m.AllocateSlots("a", 15, 1)), (Ids{0}));
  EXPECT_EQ(ToIds(m.AllocateSlots("a", 16, 1)), (Ids{0, 1}));
  EXPECT_EQ(ToIds(m.AllocateSlots("a", 17, 0)), (Ids{0, 1}));
  EXPECT_EQ(ToIds(m.AllocateSlots("empty", 0, 0)), Ids{});
  ExpectInvariants(m);
}

TEST(KvCacheManager, ExtraKeySeparatesCaches) {
  KvCacheManager m(8, kBs, true);
  const Ids p = Prompt(1);
  ASSERT_TRUE(m.AllocateSlots("a", 0, 49));
  m.CacheBlocks("a", p, 49, /*extra_key=*/42);
  EXPECT_TRUE(m.GetComputedBlocks(p, 0).blocks.empty());
  EXPECT_TRUE(m.GetComputedBlocks(p, 43).blocks.empty());
  EXPECT_EQ(m.GetComputedBlocks(p, 42).blocks, (Ids{0, 1, 2}));
  // The same tokens under another key are cached on separate blocks.
  ASSERT_TRUE(m.AllocateSlots("b", 0, 49));
  m.CacheBlocks("b", p, 49, 0);
  EXPECT_EQ(m.GetComputedBlocks(p, 0).blocks, (Ids{4, 5, 6}));
  EXPECT_EQ(m.GetComputedBlocks(p, 42).blocks, (Ids{0, 1, 2}));
  ExpectInvariants(m);
}

TEST(KvCacheManager, DisabledCachingNeverHitsNorCounts) {
  KvCacheManager m(8, kBs, false);
  const Ids p = Prompt(1);
  ASSERT_TRUE(m.AllocateSlots("a", 0, 49));
  m.CacheBlocks("a", p, 49, 0);
  m.Free("a");
  const auto hit = m.GetComputedBlocks(p, 0);
  EXPECT_TRUE(hit.blocks.empty());
  EXPECT_EQ(hit.num_tokens, 0);
  for (int32_t b = 0; b < 8; ++b) EXPECT_EQ(m.pool().block_hash(b), std::nullopt);
  EXPECT_EQ(m.stats().queries, 0);
  EXPECT_EQ(m.stats().hits, 0);
  ExpectInvariants(m);
}

TEST(KvCacheManager, StatsCountTokens) {
  KvCacheManager m(8, kBs, true);
  const Ids p = Prompt(7);  // 55 tokens
  m.GetComputedBlocks(p, 0);
  EXPECT_EQ(m.stats().queries, 55);
  EXPECT_EQ(m.stats().hits, 0);
  ASSERT_TRUE(m.AllocateSlots("a", 0, 55));
  m.CacheBlocks("a", p, 55, 0);
  m.GetComputedBlocks(p, 0);
  EXPECT_EQ(m.stats().queries, 110);
  EXPECT_EQ(m.stats().hits, 48);
  m.GetComputedBlocks(p, 0, /*record_stats=*/false);
  EXPECT_EQ(m.stats().queries, 110);
  EXPECT_EQ(m.stats().hits, 48);
}

TEST(KvCacheManager, ResetPrefixCache) {
  KvCacheManager m(8, kBs, true);
  const Ids p = Prompt(7);
  ASSERT_TRUE(m.AllocateSlots("a", 0, 55));
  m.CacheBlocks("a", p, 55, 0);
  EXPECT_FALSE(m.ResetPrefixCache());
  EXPECT_EQ(m.GetComputedBlocks(p, 0).blocks.size(), 3u);
  m.Free("a");
  EXPECT_TRUE(m.ResetPrefixCache());
  EXPECT_TRUE(m.GetComputedBlocks(p, 0).blocks.empty());
  EXPECT_EQ(m.num_free_blocks(), 8);
  ExpectInvariants(m);
}

TEST(KvCacheManager, FreeTwiceAndUnknownIdsAreHarmless) {
  KvCacheManager m(4, kBs, true);
  ASSERT_TRUE(m.AllocateSlots("a", 0, 20));
  ASSERT_TRUE(m.AllocateSlots("b", 0, 20));
  m.Free("a");
  m.Free("a");
  m.Free("nobody");
  m.CacheBlocks("nobody", Ids(32, 1), 32, 0);
  EXPECT_EQ(m.num_free_blocks(), 2);
  EXPECT_EQ(Table(m, "b"), (Ids{2, 3}));
  EXPECT_TRUE(m.BlockTable("a").empty());
  ExpectInvariants(m);
}

// Random requests drawn from a few shared prefixes run through chunked prefill, decode,
// preemption-like frees and resets. After every operation: the pool invariant; each block's
// ref count equals the number of tables holding it; and, modelling the KV contents, every
// prefix hit returns blocks that really hold those tokens, and no request ever writes into a
// block it shares.
TEST(KvCacheManager, RandomWorkloadKeepsInvariantsAndHitsAreCorrect) {
  for (const bool caching : {true, false}) {
    constexpr int64_t kBlocks = 40, kSmallBs = 4;
    std::mt19937 rng(caching ? 7 : 8);
    KvCacheManager m(kBlocks, kSmallBs, caching);
    std::vector<Ids> prefixes;
    for (int i = 0; i < 4; ++i) {
      Ids p(rng() % 13);
      for (auto& t : p) t = static_cast<int32_t>(rng() % 5);
      prefixes.push_back(p);
    }
    struct Req {
      Ids tokens;
      uint64_t key = 0;
      int64_t computed = 0;
      bool started = false;
    };
    std::map<std::string, Req> reqs;
    // content[b][slot] = token whose KV the block holds at that slot (-1 = unwritten); together
    // with the written position it models the KV data.
    std::vector<Ids> content(kBlocks, Ids(kSmallBs, -1));
    std::vector<int64_t> content_pos(kBlocks, -1);  // position of the block's first slot
    int next_id = 0;
    int64_t hits = 0;

    for (int step = 0; step < 6000; ++step) {
      const int op = static_cast<int>(rng() % 10);
      if (op < 2 && reqs.size() < 12) {
        Req r;
        r.tokens = prefixes[rng() % prefixes.size()];
        const size_t extra = rng() % 10;
        for (size_t i = 0; i < extra; ++i) r.tokens.push_back(static_cast<int32_t>(rng() % 5));
        if (r.tokens.empty()) r.tokens.push_back(1);
        r.key = rng() % 4 == 0 ? 1 : 0;
        reqs.emplace(std::to_string(next_id++), r);
      } else if (op < 8 && !reqs.empty()) {
        auto it = reqs.begin();
        std::advance(it, rng() % reqs.size());
        const std::string& id = it->first;
        Req& r = it->second;
        KvCacheManager::ComputedBlocks hit;
        if (!r.started) {
          hit = m.GetComputedBlocks(r.tokens, r.key);
          ASSERT_EQ(hit.num_tokens, static_cast<int64_t>(hit.blocks.size()) * kSmallBs);
          ASSERT_LT(hit.num_tokens, static_cast<int64_t>(r.tokens.size()));
          // The hit's blocks hold exactly these tokens at these positions.
          for (size_t i = 0; i < hit.blocks.size(); ++i) {
            const int32_t b = hit.blocks[i];
            ASSERT_EQ(content_pos[b], static_cast<int64_t>(i) * kSmallBs) << "step " << step;
            for (int64_t s = 0; s < kSmallBs; ++s) ASSERT_EQ(content[b][s], r.tokens[i * kSmallBs + s]);
          }
          hits += hit.num_tokens;
        }
        if (r.computed == static_cast<int64_t>(r.tokens.size())) r.tokens.push_back(static_cast<int32_t>(rng() % 5));
        const int64_t base = std::max(r.computed, hit.num_tokens);
        const int64_t remaining = static_cast<int64_t>(r.tokens.size()) - base;
        const int64_t n = 1 + static_cast<int64_t>(rng() % static_cast<uint32_t>(remaining));
        const int64_t free_before = m.num_free_blocks();
        const auto table = m.AllocateSlots(id, r.computed, n, hit);
        if (!table) {
          ASSERT_EQ(m.num_free_blocks(), free_before);
          if (!r.started) {
            ASSERT_TRUE(m.BlockTable(id).empty());
          }
          // Preempt: give everything back, start over later (vLLM's recompute preemption).
          m.Free(id);
          r.computed = 0;
          r.started = false;
        } else {
          r.started = true;
          ASSERT_GE(static_cast<int64_t>(table->size()) * kSmallBs, base + n);
          // "Run" the step: write tokens [base, base + n) into their blocks.
          for (int64_t p = base; p < base + n; ++p) {
            const int32_t b = (*table)[p / kSmallBs];
            ASSERT_EQ(m.pool().ref_cnt(b), 1) << "write into a shared block, step " << step;
            if (p % kSmallBs == 0) {
              content[b].assign(kSmallBs, -1);
              content_pos[b] = p;
            }
            ASSERT_EQ(content_pos[b], p - p % kSmallBs);
            content[b][p % kSmallBs] = r.tokens[p];
          }
          r.computed = base + n;
          m.CacheBlocks(id, r.tokens, r.computed, r.key);
        }
      } else if (op == 8 && !reqs.empty()) {
        auto it = reqs.begin();
        std::advance(it, rng() % reqs.size());
        m.Free(it->first);
        if (rng() % 2) m.Free(it->first);
        reqs.erase(it);
      } else if (op == 9 && rng() % 20 == 0) {
        const bool idle = m.num_free_blocks() == kBlocks;
        ASSERT_EQ(m.ResetPrefixCache(), idle);
      }
      ASSERT_TRUE(m.pool().CheckInvariants().ok()) << m.pool().CheckInvariants().ToString() << " step " << step;
      std::vector<int32_t> holders(kBlocks, 0);
      for (const auto& [id, r] : reqs) {
        for (int32_t b : m.BlockTable(id)) ++holders[b];
      }
      for (int32_t b = 0; b < kBlocks; ++b) ASSERT_EQ(m.pool().ref_cnt(b), holders[b]) << "step " << step;
    }
    if (caching) {
      EXPECT_GT(hits, 0);  // the workload exercised hits
      EXPECT_EQ(m.stats().hits, hits);
    } else {
      EXPECT_EQ(hits, 0);
    }
  }
}

}  // namespace
}  // namespace inferd
