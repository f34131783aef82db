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
#include <optional>
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

// How one KV group's block table of a request changed since the previous SchedulerOutput
// that scheduled it: the model runner keeps the first `keep` entries of its copy and appends
// `append` (keep == 0: the whole table is new — first scheduling, resumption, or entries
// nulled by a sliding window).
struct BlockTableUpdate {
  int64_t keep = 0;
  std::vector<int32_t> append;
};

struct ScheduledRequest {
  Request* request = nullptr;
  // Rows this step: tokens [num_computed_tokens, +num_new_tokens - spec_tokens.size()) of
  // request->tokens, then the speculative tokens (drafts to verify; decode only).
  int64_t num_new_tokens = 0;
  std::vector<int32_t> spec_tokens;
  std::vector<BlockTableUpdate> block_tables;  // one per KV group
};

struct SchedulerOutput {
  std::vector<ScheduledRequest> scheduled;  // running first, then newly admitted
  int64_t total_tokens = 0;
  int64_t num_spec_tokens = 0;              // of total_tokens
  std::vector<Request*> preempted;          // preempted in this step
  // Requests that ended or were preempted since the previous output: the runner drops its
  // copies of their block tables.
  std::vector<std::string> freed_ids;
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

  // After the model ran `out`: advances num_computed_tokens over the request's own tokens
  // (not the speculative ones) and caches newly full blocks. (Sampled tokens are appended by
  // the caller after; stop checks are the caller's.)
  void OnStepComputed(const SchedulerOutput& out);

  // After the caller appended the verified tokens of a speculative step to r->tokens (the
  // `num_accepted` drafts that were kept, then the token drawn after them): the kept drafts'
  // K/V were computed at their positions, so they count as computed and their blocks become
  // cacheable; the blocks that only held rejected drafts are freed (KvCacheManager::TrimSlots). No-op for a
  // finished request.
  void OnSpeculationVerified(Request* r, int64_t num_accepted);

  // Ends a request in any state (finished, aborted, error): frees its blocks within this
  // call and removes it from the queues. Unknown or already finished requests are ignored.
  void FinishRequest(Request* r, RequestStatus status);

  // A scratch sequence outside the queues (EngineCore::ScoreTokens): slots for num_tokens
  // tokens as whole-table updates for the runner, or nullopt when the cache cannot hold them
  // now. ReleaseScratch frees them.
  std::optional<std::vector<BlockTableUpdate>> ReserveScratch(const std::string& id, int64_t num_tokens);
  void ReleaseScratch(const std::string& id) { kv_.Free(id); }

  size_t num_running() const { return running_.size(); }
  size_t num_waiting() const { return policy_->num_waiting(); }
  int64_t num_preemptions_total() const { return num_preemptions_; }
  bool has_unfinished() const { return !running_.empty() || policy_->num_waiting() > 0; }
  const SchedulerConfig& config() const { return config_; }
  const std::vector<Request*>& running() const { return running_; }

 private:
  void Preempt(Request* r);
  // Drops r's mirror of the runner's tables and reports r in the next output's freed_ids.
  void Forget(Request* r);
  // The block-table updates that bring the runner's copy of r's tables up to date.
  std::vector<BlockTableUpdate> TableUpdates(const Request* r);
  // Speculative tokens r may verify this step within `budget` tokens (its own token included).
  int64_t SpecTokensFor(const Request* r, int64_t budget) const;

  SchedulerConfig config_;
  KvCacheManager& kv_;
  std::unique_ptr<SchedulingPolicy> policy_;
  std::vector<Request*> running_;
  // What the model runner holds of each request's tables: per group, its size and how many
  // leading entries are null (TableUpdates sends a whole table when those change otherwise
  // than by appending).
  struct SentTables {
    std::vector<int64_t> size, dropped;
  };
  std::unordered_map<std::string, SentTables> sent_;
  std::vector<std::string> freed_ids_;
  uint64_t next_seq_ = 0;
  int64_t num_preemptions_ = 0;
};

}  // namespace inferd
