// BeamRun: one use_beam_search request run over the AsyncEngine. Each step sends every
// live beam to the engine as a one-token request (BeamSearch::StepParams) and, when all
// of them have finished, hands their logprobs to the BeamSearch and starts the next step.
// Every prompt of the request is searched at once.
//
// Threading: created, started, aborted and completed on the server's I/O thread; engine
// notifications arrive on the engine thread and are posted back through `post`.
// Lifetime: shared; the engine callbacks hold weak references, so a run whose owner is
// gone simply stops.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "inferd/engine.h"
#include "engine/beam_search.h"

namespace inferd::server {

class BeamRun : public std::enable_shared_from_this<BeamRun> {
 public:
  using Post = std::function<void(std::function<void()>)>;
  // One RequestOutput per prompt with beam_width outputs (best first): the generated text
  // (decoded without a final EOS, as vLLM does), tokens, cumulative logprob and finish
  // reason; or the error that ended the run. Aborted runs report finish_reason "abort".
  using Done = std::function<void(StatusOr<std::vector<RequestOutput>>)>;

  BeamRun(AsyncEngine& engine, Post post, std::string id_prefix, std::vector<std::vector<int32_t>> prompts,
          BeamSearchParams params, int priority, Done done);

  // Starts the first step; `done` may be called from within (e.g. the engine refuses).
  void Start();
  // Stops the run: the step in flight is aborted and `done` gets "abort" outputs.
  void Abort();

 private:
  void Step();
  void Collect();
  void Complete(StatusOr<std::vector<RequestOutput>> result);

  AsyncEngine& engine_;
  Post post_;
  std::string id_prefix_;
  std::vector<std::vector<int32_t>> prompts_;
  BeamSearch search_;
  int priority_;
  Done done_;
  const Tokenizer& tokenizer_;
  std::vector<std::shared_ptr<RequestStream>> streams_;  // the step in flight
  std::vector<PositionLogprobs> results_;
  size_t num_final_ = 0;
  bool aborted_ = false, finished_ = false;
  Status error_;
};

}  // namespace inferd::server
