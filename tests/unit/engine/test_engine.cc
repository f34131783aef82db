#include <gtest/gtest.h>

#include <cmath>

#include "../model_test_util.h"
#include "engine/engine_core.h"
#include "inferd/engine.h"

namespace inferd {
namespace {

std::unique_ptr<Engine> MakeEngine(EngineOptions options = {}) {
  const std::string path = testing::EmbeddedModelPath();
  auto model = LoadModel(LoadOptions{.model = path});
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (options.max_model_len == 0) options.max_model_len = 512;
  auto engine = Engine::Create(std::move(model).value(), options);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  return std::move(engine).value();
}

GenerateRequest Req(const Engine& e, const std::string& prompt, SamplingParams p) {
  GenerateRequest r;
  r.prompt = prompt;
  r.prompt_token_ids = e.tokenizer().Encode(prompt, true, false);
  r.params = p;
  return r;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    INFERD_REQUIRE_MODEL(path);
    engine_ = MakeEngine();
  }
  std::unique_ptr<Engine> engine_;
};

TEST(EngineBackendTest, OnlyTheCpuBackendRepacksWeights) {
  INFERD_REQUIRE_MODEL(path);
  auto model = LoadModel(LoadOptions{.model = path});
  ASSERT_TRUE(model.ok());
  EXPECT_FALSE((*model)->weights.prepared);  // loading (for the GPU, for export) leaves them as stored
  EXPECT_EQ((*model)->weights.layers[0].wqkv.packed, nullptr);
  EngineOptions o;
  o.device = "cpu";
  o.max_model_len = 256;
  auto engine = Engine::Create(std::move(model).value(), o);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  EXPECT_EQ((*engine)->core().backend().name(), "cpu");
  EXPECT_TRUE((*engine)->model().weights.prepared);
  EXPECT_NE((*engine)->model().weights.layers[0].wqkv.packed, nullptr);
}

TEST(EngineBackendTest, DeviceOptionsAreCheckedOnEveryDevice) {
  INFERD_REQUIRE_MODEL(path);
  EngineOptions o;
  o.device = "cpu";
  o.gpu_memory_utilization = 1.5;
  auto e = Engine::Create(std::move(LoadModel(LoadOptions{.model = path})).value(), o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().message(), "--gpu-memory-utilization must be in (0, 1], got 1.5");
  o.gpu_memory_utilization = 0.9;
  o.dtype = "float17";
  e = Engine::Create(std::move(LoadModel(LoadOptions{.model = path})).value(), o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().message(), "unknown --dtype 'float17': use auto, float16, bfloat16 or float32");
  o.device = "tpu";
  o.dtype = "auto";
  e = Engine::Create(std::move(LoadModel(LoadOptions{.model = path})).value(), o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(EngineTest, GreedyMatchesArgmaxOfScoredLogits) {
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = 8;
  p.ignore_eos = true;
  auto out = engine_->Generate({Req(*engine_, "The capital of France is", p)});
  ASSERT_TRUE(out[0].ok()) << out[0].status().ToString();
  const auto& gen = out[0]->outputs[0].token_ids;
  ASSERT_EQ(gen.size(), 8u);
  EXPECT_EQ(out[0]->outputs[0].finish_reason, "length");
  // Re-score prompt + generated tokens: each generated token is the argmax of its row.
  std::vector<int32_t> all = out[0]->prompt_token_ids;
  all.insert(all.end(), gen.begin(), gen.end());
  const int64_t vocab = engine_->vocab_size();
  std::vector<float> logits(all.size() * vocab);
  ASSERT_TRUE(engine_->ScoreTokens(all, logits.data()).ok());
  const size_t np = out[0]->prompt_token_ids.size();
  for (size_t i = 0; i < gen.size(); ++i) {
    const float* row = &logits[(np - 1 + i) * vocab];
    EXPECT_EQ(gen[i], std::max_element(row, row + vocab) - row) << i;
  }
  EXPECT_EQ(out[0]->outputs[0].text, engine_->tokenizer().Decode(gen, true));
}

// Same seed ⇒ same tokens whether the request runs alone or among others.
TEST_F(EngineTest, SeededSamplingIsBatchInvariant) {
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_p = 0.95f;
  p.max_tokens = 12;
  p.seed = 1234;
  p.ignore_eos = true;
  auto alone = engine_->Generate({Req(*engine_, "Write a haiku about the sea.", p)});
  ASSERT_TRUE(alone[0].ok());
  std::vector<GenerateRequest> batch;
  SamplingParams other = p;
  other.seed = 99;
  batch.push_back(Req(*engine_, "Explain gravity in one sentence.", other));
  batch.push_back(Req(*engine_, "1, 2, 3, 4,", other));
  batch.push_back(Req(*engine_, "Write a haiku about the sea.", p));
  batch.push_back(Req(*engine_, "A very long prompt that keeps going and going to change the batch layout", other));
  auto together = engine_->Generate(std::move(batch));
  ASSERT_TRUE(together[2].ok());
  EXPECT_EQ(alone[0]->outputs[0].token_ids, together[2]->outputs[0].token_ids);
  EXPECT_EQ(alone[0]->outputs[0].text, together[2]->outputs[0].text);
}

TEST_F(EngineTest, ParallelSamplesDiffer) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.n = 3;
  p.max_tokens = 10;
  p.seed = 5;
  p.ignore_eos = true;
  auto out = engine_->Generate({Req(*engine_, "My favourite colour is", p)});
  ASSERT_TRUE(out[0].ok());
  ASSERT_EQ(out[0]->outputs.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(out[0]->outputs[i].index, i);
  EXPECT_NE(out[0]->outputs[0].token_ids, out[0]->outputs[1].token_ids);
}

TEST_F(EngineTest, StopStringTruncatesText) {
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = 40;
  p.ignore_eos = true;
  auto base = engine_->Generate({Req(*engine_, "Count: 1, 2, 3,", p)});
  ASSERT_TRUE(base[0].ok());
  const std::string text = base[0]->outputs[0].text;
  ASSERT_GE(text.size(), 6u);
  const std::string stop = text.substr(3, 2);
  p.stop = {stop};
  auto out = engine_->Generate({Req(*engine_, "Count: 1, 2, 3,", p)});
  ASSERT_TRUE(out[0].ok());
  const auto& o = out[0]->outputs[0];
  EXPECT_EQ(o.finish_reason, "stop");
  EXPECT_EQ(std::get<std::string>(o.stop_reason), stop);
  EXPECT_EQ(o.text, text.substr(0, text.find(stop)));
}

TEST_F(EngineTest, BadRequestsFailAloneOthersRun) {
  SamplingParams ok;
  ok.max_tokens = 4;
  SamplingParams bad = ok;
  bad.temperature = -1;
  GenerateRequest too_long = Req(*engine_, "x", ok);
  too_long.prompt_token_ids.assign(600, 100);
  auto out = engine_->Generate({Req(*engine_, "Hello", bad), too_long, Req(*engine_, "Hello", ok)});
  ASSERT_FALSE(out[0].ok());
  EXPECT_NE(out[0].status().message().find("temperature"), std::string::npos);
  ASSERT_FALSE(out[1].ok());
  EXPECT_NE(out[1].status().message().find("512"), std::string::npos);
  EXPECT_NE(out[1].status().message().find("600"), std::string::npos);
  ASSERT_TRUE(out[2].ok());
  EXPECT_EQ(out[2]->outputs[0].token_ids.size() <= 4, true);
}

TEST_F(EngineTest, LogprobsAndPromptLogprobs) {
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = 3;
  p.logprobs = 2;
  p.prompt_logprobs = 1;
  p.ignore_eos = true;
  auto out = engine_->Generate({Req(*engine_, "Hello there, how are you", p)});
  ASSERT_TRUE(out[0].ok());
  const auto& o = out[0]->outputs[0];
  ASSERT_TRUE(o.logprobs.has_value());
  ASSERT_EQ(o.logprobs->size(), 3u);
  double sum = 0;
  for (size_t i = 0; i < 3; ++i) {
    const auto& pos = (*o.logprobs)[i];
    ASSERT_TRUE(pos.count(o.token_ids[i]));
    EXPECT_EQ(pos.at(o.token_ids[i]).rank, 1);  // greedy picks the top token
    EXPECT_LE(pos.size(), 2u);
    sum += pos.at(o.token_ids[i]).logprob;
  }
  EXPECT_NEAR(o.cumulative_logprob, sum, 1e-4);
  ASSERT_TRUE(out[0]->prompt_logprobs.has_value());
  ASSERT_EQ(out[0]->prompt_logprobs->size(), out[0]->prompt_token_ids.size());
  EXPECT_FALSE((*out[0]->prompt_logprobs)[0].has_value());
  EXPECT_TRUE((*out[0]->prompt_logprobs)[1].has_value());
}

// should_continue() returning false aborts the whole batch: every request ends exactly once
// (finish_reason "abort"), its blocks are free, and the engine runs the next batch normally.
TEST_F(EngineTest, ShouldContinueFalseAbortsEveryRequestOnce) {
  SamplingParams p;
  p.temperature = 0.8f;
  p.max_tokens = 400;
  p.ignore_eos = true;
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 6; ++i) reqs.push_back(Req(*engine_, "Story number " + std::to_string(i), p));
  std::vector<int> finished_calls(reqs.size(), 0);
  int asked = 0;
  auto out = engine_->Generate(
      std::move(reqs), [&](size_t i, const StatusOr<RequestOutput>&) { ++finished_calls[i]; },
      [&] { return ++asked < 5; });
  EXPECT_EQ(asked, 5);  // not asked again once it said stop
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_TRUE(out[i].ok()) << i << ": " << out[i].status().ToString();
    EXPECT_EQ(out[i]->outputs[0].finish_reason, "abort") << i;
    EXPECT_LT(out[i]->outputs[0].token_ids.size(), 400u) << i;
    EXPECT_EQ(finished_calls[i], 1) << i;
  }
  EXPECT_FALSE(engine_->core().HasUnfinished());
  EXPECT_EQ(engine_->core().kv_usage(), 0.0);
  SamplingParams q;
  q.max_tokens = 3;
  q.ignore_eos = true;
  auto after = engine_->Generate({Req(*engine_, "Hello", q)});
  ASSERT_TRUE(after[0].ok());
  EXPECT_EQ(after[0]->outputs[0].token_ids.size(), 3u);
}

std::vector<GenerateRequest> ManyRequests(const Engine& e, int count, int max_tokens) {
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < count; ++i) {
    SamplingParams p;
    p.temperature = 0.8f;
    p.seed = 1000 + i;
    p.max_tokens = max_tokens;
    p.ignore_eos = true;
    reqs.push_back(Req(e, "Request " + std::to_string(i) + (i % 3 ? " is about cats" : " asks: why is the sky"), p));
  }
  return reqs;
}

