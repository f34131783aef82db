// SuffixDecoding proposals (spec/suffix_proposer.h, spec/suffix_tree.h): a repeating prompt,
// a request's own repeated output and previous requests' outputs (the global tree) are
// continued; min_token_prob, max_spec_factor/offset, num_speculative_tokens and max_tokens
// bound what is proposed; eviction and aborts remove an output exactly (the cache then
// proposes what one that never saw it would); and random workloads agree with a brute-force
// reference that counts suffix matches by scanning the stored sequences.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <list>
#include <map>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "spec/suffix_proposer.h"
#include "spec/suffix_tree.h"

namespace inferd::spec {
namespace {

using Tokens = std::vector<int32_t>;

std::string Id(uint32_t i) { return fmt::format("r{}", i); }

SuffixConfig Config(int depth = 24, int cached = 10000, float factor = 1.0f, float min_prob = 0.1f, int k = 24,
                    float offset = 0.0f) {
  SuffixConfig c;
  c.max_tree_depth = depth;
  c.max_cached_requests = cached;
  c.max_spec_factor = factor;
  c.max_spec_offset = offset;
  c.min_token_prob = min_prob;
  c.num_speculative_tokens = k;
  return c;
}

// One request with `prompt` and `output` on a fresh cache; what it proposes next.
Tokens ProposeFor(const SuffixConfig& c, const Tokens& prompt, const Tokens& output = {}, int max_tokens = 64) {
  SuffixCache cache(c);
  cache.StartRequest("r", prompt);
  cache.AppendOutput("r", output);
  EXPECT_EQ(cache.CheckInvariants(), "");
  return cache.Propose("r", max_tokens);
}

// ---- Brute-force reference ----------------------------------------------------------------
// Counts occurrences by scanning every stored sequence: count(w) is the number of positions
// where w occurs, as a string of at most `depth` tokens.

int64_t CountOccurrences(const std::vector<Tokens>& seqs, const Tokens& w, int depth) {
  if (static_cast<int>(w.size()) > depth) return 0;
  int64_t n = 0;
  for (const Tokens& s : seqs) {
    for (size_t start = 0; start + w.size() <= s.size(); ++start) {
      if (std::equal(w.begin(), w.end(), s.begin() + static_cast<std::ptrdiff_t>(start))) ++n;
    }
  }
  return n;
}

int Limit(int m, int max_tokens, float factor, float offset) {
  const float f = static_cast<float>(m) * factor + offset;
  const double x = std::floor(static_cast<double>(f) + 1e-6);
  return static_cast<int>(std::clamp(x, 0.0, static_cast<double>(max_tokens)));
}

// Every suffix of the window (shorter than it) that occurs; from each, repeatedly the most
// frequent next token (ties: the smallest), with probability product count(w+t)/count(w),
// while it stays >= min_prob; the best sum of probabilities wins (ties: the longer match).
SuffixDraft ReferenceSpeculate(const std::vector<Tokens>& seqs, int depth, const Tokens& context, int max_tokens,
                               float factor, float offset, float min_prob, int vocab) {
  SuffixDraft best;
  if (max_tokens <= 0) return best;
  const size_t window = std::min(context.size(), static_cast<size_t>(depth));
  for (size_t m = 1; m < window; ++m) {
    Tokens cur(context.end() - static_cast<std::ptrdiff_t>(m), context.end());
    if (CountOccurrences(seqs, cur, depth) == 0) break;
    const int limit = Limit(static_cast<int>(m), max_tokens, factor, offset);
    SuffixDraft d;
    float prob = 1.0f;
    while (static_cast<int>(d.tokens.size()) < limit && prob >= min_prob) {
      const int64_t total = CountOccurrences(seqs, cur, depth);
      int32_t best_token = -1;
      int64_t best_count = 0;
      for (int32_t t = 0; t < vocab; ++t) {
        Tokens next = cur;
        next.push_back(t);
        const int64_t c = CountOccurrences(seqs, next, depth);
        if (c > best_count) best_token = t, best_count = c;
      }
      if (best_count == 0) break;
      prob *= static_cast<float>(best_count) / static_cast<float>(total);
      if (prob < min_prob) break;
      d.tokens.push_back(best_token);
      d.probs.push_back(prob);
      d.score += prob;
      cur.push_back(best_token);
    }
    if (d.score >= best.score) {
      best = d;
      best.match_len = static_cast<int>(m);
    }
  }
  return best;
}

// The cache's bookkeeping with plain vectors: each running request's prompt + output; the
// outputs in the global tree, oldest first.
class ReferenceCache {
 public:
  ReferenceCache(const SuffixConfig& c, int vocab) : c_(c), vocab_(vocab) {}

