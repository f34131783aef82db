#include "sample/rejection_sampler.h"

#include "sample/sampler.h"

#include <algorithm>
#include <cassert>

namespace inferd {
namespace {

// Inverse-CDF draw of index i with probability weight[i] / sum(weight); the last index with
// positive weight when rounding leaves u past the total.
int32_t Draw(std::span<const float> weight, double total, double u) {
  double x = u * total, acc = 0;
  int32_t last = 0;
  for (size_t i = 0; i < weight.size(); ++i) {
    if (weight[i] <= 0) continue;
    last = static_cast<int32_t>(i);
    acc += weight[i];
    if (x < acc) return last;
  }
  return last;
}

}  // namespace

Verification VerifySpeculative(std::span<const int32_t> draft, std::span<const std::span<const float>> target,
                               std::span<const std::span<const float>> draft_probs,
                               const std::function<double()>& uniform) {
  assert(target.size() == draft.size() + 1);
  assert(draft_probs.empty() || draft_probs.size() == draft.size());
  Verification v;
  std::vector<float> residual;
  for (size_t i = 0; i < draft.size(); ++i) {
    const std::span<const float> p = target[i];
    const int32_t d = draft[i];
    const double q_d = draft_probs.empty() ? 1.0 : static_cast<double>(draft_probs[i][static_cast<size_t>(d)]);
    const double p_d = p[static_cast<size_t>(d)];
    // Keep d with probability min(1, p(d) / q(d)): u * q(d) < p(d).
    if (q_d > 0 && uniform() * q_d < p_d) {
      v.tokens.push_back(d);
      ++v.num_accepted;
      continue;
    }
    residual.assign(p.begin(), p.end());
    double total = 0;
    for (size_t t = 0; t < residual.size(); ++t) {
      const double q_t = draft_probs.empty() ? (static_cast<int32_t>(t) == d ? 1.0 : 0.0) : draft_probs[i][t];
      residual[t] = static_cast<float>(std::max(0.0, static_cast<double>(residual[t]) - q_t));
      total += residual[t];
    }
    // p <= q everywhere only when p == q, where rejection cannot happen but for rounding.
    v.tokens.push_back(total > 0 ? Draw(residual, total, uniform()) : Draw(p, 1.0, uniform()));
    return v;
  }
  const std::span<const float> bonus = target[draft.size()];
  double total = 0;
  for (float x : bonus) total += x;
  v.tokens.push_back(Draw(bonus, total, uniform()));
  return v;
}

Verification VerifyGreedy(std::span<const int32_t> draft, std::span<const std::span<const float>> target) {
  assert(target.size() == draft.size() + 1);
  Verification v;
  for (size_t i = 0; i < draft.size(); ++i) {
    const int32_t best = ArgmaxToken(target[i]);
    v.tokens.push_back(best);
    if (best != draft[i]) return v;
    ++v.num_accepted;
  }
  v.tokens.push_back(ArgmaxToken(target[draft.size()]));
  return v;
}

}  // namespace inferd
