// AsyncEngine: requests added and aborted from several threads while the engine thread
// steps; every request ends exactly once; shutdown aborts what is left. Run under TSan too.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <atomic>
#include <thread>

#include "../model_test_util.h"
#include "inferd/engine.h"
#include "model/model.h"

namespace inferd {
namespace {

std::unique_ptr<AsyncEngine> MakeAsync() {
  auto model = LoadModel(LoadOptions{.model = testing::EmbeddedModelPath()});
  EXPECT_TRUE(model.ok());
  EngineOptions o;
  o.max_model_len = 256;
  auto engine = Engine::Create(std::move(model).value(), o);
  EXPECT_TRUE(engine.ok());
  return std::make_unique<AsyncEngine>(std::move(engine).value(), /*stats_interval_s=*/0.5);
}

GenerateRequest Req(const AsyncEngine& e, const std::string& id, const std::string& prompt, int max_tokens) {
  GenerateRequest r;
  r.request_id = id;
  r.prompt_token_ids = e.engine().tokenizer().Encode(prompt, true, false);
  r.params.max_tokens = max_tokens;
  r.params.temperature = 0;
  r.params.ignore_eos = true;
  return r;
}

// Drains a stream; returns the final item and counts deltas.
RequestStream::Item Drain(RequestStream& s, int* num_deltas, std::string* text) {
  RequestStream::Item item, last;
  while (s.Next(&item, std::chrono::seconds(120))) {
    if (item.delta) {
      ++*num_deltas;
      *text += item.delta->new_text;
    }
    if (item.final) last = std::move(item);
  }
  return last;
}

TEST(AsyncEngine, ConcurrentAddsStreamDeltasAndFinishExactlyOnce) {
  INFERD_REQUIRE_MODEL(path);
  auto engine = MakeAsync();
  constexpr int kThreads = 4, kPerThread = 3;
  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto stream = engine->AddRequest(Req(*engine, fmt::format("t{}-{}", t, i), "Tell me about the ocean", 6));
        ASSERT_TRUE(stream.ok());
        int deltas = 0;
        std::string text;
        RequestStream::Item last = Drain(**stream, &deltas, &text);
        ASSERT_TRUE(last.final.has_value());
        ASSERT_TRUE(last.final->ok()) << last.final->status().ToString();
        EXPECT_EQ((*last.final)->outputs[0].token_ids.size(), 6u);
        EXPECT_EQ((*last.final)->outputs[0].text, text);
        EXPECT_GE(deltas, 6);
        ++finished;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(finished.load(), kThreads * kPerThread);
  EngineSnapshot snap = engine->Snapshot();
  EXPECT_EQ(snap.num_running, 0u);
  EXPECT_EQ(snap.kv_usage, 0.0);
}

TEST(AsyncEngine, AbortFromAnotherThreadEndsTheRequest) {
  INFERD_REQUIRE_MODEL(path);
  auto engine = MakeAsync();
  auto stream = engine->AddRequest(Req(*engine, "long", "Count to one thousand:", 200));
  ASSERT_TRUE(stream.ok());
  RequestStream::Item item;
  ASSERT_TRUE((*stream)->Next(&item, std::chrono::seconds(60)));  // generation started
  std::thread aborter([&] { engine->Abort("long"); });
  aborter.join();
  int deltas = 0;
  std::string text;
  RequestStream::Item last = Drain(**stream, &deltas, &text);
  ASSERT_TRUE(last.final.has_value() && last.final->ok());
  EXPECT_EQ((*last.final)->outputs[0].finish_reason, "abort");
  EXPECT_LT((*last.final)->outputs[0].token_ids.size(), 200u);
  // Blocks were released: a snapshot after the next step shows no usage.
  auto probe = engine->AddRequest(Req(*engine, "probe", "hi", 1));
  ASSERT_TRUE(probe.ok());
  Drain(**probe, &deltas, &text);
  EXPECT_EQ(engine->Snapshot().kv_usage, 0.0);
}

TEST(AsyncEngine, InvalidRequestsAreRejectedUpFront) {
  INFERD_REQUIRE_MODEL(path);
  auto engine = MakeAsync();
  GenerateRequest bad = Req(*engine, "bad", "hi", 5);
  bad.params.top_p = 0;
  auto s = engine->AddRequest(bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("top_p"), std::string::npos);
  GenerateRequest too_long = Req(*engine, "long", "hi", 5);
  too_long.prompt_token_ids.assign(300, 42);
  auto s2 = engine->AddRequest(too_long);
  ASSERT_FALSE(s2.ok());
  EXPECT_NE(s2.status().message().find("256"), std::string::npos);
  // Duplicate ids in flight: the second gets an error as its final output.
  auto a = engine->AddRequest(Req(*engine, "dup", "hello there", 50));
  auto b = engine->AddRequest(Req(*engine, "dup", "hello there", 50));
  ASSERT_TRUE(a.ok() && b.ok());
  int deltas = 0;
  std::string text;
  RequestStream::Item lb = Drain(**b, &deltas, &text);
  ASSERT_TRUE(lb.final.has_value());
  EXPECT_FALSE(lb.final->ok());
  RequestStream::Item la = Drain(**a, &deltas, &text);
  ASSERT_TRUE(la.final.has_value() && la.final->ok());
}

TEST(AsyncEngine, ShutdownAbortsInFlightRequestsOnce) {
  INFERD_REQUIRE_MODEL(path);
  auto engine = MakeAsync();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 5; ++i) {
    auto s = engine->AddRequest(Req(*engine, fmt::format("s{}", i), "Write an essay about rivers", 500));
    ASSERT_TRUE(s.ok());
    streams.push_back(*s);
  }
  engine->Shutdown(std::chrono::milliseconds(100));
  for (auto& s : streams) {
    int deltas = 0, finals = 0;
    RequestStream::Item item;
    while (s->TryNext(&item)) finals += item.final.has_value();
    EXPECT_EQ(finals, 1);
    (void)deltas;
  }
  auto after = engine->AddRequest(Req(*engine, "late", "hi", 1));
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().code(), StatusCode::kUnavailable);
}


