// A replica's circuit breaker (circuit_breaker.h).
#include "router/circuit_breaker.h"

#include <algorithm>

namespace inferd::router {

std::string_view CircuitStateName(CircuitState s) {
  switch (s) {
    case CircuitState::kClosed: return "closed";
    case CircuitState::kOpen: return "open";
    case CircuitState::kHalfOpen: return "half_open";
  }
  return "?";
}

CircuitBreaker::CircuitBreaker(CircuitBreakerOptions o) : options_(o) {
  options_.failure_threshold = std::max(1, options_.failure_threshold);
  options_.open_s = std::max(0.0, options_.open_s);  // NaN → 0 too
  options_.max_open_s = std::max(options_.open_s, options_.max_open_s);
  cool_down_s_ = options_.open_s;
}

void CircuitBreaker::Set(CircuitState to) {
  if (to == state_) return;
  const CircuitState from = state_;
  state_ = to;
  if (on_change_) on_change_(from, to);
}

void CircuitBreaker::Open(double now_s, double cool_down_s) {
  cool_down_s_ = std::min(cool_down_s, options_.max_open_s);
  open_until_ = now_s + cool_down_s_;
  probe_out_ = false;
  Set(CircuitState::kOpen);
}

bool CircuitBreaker::WouldAllow(double now_s) const {
  switch (state_) {
    case CircuitState::kClosed: return true;
    case CircuitState::kOpen: return now_s >= open_until_;
    case CircuitState::kHalfOpen: return !probe_out_;
  }
  return false;
}

bool CircuitBreaker::Allow(double now_s) {
  if (!WouldAllow(now_s)) return false;
  if (state_ == CircuitState::kOpen) Set(CircuitState::kHalfOpen);
  if (state_ == CircuitState::kHalfOpen) probe_out_ = true;
  return true;
}

void CircuitBreaker::OnSuccess(double /*now_s*/) {
  failures_ = 0;
  opened_by_health_ = false;
  cool_down_s_ = options_.open_s;
  probe_out_ = false;
  Set(CircuitState::kClosed);
}

void CircuitBreaker::OnFailure(double now_s) {
  switch (state_) {
    case CircuitState::kClosed:
      if (++failures_ >= options_.failure_threshold) Open(now_s, options_.open_s);
      opened_by_health_ = false;
      break;
    case CircuitState::kHalfOpen:
      ++failures_;
      Open(now_s, cool_down_s_ * 2);
      opened_by_health_ = false;
      break;
    case CircuitState::kOpen:
      break;  // answers of requests sent before it opened
  }
}

void CircuitBreaker::OnAbandoned() { probe_out_ = false; }

void CircuitBreaker::OnHealthCheck(bool ok, double now_s) {
  if (!ok) {
    if (state_ == CircuitState::kClosed) Open(now_s, options_.open_s);
    if (state_ == CircuitState::kHalfOpen) Open(now_s, cool_down_s_ * 2);  // as a failed probe
    // Open now whatever opened it: the replica is down as a whole (killed, restarting), so
    // /health passing again is the evidence a cool-down waits for.
    opened_by_health_ = true;
    return;
  }
  // Opened by failed requests while /health passed: the cool-down runs out first.
  if (state_ == CircuitState::kOpen && (opened_by_health_ || now_s >= open_until_)) {
    probe_out_ = false;
    Set(CircuitState::kHalfOpen);
  }
}

}  // namespace inferd::router
