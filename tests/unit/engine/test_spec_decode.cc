// Speculative decoding through the split engine (issue 19), on a fake backend and on the
// embedded model. The fake backend keeps a chain hash per KV slot, written through the block
// tables and read back from them, and its logits depend on that hash: a wrong slot, a stale
// table entry or the K/V of a rejected draft read as context changes the output. Greedy and
// seeded outputs with speculation must equal those without, token for token (the CPU
// kernels are batch invariant and verification draws with the sequence's own counter-based
// RNG, so even sampled tokens match).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>

#include "../model_test_util.h"
#include "inferd/engine.h"
#include "engine/engine_core.h"
#include "kv/kv_layout.h"

namespace inferd {
namespace {

uint64_t Mix(uint64_t a, uint64_t b) {
  uint64_t x = a * 0x9E3779B97F4A7C15ull + b + 0x632BE59BD9B4E019ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

constexpr int32_t kFirst = 300, kRange = 40;  // the fake model's tokens

// Next-token logits that depend on the last token (a short cycle: prompt lookup finds it)
// and, now and then, on the whole context through its chain hash.
class FakeBackend : public Backend {
 public:
  FakeBackend(int64_t vocab, int64_t block_size, int64_t num_blocks) : vocab_(vocab) {
    shape_.layers_per_block = 1;
    shape_.num_kv_heads = 1;
    shape_.head_dim = 1;
    shape_.block_size = block_size;
    shape_.num_blocks = num_blocks;
    const int64_t full[] = {0};
    shape_.layout = MakeKvLayout(full);
    slots_.assign(static_cast<size_t>(block_size * num_blocks), 0);
  }
  std::string name() const override { return "fake"; }
  const KvCacheShape& kv_shape() const override { return shape_; }
  MemoryReport memory() const override { return {}; }
  int64_t forwards = 0, rows = 0;

  Status Forward(const ForwardBatch& batch, float* logits) override {
    ++forwards;
    rows += static_cast<int64_t>(batch.token_ids.size());
    std::map<int64_t, uint64_t> row_hash;
    for (const ops::AttnSeq& s : batch.seqs) {
      for (int64_t r = s.token_begin; r < s.token_begin + s.num_tokens; ++r) {
        const int64_t pos = batch.positions[r];
        const uint64_t prev = pos == 0 ? 1 : slots_[Slot(s.block_table, pos - 1)];
        const uint64_t h = Mix(prev, static_cast<uint64_t>(batch.token_ids[r]));
        slots_[Slot(s.block_table, pos)] = h;
        row_hash[r] = h;
      }
    }
    for (size_t i = 0; i < batch.logits_rows.size(); ++i) {
      const int64_t r = batch.logits_rows[i];
      float* row = logits + static_cast<int64_t>(i) * vocab_;
      std::fill(row, row + vocab_, -30.0f);
      const int32_t t = batch.token_ids[r];
      const uint64_t h = row_hash.at(r);
      const int32_t primary = kFirst + (((t - kFirst) % kRange + kRange) * 7 + 3) % kRange;
      const int32_t secondary = kFirst + static_cast<int32_t>(h % kRange);
      row[primary] = 5.0f;
      row[secondary] = std::max(row[secondary], h % 7 == 0 ? 6.0f : 3.0f);
      row[kFirst + (primary - kFirst + 1) % kRange] = std::max(row[kFirst + (primary - kFirst + 1) % kRange], 2.0f);
    }
    return Status::OK();
  }

 private:
  int64_t Slot(const int32_t* table, int64_t pos) const {
    return static_cast<int64_t>(table[pos / shape_.block_size]) * shape_.block_size + pos % shape_.block_size;
  }
  int64_t vocab_;
  KvCacheShape shape_;
  std::vector<uint64_t> slots_;
};

struct RunResult {
  std::vector<RequestOutput> outputs;
  EngineCounters counters;
  int64_t forwards = 0;
};

// Runs `requests` to completion on a fake-backend engine, adding them all at once.
RunResult RunFake(const std::vector<GenerateRequest>& requests, const std::string& speculative, int64_t num_blocks = 256,
            bool prefix_caching = true) {
  RunResult run;
  const std::string path = testing::EmbeddedModelPath();
  auto model = LoadModel(LoadOptions{.model = path});
  EXPECT_TRUE(model.ok());
  EngineOptions o;
  o.max_model_len = 128;
  o.block_size = 4;
  o.max_num_batched_tokens = 64;
  o.enable_prefix_caching = prefix_caching;
  auto sc = spec::ParseSpeculativeConfig(speculative);
  EXPECT_TRUE(sc.ok()) << sc.status().ToString();
  o.speculative = *sc;
  o.speculative.adaptive = false;  // counts below must not depend on timings
  auto backend = std::make_unique<FakeBackend>((*model)->config.vocab_size, o.block_size, num_blocks);
  FakeBackend* fake = backend.get();
  auto core = EngineCore::CreateWithBackend(std::move(model).value(), o, std::move(backend));
  EXPECT_TRUE(core.ok()) << core.status().ToString();
  if (!core.ok()) return run;
  std::map<std::string, RequestOutput> done;
  for (const GenerateRequest& r : requests) EXPECT_TRUE((*core)->AddRequest(r).ok());
  std::map<std::string, std::vector<int32_t>> streamed;
  for (int steps = 0; (*core)->HasUnfinished() && steps < 5000; ++steps) {
    StepResult res = (*core)->Step();
    for (const OutputDelta& d : res.deltas) {
      auto& v = streamed[d.request_id + "#" + std::to_string(d.index)];
      v.insert(v.end(), d.new_token_ids.begin(), d.new_token_ids.end());
    }
    for (FinishedRequest& f : res.finished) {
      EXPECT_TRUE(f.output.ok());
      done[f.request_id] = std::move(f.output).value();
    }
  }
  EXPECT_FALSE((*core)->HasUnfinished());
  EXPECT_EQ((*core)->kv_usage(), 0.0) << "every block is free once every request ended";
  for (const GenerateRequest& r : requests) {
    run.outputs.push_back(done.at(r.request_id));
    for (const CompletionOutput& c : run.outputs.back().outputs) {
      // The stream carried exactly the final tokens, in order.
      EXPECT_EQ(streamed[r.request_id + "#" + std::to_string(c.index)], c.token_ids) << r.request_id;
    }
  }
  run.counters = (*core)->counters();
  run.forwards = fake->forwards;
  return run;
}

std::vector<GenerateRequest> Requests(int count, uint64_t seed, SamplingParams p) {
  std::mt19937_64 rng(seed);
  std::vector<GenerateRequest> out;
  for (int i = 0; i < count; ++i) {
    GenerateRequest r;
    r.request_id = std::to_string(i);
    r.request_id.insert(r.request_id.begin(), 'r');
    const int len = 3 + static_cast<int>(rng() % 30);
    for (int j = 0; j < len; ++j) r.prompt_token_ids.push_back(kFirst + static_cast<int32_t>(rng() % kRange));
    r.params = p;
    r.params.max_tokens = 20 + static_cast<int>(rng() % 60);
    if (p.seed) r.params.seed = *p.seed + i;
    out.push_back(std::move(r));
  }
  return out;
}

void ExpectSameOutputs(const RunResult& a, const RunResult& b) {
  ASSERT_EQ(a.outputs.size(), b.outputs.size());
  for (size_t i = 0; i < a.outputs.size(); ++i) {
    ASSERT_EQ(a.outputs[i].outputs.size(), b.outputs[i].outputs.size());
    for (size_t j = 0; j < a.outputs[i].outputs.size(); ++j) {
      const CompletionOutput &x = a.outputs[i].outputs[j], &y = b.outputs[i].outputs[j];
      EXPECT_EQ(x.token_ids, y.token_ids) << "request " << i << " sample " << j;
      EXPECT_EQ(x.text, y.text);
      EXPECT_EQ(x.finish_reason, y.finish_reason);
      EXPECT_FLOAT_EQ(x.cumulative_logprob, y.cumulative_logprob);
      ASSERT_EQ(x.logprobs.has_value(), y.logprobs.has_value());
      if (x.logprobs) {
        ASSERT_EQ(x.logprobs->size(), y.logprobs->size());
        for (size_t t = 0; t < x.logprobs->size(); ++t) {
          for (const auto& [id, lp] : (*x.logprobs)[t]) {
            ASSERT_TRUE((*y.logprobs)[t].count(id)) << "position " << t;
            EXPECT_FLOAT_EQ(lp.logprob, (*y.logprobs)[t].at(id).logprob);
            EXPECT_EQ(lp.rank, (*y.logprobs)[t].at(id).rank);
          }
        }
      }
    }
  }
}

constexpr const char* kNgram = R"({"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_min": 1, "prompt_lookup_max": 3})";

class SpecDecodeFakeTest : public ::testing::Test {
 protected:
  void SetUp() override { INFERD_REQUIRE_MODEL(path); }
};

TEST_F(SpecDecodeFakeTest, GreedyOutputIsTheNonSpeculativeOneForEveryBatchSize) {
  SamplingParams p;
  p.temperature = 0;
  for (int batch : {1, 4, 16}) {
    const auto reqs = Requests(batch, 7 + batch, p);
    const RunResult base = RunFake(reqs, "");
    const RunResult spec = RunFake(reqs, kNgram);
    ExpectSameOutputs(base, spec);
    EXPECT_GT(spec.counters.spec_num_accepted_tokens, 0) << "batch " << batch;
    EXPECT_LT(spec.forwards, base.forwards) << "batch " << batch << ": accepted drafts save steps";
    EXPECT_EQ(base.counters.spec_num_drafts, 0);
    EXPECT_EQ(spec.counters.generation_tokens, base.counters.generation_tokens);
    int64_t per_pos = 0;
    for (int64_t a : spec.counters.spec_accepted_per_pos) per_pos += a;
    EXPECT_EQ(per_pos, spec.counters.spec_num_accepted_tokens);
    EXPECT_LE(spec.counters.spec_num_accepted_tokens, spec.counters.spec_num_draft_tokens);
  }
}

TEST_F(SpecDecodeFakeTest, SeededSamplingIsTheNonSpeculativeOne) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.95f;
  p.seed = 1234;
  p.logprobs = 2;
  const auto reqs = Requests(8, 99, p);
  const RunResult base = RunFake(reqs, "");
  const RunResult spec = RunFake(reqs, kNgram);
  ExpectSameOutputs(base, spec);
  EXPECT_GT(spec.counters.spec_num_accepted_tokens, 0);
  EXPECT_GT(spec.counters.spec_num_draft_tokens, spec.counters.spec_num_accepted_tokens) << "some drafts rejected";
}

TEST_F(SpecDecodeFakeTest, PreemptionInTheMiddleKeepsTheOutput) {
  SamplingParams p;
  p.temperature = 0;
  const auto reqs = Requests(12, 5, p);
  // 40 blocks of 4 tokens: twelve requests of up to ~110 tokens cannot all stay resident.
  const RunResult base = RunFake(reqs, "", 40);
  const RunResult spec = RunFake(reqs, kNgram, 40);
  ExpectSameOutputs(base, spec);
  EXPECT_GT(spec.counters.num_preemptions, 0);
  EXPECT_GT(spec.counters.spec_num_accepted_tokens, 0);
}

TEST_F(SpecDecodeFakeTest, StopsInsideAnAcceptedRunAndNGreaterThanOne) {
  SamplingParams p;
  p.temperature = 0.7f;
  p.seed = 3;
  p.n = 3;
  p.stop_token_ids = {kFirst + 11};
  auto reqs = Requests(6, 17, p);
  for (auto& r : reqs) r.params.ignore_eos = true;
  const RunResult base = RunFake(reqs, "");
  const RunResult spec = RunFake(reqs, kNgram);
  ExpectSameOutputs(base, spec);
  int stopped = 0;
  for (const auto& o : spec.outputs) {
    for (const auto& c : o.outputs) stopped += c.finish_reason == "stop";
  }
  EXPECT_GT(stopped, 0);
}

TEST_F(SpecDecodeFakeTest, PrefixCacheHoldsOnlyVerifiedTokens) {
  SamplingParams p;
  p.temperature = 0;
  auto reqs = Requests(4, 41, p);
  // The same requests again: their prompts hit the blocks the first ones cached; a block
  // holding a rejected draft's K/V under a verified hash would change the second outputs.
  auto again = reqs;
  for (auto& r : again) r.request_id += "b";
  reqs.insert(reqs.end(), again.begin(), again.end());
  const RunResult base = RunFake(reqs, "", 256, false);
  const RunResult spec = RunFake(reqs, kNgram, 256, true);
  ExpectSameOutputs(base, spec);
  EXPECT_GT(spec.counters.prefix_hits, 0);
}

TEST_F(SpecDecodeFakeTest, DisableByBatchSizeTurnsSpeculationOff) {
  SamplingParams p;
  p.temperature = 0;
  const auto reqs = Requests(8, 3, p);
  const RunResult spec = RunFake(
      reqs, R"({"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 2, "disable_by_batch_size": 2})");
  const RunResult base = RunFake(reqs, "");
  ExpectSameOutputs(base, spec);
  // Only the last stragglers (two or fewer running) speculated.
  EXPECT_LT(spec.counters.spec_num_drafts, base.counters.generation_tokens / 4);
}

// The embedded model: greedy output with prompt lookup equals the output without it.
TEST(SpecDecodeModelTest, GreedyMatchesWithoutSpeculation) {
  INFERD_REQUIRE_MODEL(path);
  const std::vector<std::string> prompts = {
      "Repeat this list exactly: apple, banana, cherry, date, elderberry, fig, grape. List: apple, banana,",
      "def add(a, b):\n    return a + b\n\ndef add(a, b):\n    return",
      "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over",
      "Hello! How are you today?"};
  std::vector<std::vector<int32_t>> results[2];
  EngineCounters counters[2];
  for (int mode = 0; mode < 2; ++mode) {
    EngineOptions o;
    o.max_model_len = 512;
    if (mode == 1) o.speculative = *spec::ParseSpeculativeConfig(kNgram);
    o.speculative.adaptive = false;
    auto e = Engine::Create(std::move(LoadModel(LoadOptions{.model = path})).value(), o);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    std::vector<GenerateRequest> reqs;
    for (const std::string& text : prompts) {
      GenerateRequest r;
      r.prompt_token_ids = (*e)->tokenizer().Encode(text, true, false);
      r.params.temperature = 0;
      r.params.max_tokens = 48;
      reqs.push_back(r);
    }
    for (auto& out : (*e)->Generate(reqs)) {
      ASSERT_TRUE(out.ok());
      results[mode].push_back(out->outputs[0].token_ids);
    }
    counters[mode] = (*e)->core().counters();
  }
  EXPECT_EQ(results[0], results[1]);
  EXPECT_GT(counters[1].spec_num_accepted_tokens, 0);
}

// A draft model: the embedded model drafting for itself. The CPU kernels are batch invariant,
// so the draft's greedy choices are the target's: every greedy draft is accepted, and the
// output (greedy or seeded) is the one without speculation.
std::string DraftConfig(const std::string& path, int k) {
  std::string s = R"({"method": "draft_model", "model": ")";
  s.append(path);
  s.append(R"(", "num_speculative_tokens": )");
  s.append(std::to_string(k));
  s.append("}");
  return s;
}

