// Balancing and admission of the router: prefix keys, the balancer, rate limits.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "router/balancer.h"
#include "router/prefix_key.h"
#include "router/rate_limiter.h"

namespace inferd::router {
namespace {

using json = nlohmann::json;

// ----------------------------------------------------------------------------- prefix keys

TEST(PromptPrefixText, ChatMessagesInOrder) {
  json body = json::parse(R"({"messages":[{"role":"system","content":"S"},
      {"role":"user","content":[{"type":"text","text":"A"},{"type":"image_url","image_url":{}},{"type":"text","text":"B"}]},
      {"role":"assistant","content":null,"tool_calls":[{"id":"c"}]}]})");
  EXPECT_EQ(PromptPrefixText(body, "/v1/chat/completions", 1000),
            "system\nS\nuser\nAimage_urlB\nassistant\n[{\"id\":\"c\"}]\n");
  json tools = json::parse(R"({"tools":[{"type":"function"}],"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(PromptPrefixText(tools, "/v1/chat/completions", 1000), "[{\"type\":\"function\"}]user\nx\n");
}

TEST(PromptPrefixText, CompletionPromptForms) {
  EXPECT_EQ(PromptPrefixText(json::parse(R"({"prompt":"hello"})"), "/v1/completions", 100), "hello");
  EXPECT_EQ(PromptPrefixText(json::parse(R"({"prompt":["a","b"]})"), "/v1/completions", 100), "a");
  EXPECT_EQ(PromptPrefixText(json::parse(R"({"prompt":[1,22,333]})"), "/v1/completions", 100), "1 22 333");
  EXPECT_EQ(PromptPrefixText(json::parse(R"({"prompt":[[4,5],[6]]})"), "/v1/completions", 100), "4 5");
  EXPECT_EQ(PromptPrefixText(json::parse(R"({"prompt":"hello"})"), "/v1/embeddings", 100), "");
  EXPECT_EQ(PromptPrefixText(json::parse(R"({"prompt":"hello world"})"), "/v1/completions", 5), "hello");
}

TEST(PromptPrefixText, OddShapesNeverThrow) {
  for (const char* text : {R"({"messages":5})", R"({"messages":[1,"x",null,{"role":7,"content":{"a":1}}]})",
                           R"({"prompt":{"x":1}})", R"({"prompt":[null,true]})", R"([1,2])", R"("str")",
                           R"({"messages":[{"content":[1,{"type":5},{"type":"text","text":9}]}]})"}) {
    json body = json::parse(text);
    EXPECT_NO_THROW(PromptPrefixText(body, "/v1/chat/completions", 100)) << text;
    EXPECT_NO_THROW(PromptPrefixText(body, "/v1/completions", 100)) << text;
  }
}

TEST(BlockHashes, ChainedOverCompleteBlocks) {
  const std::string a = "aaaabbbbccccdd", b = "aaaaXbbbccccdd";
  auto ha = BlockHashes(a, 4, 10), hb = BlockHashes(b, 4, 10);
  ASSERT_EQ(ha.size(), 3u);  // "dd" is a partial block
  EXPECT_EQ(ha[0], hb[0]);
  EXPECT_NE(ha[1], hb[1]);
  EXPECT_NE(ha[2], hb[2]);  // the chain carries the difference on
  EXPECT_EQ(BlockHashes(a, 4, 2).size(), 2u);
  EXPECT_EQ(BlockHashes(a, 4, 10), ha);  // deterministic
  EXPECT_NE(BlockHashes("bbbbaaaa", 4, 10)[1], BlockHashes("aaaaaaaa", 4, 10)[1]);
  EXPECT_TRUE(BlockHashes("abc", 4, 10).empty());
  EXPECT_TRUE(BlockHashes("abcd", 0, 10).empty());
}

// ----------------------------------------------------------------------------- balancer

std::vector<Candidate> Idle(std::initializer_list<size_t> ids) {
  std::vector<Candidate> c;
  for (size_t id : ids) c.push_back({id, 0});
  return c;
}

Balancer WithBackends(BalancerOptions o, size_t n) {
  Balancer b(o);
  for (size_t i = 0; i < n; ++i) b.AddBackend(i);
  return b;
}

TEST(Balancer, ParsePolicy) {
  EXPECT_EQ(*ParsePolicy("prefix"), Policy::kPrefix);
  EXPECT_EQ(*ParsePolicy("least-load"), Policy::kLeastLoad);
  EXPECT_EQ(*ParsePolicy("round-robin"), Policy::kRoundRobin);
  auto bad = ParsePolicy("random");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("round-robin"), std::string::npos);
}

