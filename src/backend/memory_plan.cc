#include "backend/memory_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace inferd {
namespace {
double GiB(int64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0 * 1024.0); }
}  // namespace

Status CheckFreeMemoryAtStart(int64_t total_bytes, int64_t free_bytes, double utilization) {
  if (!(utilization > 0.0 && utilization <= 1.0)) {
    return InvalidArgument(fmt::format("--gpu-memory-utilization must be in (0, 1], got {}", utilization));
  }
  const double requested = utilization * static_cast<double>(total_bytes);
  if (static_cast<double>(free_bytes) < requested) {
    return ResourceExhausted(fmt::format(
        "free memory on device ({:.2f}/{:.2f} GiB) on startup is less than desired GPU memory utilization "
        "({}, {:.2f} GiB); decrease --gpu-memory-utilization or reduce GPU memory used by other processes",
        GiB(free_bytes), GiB(total_bytes), utilization, requested / (1024.0 * 1024.0 * 1024.0)));
  }
  return Status::OK();
}

StatusOr<GpuMemoryPlan> PlanGpuMemory(const GpuMemoryInput& in) {
  if (!(in.utilization > 0.0 && in.utilization <= 1.0)) {
    return InvalidArgument(fmt::format("--gpu-memory-utilization must be in (0, 1], got {}", in.utilization));
  }
  if (in.kv_bytes_per_block <= 0) return InvalidArgument("KV cache block size in bytes must be positive");
  GpuMemoryPlan p;
  p.budget_bytes = static_cast<int64_t>(std::floor(in.utilization * static_cast<double>(in.total_bytes)));
  p.non_kv_bytes = in.weights_bytes + in.activation_bytes + in.other_bytes + in.graph_reserve_bytes;
  int64_t kv = p.budget_bytes - p.non_kv_bytes;
  if (in.requested_kv_bytes > 0) {
    // An explicit --kv-cache-memory wins over the utilization, but must still fit on the device.
    const int64_t room = in.free_at_start - p.non_kv_bytes;
    if (in.requested_kv_bytes > room) {
      return ResourceExhausted(fmt::format(
          "--kv-cache-memory {} does not fit: the device had {} free, and weights, activations and other "
          "memory take {}; at most {} is left for the KV cache",
          FormatBytes(in.requested_kv_bytes), FormatBytes(in.free_at_start), FormatBytes(p.non_kv_bytes),
          FormatBytes(std::max<int64_t>(room, 0))));
    }
    kv = in.requested_kv_bytes;
  } else if (kv <= 0) {
    return ResourceExhausted(fmt::format(
        "no available memory for the cache blocks: the budget ({} x {} = {}) is used up by weights ({}), "
        "activations ({}), CUDA graphs ({}) and other memory ({}); try increasing --gpu-memory-utilization",
        in.utilization, FormatBytes(in.total_bytes), FormatBytes(p.budget_bytes), FormatBytes(in.weights_bytes),
        FormatBytes(in.activation_bytes), FormatBytes(in.graph_reserve_bytes), FormatBytes(in.other_bytes)));
  }
  p.num_blocks = kv / in.kv_bytes_per_block;
  if (p.num_blocks <= 0) {
    return ResourceExhausted(fmt::format("{} left for the KV cache is less than one block ({}); try increasing "
                                         "--gpu-memory-utilization",
                                         FormatBytes(kv), FormatBytes(in.kv_bytes_per_block)));
  }
  p.kv_bytes = p.num_blocks * in.kv_bytes_per_block;
  return p;
}

std::vector<int64_t> CudaGraphBatchSizes(int64_t max_num_seqs, int64_t max_capture_size) {
  std::vector<int64_t> all = {1, 2, 4};
  for (int64_t s = 8; s <= 256; s += 8) all.push_back(s);
  for (int64_t s = 272; s <= 512; s += 16) all.push_back(s);
  std::vector<int64_t> out;
  for (int64_t s : all) {
    if (s > max_capture_size) break;
    out.push_back(s);
    if (s >= max_num_seqs) break;
  }
  return out;
}

int64_t CudaGraphBucket(const std::vector<int64_t>& sizes, int64_t n) {
  auto it = std::lower_bound(sizes.begin(), sizes.end(), n);
  return it == sizes.end() ? -1 : *it;
}

}  // namespace inferd
