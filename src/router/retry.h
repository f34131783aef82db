// Retries of the router (docs/router.md "Retries"): a budget so that retries cannot multiply
// an outage, and exponential backoff with full jitter between attempts.
//
// Budget: over the last window_s seconds, retries <= ratio x first attempts + min_per_s x
// window_s (the floor lets an idle router still retry). Counts live in kSlots time slices of
// window_s / kSlots seconds in a fixed ring, so memory is constant; "the last window_s" is
// the current slice and the kSlots - 1 before it, i.e. between window_s - slice and window_s
// seconds of history. Time is passed in (now_s, seconds on a monotonic clock): a now_s earlier
// than the latest seen counts as the latest (time never goes backwards here), negative or NaN
// as 0, and any gap, however large, just empties the window.
// Thread-safety: none; single-threaded, the router calls it from its I/O thread only.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <random>

namespace inferd::router {

struct RetryBudgetOptions {
  double ratio = 0.2;     // retries per first attempt in the window (< 0 or NaN acts as 0)
  double min_per_s = 3;   // retries per second allowed even without requests (likewise)
  double window_s = 10;   // seconds (<= 0 or NaN acts as 10)
};

class RetryBudget {
 public:
  static constexpr size_t kSlots = 10;  // the window in kSlots time slices

  explicit RetryBudget(RetryBudgetOptions o = {});
  void OnRequest(double now_s);  // a first attempt was made
  bool TryRetry(double now_s);   // true, and the retry counted, if the budget allows one more
  double requests_in_window(double now_s) const;
  double retries_in_window(double now_s) const;

 private:
  struct Slot {
    int64_t epoch = -1;  // which slice of time it counts (now_s / slice_s_, floored)
    double requests = 0, retries = 0;
  };
  int64_t Epoch(double now_s) const;
  Slot& Current(double now_s);
  void Sum(double now_s, double* requests, double* retries) const;

  RetryBudgetOptions options_;
  double slice_s_;
  int64_t latest_epoch_ = 0;  // the latest slice written
  std::array<Slot, kSlots> slots_{};
};

// Seconds to wait before retry number `attempt` (1-based; < 1 acts as 1): uniform in
// [0, min(max_s, base_s * 2^(attempt-1))], finite for any attempt; 0 when base_s or max_s is
// not positive (or NaN).
double BackoffDelay(int attempt, double base_s, double max_s, std::mt19937_64& rng);

}  // namespace inferd::router
