#include "inferd/engine.h"

#include <fmt/format.h>

#include <unordered_map>

#include "engine/engine_core.h"
#include "model/model.h"
#include "spec/spec_config.h"
#include "tokenizer/tokenizer.h"
#include "util/bytes.h"
#include "util/thread_pool.h"

namespace inferd {

Status ResolveEngineArgs(EngineArgs& args) {
  if (!args.kv_cache_memory.empty()) {
    StatusOr<int64_t> bytes = ParseByteSize(args.kv_cache_memory);
    if (!bytes.ok()) return InvalidArgument("kv_cache_memory (--kv-cache-memory): " + bytes.status().message());
    args.engine.kv_cache_bytes = *bytes;
  }
  if (!args.speculative_config.empty()) {
    INFERD_ASSIGN_OR_RETURN(args.engine.speculative, spec::ParseSpeculativeConfig(args.speculative_config));
  }
  if (args.threads < 0) return InvalidArgument(fmt::format("threads must be >= 0, got {}", args.threads));
  args.engine.dtype = args.load.dtype;  // the GPU's compute dtype (dummy weights: also their type)
  return Status::OK();
}

Engine::Engine(std::unique_ptr<EngineCore> core) : core_(std::move(core)) {}
Engine::~Engine() = default;

std::unique_ptr<Engine> Engine::FromCore(std::unique_ptr<EngineCore> core) {
  return std::unique_ptr<Engine>(new Engine(std::move(core)));
}

StatusOr<std::unique_ptr<Engine>> Engine::Create(EngineArgs args) {
  INFERD_RETURN_IF_ERROR(ResolveEngineArgs(args));
  if (args.threads != 0) ThreadPool::SetGlobalThreads(args.threads);
  INFERD_ASSIGN_OR_RETURN(std::unique_ptr<LoadedModel> model, LoadModel(args.load));
  if (!model->tokenizer) {
    return InvalidArgument("the model has no tokenizer: dummy weights need one (--tokenizer PATH, or tokenizer=PATH in Python)");
  }
  INFERD_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Create(std::move(model), args.engine));
  LogEngineSummary(*engine->core_);
  return engine;
}

StatusOr<std::unique_ptr<Engine>> Engine::Create(std::unique_ptr<LoadedModel> model, const EngineOptions& options) {
  INFERD_ASSIGN_OR_RETURN(std::unique_ptr<EngineCore> core, EngineCore::Create(std::move(model), options));
  return FromCore(std::move(core));
}

Status Engine::AddRequest(GenerateRequest request) {
  TokenizePrompt(request);
  return core_->AddRequest(std::move(request));
}

void Engine::TokenizePrompt(GenerateRequest& request) const {
  if (request.prompt_token_ids.empty() && !request.prompt.empty()) request.prompt_token_ids = Encode(request.prompt);
}

std::vector<int32_t> Engine::Encode(std::string_view text, bool add_special) const {
  return core_->tokenizer().Encode(text, add_special, /*parse_special=*/false);
}

std::string Engine::Decode(std::span<const int32_t> ids, bool skip_special) const {
  return core_->tokenizer().Decode(ids, skip_special);
}

void Engine::AbortRequest(const std::string& request_id) { core_->AbortRequest(request_id); }
StepResult Engine::Step() { return core_->Step(); }
bool Engine::HasUnfinishedRequests() const { return core_->HasUnfinished(); }
Status Engine::ScoreTokens(std::span<const int32_t> ids, float* out) { return core_->ScoreTokens(ids, out); }
const LoadedModel& Engine::model() const { return core_->model(); }
const Tokenizer& Engine::tokenizer() const { return core_->tokenizer(); }
int64_t Engine::max_model_len() const { return core_->max_model_len(); }
int64_t Engine::kv_capacity_tokens() const { return core_->kv_capacity_tokens(); }
int64_t Engine::vocab_size() const { return core_->vocab_size(); }
int64_t Engine::block_size() const { return core_->block_size(); }
EngineCounters Engine::counters() const { return core_->counters(); }

EngineSnapshot Engine::Stats() const {
  EngineSnapshot s;
  s.num_running = core_->num_running();
  s.num_waiting = core_->num_waiting();
  s.kv_usage = core_->kv_usage();
  s.counters = core_->counters();
  return s;
}

std::vector<StatusOr<RequestOutput>> Engine::Generate(std::vector<GenerateRequest> requests,
                                                      const FinishedFn& on_finished,
                                                      const ContinueFn& should_continue) {
  std::vector<StatusOr<RequestOutput>> results(requests.size(), Status(StatusCode::kInternal, "not run"));
  std::vector<std::string> user_ids(requests.size());
  std::unordered_map<std::string, size_t> index_of;
  for (size_t i = 0; i < requests.size(); ++i) {
    // Internal ids are unique even when callers repeat theirs; outputs carry the caller's id.
    user_ids[i] = requests[i].request_id.empty() ? std::to_string(i) : requests[i].request_id;
    requests[i].request_id = fmt::format("batch-{}", i);
    index_of[requests[i].request_id] = i;
    Status st = AddRequest(std::move(requests[i]));
    if (!st.ok()) {
      results[i] = st;
      if (on_finished) on_finished(i, results[i]);
    }
  }
  bool aborted = false;
  while (core_->HasUnfinished()) {
    if (!aborted && should_continue && !should_continue()) {
      aborted = true;  // ids already finished (or never added) are ignored by AbortRequest
      for (const auto& [id, i] : index_of) core_->AbortRequest(id);
    }
    StepResult step = core_->Step();
    for (FinishedRequest& f : step.finished) {
      const size_t i = index_of.at(f.request_id);
      results[i] = std::move(f.output);
      if (results[i].ok()) results[i]->request_id = user_ids[i];
      if (on_finished) on_finished(i, results[i]);
    }
  }
  return results;
}

}  // namespace inferd
