// Scheduler behaviour with the real KV-cache manager and no model: token budget, running
// before waiting, chunked prefill, sequence cap, preemption order, priority, abort.
#include <gtest/gtest.h>

#include <memory>

#include "sched/scheduler.h"

namespace inferd {
namespace {

struct Harness {
  KvCacheManager kv;
  Scheduler sched;
  std::vector<std::unique_ptr<Request>> reqs;

  Harness(int64_t blocks, int64_t block_size, SchedulerConfig cfg, const std::string& policy = "fcfs",
          bool caching = true)
      : kv(blocks, block_size, caching), sched(cfg, kv, MakeSchedulingPolicy(policy)) {}

  Request* Add(const std::string& id, int64_t prompt_len, int priority = 0, int32_t first_token = 1) {
    auto r = std::make_unique<Request>();
    r->id = id;
    for (int64_t i = 0; i < prompt_len; ++i) r->tokens.push_back(first_token + static_cast<int32_t>(i));
    r->num_prompt_tokens = prompt_len;
    r->priority = priority;
    EXPECT_TRUE(sched.AddRequest(r.get()).ok());
    reqs.push_back(std::move(r));
    return reqs.back().get();
  }

  // One step: schedule, "compute", append a sampled token to every request that caught up.
  SchedulerOutput Step() {
    SchedulerOutput out = sched.Schedule();
    sched.OnStepComputed(out);
    for (const auto& s : out.scheduled) {
      Request* r = s.request;
      if (r->num_computed_tokens == r->num_tokens()) r->tokens.push_back(7);
    }
    return out;
  }
};

std::vector<std::pair<std::string, int64_t>> Summary(const SchedulerOutput& out) {
  std::vector<std::pair<std::string, int64_t>> v;
  for (const auto& s : out.scheduled) v.emplace_back(s.request->id, s.num_new_tokens);
  return v;
}

using Plan = std::vector<std::pair<std::string, int64_t>>;

TEST(Scheduler, BudgetChunksPromptsAndRunsRunningFirst) {
  Harness h(64, 16, {.max_num_batched_tokens = 64, .max_num_seqs = 8, .max_model_len = 512});
  h.Add("a", 100);
  h.Add("b", 30, 0, 1000);
  EXPECT_EQ(Summary(h.Step()), (Plan{{"a", 64}}));
  EXPECT_EQ(Summary(h.Step()), (Plan{{"a", 36}, {"b", 28}}));  // a catches up, b chunked
  EXPECT_EQ(Summary(h.Step()), (Plan{{"a", 1}, {"b", 2}}));    // a decodes first
  EXPECT_EQ(Summary(h.Step()), (Plan{{"a", 1}, {"b", 1}}));
}

TEST(Scheduler, SequenceCapLimitsRunning) {
  Harness h(64, 16, {.max_num_batched_tokens = 1000, .max_num_seqs = 2, .max_model_len = 512});
  h.Add("a", 5, 0, 1);
  h.Add("b", 5, 0, 100);
  h.Add("c", 5, 0, 200);
  EXPECT_EQ(Summary(h.Step()), (Plan{{"a", 5}, {"b", 5}}));
  EXPECT_EQ(h.sched.num_waiting(), 1u);
  h.sched.FinishRequest(h.reqs[0].get(), RequestStatus::kFinishedStopped);
  EXPECT_EQ(Summary(h.Step()), (Plan{{"b", 1}, {"c", 5}}));
}

TEST(Scheduler, PreemptsNewestByRecomputeAndResumesFirst) {
  // 4 blocks of 4 tokens: a (6 tokens) and b (6 tokens) take 2 blocks each; growing past
  // 8 tokens needs a third block, so the newest (b) is preempted for a.
  Harness h(4, 4, {.max_num_batched_tokens = 100, .max_num_seqs = 8, .max_model_len = 64}, "fcfs",
            /*caching=*/false);
  Request* a = h.Add("a", 6, 0, 1);
  Request* b = h.Add("b", 6, 0, 100);
  EXPECT_EQ(Summary(h.Step()), (Plan{{"a", 6}, {"b", 6}}));
  EXPECT_EQ(Summary(h.Step()), (Plan{{"a", 1}, {"b", 1}}));  // 7 computed, 8 tokens each
  EXPECT_EQ(Summary(h.Step()), (Plan{{"a", 1}, {"b", 1}}));  // 8 computed: both blocks full
  auto out = h.Step();                                       // a needs a 3rd block
  EXPECT_EQ(Summary(out), (Plan{{"a", 1}}));
  ASSERT_EQ(out.preempted.size(), 1u);
  EXPECT_EQ(out.preempted[0], b);
  EXPECT_EQ(b->status, RequestStatus::kPreempted);
  EXPECT_EQ(b->num_computed_tokens, 0);
  EXPECT_EQ(b->num_tokens(), 9);  // its generated tokens are kept and recomputed
  EXPECT_EQ(h.sched.num_preemptions_total(), 1);
  EXPECT_EQ(h.sched.num_waiting(), 1u);
  // a finishes; b resumes by recomputing all 9 tokens.
  h.sched.FinishRequest(a, RequestStatus::kFinishedStopped);
  EXPECT_EQ(h.kv.num_free_blocks(), 4);
  EXPECT_EQ(Summary(h.Step()), (Plan{{"b", 9}}));
  EXPECT_EQ(b->status, RequestStatus::kRunning);
}

TEST(Scheduler, PriorityOrdersWaitingAndPicksLowestPriorityVictim) {
  Harness h(4, 4, {.max_num_batched_tokens = 100, .max_num_seqs = 8, .max_model_len = 64}, "priority",
            /*caching=*/false);
  Request* low = h.Add("low", 6, /*priority=*/5, 1);
  Request* high = h.Add("high", 6, /*priority=*/0, 100);
  EXPECT_EQ(Summary(h.Step()), (Plan{{"high", 6}, {"low", 6}}));
  h.Step();
  h.Step();
  auto out = h.Step();  // high grows; low (worse priority) is the victim although it is older
  ASSERT_EQ(out.preempted.size(), 1u);
  EXPECT_EQ(out.preempted[0], low);
  EXPECT_EQ(Summary(out), (Plan{{"high", 1}}));
  (void)high;
}

TEST(Scheduler, RunningRequestPreemptsItselfWhenItIsTheVictim) {
  // One request alone that outgrows the cache cannot preempt anyone else.
  Harness h(2, 4, {.max_num_batched_tokens = 100, .max_num_seqs = 8, .max_model_len = 64}, "fcfs", false);
  Request* a = h.Add("a", 7, 0, 1);
  h.Step();  // 7 computed + 1 sampled = 8 tokens, 2 blocks
  h.Step();  // position 7 still fits: 9 tokens
  auto out = h.Step();  // position 8 needs block 3: a is preempted, nothing runs
  EXPECT_TRUE(out.scheduled.empty());
  ASSERT_EQ(out.preempted.size(), 1u);
  EXPECT_EQ(a->status, RequestStatus::kPreempted);
  EXPECT_EQ(h.kv.num_free_blocks(), 2);
}

TEST(Scheduler, AbortFreesBlocksImmediatelyInAnyState) {
  Harness h(8, 4, {.max_num_batched_tokens = 100, .max_num_seqs = 8, .max_model_len = 64});
  Request* a = h.Add("a", 10, 0, 1);
  Request* b = h.Add("b", 3, 0, 50);
  h.Step();
  EXPECT_LT(h.kv.num_free_blocks(), 8);
  h.sched.FinishRequest(a, RequestStatus::kFinishedAborted);
  h.sched.FinishRequest(b, RequestStatus::kFinishedAborted);
  EXPECT_EQ(h.kv.num_free_blocks(), 8);
  EXPECT_FALSE(h.sched.has_unfinished());
  Request* c = h.Add("c", 3, 0, 90);
  h.sched.FinishRequest(c, RequestStatus::kFinishedAborted);  // still waiting
  EXPECT_EQ(h.sched.num_waiting(), 0u);
  h.sched.FinishRequest(c, RequestStatus::kFinishedAborted);  // twice is harmless
}

TEST(Scheduler, AdmissionErrors) {
  Harness h(2, 4, {.max_num_batched_tokens = 100, .max_num_seqs = 8, .max_model_len = 16});
  Request r;
  r.id = "long";
  r.tokens.assign(16, 1);
  r.num_prompt_tokens = 16;
  Status st = h.sched.AddRequest(&r);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("16"), std::string::npos);
  r.tokens.assign(9, 1);
  r.num_prompt_tokens = 9;
  st = h.sched.AddRequest(&r);  // 9 + 1 tokens need 3 blocks of 4; the cache has 2
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
}

TEST(Scheduler, PrefixCacheHitSkipsComputedTokens) {
  Harness h(16, 4, {.max_num_batched_tokens = 100, .max_num_seqs = 8, .max_model_len = 64});
  Request* a = h.Add("a", 10, 0, 1);
  h.Step();
  h.sched.FinishRequest(a, RequestStatus::kFinishedStopped);
  Request* b = h.Add("b", 10, 0, 1);  // same prompt: 2 full blocks cached
  EXPECT_EQ(Summary(h.Step()), (Plan{{"b", 2}}));
  EXPECT_EQ(b->num_cached_tokens, 8);
}

// Speculative tokens: scheduled after a request's own token from the budget left after one
// row per running request behind it, capped by max_tokens and max_model_len; after
// verification the kept drafts count as computed and blocks holding only rejected drafts are
// freed (and the runner is told to keep only the entries still valid).
TEST(Scheduler, SpeculativeTokensUseLeftoverBudgetAndRollBack) {
  Harness h(64, 4, {.max_num_batched_tokens = 8, .max_num_seqs = 8, .max_model_len = 512});
  Request* a = h.Add("a", 6);
  Request* b = h.Add("b", 2, 0, 500);
  a->max_tokens = b->max_tokens = 100;
  EXPECT_EQ(Summary(h.Step()), (Plan{{"a", 6}, {"b", 2}}));  // prefill; both sampled a token
  ASSERT_EQ(a->num_tokens(), 7);
  a->spec_token_ids = {11, 12, 13, 14, 15, 16, 17, 18};
  SchedulerOutput out = h.sched.Schedule();
  ASSERT_EQ(out.scheduled.size(), 2u);
  // Budget 8: b behind a keeps one row, so a gets its token and 6 drafts.
  EXPECT_EQ(out.scheduled[0].num_new_tokens, 7);
  EXPECT_EQ(out.scheduled[0].spec_tokens, (std::vector<int32_t>{11, 12, 13, 14, 15, 16}));
  EXPECT_EQ(out.num_spec_tokens, 6);
  EXPECT_TRUE(a->spec_token_ids.empty());
  // a's table grew from 2 to 4 blocks (13 slots): the update appends two.
  ASSERT_EQ(out.scheduled[0].block_tables.size(), 1u);
  EXPECT_EQ(out.scheduled[0].block_tables[0].keep, 2);
  EXPECT_EQ(out.scheduled[0].block_tables[0].append.size(), 2u);
  EXPECT_EQ(h.kv.NumBlocksHeld("a"), 4);
  h.sched.OnStepComputed(out);
  EXPECT_EQ(a->num_computed_tokens, 7);  // its own tokens only
  // Two drafts kept, then the corrected token: 7 + 3 tokens, 9 computed.
  a->tokens.insert(a->tokens.end(), {11, 12, 40});
  h.sched.OnSpeculationVerified(a, 2);
  EXPECT_EQ(a->num_computed_tokens, 9);
  EXPECT_EQ(h.kv.NumBlocksHeld("a"), 3) << "the block that held only rejected drafts is freed";
  b->tokens.push_back(7);
  out = h.sched.Schedule();
  EXPECT_EQ(out.scheduled[0].num_new_tokens, 1);
  EXPECT_EQ(out.scheduled[0].block_tables[0].keep, 3) << "the runner drops the freed entry";
  EXPECT_TRUE(out.scheduled[0].block_tables[0].append.empty());
}

TEST(Scheduler, SpeculativeTokensRespectMaxTokensAndNeverPreempt) {
  Harness h(5, 4, {.max_num_batched_tokens = 64, .max_num_seqs = 8, .max_model_len = 512});
  Request* a = h.Add("a", 6);
  Request* b = h.Add("b", 6, 0, 100);
  a->max_tokens = 3;
  b->max_tokens = 100;
  h.Step();
  a->spec_token_ids = {1, 2, 3, 4};
  b->spec_token_ids = {1, 2, 3, 4, 5, 6, 7, 8};
  SchedulerOutput out = h.sched.Schedule();
  ASSERT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(out.scheduled[0].spec_tokens.size(), 1u) << "a has 1 output token of 3: one draft, then its token";
  // b: 4 blocks are taken (2 + 2), one is free: 8 drafts do not fit, 4 do (halving), and
  // nobody is preempted for them.
  EXPECT_EQ(out.scheduled[1].num_new_tokens, 5);
  EXPECT_TRUE(out.preempted.empty());
}

TEST(Scheduler, RunnerTablesAreResentAfterPreemptionAndFreedIdsReported) {
  Harness h(4, 4, {.max_num_batched_tokens = 64, .max_num_seqs = 8, .max_model_len = 512});
  h.Add("a", 7);
  h.Add("b", 7, 0, 100);
  SchedulerOutput out = h.Step();  // 2 blocks each
  for (int i = 0; i < 3 && out.preempted.empty(); ++i) out = h.Step();
  ASSERT_FALSE(out.preempted.empty());
  EXPECT_EQ(out.freed_ids, std::vector<std::string>{out.preempted[0]->id});
  Request* victim = out.preempted[0];
  h.sched.FinishRequest(h.sched.running()[0], RequestStatus::kFinishedStopped);
  out = h.sched.Schedule();  // the victim resumes: its whole table again
  ASSERT_EQ(out.scheduled.size(), 1u);
  EXPECT_EQ(out.scheduled[0].request, victim);
  EXPECT_EQ(out.scheduled[0].block_tables[0].keep, 0);
  EXPECT_EQ(static_cast<int64_t>(out.scheduled[0].block_tables[0].append.size()), h.kv.NumBlocksHeld(victim->id));
  EXPECT_EQ(out.freed_ids.size(), 1u) << "the finished request";
}

}  // namespace
}  // namespace inferd