// ~50 requests under a KV budget so small that preemption must happen: every request still
// finishes, with exactly the tokens of an unconstrained run.
TEST(EngineSmallCache, PreemptionKeepsOutputsIdentical) {
  INFERD_REQUIRE_MODEL(path);
  auto big = MakeEngine();
  EngineOptions small_opts;
  small_opts.max_model_len = 64;
  small_opts.kv_cache_bytes = int64_t{12} * 16 * 2 * 30 * 3 * 64 * 4;  // 12 blocks of 16 tokens
  auto small = MakeEngine(small_opts);
  auto reqs = ManyRequests(*big, 48, 24);
  auto a = big->Generate(reqs);
  auto b = small->Generate(reqs);
  EXPECT_GT(small->core().counters().num_preemptions, 0);
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(a[i].ok() && b[i].ok()) << i;
    EXPECT_EQ(a[i]->outputs[0].token_ids, b[i]->outputs[0].token_ids) << i;
    EXPECT_EQ(b[i]->outputs[0].token_ids.size(), 24u);
  }
  EXPECT_EQ(small->core().kv_usage(), 0.0);
}

// A request produces the same tokens alone or with 63 others, prefix caching on or off.
TEST(EngineBatchInvariance, AloneWith63OthersAndWithoutPrefixCaching) {
  INFERD_REQUIRE_MODEL(path);
  auto engine = MakeEngine();
  EngineOptions no_cache;
  no_cache.enable_prefix_caching = false;
  auto engine_nc = MakeEngine(no_cache);
  auto reqs = ManyRequests(*engine, 64, 10);
  auto together = engine->Generate(reqs);
  auto together_nc = engine_nc->Generate(reqs);
  for (int i : {0, 17, 63}) {
    auto alone = engine->Generate({reqs[i]});
    ASSERT_TRUE(alone[0].ok() && together[i].ok() && together_nc[i].ok());
    EXPECT_EQ(alone[0]->outputs[0].token_ids, together[i]->outputs[0].token_ids) << i;
    EXPECT_EQ(alone[0]->outputs[0].token_ids, together_nc[i]->outputs[0].token_ids) << i;
  }
}