TEST(Balancer, RoundRobinRotatesOverCandidates) {
  Balancer b = WithBackends({.policy = Policy::kRoundRobin}, 3);
  auto c = Idle({2, 0, 1});
  std::vector<size_t> got;
  for (int i = 0; i < 6; ++i) got.push_back(b.Choose({}, c).id);
  EXPECT_EQ(got, (std::vector<size_t>{0, 1, 2, 0, 1, 2}));
}

TEST(Balancer, LeastLoadTakesTheLowestAndSpreadsTies) {
  Balancer b = WithBackends({.policy = Policy::kLeastLoad}, 3);
  std::vector<Candidate> c = {{0, 3}, {1, 1}, {2, 5}};
  EXPECT_EQ(b.Choose({}, c).id, 1u);
  std::map<size_t, int> seen;
  for (int i = 0; i < 9; ++i) seen[b.Choose({}, Idle({0, 1, 2})).id]++;
  EXPECT_EQ(seen.size(), 3u);
}

TEST(Balancer, PrefixKeepsAConversationOnOneBackend) {
  Balancer b = WithBackends({}, 3);
  const std::vector<uint64_t> turn1 = {11, 12}, turn2 = {11, 12, 13, 14};
  Pick first = b.Choose(turn1, Idle({0, 1, 2}));
  EXPECT_EQ(first.kind, PickKind::kRing);
  Pick second = b.Choose(turn2, Idle({0, 1, 2}));
  EXPECT_EQ(second.kind, PickKind::kPrefixHit);
  EXPECT_EQ(second.id, first.id);
  EXPECT_EQ(second.matched_blocks, 2u);
  EXPECT_EQ(b.Choose(turn2, Idle({0, 1, 2})).matched_blocks, 4u);
}

TEST(Balancer, LongestPrefixWins) {
  Balancer b = WithBackends({}, 3);
  // Record {1} on one backend and {1,2,3} on another by restricting the candidates.
  Pick a = b.Choose(std::vector<uint64_t>{1}, Idle({0}));
  Pick c = b.Choose(std::vector<uint64_t>{1, 2, 3}, Idle({2}));
  ASSERT_EQ(a.id, 0u);
  ASSERT_EQ(c.id, 2u);
  Pick p = b.Choose(std::vector<uint64_t>{1, 2, 3, 4}, Idle({0, 1, 2}));
  EXPECT_EQ(p.id, 2u);
  EXPECT_EQ(p.kind, PickKind::kPrefixHit);
  EXPECT_EQ(p.matched_blocks, 3u);
}

TEST(Balancer, OverloadedHolderLosesItsHits) {
  Balancer b = WithBackends({}, 3);
  const std::vector<uint64_t> h = {7, 8};
  const size_t holder = b.Choose(h, Idle({0, 1, 2})).id;
  std::vector<Candidate> c = Idle({0, 1, 2});
  c[holder].load = 10;  // cap: ceil(1.25 * 11 / 3) = 5 < 11
  Pick p = b.Choose(h, c);
  EXPECT_NE(p.id, holder);
  EXPECT_NE(p.kind, PickKind::kPrefixHit);
  // The index now points at the new backend.
  Pick again = b.Choose(h, Idle({0, 1, 2}));
  EXPECT_EQ(again.id, p.id);
  EXPECT_EQ(again.kind, PickKind::kPrefixHit);
}

