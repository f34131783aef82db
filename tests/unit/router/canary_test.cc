// The canary (router/canary.h): a healthy canary stays active; an error-rate or TTFT-p99 breach
// rolls it back with its reason; no verdict under min_requests, for tiny TTFTs, or without
// enough stable TTFT samples; the window forgets old samples and is bounded; p99 is the
// nearest rank; the split follows the weight; Promote / Rollback and the final states.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <random>
#include <string>

#include "router/canary.h"

namespace inferd::router {
namespace {

constexpr bool kCanary = true, kStable = false;

CanaryOptions Opts() {
  return {.weight = 10, .window_s = 60, .min_requests = 10, .max_error_rate_delta = 0.05,
          .max_ttft_p99_ratio = 2.0, .min_ttft_p99_s = 0.05};
}

// n requests on one side at `now_s`, the first `errors` of them failed.
void RecordN(CanaryController& c, bool canary, int n, int errors, double ttft_s, double now_s) {
  for (int i = 0; i < n; ++i) c.Record(canary, /*ok=*/i >= errors, ttft_s, now_s);
}

TEST(Canary, StateNames) {
  EXPECT_EQ(CanaryStateName(CanaryState::kNone), "none");
  EXPECT_EQ(CanaryStateName(CanaryState::kActive), "active");
  EXPECT_EQ(CanaryStateName(CanaryState::kRolledBack), "rolled_back");
  EXPECT_EQ(CanaryStateName(CanaryState::kPromoted), "promoted");
}

TEST(Canary, AHealthyCanaryStaysActive) {
  CanaryController c(Opts());
  for (int t = 0; t < 300; ++t) {  // 5 minutes: 2% errors on both sides, similar TTFTs
    c.Record(kStable, t % 50 != 0, 0.10 + 0.001 * (t % 7), t);
    c.Record(kCanary, t % 50 != 25, 0.12 + 0.001 * (t % 5), t);
    if (t % 10 == 9) { ASSERT_FALSE(c.Evaluate(t).has_value()) << t; }
  }
  EXPECT_EQ(c.state(), CanaryState::kActive);
  EXPECT_EQ(c.weight(), 10);
  EXPECT_EQ(c.last_reason(), "");
}

TEST(Canary, AnErrorRateBreachRollsBackWithTheReason) {
  CanaryController c(Opts());
  RecordN(c, kStable, 50, 0, 0.1, 1);
  RecordN(c, kCanary, 10, 5, 0.1, 1);
  const std::optional<std::string> why = c.Evaluate(1);
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "canary error rate 0.50 > stable 0.00 + 0.05 over 60 s (10 canary requests)");
  EXPECT_EQ(c.state(), CanaryState::kRolledBack);
  EXPECT_EQ(c.weight(), 0);
  EXPECT_EQ(c.last_reason(), *why);
  EXPECT_FALSE(c.Evaluate(2).has_value());  // one verdict
  std::mt19937_64 rng(3);
  for (int i = 0; i < 1000; ++i) ASSERT_FALSE(c.PickCanary(rng));
}

TEST(Canary, TheStablePoolsOwnErrorsRaiseTheBar) {
  CanaryController same(Opts());
  RecordN(same, kStable, 100, 20, 0.1, 0);  // 0.20
  RecordN(same, kCanary, 20, 4, 0.1, 0);    // 0.20: no worse
  EXPECT_FALSE(same.Evaluate(0).has_value());
  RecordN(same, kCanary, 5, 0, 0.1, 0);  // 4 / 25 = 0.16
  EXPECT_FALSE(same.Evaluate(0).has_value());
  CanaryController worse(Opts());
  RecordN(worse, kStable, 100, 20, 0.1, 0);  // 0.20
  RecordN(worse, kCanary, 20, 6, 0.1, 0);    // 0.30 > 0.25
  const auto why = worse.Evaluate(0);
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "canary error rate 0.30 > stable 0.20 + 0.05 over 60 s (20 canary requests)");
}

TEST(Canary, NoVerdictUnderMinRequests) {
  CanaryController c(Opts());
  RecordN(c, kStable, 100, 0, 0.1, 0);
  RecordN(c, kCanary, 9, 9, 30.0, 0);  // all failed and slow, but only 9
  EXPECT_FALSE(c.Evaluate(0).has_value());
  EXPECT_EQ(c.state(), CanaryState::kActive);
  c.Record(kCanary, false, 30.0, 0);  // the 10th
  EXPECT_TRUE(c.Evaluate(0).has_value());
}

