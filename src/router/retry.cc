// Retry budget and backoff (retry.h).
#include "router/retry.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace inferd::router {

RetryBudget::RetryBudget(RetryBudgetOptions o) : options_(o) {
  if (!(options_.window_s > 0) || !std::isfinite(options_.window_s)) options_.window_s = 10;
  options_.ratio = std::max(0.0, options_.ratio);  // NaN → 0: a NaN budget would allow anything
  options_.min_per_s = std::max(0.0, options_.min_per_s);
  slice_s_ = options_.window_s / kSlots;
}

int64_t RetryBudget::Epoch(double now_s) const {
  // Up to 2^52 slices (past it doubles lose integer precision); NaN and negatives give 0,
  // +inf the last slice. Never earlier than the latest slice written.
  constexpr double kMaxEpoch = 4503599627370496.0;  // 2^52
  const double e = std::floor(now_s / slice_s_);
  const int64_t epoch = e > 0 ? static_cast<int64_t>(std::min(e, kMaxEpoch)) : 0;
  return std::max(epoch, latest_epoch_);
}

RetryBudget::Slot& RetryBudget::Current(double now_s) {
  const int64_t epoch = Epoch(now_s);
  latest_epoch_ = epoch;
  Slot& s = slots_[static_cast<size_t>(epoch) % kSlots];
  if (s.epoch != epoch) s = Slot{epoch, 0, 0};
  return s;
}

void RetryBudget::Sum(double now_s, double* requests, double* retries) const {
  const int64_t epoch = Epoch(now_s);
  *requests = *retries = 0;
  for (const Slot& s : slots_) {
    if (s.epoch > epoch - static_cast<int64_t>(kSlots) && s.epoch <= epoch) {
      *requests += s.requests;
      *retries += s.retries;
    }
  }
}

void RetryBudget::OnRequest(double now_s) { Current(now_s).requests += 1; }

bool RetryBudget::TryRetry(double now_s) {
  double requests, retries;
  Sum(now_s, &requests, &retries);
  if (retries + 1 > options_.ratio * requests + options_.min_per_s * options_.window_s) return false;
  Current(now_s).retries += 1;
  return true;
}

double RetryBudget::requests_in_window(double now_s) const {
  double requests, retries;
  Sum(now_s, &requests, &retries);
  return requests;
}

double RetryBudget::retries_in_window(double now_s) const {
  double requests, retries;
  Sum(now_s, &requests, &retries);
  return retries;
}

double BackoffDelay(int attempt, double base_s, double max_s, std::mt19937_64& rng) {
  const int doublings = std::clamp(attempt, 1, 1024) - 1;  // 2^1023: the largest finite power
  if (!(base_s > 0) || !(max_s > 0)) return 0;  // NaN too
  const double cap = std::min({max_s, base_s * std::ldexp(1.0, doublings), std::numeric_limits<double>::max()});
  return std::uniform_real_distribution<double>(0, cap)(rng);
}

}  // namespace inferd::router
