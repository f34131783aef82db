// GPU memory planning and CUDA-graph buckets (pure host arithmetic; no GPU needed).
#include "backend/memory_plan.h"

#include <gtest/gtest.h>

namespace inferd {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kMiB = int64_t{1} << 20;

// An 80 GiB H100 serving a 7B fp16 model (13.5 GB of weights): the KV cache gets
// 0.9 x 80 GiB minus weights, activations, graphs and other, in whole blocks.
TEST(MemoryPlanTest, KvCacheGetsTheRestOfTheBudget) {
  GpuMemoryInput in;
  in.total_bytes = 80 * kGiB;
  in.free_at_start = 79 * kGiB;
  in.utilization = 0.9;
  in.weights_bytes = 13476 * kMiB;
  in.activation_bytes = 700 * kMiB;
  in.other_bytes = 500 * kMiB;
  in.graph_reserve_bytes = 100 * kMiB;
  in.kv_bytes_per_block = 16 * 2 * 32 * 32 * 128 * 2;  // 16 tokens x K+V x 32 layers x 32 heads x 128 x fp16 = 8 MiB
  StatusOr<GpuMemoryPlan> p = PlanGpuMemory(in);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const int64_t budget = static_cast<int64_t>(0.9 * static_cast<double>(80 * kGiB));
  EXPECT_EQ(p->budget_bytes, budget);
  EXPECT_EQ(p->non_kv_bytes, (13476 + 700 + 500 + 100) * kMiB);
  EXPECT_EQ(p->num_blocks, (budget - p->non_kv_bytes) / in.kv_bytes_per_block);
  EXPECT_EQ(p->kv_bytes, p->num_blocks * in.kv_bytes_per_block);
  EXPECT_LE(p->non_kv_bytes + p->kv_bytes, budget);
  EXPECT_GT(p->non_kv_bytes + p->kv_bytes + in.kv_bytes_per_block, budget);
  // 8 MiB blocks of 16 tokens: 2 tokens per 1 MiB; ~57 GiB -> ~117k tokens.
  EXPECT_GT(p->num_blocks * 16, 110000);
  EXPECT_LT(p->num_blocks * 16, 120000);
}

TEST(MemoryPlanTest, ExplicitKvCacheMemoryWinsIfItFits) {
  GpuMemoryInput in;
  in.total_bytes = 24 * kGiB;
  in.free_at_start = 23 * kGiB;
  in.utilization = 0.5;
  in.weights_bytes = 2 * kGiB;
  in.activation_bytes = 256 * kMiB;
  in.kv_bytes_per_block = kMiB;
  in.requested_kv_bytes = 10 * kGiB;  // more than the 50% budget leaves, less than free
  StatusOr<GpuMemoryPlan> p = PlanGpuMemory(in);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->num_blocks, 10 * 1024);
  in.requested_kv_bytes = 22 * kGiB;  // does not fit in what was free
  p = PlanGpuMemory(in);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(p.status().message().find("--kv-cache-memory"), std::string::npos) << p.status().message();
}

TEST(MemoryPlanTest, NothingLeftForTheCacheSaysWhatToChange) {
  GpuMemoryInput in;
  in.total_bytes = 16 * kGiB;
  in.free_at_start = 16 * kGiB;
  in.utilization = 0.9;
  in.weights_bytes = 14 * kGiB;  // a 7B fp16 model on a 16 GiB card
  in.activation_bytes = 800 * kMiB;
  in.kv_bytes_per_block = 8 * kMiB;
  StatusOr<GpuMemoryPlan> p = PlanGpuMemory(in);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(p.status().message().find("no available memory for the cache blocks"), std::string::npos);
  EXPECT_NE(p.status().message().find("--gpu-memory-utilization"), std::string::npos);
  // Raising the utilization leaves room for some blocks.
  in.utilization = 0.98;
  p = PlanGpuMemory(in);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_GT(p->num_blocks, 0);
}

TEST(MemoryPlanTest, LessThanOneBlockIsAnError) {
  GpuMemoryInput in;
  in.total_bytes = kGiB;
  in.free_at_start = kGiB;
  in.utilization = 1.0;
  in.weights_bytes = kGiB - kMiB;
  in.kv_bytes_per_block = 8 * kMiB;
  StatusOr<GpuMemoryPlan> p = PlanGpuMemory(in);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("less than one block"), std::string::npos) << p.status().message();
}

TEST(MemoryPlanTest, UtilizationOutOfRangeIsRejected) {
  for (double u : {0.0, -0.5, 1.5}) {
    GpuMemoryInput in;
    in.total_bytes = kGiB;
    in.utilization = u;
    in.kv_bytes_per_block = kMiB;
    EXPECT_EQ(PlanGpuMemory(in).status().code(), StatusCode::kInvalidArgument) << u;
    EXPECT_EQ(CheckFreeMemoryAtStart(kGiB, kGiB, u).code(), StatusCode::kInvalidArgument) << u;
  }
}

TEST(MemoryPlanTest, StartupNeedsTheBudgetFree) {
  EXPECT_TRUE(CheckFreeMemoryAtStart(80 * kGiB, 79 * kGiB, 0.9).ok());
  // Another process holds 20 GiB: 60 GiB free < 72 GiB wanted.
  Status st = CheckFreeMemoryAtStart(80 * kGiB, 60 * kGiB, 0.9);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("free memory on device (60.00/80.00 GiB) on startup is less than desired GPU memory "
                              "utilization (0.9, 72.00 GiB)"),
            std::string::npos)
      << st.message();
  EXPECT_TRUE(CheckFreeMemoryAtStart(80 * kGiB, 60 * kGiB, 0.7).ok());
}

TEST(CudaGraphSizesTest, VllmDefaultListCutAtMaxNumSeqs) {
  EXPECT_EQ(CudaGraphBatchSizes(1), (std::vector<int64_t>{1}));
  EXPECT_EQ(CudaGraphBatchSizes(3), (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(CudaGraphBatchSizes(20), (std::vector<int64_t>{1, 2, 4, 8, 16, 24}));
  const std::vector<int64_t> all = CudaGraphBatchSizes(10000);
  ASSERT_EQ(all.size(), 3u + 32u + 16u);
  EXPECT_EQ(all[3], 8);
  EXPECT_EQ(all[34], 256);
  EXPECT_EQ(all[35], 272);
  EXPECT_EQ(all.back(), 512);
  EXPECT_EQ(CudaGraphBatchSizes(256).back(), 256);
  EXPECT_EQ(CudaGraphBatchSizes(100, 64).back(), 64);
}

TEST(CudaGraphSizesTest, BucketIsTheSmallestCapturedSizeThatFits) {
  const std::vector<int64_t> s = CudaGraphBatchSizes(64);
  EXPECT_EQ(CudaGraphBucket(s, 1), 1);
  EXPECT_EQ(CudaGraphBucket(s, 3), 4);
  EXPECT_EQ(CudaGraphBucket(s, 5), 8);
  EXPECT_EQ(CudaGraphBucket(s, 64), 64);
  EXPECT_EQ(CudaGraphBucket(s, 65), -1);
  EXPECT_EQ(CudaGraphBucket({}, 1), -1);
}

TEST(FormatBytesTest, Units) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(340 * kMiB + kMiB / 5), "340.2 MiB");
  EXPECT_EQ(FormatBytes(3 * kGiB / 2), "1.50 GiB");
}

}  // namespace
}  // namespace inferd
