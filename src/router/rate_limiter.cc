// Rate limits (rate_limiter.h).
#include "router/rate_limiter.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace inferd::router {
namespace {

double Sane(double v) { return std::isfinite(v) && v > 0 ? v : 0; }

// A wait this short is none: now_s + retry_after_s may round to a hair before the refill.
constexpr double kOnTimeS = 1e-6;

}  // namespace

double TokenBucket::Level(double now_s) const {
  if (!enabled()) return capacity_;
  const double dt = std::max(0.0, now_s - at_);
  return std::min(capacity_, level_ + dt * rate_);
}

double TokenBucket::Wait(double need, double now_s) const {
  if (!enabled()) return 0;
  const double wait = (std::min(need, capacity_) - Level(now_s)) / rate_;
  return wait > kOnTimeS ? wait : 0;
}

double TokenBucket::FullAt() const {
  if (!enabled()) return -std::numeric_limits<double>::infinity();
  return at_ + std::max(0.0, capacity_ - level_) / rate_;
}

void TokenBucket::Take(double amount, double now_s) {
  if (!enabled()) return;
  level_ = std::min(capacity_, Level(now_s) - amount);
  at_ = std::max(at_, now_s);
}

RateLimiter::RateLimiter(RateLimitOptions o) : options_(o) {
  options_.max_keys = std::max<size_t>(1, options_.max_keys);
  if (Sane(o.global_rps) > 0) {
    global_requests_ = TokenBucket(Sane(o.global_burst) > 0 ? o.global_burst : std::max(1.0, o.global_rps),
                                   o.global_rps, 0);
  }
  if (Sane(o.global_tpm) > 0) global_tokens_ = TokenBucket(o.global_tpm, o.global_tpm / 60, 0);
}

bool RateLimiter::enabled() const {
  return Sane(options_.rps) > 0 || Sane(options_.tpm) > 0 || global_requests_.enabled() || global_tokens_.enabled();
}

RateLimiter::KeyState* RateLimiter::FindOrAdd(std::string_view key, double now_s) {
  auto it = keys_.find(std::string(key));
  if (it != keys_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.pos);
    return &it->second;
  }
  if (keys_.size() >= options_.max_keys) Evict(now_s);
  KeyState st;
  if (Sane(options_.rps) > 0) {
    st.requests = TokenBucket(Sane(options_.burst) > 0 ? options_.burst : std::max(1.0, options_.rps), options_.rps,
                              now_s);
  }
  if (Sane(options_.tpm) > 0) st.tokens = TokenBucket(options_.tpm, options_.tpm / 60, now_s);
  lru_.emplace_front(key);
  st.pos = lru_.begin();
  auto at = keys_.emplace(std::string(key), st).first;
  at->second.full = by_full_.emplace(-std::numeric_limits<double>::infinity(), &at->first).first;
  Reorder(&at->second);
  return &at->second;
}

void RateLimiter::Reorder(KeyState* k) {
  const std::string* name = k->full->second;
  by_full_.erase(k->full);
  k->full = by_full_.emplace(std::max(k->requests.FullAt(), k->tokens.FullAt()), name).first;
}

// Drops one key: the one full for the longest if any is full (it behaves as a new key, so
// nothing is lost), else the least recently used.
void RateLimiter::Evict(double now_s) {
  if (keys_.empty()) return;
  auto it = keys_.find(by_full_.begin()->first <= now_s ? *by_full_.begin()->second : lru_.back());
  by_full_.erase(it->second.full);
  lru_.erase(it->second.pos);
  keys_.erase(it);
}

RateDecision RateLimiter::Admit(std::string_view key, double estimated_tokens, double now_s) {
  RateDecision d;
  if (!enabled()) return d;
  const double est = Sane(estimated_tokens);
  KeyState* k = FindOrAdd(key, now_s);
  struct Check {
    const TokenBucket& bucket;
    double need;
    std::string what;
  };
  const Check checks[] = {
      {k->requests, 1, fmt::format("rate limit exceeded for this API key: {} requests per second", options_.rps)},
      {k->tokens, est, fmt::format("rate limit exceeded for this API key: {} tokens per minute", options_.tpm)},
      {global_requests_, 1, fmt::format("global rate limit exceeded: {} requests per second", options_.global_rps)},
      {global_tokens_, est, fmt::format("global rate limit exceeded: {} tokens per minute", options_.global_tpm)},
  };
  for (const Check& c : checks) {
    const double wait = c.bucket.Wait(c.need, now_s);
    if (wait <= 0) continue;
    if (d.allowed) d.reason = c.what;
    d.allowed = false;
    d.retry_after_s = std::max(d.retry_after_s, wait);
  }
  if (!d.allowed) return d;
  k->requests.Take(1, now_s);
  k->tokens.Take(est, now_s);
  Reorder(k);
  global_requests_.Take(1, now_s);
  global_tokens_.Take(est, now_s);
  return d;
}

void RateLimiter::Settle(std::string_view key, double estimated_tokens, double actual_tokens, double now_s) {
  const double delta = Sane(actual_tokens) - Sane(estimated_tokens);
  if (delta == 0) return;
  auto it = keys_.find(std::string(key));
  if (it != keys_.end()) {
    it->second.tokens.Take(delta, now_s);
    Reorder(&it->second);
  }
  global_tokens_.Take(delta, now_s);
}

}  // namespace inferd::router
