#include "util/work_queue.h"

#include <atomic>
#include <future>
#include <vector>

#include <gtest/gtest.h>

namespace inferd {
namespace {

TEST(WorkQueueTest, RunsTasksInOrderOnOneThread) {
  std::vector<int> order;
  std::promise<void> done;
  {
    WorkQueue q(1, 100);
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(q.TrySubmit([&order, i] { order.push_back(i); }));
    ASSERT_TRUE(q.TrySubmit([&done] { done.set_value(); }));
    done.get_future().wait();
  }
  ASSERT_EQ(order.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(order[i], i);
}

TEST(WorkQueueTest, RefusesPastCapacityAndStopDropsWaitingTasks) {
  std::promise<void> release, started;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<int> ran{0};
  WorkQueue q(1, 2);
  ASSERT_TRUE(q.TrySubmit([&, gate] {
    started.set_value();
    gate.wait();
    ++ran;
  }));
  started.get_future().wait();  // the worker is busy; the next two wait
  EXPECT_TRUE(q.TrySubmit([&] { ++ran; }));
  EXPECT_TRUE(q.TrySubmit([&] { ++ran; }));
  EXPECT_EQ(q.num_waiting(), 2u);
  EXPECT_FALSE(q.TrySubmit([&] { ++ran; })) << "a third waiting task exceeds the capacity";
  std::thread stopper([&] { q.Stop(); });
  while (q.num_waiting() != 0) std::this_thread::yield();  // Stop has taken the waiting tasks
  release.set_value();
  stopper.join();
  EXPECT_EQ(ran.load(), 1) << "the running task finished; the two waiting ones were dropped";
  EXPECT_FALSE(q.TrySubmit([&] { ++ran; })) << "nothing is accepted after Stop";
}

TEST(WorkQueueTest, UsesAllThreads) {
  WorkQueue q(3, 10);
  EXPECT_EQ(q.num_threads(), 3);
  std::promise<void> all;
  std::atomic<int> arrived{0};
  std::shared_future<void> gate = all.get_future().share();
  std::vector<std::promise<void>> done(3);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(q.TrySubmit([&, i, gate] {
      if (++arrived == 3) all.set_value();
      gate.wait();  // returns only if three tasks run at once
      done[i].set_value();
    }));
  }
  for (auto& d : done) d.get_future().wait();
}

}  // namespace
}  // namespace inferd
