#include "engine/spec_controller.h"

#include <algorithm>
#include <bit>

namespace inferd {

int SpecController::BucketOf(int64_t batch) {
  const uint64_t b = static_cast<uint64_t>(std::max<int64_t>(1, batch));
  return std::min(kBuckets - 1, static_cast<int>(std::bit_width(b)) - 1);
}

void SpecController::Observe(int64_t batch, bool on, int64_t tokens, double seconds) {
  if (batch <= 0 || seconds <= 0) return;
  const int bucket = BucketOf(batch);
  Bucket& k = buckets_[bucket];
  if (on != k.on) return;  // decided under another bucket's mode (the batch moved)
  ++k.steps;
  k.tokens += tokens;
  k.seconds += seconds;
  // A window whose mode runs at under half the other mode's measured rate over its second
  // step ends early: one compute-bound speculative step can cost a dozen plain ones. (The
  // first step of a window is not judged: a draft model catches up on the tokens it missed
  // while speculation was off, a one-time cost.)
  const int other = on ? 0 : 1;
  const bool hopeless = k.steps == 2 && k.rate[other] > 0 &&
                        static_cast<double>(tokens) / seconds < 0.5 * k.rate[other];
  if (k.steps < o_.window_steps && !hopeless) return;
  const int mode = on ? 1 : 0;
  k.rate[mode] = static_cast<double>(k.tokens) / k.seconds;
  k.step_seconds[mode] = k.seconds / k.steps;
  k.own[mode] = true;
  k.steps = 0;
  k.tokens = 0;
  k.seconds = 0;
  Decide(bucket, mode);
}

void SpecController::PassOffToNeighbours(int from) {
  const Bucket& f = buckets_[from];
  if (f.best_on || !f.own[0] || !f.own[1]) return;
  const double lead = f.rate[0] / f.rate[1];
  for (const int to : {from + 1, from - 1}) {
    if (to < 0 || to >= kBuckets) continue;
    if (lead <= (to > from ? 1.0 + o_.hysteresis : 2.0)) continue;
    Bucket& k = buckets_[to];
    if (k.decided || k.rate[0] != 0 || k.rate[1] != 0 || k.steps != 0) continue;
    k.rate[0] = f.rate[0];
    k.rate[1] = f.rate[1];
    k.step_seconds[0] = f.step_seconds[0];
    k.step_seconds[1] = f.step_seconds[1];
    k.decided = true;
    k.best_on = false;
    k.windows_in_best = 0;
    k.on = false;
  }
}

void SpecController::Decide(int bucket, int measured_mode) {
  Bucket& k = buckets_[bucket];
  if (k.rate[0] == 0 || k.rate[1] == 0) {  // measure the mode not measured yet
    const bool may_probe = bucket < o_.free_probe_buckets ||
                           (bucket > 0 && buckets_[bucket - 1].decided && buckets_[bucket - 1].best_on);
    k.on = k.rate[1] == 0 && may_probe;
    return;
  }
  if (!k.decided) {
    k.decided = true;
    k.best_on = k.rate[1] > k.rate[0];
    k.windows_in_best = 0;
    k.on = k.best_on;
    PassOffToNeighbours(bucket);
    return;
  }
  const int best = k.best_on ? 1 : 0, other = 1 - best;
  if (measured_mode != best) {
    // A probe of the other mode ended: switch when it was clearly faster.
    if (k.rate[other] > k.rate[best] * (1.0 + o_.hysteresis)) k.best_on = !k.best_on;
    k.windows_in_best = 0;
    k.on = k.best_on;
    PassOffToNeighbours(bucket);
    return;
  }
  ++k.windows_in_best;
  // Probe every probe_every windows, stretched by the measured advantage (a 2x lead probes
  // 4x less often) and by how much longer the other mode's steps are (so probes cost a
  // share of time, not of steps).
  const double lead = k.rate[best] / k.rate[other];
  const double longer = std::clamp(k.step_seconds[other] / k.step_seconds[best], 1.0, 16.0);
  const int every = static_cast<int>(o_.probe_every * std::clamp(lead * lead, 1.0, 8.0) * longer);
  k.on = k.windows_in_best >= every ? !k.best_on : k.best_on;
}

}  // namespace inferd