std::vector<RequestOutput> RunEmbedded(const std::string& path, const std::string& speculative, SamplingParams p,
                                       EngineCounters* counters) {
  EngineOptions o;
  o.max_model_len = 512;
  o.speculative = *spec::ParseSpeculativeConfig(speculative);
  o.speculative.adaptive = false;
  auto e = Engine::Create(std::move(LoadModel(LoadOptions{.model = path})).value(), o);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  if (!e.ok()) return {};
  std::vector<GenerateRequest> reqs;
  for (const char* text : {"Once upon a time", "List three colors:", "The capital of France is", "def fib(n):"}) {
    GenerateRequest r;
    r.prompt_token_ids = (*e)->tokenizer().Encode(text, true, false);
    r.params = p;
    reqs.push_back(r);
  }
  std::vector<RequestOutput> out;
  for (auto& r : (*e)->Generate(reqs)) {
    EXPECT_TRUE(r.ok());
    if (r.ok()) out.push_back(*r);
  }
  *counters = (*e)->core().counters();
  return out;
}

TEST(SpecDecodeDraftModelTest, TheModelAsItsOwnDraftAcceptsEveryGreedyDraft) {
  INFERD_REQUIRE_MODEL(path);
  const std::string cfg = DraftConfig(path, 3);
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = 40;
  p.ignore_eos = true;
  EngineCounters base_c, spec_c;
  const auto base = RunEmbedded(path, "", p, &base_c);
  const auto spec = RunEmbedded(path, cfg, p, &spec_c);
  ASSERT_EQ(base.size(), spec.size());
  for (size_t i = 0; i < base.size(); ++i) EXPECT_EQ(base[i].outputs[0].token_ids, spec[i].outputs[0].token_ids);
  EXPECT_GT(spec_c.spec_num_draft_tokens, 0);
  EXPECT_EQ(spec_c.spec_num_accepted_tokens, spec_c.spec_num_draft_tokens);
  // Seeded sampling: the target draws every token as without speculation.
  p.temperature = 0.9f;
  p.seed = 5;
  const auto base_s = RunEmbedded(path, "", p, &base_c);
  const auto spec_s = RunEmbedded(path, cfg, p, &spec_c);
  ASSERT_EQ(base_s.size(), spec_s.size());
  for (size_t i = 0; i < base_s.size(); ++i) EXPECT_EQ(base_s[i].outputs[0].token_ids, spec_s[i].outputs[0].token_ids);
  EXPECT_LT(spec_c.spec_num_accepted_tokens, spec_c.spec_num_draft_tokens) << "sampled tokens miss greedy drafts";
}

