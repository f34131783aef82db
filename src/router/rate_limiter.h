// Rate limits of the router (docs/router.md): token buckets per API key and over all keys,
// on requests (per second, with a burst) and on tokens (per minute). A request is charged
// an estimate of its tokens at admission and settled with the real count from its usage.
//
// Buckets refill continuously; a token bucket may go into debt when the real count exceeds
// the estimate, and then refuses until it has refilled. A refused request takes nothing
// from any bucket. Per-key state is bounded by max_keys: a key whose buckets are full is
// the same as a key never seen, so those go first; past that the least recently used goes.
// Keys are ordered by the time their buckets will be full again, so adding a key costs
// O(log max_keys) even when every key is in use (API keys are chosen by clients).
// A request that comes back up to a microsecond before its retry_after_s is on time (the
// rounding of now_s + retry_after_s must not refuse it again).
// Single-threaded: the router calls it from its I/O thread.
#pragma once

#include <cstddef>
#include <list>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace inferd::router {

struct RateLimitOptions {
  double rps = 0;          // per API key: requests per second (0: no limit)
  double burst = 0;        // per key request bucket capacity (0: max(1, rps))
  double tpm = 0;          // per key: tokens per minute (0: no limit)
  double global_rps = 0;   // over all keys
  double global_burst = 0;
  double global_tpm = 0;
  size_t max_keys = 100000;
};

struct RateDecision {
  bool allowed = true;
  double retry_after_s = 0;  // when refused: until every refusing bucket would allow it
  std::string reason;        // when refused: "rate limit exceeded for this API key: 2 requests per second"
};

class TokenBucket {
 public:
  TokenBucket() = default;
  TokenBucket(double capacity, double refill_per_s, double now_s)
      : capacity_(capacity), rate_(refill_per_s), level_(capacity), at_(now_s) {}
  bool enabled() const { return rate_ > 0; }
  double Level(double now_s) const;
  // Seconds until `need` (capped at the capacity) is available; 0 if it is now.
  double Wait(double need, double now_s) const;
  void Take(double amount, double now_s);  // may go negative (debt); never above capacity
  bool Full(double now_s) const { return Level(now_s) >= capacity_; }
  // When it will be full if nothing more is taken (-infinity when disabled).
  double FullAt() const;

 private:
  double capacity_ = 0, rate_ = 0, level_ = 0, at_ = 0;
};

class RateLimiter {
 public:
  explicit RateLimiter(RateLimitOptions options);
  bool enabled() const;
  RateDecision Admit(std::string_view key, double estimated_tokens, double now_s);
  // The real token count is known: the difference to the estimate is charged (or refunded).
  void Settle(std::string_view key, double estimated_tokens, double actual_tokens, double now_s);
  size_t num_keys() const { return keys_.size(); }

 private:
  // (time its buckets are full again, its key in keys_), earliest first.
  using FullOrder = std::set<std::pair<double, const std::string*>>;
  struct KeyState {
    TokenBucket requests, tokens;
    std::list<std::string>::iterator pos;  // in lru_
    FullOrder::iterator full{};            // in by_full_; its second is this key's name
  };
  KeyState* FindOrAdd(std::string_view key, double now_s);
  void Evict(double now_s);
  void Reorder(KeyState* k);  // after its buckets changed

  RateLimitOptions options_;
  TokenBucket global_requests_, global_tokens_;
  std::unordered_map<std::string, KeyState> keys_;
  std::list<std::string> lru_;  // most recent first
  FullOrder by_full_;           // every key of keys_ once
};

}  // namespace inferd::router
