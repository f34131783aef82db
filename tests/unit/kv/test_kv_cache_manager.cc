// KvCacheManager: prefix hits, block tables and eviction order with exact ids, following the
// scenarios of vLLM's tests/v1/core/test_prefix_caching.py (block_size 16, 10 blocks; inferd has
// no reserved null block, so ids start at 0).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "kv/kv_cache_manager.h"
#include "kv/kv_layout.h"

namespace inferd {
namespace {

using Ids = std::vector<int32_t>;
constexpr int64_t kBs = 16;

Ids Table(const KvCacheManager& m, const std::string& id) {
  const std::span<const int32_t> t = m.BlockTable(id);
  return Ids(t.begin(), t.end());
}
// Group g's blocks of a hit (empty when there is none).
Ids Hit(const KvCacheManager::ComputedBlocks& h, size_t g = 0) { return g < h.blocks.size() ? h.blocks[g] : Ids{}; }
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
  EXPECT_TRUE(Hit(hit).empty());
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
  EXPECT_EQ(Hit(hit), (Ids{0, 1, 2}));
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
  EXPECT_EQ(Hit(hit), (Ids{0, 1, 2}));
  EXPECT_EQ(ToIds(m.AllocateSlots("2", hit.num_tokens, 6, hit)), (Ids{0, 1, 2, 5}));
  EXPECT_EQ(m.num_free_blocks(), 6);
  EXPECT_EQ(m.pool().FreeQueueForTest(), (Ids{6, 7, 8, 9, 3, 4}));
  m.Free("2");
  EXPECT_EQ(m.pool().FreeQueueForTest(), (Ids{6, 7, 8, 9, 3, 4, 5, 2, 1, 0}));