TEST(SpecDecodeDraftModelTest, ADraftWithAnotherTokenizerIsRefused) {
  INFERD_REQUIRE_MODEL(path);
  const char* gemma = std::getenv("INFERD_GEMMA3_MODEL");
  if (gemma == nullptr || !std::filesystem::exists(gemma)) GTEST_SKIP() << "INFERD_GEMMA3_MODEL not set";
  EngineOptions o;
  o.max_model_len = 256;
  o.speculative = *spec::ParseSpeculativeConfig(DraftConfig(gemma, 3));
  auto e = Engine::Create(std::move(LoadModel(LoadOptions{.model = path})).value(), o);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("needs the target's tokenizer"), std::string::npos) << e.status().message();
  o.speculative.draft_model = "/nonexistent/draft.gguf";
  e = Engine::Create(std::move(LoadModel(LoadOptions{.model = path})).value(), o);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("draft model /nonexistent/draft.gguf"), std::string::npos);
}

// Runs `steps` steps at `batch` in the controller's chosen modes: a speculative step emits 2
// tokens per sequence in on_seconds, a plain one 1 in off_seconds. Returns the speculative steps.
int FeedController(SpecController& ctl, int steps, double on_seconds, double off_seconds, int64_t batch) {
  int on_steps = 0;
  for (int i = 0; i < steps; ++i) {
    const bool on = ctl.speculate(batch);
    on_steps += on;
    ctl.Observe(batch, on, on ? 2 * batch : batch, on ? on_seconds : off_seconds);
  }
  return on_steps;
}

