// EngineCore: one step of the serving engine (DESIGN.md §1).
//
//   Step():  proposer               → draft tokens for running requests (speculative decoding)
//            Scheduler.Schedule()   → SchedulerOutput: which requests run, how many new tokens
//                                     each, the drafts to verify, block-table updates
//            ModelRunner            → one flat batch (prefill chunks + decodes + drafts) → logits
//            sampler / verification → per request that has caught up: one token, or the drafts
//                                     the target model agrees with and the token after them
//            OutputProcessor        → detokenize, stop checks, deltas, finish/free
//
// Requests with n > 1 become n sequences that share the prompt's KV blocks through the
// prefix cache. Every accepted request ends exactly once: finished (stop/length),
// aborted, or error — and its blocks are freed in the step (or call) that ends it.
// Thread-safety: none; one thread drives an EngineCore (AsyncEngine puts it on its own thread).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "inferd/engine.h"
#include "inferd/request_output.h"
#include "inferd/sampling_params.h"
#include "inferd/status.h"
#include "kv/kv_cache.h"
#include "kv/kv_cache_manager.h"
#include "backend/backend.h"
#include "ops/batch.h"
#include "model/model.h"
#include "sample/sampler.h"
#include "engine/spec_controller.h"
#include "sched/scheduler.h"
#include "spec/spec_config.h"

namespace xgrammar {
class CompiledGrammar;
}  // namespace xgrammar

namespace inferd {
namespace structured {
class GrammarCache;
class GrammarState;
}  // namespace structured
namespace spec {
class SuffixCache;
}  // namespace spec
class DraftProposer;
class ModelRunner;
struct LogitsRowUse;
class OutputProcessor;
struct Sequence;
struct Group;

class EngineCore {
 public:
  static StatusOr<std::unique_ptr<EngineCore>> Create(std::unique_ptr<LoadedModel> model, const EngineOptions& options);
  // With a given backend instead of CreateBackend's (tests: a fake backend); its kv_shape()
  // sets the cache.
  static StatusOr<std::unique_ptr<EngineCore>> CreateWithBackend(std::unique_ptr<LoadedModel> model,
                                                                 const EngineOptions& options,
                                                                 std::unique_ptr<Backend> backend);
  ~EngineCore();

  // Validates and queues a request (ids must be unique among unfinished requests).
  Status AddRequest(GenerateRequest request);
  // Ends a request as aborted; its blocks are free when this returns. Unknown ids are ignored.
  // The final output (finish_reason "abort") comes from the next Step().
  void AbortRequest(const std::string& request_id);
  StepResult Step();
  bool HasUnfinished() const { return !groups_.empty(); }

  // Teacher-forced logits of one sequence: out[i] = logits after ids[0..i] (ids.size() *
  // vocab_size floats). Must not run while requests are in flight.
  Status ScoreTokens(std::span<const int32_t> ids, float* out);

  const LoadedModel& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *model_->tokenizer; }
  int64_t max_model_len() const { return max_model_len_; }
  int64_t block_size() const { return kv_manager_->block_size(); }
  int64_t num_blocks() const { return kv_manager_->num_blocks(); }
  // Tokens the cache holds with full attention in every layer (vLLM's "KV cache size"):
  // the blocks divided among the KV groups.
  int64_t kv_capacity_tokens() const { return num_blocks() / kv_manager_->num_groups() * block_size(); }
  // Blocks one request of `num_tokens` holds at most, windows counted.
  int64_t blocks_per_request(int64_t num_tokens) const {
    return kv_manager_->BlocksPerRequest(num_tokens, options_.max_num_batched_tokens);
  }
  // Requests of max_model_len tokens the cache holds at once, windows counted.
  double max_concurrency() const {
    return static_cast<double>(num_blocks()) / static_cast<double>(blocks_per_request(max_model_len_));
  }
  const KvCacheShape& kv_shape() const { return backend().kv_shape(); }
  const Backend& backend() const;
  int64_t vocab_size() const { return model_->config.vocab_size; }
  size_t num_running() const { return scheduler_->num_running(); }
  size_t num_waiting() const { return scheduler_->num_waiting(); }
  double kv_usage() const { return kv_manager_->usage(); }
  EngineCounters counters() const;
  const EngineOptions& options() const { return options_; }
  const spec::SpeculativeConfig& speculative() const { return options_.speculative; }
  // The compiled grammar of a structured-outputs constraint (docs/structured-outputs.md), or
  // InvalidArgument naming the problem. Thread-safe: AsyncEngine::AddRequest compiles on the
  // caller's thread so that the engine thread finds it cached.
  StatusOr<std::shared_ptr<const xgrammar::CompiledGrammar>> CompileGrammar(const StructuredOutputsParams& p) const;

