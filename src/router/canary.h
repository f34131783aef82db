// The canary of the router (docs/router.md): a share of requests (weight, in percent) goes
// to a canary replica; over a sliding window its error rate and TTFT p99 are compared with
// the stable pool's, and a breach rolls it back (weight 0, state kRolledBack, the reason
// kept). Promote() ends the split the other way: the router moves the canary into the
// stable pool.
//
// Verdicts need min_requests canary requests in the window. The TTFT comparison needs
// min_requests TTFT samples on both sides and a canary p99 above min_ttft_p99_s (tiny
// values flap). Samples are kept per side for window_s, at most kMaxSamples each.
// Single-threaded: the router calls it from its I/O thread.
#pragma once

#include <deque>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace inferd::router {

struct CanaryOptions {
  double weight = 0;                   // percent (0..100) while active; 0: no canary
  double window_s = 60;
  int min_requests = 20;
  double max_error_rate_delta = 0.05;  // roll back when canary error rate > stable's + this
  double max_ttft_p99_ratio = 2.0;     // roll back when canary TTFT p99 > this x stable's
  double min_ttft_p99_s = 0.05;
};

enum class CanaryState { kNone, kActive, kRolledBack, kPromoted };
std::string_view CanaryStateName(CanaryState s);  // "none", "active", "rolled_back", "promoted"

struct CanaryWindow {
  int requests = 0;
  int errors = 0;
  double error_rate = 0;
  int ttft_samples = 0;
  double ttft_p99_s = 0;  // nearest rank
};

class CanaryController {
 public:
  static constexpr size_t kMaxSamples = 10000;

  explicit CanaryController(CanaryOptions o);
  bool PickCanary(std::mt19937_64& rng) const;  // true with probability weight / 100 while active
  // One finished request; ok = false for a server error or a failed connection; ttft_s NaN
  // when no byte came.
  void Record(bool canary, bool ok, double ttft_s, double now_s);
  std::optional<std::string> Evaluate(double now_s);  // the rollback reason on a breach
  void Promote();
  void Rollback(std::string_view reason);

  CanaryState state() const { return state_; }
  double weight() const { return state_ == CanaryState::kActive ? options_.weight : 0; }
  const std::string& last_reason() const { return reason_; }
  CanaryWindow Window(bool canary, double now_s);

 private:
  struct Sample {
    double at;
    bool ok;
    double ttft;
  };
  void Prune(std::deque<Sample>& q, double now_s) const;

  CanaryOptions options_;
  CanaryState state_;
  std::string reason_;
  std::deque<Sample> canary_, stable_;
};

}  // namespace inferd::router
