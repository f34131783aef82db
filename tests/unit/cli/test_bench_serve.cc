#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cli/bench_serve.h"

namespace inferd::cli {
namespace {

// ----------------------------------------------------------------------------- percentiles

TEST(BenchServeStats, PercentileMatchesNumpyLinear) {
  // Values from numpy.percentile(v, p) (default method "linear").
  const std::vector<double> v = {0.3, 0.1, 0.7, 0.2, 0.9, 0.4, 1.5};
  EXPECT_DOUBLE_EQ(Percentile(v, 0), 0.1);
  EXPECT_DOUBLE_EQ(Percentile(v, 50), 0.4);
  EXPECT_NEAR(Percentile(v, 90), 1.14, 1e-12);
  EXPECT_NEAR(Percentile(v, 99), 1.464, 1e-12);
  EXPECT_NEAR(Percentile(v, 99.9), 1.4964, 1e-12);
  EXPECT_DOUBLE_EQ(Percentile(v, 100), 1.5);
  EXPECT_DOUBLE_EQ(Percentile({5.0}, 99), 5.0);
  EXPECT_NEAR(Percentile({1.0, 2.0}, 99), 1.99, 1e-12);
  EXPECT_DOUBLE_EQ(Percentile({}, 99), 0.0);  // vLLM: np.percentile(x or 0, p)
}

TEST(BenchServeStats, SummarizeInMilliseconds) {
  const std::vector<double> v = {0.3, 0.1, 0.7, 0.2, 0.9, 0.4, 1.5};
  const double ps[] = {99};
  MetricStats s = Summarize(v, ps);
  EXPECT_NEAR(s.mean, 585.7142857142856, 1e-9);
  EXPECT_NEAR(s.std, 454.90523794544735, 1e-9);  // numpy std: ddof 0
  EXPECT_NEAR(s.median, 400, 1e-9);
  ASSERT_EQ(s.percentiles.size(), 1u);
  EXPECT_EQ(s.percentiles[0].first, 99);
  EXPECT_NEAR(s.percentiles[0].second, 1464, 1e-9);
  MetricStats empty = Summarize({}, ps);
  EXPECT_EQ(empty.mean, 0);
  EXPECT_EQ(empty.median, 0);
  EXPECT_EQ(empty.percentiles[0].second, 0);
}

RequestResult Ok(int64_t prompt, int64_t out, double ttft, double latency, std::vector<double> itl) {
  RequestResult r;
  r.success = true;
  r.prompt_len = prompt;
  r.output_tokens = out;
  r.ttft = ttft;
  r.latency = latency;
  r.itl = std::move(itl);
  return r;
}

TEST(BenchServeStats, ComputeMetricsAsVllm) {
  std::vector<RequestResult> rs;
  rs.push_back(Ok(10, 5, 0.1, 0.5, {0.1, 0.1, 0.1, 0.1}));  // tpot 0.1
  rs.push_back(Ok(20, 3, 0.2, 0.6, {0.2, 0.2}));            // tpot 0.2
  rs.push_back(Ok(30, 1, 0.3, 0.3, {}));                    // one token: no tpot
  RequestResult bad;
  bad.error = "HTTP 500";
  bad.prompt_len = 40;
  bad.output_tokens = 7;  // failed requests count nothing
  rs.push_back(bad);
  const double ps[] = {50, 99};
  ServeMetrics m = ComputeServeMetrics(rs, 2.0, ps);
  EXPECT_EQ(m.completed, 3);
  EXPECT_EQ(m.failed, 1);
  EXPECT_EQ(m.total_input, 60);
  EXPECT_EQ(m.total_output, 9);
  EXPECT_DOUBLE_EQ(m.request_throughput, 1.5);
  EXPECT_DOUBLE_EQ(m.output_throughput, 4.5);
  EXPECT_DOUBLE_EQ(m.total_token_throughput, 34.5);
  EXPECT_NEAR(m.ttft.mean, 200, 1e-9);
  EXPECT_NEAR(m.ttft.median, 200, 1e-9);
  EXPECT_NEAR(m.tpot.mean, 150, 1e-9);
  EXPECT_NEAR(m.tpot.percentiles[1].second, 199, 1e-9);  // linear between 100 and 200
  EXPECT_NEAR(m.itl.mean, (0.4 + 0.4) / 6 * 1000, 1e-9);
  EXPECT_NEAR(m.itl.median, 100, 1e-9);
  EXPECT_NEAR(m.e2el.mean, 466.6666666666667, 1e-9);
  EXPECT_NEAR(m.e2el.median, 500, 1e-9);
}

TEST(BenchServeStats, AllFailedGivesZeros) {
  std::vector<RequestResult> rs(3);
  const double ps[] = {99};
  ServeMetrics m = ComputeServeMetrics(rs, 1.0, ps);
  EXPECT_EQ(m.completed, 0);
  EXPECT_EQ(m.failed, 3);
  EXPECT_EQ(m.ttft.mean, 0);
  EXPECT_EQ(m.itl.percentiles[0].second, 0);
}

TEST(BenchServeStats, ResultBlockAndJson) {
  std::vector<RequestResult> rs = {Ok(10, 3, 0.1, 0.3, {0.1, 0.1})};
  const double ps[] = {99};
  ServeMetrics m = ComputeServeMetrics(rs, 1.0, ps);
  ServeRunInfo info;
  info.num_prompts = 1;
  info.max_concurrency = 8;
  const std::string text = FormatServeResult(m, info);
  EXPECT_EQ(text.substr(0, 51), "============ Serving Benchmark Result ============\n");
  EXPECT_NE(text.find("Successful requests:                     1         \n"), std::string::npos) << text;
  EXPECT_NE(text.find("Maximum request concurrency:             8"), std::string::npos);
  EXPECT_NE(text.find("---------------Time to First Token----------------\n"), std::string::npos) << text;
  EXPECT_NE(text.find("-----Time per Output Token (excl. 1st token)------\n"), std::string::npos) << text;
  EXPECT_NE(text.find("---------------Inter-token Latency----------------\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Mean TTFT (ms):                          100.00"), std::string::npos) << text;
  EXPECT_NE(text.find("P99 ITL (ms):                            100.00"), std::string::npos) << text;
  EXPECT_EQ(text.find("E2EL"), std::string::npos);  // not a default section, as in vLLM
  EXPECT_EQ(text.find("Failed requests"), std::string::npos);
  EXPECT_EQ(text.substr(text.size() - 51), std::string(50, '=') + "\n");

  nlohmann::json j = ServeResultJson(m, info);
  EXPECT_EQ(j["completed"], 1);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_EQ(j["max_concurrency"], 8);
  EXPECT_EQ(j["request_rate"], "inf");
  EXPECT_EQ(j["total_input_tokens"], 10);
  EXPECT_EQ(j["total_output_tokens"], 3);
  EXPECT_NEAR(j["mean_tpot_ms"].get<double>(), 100, 1e-9);
  EXPECT_NEAR(j["p99_e2el_ms"].get<double>(), 300, 1e-9);
  for (const char* k : {"duration", "request_throughput", "output_throughput", "total_token_throughput",
                        "median_ttft_ms", "p99_ttft_ms", "std_itl_ms", "median_e2el_ms"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  info.request_rate = 4;
  info.max_concurrency.reset();
  j = ServeResultJson(m, info);
  EXPECT_EQ(j["request_rate"], 4.0);
  EXPECT_TRUE(j["max_concurrency"].is_null());
  EXPECT_NE(FormatServeResult(m, info).find("Request rate configured (RPS):           4.00"), std::string::npos);
}

// ----------------------------------------------------------------------------- SSE

std::string Chunk(const std::string& text) {
  return R"(data: {"choices":[{"index":0,"text":")" + text + R"(","finish_reason":null}]})" "\n\n";
}

TEST(BenchServeSse, TimesEveryTokenChunk) {
  SseStream s(1.0);
  s.Feed(Chunk("a"), 1.25);
  s.Feed(Chunk("b"), 1.5);
  s.Feed(Chunk("c"), 2.0);
  s.Feed("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":3}}\n\n", 2.1);
  s.Feed("data: [DONE]\n\n", 2.1);
  RequestResult r = s.Finish(2.2);
  EXPECT_TRUE(r.success) << r.error;
  EXPECT_DOUBLE_EQ(r.ttft, 0.25);
  EXPECT_DOUBLE_EQ(r.latency, 1.0);  // last token chunk, not the usage event
  EXPECT_EQ(r.itl, (std::vector<double>{0.25, 0.5}));
  EXPECT_EQ(r.output_tokens, 3);
}

TEST(BenchServeSse, SplitAnywhereGivesTheSameResult) {
  std::string body;
  for (int i = 0; i < 5; ++i) body += Chunk("tok" + std::to_string(i));
  body += "data: {\"choices\":[],\"usage\":{\"completion_tokens\":5}}\r\n\r\n: keep-alive comment\n\ndata: [DONE]\n\n";
  for (size_t piece : {size_t{1}, size_t{2}, size_t{7}, size_t{64}, body.size()}) {
    SseStream s(0.0);
    int events = 0;
    for (size_t pos = 0; pos < body.size(); pos += piece) {
      s.Feed(std::string_view(body).substr(pos, piece), static_cast<double>(++events));
    }
    RequestResult r = s.Finish(1000);
    EXPECT_TRUE(r.success) << piece << ": " << r.error;
    EXPECT_EQ(r.output_tokens, 5) << piece;
    EXPECT_EQ(r.itl.size(), 4u) << piece;
  }
}

TEST(BenchServeSse, MultipleEventsInOneReadShareTheTimestamp) {
  SseStream s(0.0);
  s.Feed(Chunk("a") + Chunk("b") + Chunk("c"), 0.5);
  RequestResult r = s.Finish(0.6);
  EXPECT_TRUE(r.success);
  EXPECT_EQ(r.output_tokens, 3);  // no usage event: counts the token chunks
  EXPECT_EQ(r.itl, (std::vector<double>{0.0, 0.0}));
  EXPECT_DOUBLE_EQ(r.ttft, 0.5);
}

TEST(BenchServeSse, UnterminatedLastEventIsDispatchedAtEnd) {
  SseStream s(0.0);
  s.Feed(Chunk("a"), 0.1);
  s.Feed(R"(data: {"choices":[{"text":"b"}]})", 0.2);
  RequestResult r = s.Finish(0.3);
  EXPECT_EQ(r.output_tokens, 2);
  EXPECT_DOUBLE_EQ(r.latency, 0.3);
}

TEST(BenchServeSse, UsageInTheLastTokenChunk) {
  // llama-server puts the usage on the chunk that carries finish_reason.
  SseStream s(0.0);
  s.Feed(Chunk("a"), 0.1);
  s.Feed(R"(data: {"choices":[{"text":"","finish_reason":"length"}],"usage":{"completion_tokens":2}})" "\n\n",
         0.3);
  RequestResult r = s.Finish(0.3);
  EXPECT_TRUE(r.success);
  EXPECT_EQ(r.output_tokens, 2);
  EXPECT_EQ(r.itl.size(), 1u);
}

TEST(BenchServeSse, NoChunksIsAFailure) {
  SseStream s(0.0);
  s.Feed("data: [DONE]\n\n", 0.1);
  RequestResult r = s.Finish(0.1);
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.error, "Never received a valid chunk to calculate TTFT.");
}

TEST(BenchServeSse, ErrorEventsAndBadJsonFail) {
  SseStream a(0.0);
  a.Feed(Chunk("x"), 0.1);
  a.Feed(R"(data: {"error":{"message":"out of memory","type":"server_error"}})" "\n\n", 0.2);
  RequestResult ra = a.Finish(0.2);
  EXPECT_FALSE(ra.success);
  EXPECT_EQ(ra.error, "error event: out of memory");

  SseStream b(0.0);
  b.Feed("data: {not json\n\n", 0.1);
  EXPECT_FALSE(b.Finish(0.1).success);

  SseStream c(0.0);
  c.Feed(Chunk("x"), 0.1);
  c.SetError("read stream: end of stream");
  c.SetError("second");
  RequestResult rc = c.Finish(0.1);
  EXPECT_FALSE(rc.success);
  EXPECT_EQ(rc.error, "read stream: end of stream");
}

}  // namespace
}  // namespace inferd::cli
