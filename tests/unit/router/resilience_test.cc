// Resilience and canary of the router: circuit breaker, retry budget and backoff, canary.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "router/canary.h"
#include "router/circuit_breaker.h"
#include "router/retry.h"

namespace inferd::router {
namespace {

// ----------------------------------------------------------------------------- circuit breaker

TEST(CircuitBreaker, OpensAfterConsecutiveFailuresOnly) {
  CircuitBreaker b({.failure_threshold = 3, .open_s = 5});
  b.OnFailure(0);
  b.OnFailure(0);
  b.OnSuccess(0);  // resets the count
  b.OnFailure(0);
  b.OnFailure(0);
  EXPECT_EQ(b.state(), CircuitState::kClosed);
  b.OnFailure(1);
  EXPECT_EQ(b.state(), CircuitState::kOpen);
  EXPECT_DOUBLE_EQ(b.open_until_s(), 6);
  EXPECT_FALSE(b.WouldAllow(5.9));
  EXPECT_FALSE(b.Allow(5.9));
}

TEST(CircuitBreaker, HalfOpenLetsExactlyOneProbe) {
  CircuitBreaker b({.failure_threshold = 1, .open_s = 2});
  b.OnFailure(0);
  EXPECT_TRUE(b.WouldAllow(2));
  EXPECT_TRUE(b.Allow(2));
  EXPECT_EQ(b.state(), CircuitState::kHalfOpen);
  EXPECT_FALSE(b.WouldAllow(2));
  EXPECT_FALSE(b.Allow(3));
  b.OnAbandoned();  // the probe's client went away: another may go
  EXPECT_TRUE(b.Allow(3));
  b.OnSuccess(3);
  EXPECT_EQ(b.state(), CircuitState::kClosed);
  EXPECT_TRUE(b.Allow(3));
  EXPECT_TRUE(b.Allow(3));
}

TEST(CircuitBreaker, FailedProbesDoubleTheCoolDownUpToTheCap) {
  CircuitBreaker b({.failure_threshold = 1, .open_s = 1, .max_open_s = 5});
  double now = 0;
  b.OnFailure(now);
  std::vector<double> cool_downs;
  for (int i = 0; i < 5; ++i) {
    now = b.open_until_s();
    ASSERT_TRUE(b.Allow(now));
    b.OnFailure(now);
    cool_downs.push_back(b.open_until_s() - now);
  }
  EXPECT_EQ(cool_downs, (std::vector<double>{2, 4, 5, 5, 5}));
  now = b.open_until_s();
  ASSERT_TRUE(b.Allow(now));
  b.OnSuccess(now);
  b.OnFailure(now);  // closed again with the first cool-down
  EXPECT_DOUBLE_EQ(b.open_until_s() - now, 1);
}

TEST(CircuitBreaker, HealthChecks) {
  CircuitBreaker b({.failure_threshold = 5, .open_s = 10});
  std::vector<std::pair<CircuitState, CircuitState>> changes;
  b.set_on_change([&](CircuitState f, CircuitState t) { changes.emplace_back(f, t); });
  b.OnHealthCheck(false, 0);  // a failing /health opens at once
  EXPECT_EQ(b.state(), CircuitState::kOpen);
  b.OnHealthCheck(true, 1);  // opened by /health only: passing it again is enough
  EXPECT_EQ(b.state(), CircuitState::kHalfOpen);
  EXPECT_TRUE(b.Allow(1));
  b.OnSuccess(1);
  // Opened by failed requests: a passing /health waits for the cool-down.
  for (int i = 0; i < 5; ++i) b.OnFailure(2);
  b.OnHealthCheck(true, 3);
  EXPECT_EQ(b.state(), CircuitState::kOpen);
  b.OnHealthCheck(true, 12);
  EXPECT_EQ(b.state(), CircuitState::kHalfOpen);
  using S = CircuitState;
  EXPECT_EQ(changes, (std::vector<std::pair<S, S>>{{S::kClosed, S::kOpen}, {S::kOpen, S::kHalfOpen},
                                                   {S::kHalfOpen, S::kClosed}, {S::kClosed, S::kOpen},
                                                   {S::kOpen, S::kHalfOpen}}));
  EXPECT_EQ(CircuitStateName(S::kHalfOpen), "half_open");
}

// ----------------------------------------------------------------------------- retries

TEST(RetryBudget, FloorWhenIdleRatioUnderLoad) {
  RetryBudget idle({.ratio = 0.2, .min_per_s = 1, .window_s = 10});
  int allowed = 0;
  while (idle.TryRetry(0) && allowed < 100) ++allowed;
  EXPECT_EQ(allowed, 10);  // 1 per second over 10 s
  RetryBudget busy({.ratio = 0.2, .min_per_s = 0, .window_s = 10});
  for (int i = 0; i < 100; ++i) busy.OnRequest(1);
  allowed = 0;
  while (busy.TryRetry(1) && allowed < 100) ++allowed;
  EXPECT_EQ(allowed, 20);
  EXPECT_DOUBLE_EQ(busy.requests_in_window(1), 100);
  EXPECT_DOUBLE_EQ(busy.retries_in_window(1), 20);
}

TEST(RetryBudget, TheWindowSlides) {
  RetryBudget b({.ratio = 0.5, .min_per_s = 0, .window_s = 10});
  for (int i = 0; i < 10; ++i) b.OnRequest(0);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.TryRetry(0));
  EXPECT_FALSE(b.TryRetry(0));
  EXPECT_FALSE(b.TryRetry(9.5));
  EXPECT_DOUBLE_EQ(b.requests_in_window(10.5), 0);  // all of it slid out
  EXPECT_FALSE(b.TryRetry(10.5));                   // no requests, no floor
  b.OnRequest(1e9);                                 // a huge gap
  b.OnRequest(1e9);
  EXPECT_TRUE(b.TryRetry(1e9));
  EXPECT_DOUBLE_EQ(b.requests_in_window(1e9), 2);
}

TEST(Backoff, FullJitterWithinTheDoublingCap) {
  std::mt19937_64 rng(1);
  for (int attempt = 1; attempt <= 8; ++attempt) {
    const double cap = std::min(2.0, 0.05 * std::pow(2.0, attempt - 1));
    double hi = 0;
    for (int i = 0; i < 2000; ++i) {
      const double d = BackoffDelay(attempt, 0.05, 2.0, rng);
      ASSERT_GE(d, 0);
      ASSERT_LE(d, cap);
      hi = std::max(hi, d);
    }
    EXPECT_GT(hi, cap * 0.9) << attempt;  // the range is used
  }
  EXPECT_LE(BackoffDelay(1000000, 0.05, 2.0, rng), 2.0);
  EXPECT_TRUE(std::isfinite(BackoffDelay(1 << 30, 1e300, 1e308, rng)));
  EXPECT_EQ(BackoffDelay(3, 0, 2.0, rng), 0);
}

// ----------------------------------------------------------------------------- canary

CanaryOptions Opts() {
  return {.weight = 10, .window_s = 60, .min_requests = 10, .max_error_rate_delta = 0.05,
          .max_ttft_p99_ratio = 2.0, .min_ttft_p99_s = 0.05};
}

TEST(Canary, HealthyStaysActive) {
  CanaryController c(Opts());
  for (int i = 0; i < 100; ++i) c.Record(false, i % 50 != 0, 0.1, i * 0.1);
  for (int i = 0; i < 30; ++i) c.Record(true, i % 30 != 0, 0.12, i * 0.1);
  EXPECT_FALSE(c.Evaluate(10).has_value());
  EXPECT_EQ(c.state(), CanaryState::kActive);
  EXPECT_EQ(c.weight(), 10);
}

TEST(Canary, ErrorRateBreachRollsBack) {
  CanaryController c(Opts());
  for (int i = 0; i < 50; ++i) c.Record(false, true, 0.1, 1);
  for (int i = 0; i < 9; ++i) c.Record(true, i % 2 == 0, 0.1, 1);
  EXPECT_FALSE(c.Evaluate(1).has_value());  // 9 < min_requests
  c.Record(true, false, 0.1, 1);
  auto why = c.Evaluate(1);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("canary error rate 0.50 > stable 0.00 + 0.05"), std::string::npos) << *why;
  EXPECT_EQ(c.state(), CanaryState::kRolledBack);
  EXPECT_EQ(c.weight(), 0);
  EXPECT_EQ(c.last_reason(), *why);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(c.PickCanary(rng));
}

