// ThreadPool: every index of every job is run exactly once, whatever the job sizes, grains,
// thread counts, spin settings and callers; jobs posted back to back while workers are
// still finishing the previous one (the races a spinning pool has to get right).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "util/thread_pool.h"

namespace inferd {
namespace {

void CheckJobs(ThreadPool& pool, int jobs, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::atomic<int>> hits(5000);
  for (int j = 0; j < jobs; ++j) {
    const int64_t n = std::uniform_int_distribution<int64_t>(0, 4999)(rng);
    const int64_t grain = std::uniform_int_distribution<int64_t>(1, 64)(rng);
    const bool slow = rng() % 16 == 0;
    for (int64_t i = 0; i < n; ++i) hits[i].store(0, std::memory_order_relaxed);
    pool.ParallelFor(n, grain, [&](int64_t b, int64_t e) {
      ASSERT_LE(0, b);
      ASSERT_LE(b, e);
      ASSERT_LE(e, n);
      ASSERT_EQ(b % grain, 0) << "chunks start at multiples of the grain";
      if (slow) std::this_thread::sleep_for(std::chrono::microseconds(50));
      for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1, std::memory_order_relaxed);
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "job " << j << " n " << n << " index " << i;
  }
}

TEST(ThreadPool, EveryIndexOnceAcrossManyJobs) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    CheckJobs(pool, 3000, static_cast<uint32_t>(threads));
  }
}

TEST(ThreadPool, WithoutSpinningWorkersSleepAndWake) {
  setenv("INFERD_SPIN_US", "0", 1);
  ThreadPool pool(3);
  unsetenv("INFERD_SPIN_US");
  CheckJobs(pool, 2000, 11);
  // Idle long enough for every worker to sleep, then wake them again.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CheckJobs(pool, 50, 12);
}

TEST(ThreadPool, AfterIdleWorkersSleepThenServeTheNextJob) {
  ThreadPool pool(2);
  for (int round = 0; round < 5; ++round) {
    CheckJobs(pool, 20, 20 + round);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // > the 200 us spin
  }
}

TEST(ThreadPool, CallersOnSeveralThreadsAreSerialised) {
  ThreadPool pool(2);
  std::vector<std::thread> callers;
  std::atomic<int> failures{0};
  for (int c = 0; c < 3; ++c) {
    callers.emplace_back([&, c] {
      for (int j = 0; j < 300; ++j) {
        std::vector<int> v(1000, 0);
        pool.ParallelFor(1000, 8, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) v[i] += c + 1;
        });
        for (int x : v)
          if (x != c + 1) failures.fetch_add(1);
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(ThreadPool, SmallJobsRunInline) {
  ThreadPool pool(4);
  const auto caller = std::this_thread::get_id();
  bool inline_run = false;
  pool.ParallelFor(10, 100, [&](int64_t b, int64_t e) {
    inline_run = std::this_thread::get_id() == caller && b == 0 && e == 10;
  });
  EXPECT_TRUE(inline_run);
}

}  // namespace
}  // namespace inferd
