// SuffixDecoding proposals for speculative decoding (issue 19; vLLM's
// `--speculative-config '{"method": "suffix", ...}'`, which runs Arctic Inference's
// SuffixDecodingCache; arXiv 2411.04975). Agentic and repetitive workloads re-emit long
// stretches of earlier text: of the request's own prompt and output, and of previous
// responses. Two kinds of suffix trees (spec/suffix_tree.h) count those stretches:
//   - one per running request over its prompt and the output accepted so far;
//   - one global tree over the outputs of requests, kept for the last
//     max_cached_requests requests (oldest evicted first, exactly: the tree then equals one
//     that never saw them).
// Each step the last max_tree_depth tokens are matched against both, the most frequent
// continuation is followed while its estimated probability stays >= min_token_prob, for at
// most max_spec_factor * match_length + max_spec_offset tokens; the tree whose proposal has
// the higher expected number of accepted tokens (score) wins, ties going to the request's
// own tree. The target model verifies every proposal, so a bad guess costs only the
// verification.
// As in Arctic, a request's output enters the global tree while it is generated (other
// running requests, e.g. the other samples of n > 1, already draw on it), and its slot is
// taken at StartRequest: starting the (max_cached_requests + 1)-th request evicts the oldest
// cached output, even one of a request still running (which then keeps only its own tree).
// Costs: StartRequest O(prompt * depth), AppendOutput O(tokens * depth), Propose
// O(depth^2 + depth * proposal) per tree (independent of the context length), eviction
// O(output * depth); memory O(tokens * depth) for every running request and cached output.
// Thread-safety: none; one per engine, used from the engine thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "inferd/engine_args.h"
#include "inferd/status.h"

namespace inferd::spec {

class SuffixTree;

// InvalidArgument naming the vLLM field for a value vLLM would reject (depth < 1, cached
// requests < 0, spec factor < 0, min token prob outside [0, 1], num_speculative_tokens < 1),
// and for non-finite numbers.
Status ValidateSuffixConfig(const SuffixConfig& config);

class SuffixCache {
 public:
  // `config` should have passed ValidateSuffixConfig; out-of-range values are clamped.
  explicit SuffixCache(const SuffixConfig& config);
  ~SuffixCache();
  SuffixCache(const SuffixCache&) = delete;
  SuffixCache& operator=(const SuffixCache&) = delete;

  // Builds the request's tree over `prompt` and (global tree on) takes a slot for its output,
  // evicting the oldest cached output beyond max_cached_requests, and any earlier output
  // cached under the same id. An id that is already running is restarted (as if stopped
  // with keep_output = false first).
  void StartRequest(const std::string& id, std::span<const int32_t> prompt);
  // Accepted output tokens of a running request, in order. No-op for an unknown id.
  void AppendOutput(const std::string& id, std::span<const int32_t> new_tokens);
  // Up to min(max_tokens, config.num_speculative_tokens) proposed tokens continuing `id`'s
  // sequence (prompt + output so far, as passed to StartRequest/AppendOutput); empty when
  // nothing matches, for an unknown id, or when max_tokens <= 0.
  std::vector<int32_t> Propose(const std::string& id, int max_tokens);
  // The request is finished/aborted: its own tree is dropped; its output stays in the global
  // tree when keep_output (until evicted), else it is taken out. No-op for an unknown id.
  void StopRequest(const std::string& id, bool keep_output);

  // Outputs in the global tree (those of running requests included, as in Arctic).
  size_t num_cached_requests() const { return cached_.size(); }
  size_t num_active_requests() const { return active_.size(); }
  const SuffixConfig& config() const { return config_; }

  // Test support: SuffixTree::CheckInvariants over every tree; "" when all hold.
  std::string CheckInvariants() const;

 private:
  struct Active {
    std::unique_ptr<SuffixTree> tree;  // prompt + output, one sequence (id 0)
    int64_t global_seq = -1;           // its output's sequence in global_, -1 when none
  };
  using CachedList = std::list<std::pair<std::string, int64_t>>;  // (request id, sequence)

  void EvictCached(CachedList::iterator it);

  SuffixConfig config_;
  std::unique_ptr<SuffixTree> global_;  // null when max_cached_requests == 0
  std::unordered_map<std::string, Active> active_;
  CachedList cached_;  // outputs in global_, oldest first
  std::unordered_map<std::string, CachedList::iterator> cached_by_id_;
  int64_t next_seq_ = 0;
};

}  // namespace inferd::spec