// Structured constraints added from several threads at once (the first use builds the grammar
// cache; the same and different constraints compile concurrently) while the engine steps:
// bad ones are refused up front, every accepted one ends once with text of its grammar.
TEST(AsyncEngine, ConcurrentStructuredRequestsCompileOnCallerThreads) {
  INFERD_REQUIRE_MODEL(path);
  auto engine = MakeAsync();
  constexpr int kThreads = 4;
  std::atomic<int> finished{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3; ++i) {
        GenerateRequest r = Req(*engine, fmt::format("s{}-{}", t, i), "Answer:", 8);
        r.params.ignore_eos = false;
        StructuredOutputsParams& so = r.params.structured_outputs.emplace();
        if (i == 2 && t % 2 == 0) {
          so.regex = "[";  // does not compile
        } else {
          so.choice = std::vector<std::string>{"yes", "no", fmt::format("maybe{}", i)};
        }
        auto stream = engine->AddRequest(std::move(r));
        if (!stream.ok()) {
          EXPECT_EQ(stream.status().code(), StatusCode::kInvalidArgument);
          ++refused;
          continue;
        }
        int deltas = 0;
        std::string text;
        RequestStream::Item last = Drain(**stream, &deltas, &text);
        ASSERT_TRUE(last.final && last.final->ok());
        EXPECT_TRUE(text == "yes" || text == "no" || text == fmt::format("maybe{}", i)) << text;
        ++finished;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(refused.load(), kThreads / 2);
  EXPECT_EQ(finished.load(), 3 * kThreads - kThreads / 2);
}

}  // namespace
}  // namespace inferd