// The controller keeps the faster mode at one batch size, re-decides when the faster mode
// changes, and keeps separate decisions for batch sizes in different power-of-two buckets.
TEST(SpecControllerTest, KeepsTheFasterModeAndProbesTheOther) {
  SpecController c({.window_steps = 4, .probe_every = 2, .hysteresis = 0.03});
  // Per mode, seconds per step at batch 32: speculation costs 3x per step for 2x the tokens.
  auto feed = [](SpecController& ctl, int steps, double on_seconds, double off_seconds, int64_t batch = 32) {
    return FeedController(ctl, steps, on_seconds, off_seconds, batch);
  };
  EXPECT_FALSE(c.speculate(32));  // starts off, then measures on
  feed(c, 4, 0.03, 0.01);
  EXPECT_TRUE(c.speculate(32));
  feed(c, 4, 0.03, 0.01);
  EXPECT_FALSE(c.speculate(32)) << "on: 2133 tok/s, off: 3200 tok/s";
  EXPECT_NEAR(c.rate_on(32), 64 / 0.03, 1e-6);
  EXPECT_NEAR(c.rate_off(32), 32 / 0.01, 1e-6);
  // Mostly off from now on, with a probe window now and then.
  const int on_steps = feed(c, 400, 0.03, 0.01);
  EXPECT_GT(on_steps, 0);
  EXPECT_LT(on_steps, 400 / 4);  // probes: 1 window in 1 + 2 x 1.5^2 x 3
  // The machine changes (memory-bound now: speculation costs 1.2x per step for 2x tokens):
  // the next probe switches back on.
  feed(c, 400, 0.012, 0.01);
  EXPECT_TRUE(c.speculate(32));
  EXPECT_GT(feed(c, 400, 0.012, 0.01), 400 * 3 / 4) << "a 1.67x lead: 1 probe window in 1 + 2 x 1.67^2";
  // Batch 1 in another bucket learns its own answer; batch 32's stays; a step taken in one
  // bucket's mode does not count for another.
  SpecController d({.window_steps = 4, .probe_every = 2, .hysteresis = 0.03});
  feed(d, 40, 0.03, 0.01, 32);  // off wins at 32
  EXPECT_FALSE(d.speculate(32));
  EXPECT_FALSE(d.speculate(1)) << "batch 1 has not been measured: off";
  feed(d, 40, 0.0012, 0.001, 1);  // on wins at 1 (1.2x per step for 2x tokens)
  EXPECT_TRUE(d.speculate(1));
  EXPECT_FALSE(d.speculate(32));
  EXPECT_GT(d.rate_on(1), d.rate_off(1));
  EXPECT_LT(d.rate_on(32), d.rate_off(32));
  EXPECT_TRUE(d.speculate(17) == d.speculate(31)) << "one bucket";
  SpecController e({.window_steps = 4, .probe_every = 2, .hysteresis = 0.03});
  for (int i = 0; i < 8; ++i) e.Observe(32, true, 64, 0.001);  // on-steps while batch 32 is in its off window
  EXPECT_EQ(e.rate_on(32), 0.0);
  EXPECT_FALSE(e.speculate(32));
}