TEST_F(EngineTest, PrefixCacheReuseReportsCachedTokens) {
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = 6;
  p.ignore_eos = true;
  const std::string prompt =
      "You are a helpful assistant. Answer briefly and precisely, citing no sources. Question: what is the "
      "boiling point of water at sea level?";
  auto first = engine_->Generate({Req(*engine_, prompt, p)});
  auto second = engine_->Generate({Req(*engine_, prompt, p)});
  ASSERT_TRUE(first[0].ok() && second[0].ok());
  EXPECT_EQ(first[0]->num_cached_tokens, 0);
  const int64_t n = static_cast<int64_t>(second[0]->prompt_token_ids.size());
  EXPECT_EQ(second[0]->num_cached_tokens, (n - 1) / 16 * 16);
  EXPECT_GT(second[0]->num_cached_tokens, 0);
  EXPECT_EQ(first[0]->outputs[0].token_ids, second[0]->outputs[0].token_ids);
  const EngineCounters c = engine_->core().counters();
  EXPECT_GT(c.prefix_hits, 0);
}

// Quantized KV caches (--kv-cache-dtype int8 | fp8_e4m3 | fp8_e5m2) keep the engine's
// guarantees: a token's codes and scale depend only on its own K/V, so a prefix-cache hit
// gives exactly the logprobs of recomputing the prompt, and a request's tokens do not depend
// on what shares its batch. The cache holds 1.94x the tokens of fp16 in the same bytes.
TEST(EngineQuantizedKv, PrefixHitEqualsRecomputationAndBatchInvariance) {
  INFERD_REQUIRE_MODEL(path);
  const std::string prefix =
      "You are a helpful assistant. Answer briefly and precisely, citing no sources, in plain words that a child "
      "could follow, and never more than two sentences. Question: ";
  for (const char* dtype : {"int8", "fp8_e4m3", "fp8_e5m2"}) {
    SCOPED_TRACE(dtype);
    EngineOptions o;
    o.kv_cache_dtype = dtype;
    o.kv_cache_bytes = int64_t{64} << 20;
    auto cached = MakeEngine(o);
    EXPECT_EQ(KvDtypeName(cached->core().kv_shape().dtype), std::string(dtype));
    o.enable_prefix_caching = false;
    auto fresh = MakeEngine(o);
    SamplingParams p;
    p.temperature = 0;
    p.max_tokens = 8;
    p.logprobs = 3;
    p.ignore_eos = true;
    auto first = cached->Generate({Req(*cached, prefix + "what is the boiling point of water at sea level?", p)});
    const GenerateRequest second = Req(*cached, prefix + "why is the sky blue on a clear day?", p);
    auto hit = cached->Generate({second});
    auto recomputed = fresh->Generate({second});
    ASSERT_TRUE(first[0].ok() && hit[0].ok() && recomputed[0].ok());
    EXPECT_GE(hit[0]->num_cached_tokens, 32);
    EXPECT_EQ(recomputed[0]->num_cached_tokens, 0);
    const auto& a = hit[0]->outputs[0];
    const auto& b = recomputed[0]->outputs[0];
    ASSERT_EQ(a.token_ids, b.token_ids);
    ASSERT_TRUE(a.logprobs.has_value() && b.logprobs.has_value());
    for (size_t i = 0; i < a.token_ids.size(); ++i) {
      for (const auto& [tok, lp] : (*a.logprobs)[i]) {
        ASSERT_TRUE((*b.logprobs)[i].count(tok)) << i;
        EXPECT_EQ(lp.logprob, (*b.logprobs)[i].at(tok).logprob) << "position " << i << " token " << tok;  // bit for bit
      }
    }
    // Seeded sampling: alone or with 15 others, the same tokens.
    auto reqs = ManyRequests(*fresh, 16, 8);
    auto together = fresh->Generate(reqs);
    for (int i : {0, 7, 15}) {
      auto alone = fresh->Generate({reqs[i]});
      ASSERT_TRUE(alone[0].ok() && together[i].ok());
      EXPECT_EQ(alone[0]->outputs[0].token_ids, together[i]->outputs[0].token_ids) << i;
    }
  }
  // Capacity: 2 * layers * kv_heads * (head_dim + 2) bytes per token against 2 bytes per element.
  EngineOptions o16, o8;
  o16.kv_cache_dtype = "float16";
  o8.kv_cache_dtype = "int8";
  o16.kv_cache_bytes = o8.kv_cache_bytes = int64_t{64} << 20;
  auto e16 = MakeEngine(o16), e8 = MakeEngine(o8);
  const KvCacheShape& s8 = e8->core().kv_shape();
  EXPECT_EQ(s8.bytes_per_token(), 2 * s8.layers_per_block * s8.num_kv_heads * (s8.head_dim + 2));
  EXPECT_EQ(e16->core().kv_shape().bytes_per_token(), 2 * s8.layers_per_block * s8.num_kv_heads * s8.head_dim * 2);
  EXPECT_GT(e8->core().kv_capacity_tokens(), 19 * e16->core().kv_capacity_tokens() / 10);
}

