// Offline batch generation over EngineCore (what `inferd generate` and the Python LLM
// class use): add every request, step until all are done, return outputs in input order.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "engine/engine_core.h"

namespace inferd {

class Engine {
 public:
  static StatusOr<std::unique_ptr<Engine>> Create(std::unique_ptr<LoadedModel> model, const EngineOptions& options);

  // Runs every request to completion. Results are in input order; a request that cannot
  // run (prompt too long, invalid parameters) gets its error Status, others still run.
  // `on_finished(index, result)` is called as each request completes (progress reporting).
  // `should_continue()` (optional) is asked once per step; when it returns false, every
  // unfinished request is aborted and ends with finish_reason "abort" (e.g. on Ctrl-C).
  using FinishedFn = std::function<void(size_t, const StatusOr<RequestOutput>&)>;
  using ContinueFn = std::function<bool()>;
  std::vector<StatusOr<RequestOutput>> Generate(std::vector<GenerateRequest> requests,
                                                const FinishedFn& on_finished = {},
                                                const ContinueFn& should_continue = {});

  Status ScoreTokens(std::span<const int32_t> ids, float* out) { return core_->ScoreTokens(ids, out); }

  EngineCore& core() { return *core_; }
  const EngineCore& core() const { return *core_; }
  const LoadedModel& model() const { return core_->model(); }
  const Tokenizer& tokenizer() const { return core_->tokenizer(); }
  int64_t max_model_len() const { return core_->max_model_len(); }
  int64_t kv_capacity_tokens() const { return core_->kv_capacity_tokens(); }
  int64_t vocab_size() const { return core_->vocab_size(); }

 private:
  std::unique_ptr<EngineCore> core_;
};

}  // namespace inferd
