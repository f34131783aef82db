#include "spec/suffix_tree.h"

#include <algorithm>
#include <cassert>
#include <map>
#include <utility>

namespace inferd::spec {

// A node's children, keyed by the first token of their edge label. Absent for leaves (most
// nodes), so a leaf costs no map.
struct SuffixTree::Children {
  std::unordered_map<int32_t, std::unique_ptr<Node>> map;
  // The child with the highest count (ties: the smaller first token) when best_valid. Kept
  // up to date as counts grow (O(1) per step); a count that drops or a child that leaves
  // only invalidates it, and the next MostFrequentChild rescans. So a proposal does not scan
  // the children of busy nodes (thousands in a large global tree) on every step.
  mutable Node* best = nullptr;
  mutable bool best_valid = false;
};

struct SuffixTree::Node {
  Node* parent = nullptr;
  int64_t count = 0;             // occurrences whose string begins with this node's string
  int64_t ends = 0;              // occurrences whose string is exactly this node's string
  std::vector<int32_t> label;    // the edge from parent: tokens after the parent's string
  std::unique_ptr<Children> children;

  size_t num_children() const { return children ? children->map.size() : 0; }

  Node* Find(int32_t token) const {
    if (!children) return nullptr;
    auto it = children->map.find(token);
    return it == children->map.end() ? nullptr : it->second.get();
  }

  // Whether a is the more frequent child (ties: the smaller first token).
  static bool Beats(const Node* a, const Node* b) {
    return a->count > b->count || (a->count == b->count && a->label[0] < b->label[0]);
  }

  void AddChild(std::unique_ptr<Node> child) {
    if (!children) {
      children = std::make_unique<Children>();
      children->best = child.get();
      children->best_valid = true;
    } else if (children->best_valid && Beats(child.get(), children->best)) {
      children->best = child.get();
    }
    const int32_t key = child->label[0];
    children->map.emplace(key, std::move(child));
  }

  // `child` (a child of this node) gained one count.
  void CountedUp(Node* child) const {
    if (children->best_valid && children->best != child && Beats(child, children->best)) children->best = child;
  }

  // `child` lost one count: it may no longer be the most frequent.
  void CountedDown(const Node* child) const {
    if (children->best == child) children->best_valid = false;
  }

  // `now` took the place (same first token, same count) of the child `old`.
  void Replaced(const Node* old, Node* now) const {
    if (children->best == old) children->best = now;
  }

