#include "util/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <climits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define INFERD_PAUSE() _mm_pause()
#else
#define INFERD_PAUSE() ((void)0)
#endif

namespace inferd {
namespace {

constexpr int64_t kChunksPerThread = 4;

using Clock = std::chrono::steady_clock;

// Waits until pred() holds or `micros` pass; true when pred() held. The first few
// microseconds spin with pause; after that each round yields the core, so that a thread
// that shares our core (when the machine is oversubscribed) can run while we wait.
template <typename Pred>
bool SpinUntil(Pred pred, int micros) {
  if (micros <= 0) return pred();
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::microseconds(micros);
  const auto yield_after = start + std::chrono::microseconds(std::min(micros, 5));
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      if (pred()) return true;
      INFERD_PAUSE();
    }
    const auto now = Clock::now();
    if (now >= deadline) return pred();
    if (now >= yield_after) std::this_thread::yield();
  }
}

// Blocks while *word == expected (the kernel compares atomically), or spuriously returns.
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = std::max(1u, std::thread::hardware_concurrency());
  if (const char* env = std::getenv("INFERD_SPIN_US")) spin_micros_ = std::max(0, std::atoi(env));
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  FutexWakeAll(&generation_);
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunChunks(uint32_t generation) {
  uint64_t v = next_.load(std::memory_order_acquire);
  for (;;) {
    // One word holds the job's generation, its chunk count and the next chunk, so a
    // claim can only succeed on the job it was meant for: a stale worker's CAS against a
    // finished job finds every chunk taken.
    if (static_cast<uint32_t>(v >> 32) != generation) return;  // that job is over
    const int64_t c = static_cast<int64_t>(v & 0xFFFFu);
    if (c >= static_cast<int64_t>((v >> 16) & 0xFFFFu)) return;
    if (!next_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    const int64_t begin = c * chunk_;
    (*fn_)(begin, std::min(n_, begin + chunk_));
    done_.fetch_add(1, std::memory_order_acq_rel);
    v = next_.load(std::memory_order_acquire);
  }
}

void ThreadPool::WorkerLoop() {
  uint32_t seen = 0;  // generation_ at construction: a job posted before this thread ran is still seen
  for (;;) {
    if (!SpinUntil([&] { return generation_.load(std::memory_order_acquire) != seen; }, spin_micros_)) {
      // Sleep. The caller bumps generation_ before it reads sleepers_, and we raise
      // sleepers_ before the futex re-reads generation_ (all seq_cst): either it sees us
      // and wakes us, or the futex sees the new generation and returns at once.
      sleepers_.fetch_add(1);
      FutexWait(&generation_, seen);
      sleepers_.fetch_sub(1);
    }
    const uint32_t g = generation_.load(std::memory_order_acquire);
    if (g == seen) continue;  // spurious wake-up
    seen = g;
    if (stop_.load()) return;
    RunChunks(g);
  }
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t threads = num_threads();
  const int64_t max_chunks = (n + grain - 1) / grain;
  const int64_t want = std::min(max_chunks, threads * kChunksPerThread);
  if (workers_.empty() || want <= 1 || threads * kChunksPerThread >= (1 << 16)) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> lock(call_mu_);
  int64_t chunk = (n + want - 1) / want;
  chunk = (chunk + grain - 1) / grain * grain;
  const int64_t num_chunks = (n + chunk - 1) / chunk;  // <= threads * kChunksPerThread < 2^16
  const uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
  fn_ = &fn;
  n_ = n;
  chunk_ = chunk;
  done_.store(0, std::memory_order_relaxed);
  next_.store(static_cast<uint64_t>(gen) << 32 | static_cast<uint64_t>(num_chunks) << 16, std::memory_order_release);
  generation_.store(gen);  // seq_cst: publishes the job (see WorkerLoop)
  if (sleepers_.load() > 0) FutexWakeAll(&generation_);
  RunChunks(gen);
  // Only chunks that other threads claimed can still be running.
  if (!SpinUntil([&] { return done_.load(std::memory_order_acquire) == num_chunks; }, 1000)) {
    while (done_.load(std::memory_order_acquire) != num_chunks) std::this_thread::yield();
  }
}

namespace {
std::unique_ptr<ThreadPool>& GlobalSlot() {
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}
}  // namespace

ThreadPool& ThreadPool::Global() {
  auto& slot = GlobalSlot();
  if (!slot) slot = std::make_unique<ThreadPool>(0);
  return *slot;
}

void ThreadPool::SetGlobalThreads(int num_threads) {
  GlobalSlot() = std::make_unique<ThreadPool>(num_threads);
}

}  // namespace inferd