 private:
  // One sampling unit of a step: a sequence's sampling row and the rows of its drafts.
  struct SampleUnit;
  EngineCore();
  // Guesses drafts for the running requests that will decode next (spec_token_ids).
  void ProposeDrafts();
  // The sampler's input for the token after s's tokens and `drafts` (a speculative row);
  // stop ids are kept in *stop_ids, the extended history in *history.
  SampleInput MakeSampleInput(const Sequence& s, std::vector<int32_t>* stop_ids,
                              std::span<const int32_t> drafts = {}, std::vector<int32_t>* history = nullptr) const;
  // Draws the unit's tokens in order, stopping at the first that differs from its draft
  // (touches only the unit's sequence: safe in parallel for unconstrained sequences).
  void SampleChain(SampleUnit& u);
  // Appends the unit's tokens through the OutputProcessor; records acceptance.
  void ApplyUnit(SampleUnit& u, StepResult& result);
  // Drops groups that ended this step (their outputs are in the step's result).
  void ForgetFinishedGroups();
  // Step's parts: counters, timestamps and prompt-logprob rows (returns whether every request
  // only decodes); the sampling units and device rows; sampling, verification and outputs;
  // the on/off controller's measurement.
  bool PrepareStep(const SchedulerOutput& sched, std::vector<int64_t>* prompt_rows_from);
  std::vector<SampleUnit> MakeUnits(const SchedulerOutput& sched, std::span<const LogitsRowUse> uses,
                                    std::vector<structured::GrammarState*>* masks);
  void ApplyRows(const SchedulerOutput& sched, std::span<const LogitsRowUse> uses, std::vector<SampleUnit>& units,
                 StepResult& result);
  void ObserveSpeculation(int64_t batch, bool on, int64_t tokens, double seconds);

  std::unique_ptr<LoadedModel> model_;
  EngineOptions options_;
  int64_t max_model_len_ = 0;
  std::unique_ptr<KvCacheManager> kv_manager_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<ModelRunner> runner_;  // the model on its device, with the KV cache
  std::unique_ptr<OutputProcessor> outputs_;
  std::unique_ptr<spec::SuffixCache> suffix_;  // method "suffix"
  std::unique_ptr<DraftProposer> draft_;       // method "draft_model"
  SpecController spec_control_;                // whether speculating pays at this batch
  std::vector<float> logits_;
  std::vector<SampleResult> samples_;  // one per logits row of the step
  // Device sampling (Backend::can_sample): rows sampled there, and their stop-id storage.
  bool device_sampling_ = false;
  std::vector<DeviceSample> device_rows_;
  std::vector<std::vector<int32_t>> device_stop_ids_;
  std::unordered_map<std::string, std::unique_ptr<Group>> groups_;
  std::unordered_map<std::string, Sequence*> sequences_;  // by sequence (scheduler) id
  std::vector<FinishedRequest> pending_finished_;         // aborted between steps
  EngineCounters counters_;
  uint64_t next_request_ = 0;
  mutable std::once_flag grammars_once_;
  mutable std::unique_ptr<structured::GrammarCache> grammars_;  // made on first use
};

// The backend options for `model` under `options` (KV shape from the model's layers); the
// draft model's backend is made the same way.
StatusOr<BackendOptions> MakeBackendOptions(const LoadedModel& model, const EngineOptions& options);

// Logs the start-up summary: architecture, parameters, weight memory, KV capacity.
void LogEngineSummary(const EngineCore& engine);

}  // namespace inferd
