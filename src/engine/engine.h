// The engine core for offline generation: owns the model, the paged KV cache and its
// block pool, and runs batches of requests to completion.
//
// Each step builds one flat batch: every running sequence that is decoding contributes
// one token, then prompts contribute chunks within the token budget
// (max_num_batched_tokens) — chunked prefill — and the sampler runs on the rows that end
// a sequence's known tokens. Admission reserves KV blocks for a request's whole length
// (prompt + max_tokens) so a running request never runs out of blocks; the serving
// engine (scheduler with preemption, prefix caching) builds on this.
// Thread-safety: one thread at a time.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "inferd/request_output.h"
#include "inferd/sampling_params.h"
#include "inferd/status.h"
#include "kv/kv_cache.h"
#include "model/llama.h"
#include "model/model.h"

namespace inferd {

struct EngineOptions {
  int64_t block_size = 16;
  int64_t kv_cache_bytes = 0;          // 0: default (1 GiB, at least one max-length sequence)
  int64_t max_model_len = 0;           // 0: the model's context length
  int64_t max_num_batched_tokens = 512;
  int64_t max_num_seqs = 64;
  uint64_t seed = 0;                   // seeds requests that have no seed of their own
};

struct GenerateRequest {
  std::string request_id;
  std::string prompt;                  // informational (echoed in the output)
  std::vector<int32_t> prompt_token_ids;
  SamplingParams params;
};

class Engine {
 public:
  static StatusOr<std::unique_ptr<Engine>> Create(std::unique_ptr<LoadedModel> model, const EngineOptions& options);

  // Runs every request to completion. Results are in input order; a request that cannot
  // run (prompt too long, invalid parameters) gets its error Status, others still run.
  // `on_finished(index)` is called as each request completes (progress reporting).
  std::vector<StatusOr<RequestOutput>> Generate(std::vector<GenerateRequest> requests,
                                                const std::function<void(size_t)>& on_finished = {});

  // Teacher-forced logits of one sequence: out[i] = logits after ids[0..i]; out has
  // ids.size() * vocab_size floats. The sequence must fit max_model_len and the cache.
  Status ScoreTokens(std::span<const int32_t> ids, float* out);

  const LoadedModel& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *model_->tokenizer; }
  int64_t max_model_len() const { return max_model_len_; }
  int64_t kv_capacity_tokens() const { return kv_->shape().num_blocks * kv_->shape().block_size; }
  int64_t vocab_size() const { return model_->config.vocab_size; }

 private:
  Engine() = default;
  struct Sequence;
  void Step(std::vector<std::unique_ptr<Sequence>>& running);

  std::unique_ptr<LoadedModel> model_;
  EngineOptions options_;
  int64_t max_model_len_ = 0;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<BlockPool> pool_;
  std::unique_ptr<LlamaModel> llama_;
  std::vector<float> logits_;
};

// Logs the start-up summary: architecture, parameters, weight memory, KV capacity.
void LogModelSummary(const Engine& engine);

}  // namespace inferd
