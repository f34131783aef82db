// A request as the scheduler sees it: token ids and how many of them have K/V in the
// cache. `num_computed_tokens` catches up with `num_tokens()` (prompt + generated); there is
// no separate prefill phase (vLLM V1's model).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "inferd/sampling_params.h"

namespace inferd {

enum class RequestStatus {
  kWaiting,     // never scheduled
  kRunning,
  kPreempted,   // blocks freed; back in the waiting queue, recomputed when resumed
  kFinishedStopped,
  kFinishedLength,
  kFinishedAborted,
  kFinishedError,
};

inline bool IsFinished(RequestStatus s) { return s >= RequestStatus::kFinishedStopped; }

struct Request {
  std::string id;
  std::vector<int32_t> tokens;  // prompt followed by generated tokens
  int64_t num_prompt_tokens = 0;
  SamplingParams params;
  int priority = 0;             // lower runs first (priority policy)
  double arrival_time = 0;
  uint64_t arrival_seq = 0;     // admission order, breaks ties
  uint64_t cache_salt = 0;      // extra key of the prefix-cache hash chain
  bool skip_prefix_cache_hits = false;  // compute every token (prompt_logprobs needs all rows)
  uint64_t seed = 0;            // effective sampling seed
  int64_t max_tokens = 0;       // effective limit on generated tokens

  // Speculative decoding: tokens a proposer guessed to follow `tokens`, to verify in the next
  // step that schedules this request (then cleared). Never part of `tokens` until accepted.
  std::vector<int32_t> spec_token_ids;

  RequestStatus status = RequestStatus::kWaiting;
  int64_t num_computed_tokens = 0;
  int64_t num_cached_tokens = -1;  // prefix-cache hit at first scheduling (-1: not yet)
  int num_preemptions = 0;

  int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }
  int64_t num_output_tokens() const { return num_tokens() - num_prompt_tokens; }
};

}  // namespace inferd