  // Detaches the child starting with `key` (and its subtree).
  std::unique_ptr<Node> TakeChild(int32_t key) {
    auto it = children->map.find(key);
    std::unique_ptr<Node> child = std::move(it->second);
    if (children->best == child.get()) {
      children->best = nullptr;
      children->best_valid = false;
    }
    children->map.erase(it);
    if (children->map.empty()) children.reset();
    return child;
  }
};

namespace {

// Frees a subtree without recursion (a chain of nodes can be max_depth long); returns how
// many nodes it held.
template <typename NodeT>
size_t FreeSubtree(std::unique_ptr<NodeT> node) {
  size_t n = 0;
  std::vector<std::unique_ptr<NodeT>> stack;
  stack.push_back(std::move(node));
  while (!stack.empty()) {
    std::unique_ptr<NodeT> top = std::move(stack.back());
    stack.pop_back();
    ++n;
    if (top->children) {
      for (auto& [token, child] : top->children->map) stack.push_back(std::move(child));
    }
  }
  return n;
}

}  // namespace

SuffixTree::SuffixTree(int max_depth) : max_depth_(std::max(1, max_depth)), root_(std::make_unique<Node>()) {}

SuffixTree::~SuffixTree() { FreeSubtree(std::move(root_)); }

int64_t SuffixTree::num_tokens() const { return root_->count; }

std::span<const int32_t> SuffixTree::tokens(int64_t seq) const {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return {};
  return it->second.tokens;
}

void SuffixTree::Append(int64_t seq, int32_t token) {
  Sequence& s = seqs_[seq];
  assert(!s.sealed && "SuffixTree::Append after Seal");
  if (s.sealed) return;
  s.tokens.push_back(token);
  // A new occurrence starts here (the empty string, counted at the root); it and every
  // growing one take the token.
  ++root_->count;
  s.growing.push_back(root_.get());
  for (Node*& end : s.growing) end = ExtendOccurrence(end, token);
  // The oldest now holds max_depth tokens: it stops growing and stays where it ends.
  if (s.growing.size() >= static_cast<size_t>(max_depth_)) s.growing.pop_front();
}

void SuffixTree::Extend(int64_t seq, std::span<const int32_t> tokens) {
  for (int32_t t : tokens) Append(seq, t);
}

void SuffixTree::Seal(int64_t seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  it->second.sealed = true;
  std::deque<Node*>().swap(it->second.growing);
}

// One occurrence ends at `end` (string w); it becomes w + token. Returns the node it then
// ends at. Only this occurrence moves, so only the node of w + token gains a count.
SuffixTree::Node* SuffixTree::ExtendOccurrence(Node* end, int32_t token) {
  const bool at_root = end == root_.get();
  Node* next = end->Find(token);
  if (next == nullptr) {
    if (!at_root && end->children == nullptr && end->count == 1) {
      end->label.push_back(token);  // a leaf only this occurrence reaches: its edge grows
      return end;
    }
    auto leaf = std::make_unique<Node>();
    leaf->parent = end;
    leaf->count = 1;
    leaf->ends = 1;
    leaf->label = {token};
    next = leaf.get();
    end->AddChild(std::move(leaf));
    ++num_nodes_;
  } else {
    // w + token is the first token of next's edge: make it a node if it is not one.
    if (next->label.size() > 1) next = SplitEdge(end, next);
    ++next->count;
    ++next->ends;
    end->CountedUp(next);
  }
  if (!at_root) {
    --end->ends;
    MergeIfRedundant(end);
  }
  return next;
}

// Puts a node after the first token of child's edge (same count: the same occurrences pass).
SuffixTree::Node* SuffixTree::SplitEdge(Node* parent, Node* child) {
  const int32_t key = child->label[0];
  std::unique_ptr<Node>& slot = parent->children->map.at(key);
  auto mid = std::make_unique<Node>();
  Node* m = mid.get();
  m->parent = parent;
  m->count = child->count;
  m->label = {key};
  std::unique_ptr<Node> owned = std::move(slot);
  owned->label.erase(owned->label.begin());
  owned->parent = m;
  m->AddChild(std::move(owned));
  slot = std::move(mid);
  parent->Replaced(child, m);
  ++num_nodes_;
  return m;
}

// A node that no occurrence ends at and that has one child is not needed: its edge is
// prepended to the child's, which takes its place. Returns the node now there.
SuffixTree::Node* SuffixTree::MergeIfRedundant(Node* node) {
  if (node == root_.get() || node->ends != 0 || node->num_children() != 1) return node;
  Node* parent = node->parent;
  std::unique_ptr<Node> child = std::move(node->children->map.begin()->second);
  Node* c = child.get();
  c->label.insert(c->label.begin(), node->label.begin(), node->label.end());
  c->parent = parent;
  parent->Replaced(node, c);
  parent->children->map.at(c->label[0]) = std::move(child);  // frees node
  --num_nodes_;
  return c;
}

void SuffixTree::Remove(int64_t seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  const std::span<const int32_t> toks = it->second.tokens;
  const size_t depth = static_cast<size_t>(max_depth_);
  for (size_t start = 0; start < toks.size(); ++start) {
    RemoveOccurrence(toks.subspan(start, std::min(depth, toks.size() - start)));
  }
  seqs_.erase(it);
}

// Takes the occurrence with string `str` out: every node on its path loses one count, the
// node it ends at one end; a node left with no count goes (with its subtree, which only this
// occurrence reached), and the deepest node left may have become redundant.
void SuffixTree::RemoveOccurrence(std::span<const int32_t> str) {
  --root_->count;
  Node* node = root_.get();
  size_t depth = 0;
  while (depth < str.size()) {
    const int32_t key = str[depth];
    Node* child = node->Find(key);
    assert(child != nullptr && depth + child->label.size() <= str.size());
    if (child == nullptr) return;
    depth += child->label.size();
    if (--child->count == 0) {
      num_nodes_ -= FreeSubtree(node->TakeChild(key));
      break;
    }
    node->CountedDown(child);
    if (depth == str.size()) --child->ends;
    node = child;
  }
  MergeIfRedundant(node);
}

const SuffixTree::Node* SuffixTree::Match(std::span<const int32_t> pattern, size_t* offset) const {
  const Node* node = root_.get();
  size_t off = 0;  // tokens of node's label matched so far
  for (int32_t t : pattern) {
    if (off == node->label.size()) {
      node = node->Find(t);
      if (node == nullptr) return nullptr;
      off = 0;
    }
    if (node->label[off] != t) return nullptr;
    ++off;
  }
  *offset = off;
  return node;
}

const SuffixTree::Node* SuffixTree::MostFrequentChild(const Node* node) const {
  if (!node->children) return nullptr;
  const Children& c = *node->children;
  if (!c.best_valid) {
    c.best = nullptr;
    for (const auto& [token, child] : c.map) {
      if (c.best == nullptr || Node::Beats(child.get(), c.best)) c.best = child.get();
    }
    c.best_valid = true;
  }
  return c.best;
}

// Arctic's _speculate_path: along an edge the probability stays (every occurrence that
// reaches a token of it reaches the next); at a node it is multiplied by the share of the
// node's occurrences that continue with the chosen child. Stops before a token whose
// probability is under min_token_prob.
SuffixDraft SuffixTree::FollowPath(const Node* node, size_t offset, int max_tokens, float min_token_prob) const {
  SuffixDraft d;
  float prob = 1.0f;
  while (static_cast<int>(d.tokens.size()) < max_tokens && prob >= min_token_prob) {
    if (offset < node->label.size()) {
      d.tokens.push_back(node->label[offset++]);
      d.probs.push_back(prob);
      d.score += prob;
      continue;
    }
    const Node* child = MostFrequentChild(node);
    if (child == nullptr) break;
    prob *= static_cast<float>(child->count) / static_cast<float>(node->count);
    node = child;
    offset = 0;
  }
  return d;
}

namespace {

// floor(m * factor + offset) as Arctic computes it (in float, plus 1e-6 against rounding
// just below an integer), clamped to [0, max_tokens].
int SpecLimit(size_t match_len, const SuffixSpeculateParams& p) {
  const float f = static_cast<float>(match_len) * p.max_spec_factor + p.max_spec_offset;
  const double x = static_cast<double>(f) + 1e-6;
  if (!(x > 0.0)) return 0;
  if (x >= static_cast<double>(p.max_tokens)) return p.max_tokens;
  return static_cast<int>(x);
}

}  // namespace

SuffixDraft SuffixTree::Speculate(std::span<const int32_t> context, const SuffixSpeculateParams& params) const {
  SuffixDraft best;
  if (params.max_tokens <= 0) return best;
  const size_t window = std::min(context.size(), static_cast<size_t>(max_depth_));
  const std::span<const int32_t> ctx = context.last(window);
  for (size_t m = 1; m < window; ++m) {
    size_t offset = 0;
    const Node* node = Match(ctx.last(m), &offset);
    if (node == nullptr) break;  // no longer suffix can match either
    SuffixDraft d = FollowPath(node, offset, SpecLimit(m, params), params.min_token_prob);
    if (d.score >= best.score) {
      best = std::move(d);
      best.match_len = static_cast<int>(m);
    }
  }
  return best;
}

// ---- Test support -------------------------------------------------------------------------

namespace {

struct Expected {
  int64_t count = 0;
  int64_t ends = 0;
};

std::string Str(const std::vector<int32_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0) out += ' ';
    out += std::to_string(s[i]);
  }
  out += ']';
  return out;
}

