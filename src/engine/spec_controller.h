// Whether speculation pays, measured (issue 19: "speculation turns itself down when the batch
// is compute-bound"). With few requests a step is bound by reading the weights, and verifying
// k drafts per request costs little; with many, the forward is compute-bound and draft rows
// cost as much as the tokens they may save (and a draft model's own forwards add more). No
// fixed threshold holds across models, machines and proposers, so the engine measures: it
// runs windows of decode-only steps with speculation on and off, compares tokens emitted per
// second of step time, keeps the faster mode, and re-tries the other one now and then (more
// rarely the larger the measured advantage, and the longer the other mode's steps). Windows whose batch size differs by more than a
// quarter are not compared (the workload changed).
// Thread-safety: none; the engine thread only. Pure logic: fed observations, no clock.
#pragma once

#include <cstdint>

namespace inferd {

class SpecController {
 public:
  struct Options {
    int window_steps = 4;    // decode-only steps per measurement window
    int probe_every = 8;     // windows in the better mode between two probes of the other
    double hysteresis = 0.03;  // the other mode must be this much faster to switch
  };
  SpecController() : SpecController(Options{}) {}
  explicit SpecController(const Options& o) : o_(o) {}

  // Whether this step may speculate.
  bool speculate() const { return on_; }
  // After a decode-only step (no prefill rows): `batch` sequences decoded, `tokens` tokens
  // emitted in all, `seconds` the step's wall time (proposals included).
  void Observe(int64_t batch, int64_t tokens, double seconds);

  // For tests and logs: the last measured rates (tokens/s) of each mode (0: not yet).
  double rate_on() const { return rate_[1]; }
  double rate_off() const { return rate_[0]; }

 private:
  void EndWindow();

  Options o_;
  // Starts off: a first window without speculation costs little at any batch size, where a
  // first window with it can cost several times its steps' time when the forward is
  // compute-bound (requests still in prefill speculate as soon as they decode, unmeasured).
  bool on_ = false;       // the mode of the current window
  bool probing_ = false;  // the current window tries the mode that is not the best
  bool best_on_ = false;
  int windows_in_best_ = 0;
  int steps_ = 0;
  int64_t tokens_ = 0, batch_sum_ = 0;
  double seconds_ = 0;
  double rate_[2] = {0, 0};     // per mode (0 off, 1 on): tokens per second
  double batch_[2] = {0, 0};    // per mode: mean batch size of that measurement
  double step_seconds_[2] = {0, 0};  // per mode: mean step time of that measurement
};

}  // namespace inferd
