// The canary of the router (docs/router.md "Canary"): a share of requests (weight, in percent)
// goes to a canary replica; over a sliding window its error rate and TTFT p99 are compared with
// the stable pool's, and a breach rolls it back (weight 0, state kRolledBack, the reason kept).
// Promote() ends the split the other way: the router moves the canary into the stable pool.
//
// States: kNone (weight 0 from the start: no canary) and kActive (weight > 0) are initial;
// kRolledBack and kPromoted are final. Only kActive picks the canary, records samples and
// gives verdicts; weight() is 0 in every other state.
//
// Verdicts (Evaluate) need min_requests canary requests in the window, then roll back when
//   - the canary's error rate > the stable pool's + max_error_rate_delta, or
//   - both sides have >= min_requests TTFT samples, the canary's TTFT p99 > min_ttft_p99_s
//     (tiny values flap) and > max_ttft_p99_ratio x the stable pool's.
// p99 is the nearest rank over the window's TTFT samples (requests without a first byte have
// none). Memory is bounded: samples are kept per side for window_s seconds and at most
// kMaxSamples each (the oldest dropped first). Time is passed in (now_s, seconds on a
// monotonic clock); a sample is in the window of now_s when its time >= now_s - window_s.
// Thread-safety: none; single-threaded, the router calls it from its I/O thread only.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace inferd::router {

struct CanaryOptions {
  double weight = 0;                   // percent of requests (clamped to 0..100) while active
  double window_s = 60;                // seconds, the sliding window (<= 0 or NaN acts as 60)
  int min_requests = 20;               // canary requests in the window before any verdict (>= 1)
  double max_error_rate_delta = 0.05;  // roll back when canary error rate > stable's + this
  double max_ttft_p99_ratio = 2.0;     // roll back when canary TTFT p99 > this x stable's...
  double min_ttft_p99_s = 0.05;        // ...and > this many seconds
};

enum class CanaryState { kNone, kActive, kRolledBack, kPromoted };
std::string_view CanaryStateName(CanaryState s);  // "none", "active", "rolled_back", "promoted"

// One side's window.
struct CanaryWindow {
  int requests = 0;
  int errors = 0;
  double error_rate = 0;  // errors / requests; 0 without requests
  int ttft_samples = 0;
  double ttft_p99_s = 0;  // seconds, nearest rank; 0 without samples
};

class CanaryController {
 public:
  static constexpr size_t kMaxSamples = 10000;  // per side

  explicit CanaryController(CanaryOptions o);  // kActive when weight > 0, else kNone
  // True with probability weight / 100 while active; false in every other state.
  bool PickCanary(std::mt19937_64& rng) const;
  // One finished request, on the canary or the stable pool. ok = false for a server error or
  // a failed connection; ttft_s (seconds) NaN when no byte came. Ignored unless active.
  void Record(bool canary, bool ok, double ttft_s, double now_s);
  // Compares the windows; on a breach: state → kRolledBack, weight → 0, and returns the reason
  // (e.g. "canary error rate 0.40 > stable 0.00 + 0.05 over 60 s (25 canary requests)").
  // nullopt otherwise, and whenever not active.
  std::optional<std::string> Evaluate(double now_s);
  // Active → kPromoted, weight 0, last_reason() "promoted". No effect in other states.
  void Promote();
  // Manual roll-back: active → kRolledBack with `reason`. No effect in other states.
  void Rollback(std::string_view reason);

  CanaryState state() const { return state_; }
  double weight() const { return state_ == CanaryState::kActive ? options_.weight : 0; }  // percent
  const std::string& last_reason() const { return reason_; }  // "" until a verdict
  CanaryWindow Window(bool canary, double now_s) const;

 private:
  struct Sample {
    double at;    // seconds
    bool ok;
    double ttft;  // seconds, NaN when none
  };
  void Prune(std::deque<Sample>& q, double now_s) const;

  CanaryOptions options_;
  CanaryState state_;
  std::string reason_;
  std::deque<Sample> canary_, stable_;  // oldest first, <= kMaxSamples each
};

}  // namespace inferd::router
