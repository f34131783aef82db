// A replica's circuit breaker (docs/router.md "Health"): passive health from the answers of
// requests, plus the active /health checks.
//
//   closed ──failure_threshold consecutive failures──► open ──cool-down passed, Allow()──►
//   half-open: exactly one request (the probe) may go ──success──► closed
//                                                      └─failure──► open, cool-down doubled
//
// Invariants:
//   - closed: every request is allowed; consecutive_failures() < failure_threshold (only
//     OnSuccess closes, and it resets the count).
//   - open: nothing is allowed before open_until_s(); the cool-down in use is in
//     [open_s, max(open_s, max_open_s)]: open_s after a success, doubled by each failed probe.
//   - half-open: at most one probe is outstanding; it ends with OnSuccess (closed),
//     OnFailure (open again, doubled cool-down) or OnAbandoned (no verdict: another may go).
//   - OnSuccess closes from any state (a replica that answers is up) and resets the failure
//     count and the cool-down to open_s.
//
// Active health checks (OnHealthCheck) feed it too:
//   - a failed /health while closed or half-open opens it at once (a replica that fails
//     /health should get no traffic); from half-open it counts as a failed probe (doubled
//     cool-down);
//   - a passing /health while open makes it half-open, so that the next request is the probe:
//     at once when /health had failed since it opened or opened it (a replica down as a whole,
//     starting or restarting: /health passing again is the evidence the cool-down waits for),
//     only after the cool-down when requests failed while /health passed;
//   - otherwise no effect.
//
// Time is passed in: now_s, seconds on a monotonic clock. on_change is called on each state
// change, after it (the router logs and counts them).
// Thread-safety: none; single-threaded, the router calls it from its I/O thread only.
#pragma once

#include <functional>
#include <string_view>
#include <utility>

namespace inferd::router {

enum class CircuitState { kClosed, kOpen, kHalfOpen };
std::string_view CircuitStateName(CircuitState s);  // "closed", "open", "half_open"

struct CircuitBreakerOptions {
  int failure_threshold = 5;  // consecutive failures that open a closed circuit (< 1 acts as 1)
  double open_s = 5;          // seconds, the first cool-down (< 0 acts as 0); each failed probe
  double max_open_s = 60;     // doubles it, up to this many seconds (< open_s acts as open_s)
};

class CircuitBreaker {
 public:
  explicit CircuitBreaker(CircuitBreakerOptions o = {});

  // May a request go to this backend now? Closed: yes. Open: no until the cool-down has
  // passed, then the state becomes half-open and this call takes the probe slot (true);
  // further calls return false while the probe is outstanding.
  bool Allow(double now_s);
  // Would Allow(now_s) say yes, without taking the probe slot (for choosing candidates).
  bool WouldAllow(double now_s) const;
  // The backend answered (not a 5xx, no connection error): closed, count and cool-down reset.
  void OnSuccess(double now_s);
  // A 5xx or a connection error. Closed: counts; at failure_threshold → open for open_s.
  // Half-open (the probe failed): open again with the doubled cool-down. Open: nothing (an
  // answer to a request sent before it opened).
  void OnFailure(double now_s);
  // The probe ended without a verdict (client went away, a 4xx): another probe may go.
  void OnAbandoned();
  // An active /health check's result; see the header comment.
  void OnHealthCheck(bool ok, double now_s);

  CircuitState state() const { return state_; }
  int consecutive_failures() const { return failures_; }
  double open_until_s() const { return open_until_; }  // seconds; meaningful while open
  // Called on each state change (from, to), after it.
  void set_on_change(std::function<void(CircuitState from, CircuitState to)> fn) { on_change_ = std::move(fn); }

 private:
  void Open(double now_s, double cool_down_s);
  void Set(CircuitState to);

  CircuitBreakerOptions options_;
  CircuitState state_ = CircuitState::kClosed;
  int failures_ = 0;
  double cool_down_s_;      // the cool-down of the current (or next) opening
  double open_until_ = 0;   // seconds
  bool probe_out_ = false;  // half-open only: the probe is outstanding
  bool opened_by_health_ = false;  // open because /health failed, no request failure since
  std::function<void(CircuitState, CircuitState)> on_change_;
};

}  // namespace inferd::router
