#include "spec/suffix_proposer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "spec/suffix_tree.h"

namespace inferd::spec {

namespace {

std::string Field(const char* name) { return fmt::format("--speculative-config: \"{}\"", name); }

// The sequence id of a request's own tree.
constexpr int64_t kOwnSeq = 0;

// Out-of-range values clamped into range (ValidateSuffixConfig reports them instead).
SuffixConfig Clamped(SuffixConfig c) {
  c.max_tree_depth = std::max(1, c.max_tree_depth);
  c.max_cached_requests = std::max(0, c.max_cached_requests);
  if (!(c.max_spec_factor >= 0.0f)) c.max_spec_factor = 0.0f;
  if (!std::isfinite(c.max_spec_offset)) c.max_spec_offset = 0.0f;
  if (!(c.min_token_prob >= 0.0f)) c.min_token_prob = 0.0f;
  c.min_token_prob = std::min(c.min_token_prob, 1.0f);
  c.num_speculative_tokens = std::max(0, c.num_speculative_tokens);
  return c;
}

}  // namespace

Status ValidateSuffixConfig(const SuffixConfig& c) {
  if (c.max_tree_depth < 1) {
    return InvalidArgument(fmt::format("{} must be >= 1, got {}", Field("suffix_decoding_max_tree_depth"),
                                       c.max_tree_depth));
  }
  if (c.max_cached_requests < 0) {
    return InvalidArgument(fmt::format("{} must be >= 0 (0 turns the global tree of previous outputs off), got {}",
                                       Field("suffix_decoding_max_cached_requests"), c.max_cached_requests));
  }
  if (!(c.max_spec_factor >= 0.0f) || !std::isfinite(c.max_spec_factor)) {
    return InvalidArgument(fmt::format("{} must be a finite number >= 0, got {}",
                                       Field("suffix_decoding_max_spec_factor"), c.max_spec_factor));
  }
  if (!std::isfinite(c.max_spec_offset)) {
    return InvalidArgument(fmt::format("suffix decoding: max_spec_offset must be a finite number, got {}",
                                       c.max_spec_offset));
  }
  if (!(c.min_token_prob >= 0.0f && c.min_token_prob <= 1.0f)) {
    return InvalidArgument(fmt::format("{} must be in [0, 1], got {}", Field("suffix_decoding_min_token_prob"),
                                       c.min_token_prob));
  }
  if (c.num_speculative_tokens < 1) {
    return InvalidArgument(fmt::format("{} must be >= 1, got {}", Field("num_speculative_tokens"),
                                       c.num_speculative_tokens));
  }
  return Status::OK();
}

SuffixCache::SuffixCache(const SuffixConfig& config) : config_(Clamped(config)) {
  if (config_.max_cached_requests > 0) global_ = std::make_unique<SuffixTree>(config_.max_tree_depth);
}

SuffixCache::~SuffixCache() = default;

void SuffixCache::StartRequest(const std::string& id, std::span<const int32_t> prompt) {
  StopRequest(id, /*keep_output=*/false);
  Active a;
  a.tree = std::make_unique<SuffixTree>(config_.max_tree_depth);
  a.tree->Extend(kOwnSeq, prompt);
  if (global_) {
    // The id names one output at a time (Arctic evicts the earlier one too).
    if (auto it = cached_by_id_.find(id); it != cached_by_id_.end()) EvictCached(it->second);
    a.global_seq = next_seq_++;
    cached_.emplace_back(id, a.global_seq);
    cached_by_id_[id] = std::prev(cached_.end());
    // FIFO; never the slot just taken (max_cached_requests >= 1 here).
    while (cached_.size() > static_cast<size_t>(config_.max_cached_requests)) EvictCached(cached_.begin());
  }
  active_[id] = std::move(a);
}

void SuffixCache::EvictCached(CachedList::iterator it) {
  global_->Remove(it->second);
  // A running request whose output is evicted keeps generating into its own tree only.
  if (auto a = active_.find(it->first); a != active_.end() && a->second.global_seq == it->second) {
    a->second.global_seq = -1;
  }
  cached_by_id_.erase(it->first);
  cached_.erase(it);
}

void SuffixCache::AppendOutput(const std::string& id, std::span<const int32_t> new_tokens) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  it->second.tree->Extend(kOwnSeq, new_tokens);
  if (it->second.global_seq >= 0) global_->Extend(it->second.global_seq, new_tokens);
}

std::vector<int32_t> SuffixCache::Propose(const std::string& id, int max_tokens) {
  auto it = active_.find(id);
  if (it == active_.end()) return {};
  SuffixSpeculateParams p;
  p.max_tokens = std::min(max_tokens, config_.num_speculative_tokens);
  p.max_spec_factor = config_.max_spec_factor;
  p.max_spec_offset = config_.max_spec_offset;
  p.min_token_prob = config_.min_token_prob;
  if (p.max_tokens <= 0) return {};
  // Only the last max_tree_depth tokens can take part in a match.
  const SuffixTree& own = *it->second.tree;
  const std::span<const int32_t> all = own.tokens(kOwnSeq);
  const std::span<const int32_t> context = all.last(std::min(all.size(), static_cast<size_t>(config_.max_tree_depth)));
  SuffixDraft best = own.Speculate(context, p);
  if (global_ && global_->num_tokens() > 0) {
    SuffixDraft g = global_->Speculate(context, p);
    if (g.score > best.score) best = std::move(g);
  }
  return std::move(best.tokens);
}

void SuffixCache::StopRequest(const std::string& id, bool keep_output) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  const int64_t seq = it->second.global_seq;
  active_.erase(it);
  if (seq < 0) return;
  if (keep_output) {
    global_->Seal(seq);
  } else if (auto c = cached_by_id_.find(id); c != cached_by_id_.end()) {
    EvictCached(c->second);
  }
}

std::string SuffixCache::CheckInvariants() const {
  if (global_) {
    if (std::string e = global_->CheckInvariants(); !e.empty()) return "global tree: " + e;
    if (global_->num_sequences() > cached_.size()) return "global tree holds outputs that are not cached";
  }
  if (cached_.size() != cached_by_id_.size()) return "cached list and index disagree";
  for (const auto& [id, a] : active_) {
    if (std::string e = a.tree->CheckInvariants(); !e.empty()) return "tree of " + id + ": " + e;
  }
  return "";
}

}  // namespace inferd::spec
