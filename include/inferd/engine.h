// The engine's public C++ API (issue 19): the one entry that the CLI, the server and the
// Python bindings use. Create an Engine from EngineArgs (load the model, size the KV cache,
// set up speculation), then either
//   - drive it yourself: AddRequest / AbortRequest, and Step() until HasUnfinishedRequests()
//     is false; each step returns the new tokens (deltas) and the requests that ended; or
//   - run a batch to completion: Generate(requests) (what `inferd generate` and LLM.generate do); or
//   - hand it to an AsyncEngine, which steps it on its own thread; requests are added and
//     aborted from any thread and each streams its deltas and exactly one final output.
// Every accepted request ends exactly once: finished (stop/length), aborted, or an error.
//
//   inferd::EngineArgs args;
//   args.load.model = "model.gguf";
//   auto engine = inferd::Engine::Create(args);            // StatusOr<std::unique_ptr<Engine>>
//   inferd::GenerateRequest r;
//   r.request_id = "a";
//   r.prompt_token_ids = (*engine)->tokenizer().Encode("Hello", true);  // or token ids you have
//   r.params.max_tokens = 16;
//   (*engine)->AddRequest(std::move(r));
//   while ((*engine)->HasUnfinishedRequests()) for (auto& d : (*engine)->Step().deltas) use(d.new_text);
//
// The header names only public types; Tokenizer, LoadedModel and EngineCore are in-tree
// internals reached through references for the tools that need them (chat templates,
// memory reports).
// Thread-safety: Engine has none (one thread drives it); AsyncEngine's methods are safe from
// any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "inferd/engine_args.h"
#include "inferd/request_output.h"
#include "inferd/sampling_params.h"
#include "inferd/status.h"

namespace inferd {

class EngineCore;
class Tokenizer;
struct LoadedModel;

// Parses and checks EngineArgs' text fields into its structs (kv_cache_memory into
// engine.kv_cache_bytes, speculative_config into engine.speculative; the GPU compute dtype
// follows load.dtype). Engine::Create calls it; callers call it first for early flag errors.
Status ResolveEngineArgs(EngineArgs& args);

struct GenerateRequest {
  std::string request_id;
  // The prompt text: tokenized by AddRequest (with the model's BOS rule) when
  // prompt_token_ids is empty; otherwise informational (echoed in the output).
  std::string prompt;
  std::vector<int32_t> prompt_token_ids;
  SamplingParams params;
  // Structured outputs start once this text appears in the output (a reasoning parser's end
  // marker, e.g. "</think>"): tokens before it, and the one completing it, are unconstrained.
  // "" = from the first token.
  std::string structured_after;
  int priority = 0;
  double arrival_time = 0;               // 0: now
};

// What one step produced for one sequence (streaming).
struct OutputDelta {
  std::string request_id;
  int index = 0;                         // sample index (n > 1)
  std::vector<int32_t> new_token_ids;
  std::string new_text;                  // never ends inside a UTF-8 character
  std::vector<PositionLogprobs> new_logprobs;  // one per new token when logprobs were asked for
  std::optional<std::string> finish_reason;  // set on the sequence's last delta
};

struct FinishedRequest {
  std::string request_id;
  StatusOr<RequestOutput> output;        // error Status for requests that failed
};

struct StepResult {
  std::vector<OutputDelta> deltas;
  std::vector<FinishedRequest> finished;
  int64_t num_scheduled_tokens = 0;
};

struct EngineCounters {
  int64_t prompt_tokens = 0;        // prompt tokens computed (excluding prefix-cache hits)
  int64_t generation_tokens = 0;
  int64_t num_preemptions = 0;
  int64_t prefix_queries = 0, prefix_hits = 0;  // tokens
  int64_t requests_finished = 0;
  // Speculative decoding (vLLM's spec_decode_* counters): steps that verified drafts per
  // sequence, drafts verified, drafts accepted, and accepted per draft position.
  int64_t spec_num_drafts = 0, spec_num_draft_tokens = 0, spec_num_accepted_tokens = 0;
  std::vector<int64_t> spec_accepted_per_pos;
};

// The engine's load and counters (Engine::Stats, AsyncEngine::Snapshot: metrics, health).
struct EngineSnapshot {
  size_t num_running = 0, num_waiting = 0;
  double kv_usage = 0;
  EngineCounters counters;
  bool alive = true;
};

class Engine {
 public:
  // Loads args.load.model and builds the engine (ResolveEngineArgs first). The model must
  // have a tokenizer (dummy weights: args.load.tokenizer). Logs the start-up summary.
  static StatusOr<std::unique_ptr<Engine>> Create(EngineArgs args);
  // From a model already loaded (tests, tools that load once).
  static StatusOr<std::unique_ptr<Engine>> Create(std::unique_ptr<LoadedModel> model, const EngineOptions& options);
  // Wraps a core built another way (tests: EngineCore::CreateWithBackend with a fake backend).
  static std::unique_ptr<Engine> FromCore(std::unique_ptr<EngineCore> core);
  ~Engine();