TEST(Canary, TtftBreachRollsBack) {
  CanaryController c(Opts());
  for (int i = 0; i < 50; ++i) c.Record(false, true, 0.1, 1);
  for (int i = 0; i < 20; ++i) c.Record(true, true, 0.5, 1);
  auto why = c.Evaluate(1);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("TTFT p99 0.500 s"), std::string::npos) << *why;
}

TEST(Canary, TinyOrUnknownTtftsGiveNoVerdict) {
  CanaryController c(Opts());
  for (int i = 0; i < 50; ++i) c.Record(false, true, 0.001, 1);
  for (int i = 0; i < 20; ++i) c.Record(true, true, 0.01, 1);  // 10x, but under the 50 ms floor
  EXPECT_FALSE(c.Evaluate(1).has_value());
  CanaryController d(Opts());
  for (int i = 0; i < 5; ++i) d.Record(false, true, 0.1, 1);  // too few stable samples
  for (int i = 0; i < 20; ++i) d.Record(true, true, 5.0, 1);
  EXPECT_FALSE(d.Evaluate(1).has_value());
  for (int i = 0; i < 20; ++i) d.Record(true, true, std::nan(""), 1);  // no first byte
  EXPECT_EQ(d.Window(true, 1).ttft_samples, 20);
}

TEST(Canary, OldSamplesAreForgotten) {
  CanaryController c(Opts());
  for (int i = 0; i < 20; ++i) c.Record(true, false, 0.1, 0);
  EXPECT_EQ(c.Window(true, 59).requests, 20);
  EXPECT_EQ(c.Window(true, 61).requests, 0);
  EXPECT_FALSE(c.Evaluate(61).has_value());
  for (int i = 0; i < 20000; ++i) c.Record(false, true, 0.1, 100);
  EXPECT_EQ(c.Window(false, 100).requests, static_cast<int>(CanaryController::kMaxSamples));
}