TEST(Balancer, AfterASpillBothHoldersAreKnown) {
  Balancer b = WithBackends({}, 3);
  const std::vector<uint64_t> h = {21, 22};
  const size_t first = b.Choose(h, Idle({0, 1, 2})).id;
  std::vector<Candidate> c = Idle({0, 1, 2});
  c[first].load = 10;
  const size_t second = b.Choose(h, c).id;  // spills
  ASSERT_NE(second, first);
  // Now the second is busy and the first is free again: the first still has the prefix.
  c = Idle({0, 1, 2});
  c[second].load = 10;
  Pick p = b.Choose(h, c);
  EXPECT_EQ(p.id, first);
  EXPECT_EQ(p.kind, PickKind::kPrefixHit);
  EXPECT_EQ(p.matched_blocks, 2u);
  // Forgetting one holder keeps the other.
  b.ForgetBackend(first);
  EXPECT_EQ(b.Choose(h, Idle({0, 1, 2})).id, second);
  EXPECT_EQ(b.index_size(), 2u);
}

TEST(Balancer, HolderNotACandidateFallsBack) {
  Balancer b = WithBackends({}, 3);
  const std::vector<uint64_t> h = {5};
  const size_t holder = b.Choose(h, Idle({0, 1, 2})).id;
  std::vector<Candidate> others;
  for (size_t i = 0; i < 3; ++i) {
    if (i != holder) others.push_back({i, 0});
  }
  EXPECT_NE(b.Choose(h, others).id, holder);
}

TEST(Balancer, ForgetAndRemoveDropIndexEntries) {
  Balancer b = WithBackends({}, 2);
  const std::vector<uint64_t> h = {1, 2, 3};
  const size_t holder = b.Choose(h, Idle({0, 1})).id;
  EXPECT_EQ(b.index_size(), 3u);
  b.ForgetBackend(holder);
  EXPECT_EQ(b.index_size(), 0u);
  EXPECT_NE(b.Choose(h, Idle({0, 1})).kind, PickKind::kPrefixHit);
  b.RemoveBackend(holder);
  b.RemoveBackend(1 - holder);
  EXPECT_EQ(b.index_size(), 0u);
}

TEST(Balancer, IndexIsBoundedLru) {
  Balancer b = WithBackends({.max_index_entries = 100}, 3);
  for (uint64_t k = 0; k < 1000; ++k) b.Choose(std::vector<uint64_t>{k * 3 + 1, k * 3 + 2}, Idle({0, 1, 2}));
  EXPECT_EQ(b.index_size(), 100u);
  // The most recent entries survive.
  EXPECT_EQ(b.Choose(std::vector<uint64_t>{999 * 3 + 1}, Idle({0, 1, 2})).kind, PickKind::kPrefixHit);
}

TEST(Balancer, RingSpreadsKeysAndMovesFewOnGrowth) {
  Balancer three = WithBackends({.max_index_entries = 1}, 3);
  Balancer four = WithBackends({.max_index_entries = 1}, 4);
  std::mt19937_64 rng(42);
  std::map<size_t, int> count;
  int moved = 0;
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    const std::vector<uint64_t> key = {rng()};
    const size_t a = three.Choose(key, Idle({0, 1, 2})).id;
    const size_t b = four.Choose(key, Idle({0, 1, 2, 3})).id;
    count[a]++;
    if (a != b) ++moved;
  }
  for (const auto& [id, c] : count) {
    EXPECT_GT(c, n * 20 / 100) << id;
    EXPECT_LT(c, n * 47 / 100) << id;
  }
  EXPECT_LT(moved, n * 40 / 100);  // about a quarter should move to the new backend
}

TEST(Balancer, RingSkipsBackendsOverTheBound) {
  Balancer b = WithBackends({.max_index_entries = 1}, 3);
  std::mt19937_64 rng(7);
  const std::vector<Candidate> c = {{0, 10}, {1, 0}, {2, 0}};
  for (int i = 0; i < 200; ++i) EXPECT_NE(b.Choose(std::vector<uint64_t>{rng()}, c).id, 0u);
}

// ----------------------------------------------------------------------------- rate limits

TEST(RateLimiter, DisabledAllowsEverything) {
  RateLimiter r({});
  EXPECT_FALSE(r.enabled());
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(r.Admit("k", 1e9, 0).allowed);
}

