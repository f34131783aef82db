// Host-side helpers of the CUDA backend: CUDA / cuBLAS errors as Status, and device
// memory accounted by category (for the memory report and the KV-cache plan).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "inferd/status.h"

namespace inferd::cuda {

inline Status CudaStatus(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::OK();
  return Internal(fmt::format("CUDA error in {}: {} ({})", what, cudaGetErrorString(e), cudaGetErrorName(e)));
}
const char* CublasStatusName(cublasStatus_t s);
inline Status CublasStatus(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status::OK();
  return Internal(fmt::format("cuBLAS error in {}: {}", what, CublasStatusName(s)));
}
#define INFERD_CUDA_TRY(expr) INFERD_RETURN_IF_ERROR(::inferd::cuda::CudaStatus((expr), #expr))
#define INFERD_CUBLAS_TRY(expr) INFERD_RETURN_IF_ERROR(::inferd::cuda::CublasStatus((expr), #expr))

// Every device allocation of the backend goes through one DeviceMemory, which frees them
// all when destroyed. Not thread-safe (the engine thread owns the backend).
class DeviceMemory {
 public:
  enum Category { kWeights, kKvCache, kActivations, kNumCategories };
  DeviceMemory() = default;
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  ~DeviceMemory();
  // OOM comes back as ResourceExhausted naming `what` and the size.
  StatusOr<void*> Alloc(size_t bytes, Category category, const char* what);
  void Free(void* p);  // one allocation (e.g. the profiling KV cache)
  int64_t bytes(Category c) const { return bytes_[c]; }
  int64_t total() const;

 private:
  struct Block {
    void* ptr;
    size_t bytes;
    Category category;
  };
  std::vector<Block> blocks_;
  std::array<int64_t, kNumCategories> bytes_{};
};

}  // namespace inferd::cuda