// A bucket where speculation measured slower passes "off" to its unmeasured neighbours, so
// they skip the costly probe: the next larger one always, the next smaller one only for a
// loss of more than 2x; passed-on decisions go no further.
TEST(SpecControllerTest, PassesAMeasuredLossToItsNeighbours) {
  const auto& feed = FeedController;
  SpecController c({.window_steps = 4, .probe_every = 8, .hysteresis = 0.03});
  // Off, then a probe of on that ends after its second step (under half the plain rate: a
  // 3x loss at 32..63).
  EXPECT_EQ(feed(c, 8, 0.06, 0.01, 32), 2);
  EXPECT_FALSE(c.speculate(32));
  EXPECT_EQ(feed(c, 40, 0.06, 0.01, 20), 0) << "16..31 inherits off (a 3x loss): no probe";
  EXPECT_EQ(feed(c, 40, 0.06, 0.01, 64), 0) << "64..127 inherits off";
  EXPECT_NEAR(c.rate_on(20), c.rate_on(32), 1e-9);
  EXPECT_NEAR(c.rate_off(20), 20 / 0.01, 1e-6) << "its own plain steps are measured";
  EXPECT_EQ(feed(c, 8, 0.06, 0.01, 12), 2) << "8..15 is two buckets away: it probes";
  EXPECT_EQ(feed(c, 8, 0.06, 0.01, 128), 2) << "128..255: a passed-on decision is not passed again";

  SpecController d({.window_steps = 4, .probe_every = 8, .hysteresis = 0.03});
  feed(d, 8, 0.027, 0.01, 32);  // a 1.35x loss at 32..63
  EXPECT_FALSE(d.speculate(32));
  EXPECT_EQ(feed(d, 40, 0.027, 0.01, 64), 0) << "larger: inherits off";
  EXPECT_EQ(feed(d, 8, 0.027, 0.01, 16), 4) << "smaller, loss under 2x: probes (a whole window)";
  SpecController e({.window_steps = 4, .probe_every = 8, .hysteresis = 0.03});
  feed(e, 8, 0.012, 0.02, 32);  // speculation wins at 32: nothing is passed on
  EXPECT_TRUE(e.speculate(32));
  EXPECT_EQ(feed(e, 8, 0.012, 0.02, 64), 4);
}

