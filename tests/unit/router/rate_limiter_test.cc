// Rate limits (router/rate_limiter.h): coming back on time, and the bound on key state when
// every key is in use; the basics are in balance_test.cc.
#include <gtest/gtest.h>

#include <string>

#include "router/rate_limiter.h"

namespace inferd::router {
namespace {

// "k<i>" (appended, not "k" + to_string(i): GCC 12 flags that with a false -Wrestrict).
std::string Key(size_t i) {
  std::string k = "k";
  k += std::to_string(i);
  return k;
}

// A client that waits exactly retry_after_s is admitted, whatever rounding now_s + wait has.
TEST(RateLimiter, ComingBackAfterRetryAfterIsOnTime) {
  for (double rps : {0.3, 0.7, 1.0 / 3, 3.0, 7.0, 13.7}) {
    for (double t0 : {0.0, 1234.567, 98765.4321, 3.1e7}) {  // 3.1e7 s: a year of uptime
      RateLimiter r({.rps = rps, .burst = 1});
      double now = t0;
      ASSERT_TRUE(r.Admit("a", 0, now).allowed);
      for (int i = 0; i < 10; ++i) {
        RateDecision d = r.Admit("a", 0, now);
        ASSERT_FALSE(d.allowed) << rps << " " << t0 << " " << i;
        EXPECT_GT(d.retry_after_s, 0);
        now += d.retry_after_s;
        ASSERT_TRUE(r.Admit("a", 0, now).allowed) << rps << " " << t0 << " " << i;
      }
    }
  }
}

TEST(RateLimiter, ComingBackAfterATokenRetryAfterIsOnTime) {
  RateLimiter r({.tpm = 1000, .global_tpm = 1700});
  double now = 98765.4321;
  ASSERT_TRUE(r.Admit("a", 900, now).allowed);
  for (double est : {333.3, 77.7, 999.0, 12.5}) {
    RateDecision d = r.Admit("a", est, now);
    ASSERT_FALSE(d.allowed) << est;
    now += d.retry_after_s;
    EXPECT_TRUE(r.Admit("a", est, now).allowed) << est;
  }
}

// With every key in use, adding one drops the least recently used; keys that were never
// dropped keep their state. 10x max_keys keys go through (the old full scan per new key
// made this quadratic: ~50 s here, against 0.1 s).
TEST(RateLimiter, KeyStateBoundedWhenEveryKeyIsInUse) {
  const size_t max_keys = 20000;
  RateLimiter r({.rps = 1, .burst = 1, .max_keys = max_keys});
  for (size_t i = 0; i < 10 * max_keys; ++i) {
    ASSERT_TRUE(r.Admit(Key(i), 0, 0).allowed);
    ASSERT_LE(r.num_keys(), max_keys);
  }
  EXPECT_EQ(r.num_keys(), max_keys);
  // The last max_keys keys are kept (each still refused); checking them reorders nothing else.
  for (size_t i = 9 * max_keys; i < 10 * max_keys; ++i) {
    ASSERT_FALSE(r.Admit(Key(i), 0, 0).allowed) << i;
  }
  // An older key was dropped, so it starts again with a full bucket.
  EXPECT_TRUE(r.Admit("k0", 0, 0).allowed);
}

// A full key goes before the least recently used one, even when it was used last.
TEST(RateLimiter, AFullKeyIsDroppedBeforeTheLeastRecentlyUsed) {
  RateLimiter r({.rps = 1, .burst = 1, .max_keys = 100});
  ASSERT_TRUE(r.Admit("k0", 0, 0).allowed);  // full again at 1.0
  for (int i = 1; i < 100; ++i) ASSERT_TRUE(r.Admit(Key(i), 0, i * 0.01).allowed);
  ASSERT_FALSE(r.Admit("k0", 0, 0.995).allowed);  // refused: most recently used, state unchanged
  ASSERT_TRUE(r.Admit("x", 0, 1.005).allowed);    // k0 is full: it goes, not k1 (the LRU)
  EXPECT_EQ(r.num_keys(), 100u);
  EXPECT_FALSE(r.Admit("k1", 0, 1.005).allowed);  // kept: full only at 1.01
  // k0 comes back as a new key; nothing is full now, so the LRU (k2) goes.
  EXPECT_TRUE(r.Admit("k0", 0, 1.005).allowed);
  EXPECT_TRUE(r.Admit("k2", 0, 1.005).allowed);
}

// A refund that fills a key's token bucket makes it the first to go.
TEST(RateLimiter, SettleReordersKeysForEviction) {
  RateLimiter r({.tpm = 60, .max_keys = 2});  // 1 token per second
  ASSERT_TRUE(r.Admit("b", 1, 0).allowed);    // 59 left
  ASSERT_TRUE(r.Admit("a", 60, 0).allowed);   // 0 left
  r.Settle("a", 60, 0, 0);                    // all back: "a" is full, "b" (the LRU) is not
  ASSERT_TRUE(r.Admit("c", 1, 0.5).allowed);  // "a" goes
  EXPECT_EQ(r.num_keys(), 2u);
  RateDecision d = r.Admit("b", 60, 0.5);     // "b" kept its 59.5 tokens
  EXPECT_FALSE(d.allowed);
  EXPECT_DOUBLE_EQ(d.retry_after_s, 0.5);
}

// Settling a key that was dropped charges only the global bucket.
TEST(RateLimiter, SettleOfADroppedKeyChargesTheGlobalBucket) {
  RateLimiter r({.tpm = 60, .global_tpm = 120, .max_keys = 1});
  ASSERT_TRUE(r.Admit("a", 10, 0).allowed);
  ASSERT_TRUE(r.Admit("b", 10, 0).allowed);  // "a" (busy, LRU) goes
  EXPECT_EQ(r.num_keys(), 1u);
  r.Settle("a", 10, 100, 0);                 // global: 120 - 20 - 90 = 10
  RateDecision d = r.Admit("b", 20, 0);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "global rate limit exceeded: 120 tokens per minute");
  EXPECT_DOUBLE_EQ(d.retry_after_s, 5);  // 10 more tokens at 2 per second
}

}  // namespace
}  // namespace inferd::router