  // Validates and queues a request; ids must be unique among unfinished requests.
  Status AddRequest(GenerateRequest request);
  // Ends a request as aborted; its final output comes from the next Step(). Unknown ids are ignored.
  void AbortRequest(const std::string& request_id);
  // One engine step: schedule, run the model, sample (or verify drafts), detokenize.
  StepResult Step();
  bool HasUnfinishedRequests() const;

  // Runs every request to completion. Results are in input order; a request that cannot
  // run (prompt too long, invalid parameters) gets its error Status, others still run.
  // `on_finished(index, result)` is called as each request completes (progress reporting).
  // `should_continue()` (optional) is asked once per step; when it returns false, every
  // unfinished request is aborted and ends with finish_reason "abort" (e.g. on Ctrl-C).
  // Must not be mixed with requests added through AddRequest.
  using FinishedFn = std::function<void(size_t, const StatusOr<RequestOutput>&)>;
  using ContinueFn = std::function<bool()>;
  std::vector<StatusOr<RequestOutput>> Generate(std::vector<GenerateRequest> requests,
                                                const FinishedFn& on_finished = {},
                                                const ContinueFn& should_continue = {});

  // Teacher-forced logits of one sequence: out[i] = logits after ids[0..i] (ids.size() *
  // vocab_size() floats). Must not run while requests are in flight.
  Status ScoreTokens(std::span<const int32_t> ids, float* out);

  // The model's tokenizer: text -> ids (add_special: the BOS the model wants) and back.
  std::vector<int32_t> Encode(std::string_view text, bool add_special = true) const;
  std::string Decode(std::span<const int32_t> ids, bool skip_special = true) const;
  // Fills request.prompt_token_ids from request.prompt when empty (AddRequest does this).
  void TokenizePrompt(GenerateRequest& request) const;

  const LoadedModel& model() const;
  const Tokenizer& tokenizer() const;
  int64_t max_model_len() const;
  int64_t kv_capacity_tokens() const;  // tokens the KV cache holds (vLLM's "KV cache size")
  int64_t vocab_size() const;
  int64_t block_size() const;  // tokens per KV block
  EngineCounters counters() const;
  EngineSnapshot Stats() const;
  // In-tree internals (memory report, benchmarks, the async engine).
  EngineCore& core() { return *core_; }
  const EngineCore& core() const { return *core_; }

 private:
  explicit Engine(std::unique_ptr<EngineCore> core);
  std::unique_ptr<EngineCore> core_;
};

class RequestStream {
 public:
  struct Item {
    std::optional<OutputDelta> delta;                // a streaming delta, or
    std::optional<StatusOr<RequestOutput>> final;    // the final output (always last)
  };
  // Waits up to `timeout` for the next item; false on timeout. After the final item,
  // returns false immediately.
  bool Next(Item* item, std::chrono::milliseconds timeout);
  // Non-blocking variant.
  bool TryNext(Item* item);
  // Called (on the engine thread) whenever items arrive; for event-loop consumers.
  void SetNotify(std::function<void()> fn);
  bool finished() const;
  const std::string& request_id() const { return id_; }

 private:
  friend class AsyncEngine;
  explicit RequestStream(std::string id) : id_(std::move(id)) {}
  void Push(Item item);

  const std::string id_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> items_;
  bool final_pushed_ = false, final_taken_ = false;
  std::function<void()> notify_;
};

class AsyncEngine {
 public:
  // stats_interval_s > 0: logs a stats line that often while there is work.
  explicit AsyncEngine(std::unique_ptr<Engine> engine, double stats_interval_s = 10.0);
  ~AsyncEngine();

  // Validates what can be checked without the engine thread (parameters, lengths) and
  // queues the request. Errors here mean the request was not accepted.
  StatusOr<std::shared_ptr<RequestStream>> AddRequest(GenerateRequest request);
  // Aborts a request; its blocks are free within one step. Unknown ids are ignored.
  void Abort(const std::string& request_id);
  // Stops accepting requests, waits up to `drain` for in-flight requests to finish, aborts
  // the rest (each stream gets a final "abort"), and joins the engine thread.
  void Shutdown(std::chrono::milliseconds drain = std::chrono::milliseconds(0));

  EngineSnapshot Snapshot() const;
  // Requests accepted but not yet running: the engine's waiting queue (as of the last
  // step) plus requests added since.
  size_t NumQueued() const;
  const Engine& engine() const { return *engine_; }  // immutable parts only (model, limits)

 private:
  void Loop();
  void Dispatch(StepResult& result);

  std::unique_ptr<Engine> engine_;
  const double stats_interval_s_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<GenerateRequest, std::shared_ptr<RequestStream>>> inbox_;
  std::vector<std::string> aborts_;
  std::unordered_map<std::string, std::shared_ptr<RequestStream>> streams_;  // engine thread only
  bool accepting_ = true, stop_ = false;
  std::chrono::steady_clock::time_point drain_deadline_{};
  EngineSnapshot snapshot_;
  uint64_t next_id_ = 0;
  std::thread thread_;
};

}  // namespace inferd