TEST(RateLimiter, BurstThenRefusalWithRetryAfter) {
  RateLimiter r({.rps = 2, .burst = 3});
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(r.Admit("a", 0, 0).allowed);
  RateDecision d = r.Admit("a", 0, 0);
  EXPECT_FALSE(d.allowed);
  EXPECT_DOUBLE_EQ(d.retry_after_s, 0.5);
  EXPECT_EQ(d.reason, "rate limit exceeded for this API key: 2 requests per second");
  // A refused request takes nothing: exactly at the refill it is allowed.
  EXPECT_FALSE(r.Admit("a", 0, 0.49).allowed);
  EXPECT_TRUE(r.Admit("a", 0, 0.5).allowed);
  EXPECT_FALSE(r.Admit("a", 0, 0.5).allowed);
}

TEST(RateLimiter, KeysAreIndependentAndGlobalSpansThem) {
  RateLimiter r({.rps = 1, .burst = 1});
  EXPECT_TRUE(r.Admit("a", 0, 0).allowed);
  EXPECT_FALSE(r.Admit("a", 0, 0).allowed);
  EXPECT_TRUE(r.Admit("b", 0, 0).allowed);
  RateLimiter g({.global_rps = 1, .global_burst = 2});
  EXPECT_TRUE(g.Admit("a", 0, 0).allowed);
  EXPECT_TRUE(g.Admit("b", 0, 0).allowed);
  RateDecision d = g.Admit("c", 0, 0);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason.rfind("global rate limit exceeded", 0), 0u);
  EXPECT_DOUBLE_EQ(d.retry_after_s, 1.0);
}

TEST(RateLimiter, TokensPerMinuteWithSettle) {
  RateLimiter r({.tpm = 600});  // 10 tokens per second
  EXPECT_TRUE(r.Admit("a", 500, 0).allowed);
  RateDecision d = r.Admit("a", 200, 0);  // 100 left, 200 needed: 10 s
  EXPECT_FALSE(d.allowed);
  EXPECT_DOUBLE_EQ(d.retry_after_s, 10);
  EXPECT_NE(d.reason.find("600 tokens per minute"), std::string::npos);
  r.Settle("a", 500, 100, 0);  // used 100 of the 500 estimated: 400 back
  EXPECT_TRUE(r.Admit("a", 200, 0).allowed);
  r.Settle("a", 200, 900, 0);  // 700 more than estimated: 300 - 700 = -400, in debt
  d = r.Admit("a", 10, 0);
  EXPECT_FALSE(d.allowed);
  EXPECT_DOUBLE_EQ(d.retry_after_s, 41);  // (10 + 400) / 10
  // An estimate above the capacity is admitted once the bucket is full.
  RateLimiter big({.tpm = 60});
  EXPECT_TRUE(big.Admit("a", 1000, 0).allowed);
  EXPECT_FALSE(big.Admit("a", 1000, 30).allowed);
}

TEST(RateLimiter, HostileNumbersAreZero) {
  RateLimiter r({.tpm = 60});
  EXPECT_TRUE(r.Admit("a", std::nan(""), 0).allowed);
  EXPECT_TRUE(r.Admit("a", -1e9, 0).allowed);
  r.Settle("a", std::nan(""), -5, 0);
  EXPECT_TRUE(r.Admit("a", 60, 0).allowed);
}

TEST(RateLimiter, KeyStateIsBounded) {
  RateLimiter r({.rps = 1, .burst = 1, .max_keys = 50});
  for (int i = 0; i < 500; ++i) r.Admit("key" + std::to_string(i), 0, i * 0.001);
  EXPECT_LE(r.num_keys(), 50u);
  // Idle keys whose buckets refilled are dropped first, losing nothing.
  RateLimiter q({.rps = 1, .burst = 1, .max_keys = 2});
  EXPECT_TRUE(q.Admit("a", 0, 0).allowed);
  EXPECT_TRUE(q.Admit("b", 0, 5).allowed);
  EXPECT_TRUE(q.Admit("c", 0, 5).allowed);  // "a" is full again: it goes
  EXPECT_FALSE(q.Admit("b", 0, 5).allowed);
  EXPECT_FALSE(q.Admit("c", 0, 5).allowed);
}

}  // namespace
}  // namespace inferd::router
