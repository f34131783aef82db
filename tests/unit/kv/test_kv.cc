#include <gtest/gtest.h>

#include <string>

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
  EXPECT_EQ(kv.k_scale(0), nullptr);  // no scales but for 1-byte codes
}

// 1-byte codes: head_dim bytes plus a 2-byte scale per (token, KV head), for K and for V.
TEST(KvCache, QuantizedSizingHasScales) {
  for (KvDtype d : {KvDtype::kInt8, KvDtype::kFp8E4M3, KvDtype::kFp8E5M2}) {
    KvCacheShape s;
    s.layers_per_block = 30;
    s.num_kv_heads = 3;
    s.head_dim = 64;
    s.dtype = d;
    EXPECT_EQ(s.bytes_per_token(), 11880);  // SmolLM2-135M: 2 * 30 * 3 * (64 + 2); fp16: 23040
    s.layers_per_block = 2;
    s.num_blocks = 3;
    KvCache kv(s);
    EXPECT_EQ(kv.nbytes(), static_cast<size_t>(3 * 16 * 2 * 2 * 3 * 66));
    ASSERT_NE(kv.k_scale(1), nullptr);
    ASSERT_NE(kv.v_scale(1), nullptr);
    kv.k_scale(1)[3 * 16 * 3 - 1] = 1;  // [blocks][kv_heads][block_size] fp16: the last one
    kv.v_scale(1)[3 * 16 * 3 - 1] = 1;
    static_cast<uint8_t*>(kv.k(1))[3 * 16 * 3 * 64 - 1] = 1;  // codes: one byte each
  }
  EXPECT_EQ(std::string(KvDtypeName(KvDtype::kFp8E4M3)), "fp8_e4m3");
  EXPECT_EQ(*ParseKvDtype("fp8", false), KvDtype::kFp8E4M3);
}

}  // namespace
}  // namespace inferd