// vLLM's names: fp8 is e4m3; unknown names are refused with the list.
TEST(EngineQuantizedKv, DtypeNames) {
  EXPECT_EQ(*ParseKvDtype("fp8", false), KvDtype::kFp8E4M3);
  EXPECT_EQ(*ParseKvDtype("fp8_e4m3", false), KvDtype::kFp8E4M3);
  EXPECT_EQ(*ParseKvDtype("fp8_e5m2", false), KvDtype::kFp8E5M2);
  EXPECT_EQ(*ParseKvDtype("int8", true), KvDtype::kInt8);
  EXPECT_EQ(*ParseKvDtype("auto", false), KvDtype::kF16);
  auto bad = ParseKvDtype("fp8_inc", false);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "unknown --kv-cache-dtype 'fp8_inc': use auto, float16, bfloat16, float32, fp8, fp8_e4m3, fp8_e5m2 or int8");
}


// Structured outputs in the engine: every sequence of a batch (n > 1, mixed with an
// unconstrained request and a bad constraint) follows its own grammar; the sequence ends when
// its grammar takes the stop token; a constraint that does not compile fails only its request.
TEST_F(EngineTest, StructuredOutputsConstrainEachSequence) {
  SamplingParams choice;
  choice.max_tokens = 12;
  choice.temperature = 1.0f;
  choice.seed = 5;
  choice.n = 3;
  choice.structured_outputs.emplace().choice = std::vector<std::string>{"alpha", "beta gamma", "delta"};
  SamplingParams regex;
  regex.max_tokens = 24;
  regex.temperature = 0.0f;
  regex.structured_outputs.emplace().regex = "[0-9]{3}-[a-z]{2,4}";
  SamplingParams bad = regex;
  bad.structured_outputs->regex = "(";
  SamplingParams free;
  free.max_tokens = 8;
  free.temperature = 0.0f;
  auto out = engine_->Generate({Req(*engine_, "Pick one:", choice), Req(*engine_, "Code:", regex),
                                Req(*engine_, "Code:", bad), Req(*engine_, "The capital of France is", free)});
  ASSERT_TRUE(out[0].ok()) << out[0].status().ToString();
  ASSERT_EQ(out[0]->outputs.size(), 3u);
  for (const CompletionOutput& o : out[0]->outputs) {
    EXPECT_TRUE(o.text == "alpha" || o.text == "beta gamma" || o.text == "delta") << o.text;
    EXPECT_EQ(o.finish_reason, "stop");
  }
  ASSERT_TRUE(out[1].ok());
  const std::string& code = out[1]->outputs[0].text;
  ASSERT_GE(code.size(), 6u) << code;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(code[i] >= '0' && code[i] <= '9') << code;
  EXPECT_EQ(code[3], '-') << code;
  for (size_t i = 4; i < code.size(); ++i) EXPECT_TRUE(code[i] >= 'a' && code[i] <= 'z') << code;
  EXPECT_LE(code.size(), 8u) << code;
  EXPECT_EQ(out[1]->outputs[0].finish_reason, "stop");
  ASSERT_FALSE(out[2].ok());
  EXPECT_EQ(out[2].status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out[2].status().message().find("structured_outputs.regex"), std::string::npos);
  ASSERT_TRUE(out[3].ok());
  SamplingParams alone = free;
  auto solo = engine_->Generate({Req(*engine_, "The capital of France is", alone)});
  ASSERT_TRUE(solo[0].ok());
  EXPECT_EQ(solo[0]->outputs[0].token_ids, out[3]->outputs[0].token_ids);  // constrained neighbours change nothing
}

