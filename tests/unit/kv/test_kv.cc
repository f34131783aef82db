#include <gtest/gtest.h>

#include "kv/kv_cache.h"

namespace inferd {
namespace {

// The pre-prefix-cache wrappers (Allocate / Free / num_free) that src/engine still uses.
TEST(BlockPool, AllocatesLowestIdsFirstAndReusesFreedBlocksLru) {
  BlockPool pool(4);
  auto a = pool.Allocate(2);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(pool.num_free(), 2);
  pool.Free(*a);
  EXPECT_EQ(pool.num_free(), 4);
  auto b = pool.Allocate(1);
  ASSERT_TRUE(b.ok());
  // Freed blocks go to the tail of the LRU free queue: never-used block 2 comes first.
  EXPECT_EQ((*b)[0], 2);
  EXPECT_EQ(pool.FreeQueueForTest(), (std::vector<int32_t>{3, 0, 1}));
}

TEST(BlockPool, ExhaustionIsAnErrorNotACrash) {
  BlockPool pool(3);
  auto a = pool.Allocate(4);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(a.status().message().find("need 4 blocks"), std::string::npos);
  EXPECT_EQ(pool.num_free(), 3);
}

TEST(BlockPool, DoubleFreeAndBadIdsAreIgnored) {
  BlockPool pool(2);
  auto a = pool.Allocate(1);
  ASSERT_TRUE(a.ok());
  pool.Free(*a);
  pool.Free(*a);
  const int32_t bad[] = {-1, 7};
  pool.Free(bad);
  EXPECT_EQ(pool.num_free(), 2);
}

TEST(KvCache, SizingFromBytes) {
  KvCacheShape s;
  s.layers_per_block = 2;
  s.num_kv_heads = 3;
  s.head_dim = 8;
  s.block_size = 16;
  EXPECT_EQ(s.bytes_per_token(), 2 * 2 * 3 * 8 * 4);
  EXPECT_EQ(NumBlocksForBytes(s, 16 * s.bytes_per_token() * 5 + 7), 5);
  s.num_blocks = 5;
  KvCache kv(s);
  EXPECT_EQ(kv.block_stride(), 16 * 3 * 8);
  EXPECT_EQ(kv.nbytes(), static_cast<size_t>(5 * 16 * s.bytes_per_token()));
}

}  // namespace
}  // namespace inferd
