// The GPU batch metadata: rows to sequences, KV slots, decode rows vs prefill tiles,
// padding for CUDA graphs (host-side; no GPU needed).
#include "backend/batch_plan.h"

#include <gtest/gtest.h>

namespace inferd {
namespace {

// Sequence A: prefill chunk of 5 rows at positions 3..7 (context 8);
// B: one decode row at position 20 (context 21); C: decode at position 0.
struct Mixed {
  std::vector<int32_t> table_a{7, 2}, table_b{4, 9, 1, 3, 5, 6}, table_c{11};
  ForwardBatch batch;
  Mixed() {
    batch.token_ids = {10, 11, 12, 13, 14, 20, 30};
    batch.positions = {3, 4, 5, 6, 7, 20, 0};
    batch.seqs = {ops::AttnSeq{0, 5, 8, table_a.data()}, ops::AttnSeq{5, 1, 21, table_b.data()},
                  ops::AttnSeq{6, 1, 1, table_c.data()}};
    batch.logits_rows = {4, 5, 6};
  }
};

TEST(BatchPlanTest, MixedBatch) {
  Mixed m;
  DeviceBatchPlan p;
  ASSERT_TRUE(PlanDeviceBatch(m.batch, /*block_size=*/4, /*max_blocks_per_seq=*/8, 0, /*tile_rows=*/2, &p).ok());
  EXPECT_EQ(p.num_rows, 7);
  EXPECT_EQ(p.num_seqs, 3);
  EXPECT_EQ(p.row_seq, (std::vector<int32_t>{0, 0, 0, 0, 0, 1, 2}));
  // Position 3 of A is block table_a[0] = 7, offset 3; positions 4..7 are in block 2.
  EXPECT_EQ(p.slot_mapping, (std::vector<int64_t>{7 * 4 + 3, 2 * 4 + 0, 2 * 4 + 1, 2 * 4 + 2, 2 * 4 + 3,
                                                  6 * 4 + 0, 11 * 4 + 0}));
  EXPECT_EQ(p.decode_rows, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(p.prefill_tiles, (std::vector<int32_t>{0, 2, 2, 2, 4, 1}));  // tiles of <= 2 rows
  EXPECT_EQ(p.max_decode_context, 21);
  EXPECT_FALSE(p.decode_only);
  ASSERT_EQ(p.block_tables.size(), 3u * 8u);
  EXPECT_EQ(p.block_tables[0], 7);
  EXPECT_EQ(p.block_tables[1], 2);
  EXPECT_EQ(p.block_tables[8], 4);
  EXPECT_EQ(p.block_tables[9], 9);
  EXPECT_EQ(p.block_tables[13], 6);
  EXPECT_EQ(p.block_tables[16], 11);
  EXPECT_EQ(p.block_tables[17], 0);  // beyond C's context: unused
  EXPECT_EQ(p.logits_rows, (std::vector<int32_t>{4, 5, 6}));
}

TEST(BatchPlanTest, PaddingRowsAreDecodeRowsOfNoSequence) {
  std::vector<int32_t> t0{3}, t1{5};
  ForwardBatch b;
  b.token_ids = {1, 2};
  b.positions = {2, 0};
  b.seqs = {ops::AttnSeq{0, 1, 3, t0.data()}, ops::AttnSeq{1, 1, 1, t1.data()}};
  b.logits_rows = {0, 1};
  DeviceBatchPlan p;
  ASSERT_TRUE(PlanDeviceBatch(b, 16, 4, /*pad_rows_to=*/4, 64, &p).ok());
  EXPECT_EQ(p.num_rows, 4);
  EXPECT_EQ(p.num_real_rows, 2);
  EXPECT_TRUE(p.decode_only);
  EXPECT_EQ(p.decode_rows, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(p.row_seq, (std::vector<int32_t>{0, 1, -1, -1}));
  EXPECT_EQ(p.slot_mapping, (std::vector<int64_t>{3 * 16 + 2, 5 * 16, -1, -1}));
  EXPECT_EQ(p.token_ids, (std::vector<int32_t>{1, 2, 0, 0}));
  EXPECT_TRUE(p.prefill_tiles.empty());
}

TEST(BatchPlanTest, ReplanningReusesThePlanWithoutStaleEntries) {
  Mixed m;
  DeviceBatchPlan p;
  ASSERT_TRUE(PlanDeviceBatch(m.batch, 4, 8, 0, 2, &p).ok());
  std::vector<int32_t> t{1};
  ForwardBatch small;
  small.token_ids = {5};
  small.positions = {0};
  small.seqs = {ops::AttnSeq{0, 1, 1, t.data()}};
  small.logits_rows = {0};
  ASSERT_TRUE(PlanDeviceBatch(small, 4, 8, 0, 2, &p).ok());
  EXPECT_EQ(p.num_rows, 1);
  EXPECT_EQ(p.decode_rows, (std::vector<int32_t>{0}));
  EXPECT_TRUE(p.prefill_tiles.empty());
  EXPECT_EQ(p.block_tables.size(), 8u);
  EXPECT_EQ(p.max_decode_context, 1);
}

TEST(BatchPlanTest, RejectsInconsistentBatches) {
  DeviceBatchPlan p;
  {
    Mixed m;
    m.batch.positions[2] = 9;  // not consecutive, and past the context
    EXPECT_FALSE(PlanDeviceBatch(m.batch, 4, 8, 0, 2, &p).ok());
  }
  {
    Mixed m;
    m.batch.seqs[1].token_begin = 4;  // overlaps A's last row, leaves row 5 uncovered
    EXPECT_FALSE(PlanDeviceBatch(m.batch, 4, 8, 0, 2, &p).ok());
  }
  {
    Mixed m;  // B's context of 21 tokens needs 6 blocks of 4
    Status st = PlanDeviceBatch(m.batch, 4, 5, 0, 2, &p);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("needs 6 KV blocks"), std::string::npos) << st.message();
  }
  {
    Mixed m;
    m.batch.logits_rows.push_back(7);
    EXPECT_FALSE(PlanDeviceBatch(m.batch, 4, 8, 0, 2, &p).ok());
  }
}

}  // namespace
}  // namespace inferd
