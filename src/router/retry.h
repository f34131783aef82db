// Retries of the router (docs/router.md): a budget so that retries cannot multiply an
// outage (at most ratio x the requests of the last window_s, plus min_per_s x window_s),
// and exponential backoff with full jitter.
// Single-threaded: the router calls it from its I/O thread.
#pragma once

#include <array>
#include <cstdint>
#include <random>

namespace inferd::router {

struct RetryBudgetOptions {
  double ratio = 0.2;
  double min_per_s = 3;
  double window_s = 10;
};

class RetryBudget {
 public:
  explicit RetryBudget(RetryBudgetOptions o = {});
  void OnRequest(double now_s);  // a first attempt was made
  bool TryRetry(double now_s);   // true, and counted, if the budget allows one more retry
  double requests_in_window(double now_s);
  double retries_in_window(double now_s);

 private:
  static constexpr size_t kSlots = 10;  // the window in kSlots time slices
  struct Slot {
    int64_t epoch = -1;  // which slice of time it counts
    double requests = 0, retries = 0;
  };
  Slot& Current(double now_s);
  void Sum(double now_s, double* requests, double* retries);

  RetryBudgetOptions options_;
  double slice_s_;
  std::array<Slot, kSlots> slots_{};
};

// Seconds to wait before retry number `attempt` (1-based): uniform in
// [0, min(max_s, base_s * 2^(attempt-1))].
double BackoffDelay(int attempt, double base_s, double max_s, std::mt19937_64& rng);

}  // namespace inferd::router
