#include "engine/spec_controller.h"

#include <algorithm>
#include <cmath>

namespace inferd {

void SpecController::Observe(int64_t batch, int64_t tokens, double seconds) {
  if (batch <= 0 || seconds <= 0) return;
  ++steps_;
  tokens_ += tokens;
  batch_sum_ += batch;
  seconds_ += seconds;
  if (steps_ >= o_.window_steps) EndWindow();
}

void SpecController::EndWindow() {
  const int mode = on_ ? 1 : 0;
  rate_[mode] = static_cast<double>(tokens_) / seconds_;
  batch_[mode] = static_cast<double>(batch_sum_) / steps_;
  step_seconds_[mode] = seconds_ / steps_;
  steps_ = 0;
  tokens_ = batch_sum_ = 0;
  seconds_ = 0;
  const int other = 1 - mode;
  const bool comparable = rate_[other] > 0 && std::fabs(batch_[mode] - batch_[other]) <= 0.25 * batch_[other];
  if (probing_) {
    // A probe decides: switch when the other mode was clearly faster at the same batch.
    probing_ = false;
    const int best = best_on_ ? 1 : 0;
    if (comparable && rate_[mode] > rate_[best] * (1.0 + o_.hysteresis)) best_on_ = on_;
    on_ = best_on_;
    windows_in_best_ = 0;
    return;
  }
  ++windows_in_best_;
  // Probe the other mode: at once when it has no comparable measurement, else every
  // probe_every windows, stretched by the measured advantage (a 2x lead probes 4x less often)
  // and by how much longer the other mode's steps take (so probes cost a share of time, not
  // of steps).
  const double lead = comparable ? rate_[mode] / std::max(rate_[other], 1e-9) : 1.0;
  const double longer = comparable ? std::clamp(step_seconds_[other] / std::max(step_seconds_[mode], 1e-12), 1.0, 16.0) : 1.0;
  const int every =
      comparable ? static_cast<int>(o_.probe_every * std::clamp(lead * lead, 1.0, 8.0) * longer) : 1;
  if (windows_in_best_ >= every) {
    probing_ = true;
    on_ = !best_on_;
  }
}

}  // namespace inferd