TEST(Canary, ATtftBreachRollsBack) {
  CanaryController c(Opts());
  RecordN(c, kStable, 50, 0, 0.1, 1);
  RecordN(c, kCanary, 20, 0, 0.5, 1);
  const auto why = c.Evaluate(1);
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "canary TTFT p99 0.500 s > 2.0 x stable 0.100 s over 60 s (20 canary requests)");
  EXPECT_EQ(c.state(), CanaryState::kRolledBack);
  EXPECT_EQ(c.last_reason(), *why);
}

TEST(Canary, TtftWithinTheRatioIsFine) {
  CanaryController c(Opts());
  RecordN(c, kStable, 50, 0, 0.1, 1);
  RecordN(c, kCanary, 20, 0, 0.19, 1);  // 1.9x
  EXPECT_FALSE(c.Evaluate(1).has_value());
  // One slow canary request in 21: the nearest-rank p99 of 21 samples is the largest.
  c.Record(kCanary, true, 0.25, 1);
  EXPECT_DOUBLE_EQ(c.Window(kCanary, 1).ttft_p99_s, 0.25);
  EXPECT_TRUE(c.Evaluate(1).has_value());
}

TEST(Canary, NoTtftVerdictUnderTheFloorOrWithoutEnoughSamples) {
  CanaryController tiny(Opts());
  RecordN(tiny, kStable, 50, 0, 0.001, 1);
  RecordN(tiny, kCanary, 20, 0, 0.01, 1);  // 10x, but under the 50 ms floor
  EXPECT_FALSE(tiny.Evaluate(1).has_value());
  CanaryController few_stable(Opts());
  RecordN(few_stable, kStable, 9, 0, 0.1, 1);  // 9 < min_requests stable TTFT samples
  RecordN(few_stable, kStable, 50, 0, std::nan(""), 1);  // requests without a first byte
  RecordN(few_stable, kCanary, 20, 0, 5.0, 1);
  EXPECT_FALSE(few_stable.Evaluate(1).has_value());
  few_stable.Record(kStable, true, 0.1, 1);  // the 10th stable sample: now it counts
  EXPECT_TRUE(few_stable.Evaluate(1).has_value());
  CanaryController few_canary(Opts());
  RecordN(few_canary, kStable, 50, 0, 0.1, 1);
  RecordN(few_canary, kCanary, 9, 0, 5.0, 1);
  RecordN(few_canary, kCanary, 20, 0, std::nan(""), 1);  // ok, but no TTFT (e.g. not streamed)
  EXPECT_FALSE(few_canary.Evaluate(1).has_value());
}

TEST(Canary, TheWindowCountsRequestsErrorsAndTtftSamples) {
  CanaryController c(Opts());
  RecordN(c, kCanary, 8, 2, 0.2, 5);
  RecordN(c, kCanary, 2, 2, std::nan(""), 5);
  const CanaryWindow w = c.Window(kCanary, 5);
  EXPECT_EQ(w.requests, 10);
  EXPECT_EQ(w.errors, 4);
  EXPECT_DOUBLE_EQ(w.error_rate, 0.4);
  EXPECT_EQ(w.ttft_samples, 8);
  EXPECT_DOUBLE_EQ(w.ttft_p99_s, 0.2);
  const CanaryWindow s = c.Window(kStable, 5);  // the other side is apart
  EXPECT_EQ(s.requests, 0);
  EXPECT_EQ(s.error_rate, 0);
  EXPECT_EQ(s.ttft_samples, 0);
  EXPECT_EQ(s.ttft_p99_s, 0);
}

TEST(Canary, P99IsTheNearestRank) {
  auto p99 = [](int n) {
    CanaryController c(Opts());
    for (int i = n; i >= 1; --i) c.Record(kStable, true, i / 1000.0, 0);  // 1..n ms, any order
    return c.Window(kStable, 0).ttft_p99_s * 1000;
  };
  EXPECT_NEAR(p99(1), 1, 1e-9);
  EXPECT_NEAR(p99(10), 10, 1e-9);     // rank ceil(9.9) = 10
  EXPECT_NEAR(p99(100), 99, 1e-9);    // rank 99
  EXPECT_NEAR(p99(101), 100, 1e-9);   // rank ceil(99.99) = 100
  EXPECT_NEAR(p99(1000), 990, 1e-9);  // rank 990
}

