// A replica's circuit breaker (docs/router.md): closed → open after failure_threshold
// consecutive failures → half-open once the cool-down has passed, when exactly one request
// (the probe) may go → closed if it succeeds, open again with a doubled cool-down (up to
// max_open_s) if it fails.
//
// Active health checks feed it too: a failed /health while closed or half-open opens it at
// once (a replica that fails /health should get no traffic); a passing one while open makes
// it half-open, so the next request is the probe: at once when only /health had failed (a
// replica starting or restarting), after the cool-down when requests had failed.
// Single-threaded: the router calls it from its I/O thread.
#pragma once

#include <functional>
#include <string_view>

namespace inferd::router {

enum class CircuitState { kClosed, kOpen, kHalfOpen };
std::string_view CircuitStateName(CircuitState s);  // "closed", "open", "half_open"

struct CircuitBreakerOptions {
  int failure_threshold = 5;  // consecutive failures that open a closed circuit
  double open_s = 5;          // first cool-down
  double max_open_s = 60;
};

class CircuitBreaker {
 public:
  explicit CircuitBreaker(CircuitBreakerOptions o = {});

  // May a request go now? Takes the probe slot when half-open.
  bool Allow(double now_s);
  // Would Allow() say yes, without taking anything (for choosing candidates).
  bool WouldAllow(double now_s) const;
  void OnSuccess(double now_s);
  void OnFailure(double now_s);
  // The probe ended without a verdict (cancelled): another probe may go.
  void OnAbandoned();
  void OnHealthCheck(bool ok, double now_s);

  CircuitState state() const { return state_; }
  int consecutive_failures() const { return failures_; }
  double open_until_s() const { return open_until_; }
  void set_on_change(std::function<void(CircuitState from, CircuitState to)> fn) { on_change_ = std::move(fn); }

 private:
  void Open(double now_s, double cool_down_s);
  void Set(CircuitState to);

  CircuitBreakerOptions options_;
  CircuitState state_ = CircuitState::kClosed;
  int failures_ = 0;
  double cool_down_s_;
  double open_until_ = 0;
  bool probe_out_ = false;
  bool opened_by_health_ = false;  // open because /health failed, no request failure since
  std::function<void(CircuitState, CircuitState)> on_change_;
};

}  // namespace inferd::router
