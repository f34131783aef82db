// A fixed pool of worker threads for data-parallel loops inside one forward step.
//
// ParallelFor splits [0, n) into contiguous chunks, one per thread (the calling thread
// takes part). Work partitioning never changes the arithmetic of one output element:
// kernels compute each element entirely within one chunk, so results do not depend on
// the thread count or on what else is in the batch.
// Thread-safety: ParallelFor may be called from one thread at a time (the engine thread).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace inferd {

class ThreadPool {
 public:
  // num_threads <= 0: one per available core.
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) over disjoint chunks covering [0, n); chunk sizes are multiples
  // of `grain` (except the last). Returns when all chunks are done.
  void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // Process-wide pool used by the CPU kernels.
  static ThreadPool& Global();
  static void SetGlobalThreads(int num_threads);

 private:
  void WorkerLoop(int index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_work_;
  std::condition_variable cv_done_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

}  // namespace inferd
