// Whether speculation pays, measured (issue 19: "speculation turns itself down when the batch
// is compute-bound"). With few requests a step is bound by reading the weights, and verifying
// k drafts per request costs little; with many, the forward is compute-bound and draft rows
// cost as much as the tokens they may save (and a draft model's own forwards add more). No
// fixed threshold holds across models, machines and proposers, so the engine measures: it
// runs windows of decode-only steps with speculation on and off, compares tokens emitted per
// second of step time, keeps the faster mode, and re-tries the other one now and then (more
// rarely the larger the measured advantage, and the longer the other mode's steps). Batch
// sizes are bucketed by powers of two, each bucket with its own measurements and decision,
// so a batch that drifts (requests finishing, arriving) does not reset what was learned.
// A probe of speculation where it loses is the expensive case (a compute-bound step costs
// several times a plain one, and a draft model first catches up on every request's tokens),
// so a bucket whose own measurements show speculation losing passes "off" to an unmeasured
// neighbour without a probe: to the next larger bucket whenever it lost (more rows per step
// only make verification dearer), to the next smaller one when it lost by more than 2x (half
// the rows cannot make it twice as cheap). Such a bucket measures its own plain steps and
// probes speculation on the usual schedule. For the same reason a window ends after its
// second step when that step ran at under half the other mode's measured rate (the first is
// not judged: a draft model catches up then on the tokens it missed while off). With a draft
// model the exploration also goes bottom-up (Options::free_probe_buckets).
// Thread-safety: none; the engine thread only. Pure logic: fed observations, no clock.
#pragma once

#include <cstdint>

namespace inferd {

class SpecController {
 public:
  struct Options {
    int window_steps = 4;      // decode-only steps per measurement window (fewer: see above)
    int probe_every = 8;       // windows in the better mode between two probes of the other
    double hysteresis = 0.03;  // the other mode must be this much faster to switch
    // Buckets from this one up (batch >= 2^free_probe_buckets) probe speculation for the first
    // time only once the next smaller bucket measured it winning; below, they probe at once.
    // For a draft model (3: batches of 8 and more), whose first probe at a batch costs a
    // prefill of every running request in the draft; the default leaves every bucket free.
    int free_probe_buckets = 16;
  };
  SpecController() : SpecController(Options{}) {}
  explicit SpecController(const Options& o) : o_(o) {}

  // Whether a step with `batch` running requests may speculate (its bucket's decision).
  bool speculate(int64_t batch) const { return buckets_[BucketOf(batch)].on; }
  // After a decode-only step (no prefill rows) that speculated or not (`on`): `batch`
  // sequences decoded, `tokens` tokens emitted in all, `seconds` the step's wall time
  // (proposals included). A step whose mode is not its bucket's current one is ignored.
  void Observe(int64_t batch, bool on, int64_t tokens, double seconds);

  // For tests and logs: the last measured rates (tokens/s) of each mode at `batch`'s bucket
  // (0: not yet).
  double rate_on(int64_t batch) const { return buckets_[BucketOf(batch)].rate[1]; }
  double rate_off(int64_t batch) const { return buckets_[BucketOf(batch)].rate[0]; }

 private:
  static constexpr int kBuckets = 16;
  struct Bucket {
    double rate[2] = {0, 0};          // per mode (0 off, 1 on): tokens per second
    double step_seconds[2] = {0, 0};  // per mode: mean step time
    bool decided = false;             // both modes measured once (or "off" passed on by a neighbour)
    bool own[2] = {false, false};     // rate[mode] measured in this bucket (not passed on)
    bool best_on = false;
    int windows_in_best = 0;
    // Starts off: a first window without speculation costs little at any batch size, where
    // one with it can cost several times its steps' time when the forward is compute-bound.
    bool on = false;                  // the mode of this bucket's next window
    int steps = 0;                    // the window being measured (in mode `on`)
    int64_t tokens = 0;
    double seconds = 0;
  };
  static int BucketOf(int64_t batch);
  void Decide(int bucket, int measured_mode);
  // Passes bucket `from`'s measured "speculation loses" to its unmeasured neighbours.
  void PassOffToNeighbours(int from);

  Options o_;
  Bucket buckets_[kBuckets];
};

}  // namespace inferd
