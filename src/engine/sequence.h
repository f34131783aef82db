// The engine's per-request state (internal to src/engine): a Group is one GenerateRequest, a
// Sequence one of its n sampled continuations — the scheduler's unit of work.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine_core.h"
#include "sched/request.h"
#include "structured/grammar_cache.h"
#include "tokenizer/tokenizer.h"

namespace inferd {

struct Group;

struct Sequence {
  Request req;
  Group* group = nullptr;
  int index = 0;
  std::unique_ptr<IncrementalDetokenizer> detok;
  CompletionOutput out;
  size_t emitted_text = 0;  // bytes of out.text already sent as deltas
  std::vector<std::optional<PositionLogprobs>> prompt_logprobs;
  double first_token_time = 0;
  bool finished = false;
  std::unique_ptr<structured::GrammarState> grammar;  // structured outputs: the next-token mask
  // Whether the grammar applies yet: false until GenerateRequest::structured_after appears in
  // the output (the end of the reasoning).
  bool grammar_on = true;
  int64_t spec_fed = 0;  // output tokens the suffix proposer has seen
  // The grammar constrains this sequence's next token.
  bool constrained() const { return grammar && grammar_on; }
};

struct Group {
  GenerateRequest request;
  RequestOutput output;
  std::vector<std::unique_ptr<Sequence>> seqs;
  int remaining = 0;
  bool done = false;
};

}  // namespace inferd