// With free_probe_buckets (a draft model), a batch of 8 or more probes speculation only
// after the next smaller bucket measured it winning: exploration goes bottom-up.
TEST(SpecControllerTest, ProbesLargeBatchesOnlyAfterTheSmallerOnesWon) {
  SpecController c({.window_steps = 4, .probe_every = 8, .hysteresis = 0.03, .free_probe_buckets = 3});
  EXPECT_EQ(FeedController(c, 40, 0.012, 0.01, 32), 0) << "32..63: 16..31 has not won";
  EXPECT_EQ(FeedController(c, 40, 0.012, 0.01, 9), 0) << "8..15: 4..7 has not won";
  EXPECT_EQ(FeedController(c, 8, 0.012, 0.01, 5), 4) << "4..7 is below the free limit: it probes";
  EXPECT_TRUE(c.speculate(5)) << "and wins (2x tokens for 1.2x time)";
  EXPECT_GT(FeedController(c, 8, 0.012, 0.01, 9), 0) << "8..15 may probe now";
  EXPECT_TRUE(c.speculate(9));
  EXPECT_EQ(FeedController(c, 40, 0.012, 0.01, 32), 0) << "32..63 still waits for 16..31";
  SpecController d;  // the default: every bucket probes at once
  EXPECT_EQ(FeedController(d, 8, 0.012, 0.01, 32), 4);
}