  void Start(const std::string& id, const Tokens& prompt) {
    Stop(id, false);
    Running r{prompt, false};
    if (c_.max_cached_requests > 0) {
      Drop(id);
      cached_.push_back({id, {}});
      r.cached = true;
      while (cached_.size() > static_cast<size_t>(c_.max_cached_requests)) {
        if (auto it = running_.find(cached_.front().first); it != running_.end()) it->second.cached = false;
        cached_.pop_front();
      }
    }
    running_[id] = r;
  }

  void Append(const std::string& id, const Tokens& t) {
    auto it = running_.find(id);
    if (it == running_.end()) return;
    it->second.seq.insert(it->second.seq.end(), t.begin(), t.end());
    if (!it->second.cached) return;
    for (auto& [cid, out] : cached_) {
      if (cid == id) out.insert(out.end(), t.begin(), t.end());
    }
  }

  void Stop(const std::string& id, bool keep) {
    auto it = running_.find(id);
    if (it == running_.end()) return;
    if (it->second.cached && !keep) Drop(id);
    running_.erase(it);
  }

  Tokens Propose(const std::string& id, int max_tokens) const {
    auto it = running_.find(id);
    if (it == running_.end()) return {};
    const int k = std::min(max_tokens, c_.num_speculative_tokens);
    const Tokens& seq = it->second.seq;
    SuffixDraft own = Speculate({seq}, seq, k);
    if (c_.max_cached_requests > 0) {
      std::vector<Tokens> outputs;
      for (const auto& [cid, out] : cached_) outputs.push_back(out);
      SuffixDraft global = Speculate(outputs, seq, k);
      if (global.score > own.score) return global.tokens;
    }
    return own.tokens;
  }

  size_t num_cached() const { return cached_.size(); }
  const Tokens* Sequence(const std::string& id) const {
    auto it = running_.find(id);
    return it == running_.end() ? nullptr : &it->second.seq;
  }

 private:
  struct Running {
    Tokens seq;
    bool cached;
  };
  SuffixDraft Speculate(const std::vector<Tokens>& seqs, const Tokens& seq, int k) const {
    return ReferenceSpeculate(seqs, c_.max_tree_depth, seq, k, c_.max_spec_factor, c_.max_spec_offset,
                              c_.min_token_prob, vocab_);
  }
  void Drop(const std::string& id) {
    cached_.remove_if([&](const auto& e) { return e.first == id; });
  }