// Structured outputs after a reasoning parser's end marker (GenerateRequest::structured_after):
// the tokens up to the one completing the marker are the unconstrained greedy ones, the rest
// follows the grammar and ends with it.
TEST_F(EngineTest, StructuredOutputsStartAfterTheMarker) {
  SamplingParams free;
  free.max_tokens = 16;
  free.temperature = 0.0f;
  auto base = engine_->Generate({Req(*engine_, "The capital of France is", free)});
  ASSERT_TRUE(base[0].ok());
  const std::vector<int32_t>& ids = base[0]->outputs[0].token_ids;
  const std::string marker = base[0]->outputs[0].text.substr(0, 5);
  ASSERT_EQ(marker.size(), 5u);
  const Tokenizer& tok = engine_->core().tokenizer();
  size_t j = 0;  // the token that completes the marker
  while (j < ids.size() && tok.Decode({ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(j) + 1}, true).find(marker) ==
                               std::string::npos) {
    ++j;
  }
  ASSERT_LT(j, ids.size());
  const std::string prefix = tok.Decode({ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(j) + 1}, true);

  SamplingParams constrained = free;
  constrained.max_tokens = static_cast<int>(j) + 12;
  constrained.structured_outputs.emplace().regex = "[0-9]{3}";
  GenerateRequest after = Req(*engine_, "The capital of France is", constrained);
  after.structured_after = marker;
  GenerateRequest never = after;
  never.structured_after = "a marker the model does not write";
  auto out = engine_->Generate({after, never});
  ASSERT_TRUE(out[0].ok() && out[1].ok());
  const CompletionOutput& o = out[0]->outputs[0];
  ASSERT_GT(o.token_ids.size(), j);
  EXPECT_EQ(std::vector<int32_t>(o.token_ids.begin(), o.token_ids.begin() + static_cast<std::ptrdiff_t>(j) + 1),
            std::vector<int32_t>(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(j) + 1));
  ASSERT_EQ(o.text.size(), prefix.size() + 3) << o.text;
  EXPECT_EQ(o.text.substr(0, prefix.size()), prefix);
  for (char c : o.text.substr(prefix.size())) EXPECT_TRUE(c >= '0' && c <= '9') << o.text;
  EXPECT_EQ(o.finish_reason, "stop");
  // Without the marker the grammar never starts: the unconstrained greedy output.
  const std::vector<int32_t>& n = out[1]->outputs[0].token_ids;
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), n.size()))), n);
}

}  // namespace
}  // namespace inferd
