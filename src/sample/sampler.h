// Token sampling for one sequence from one row of logits.
//
// Batch invariance: the result depends only on this row's logits, the request's parameters
// and history, and (seed, step) — never on other rows in the batch. Randomness is
// counter-based: the uniform draw for output position `step` is a pure function of
// (seed, step), so a request that is preempted and recomputed samples the same tokens.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "inferd/sampling_params.h"

namespace inferd {

struct SampleInput {
  const SamplingParams* params = nullptr;
  std::span<const int32_t> prompt_ids;   // for repetition_penalty
  std::span<const int32_t> output_ids;   // generated so far: penalties, min_tokens
  uint64_t seed = 0;                     // effective seed (params.seed or engine-chosen)
  int64_t step = 0;                      // index of the token being sampled
  // Tokens that end generation (EOS/EOG ids and params.stop_token_ids): given logit -inf
  // while output_ids.size() < params.min_tokens.
  std::span<const int32_t> stop_ids;
  // Structured outputs: bit t % 32 of word t / 32 set when token t may be sampled (tokens
  // past the mask may not); empty = every token. Applied first, as vLLM applies the grammar
  // bitmask to the logits before its sampler: disallowed logits become -inf, so the reported
  // logprobs are those of the masked distribution.
  std::span<const uint32_t> allowed_tokens;
};

struct SampleResult {
  int32_t token = -1;
  float logprob = 0.0f;  // of the chosen token under the raw model distribution
  int rank = 0;          // 1-based rank under the raw distribution: 1 + number of tokens
                         // with a strictly larger logit (vLLM's rule; ties share a rank)
  // Top-N (N = params.logprobs, when set) (token, logprob) pairs under the raw distribution,
  // most likely first; ties broken by lower token id.
  std::vector<std::pair<int32_t, float>> top_logprobs;
};

// Samples one token. `logits` ([vocab] fp32) is used as scratch and modified.
// Logprobs are those of the raw model output (log_softmax before penalties, bias and
// temperature), which is vLLM V1's default ("raw_logprobs").
// Order of processing: the allowed-token mask (in place), logit_bias, min_tokens suppression, repetition / presence /
// frequency penalties, then greedy argmax (lowest id on ties) or temperature, top-k,
// top-p, min-p, and an inverse-CDF draw with the counter-based uniform.
// Details: top-k keeps exactly k tokens (equal logits: lower id first); top-p keeps the
// smallest set, most likely first, whose mass reaches top_p (at least one token); min-p
// drops tokens with prob < min_p × max prob; the draw walks the kept tokens in ascending
// id order and returns the first whose cumulative mass exceeds u × total.
// Token ids outside [0, vocab) in bias / history / stop_ids are ignored. NaN logits count
// as -inf. Safe to call from several threads at once (scratch buffers are thread_local).
SampleResult SampleToken(std::span<float> logits, const SampleInput& in);

// The greedy choice: the lowest id among the maximal values (NaN never wins); 0 when every
// value is -inf or NaN.
int32_t ArgmaxToken(std::span<const float> logits);

// The allowed-token mask and the sparse logits processors of SampleToken alone, in the same order (logit_bias,
// min_tokens suppression, repetition / frequency / presence penalties), applied in place.
// For callers that sample elsewhere (a device sampler) and for tests.
void ApplyLogitsProcessors(std::span<float> logits, const SampleInput& in);

// Top-N (token, logprob) of the raw distribution of one row (for prompt_logprobs), plus the
// logprob and rank of `target` (when target >= 0).
struct RowLogprobs {
  std::vector<std::pair<int32_t, float>> top;
  float target_logprob = 0.0f;
  int target_rank = 0;
};
RowLogprobs ComputeRowLogprobs(std::span<const float> logits, int top_n, int32_t target);

// Uniform in [0, 1) from (seed, counter): splitmix64-style hash, 53-bit mantissa.
double CounterUniform(uint64_t seed, uint64_t counter);

}  // namespace inferd
