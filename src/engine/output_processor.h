// OutputProcessor: everything after a token is drawn (DESIGN.md §1, issue 19's split): append
// it, check stop tokens, stop strings, max_tokens and the grammar's end, detokenize
// incrementally, record logprobs, emit the streaming deltas, and end sequences and requests
// exactly once (their blocks are freed through the scheduler in the call that ends them).
// A speculative step appends several tokens per sequence: Append is called once per token in
// order and says whether the sequence went on, so a stop inside an accepted run truncates it.
// Thread-safety: none; the engine thread only.
#pragma once

#include <cstdint>
#include <string>

#include "engine/engine_core.h"
#include "engine/sequence.h"
#include "sample/sampler.h"
#include "sched/scheduler.h"

namespace inferd {

class OutputProcessor {
 public:
  OutputProcessor(const Tokenizer& tokenizer, Scheduler& scheduler, EngineCounters& counters, int64_t max_model_len)
      : tok_(tokenizer), scheduler_(scheduler), counters_(counters), max_model_len_(max_model_len) {}

  // Appends the drawn token r to s and emits its delta; ends s when it stops. Returns whether
  // s is still running.
  bool Append(Sequence& s, const SampleResult& r, StepResult& result);
  // Ends s (finished, aborted or error) with this finish reason: frees its blocks, emits its
  // final delta and, with its group's last sequence, the group's output.
  void Finish(Sequence& s, RequestStatus status, const char* reason, StepResult& result);

 private:
  void EmitDelta(Sequence& s, std::vector<int32_t> new_ids, bool finished, StepResult& result);
  void CompleteGroupIfDone(Group& g, StepResult& result);

  const Tokenizer& tok_;
  Scheduler& scheduler_;
  EngineCounters& counters_;
  int64_t max_model_len_;
};

// The logprobs entry of one position: the chosen token first, then the top-N.
PositionLogprobs MakePositionLogprobs(const Tokenizer& tok, int32_t chosen, float chosen_lp, int chosen_rank,
                                      const std::vector<std::pair<int32_t, float>>& top);

double NowSeconds();

}  // namespace inferd