TEST(Canary, PickFollowsTheWeight) {
  CanaryController c({.weight = 5});
  std::mt19937_64 rng(11);
  int n = 0;
  for (int i = 0; i < 10000; ++i) n += c.PickCanary(rng);
  EXPECT_GT(n, 350);
  EXPECT_LT(n, 650);
  CanaryController none({.weight = 0});
  EXPECT_EQ(none.state(), CanaryState::kNone);
  EXPECT_FALSE(none.PickCanary(rng));
}

TEST(Canary, PromoteAndManualRollback) {
  CanaryController c(Opts());
  c.Promote();
  EXPECT_EQ(c.state(), CanaryState::kPromoted);
  EXPECT_EQ(c.weight(), 0);
  c.Rollback("late");  // no effect once promoted
  EXPECT_EQ(c.state(), CanaryState::kPromoted);
  CanaryController d(Opts());
  d.Rollback("by hand");
  EXPECT_EQ(d.state(), CanaryState::kRolledBack);
  EXPECT_EQ(d.last_reason(), "by hand");
  d.Record(true, false, 1, 0);  // ignored after the verdict
  EXPECT_EQ(d.Window(true, 0).requests, 0);
  EXPECT_EQ(CanaryStateName(CanaryState::kRolledBack), "rolled_back");
}

}  // namespace
}  // namespace inferd::router