  SuffixConfig c_;
  int vocab_;
  std::map<std::string, Running> running_;
  std::list<std::pair<std::string, Tokens>> cached_;
};

// ---- Proposals ----------------------------------------------------------------------------

TEST(SuffixProposer, ARepeatingPromptIsContinued) {
  // [1 2 3] occurred before, followed by [4 5 1 ...]; half of its occurrences (the one at
  // the end) have no continuation, so each token has probability 0.5.
  const Tokens prompt = {1, 2, 3, 4, 5, 1, 2, 3};
  EXPECT_EQ(ProposeFor(Config(), prompt), (Tokens{4, 5, 1}));         // 3 tokens for a 3-token match
  EXPECT_EQ(ProposeFor(Config(24, 0, 2.0f), prompt), (Tokens{4, 5, 1, 2, 3}));  // up to the prompt's end
  EXPECT_TRUE(ProposeFor(Config(), {1, 2, 3, 4, 5, 6}).empty());      // nothing repeats
  EXPECT_TRUE(ProposeFor(Config(), {}).empty());
  EXPECT_TRUE(ProposeFor(Config(), {7}).empty());
}

TEST(SuffixProposer, TheRequestsOwnOutputIsContinued) {
  // The output repeats [1 2 3]: after [1 2] comes [3 1 2] (the global tree is off).
  EXPECT_EQ(ProposeFor(Config(24, 0), {9}, {1, 2, 3, 1, 2, 3, 1, 2}), (Tokens{3, 1, 2}));
  // Fed in pieces, as the engine does step by step.
  SuffixCache cache(Config(24, 0));
  cache.StartRequest("r", Tokens{9});
  for (int32_t t : {1, 2, 3, 1, 2, 3, 1}) cache.AppendOutput("r", Tokens{t});
  cache.AppendOutput("r", Tokens{2});
  EXPECT_EQ(cache.Propose("r", 8), (Tokens{3, 1, 2}));
  EXPECT_EQ(cache.CheckInvariants(), "");
}

TEST(SuffixProposer, PreviousOutputsAreContinuedThroughTheGlobalTree) {
  for (int cached : {10000, 1, 0}) {
    SuffixCache cache(Config(24, cached));
    cache.StartRequest("a", Tokens{100});
    cache.AppendOutput("a", Tokens{5, 6, 7, 8, 9, 10});
    cache.StopRequest("a", /*keep_output=*/true);
    EXPECT_EQ(cache.num_cached_requests(), cached == 0 ? 0u : 1u);
    // b's prompt shares nothing with a; its output starts like a's.
    cache.StartRequest("b", Tokens{200});
    cache.AppendOutput("b", Tokens{5, 6, 7});
    const Tokens p = cache.Propose("b", 8);
    if (cached == 10000) {
      EXPECT_EQ(p, (Tokens{8, 9, 10})) << "from a's output";
    } else {
      // 0: no global tree. 1: b's start evicted a's output (b holds the only slot).
      EXPECT_TRUE(p.empty()) << "max_cached_requests " << cached;
    }
    EXPECT_EQ(cache.CheckInvariants(), "");
  }
}

TEST(SuffixProposer, RunningRequestsShareTheirOutputs) {
  // As in Arctic, an output enters the global tree while it is generated (n > 1 samples).
  SuffixCache cache(Config());
  cache.StartRequest("a", Tokens{1});
  cache.StartRequest("b", Tokens{2});
  cache.AppendOutput("a", Tokens{5, 6, 7, 8});
  cache.AppendOutput("b", Tokens{5, 6});
  EXPECT_EQ(cache.Propose("b", 8), (Tokens{7, 8}));
  EXPECT_EQ(cache.num_cached_requests(), 2u);
}

TEST(SuffixProposer, AbortedOutputsAreNotKept) {
  SuffixCache cache(Config());
  cache.StartRequest("a", Tokens{100});
  cache.AppendOutput("a", Tokens{5, 6, 7, 8, 9, 10});
  cache.StopRequest("a", /*keep_output=*/false);
  EXPECT_EQ(cache.num_cached_requests(), 0u);
  cache.StartRequest("b", Tokens{200});
  cache.AppendOutput("b", Tokens{5, 6, 7});
  EXPECT_TRUE(cache.Propose("b", 8).empty());
  EXPECT_EQ(cache.CheckInvariants(), "");
}

TEST(SuffixProposer, MinTokenProbCutsUnlikelyContinuations) {
  // After 3 come 10, 11, 12, 13, 14 once each and once nothing: each has probability 1/6.
  const Tokens spread = {3, 10, 3, 11, 3, 12, 3, 13, 3, 14, 3};
  EXPECT_TRUE(ProposeFor(Config(24, 0, 1.0f, 0.2f), spread).empty());
  EXPECT_EQ(ProposeFor(Config(24, 0, 1.0f, 0.1f), spread), (Tokens{10}));  // the tie goes to the smaller id
  // After 1: 5 (4 times of 6), then 1 (4 of 4), then 5 (3 of 4: 2/3 * 3/4 = 0.5), then 1.
  const Tokens branchy = {1, 5, 1, 5, 1, 5, 1, 5, 1, 7, 9, 1};
  EXPECT_EQ(ProposeFor(Config(24, 0, 4.0f, 0.1f), branchy), (Tokens{5, 1, 5, 1}));
  EXPECT_EQ(ProposeFor(Config(24, 0, 4.0f, 0.6f), branchy), (Tokens{5, 1}));  // 0.5 < 0.6 is cut
  EXPECT_EQ(ProposeFor(Config(24, 0, 4.0f, 0.0f), branchy), (Tokens{5, 1, 5, 1}));
}

TEST(SuffixProposer, MaxSpecFactorBoundsTheLengthByTheMatch) {
  // The longest useful match is [1 2] (2 tokens).
  const Tokens prompt = {1, 2, 3, 4, 5, 6, 7, 8, 1, 2};
  EXPECT_EQ(ProposeFor(Config(24, 0, 1.0f), prompt), (Tokens{3, 4}));
  EXPECT_EQ(ProposeFor(Config(24, 0, 2.0f), prompt), (Tokens{3, 4, 5, 6}));
  EXPECT_EQ(ProposeFor(Config(24, 0, 0.5f), prompt), (Tokens{3}));
  EXPECT_TRUE(ProposeFor(Config(24, 0, 0.0f), prompt).empty());
  EXPECT_EQ(ProposeFor(Config(24, 0, 1.0f, 0.1f, 24, 1.0f), prompt), (Tokens{3, 4, 5}));  // offset 1
  EXPECT_TRUE(ProposeFor(Config(24, 0, 1.0f, 0.1f, 24, -2.0f), prompt).empty());         // offset -2
}

TEST(SuffixProposer, MaxTreeDepthBoundsMatchPlusProposal) {
  // Depth 4: a match of m tokens is followed by at most 4 - m; matches are shorter than 4.
  const Tokens prompt = {1, 2, 3, 4, 5, 6, 7, 8, 1, 2};
  EXPECT_EQ(ProposeFor(Config(4, 0, 8.0f), prompt), (Tokens{3, 4, 5}));  // [2] matched: 3 more
  EXPECT_EQ(ProposeFor(Config(3, 0, 8.0f), prompt), (Tokens{3, 4}));     // [2] matched: 2 more
  EXPECT_TRUE(ProposeFor(Config(1, 0, 8.0f), prompt).empty());        // no match shorter than 1
}

TEST(SuffixProposer, NumSpeculativeTokensAndMaxTokensCap) {
  const Tokens prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3};
  EXPECT_EQ(ProposeFor(Config(24, 0, 8.0f), prompt), (Tokens{4, 5, 6, 7, 8, 9, 1, 2, 3}));
  EXPECT_EQ(ProposeFor(Config(24, 0, 8.0f, 0.1f, 3), prompt), (Tokens{4, 5, 6}));
  EXPECT_EQ(ProposeFor(Config(24, 0, 8.0f), prompt, {}, 2), (Tokens{4, 5}));
  EXPECT_EQ(ProposeFor(Config(24, 0, 8.0f, 0.1f, 3), prompt, {}, 5), (Tokens{4, 5, 6}));
  EXPECT_TRUE(ProposeFor(Config(24, 0, 8.0f), prompt, {}, 0).empty());
  EXPECT_TRUE(ProposeFor(Config(24, 0, 8.0f), prompt, {}, -1).empty());
}

TEST(SuffixProposer, UnknownIdsAndRestartsAreHarmless) {
  SuffixCache cache(Config());
  cache.AppendOutput("x", Tokens{1, 2});
  EXPECT_TRUE(cache.Propose("x", 4).empty());
  cache.StopRequest("x", true);
  EXPECT_EQ(cache.num_active_requests(), 0u);
  cache.StartRequest("r", Tokens{1, 2, 3, 1, 2});
  cache.StartRequest("r", Tokens{7, 8});  // restarted: the first prompt is gone
  EXPECT_TRUE(cache.Propose("r", 4).empty());
  EXPECT_EQ(cache.num_active_requests(), 1u);
  cache.StopRequest("r", true);
  cache.StopRequest("r", true);
  EXPECT_TRUE(cache.Propose("r", 4).empty());
  EXPECT_EQ(cache.CheckInvariants(), "");
}

// ---- Eviction -----------------------------------------------------------------------------

// Feeds one finished request.
void Serve(SuffixCache& cache, const std::string& id, const Tokens& prompt, const Tokens& output) {
  cache.StartRequest(id, prompt);
  cache.AppendOutput(id, output);
  cache.StopRequest(id, true);
}

TEST(SuffixProposer, EvictionRemovesAnOutputExactly) {
  std::mt19937 rng(7);
  auto random_tokens = [&](size_t n) {
    Tokens t(n);
    for (auto& x : t) x = static_cast<int32_t>(rng() % 3);
    return t;
  };
  for (int round = 0; round < 20; ++round) {
    const int keep = 1 + round % 3;
    std::vector<Tokens> outputs;
    for (int i = 0; i < 6; ++i) outputs.push_back(random_tokens(10 + rng() % 30));
    // `seen` serves all six; `fresh` only those that survive in `seen` once probe starts.
    SuffixCache seen(Config(6, keep, 2.0f, 0.05f)), fresh(Config(6, keep, 2.0f, 0.05f));
    for (uint32_t i = 0; i < 6; ++i) Serve(seen, Id(i), {}, outputs[i]);
    for (uint32_t i = 6 - static_cast<uint32_t>(keep - 1); i < 6; ++i) Serve(fresh, Id(i), {}, outputs[i]);
    seen.StartRequest("probe", {});
    fresh.StartRequest("probe", {});
    ASSERT_EQ(seen.num_cached_requests(), static_cast<size_t>(keep));
    ASSERT_EQ(fresh.num_cached_requests(), static_cast<size_t>(keep));
    for (int step = 0; step < 40; ++step) {
      const Tokens t = random_tokens(1);
      seen.AppendOutput("probe", t);
      fresh.AppendOutput("probe", t);
      ASSERT_EQ(seen.Propose("probe", 16), fresh.Propose("probe", 16)) << "round " << round << " step " << step;
    }
    EXPECT_EQ(seen.CheckInvariants(), "");
  }
}

TEST(SuffixProposer, EvictionOrderIsFirstInFirstOut) {
  SuffixCache cache(Config(24, 2));
  Serve(cache, "a", {}, {1, 2, 3, 4});
  Serve(cache, "b", {}, {5, 6, 7, 8});
  Serve(cache, "c", {}, {9, 10, 11, 12});  // evicts a
  cache.StartRequest("p", {});             // evicts b
  cache.AppendOutput("p", Tokens{1, 2});
  EXPECT_TRUE(cache.Propose("p", 4).empty());
  cache.StartRequest("q", {});             // evicts c; p's own output is still cached
  cache.AppendOutput("q", Tokens{9, 10});
  EXPECT_TRUE(cache.Propose("q", 4).empty());
  cache.StartRequest("s", {});             // evicts p's output while p is running
  cache.AppendOutput("p", Tokens{3, 4});
  cache.AppendOutput("s", Tokens{1, 2});
  EXPECT_TRUE(cache.Propose("s", 4).empty()) << "p's output left the global tree";
  EXPECT_EQ(cache.Propose("p", 4), (Tokens{})) << "p's own tree has [1 2 3 4] once";
  EXPECT_EQ(cache.num_cached_requests(), 2u);
  EXPECT_EQ(cache.CheckInvariants(), "");
}

TEST(SuffixTree, RemovingASequenceLeavesTheTreeANeverSeenOneWouldHave) {
  std::mt19937 rng(11);
  for (int round = 0; round < 50; ++round) {
    const int depth = 1 + static_cast<int>(rng() % 7);
    SuffixTree with(depth), without(depth);
    std::vector<Tokens> seqs(5);
    for (auto& s : seqs) {
      s.resize(rng() % 25);
      for (auto& x : s) x = static_cast<int32_t>(rng() % 3);
    }
    // Interleaved appends, three tokens at a time, as running requests make them.
    for (size_t j = 0; j < 25; j += 3) {
      for (int64_t i = 0; i < 5; ++i) {
        const std::span<const int32_t> s = seqs[static_cast<size_t>(i)];
        if (j < s.size()) with.Extend(i, s.subspan(j, std::min<size_t>(3, s.size() - j)));
      }
    }
    without.Extend(1, seqs[1]);
    without.Extend(3, seqs[3]);
    for (int64_t i : {0, 2, 4}) with.Remove(i);
    ASSERT_EQ(with.CheckInvariants(), "") << "round " << round;
    // The compressed trie of a set of sequences is unique: same nodes, same proposals.
    EXPECT_EQ(with.num_nodes(), without.num_nodes());
    EXPECT_EQ(with.num_tokens(), without.num_tokens());
    for (int probe = 0; probe < 20; ++probe) {
      Tokens context(rng() % 10);
      for (auto& x : context) x = static_cast<int32_t>(rng() % 3);
      const SuffixSpeculateParams p{8, 2.0f, 0.0f, 0.0f};
      const SuffixDraft a = with.Speculate(context, p), b = without.Speculate(context, p);
      EXPECT_EQ(a.tokens, b.tokens);
      EXPECT_EQ(a.score, b.score);
    }
    with.Remove(1);
    with.Remove(3);
    with.Remove(99);  // unknown: no-op
    EXPECT_EQ(with.num_nodes(), 1u);
    EXPECT_EQ(with.num_tokens(), 0);
    EXPECT_EQ(with.CheckInvariants(), "");
  }
}

// ---- Randomized comparison with the brute-force reference ---------------------------------

TEST(SuffixTree, SpeculateMatchesBruteForce) {
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    std::mt19937 rng(seed);
    const int vocab = 2 + static_cast<int>(rng() % 3);
    const int depth = 1 + static_cast<int>(rng() % 8);
    SuffixTree tree(depth);
    std::map<int64_t, Tokens> seqs;
    for (int op = 0; op < 120; ++op) {
      const int64_t id = static_cast<int64_t>(rng() % 4);
      const uint32_t what = rng() % 10;
      if (what == 0) {
        tree.Remove(id);
        seqs.erase(id);
      } else if (what < 6) {
        const int32_t t = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
        tree.Append(id, t);
        seqs[id].push_back(t);
      } else {
        Tokens context(rng() % 12);
        for (auto& x : context) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
        const float factors[] = {0.5f, 1.0f, 2.5f};
        const float probs[] = {0.0f, 0.2f, 0.5f};
        const SuffixSpeculateParams p{static_cast<int>(rng() % 10), factors[rng() % 3],
                                      static_cast<float>(static_cast<int>(rng() % 3) - 1), probs[rng() % 3]};
        std::vector<Tokens> stored;
        for (const auto& [sid, s] : seqs) stored.push_back(s);
        const SuffixDraft want = ReferenceSpeculate(stored, depth, context, p.max_tokens, p.max_spec_factor,
                                                    p.max_spec_offset, p.min_token_prob, vocab);
        const SuffixDraft got = tree.Speculate(context, p);
        ASSERT_EQ(got.tokens, want.tokens) << "seed " << seed << " op " << op;
        ASSERT_EQ(got.probs, want.probs) << "seed " << seed << " op " << op;
        ASSERT_EQ(got.score, want.score) << "seed " << seed << " op " << op;
        ASSERT_EQ(got.match_len, want.match_len) << "seed " << seed << " op " << op;
      }
      if (op % 7 == 0) {
        ASSERT_EQ(tree.CheckInvariants(), "") << "seed " << seed << " op " << op;
      }
    }
  }
}

