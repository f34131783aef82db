// Beam search with vLLM's semantics (vllm/beam_search.py and its LLM.beam_search /
// EngineClient.beam_search), as an algorithm that does not run the model itself: the
// caller runs each step's beams through an engine (synchronously in the Python package,
// asynchronously in the server) and hands back what they produced.
//
//   - every step runs each live beam for one token and asks for its top 2 * beam_width
//     logprobs (plus the chosen token): each entry is a candidate extension;
//   - a candidate ending in EOS (unless ignore_eos) is complete; the other candidates of
//     a prompt are ranked and the best beam_width live on;
//   - the score is cum_logprob / len(tokens) ** length_penalty, tokens holding the prompt
//     and the generated tokens, a final EOS not counted;
//   - after max_tokens steps (or when no beam can grow), complete and live beams are
//     ranked together and the best beam_width are the result.
// Ties keep candidate order (beams in order, token ids ascending), as Python's stable sort.
//
// Thread-safety: none; one owner drives it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine_core.h"
#include "inferd/request_output.h"
#include "inferd/sampling_params.h"

namespace inferd {

struct BeamSearchParams {
  int beam_width = 1;
  int max_tokens = 16;
  bool ignore_eos = false;
  float temperature = 0.0f;
  float length_penalty = 1.0f;
};

struct Beam {
  std::vector<int32_t> tokens;             // the prompt's, then the generated ones
  std::vector<PositionLogprobs> logprobs;  // one per generated token
  double cum_logprob = 0.0;
  std::optional<std::string> finish_reason;  // "stop" (EOS) or "length"
};

// vLLM's beam_search_score.
double BeamScore(const std::vector<int32_t>& tokens, double cum_logprob, int32_t eos_token_id, float length_penalty);

class BeamSearch {
 public:
  // eos_token_id < 0: none. max_model_len bounds a beam's length (prompt included).
  BeamSearch(std::vector<std::vector<int32_t>> prompts, BeamSearchParams params, int32_t eos_token_id,
             int64_t max_model_len);

  // What each step asks of the engine for every beam: one token, 2 * width logprobs.
  SamplingParams StepParams() const;
  // Beams to run now (token ids of each); empty when the search is over. Each call must
  // be followed by Update with one result per returned beam, in order.
  std::vector<std::vector<int32_t>> NextStep();
  // results[i]: the logprobs of the next position of beam i of the last NextStep.
  void Update(const std::vector<PositionLogprobs>& results);
  // The best beam_width beams of each prompt, best first (call once, when NextStep is empty).
  std::vector<std::vector<Beam>> Finish();

  const BeamSearchParams& params() const { return params_; }
  int steps_done() const { return steps_; }

 private:
  struct Instance {
    std::vector<Beam> beams, completed;
  };
  void Rank(std::vector<Beam>& beams) const;

  BeamSearchParams params_;
  int32_t eos_;
  int64_t max_model_len_;
  std::vector<Instance> instances_;
  std::vector<std::pair<size_t, Beam>> live_;  // (instance, beam) of the step in flight
  int steps_ = 0;
};

}  // namespace inferd
