// GPU memory planning and CUDA-graph batch buckets: pure host-side arithmetic, so that it
// is unit-tested on machines without a GPU (tests/unit/backend/test_memory_plan.cc).
//
// The KV cache gets what is left of the budget, as in vLLM V1:
//   budget   = gpu_memory_utilization x total device memory
//   non-KV   = weights + peak activations (+ workspaces) + other (CUDA context, cuBLAS,
//              measured as the growth of used device memory that inferd did not allocate)
//              + a reserve for CUDA graphs
//   KV cache = budget - non-KV, rounded down to whole blocks
// and start-up fails when the device does not even have `budget` free (another process
// holds memory), or when nothing is left for the cache.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "inferd/status.h"
#include "util/bytes.h"  // FormatBytes, used with every plan

namespace inferd {

struct GpuMemoryInput {
  int64_t total_bytes = 0;           // cudaMemGetInfo total
  int64_t free_at_start = 0;         // free before inferd allocated anything
  double utilization = 0.9;          // --gpu-memory-utilization, in (0, 1]
  int64_t weights_bytes = 0;
  int64_t activation_bytes = 0;      // per-step buffers and workspaces at the largest batch
  int64_t other_bytes = 0;           // measured non-inferd growth (context, libraries)
  int64_t graph_reserve_bytes = 0;   // kept back for CUDA graphs (0 with --enforce-eager)
  int64_t kv_bytes_per_block = 0;    // K + V of one block over all layers
  int64_t requested_kv_bytes = 0;    // --kv-cache-memory (0: from the budget)
};

struct GpuMemoryPlan {
  int64_t budget_bytes = 0;
  int64_t non_kv_bytes = 0;
  int64_t kv_bytes = 0;   // num_blocks * kv_bytes_per_block
  int64_t num_blocks = 0;
};

// Errors (InvalidArgument / ResourceExhausted) carry vLLM's advice: lower or raise
// --gpu-memory-utilization, free memory held by other processes, lower --max-model-len.
StatusOr<GpuMemoryPlan> PlanGpuMemory(const GpuMemoryInput& in);

// Start-up check before anything is allocated: the device must have the budget free.
Status CheckFreeMemoryAtStart(int64_t total_bytes, int64_t free_bytes, double utilization);

// Decode batch sizes captured as CUDA graphs (vLLM's default list: 1, 2, 4, then every 8
// up to 256, every 16 up to 512), cut at the first size >= max_num_seqs.
std::vector<int64_t> CudaGraphBatchSizes(int64_t max_num_seqs, int64_t max_capture_size = 512);
// Smallest captured size >= n, or -1 when n is larger than every size (run eagerly).
int64_t CudaGraphBucket(const std::vector<int64_t>& sizes, int64_t n);


}  // namespace inferd
