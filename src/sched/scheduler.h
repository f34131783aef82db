// The scheduler decides, each step, which requests run and how many new tokens each
// computes, within a token budget and a sequence cap, over a shared paged KV cache.
//
// Order (vLLM V1): running requests first (each gets all its missing tokens, a decode is 1),
// then waiting requests in policy order, prompts chunked to fit the remaining budget
// (chunked prefill is always on). When a running request cannot get blocks, the policy's
// victim is preempted by recompute: its blocks are freed, num_computed_tokens reset, and it
// goes back to the waiting queue; no waiting request is admitted in a step that preempted.
// The scheduler sees block ids and token counts only, never device memory.
// Precondition (the engine guarantees it): max_model_len <= the KV cache's capacity in
// tokens, so a request alone always fits and a preempted request can always resume.
// Thread-safety: none; owned by the engine thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "inferd/status.h"
#include "kv/kv_cache_manager.h"
#include "sched/policy.h"
#include "sched/request.h"

namespace inferd {

struct SchedulerConfig {
  int64_t max_num_batched_tokens = 512;
  int64_t max_num_seqs = 64;
  int64_t max_model_len = 2048;
};

struct ScheduledRequest {
  Request* request = nullptr;
  int64_t num_new_tokens = 0;  // tokens [num_computed_tokens, +num_new_tokens) run this step
};

struct SchedulerOutput {
  std::vector<ScheduledRequest> scheduled;  // running first, then newly admitted
  int64_t total_tokens = 0;
  std::vector<Request*> preempted;          // preempted in this step
  bool empty() const { return scheduled.empty(); }
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, KvCacheManager& kv, std::unique_ptr<SchedulingPolicy> policy);

  // Admission: InvalidArgument when the prompt leaves no room under max_model_len, or
  // ResourceExhausted when it could never fit in the whole KV cache. The caller owns `r`
  // and keeps it alive until it is finished and removed.
  Status AddRequest(Request* r);

  SchedulerOutput Schedule();

  // After the model ran `out`: advances num_computed_tokens and caches newly full blocks.
  // (Sampled tokens are appended by the caller before or after; stop checks are the caller's.)
  void OnStepComputed(const SchedulerOutput& out);

  // Ends a request in any state (finished, aborted, error): frees its blocks within this
  // call and removes it from the queues. Unknown or already finished requests are ignored.
  void FinishRequest(Request* r, RequestStatus status);

  size_t num_running() const { return running_.size(); }
  size_t num_waiting() const { return policy_->num_waiting(); }
  int64_t num_preemptions_total() const { return num_preemptions_; }
  bool has_unfinished() const { return !running_.empty() || policy_->num_waiting() > 0; }
  const SchedulerConfig& config() const { return config_; }
  const std::vector<Request*>& running() const { return running_; }

 private:
  void Preempt(Request* r);

  SchedulerConfig config_;
  KvCacheManager& kv_;
  std::unique_ptr<SchedulingPolicy> policy_;
  std::vector<Request*> running_;
  uint64_t next_seq_ = 0;
  int64_t num_preemptions_ = 0;
};

}  // namespace inferd
