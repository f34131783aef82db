// The canary (canary.h).
#include "router/canary.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace inferd::router {

std::string_view CanaryStateName(CanaryState s) {
  switch (s) {
    case CanaryState::kNone: return "none";
    case CanaryState::kActive: return "active";
    case CanaryState::kRolledBack: return "rolled_back";
    case CanaryState::kPromoted: return "promoted";
  }
  return "?";
}

CanaryController::CanaryController(CanaryOptions o)
    : options_(o), state_(o.weight > 0 ? CanaryState::kActive : CanaryState::kNone) {
  options_.weight = std::clamp(options_.weight, 0.0, 100.0);
  options_.min_requests = std::max(1, options_.min_requests);
  if (!(options_.window_s > 0)) options_.window_s = 60;
}

bool CanaryController::PickCanary(std::mt19937_64& rng) const {
  if (state_ != CanaryState::kActive) return false;
  return std::uniform_real_distribution<double>(0, 100)(rng) < options_.weight;
}

void CanaryController::Prune(std::deque<Sample>& q, double now_s) const {
  while (!q.empty() && (q.front().at < now_s - options_.window_s || q.size() > kMaxSamples)) q.pop_front();
}

void CanaryController::Record(bool canary, bool ok, double ttft_s, double now_s) {
  if (state_ != CanaryState::kActive) return;
  auto& q = canary ? canary_ : stable_;
  q.push_back({now_s, ok, ttft_s});
  Prune(q, now_s);
}

CanaryWindow CanaryController::Window(bool canary, double now_s) const {
  const auto& q = canary ? canary_ : stable_;
  CanaryWindow w;
  std::vector<double> ttfts;
  for (const Sample& s : q) {
    if (s.at < now_s - options_.window_s) continue;  // not pruned yet
    ++w.requests;
    if (!s.ok) ++w.errors;
    if (std::isfinite(s.ttft)) ttfts.push_back(s.ttft);
  }
  w.error_rate = w.requests ? static_cast<double>(w.errors) / w.requests : 0;
  w.ttft_samples = static_cast<int>(ttfts.size());
  if (!ttfts.empty()) {
    const size_t rank = static_cast<size_t>(std::ceil(0.99 * static_cast<double>(ttfts.size())));
    std::nth_element(ttfts.begin(), ttfts.begin() + static_cast<std::ptrdiff_t>(rank - 1), ttfts.end());
    w.ttft_p99_s = ttfts[rank - 1];
  }
  return w;
}

std::optional<std::string> CanaryController::Evaluate(double now_s) {
  if (state_ != CanaryState::kActive) return std::nullopt;
  Prune(canary_, now_s);
  Prune(stable_, now_s);
  const CanaryWindow c = Window(true, now_s), s = Window(false, now_s);
  if (c.requests < options_.min_requests) return std::nullopt;
  std::string why;
  if (c.error_rate > s.error_rate + options_.max_error_rate_delta) {
    why = fmt::format("canary error rate {:.2f} > stable {:.2f} + {:.2f} over {} s ({} canary requests)",
                      c.error_rate, s.error_rate, options_.max_error_rate_delta, options_.window_s, c.requests);
  } else if (c.ttft_samples >= options_.min_requests && s.ttft_samples >= options_.min_requests &&
             c.ttft_p99_s > options_.min_ttft_p99_s && c.ttft_p99_s > options_.max_ttft_p99_ratio * s.ttft_p99_s) {
    why = fmt::format("canary TTFT p99 {:.3f} s > {:.1f} x stable {:.3f} s over {} s ({} canary requests)",
                      c.ttft_p99_s, options_.max_ttft_p99_ratio, s.ttft_p99_s, options_.window_s, c.requests);
  }
  if (why.empty()) return std::nullopt;
  Rollback(why);
  return why;
}

void CanaryController::Promote() {
  if (state_ != CanaryState::kActive) return;
  state_ = CanaryState::kPromoted;
  reason_ = "promoted";
}

void CanaryController::Rollback(std::string_view reason) {
  if (state_ != CanaryState::kActive) return;
  state_ = CanaryState::kRolledBack;
  reason_ = std::string(reason);
}

}  // namespace inferd::router