TEST(Canary, SamplesOlderThanTheWindowAreForgotten) {
  CanaryController c(Opts());
  RecordN(c, kCanary, 20, 20, 0.1, 0);  // a bad minute long ago...
  const CanaryController& view = c;     // Window is a const view
  EXPECT_EQ(view.Window(kCanary, 60).requests, 20);  // a sample at exactly now - window is in
  EXPECT_EQ(view.Window(kCanary, 60.001).requests, 0);
  EXPECT_FALSE(c.Evaluate(61).has_value());  // ...gives no verdict now
  RecordN(c, kStable, 30, 0, 0.1, 61);
  RecordN(c, kCanary, 30, 1, 0.1, 90);
  EXPECT_EQ(c.Window(kCanary, 90).requests, 30);
  EXPECT_FALSE(c.Evaluate(90).has_value());
  EXPECT_EQ(c.Window(kStable, 121).requests, 30);
  EXPECT_EQ(c.Window(kStable, 121.5).requests, 0);
  EXPECT_EQ(c.state(), CanaryState::kActive);
}

TEST(Canary, TheWindowIsBoundedPerSide) {
  CanaryController c(Opts());
  const int n = static_cast<int>(CanaryController::kMaxSamples);
  RecordN(c, kStable, n, n, 0.1, 0);  // the oldest go first: these failures...
  RecordN(c, kStable, n, 0, 0.1, 1);  // ...are all pushed out by these successes
  const CanaryWindow w = c.Window(kStable, 1);
  EXPECT_EQ(w.requests, n);
  EXPECT_EQ(w.errors, 0);
  EXPECT_EQ(c.Window(kCanary, 1).requests, 0);
}

TEST(Canary, PickFollowsTheWeight) {
  std::mt19937_64 rng(11);
  auto picks = [&](double weight) {
    CanaryController c({.weight = weight});
    int n = 0;
    for (int i = 0; i < 10000; ++i) n += c.PickCanary(rng);
    return n;
  };
  const int five = picks(5);  // binomial: mean 500, s.d. 22
  EXPECT_GT(five, 350);
  EXPECT_LT(five, 650);
  const int half = picks(50);  // mean 5000, s.d. 50
  EXPECT_GT(half, 4700);
  EXPECT_LT(half, 5300);
  EXPECT_EQ(picks(100), 10000);
  EXPECT_EQ(picks(250), 10000);  // clamped to 100
}

TEST(Canary, WeightZeroIsNoCanary) {
  CanaryController c({.weight = 0});
  EXPECT_EQ(c.state(), CanaryState::kNone);
  EXPECT_EQ(c.weight(), 0);
  std::mt19937_64 rng(5);
  for (int i = 0; i < 1000; ++i) ASSERT_FALSE(c.PickCanary(rng));
  RecordN(c, kCanary, 50, 50, 1.0, 0);
  EXPECT_EQ(c.Window(kCanary, 0).requests, 0);
  EXPECT_FALSE(c.Evaluate(0).has_value());
  c.Promote();
  c.Rollback("no");
  EXPECT_EQ(c.state(), CanaryState::kNone);
  CanaryController negative({.weight = -5});
  EXPECT_EQ(negative.state(), CanaryState::kNone);
  CanaryController nan({.weight = std::nan("")});
  EXPECT_EQ(nan.state(), CanaryState::kNone);
  EXPECT_FALSE(nan.PickCanary(rng));
}

TEST(Canary, PromoteIsFinal) {
  CanaryController c(Opts());
  RecordN(c, kCanary, 20, 20, 0.1, 0);
  c.Promote();
  EXPECT_EQ(c.state(), CanaryState::kPromoted);
  EXPECT_EQ(c.weight(), 0);
  EXPECT_EQ(c.last_reason(), "promoted");
  EXPECT_FALSE(c.Evaluate(0).has_value());  // no verdict once promoted
  c.Rollback("late");
  EXPECT_EQ(c.state(), CanaryState::kPromoted);
  std::mt19937_64 rng(6);
  EXPECT_FALSE(c.PickCanary(rng));
}

TEST(Canary, ManualRollbackIsFinalAndLaterRecordsAreIgnored) {
  CanaryController c(Opts());
  RecordN(c, kStable, 20, 0, 0.1, 0);
  c.Rollback("rolled back by request");
  EXPECT_EQ(c.state(), CanaryState::kRolledBack);
  EXPECT_EQ(c.weight(), 0);
  EXPECT_EQ(c.last_reason(), "rolled back by request");
  RecordN(c, kCanary, 50, 50, 9.0, 1);  // ignored after the verdict
  EXPECT_EQ(c.Window(kCanary, 1).requests, 0);
  EXPECT_EQ(c.Window(kStable, 1).requests, 20);  // what came before stays visible
  EXPECT_FALSE(c.Evaluate(1).has_value());
  EXPECT_EQ(c.last_reason(), "rolled back by request");
  c.Promote();
  c.Rollback("again");
  EXPECT_EQ(c.state(), CanaryState::kRolledBack);
  EXPECT_EQ(c.last_reason(), "rolled back by request");
}

}  // namespace
}  // namespace inferd::router
