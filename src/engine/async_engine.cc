#include "inferd/engine.h"

#include <fmt/format.h>

#include "engine/engine_core.h"
#include "util/logging.h"

namespace inferd {

void RequestStream::Push(Item item) {
  std::function<void()> notify;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (final_pushed_) return;  // exactly one final, nothing after it
    if (item.final) final_pushed_ = true;
    items_.push_back(std::move(item));
    notify = notify_;
  }
  cv_.notify_all();
  if (notify) notify();
}

bool RequestStream::TryNext(Item* item) {
  std::lock_guard<std::mutex> lock(mu_);
  if (items_.empty()) return false;
  *item = std::move(items_.front());
  items_.pop_front();
  if (item->final) final_taken_ = true;
  return true;
}

bool RequestStream::Next(Item* item, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return !items_.empty() || final_taken_; })) return false;
  if (items_.empty()) return false;
  *item = std::move(items_.front());
  items_.pop_front();
  if (item->final) final_taken_ = true;
  return true;
}

void RequestStream::SetNotify(std::function<void()> fn) {
  bool pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    notify_ = std::move(fn);
    pending = !items_.empty();
  }
  if (pending && notify_) notify_();
}

bool RequestStream::finished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return final_taken_;
}

AsyncEngine::AsyncEngine(std::unique_ptr<Engine> engine, double stats_interval_s)
    : engine_(std::move(engine)), stats_interval_s_(stats_interval_s) {
  thread_ = std::thread([this] { Loop(); });
}

AsyncEngine::~AsyncEngine() { Shutdown(); }

StatusOr<std::shared_ptr<RequestStream>> AsyncEngine::AddRequest(GenerateRequest request) {
  INFERD_RETURN_IF_ERROR(request.params.Validate());
  engine_->TokenizePrompt(request);
  // Grammars compile here, on the caller's thread (a bad one is an error before the request
  // is accepted); the engine thread then finds them in the cache.
  if (request.params.structured_outputs) INFERD_RETURN_IF_ERROR(engine_->core().CompileGrammar(*request.params.structured_outputs).status());
  const int64_t n = static_cast<int64_t>(request.prompt_token_ids.size());
  if (n == 0) return InvalidArgument("the prompt is empty");
  if (n >= engine_->max_model_len()) {
    return InvalidArgument(fmt::format(
        "this model's maximum context length is {} tokens, but the prompt has {} tokens (no room to generate)",
        engine_->max_model_len(), n));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!accepting_) return Status(StatusCode::kUnavailable, "the engine is shutting down");
  if (request.request_id.empty()) request.request_id = fmt::format("req-{}", next_id_++);
  auto stream = std::shared_ptr<RequestStream>(new RequestStream(request.request_id));
  inbox_.emplace_back(std::move(request), stream);
  cv_.notify_all();
  return stream;
}

void AsyncEngine::Abort(const std::string& request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  aborts_.push_back(request_id);
  cv_.notify_all();
}

void AsyncEngine::Shutdown(std::chrono::milliseconds drain) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!thread_.joinable()) return;
    accepting_ = false;
    stop_ = true;
    drain_deadline_ = std::chrono::steady_clock::now() + drain;
  }
  cv_.notify_all();
  thread_.join();
}

EngineSnapshot AsyncEngine::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshot_;
}

size_t AsyncEngine::NumQueued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshot_.num_waiting + inbox_.size();
}

void AsyncEngine::Dispatch(StepResult& result) {
  for (OutputDelta& d : result.deltas) {
    auto it = streams_.find(d.request_id);
    if (it != streams_.end()) it->second->Push(RequestStream::Item{std::move(d), std::nullopt});
  }
  for (FinishedRequest& f : result.finished) {
    auto it = streams_.find(f.request_id);
    if (it == streams_.end()) continue;
    it->second->Push(RequestStream::Item{std::nullopt, std::move(f.output)});
    streams_.erase(it);
  }
}

void AsyncEngine::Loop() {
  auto last_stats = std::chrono::steady_clock::now();
  EngineCounters last_counters = engine_->counters();
  for (;;) {
    std::deque<std::pair<GenerateRequest, std::shared_ptr<RequestStream>>> adds;
    std::vector<std::string> aborts;
    bool stop;
    std::chrono::steady_clock::time_point deadline;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !inbox_.empty() || !aborts_.empty() || engine_->HasUnfinishedRequests(); });
      adds.swap(inbox_);
      aborts.swap(aborts_);
      stop = stop_;
      deadline = drain_deadline_;
    }
    for (auto& [req, stream] : adds) {
      const std::string id = req.request_id;
      Status st = streams_.count(id) ? InvalidArgument("request id '" + id + "' is already in use")
                                     : engine_->AddRequest(std::move(req));
      if (st.ok()) {
        streams_[id] = stream;
      } else {
        stream->Push(RequestStream::Item{std::nullopt, StatusOr<RequestOutput>(st)});
      }
    }
    for (const std::string& id : aborts) engine_->AbortRequest(id);
    if (stop && (!engine_->HasUnfinishedRequests() || std::chrono::steady_clock::now() >= deadline)) {
      // Abort whatever is left; every stream gets its final output.
      std::vector<std::string> ids;
      for (const auto& [id, stream] : streams_) ids.push_back(id);
      for (const std::string& id : ids) engine_->AbortRequest(id);
      StepResult rest = engine_->Step();
      Dispatch(rest);
      for (auto& [id, stream] : streams_) {
        stream->Push(RequestStream::Item{std::nullopt, StatusOr<RequestOutput>(
                                                           Status(StatusCode::kAborted, "the engine shut down"))});
      }
      streams_.clear();
      std::lock_guard<std::mutex> lock(mu_);
      snapshot_.alive = false;
      snapshot_.num_running = snapshot_.num_waiting = 0;
      return;
    }
    StepResult result = engine_->Step();
    const EngineSnapshot stats = engine_->Stats();  // engine thread: no lock needed to read it
    {
      // Before the outputs go out: whoever sees a request's final output also sees a
      // snapshot that no longer counts it as running.
      std::lock_guard<std::mutex> lock(mu_);
      snapshot_ = stats;
    }
    Dispatch(result);
    const auto now = std::chrono::steady_clock::now();
    const double since = std::chrono::duration<double>(now - last_stats).count();
    if (stats_interval_s_ > 0 && since >= stats_interval_s_) {
      const EngineCounters& c = stats.counters;
      const double hit = c.prefix_queries > 0 ? 100.0 * c.prefix_hits / c.prefix_queries : 0.0;
      INFERD_LOG_INFO(
          "Avg prompt throughput: {:.1f} tokens/s, Avg generation throughput: {:.1f} tokens/s, Running: {} reqs, "
          "Waiting: {} reqs, Preemptions: {}, KV cache usage: {:.1f}%, Prefix cache hit rate: {:.1f}%",
          (c.prompt_tokens - last_counters.prompt_tokens) / since,
          (c.generation_tokens - last_counters.generation_tokens) / since, stats.num_running,
          stats.num_waiting, c.num_preemptions, 100.0 * stats.kv_usage, hit);
      last_stats = now;
      last_counters = c;
    }
  }
}

}  // namespace inferd