// A random workload: requests start (prompts random or copied), take output tokens (random
// or copied from any sequence, so stretches repeat), propose, and stop (kept or aborted).
TEST(SuffixProposer, ProposeMatchesBruteForce) {
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    std::mt19937 rng(seed);
    const int vocab = 2 + static_cast<int>(rng() % 3);
    const float factors[] = {0.0f, 0.5f, 1.0f, 1.5f, 3.0f};
    const float offsets[] = {-1.0f, 0.0f, 0.0f, 0.5f, 2.0f};
    const float probs[] = {0.0f, 0.1f, 0.25f, 0.5f, 1.0f};
    const SuffixConfig c = Config(1 + static_cast<int>(rng() % 8), static_cast<int>(rng() % 5), factors[rng() % 5],
                                  probs[rng() % 5], 1 + static_cast<int>(rng() % 12), offsets[rng() % 5]);
    ASSERT_TRUE(ValidateSuffixConfig(c).ok());
    SuffixCache cache(c);
    ReferenceCache ref(c, vocab);
    std::vector<Tokens> pool;  // everything generated, to copy stretches from
    auto make = [&](size_t n) {
      Tokens t;
      if (!pool.empty() && rng() % 3 != 0) {
        const Tokens& src = pool[rng() % pool.size()];
        const size_t from = src.empty() ? 0 : rng() % src.size();
        t.assign(src.begin() + static_cast<std::ptrdiff_t>(from),
                 src.begin() + static_cast<std::ptrdiff_t>(std::min(src.size(), from + n)));
      }
      while (t.size() < n) t.push_back(static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab)));
      pool.push_back(t);
      return t;
    };
    for (int op = 0; op < 160; ++op) {
      const std::string id = Id(rng() % 5);
      const uint32_t what = rng() % 20;
      if (what < 2) {
        const Tokens prompt = make(rng() % 20);
        cache.StartRequest(id, prompt);
        ref.Start(id, prompt);
      } else if (what < 3) {
        const bool keep = rng() % 3 != 0;
        cache.StopRequest(id, keep);
        ref.Stop(id, keep);
      } else if (what < 12) {
        const Tokens t = make(1 + rng() % 4);
        cache.AppendOutput(id, t);
        ref.Append(id, t);
      } else {
        const int max_tokens = static_cast<int>(rng() % 15) - 1;
        ASSERT_EQ(cache.Propose(id, max_tokens), ref.Propose(id, max_tokens)) << "seed " << seed << " op " << op;
      }
      ASSERT_EQ(cache.num_cached_requests(), ref.num_cached()) << "seed " << seed << " op " << op;
      if (op % 10 == 0) {
        ASSERT_EQ(cache.CheckInvariants(), "") << "seed " << seed << " op " << op;
      }
    }
  }
}

