// The public C++ API (include/inferd/engine.h) as an outside program uses it: this file
// includes no header from src/ (scripts/check-layering.py checks that include/inferd
// includes nothing from src/ either). Create from EngineArgs, add and abort requests, step,
// stream through the AsyncEngine, run a batch with Generate: all on the embedded model.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "../model_test_util.h"
#include "inferd/engine.h"

namespace inferd {
namespace {

EngineArgs Args(const std::string& path) {
  EngineArgs a;
  a.load.model = path;
  a.engine.max_model_len = 256;
  a.kv_cache_memory = "64MiB";
  return a;
}

GenerateRequest Greedy(const std::string& id, const std::string& prompt, int max_tokens) {
  GenerateRequest r;
  r.request_id = id;
  r.prompt = prompt;  // text: the engine tokenizes it
  r.params.temperature = 0;
  r.params.ignore_eos = true;
  r.params.max_tokens = max_tokens;
  return r;
}

TEST(PublicApi, StepLoopAbortAndGenerateAgree) {
  INFERD_REQUIRE_MODEL(path);
  auto engine_or = Engine::Create(Args(path));
  ASSERT_TRUE(engine_or.ok()) << engine_or.status().ToString();
  Engine& engine = **engine_or;
  EXPECT_EQ(engine.max_model_len(), 256);
  EXPECT_GT(engine.kv_capacity_tokens(), 0);
  EXPECT_EQ(engine.Decode(engine.Encode("The capital of France", /*add_special=*/false)), "The capital of France");

  // Drive it by hand: two requests, one aborted after the first step.
  ASSERT_TRUE(engine.AddRequest(Greedy("keep", "The capital of France is", 12)).ok());
  ASSERT_TRUE(engine.AddRequest(Greedy("drop", "Once upon a time", 12)).ok());
  EXPECT_FALSE(engine.AddRequest(Greedy("keep", "duplicate id", 4)).ok());
  std::map<std::string, std::vector<int32_t>> streamed;
  std::map<std::string, int> finals;
  std::map<std::string, RequestOutput> outputs;
  int steps = 0;
  while (engine.HasUnfinishedRequests()) {
    StepResult step = engine.Step();
    if (++steps == 1) engine.AbortRequest("drop");
    for (const OutputDelta& d : step.deltas) {
      streamed[d.request_id].insert(streamed[d.request_id].end(), d.new_token_ids.begin(), d.new_token_ids.end());
    }
    for (FinishedRequest& f : step.finished) {
      ++finals[f.request_id];
      ASSERT_TRUE(f.output.ok()) << f.output.status().ToString();
      outputs[f.request_id] = *f.output;
    }
    ASSERT_LT(steps, 1000);
  }
  EXPECT_EQ(finals["keep"], 1);
  EXPECT_EQ(finals["drop"], 1);
  EXPECT_EQ(outputs["drop"].outputs[0].finish_reason, "abort");
  const CompletionOutput& kept = outputs["keep"].outputs[0];
  EXPECT_EQ(kept.finish_reason, "length");
  EXPECT_EQ(kept.token_ids.size(), 12u);
  EXPECT_EQ(streamed["keep"], kept.token_ids);
  EXPECT_EQ(outputs["keep"].prompt_token_ids, engine.Encode("The capital of France is"));
  const EngineSnapshot idle = engine.Stats();
  EXPECT_EQ(idle.num_running + idle.num_waiting, 0u);
  EXPECT_EQ(idle.kv_usage, 0.0);

  // The batch entry point gives the same greedy tokens; a bad request fails alone.
  GenerateRequest bad = Greedy("bad", "x", 4);
  bad.params.temperature = -1;
  std::vector<GenerateRequest> batch;
  batch.push_back(Greedy("keep", "The capital of France is", 12));
  batch.push_back(std::move(bad));
  auto results = engine.Generate(std::move(batch));
  ASSERT_EQ(results.size(), 2u);
  ASSERT_TRUE(results[0].ok());
  EXPECT_EQ(results[0]->request_id, "keep");
  EXPECT_EQ(results[0]->outputs[0].token_ids, kept.token_ids);
  EXPECT_EQ(results[0]->outputs[0].text, kept.text);
  ASSERT_FALSE(results[1].ok());
  EXPECT_NE(results[1].status().message().find("temperature"), std::string::npos);
}

TEST(PublicApi, AsyncEngineStreamsTheSameTokens) {
  INFERD_REQUIRE_MODEL(path);
  auto engine_or = Engine::Create(Args(path));
  ASSERT_TRUE(engine_or.ok()) << engine_or.status().ToString();
  std::vector<GenerateRequest> one;
  one.push_back(Greedy("a", "Write a haiku about the sea", 10));
  auto expected = (*engine_or)->Generate(std::move(one));
  ASSERT_TRUE(expected[0].ok());

  AsyncEngine async(std::move(*engine_or), /*stats_interval_s=*/0);
  auto stream_or = async.AddRequest(Greedy("a", "Write a haiku about the sea", 10));
  ASSERT_TRUE(stream_or.ok()) << stream_or.status().ToString();
  RequestStream& stream = **stream_or;
  std::string text;
  int finals = 0;
  RequestStream::Item item;
  while (stream.Next(&item, std::chrono::seconds(60))) {
    if (item.delta) text += item.delta->new_text;
    if (item.final) {
      ++finals;
      ASSERT_TRUE(item.final->ok());
      EXPECT_EQ((*item.final)->outputs[0].token_ids, expected[0]->outputs[0].token_ids);
    }
  }
  EXPECT_EQ(finals, 1);
  EXPECT_TRUE(stream.finished());
  EXPECT_EQ(text, expected[0]->outputs[0].text);
  EXPECT_FALSE(async.AddRequest(Greedy("e", "", 4)).ok());  // empty prompt: refused up front
  async.Shutdown();
  EXPECT_FALSE(async.Snapshot().alive);
}

TEST(PublicApi, SpeculationFromTheConfigTextKeepsGreedyOutput) {
  INFERD_REQUIRE_MODEL(path);
  const std::string prompt = "Repeat: alpha beta gamma delta alpha beta gamma delta alpha beta";
  std::vector<int32_t> plain, speculated;
  for (int spec = 0; spec < 2; ++spec) {
    EngineArgs a = Args(path);
    if (spec) a.speculative_config = R"({"method": "ngram", "num_speculative_tokens": 4, "adaptive": false})";
    auto e = Engine::Create(a);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    std::vector<GenerateRequest> one;
    one.push_back(Greedy("s", prompt, 24));
    auto r = (*e)->Generate(std::move(one));
    ASSERT_TRUE(r[0].ok());
    (spec ? speculated : plain) = r[0]->outputs[0].token_ids;
    if (spec) {
      EXPECT_GT((*e)->counters().spec_num_draft_tokens, 0);
    }
  }
  EXPECT_EQ(speculated, plain);
}

TEST(PublicApi, ArgumentErrorsNameTheField) {
  EngineArgs a;
  a.speculative_config = R"({"method": "ngram", "num_speculative_tokens": 4, "bogus": 1})";
  Status st = ResolveEngineArgs(a);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("bogus"), std::string::npos) << st.message();

  EngineArgs k;
  k.kv_cache_memory = "lots";
  st = ResolveEngineArgs(k);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("kv_cache_memory"), std::string::npos) << st.message();

  EngineArgs t;
  t.threads = -2;
  EXPECT_FALSE(ResolveEngineArgs(t).ok());

  EngineArgs m;
  m.load.model = "/nonexistent/model.gguf";
  auto e = Engine::Create(m);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("/nonexistent/model.gguf"), std::string::npos) << e.status().message();
}

}  // namespace
}  // namespace inferd
