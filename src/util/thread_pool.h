// A fixed pool of worker threads for data-parallel loops inside one forward step.
//
// ParallelFor splits [0, n) into contiguous chunks (a few per thread, claimed dynamically so
// that a thread delayed by another process does not hold up the step); the calling thread
// takes part. Work partitioning never changes the arithmetic of one output element:
// kernels compute each element entirely within one chunk, so results do not depend on the
// thread count, the chunking or on what else is in the batch.
//
// Synchronisation cost: a decode step of a small model runs a few hundred ParallelFor
// calls of a few microseconds each, so waking sleeping threads through the kernel for
// every call would cost more than the work. Workers spin on an atomic generation counter
// for a while after each job (spin_micros_) and only then sleep on a futex (raw
// FUTEX_WAIT: GCC 12's std::atomic::wait can lose wake-ups); the caller spins for the stragglers. Between steps idle workers go
// back to sleep, so an idle engine uses no CPU.
//
// Thread-safety: ParallelFor may be called from any thread; calls are serialised. fn must
// not call ParallelFor on the same pool.
#pragma once

#include <atomic>
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

  // How long a worker spins for the next job before it sleeps (default 200 us; 0 = never
  // spin). INFERD_SPIN_US overrides the default.
  static constexpr int kDefaultSpinMicros = 200;

 private:
  void WorkerLoop();
  void RunChunks(uint32_t generation);

  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // serialises ParallelFor callers
  int spin_micros_ = kDefaultSpinMicros;

  // The current job. The caller writes fn_ / n_ / chunk_, then next_ = (generation << 32 |
  // num_chunks << 16 | 0) (release), then bumps generation_. A chunk is claimed by a CAS on
  // next_, which also checks the generation and the count, so a worker that wakes up late
  // can never take a chunk of another job; the caller waits only for the chunks to be done
  // (done_), not for every worker to check in: a worker descheduled by another process
  // does not stall the step.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 0;
  alignas(64) std::atomic<uint64_t> next_{0};
  alignas(64) std::atomic<int64_t> done_{0};
  alignas(64) std::atomic<uint32_t> generation_{0};  // a futex word
  alignas(64) std::atomic<int> sleepers_{0};          // workers blocked on the futex
  std::atomic<bool> stop_{false};
};

}  // namespace inferd