TEST(SpeculativeConfigTest, ParsesVllmFieldsAndRejectsTheRest) {
  auto c = spec::ParseSpeculativeConfig(R"({"method": "ngram", "num_speculative_tokens": 3})");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->adaptive);
  EXPECT_FALSE(spec::ParseSpeculativeConfig(R"({"method": "ngram", "num_speculative_tokens": 3, "adaptive": false})")
                   ->adaptive);
  EXPECT_EQ(c->ngram.prompt_lookup_min, 5);  // vLLM's defaults
  EXPECT_EQ(c->ngram.prompt_lookup_max, 5);
  c = spec::ParseSpeculativeConfig(R"({"model": "[ngram]", "num_speculative_tokens": 2, "prompt_lookup_max": 4})");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->method, "ngram");
  EXPECT_EQ(c->ngram.prompt_lookup_min, 4);
  EXPECT_FALSE(spec::ParseSpeculativeConfig("").value().enabled());
  c = spec::ParseSpeculativeConfig(R"({"model": "/m/draft.gguf", "num_speculative_tokens": 3})");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->method, "draft_model");
  EXPECT_EQ(c->draft_model, "/m/draft.gguf");
  c = spec::ParseSpeculativeConfig(R"({"method": "suffix"})");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->num_speculative_tokens, 24);  // vLLM: the tree depth
  const std::pair<const char*, const char*> bad[] = {
      {R"({"method": "ngram"})", "needs \"num_speculative_tokens\""},
      {R"({"method": "eagle", "num_speculative_tokens": 2})", "not implemented"},
      {R"({"method": "draft_model", "num_speculative_tokens": 2})", "needs \"model\""},
      {R"({"model": "/models/draft.gguf"})", "needs \"num_speculative_tokens\""},
      {R"({"method": "ngram", "model": "/models/draft.gguf", "num_speculative_tokens": 2})", "goes with method"},
      {R"({"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_min": 4, "prompt_lookup_max": 2})", "must be <="},
      {R"({"method": "ngram", "num_speculative_tokens": 0})", "num_speculative_tokens"},
      {R"({"method": "ngram", "num_speculative_tokens": 2, "temperature": 1})", "\"temperature\" is not supported"},
      {R"({"method": "ngram", "num_speculative_tokens": 2, "suffix_decoding_max_tree_depth": 8})", "suffix"},
      {R"({"method": "ngram", "num_speculative_tokens": 2, "disable_by_batch_size": 1})", "disable_by_batch_size"},
      {R"({"method": "ngram", "num_speculative_tokens": 2, "adaptive": 1})", "true or false"},
      {R"([1])", "JSON object"},
      {R"({"method": )", "not valid JSON"},
  };
  for (const auto& [text, want] : bad) {
    auto r = spec::ParseSpeculativeConfig(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.status().message().find(want), std::string::npos) << text << ": " << r.status().message();
  }
}

}  // namespace
}  // namespace inferd
