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

void Scheduler::Forget(Request* r) {
  if (sent_.erase(r->id) > 0) freed_ids_.push_back(r->id);
}

std::vector<BlockTableUpdate> Scheduler::TableUpdates(const Request* r) {
  const int64_t groups = kv_.num_groups();
  SentTables& sent = sent_[r->id];
  const bool known = !sent.size.empty();
  sent.size.resize(groups, 0);
  sent.dropped.resize(groups, 0);
  std::vector<BlockTableUpdate> updates(static_cast<size_t>(groups));
  for (int64_t g = 0; g < groups; ++g) {
    const std::span<const int32_t> table = kv_.BlockTable(r->id, g);
    const int64_t size = static_cast<int64_t>(table.size()), dropped = kv_.NumDropped(r->id, g);
    BlockTableUpdate& u = updates[g];
    // Appending only: the runner's entries are still right.
    u.keep = known && dropped == sent.dropped[g] ? std::min(sent.size[g], size) : 0;
    u.append.assign(table.begin() + u.keep, table.end());
    sent.size[g] = size;
    sent.dropped[g] = dropped;
  }
  return updates;
}

int64_t Scheduler::SpecTokensFor(const Request* r, int64_t budget) const {
  if (r->spec_token_ids.empty() || r->num_tokens() - r->num_computed_tokens != 1) return 0;
  int64_t k = static_cast<int64_t>(r->spec_token_ids.size());
  k = std::min(k, budget - 1);
  k = std::min(k, config_.max_model_len - r->num_tokens());         // positions stay in the context
  k = std::min(k, r->max_tokens - r->num_output_tokens() - 1);      // room for the token after them
  return std::max<int64_t>(0, k);
}

void Scheduler::Preempt(Request* r) {
  Forget(r);
  r->spec_token_ids.clear();
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
    // Drafts only from the budget left after one token for each running request behind r
    // (speculation never takes a decode row from another request), and never by preempting.
    const int64_t behind = static_cast<int64_t>(running_.size() - i - 1);
    int64_t spec = SpecTokensFor(r, budget - behind);
    while (spec > 0 && !kv_.AllocateSlots(r->id, r->num_computed_tokens, n + spec)) spec /= 2;  // what fits
    bool scheduled = spec > 0;
    while (!scheduled) {
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
          out.num_spec_tokens -= static_cast<int64_t>(it->spec_tokens.size());
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
    ScheduledRequest sr{r, n + spec, {}, {}};
    sr.spec_tokens.assign(r->spec_token_ids.begin(), r->spec_token_ids.begin() + spec);
    r->spec_token_ids.clear();
    out.scheduled.push_back(std::move(sr));
    out.total_tokens += n + spec;
    out.num_spec_tokens += spec;
    budget -= n + spec;
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
      out.scheduled.push_back({r, n, {}, {}});
      out.total_tokens += n;
      budget -= n;
    }
  }
  // The runner's tables: updates for every scheduled request (after all allocations: a
  // later preemption in this step cannot touch an earlier request's table), and the ids
  // whose tables it drops.
  for (ScheduledRequest& sr : out.scheduled) sr.block_tables = TableUpdates(sr.request);
  out.freed_ids = std::move(freed_ids_);
  freed_ids_.clear();
  return out;
}

void Scheduler::OnStepComputed(const SchedulerOutput& out) {
  for (const ScheduledRequest& s : out.scheduled) {
    Request* r = s.request;
    if (IsFinished(r->status)) continue;  // aborted while the step ran
    r->num_computed_tokens += s.num_new_tokens - static_cast<int64_t>(s.spec_tokens.size());
    kv_.CacheBlocks(r->id, r->tokens, r->num_computed_tokens, r->cache_salt);
  }
}

void Scheduler::OnSpeculationVerified(Request* r, int64_t num_accepted) {
  if (IsFinished(r->status) || r->status != RequestStatus::kRunning) return;
  r->num_computed_tokens += num_accepted;
  kv_.CacheBlocks(r->id, r->tokens, r->num_computed_tokens, r->cache_salt);
  kv_.TrimSlots(r->id, r->num_tokens());  // keeps the slot of the token drawn after the drafts
  auto it = sent_.find(r->id);
  if (it == sent_.end()) return;
  for (int64_t g = 0; g < static_cast<int64_t>(it->second.size.size()); ++g) {
    it->second.size[g] = std::min(it->second.size[g], static_cast<int64_t>(kv_.BlockTable(r->id, g).size()));
  }
}

std::optional<std::vector<BlockTableUpdate>> Scheduler::ReserveScratch(const std::string& id, int64_t num_tokens) {
  if (!kv_.AllocateSlots(id, 0, num_tokens)) return std::nullopt;
  std::vector<BlockTableUpdate> tables(static_cast<size_t>(kv_.num_groups()));
  for (int64_t g = 0; g < kv_.num_groups(); ++g) {
    const std::span<const int32_t> t = kv_.BlockTable(id, g);
    tables[g].append.assign(t.begin(), t.end());
  }
  return tables;
}

void Scheduler::FinishRequest(Request* r, RequestStatus status) {
  if (IsFinished(r->status)) return;
  auto it = std::find(running_.begin(), running_.end(), r);
  if (it != running_.end()) running_.erase(it);
  else policy_->RemoveWaiting(r);
  Forget(r);
  r->spec_token_ids.clear();
  kv_.Free(r->id);
  r->status = status;
}

}  // namespace inferd
