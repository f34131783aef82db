// AsyncEngine: runs an EngineCore on a dedicated thread. Requests are added and aborted
// from any thread; each request has a RequestStream of deltas and exactly one final
// output (finished, aborted or error).
//
// Thread-safety: every public method is safe to call from any thread. The EngineCore is
// touched only by the engine thread. Streams are single-consumer.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/engine_core.h"

namespace inferd {

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

// A consistent snapshot for metrics and health checks.
struct EngineSnapshot {
  size_t num_running = 0, num_waiting = 0;
  double kv_usage = 0;
  EngineCounters counters;
  bool alive = true;
};

class AsyncEngine {
 public:
  // stats_interval_s > 0: logs a stats line that often while there is work.
  explicit AsyncEngine(std::unique_ptr<EngineCore> core, double stats_interval_s = 10.0);
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
  const EngineCore& core() const { return *core_; }  // immutable parts only (model, limits)

 private:
  void Loop();
  void Dispatch(StepResult& result);

  std::unique_ptr<EngineCore> core_;
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
