#include "sched/scheduler.h"

#include <fmt/format.h>

#include <algorithm>

namespace inferd {

Scheduler::Scheduler(const SchedulerConfig& config, KvCacheManager& kv, std::unique_ptr<SchedulingPolicy> policy)
    : config_(config), kv_(kv), policy_(std::move(policy)) {}

Status Scheduler::AddRequest(Request* r) {
  const int64_t n = r->num_tokens();
  if (n == 0) return InvalidArgument("the prompt is empty");
  if (n >= config_.max_model_len) {
    return InvalidArgument(fmt::format(
        "this model's maximum context length is {} tokens, but the prompt has {} tokens (no room to generate)",
        config_.max_model_len, n));
  }
  const int64_t need = kv_.BlocksPerRequest(n + 1, config_.max_num_batched_tokens);
  if (need > kv_.num_blocks()) {
    return ResourceExhausted(fmt::format(
        "the prompt ({} tokens) can never fit in the KV cache ({} blocks of {} tokens; it needs {})", n,
        kv_.num_blocks(), kv_.block_size(), need));
  }
  r->status = RequestStatus::kWaiting;
  r->arrival_seq = next_seq_++;
  r->num_computed_tokens = 0;
  policy_->AddWaiting(r);
  return Status::OK();
}

void Scheduler::Preempt(Request* r) {
  kv_.Free(r->id);
  r->status = RequestStatus::kPreempted;
  r->num_computed_tokens = 0;
  ++r->num_preemptions;
  ++num_preemptions_;
  policy_->AddPreempted(r);
}

SchedulerOutput Scheduler::Schedule() {
  SchedulerOutput out;
  int64_t budget = config_.max_num_batched_tokens;

  // 1. Running requests, in order. A request that cannot get blocks preempts victims until
  //    it can, or is itself the victim.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Request* r = running_[i];
    int64_t n = std::min(r->num_tokens() - r->num_computed_tokens, budget);
    n = std::min(n, config_.max_model_len - r->num_computed_tokens);
    if (n <= 0) {
      ++i;
      continue;
    }
    bool scheduled = false;
    while (true) {
      if (kv_.AllocateSlots(r->id, r->num_computed_tokens, n)) {
        scheduled = true;
        break;
      }
      Request* victim = policy_->PickVictim(running_);
      running_.erase(std::find(running_.begin(), running_.end(), victim));
      // Anything already scheduled for the victim this step is withdrawn.
      for (auto it = out.scheduled.begin(); it != out.scheduled.end(); ++it) {
        if (it->request == victim) {
          budget += it->num_new_tokens;
          out.total_tokens -= it->num_new_tokens;
          out.scheduled.erase(it);
          break;
        }
      }
      Preempt(victim);
      out.preempted.push_back(victim);
      if (victim == r) break;
      // The victim may have been before i in running_.
      i = static_cast<size_t>(std::find(running_.begin(), running_.end(), r) - running_.begin());
    }
    if (!scheduled) continue;  // r was preempted; running_[i] is now the next request
    out.scheduled.push_back({r, n});
    out.total_tokens += n;
    budget -= n;
    ++i;
  }

  // 2. Waiting requests, unless this step had to preempt.
  if (out.preempted.empty()) {
    while (budget > 0 && static_cast<int64_t>(running_.size()) < config_.max_num_seqs) {
      Request* r = policy_->PeekWaiting();
      if (r == nullptr) break;
      KvCacheManager::ComputedBlocks computed;
      if (r->num_computed_tokens == 0 && !r->skip_prefix_cache_hits) {
        computed = kv_.GetComputedBlocks(r->tokens, r->cache_salt);
      }
      const int64_t n = std::min(r->num_tokens() - computed.num_tokens, budget);
      if (!kv_.AllocateSlots(r->id, computed.num_tokens, n, computed)) break;
      policy_->PopWaiting();
      r->num_computed_tokens = computed.num_tokens;
      if (r->num_cached_tokens < 0) r->num_cached_tokens = computed.num_tokens;
      r->status = RequestStatus::kRunning;
      running_.push_back(r);
      out.scheduled.push_back({r, n});
      out.total_tokens += n;
      budget -= n;
    }
  }
  return out;
}

void Scheduler::OnStepComputed(const SchedulerOutput& out) {
  for (const ScheduledRequest& s : out.scheduled) {
    Request* r = s.request;
    if (IsFinished(r->status)) continue;  // aborted while the step ran
    r->num_computed_tokens += s.num_new_tokens;
    kv_.CacheBlocks(r->id, r->tokens, r->num_computed_tokens, r->cache_salt);
  }
}

void Scheduler::FinishRequest(Request* r, RequestStatus status) {
  if (IsFinished(r->status)) return;
  auto it = std::find(running_.begin(), running_.end(), r);
  if (it != running_.end()) running_.erase(it);
  else policy_->RemoveWaiting(r);
  kv_.Free(r->id);
  r->status = status;
}

}  // namespace inferd
