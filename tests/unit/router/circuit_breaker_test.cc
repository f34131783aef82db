// The circuit breaker (router/circuit_breaker.h): closed → open after N consecutive failures,
// half-open after the cool-down with exactly one probe, closed on a successful probe, open
// again with a doubled (capped) cool-down on a failed one; abandoned probes; active health
// checks; the change callback; and a random walk checked against the stated invariants.
#include <gtest/gtest.h>

#include <random>
#include <utility>
#include <vector>

#include "router/circuit_breaker.h"

namespace inferd::router {
namespace {

using S = CircuitState;
using Changes = std::vector<std::pair<S, S>>;

TEST(CircuitBreaker, StateNames) {
  EXPECT_EQ(CircuitStateName(S::kClosed), "closed");
  EXPECT_EQ(CircuitStateName(S::kOpen), "open");
  EXPECT_EQ(CircuitStateName(S::kHalfOpen), "half_open");
}

TEST(CircuitBreaker, ClosedAllowsEverythingAndOpensOnConsecutiveFailuresOnly) {
  CircuitBreaker b({.failure_threshold = 3, .open_s = 5});
  EXPECT_EQ(b.state(), S::kClosed);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(b.Allow(0));
  b.OnFailure(0);
  b.OnFailure(0);
  EXPECT_EQ(b.consecutive_failures(), 2);
  b.OnSuccess(0);  // not consecutive any more
  EXPECT_EQ(b.consecutive_failures(), 0);
  b.OnFailure(0);
  b.OnFailure(0);
  EXPECT_EQ(b.state(), S::kClosed);
  EXPECT_TRUE(b.Allow(0.5));
  b.OnFailure(1);
  EXPECT_EQ(b.state(), S::kOpen);
  EXPECT_EQ(b.consecutive_failures(), 3);
  EXPECT_DOUBLE_EQ(b.open_until_s(), 6);
}

TEST(CircuitBreaker, OpenRefusesUntilTheCoolDownThenLetsExactlyOneProbe) {
  CircuitBreaker b({.failure_threshold = 1, .open_s = 2});
  b.OnFailure(10);
  EXPECT_FALSE(b.WouldAllow(11.999));
  EXPECT_FALSE(b.Allow(11.999));
  EXPECT_EQ(b.state(), S::kOpen);
  // WouldAllow takes nothing: still open, and asking again gives the same answer.
  EXPECT_TRUE(b.WouldAllow(12));
  EXPECT_TRUE(b.WouldAllow(12));
  EXPECT_EQ(b.state(), S::kOpen);
  EXPECT_TRUE(b.Allow(12));  // the probe
  EXPECT_EQ(b.state(), S::kHalfOpen);
  EXPECT_FALSE(b.WouldAllow(12));
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(b.Allow(13 + i));  // however long the probe takes
  EXPECT_EQ(b.state(), S::kHalfOpen);
}

TEST(CircuitBreaker, ASuccessfulProbeCloses) {
  CircuitBreaker b({.failure_threshold = 2, .open_s = 1});
  b.OnFailure(0);
  b.OnFailure(0);
  ASSERT_TRUE(b.Allow(1));
  b.OnSuccess(1.5);
  EXPECT_EQ(b.state(), S::kClosed);
  EXPECT_EQ(b.consecutive_failures(), 0);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.Allow(1.5));
  b.OnFailure(2);  // the count starts over
  EXPECT_EQ(b.state(), S::kClosed);
}

TEST(CircuitBreaker, FailedProbesDoubleTheCoolDownUpToTheCap) {
  CircuitBreaker b({.failure_threshold = 1, .open_s = 1, .max_open_s = 5});
  double now = 0;
  b.OnFailure(now);
  EXPECT_DOUBLE_EQ(b.open_until_s(), 1);
  std::vector<double> cool_downs;
  for (int i = 0; i < 5; ++i) {
    now = b.open_until_s();
    ASSERT_TRUE(b.Allow(now));
    b.OnFailure(now);
    EXPECT_EQ(b.state(), S::kOpen);
    cool_downs.push_back(b.open_until_s() - now);
  }
  EXPECT_EQ(cool_downs, (std::vector<double>{2, 4, 5, 5, 5}));
  EXPECT_EQ(b.consecutive_failures(), 6);
}

TEST(CircuitBreaker, SuccessResetsTheCoolDown) {
  CircuitBreaker b({.failure_threshold = 1, .open_s = 1, .max_open_s = 100});
  b.OnFailure(0);
  for (int i = 0; i < 3; ++i) {  // cool-down now 8
    const double now = b.open_until_s();
    ASSERT_TRUE(b.Allow(now));
    b.OnFailure(now);
  }
  EXPECT_DOUBLE_EQ(b.open_until_s(), 15);  // 1 + 2 + 4 + 8
  ASSERT_TRUE(b.Allow(15));
  b.OnSuccess(15);
  b.OnFailure(20);  // closed again: the first cool-down
  EXPECT_DOUBLE_EQ(b.open_until_s(), 21);
  ASSERT_TRUE(b.Allow(21));
  b.OnFailure(21);  // and the first doubling
  EXPECT_DOUBLE_EQ(b.open_until_s(), 23);
}

TEST(CircuitBreaker, AnAbandonedProbeLetsAnotherGo) {
  CircuitBreaker b({.failure_threshold = 1, .open_s = 2});
  b.OnFailure(0);
  ASSERT_TRUE(b.Allow(2));
  EXPECT_FALSE(b.Allow(3));
  b.OnAbandoned();  // the probe's client went away: no verdict
  EXPECT_EQ(b.state(), S::kHalfOpen);
  EXPECT_TRUE(b.WouldAllow(3));
  EXPECT_TRUE(b.Allow(3));
  EXPECT_FALSE(b.Allow(3));
  b.OnSuccess(4);
  EXPECT_EQ(b.state(), S::kClosed);
}

TEST(CircuitBreaker, AbandonedOutsideHalfOpenChangesNothing) {
  CircuitBreaker b({.failure_threshold = 1, .open_s = 2});
  b.OnAbandoned();
  EXPECT_EQ(b.state(), S::kClosed);
  b.OnFailure(0);
  b.OnAbandoned();
  EXPECT_EQ(b.state(), S::kOpen);
  EXPECT_FALSE(b.Allow(1));
  EXPECT_DOUBLE_EQ(b.open_until_s(), 2);
}

TEST(CircuitBreaker, AnswersWhileOpen) {
  CircuitBreaker b({.failure_threshold = 1, .open_s = 2});
  b.OnFailure(0);
  b.OnFailure(1);  // a request sent before it opened: neither extends nor doubles
  EXPECT_EQ(b.state(), S::kOpen);
  EXPECT_DOUBLE_EQ(b.open_until_s(), 2);
  EXPECT_EQ(b.consecutive_failures(), 1);
  b.OnSuccess(1.5);  // a late success: the replica answers, so it is up
  EXPECT_EQ(b.state(), S::kClosed);
  EXPECT_TRUE(b.Allow(1.5));
}

TEST(CircuitBreaker, OddOptionsAreMadeSane) {
  CircuitBreaker zero({.failure_threshold = 0, .open_s = 3, .max_open_s = 1});
  zero.OnFailure(0);  // a threshold below 1 acts as 1
  EXPECT_EQ(zero.state(), S::kOpen);
  EXPECT_DOUBLE_EQ(zero.open_until_s(), 3);  // a cap below open_s acts as open_s
  ASSERT_TRUE(zero.Allow(3));
  zero.OnFailure(3);
  EXPECT_DOUBLE_EQ(zero.open_until_s(), 6);
  CircuitBreaker negative({.failure_threshold = 1, .open_s = -1, .max_open_s = -1});
  negative.OnFailure(7);
  EXPECT_DOUBLE_EQ(negative.open_until_s(), 7);
  EXPECT_TRUE(negative.Allow(7));  // no cool-down
}

TEST(CircuitBreaker, AFailedHealthCheckOpensAClosedCircuitAtOnce) {
  CircuitBreaker b({.failure_threshold = 5, .open_s = 10});
  b.OnHealthCheck(false, 3);
  EXPECT_EQ(b.state(), S::kOpen);
  EXPECT_DOUBLE_EQ(b.open_until_s(), 13);
  EXPECT_FALSE(b.WouldAllow(4));
  EXPECT_EQ(b.consecutive_failures(), 0);  // no request failed
  // Opened by /health only: passing it again is enough, without the cool-down.
  b.OnHealthCheck(true, 4);
  EXPECT_EQ(b.state(), S::kHalfOpen);
  EXPECT_TRUE(b.Allow(4));  // the next request is the probe
  EXPECT_FALSE(b.Allow(4));
  b.OnSuccess(5);
  EXPECT_EQ(b.state(), S::kClosed);
}

TEST(CircuitBreaker, OpenedByRequestsAPassingHealthCheckWaitsForTheCoolDown) {
  CircuitBreaker b({.failure_threshold = 2, .open_s = 10});
  b.OnFailure(0);
  b.OnFailure(0);
  b.OnHealthCheck(true, 5);
  EXPECT_EQ(b.state(), S::kOpen);
  b.OnHealthCheck(true, 10);
  EXPECT_EQ(b.state(), S::kHalfOpen);
  EXPECT_TRUE(b.Allow(10));
}

TEST(CircuitBreaker, HealthFailingWhileOpenMeansTheReplicaIsDownAsAWhole) {
  // Requests failed, then /health failed too (killed); /health passing again (restarted)
  // makes the next request the probe at once.
  CircuitBreaker b({.failure_threshold = 1, .open_s = 30});
  b.OnFailure(0);
  b.OnHealthCheck(false, 1);
  EXPECT_EQ(b.state(), S::kOpen);
  EXPECT_DOUBLE_EQ(b.open_until_s(), 30);  // not extended
  b.OnHealthCheck(true, 2);
  EXPECT_EQ(b.state(), S::kHalfOpen);
  EXPECT_TRUE(b.Allow(2));
}

TEST(CircuitBreaker, AFailedHealthCheckWhileHalfOpenIsAFailedProbe) {
  CircuitBreaker b({.failure_threshold = 1, .open_s = 2, .max_open_s = 60});
  b.OnFailure(0);
  ASSERT_TRUE(b.Allow(2));
  b.OnHealthCheck(false, 2.5);
  EXPECT_EQ(b.state(), S::kOpen);
  EXPECT_DOUBLE_EQ(b.open_until_s(), 6.5);  // doubled: 4 s
  EXPECT_FALSE(b.Allow(3));
  b.OnFailure(3);  // the probe's own failure arrives while open: nothing more
  EXPECT_DOUBLE_EQ(b.open_until_s(), 6.5);
}

TEST(CircuitBreaker, OtherHealthChecksHaveNoEffect) {
  std::vector<std::pair<S, S>> changes;
  CircuitBreaker b({.failure_threshold = 2, .open_s = 2});
  b.set_on_change([&](S from, S to) { changes.emplace_back(from, to); });
  b.OnFailure(0);
  b.OnHealthCheck(true, 0);  // closed, passing
  EXPECT_EQ(b.state(), S::kClosed);
  EXPECT_EQ(b.consecutive_failures(), 1);
  b.OnFailure(0);
  ASSERT_TRUE(b.Allow(2));
  b.OnHealthCheck(true, 2);  // half-open, passing: the probe is still out
  EXPECT_EQ(b.state(), S::kHalfOpen);
  EXPECT_FALSE(b.Allow(2));
  EXPECT_EQ(changes, (Changes{{S::kClosed, S::kOpen}, {S::kOpen, S::kHalfOpen}}));
}

TEST(CircuitBreaker, TheCallbackSeesEveryChangeOnce) {
  CircuitBreaker b({.failure_threshold = 2, .open_s = 1});
  Changes changes;
  b.set_on_change([&](S from, S to) {
    EXPECT_EQ(b.state(), to);  // called after the change
    changes.emplace_back(from, to);
  });
  b.OnSuccess(0);  // closed already: no change, no call
  b.OnFailure(0);
  b.OnFailure(0);  // → open
  b.OnFailure(0);
  EXPECT_FALSE(b.Allow(0.5));
  ASSERT_TRUE(b.Allow(1));  // → half-open
  b.OnFailure(1);           // → open (2 s)
  ASSERT_TRUE(b.Allow(3));  // → half-open
  b.OnAbandoned();
  ASSERT_TRUE(b.Allow(3));
  b.OnSuccess(3);              // → closed
  b.OnHealthCheck(false, 4);   // → open
  b.OnHealthCheck(true, 4.5);  // → half-open
  b.OnSuccess(5);              // → closed
  EXPECT_EQ(changes, (Changes{{S::kClosed, S::kOpen},
                              {S::kOpen, S::kHalfOpen},
                              {S::kHalfOpen, S::kOpen},
                              {S::kOpen, S::kHalfOpen},
                              {S::kHalfOpen, S::kClosed},
                              {S::kClosed, S::kOpen},
                              {S::kOpen, S::kHalfOpen},
                              {S::kHalfOpen, S::kClosed}}));
}

// A random walk over every operation, checked against the header's invariants: changes are
// reported in order, at most one probe is out in half-open, nothing passes an open circuit
// before open_until_s(), the cool-down stays within [open_s, max_open_s], and closed always
// has fewer consecutive failures than the threshold.
TEST(CircuitBreaker, RandomWalkKeepsTheInvariants) {
  const CircuitBreakerOptions o{.failure_threshold = 3, .open_s = 0.5, .max_open_s = 4};
  CircuitBreaker b(o);
  S last = S::kClosed;
  int calls = 0;
  b.set_on_change([&](S from, S to) {
    EXPECT_EQ(from, last);
    EXPECT_NE(from, to);
    last = to;
    ++calls;
  });
  std::mt19937_64 rng(7);
  double now = 0;
  bool probe_out = false;  // the model: a probe was allowed in half-open and has no verdict yet
  for (int step = 0; step < 20000; ++step) {
    now += std::uniform_real_distribution<double>(0, 0.4)(rng);
    const S before = b.state();
    const double until = b.open_until_s();
    const int op = static_cast<int>(rng() % 6);
    switch (op) {
      case 0: {
        const bool would = b.WouldAllow(now);
        const bool allowed = b.Allow(now);
        ASSERT_EQ(would, allowed);
        if (before == S::kOpen) { ASSERT_EQ(allowed, now >= until); }
        if (before == S::kHalfOpen) { ASSERT_EQ(allowed, !probe_out); }
        if (allowed && b.state() == S::kHalfOpen) probe_out = true;
        break;
      }
      case 1: b.OnSuccess(now); break;
      case 2: b.OnFailure(now); break;
      case 3: b.OnAbandoned(); probe_out = false; break;
      default: b.OnHealthCheck(rng() % 3 != 0, now); break;
    }
    if (b.state() != S::kHalfOpen || (op != 0 && before != S::kHalfOpen)) probe_out = false;
    ASSERT_EQ(b.state(), last);
    if (b.state() == S::kHalfOpen) { ASSERT_EQ(b.WouldAllow(now), !probe_out); }
    if (b.state() == S::kClosed) { ASSERT_LT(b.consecutive_failures(), o.failure_threshold); }
    if (b.state() == S::kOpen && before != S::kOpen) {
      ASSERT_GE(b.open_until_s() - now, o.open_s - 1e-12);
      ASSERT_LE(b.open_until_s() - now, o.max_open_s + 1e-12);
    }
  }
  EXPECT_GT(calls, 100);  // the walk did go round the machine
}

}  // namespace
}  // namespace inferd::router
