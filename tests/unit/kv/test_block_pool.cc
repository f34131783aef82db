// BlockPool: exact block ids, free-queue (eviction) order, ref counts and the hash map, pinned
// in the spirit of vLLM's tests/v1/core/test_prefix_caching.py (scenarios, not code).
#include <gtest/gtest.h>

#include <algorithm>
#include <list>
#include <map>
#include <random>
#include <unordered_set>
#include <vector>

#include "kv/block_pool.h"

namespace inferd {
namespace {

using Ids = std::vector<int32_t>;

void ExpectInvariants(const BlockPool& pool) {
  const Status s = pool.CheckInvariants();
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(HashBlockTokens, DeterministicAndSensitiveToEveryInput) {
  const Ids a = {1, 2, 3, 4};
  const BlockHash h = HashBlockTokens(0, a, 0);
  EXPECT_EQ(h, HashBlockTokens(0, a, 0));
  EXPECT_NE(h, HashBlockTokens(1, a, 0));                // parent
  EXPECT_NE(h, HashBlockTokens(0, a, 1));                // extra key
  EXPECT_NE(h, HashBlockTokens(0, Ids{1, 2, 3, 5}, 0));  // last token
  EXPECT_NE(h, HashBlockTokens(0, Ids{2, 1, 3, 4}, 0));  // order
  EXPECT_NE(h, HashBlockTokens(0, Ids{1, 2, 3}, 0));     // length
  EXPECT_NE(h, HashBlockTokens(0, Ids{1, 2, 3, 4, 0}, 0));
  EXPECT_NE(HashBlockTokens(0, Ids{}, 0), HashBlockTokens(0, Ids{0}, 0));
  // parent and extra_key are not interchangeable.
  EXPECT_NE(HashBlockTokens(7, a, 0), HashBlockTokens(0, a, 7));
  // Negative ids (never produced by tokenizers, but int32) are distinct from their bit patterns' neighbours.
  EXPECT_NE(HashBlockTokens(0, Ids{-1}, 0), HashBlockTokens(0, Ids{0}, 0));
}

TEST(HashBlockTokens, NoCollisionsOnNearbyInputs) {
  // 200k blocks that differ in a single token or in the parent: a weak mix would collide here.
  std::unordered_set<BlockHash> seen;
  Ids block(16, 0);
  for (int32_t t = 0; t < 100000; ++t) {
    block[15] = t;
    ASSERT_TRUE(seen.insert(HashBlockTokens(0, block, 0)).second) << t;
    ASSERT_TRUE(seen.insert(HashBlockTokens(static_cast<BlockHash>(t) + 1, Ids(16, 0), 0)).second) << t;
  }
}

TEST(BlockPool, FreshPoolHandsOutIdsInOrder) {
  BlockPool pool(5, true);
  EXPECT_EQ(pool.num_blocks(), 5);
  EXPECT_EQ(pool.num_free_blocks(), 5);
  EXPECT_EQ(pool.usage(), 0.0);
  EXPECT_EQ(pool.FreeQueueForTest(), (Ids{0, 1, 2, 3, 4}));
  EXPECT_EQ(pool.GetNewBlocks(3), (Ids{0, 1, 2}));
  EXPECT_EQ(pool.GetNewBlocks(0), Ids{});
  EXPECT_EQ(pool.GetNewBlocks(1), (Ids{3}));
  for (int32_t b : {0, 1, 2, 3}) EXPECT_EQ(pool.ref_cnt(b), 1);
  EXPECT_EQ(pool.ref_cnt(4), 0);
  EXPECT_EQ(pool.num_free_blocks(), 1);
  EXPECT_DOUBLE_EQ(pool.usage(), 0.8);
  EXPECT_EQ(pool.FreeQueueForTest(), (Ids{4}));
  ExpectInvariants(pool);
}

TEST(BlockPool, FreedBlocksGoToTheTailInTheGivenOrder) {
  BlockPool pool(6, true);
  const Ids got = pool.GetNewBlocks(4);  // 0 1 2 3
  const Ids reversed(got.rbegin(), got.rend());
  pool.FreeBlocks(reversed);
  EXPECT_EQ(pool.FreeQueueForTest(), (Ids{4, 5, 3, 2, 1, 0}));
  // Next allocations follow the queue: never-used blocks, then the request's tail first.
  EXPECT_EQ(pool.GetNewBlocks(3), (Ids{4, 5, 3}));
  ExpectInvariants(pool);
}

TEST(BlockPool, EvictionTakesTheLruHeadAndDropsItsHash) {
  BlockPool pool(3, true);
  const Ids got = pool.GetNewBlocks(3);
  pool.CacheBlock(0, 100);
  pool.CacheBlock(1, 101);
  EXPECT_EQ(pool.GetCachedBlock(100), 0);
  EXPECT_EQ(pool.GetCachedBlock(101), 1);
  EXPECT_EQ(pool.block_hash(1), BlockHash{101});
  EXPECT_EQ(pool.block_hash(2), std::nullopt);
  pool.FreeBlocks(Ids{2, 1, 0});
  // Free cached blocks stay cached.
  EXPECT_EQ(pool.GetCachedBlock(101), 1);
  EXPECT_EQ(pool.FreeQueueForTest(), (Ids{2, 1, 0}));
  EXPECT_EQ(pool.GetNewBlocks(1), (Ids{2}));  // uncached, nothing evicted
  EXPECT_EQ(pool.GetCachedBlock(101), 1);
  EXPECT_EQ(pool.GetNewBlocks(1), (Ids{1}));  // evicts hash 101
  EXPECT_EQ(pool.GetCachedBlock(101), std::nullopt);
  EXPECT_EQ(pool.block_hash(1), std::nullopt);
  EXPECT_EQ(pool.GetCachedBlock(100), 0);
  ExpectInvariants(pool);
}

TEST(BlockPool, TouchOfCachedFreeBlockRemovesItFromTheMiddleOfTheQueue) {
  BlockPool pool(4, true);
  pool.GetNewBlocks(4);
  pool.CacheBlock(2, 7);
  pool.FreeBlocks(Ids{0, 1, 2, 3});
  EXPECT_EQ(pool.FreeQueueForTest(), (Ids{0, 1, 2, 3}));
  const std::optional<int32_t> hit = pool.GetCachedBlock(7);
  ASSERT_EQ(hit, 2);
  pool.Touch(Ids{*hit});
  EXPECT_EQ(pool.ref_cnt(2), 1);
  EXPECT_EQ(pool.num_free_blocks(), 3);
  EXPECT_EQ(pool.FreeQueueForTest(), (Ids{0, 1, 3}));
  EXPECT_EQ(pool.GetCachedBlock(7), 2);  // still cached while referenced
  // A second reference: freeing once keeps it out of the queue; freeing again appends at the tail.
  pool.Touch(Ids{2});
  EXPECT_EQ(pool.ref_cnt(2), 2);
  pool.FreeBlocks(Ids{2});
  EXPECT_EQ(pool.FreeQueueForTest(), (Ids{0, 1, 3}));
  pool.FreeBlocks(Ids{2});
  EXPECT_EQ(pool.FreeQueueForTest(), (Ids{0, 1, 3, 2}));
  // Head and tail removal.
  pool.Touch(Ids{0, 2});
  EXPECT_EQ(pool.FreeQueueForTest(), (Ids{1, 3}));
  ExpectInvariants(pool);
}

TEST(BlockPool, DuplicateHashIsCachedOnceFirstBlockWins) {
  BlockPool pool(3, true);
  pool.GetNewBlocks(3);
  pool.CacheBlock(0, 5);
  pool.CacheBlock(1, 5);  // same tokens computed twice (two requests in the same step)
  EXPECT_EQ(pool.GetCachedBlock(5), 0);
  EXPECT_EQ(pool.block_hash(1), std::nullopt);
  pool.CacheBlock(0, 5);  // idempotent
  EXPECT_EQ(pool.block_hash(0), BlockHash{5});
  // Evicting the duplicate (uncached) block leaves the original's entry alone.
  pool.FreeBlocks(Ids{1});
  pool.GetNewBlocks(1);
  EXPECT_EQ(pool.GetCachedBlock(5), 0);
  ExpectInvariants(pool);
}

TEST(BlockPool, DisabledCachingNeverHits) {
  BlockPool pool(2, false);
  pool.GetNewBlocks(2);
  pool.CacheBlock(0, 9);
  EXPECT_EQ(pool.GetCachedBlock(9), std::nullopt);
  EXPECT_EQ(pool.block_hash(0), std::nullopt);
  ExpectInvariants(pool);
}

TEST(BlockPool, ResetPrefixCacheOnlyWhenIdle) {
  BlockPool pool(3, true);
  pool.GetNewBlocks(2);
  pool.CacheBlock(0, 1);
  pool.CacheBlock(1, 2);
  pool.FreeBlocks(Ids{1});
  EXPECT_FALSE(pool.ResetPrefixCache());  // block 0 in use
  EXPECT_EQ(pool.GetCachedBlock(1), 0);
  pool.FreeBlocks(Ids{0});
  const Ids order = pool.FreeQueueForTest();
  EXPECT_TRUE(pool.ResetPrefixCache());
  EXPECT_EQ(pool.GetCachedBlock(1), std::nullopt);
  EXPECT_EQ(pool.GetCachedBlock(2), std::nullopt);
  EXPECT_EQ(pool.block_hash(0), std::nullopt);
  EXPECT_EQ(pool.FreeQueueForTest(), order);
  ExpectInvariants(pool);
}

TEST(BlockPool, EmptyPool) {
  BlockPool pool(0, true);
  EXPECT_EQ(pool.num_free_blocks(), 0);
  EXPECT_EQ(pool.usage(), 0.0);
  EXPECT_EQ(pool.GetNewBlocks(0), Ids{});
  EXPECT_FALSE(pool.Allocate(1).ok());
  ExpectInvariants(pool);
}

TEST(BlockPoolDeathTest, PreconditionViolationsAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        BlockPool pool(2, true);
        pool.GetNewBlocks(3);
      },
      "GetNewBlocks");
  EXPECT_DEATH(
      {
        BlockPool pool(2, true);
        pool.FreeBlocks(Ids{0});
      },
      "not in use");
  EXPECT_DEATH(
      {
        BlockPool pool(2, true);
        pool.GetNewBlocks(1);
        pool.CacheBlock(0, 1);
        pool.CacheBlock(0, 2);
      },
      "another hash");
}

// Random GetNewBlocks / Touch / FreeBlocks / CacheBlock / Reset against a plain model
// (std::list free queue, std::map hash table); the invariant and the model's exact queue order
// are checked after every operation.
TEST(BlockPool, RandomOpsMatchAModelAndKeepTheInvariant) {
  for (const bool caching : {true, false}) {
    constexpr int32_t kBlocks = 24;
    std::mt19937 rng(caching ? 1234 : 99);
    BlockPool pool(kBlocks, caching);
    std::vector<int32_t> ref(kBlocks, 0);
    std::list<int32_t> queue;
    for (int32_t b = 0; b < kBlocks; ++b) queue.push_back(b);
    std::map<BlockHash, int32_t> map;
    std::map<int32_t, BlockHash> hash_of;
    auto drop = [&](int32_t b) {
      if (auto it = hash_of.find(b); it != hash_of.end()) {
        map.erase(it->second);
        hash_of.erase(it);
      }
    };
    std::vector<int32_t> held;  // one entry per reference
    for (int step = 0; step < 20000; ++step) {
      const int op = static_cast<int>(rng() % 6);
      if (op == 0) {
        const int64_t n = static_cast<int64_t>(rng() % (queue.size() + 1));
        const Ids got = pool.GetNewBlocks(n);
        ASSERT_EQ(static_cast<int64_t>(got.size()), n);
        for (int32_t b : got) {
          ASSERT_EQ(b, queue.front());
          queue.pop_front();
          drop(b);
          ref[b] = 1;
          held.push_back(b);
        }
      } else if (op == 1 && !held.empty()) {
        // Free a random subset of references, in random order.
        std::shuffle(held.begin(), held.end(), rng);
        const size_t n = rng() % (held.size() + 1);
        const Ids to_free(held.end() - static_cast<std::ptrdiff_t>(n), held.end());
        held.resize(held.size() - n);
        pool.FreeBlocks(to_free);
        for (int32_t b : to_free) {
          if (--ref[b] == 0) queue.push_back(b);
        }
      } else if (op == 2) {
        // Touch a cached block, free or not (a prefix hit), or a held one (sharing).
        std::optional<int32_t> b;
        if (!map.empty() && rng() % 2 == 0) {
          auto it = map.begin();
          std::advance(it, rng() % map.size());
          b = pool.GetCachedBlock(it->first);
          ASSERT_EQ(b, it->second);
        } else if (!held.empty()) {
          b = held[rng() % held.size()];
        }
        if (b) {
          pool.Touch(Ids{*b});
          if (ref[*b]++ == 0) queue.remove(*b);
          held.push_back(*b);
        }
      } else if (op == 3 && !held.empty()) {
        const int32_t b = held[rng() % held.size()];
        if (hash_of.count(b) == 0) {
          const BlockHash h = rng() % 64;  // small space: duplicates happen
          pool.CacheBlock(b, h);
          if (caching && map.emplace(h, b).second) hash_of[b] = h;
        }
      } else if (op == 4 && rng() % 50 == 0) {
        const bool idle = held.empty();
        ASSERT_EQ(pool.ResetPrefixCache(), idle);
        if (idle) {
          map.clear();
          hash_of.clear();
        }
      } else if (op == 5) {
        const BlockHash h = rng() % 64;
        const auto it = map.find(h);
        ASSERT_EQ(pool.GetCachedBlock(h), it == map.end() ? std::nullopt : std::optional<int32_t>(it->second));
      }
      ASSERT_TRUE(pool.CheckInvariants().ok()) << pool.CheckInvariants().ToString() << " at step " << step;
      ASSERT_EQ(pool.FreeQueueForTest(), Ids(queue.begin(), queue.end())) << "step " << step;
      ASSERT_EQ(pool.num_free_blocks(), static_cast<int64_t>(queue.size()));
      for (int32_t b = 0; b < kBlocks; ++b) ASSERT_EQ(pool.ref_cnt(b), ref[b]);
    }
  }
}

}  // namespace
}  // namespace inferd