// Brute force: every string of every occurrence, with its count and ends.
void AddOccurrences(std::span<const int32_t> tokens, size_t depth, std::map<std::vector<int32_t>, Expected>* expected) {
  for (size_t start = 0; start < tokens.size(); ++start) {
    const size_t len = std::min(tokens.size() - start, depth);
    std::vector<int32_t> str;
    for (size_t i = 0; i < len; ++i) {
      str.push_back(tokens[start + i]);
      ++(*expected)[str].count;
    }
    ++(*expected)[str].ends;
  }
}

}  // namespace

std::string SuffixTree::CheckInvariants() const {
  std::map<std::vector<int32_t>, Expected> expected;
  int64_t total = 0;
  for (const auto& [id, s] : seqs_) {
    total += static_cast<int64_t>(s.tokens.size());
    AddOccurrences(s.tokens, static_cast<size_t>(max_depth_), &expected);
  }
  if (root_->count != total) {
    return "root count " + std::to_string(root_->count) + " != tokens " + std::to_string(total);
  }
  if (root_->ends != 0 || !root_->label.empty() || root_->parent != nullptr) return "root is malformed";
  // Walk the tree: every string on it (at nodes and inside edges) must be expected, with
  // the counts of its node; and every expected string must be on it.
  std::unordered_map<const Node*, std::vector<int32_t>> strings;
  std::vector<const Node*> stack = {root_.get()};
  strings[root_.get()] = {};
  size_t seen_strings = 0, seen_nodes = 0;
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    ++seen_nodes;
    const std::vector<int32_t>& str = strings[n];
    if (static_cast<int>(str.size()) > max_depth_) return "node deeper than max_depth: " + Str(str);
    int64_t sum = 0;
    if (n->children && n->children->map.empty()) return "empty children map at " + Str(str);
    if (n->children) {
      const Node* best = nullptr;
      for (const auto& [key, child] : n->children->map) {
        const Node* c = child.get();
        if (c->label.empty() || c->label[0] != key) return "child key mismatch under " + Str(str);
        if (c->parent != n) return "wrong parent pointer under " + Str(str);
        if (best == nullptr || Node::Beats(c, best)) best = c;
        sum += c->count;
        std::vector<int32_t> s = str;
        for (size_t i = 0; i < c->label.size(); ++i) {
          s.push_back(c->label[i]);
          auto it = expected.find(s);
          if (it == expected.end()) return "string not stored: " + Str(s);
          if (it->second.count != c->count) {
            return "count of " + Str(s) + " is " + std::to_string(c->count) + ", expected " +
                   std::to_string(it->second.count);
          }
          if (i + 1 < c->label.size() && it->second.ends != 0) return "an occurrence ends inside an edge: " + Str(s);
          ++seen_strings;
        }
        strings[c] = s;
        stack.push_back(c);
      }
      if (n->children->best_valid && n->children->best != best) return "stale most frequent child at " + Str(str);
    }
    if (n == root_.get()) continue;
    if (n->ends != expected[str].ends) return "ends of " + Str(str) + " wrong";
    if (n->count != n->ends + sum) return "count of " + Str(str) + " != ends + children";
    if (n->ends == 0 && n->num_children() < 2) return "redundant node " + Str(str);
  }
  if (seen_strings != expected.size()) return "tree holds " + std::to_string(seen_strings) + " strings, expected " +
                                                std::to_string(expected.size());
  if (seen_nodes != num_nodes_) return "num_nodes " + std::to_string(num_nodes_) + " != " + std::to_string(seen_nodes);
  // The growing occurrences end where the last 1, 2, ... tokens of their sequence do.
  for (const auto& [id, s] : seqs_) {
    const size_t want = s.sealed ? 0 : std::min(s.tokens.size(), static_cast<size_t>(max_depth_ - 1));
    if (s.growing.size() != want) {
      return "sequence " + std::to_string(id) + " has a wrong number of growing occurrences";
    }
    for (size_t i = 0; i < want; ++i) {
      const Node* n = s.growing[s.growing.size() - 1 - i];
      auto it = strings.find(n);
      const std::vector<int32_t> tail(s.tokens.end() - static_cast<std::ptrdiff_t>(i + 1), s.tokens.end());
      if (it == strings.end() || it->second != tail) return "growing occurrence of " + Str(tail) + " is lost";
    }
  }
  return "";
}

}  // namespace inferd::spec
