// Retry budget and backoff (retry.h).
#include "router/retry.h"

#include <algorithm>
#include <cmath>

namespace inferd::router {

RetryBudget::RetryBudget(RetryBudgetOptions o) : options_(o) {
  if (!(options_.window_s > 0)) options_.window_s = 10;
  slice_s_ = options_.window_s / kSlots;
}

RetryBudget::Slot& RetryBudget::Current(double now_s) {
  const auto epoch = static_cast<int64_t>(std::floor(std::max(0.0, now_s) / slice_s_));
  Slot& s = slots_[static_cast<size_t>(epoch) % kSlots];
  if (s.epoch != epoch) s = Slot{epoch, 0, 0};
  return s;
}

void RetryBudget::Sum(double now_s, double* requests, double* retries) {
  const auto epoch = static_cast<int64_t>(std::floor(std::max(0.0, now_s) / slice_s_));
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

double RetryBudget::requests_in_window(double now_s) {
  double requests, retries;
  Sum(now_s, &requests, &retries);
  return requests;
}

double RetryBudget::retries_in_window(double now_s) {
  double requests, retries;
  Sum(now_s, &requests, &retries);
  return retries;
}

double BackoffDelay(int attempt, double base_s, double max_s, std::mt19937_64& rng) {
  const int doublings = std::clamp(attempt - 1, 0, 60);
  const double cap = std::min(max_s, base_s * std::ldexp(1.0, doublings));
  if (!(cap > 0)) return 0;
  return std::uniform_real_distribution<double>(0, cap)(rng);
}

}  // namespace inferd::router