// ---- Config -------------------------------------------------------------------------------

TEST(SuffixConfig, DefaultsAreVllms) {
  const SuffixConfig c;
  EXPECT_EQ(c.max_tree_depth, 24);
  EXPECT_EQ(c.max_cached_requests, 10000);
  EXPECT_EQ(c.max_spec_factor, 1.0f);
  EXPECT_EQ(c.max_spec_offset, 0.0f);
  EXPECT_EQ(c.min_token_prob, 0.1f);
  EXPECT_EQ(c.num_speculative_tokens, c.max_tree_depth);
  EXPECT_TRUE(ValidateSuffixConfig(c).ok());
  EXPECT_TRUE(ValidateSuffixConfig(Config(1, 0, 0.0f, 0.0f, 1)).ok());
  EXPECT_TRUE(ValidateSuffixConfig(Config(24, 10000, 1.0f, 1.0f, 64, -3.0f)).ok());
}

TEST(SuffixConfig, OutOfRangeValuesNameTheField) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const struct {
    SuffixConfig config;
    const char* field;
  } cases[] = {
      {Config(0), "suffix_decoding_max_tree_depth"},
      {Config(24, -1), "suffix_decoding_max_cached_requests"},
      {Config(24, 10, -0.5f), "suffix_decoding_max_spec_factor"},
      {Config(24, 10, nan), "suffix_decoding_max_spec_factor"},
      {Config(24, 10, inf), "suffix_decoding_max_spec_factor"},
      {Config(24, 10, 1.0f, -0.1f), "suffix_decoding_min_token_prob"},
      {Config(24, 10, 1.0f, 1.5f), "suffix_decoding_min_token_prob"},
      {Config(24, 10, 1.0f, nan), "suffix_decoding_min_token_prob"},
      {Config(24, 10, 1.0f, 0.1f, 0), "num_speculative_tokens"},
      {Config(24, 10, 1.0f, 0.1f, 4, nan), "max_spec_offset"},
  };
  for (const auto& tc : cases) {
    const Status s = ValidateSuffixConfig(tc.config);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << tc.field;
    EXPECT_NE(s.message().find(tc.field), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace inferd::spec
