// Retries (router/retry.h): the budget's arithmetic (the floor when idle, the ratio under load),
// counts leaving the window slice by slice, time going backwards, huge gaps and odd times;
// backoff with full jitter within the doubling bound, its cap, and odd attempts and bounds.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <random>

#include "router/retry.h"

namespace inferd::router {
namespace {

// Retries TryRetry grants at `now_s` until it refuses (at most 1000).
int Drain(RetryBudget& b, double now_s) {
  int n = 0;
  while (n < 1000 && b.TryRetry(now_s)) ++n;
  return n;
}

TEST(RetryBudget, TheFloorWhenIdle) {
  RetryBudget defaults;  // 3 per second over 10 s
  EXPECT_EQ(Drain(defaults, 0), 30);
  EXPECT_DOUBLE_EQ(defaults.retries_in_window(0), 30);
  EXPECT_DOUBLE_EQ(defaults.requests_in_window(0), 0);
  RetryBudget one({.ratio = 0.2, .min_per_s = 1, .window_s = 10});
  EXPECT_EQ(Drain(one, 0), 10);
  RetryBudget none({.ratio = 0.2, .min_per_s = 0, .window_s = 10});
  EXPECT_EQ(Drain(none, 0), 0);
}

TEST(RetryBudget, TheRatioUnderLoad) {
  RetryBudget b({.ratio = 0.2, .min_per_s = 0, .window_s = 10});
  for (int i = 0; i < 100; ++i) b.OnRequest(1);
  EXPECT_EQ(Drain(b, 1), 20);
  EXPECT_DOUBLE_EQ(b.requests_in_window(1), 100);
  EXPECT_DOUBLE_EQ(b.retries_in_window(1), 20);  // refused ones are not counted
  for (int i = 0; i < 5; ++i) b.OnRequest(2);    // each 5 more requests earn one retry
  EXPECT_EQ(Drain(b, 2), 1);
  RetryBudget both({.ratio = 0.2, .min_per_s = 3, .window_s = 10});
  for (int i = 0; i < 100; ++i) both.OnRequest(0);
  EXPECT_EQ(Drain(both, 0), 20 + 30);
}

TEST(RetryBudget, RetriesAndRequestsSpreadOverTheWindowAddUp) {
  RetryBudget b({.ratio = 0.5, .min_per_s = 0, .window_s = 10});
  for (int t = 0; t < 10; ++t) {
    b.OnRequest(t + 0.5);
    b.OnRequest(t + 0.5);
  }
  EXPECT_DOUBLE_EQ(b.requests_in_window(9.9), 20);
  EXPECT_EQ(Drain(b, 9.9), 10);
}

TEST(RetryBudget, CountsLeaveTheWindowSliceBySlice) {
  // window 10 s in slices of 1 s: at now_s the window is the slice of now_s and the 9 before.
  RetryBudget b({.ratio = 1, .min_per_s = 0, .window_s = 10});
  for (int i = 0; i < 4; ++i) b.OnRequest(0.2);  // slice 0
  for (int i = 0; i < 6; ++i) b.OnRequest(5.7);  // slice 5
  EXPECT_DOUBLE_EQ(b.requests_in_window(9.999), 10);
  EXPECT_DOUBLE_EQ(b.requests_in_window(10), 6);  // slice 0 left
  EXPECT_DOUBLE_EQ(b.requests_in_window(14.999), 6);
  EXPECT_DOUBLE_EQ(b.requests_in_window(15), 0);
  EXPECT_EQ(Drain(b, 15), 0);
}

TEST(RetryBudget, SpentRetriesExpireAndTheBudgetComesBack) {
  RetryBudget b({.ratio = 0.5, .min_per_s = 0, .window_s = 10});
  for (int i = 0; i < 10; ++i) b.OnRequest(0);
  EXPECT_EQ(Drain(b, 0), 5);
  EXPECT_FALSE(b.TryRetry(9.5));
  for (int i = 0; i < 10; ++i) b.OnRequest(10);  // the first 10 and their retries left
  EXPECT_DOUBLE_EQ(b.retries_in_window(10), 0);
  EXPECT_EQ(Drain(b, 10), 5);
}

TEST(RetryBudget, ARingSlotReusedAfterAWindowStartsEmpty) {
  RetryBudget b({.ratio = 1, .min_per_s = 0, .window_s = 10});
  for (int i = 0; i < 7; ++i) b.OnRequest(3.5);  // slice 3
  b.OnRequest(13.5);                              // slice 13: the same ring slot
  EXPECT_DOUBLE_EQ(b.requests_in_window(13.5), 1);
  b.OnRequest(23.5);  // and again, a window later
  EXPECT_DOUBLE_EQ(b.requests_in_window(23.5), 1);
}

TEST(RetryBudget, ShortWindowsUseShortSlices) {
  RetryBudget b({.ratio = 1, .min_per_s = 0, .window_s = 1});  // 0.1 s slices
  b.OnRequest(0.05);
  b.OnRequest(0.55);
  EXPECT_DOUBLE_EQ(b.requests_in_window(0.99), 2);
  EXPECT_DOUBLE_EQ(b.requests_in_window(1.05), 1);
  EXPECT_DOUBLE_EQ(b.requests_in_window(1.55), 0);
}

TEST(RetryBudget, TimeGoingBackwardsCountsAsTheLatestTime) {
  RetryBudget b({.ratio = 1, .min_per_s = 0, .window_s = 10});
  for (int i = 0; i < 3; ++i) b.OnRequest(15);  // slice 15, ring slot 5
  b.OnRequest(5);  // slice 5 shares that slot: must not wipe the newer counts
  EXPECT_DOUBLE_EQ(b.requests_in_window(15), 4);
  EXPECT_DOUBLE_EQ(b.requests_in_window(1), 4);  // asked about the past: the latest window
  EXPECT_TRUE(b.TryRetry(2));
  EXPECT_DOUBLE_EQ(b.retries_in_window(15), 1);
  EXPECT_DOUBLE_EQ(b.requests_in_window(25), 0);  // and it still slides forward
}

TEST(RetryBudget, HugeGapsAndOddTimes) {
  RetryBudget b({.ratio = 0.5, .min_per_s = 0, .window_s = 10});
  for (int i = 0; i < 10; ++i) b.OnRequest(1);
  b.OnRequest(1e9);  // a huge gap empties the window
  b.OnRequest(1e9);
  EXPECT_DOUBLE_EQ(b.requests_in_window(1e9), 2);
  EXPECT_EQ(Drain(b, 1e9), 1);
  b.OnRequest(1e300);  // beyond any slice number: no overflow, still counted
  EXPECT_DOUBLE_EQ(b.requests_in_window(1e300), 1);
  b.OnRequest(std::numeric_limits<double>::infinity());
  EXPECT_DOUBLE_EQ(b.requests_in_window(std::numeric_limits<double>::infinity()), 2);
  b.OnRequest(std::nan(""));  // NaN and negative times count as the latest
  b.OnRequest(-5);
  EXPECT_DOUBLE_EQ(b.requests_in_window(1e300), 4);
  RetryBudget fresh({.ratio = 1, .min_per_s = 0, .window_s = 10});
  fresh.OnRequest(-3);  // before the epoch: slice 0
  fresh.OnRequest(std::nan(""));
  EXPECT_DOUBLE_EQ(fresh.requests_in_window(0), 2);
  EXPECT_EQ(Drain(fresh, 0), 2);
}

TEST(RetryBudget, OddOptionsAreMadeSane) {
  RetryBudget zero_window({.ratio = 0, .min_per_s = 1, .window_s = 0});  // acts as 10 s
  EXPECT_EQ(Drain(zero_window, 0), 10);
  RetryBudget nan_window({.ratio = 0, .min_per_s = 1, .window_s = std::nan("")});
  EXPECT_EQ(Drain(nan_window, 0), 10);
  RetryBudget nan_ratio({.ratio = std::nan(""), .min_per_s = std::nan(""), .window_s = 10});
  nan_ratio.OnRequest(0);
  EXPECT_EQ(Drain(nan_ratio, 0), 0);  // a NaN budget must not allow everything
  RetryBudget negative({.ratio = -1, .min_per_s = 1, .window_s = 10});
  for (int i = 0; i < 100; ++i) negative.OnRequest(0);
  EXPECT_EQ(Drain(negative, 0), 10);
}

// ----------------------------------------------------------------------------- backoff

TEST(Backoff, FullJitterWithinTheDoublingBound) {
  std::mt19937_64 rng(1);
  for (int attempt = 1; attempt <= 8; ++attempt) {
    const double bound = std::min(2.0, 0.05 * std::pow(2.0, attempt - 1));
    double lo = bound, hi = 0, sum = 0;
    constexpr int kDraws = 4000;
    for (int i = 0; i < kDraws; ++i) {
      const double d = BackoffDelay(attempt, 0.05, 2.0, rng);
      ASSERT_GE(d, 0);
      ASSERT_LE(d, bound) << attempt;
      lo = std::min(lo, d);
      hi = std::max(hi, d);
      sum += d;
    }
    // Uniform over the whole range (mean bound/2, s.d. of the mean ~0.005 bound).
    EXPECT_LT(lo, bound * 0.01) << attempt;
    EXPECT_GT(hi, bound * 0.99) << attempt;
    EXPECT_NEAR(sum / kDraws, bound / 2, bound * 0.03) << attempt;
  }
}

TEST(Backoff, TheBoundGrowsUntilTheCap) {
  std::mt19937_64 rng(2);
  auto max_of = [&](int attempt) {
    double hi = 0;
    for (int i = 0; i < 1000; ++i) hi = std::max(hi, BackoffDelay(attempt, 0.1, 1.0, rng));
    return hi;
  };
  EXPECT_LE(max_of(1), 0.1);
  EXPECT_GT(max_of(2), 0.1);  // doubled
  EXPECT_LE(max_of(2), 0.2);
  EXPECT_GT(max_of(4), 0.4);
  EXPECT_LE(max_of(4), 0.8);
  EXPECT_GT(max_of(5), 0.8);  // 1.6 capped at 1
  EXPECT_LE(max_of(5), 1.0);
  EXPECT_LE(max_of(50), 1.0);
}

TEST(Backoff, HugeAndOddAttemptsStayFinite) {
  std::mt19937_64 rng(3);
  for (int attempt : {64, 1023, 1024, 1025, 1 << 20, INT_MAX}) {
    const double d = BackoffDelay(attempt, 0.05, 2.0, rng);
    EXPECT_GE(d, 0) << attempt;
    EXPECT_LE(d, 2.0) << attempt;
  }
  for (int attempt : {0, -1, INT_MIN}) {  // act as the first attempt
    for (int i = 0; i < 100; ++i) EXPECT_LE(BackoffDelay(attempt, 0.05, 2.0, rng), 0.05) << attempt;
  }
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(std::isfinite(BackoffDelay(INT_MAX, 1e300, 1e308, rng)));
  EXPECT_TRUE(std::isfinite(BackoffDelay(INT_MAX, 1e300, inf, rng)));
  EXPECT_TRUE(std::isfinite(BackoffDelay(3, inf, inf, rng)));
}

TEST(Backoff, NoPositiveBoundNoDelay) {
  std::mt19937_64 rng(4);
  const double nan = std::nan("");
  EXPECT_EQ(BackoffDelay(3, 0, 2.0, rng), 0);
  EXPECT_EQ(BackoffDelay(3, -1, 2.0, rng), 0);
  EXPECT_EQ(BackoffDelay(3, 0.05, 0, rng), 0);
  EXPECT_EQ(BackoffDelay(3, 0.05, -2, rng), 0);
  EXPECT_EQ(BackoffDelay(3, nan, 2.0, rng), 0);
  EXPECT_EQ(BackoffDelay(3, 0.05, nan, rng), 0);
}

TEST(Backoff, TheSameSeedGivesTheSameDelays) {
  std::mt19937_64 a(99), b(99);
  for (int attempt = 1; attempt < 20; ++attempt) {
    EXPECT_EQ(BackoffDelay(attempt, 0.05, 2.0, a), BackoffDelay(attempt, 0.05, 2.0, b));
  }
}

}  // namespace
}  // namespace inferd::router