  // Miss that needs every block: the ids come out in eviction order and the prefix is evicted.
  const Ids p3(10 * kBs, 99);
  hit = m.GetComputedBlocks(p3, 0);
  EXPECT_TRUE(Hit(hit).empty());
  EXPECT_EQ(ToIds(m.AllocateSlots("3", 0, 10 * kBs, hit)), (Ids{6, 7, 8, 9, 3, 4, 5, 2, 1, 0}));
  EXPECT_EQ(m.num_free_blocks(), 0);
  EXPECT_TRUE(m.pool().FreeQueueForTest().empty());
  EXPECT_DOUBLE_EQ(m.usage(), 1.0);
  for (int32_t b = 0; b < 10; ++b) EXPECT_EQ(m.pool().block_hash(b), std::nullopt);
  m.Free("3");
  EXPECT_TRUE(Hit(m.GetComputedBlocks(p0, 0)).empty());
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
  EXPECT_EQ(Hit(m.GetComputedBlocks(u, 0)), (Ids{0, 1}));
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
  EXPECT_EQ(Hit(m.GetComputedBlocks(p, 0, false)), (Ids{0, 1}));
  EXPECT_EQ(ToIds(m.AllocateSlots("a", 40, 15)), (Ids{0, 1, 2, 3}));
  m.CacheBlocks("a", p, 55, 0);
  EXPECT_EQ(Hit(m.GetComputedBlocks(p, 0, false)), (Ids{0, 1, 2}));
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
  EXPECT_EQ(Hit(hit), (Ids{0, 1}));  // block 2 is recomputed for the last token's logits
  EXPECT_EQ(hit.num_tokens, 32);
  EXPECT_EQ(ToIds(m.AllocateSlots("b", hit.num_tokens, 16, hit)), (Ids{0, 1, 3}));
  // With one more token the third block is a hit.
  Ids q = p;
  q.push_back(5);
  hit = m.GetComputedBlocks(q, 0);
  EXPECT_EQ(Hit(hit), (Ids{0, 1, 2}));
  EXPECT_EQ(hit.num_tokens, 48);
  // Short prompts never hit.
  EXPECT_TRUE(Hit(m.GetComputedBlocks(Ids{}, 0)).empty());
  EXPECT_TRUE(Hit(m.GetComputedBlocks(Ids(kBs, 0), 0)).empty());
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
  ASSERT_EQ(Hit(hit), (Ids{0, 1, 2}));
  EXPECT_FALSE(m.AllocateSlots("b", hit.num_tokens, 20, hit));
  EXPECT_EQ(m.num_free_blocks(), 4);
  EXPECT_EQ(m.pool().FreeQueueForTest(), (Ids{4, 2, 1, 0}));
  for (int32_t b : {0, 1, 2, 4}) EXPECT_EQ(m.pool().ref_cnt(b), 0);
  EXPECT_TRUE(m.BlockTable("b").empty());
  EXPECT_EQ(Hit(m.GetComputedBlocks(q, 0, false)), (Ids{0, 1, 2}));  // nothing evicted
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
  EXPECT_TRUE(Hit(m.GetComputedBlocks(p, 0)).empty());
  EXPECT_TRUE(Hit(m.GetComputedBlocks(p, 43)).empty());
  EXPECT_EQ(Hit(m.GetComputedBlocks(p, 42)), (Ids{0, 1, 2}));
  // The same tokens under another key are cached on separate blocks.
  ASSERT_TRUE(m.AllocateSlots("b", 0, 49));
  m.CacheBlocks("b", p, 49, 0);
  EXPECT_EQ(Hit(m.GetComputedBlocks(p, 0)), (Ids{4, 5, 6}));
  EXPECT_EQ(Hit(m.GetComputedBlocks(p, 42)), (Ids{0, 1, 2}));
  ExpectInvariants(m);
}

TEST(KvCacheManager, DisabledCachingNeverHitsNorCounts) {
  KvCacheManager m(8, kBs, false);
  const Ids p = Prompt(1);
  ASSERT_TRUE(m.AllocateSlots("a", 0, 49));
  m.CacheBlocks("a", p, 49, 0);
  m.Free("a");
  const auto hit = m.GetComputedBlocks(p, 0);
  EXPECT_TRUE(Hit(hit).empty());
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
  EXPECT_EQ(Hit(m.GetComputedBlocks(p, 0)).size(), 3u);
  m.Free("a");
  EXPECT_TRUE(m.ResetPrefixCache());
  EXPECT_TRUE(Hit(m.GetComputedBlocks(p, 0)).empty());
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
// preemption-like frees and resets, over KV groups with and without sliding windows. After
// every operation: the pool invariant; each block's ref count equals the number of table
// entries holding it. Modelling the KV contents per block: every prefix hit returns, in each
// group, blocks that really hold those tokens for that group; no request ever writes into a
// block it shares; and every key a step's queries attend to (all earlier positions, or the
// last W for a windowed group) is in a block of the request's table holding that token.
void RunRandomWorkload(const std::vector<int64_t>& windows, bool caching, uint32_t seed) {
  constexpr int64_t kBlocks = 40, kSmallBs = 4;
  const size_t G = windows.size();
  const bool reserved = std::any_of(windows.begin(), windows.end(), [](int64_t w) { return w > 0; });
  std::mt19937 rng(seed);
  KvCacheManager m(kBlocks, kSmallBs, caching, windows);
  ASSERT_EQ(m.num_blocks(), kBlocks - (reserved ? 1 : 0));
  std::vector<Ids> prefixes;
  for (int i = 0; i < 4; ++i) {
    Ids p(rng() % 23);
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
  // content[b][slot] = token whose KV the block holds at that slot (-1 = unwritten), for the
  // group content_group[b]; content_pos[b] = position of its first slot.
  std::vector<Ids> content(kBlocks, Ids(kSmallBs, -1));
  std::vector<int64_t> content_pos(kBlocks, -1), content_group(kBlocks, -1);
  const auto is_null = [&](int32_t b) { return reserved && b == kNullBlock; };
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
        ASSERT_EQ(hit.num_tokens, static_cast<int64_t>(hit.hashes.size()) * kSmallBs);
        ASSERT_LT(hit.num_tokens, static_cast<int64_t>(r.tokens.size()));
        ASSERT_EQ(hit.blocks.size(), hit.num_tokens > 0 ? G : 0u);
        // The hit's blocks hold exactly these tokens at these positions, for their group.
        for (size_t g = 0; g < hit.blocks.size(); ++g) {
          ASSERT_EQ(static_cast<int64_t>(hit.blocks[g].size()) * kSmallBs, hit.num_tokens);
          const int64_t lo = FirstNeededBlock(windows[g], hit.num_tokens, kSmallBs);
          for (size_t i = 0; i < hit.blocks[g].size(); ++i) {
            const int32_t b = hit.blocks[g][i];
            if (static_cast<int64_t>(i) < lo) {
              ASSERT_TRUE(is_null(b)) << "step " << step;
              continue;
            }
            ASSERT_FALSE(is_null(b));
            ASSERT_EQ(content_group[b], static_cast<int64_t>(g)) << "step " << step;
            ASSERT_EQ(content_pos[b], static_cast<int64_t>(i) * kSmallBs) << "step " << step;
            for (int64_t s = 0; s < kSmallBs; ++s) ASSERT_EQ(content[b][s], r.tokens[i * kSmallBs + s]);
          }
        }
        hits += hit.num_tokens;
      }
      if (r.computed == static_cast<int64_t>(r.tokens.size())) r.tokens.push_back(static_cast<int32_t>(rng() % 5));
      const int64_t base = std::max(r.computed, hit.num_tokens);
      const int64_t remaining = static_cast<int64_t>(r.tokens.size()) - base;
      const int64_t n = 1 + static_cast<int64_t>(rng() % static_cast<uint32_t>(remaining));
      const auto table = m.AllocateSlots(id, r.computed, n, hit);
      if (!table) {
        if (!r.started) {
          ASSERT_TRUE(m.BlockTable(id).empty());
        }
        // Preempt: give everything back, start over later (vLLM's recompute preemption).
        m.Free(id);
        r.computed = 0;
        r.started = false;
      } else {
        r.started = true;
        ASSERT_LE(m.NumBlocksHeld(id), m.BlocksPerRequest(base + n, n)) << "step " << step;
        // "Run" the step: write tokens [base, base + n) into their blocks, in every group.
        for (size_t g = 0; g < G; ++g) {
          const std::span<const int32_t> t = m.BlockTable(id, static_cast<int64_t>(g));
          ASSERT_GE(static_cast<int64_t>(t.size()) * kSmallBs, base + n);
          for (int64_t p = base; p < base + n; ++p) {
            const int32_t b = t[p / kSmallBs];
            ASSERT_FALSE(is_null(b)) << "step " << step;
            ASSERT_EQ(m.pool().ref_cnt(b), 1) << "write into a shared block, step " << step;
            if (p % kSmallBs == 0) {
              content[b].assign(kSmallBs, -1);
              content_pos[b] = p;
              content_group[b] = static_cast<int64_t>(g);
            }
            ASSERT_EQ(content_pos[b], p - p % kSmallBs);
            ASSERT_EQ(content_group[b], static_cast<int64_t>(g));
            content[b][p % kSmallBs] = r.tokens[p];
          }
          // Attention: each query sees its keys in the table.
          for (int64_t p = base; p < base + n; ++p) {
            const int64_t first = windows[g] > 0 ? std::max<int64_t>(0, p - windows[g] + 1) : 0;
            for (int64_t k = first; k <= p; ++k) {
              const int32_t b = t[k / kSmallBs];
              ASSERT_FALSE(is_null(b)) << "group " << g << " key " << k << " step " << step;
              ASSERT_EQ(content_group[b], static_cast<int64_t>(g));
              ASSERT_EQ(content_pos[b], k - k % kSmallBs);
              ASSERT_EQ(content[b][k % kSmallBs], r.tokens[k]) << "group " << g << " key " << k << " step " << step;
            }
          }
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
      const bool idle = m.num_free_blocks() == m.num_blocks();
      ASSERT_EQ(m.ResetPrefixCache(), idle);
    }
    ASSERT_TRUE(m.pool().CheckInvariants().ok()) << m.pool().CheckInvariants().ToString() << " step " << step;
    std::vector<int32_t> holders(kBlocks, 0);
    if (reserved) holders[kNullBlock] = 1;
    for (const auto& [id, r] : reqs) {
      int64_t held = 0;
      for (size_t g = 0; g < G; ++g) {
        for (int32_t b : m.BlockTable(id, static_cast<int64_t>(g))) {
          if (is_null(b)) continue;
          ++holders[b];
          ++held;
        }
      }
      ASSERT_EQ(m.NumBlocksHeld(id), held);
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

TEST(KvCacheManager, RandomWorkloadKeepsInvariantsAndHitsAreCorrect) {
  RunRandomWorkload({0}, true, 7);
  RunRandomWorkload({0}, false, 8);
}

// Gemma-like groups: full attention beside windows of 5 and 9 positions (block size 4, so
// windows straddle blocks), a window-only model (Mistral), and two full groups.
TEST(KvCacheManager, RandomWorkloadWithGroupsAndWindows) {
  RunRandomWorkload({5, 0}, true, 11);
  RunRandomWorkload({0, 5, 5, 9}, true, 12);
  RunRandomWorkload({6}, true, 13);
  RunRandomWorkload({0, 0}, true, 14);
  RunRandomWorkload({0, 5}, false, 15);
}

// A windowed group gives back the blocks behind its window while the full group keeps all.
TEST(KvCacheManager, WindowedGroupFreesBlocksBehindTheWindow) {
  KvCacheManager m(64, kBs, true, {0, 2 * kBs});  // a full group and a window of two blocks
  EXPECT_EQ(m.num_blocks(), 63);                  // block 0 is the null block
  const Ids p(10 * kBs + 1, 7);
  ASSERT_TRUE(m.AllocateSlots("a", 0, 4 * kBs));
  EXPECT_EQ(m.NumBlocksHeld("a"), 8);
  // Computed 4 blocks; the next query (position 64) sees keys from 33 on: block 2 onwards.
  ASSERT_TRUE(m.AllocateSlots("a", 4 * kBs, 1));
  const std::span<const int32_t> w = m.BlockTable("a", 1);
  ASSERT_EQ(w.size(), 5u);
  EXPECT_EQ(w[0], kNullBlock);
  EXPECT_EQ(w[1], kNullBlock);
  EXPECT_NE(w[2], kNullBlock);
  EXPECT_EQ(m.BlockTable("a", 0).size(), 5u);
  EXPECT_EQ(m.NumBlocksHeld("a"), 5 + 3);
  // Decoding on: the window group never holds more than 3 blocks.
  for (int64_t pos = 4 * kBs + 1; pos < 10 * kBs; ++pos) {
    ASSERT_TRUE(m.AllocateSlots("a", pos, 1));
    int64_t held = 0;
    for (int32_t b : m.BlockTable("a", 1)) held += b != kNullBlock;
    ASSERT_LE(held, 3) << pos;
  }
  m.Free("a");
  EXPECT_EQ(m.num_free_blocks(), 63);
  EXPECT_EQ(m.usage(), 0.0);
}

// A prefix hit in a windowed group holds only the blocks its window still sees: a second
// request with the same prompt hits the whole prefix, adopting every block of the full group
// and the last two of the window group (the others are null in its table).
TEST(KvCacheManager, WindowedHitNeedsOnlyTheWindow) {
  KvCacheManager m(64, kBs, true, {0, 2 * kBs});
  Ids p;
  for (int32_t i = 0; i < 6 * kBs + 3; ++i) p.push_back(i);
  ASSERT_TRUE(m.AllocateSlots("a", 0, 3 * kBs));
  m.CacheBlocks("a", p, 3 * kBs, 0);
  ASSERT_TRUE(m.AllocateSlots("a", 3 * kBs, 3 * kBs + 3));
  m.CacheBlocks("a", p, 6 * kBs + 3, 0);
  m.Free("a");
  const KvCacheManager::ComputedBlocks hit = m.GetComputedBlocks(p, 0);
  EXPECT_EQ(hit.num_tokens, 6 * kBs);
  ASSERT_EQ(hit.blocks.size(), 2u);
  EXPECT_EQ(hit.blocks[0].size(), 6u);
  // Position 96 sees keys from 65: blocks 4 and 5 of the window group.
  const Ids expect_null{kNullBlock, kNullBlock, kNullBlock, kNullBlock};
  EXPECT_EQ(Ids(hit.blocks[1].begin(), hit.blocks[1].begin() + 4), expect_null);
  EXPECT_NE(hit.blocks[1][4], kNullBlock);
  EXPECT_NE(hit.blocks[1][5], kNullBlock);
  ASSERT_TRUE(m.AllocateSlots("b", hit.num_tokens, 3, hit));
  EXPECT_EQ(m.NumBlocksHeld("b"), 7 + 3);
}

// Group hashes keep the groups' blocks apart: the same tokens cached by two full groups
// occupy two blocks, and both are needed for a hit.
TEST(KvCacheManager, GroupsCacheTheSameTokensInTheirOwnBlocks) {
  KvCacheManager m(16, kBs, true, {0, 0});
  const Ids p = Prompt(3);
  ASSERT_TRUE(m.AllocateSlots("a", 0, static_cast<int64_t>(p.size())));
  m.CacheBlocks("a", p, static_cast<int64_t>(p.size()), 0);
  EXPECT_EQ(m.NumBlocksHeld("a"), 8);
  m.Free("a");
  const KvCacheManager::ComputedBlocks hit = m.GetComputedBlocks(p, 0);
  EXPECT_EQ(hit.num_tokens, 3 * kBs);
  EXPECT_EQ(Hit(hit, 0), (Ids{0, 1, 2}));
  EXPECT_EQ(Hit(hit, 1), (Ids{4, 5, 6}));
}

TEST(KvLayout, GroupsOfEqualSize) {
  // Gemma 3 270M: 18 layers, every 6th global -> 15 local + 3 global -> groups of 3.
  std::vector<int64_t> w(18, 512);
  for (int l = 5; l < 18; l += 6) w[l] = 0;
  const KvLayout g3 = MakeKvLayout(w);
  EXPECT_EQ(g3.layers_per_group(), 3);
  ASSERT_EQ(g3.num_groups(), 6);
  EXPECT_EQ(g3.groups[0].layers, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(g3.groups[0].sliding_window, 512);
  EXPECT_EQ(g3.groups[5].layers, (std::vector<int64_t>{5, 11, 17}));
  EXPECT_EQ(g3.groups[5].sliding_window, 0);
  EXPECT_EQ(g3.layer_group[11], 5);
  EXPECT_EQ(g3.layer_slot[11], 1);
  EXPECT_EQ(g3.layer_group[7], 2);  // locals 0-4, 6-10, ...: layer 7 is the 7th local
  EXPECT_EQ(g3.layer_slot[7], 0);
  // Uniform: one group of every layer.
  const KvLayout llama = MakeKvLayout(std::vector<int64_t>(30, 0));
  EXPECT_EQ(llama.num_groups(), 1);
  EXPECT_EQ(llama.layers_per_group(), 30);
  EXPECT_FALSE(llama.has_windows());
  // Coprime counts: groups of one layer.
  std::vector<int64_t> odd(5, 0);
  odd[1] = odd[3] = 8;
  EXPECT_EQ(MakeKvLayout(odd).layers_per_group(), 1);
  EXPECT_EQ(MakeKvLayout(odd).num_groups(), 5);
  // Blocks per request: 1000 tokens, block 16, window 512, chunk 1: the full group needs 63,
  // each of 5 window groups ceil(512 / 16) + 1 = 33.
  EXPECT_EQ(g3.BlocksPerRequest(1000, 16, 1), 63 + 5 * 33);
  EXPECT_EQ(g3.BlocksPerRequest(100, 16, 1), 6 * 7);  // shorter than the window: like full
  // A window from a file may be any size: one past every length is full attention, no overflow.
  const int64_t huge[] = {INT64_MAX, 0};
  EXPECT_EQ(BlocksPerRequest(huge, 1000, 16, 512), 2 * 63);
}

}  // namespace
}  // namespace inferd
