// The suffix tree behind SuffixDecoding (spec/suffix_proposer.h; Arctic Inference's
// `SuffixTree`, arXiv 2411.04975): every suffix of every stored token sequence, cut at
// max_depth tokens, in one path-compressed trie whose nodes count how often their string
// occurs. A proposal matches the last tokens of a request against it and follows the most
// frequent continuation, so the counts are the model: they must stay exact as sequences
// grow (Append) and leave (Remove).
//
// Terms. An *occurrence* is a (sequence, start) pair; its string is the sequence's tokens
// from start, at most max_depth of them. For a string w, count(w) is the number of
// occurrences whose string begins with w, and ends(w) the number whose string is exactly w.
// Invariant (checked by CheckInvariants):
//   - the nodes are the root and every w with count(w) > 0 that some occurrence ends at
//     (ends(w) > 0) or that branches (two or more one-token extensions occur); between two
//     nodes runs an edge whose label holds the tokens of the strings in between, which all
//     share the lower node's count;
//   - node.count = count(string), node.ends = ends(string); root.count = tokens stored;
//   - an occurrence that can still grow (its string is shorter than max_depth and ends at
//     the end of a sequence being appended to) is remembered by the node it ends at.
// Sizes: at most one node per occurrence plus one per branch, edge labels hold at most
// max_depth tokens each, so memory is O(tokens * max_depth) (O(tokens) nodes); Append costs
// O(max_depth) hash look-ups, Remove O(tokens * max_depth), Speculate O(max_depth^2 +
// max_depth * max_tokens): the most frequent child of a node is cached (see Children in the
// .cc) and only rescanned after a Remove lowered it.
// Thread-safety: none; one thread owns a tree (Speculate updates that cache).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace inferd::spec {

// What Speculate proposes: the tokens of one path, each with the estimated probability of
// reaching it; score is the sum of those probabilities (the expected number of accepted
// tokens if the estimates held), used to choose between trees and between match lengths.
struct SuffixDraft {
  std::vector<int32_t> tokens;
  std::vector<float> probs;
  float score = 0.0f;
  int match_len = 0;  // how many of the last context tokens the path continues
};

struct SuffixSpeculateParams {
  int max_tokens = 0;            // hard cap on the proposal
  float max_spec_factor = 1.0f;  // a match of m tokens proposes at most
  float max_spec_offset = 0.0f;  //   floor(m * max_spec_factor + max_spec_offset) tokens
  float min_token_prob = 0.1f;   // stop before a token whose estimated probability is lower
};

class SuffixTree {
 public:
  explicit SuffixTree(int max_depth);
  ~SuffixTree();
  SuffixTree(const SuffixTree&) = delete;
  SuffixTree& operator=(const SuffixTree&) = delete;

  // Appends tokens to sequence `seq` (created empty on first use). Not after Seal(seq).
  void Append(int64_t seq, int32_t token);
  void Extend(int64_t seq, std::span<const int32_t> tokens);
  // No more tokens will come for `seq`: frees what Append needs (the growing occurrences).
  void Seal(int64_t seq);
  // Takes every occurrence of `seq` out: counts drop back, emptied nodes are freed, nodes
  // no longer needed merge into their child. The tree then equals one that never saw seq.
  // No-op for an unknown seq.
  void Remove(int64_t seq);

  // The tokens stored for `seq` (empty when unknown).
  std::span<const int32_t> tokens(int64_t seq) const;

  // Matches every suffix of the last min(|context|, max_depth) tokens of context that is
  // shorter than that window (1, 2, ... tokens, as Arctic's SuffixTree::speculate does),
  // and for each follows the most frequent continuation (ties: the smaller token id) while
  // the running probability count(child) / count(parent) product stays >= min_token_prob,
  // for at most min(max_tokens, floor(m * factor + offset)) tokens. Returns the draft with
  // the highest score (ties: the longer match); empty when nothing matches.
  SuffixDraft Speculate(std::span<const int32_t> context, const SuffixSpeculateParams& params) const;

  int max_depth() const { return max_depth_; }
  size_t num_sequences() const { return seqs_.size(); }
  int64_t num_tokens() const;  // tokens stored over all sequences
  size_t num_nodes() const { return num_nodes_; }

  // Test support: recounts every string of every stored sequence by brute force and checks
  // the invariant above (counts, ends, node set, labels, parents, the cached most frequent
  // children, the growing occurrences). Returns "" when it holds, else what is wrong.
  // O(tokens * max_depth^2); for tests only.
  std::string CheckInvariants() const;

 private:
  struct Node;
  struct Children;
  struct Sequence {
    std::vector<int32_t> tokens;
    // The nodes the growing occurrences end at, oldest start (longest string) first; at most
    // max_depth - 1 between appends. Empty once sealed.
    std::deque<Node*> growing;
    bool sealed = false;
  };

  Node* ExtendOccurrence(Node* end, int32_t token);
  Node* SplitEdge(Node* parent, Node* child);
  Node* MergeIfRedundant(Node* node);
  void RemoveOccurrence(std::span<const int32_t> str);
  const Node* Match(std::span<const int32_t> pattern, size_t* offset) const;
  SuffixDraft FollowPath(const Node* node, size_t offset, int max_tokens, float min_token_prob) const;
  const Node* MostFrequentChild(const Node* node) const;

  int max_depth_;
  std::unique_ptr<Node> root_;
  std::unordered_map<int64_t, Sequence> seqs_;
  size_t num_nodes_ = 1;
};

}  // namespace inferd::spec
