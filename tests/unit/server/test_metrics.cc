#include "server/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "inferd/engine.h"  // EngineSnapshot, for UpdateFromEngine (header only)

namespace inferd::metrics {
namespace {

TEST(MetricsFormat, Values) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(-0.0), "0");
  EXPECT_EQ(FormatValue(5), "5");
  EXPECT_EQ(FormatValue(-17), "-17");
  EXPECT_EQ(FormatValue(1e6), "1000000");
  EXPECT_EQ(FormatValue(9007199254740991.0), "9007199254740991");
  EXPECT_EQ(FormatValue(1e20), "1e+20");
  EXPECT_EQ(FormatValue(0.005), "0.005");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(2.5), "2.5");
  EXPECT_EQ(FormatValue(1e-9), "1e-09");
  EXPECT_EQ(FormatValue(0.1 + 0.2), "0.30000000000000004");  // round-trips exactly
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(MetricsFormat, Escaping) {
  EXPECT_EQ(EscapeLabelValue(R"(a\b"c)" "\n" "d"), R"(a\\b\"c\nd)");
  EXPECT_EQ(EscapeHelp(R"(a\b"c)" "\n" "d"), R"(a\\b"c\nd)");  // quotes stay in HELP
  EXPECT_EQ(EscapeLabelValue("plain ünïcode"), "plain ünïcode");
}

TEST(MetricsRegistry, ExactText) {
  Registry r;
  auto& c = r.AddCounter("requests", "Requests served.");
  auto& g = r.AddGauge("temp_celsius", "Temperature.\nSecond \\ line.", {"room", "floor"});
  auto& h = r.AddHistogram("latency_seconds", "Latency.", {"path"}, {0.005, 0.25, 1});
  c.Get().Inc();
  c.Get().Inc(2.5);
  g.Labels({"b\"x\"", "1"}).Set(-3.25);
  g.Labels({"a\\\n", "2"}).Set(21);
  h.Labels({"/v1"}).Observe(0.25);  // le is inclusive
  h.Labels({"/v1"}).Observe(0.125);
  h.Labels({"/v1"}).Observe(3);
  const std::string expected =
      "# HELP requests_total Requests served.\n"
      "# TYPE requests_total counter\n"
      "requests_total 3.5\n"
      "# HELP temp_celsius Temperature.\\nSecond \\\\ line.\n"
      "# TYPE temp_celsius gauge\n"
      "temp_celsius{room=\"a\\\\\\n\",floor=\"2\"} 21\n"
      "temp_celsius{room=\"b\\\"x\\\"\",floor=\"1\"} -3.25\n"
      "# HELP latency_seconds Latency.\n"
      "# TYPE latency_seconds histogram\n"
      "latency_seconds_bucket{path=\"/v1\",le=\"0.005\"} 0\n"
      "latency_seconds_bucket{path=\"/v1\",le=\"0.25\"} 2\n"
      "latency_seconds_bucket{path=\"/v1\",le=\"1\"} 2\n"
      "latency_seconds_bucket{path=\"/v1\",le=\"+Inf\"} 3\n"
      "latency_seconds_sum{path=\"/v1\"} 3.375\n"
      "latency_seconds_count{path=\"/v1\"} 3\n";
  EXPECT_EQ(r.Render(), expected);
}

TEST(MetricsRegistry, UnlabelledFamiliesRenderZeroAndLabelledOnesOnlyHeaders) {
  Registry r;
  r.AddCounter("a_total", "A.");  // "_total" is not doubled
  r.AddGauge("b", "B.", {"x"});
  r.AddHistogram("c", "C.", {}, {1});
  EXPECT_EQ(r.Render(),
            "# HELP a_total A.\n# TYPE a_total counter\na_total 0\n"
            "# HELP b B.\n# TYPE b gauge\n"
            "# HELP c C.\n# TYPE c histogram\n"
            "c_bucket{le=\"1\"} 0\nc_bucket{le=\"+Inf\"} 0\nc_sum 0\nc_count 0\n");
}

TEST(MetricsRegistry, HistogramCumulativeCounts) {
  Registry r;
  auto& h = r.AddHistogram("h", "H.", {}, {1, 2, 4}).Get();
  for (double v : {0.5, 1.0, 1.0000001, 2.0, 3.0, 4.0, 4.5, 100.0, -1.0}) h.Observe(v);
  h.Observe(std::nan(""));  // ignored
  Histogram::Snapshot s = h.Read();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{3, 5, 7, 9}));
  EXPECT_EQ(s.count, 9u);
  EXPECT_DOUBLE_EQ(s.sum, 0.5 + 1 + 1.0000001 + 2 + 3 + 4 + 4.5 + 100 - 1);
}

TEST(MetricsRegistry, CounterIgnoresNegativeAndNaN) {
  Counter c;
  c.Inc(2);
  c.Inc(-1);
  c.Inc(std::nan(""));
  EXPECT_EQ(c.Value(), 2);
  Gauge g;
  g.Inc(2);
  g.Dec(5);
  EXPECT_EQ(g.Value(), -3);
}

TEST(MetricsRegistry, ChildReferencesAreStable) {
  Registry r;
  auto& f = r.AddCounter("x", "X.", {"k"});
  Counter* first = &f.Labels({"a"});
  for (int i = 0; i < 1000; ++i) f.Labels({std::to_string(i)});
  EXPECT_EQ(first, &f.Labels({"a"}));
}

TEST(MetricsRegistryDeathTest, ProgrammingErrorsAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH({ Registry r; r.AddGauge("1bad", "x"); }, "invalid metric name");
  EXPECT_DEATH({ Registry r; r.AddGauge("ok", "x", {"bad-label"}); }, "invalid label name");
  EXPECT_DEATH({ Registry r; r.AddGauge("ok", "x", {"__reserved"}); }, "invalid label name");
  EXPECT_DEATH({ Registry r; r.AddHistogram("ok", "x", {"le"}, {1}); }, "reserved");
  EXPECT_DEATH({ Registry r; r.AddHistogram("ok", "x", {}, {2, 1}); }, "strictly increasing");
  EXPECT_DEATH({ Registry r; r.AddGauge("ok", "x"); r.AddGauge("ok", "y"); }, "duplicate");
  EXPECT_DEATH({ Registry r; r.AddGauge("ok", "x", {"a"}).Labels({"1", "2"}); }, "label values");
}

std::string ThreadLabel(int t) {
  std::string s = std::to_string(t);
  return s.insert(0, 1, 't');  // not "t" + to_string(t): GCC 12 -Wrestrict false positive
}

TEST(MetricsRegistry, ConcurrentObservationsAddUp) {
  Registry r;
  auto& counters = r.AddCounter("c", "C.", {"t"});
  auto& hist = r.AddHistogram("h", "H.", {}, {0.5, 1.5}).Get();
  auto& gauge = r.AddGauge("g", "G.").Get();
  constexpr int kThreads = 8, kIters = 20000;
  std::atomic<bool> done{false};
  std::thread scraper([&] {  // renders concurrently, as a /metrics scrape would
    while (!done.load()) {
      std::string text = r.Render();
      ASSERT_NE(text.find("# TYPE h histogram"), std::string::npos);
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter& shared = counters.Labels({"shared"});
      Counter& mine = counters.Labels({ThreadLabel(t)});
      for (int i = 0; i < kIters; ++i) {
        shared.Inc();
        mine.Inc(0.5);
        hist.Observe(i % 2);  // 0 and 1 alternate
        gauge.Inc();
      }
    });
  }
  for (auto& th : threads) th.join();
  done = true;
  scraper.join();
  EXPECT_EQ(counters.Labels({"shared"}).Value(), kThreads * kIters);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(counters.Labels({ThreadLabel(t)}).Value(), kIters * 0.5);
  Histogram::Snapshot s = hist.Read();
  EXPECT_EQ(s.count, uint64_t{kThreads} * kIters);
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{s.count / 2, s.count, s.count}));
  EXPECT_EQ(s.sum, kThreads * kIters / 2);
  EXPECT_EQ(gauge.Value(), kThreads * kIters);
  EXPECT_NE(r.Render().find("c_total{t=\"shared\"} 160000\n"), std::string::npos);
}

// Lines of `text` that start with `prefix`.
std::vector<std::string> Lines(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    std::string line = text.substr(pos, end - pos);
    if (line.starts_with(prefix)) out.push_back(line);
    pos = end + 1;
  }
  return out;
}

TEST(ServerMetrics, FamiliesAndInitialValues) {
  ServerMetrics m("smol");
  std::string text = m.Render();
  for (const char* family : {"inferd:num_requests_running gauge", "inferd:num_requests_waiting gauge",
                             "inferd:kv_cache_usage_perc gauge", "inferd:prompt_tokens_total counter",
                             "inferd:generation_tokens_total counter", "inferd:request_success_total counter",
                             "inferd:num_preemptions_total counter", "inferd:prefix_cache_queries_total counter",
                             "inferd:prefix_cache_hits_total counter", "inferd:time_to_first_token_seconds histogram",
                             "inferd:inter_token_latency_seconds histogram",
                             "inferd:e2e_request_latency_seconds histogram",
                             "inferd:request_queue_time_seconds histogram"}) {
    EXPECT_EQ(Lines(text, std::string("# TYPE ") + family).size(), 1u) << family;
  }
  EXPECT_EQ(Lines(text, "inferd:request_success_total{").size(), 3u);
  EXPECT_EQ(Lines(text, "inferd:request_success_total{model_name=\"smol\",finished_reason=\"stop\"} 0").size(), 1u);
  EXPECT_EQ(Lines(text, "inferd:time_to_first_token_seconds_bucket{").size(), kTtftBuckets.size() + 1);
  EXPECT_EQ(Lines(text, "inferd:inter_token_latency_seconds_bucket{").size(), kInterTokenBuckets.size() + 1);
  EXPECT_EQ(Lines(text, "inferd:e2e_request_latency_seconds_bucket{").size(), kRequestLatencyBuckets.size() + 1);
  EXPECT_EQ(kTtftBuckets.size(), 22u);
  EXPECT_EQ(kInterTokenBuckets.size(), 19u);
  EXPECT_EQ(kRequestLatencyBuckets.size(), 21u);
  // Every sample carries model_name.
  for (const std::string& line : Lines(text, "inferd:")) {
    EXPECT_NE(line.find("{model_name=\"smol\""), std::string::npos) << line;
  }
}

TEST(ServerMetrics, ObservationsAndMonotonicEngineCounters) {
  ServerMetrics m("smol");
  m.ObserveFinished("stop", 0.2, 0.25, 1.2);
  m.ObserveFinished("length", 0.0, 0.5, 2.0);
  m.ObserveFinished("abort", 0.1, -1, 0.4);  // no first token: ttft not observed
  m.ObserveInterToken(0.02);
  m.ObserveInterToken(0.02);

  EngineSnapshot snap;
  snap.num_running = 3;
  snap.num_waiting = 1;
  snap.kv_usage = 0.25;
  snap.counters.prompt_tokens = 100;
  snap.counters.generation_tokens = 40;
  snap.counters.num_preemptions = 2;
  snap.counters.prefix_queries = 64;
  snap.counters.prefix_hits = 32;
  m.UpdateFromEngine(snap);
  snap.counters.prompt_tokens = 150;
  m.UpdateFromEngine(snap);
  // An older snapshot (a concurrent scrape that took its snapshot earlier) is ignored.
  snap.counters.prompt_tokens = 120;
  snap.num_running = 0;
  m.UpdateFromEngine(snap);

  std::string text = m.Render();
  auto has = [&](const std::string& line) {
    EXPECT_NE(("\n" + text).find("\n" + line + "\n"), std::string::npos) << line;
  };
  has("inferd:num_requests_running{model_name=\"smol\"} 0");
  has("inferd:num_requests_waiting{model_name=\"smol\"} 1");
  has("inferd:kv_cache_usage_perc{model_name=\"smol\"} 0.25");
  has("inferd:prompt_tokens_total{model_name=\"smol\"} 150");
  has("inferd:generation_tokens_total{model_name=\"smol\"} 40");
  has("inferd:num_preemptions_total{model_name=\"smol\"} 2");
  has("inferd:prefix_cache_queries_total{model_name=\"smol\"} 64");
  has("inferd:prefix_cache_hits_total{model_name=\"smol\"} 32");
  has("inferd:request_success_total{model_name=\"smol\",finished_reason=\"stop\"} 1");
  has("inferd:request_success_total{model_name=\"smol\",finished_reason=\"length\"} 1");
  has("inferd:request_success_total{model_name=\"smol\",finished_reason=\"abort\"} 1");
  has("inferd:time_to_first_token_seconds_count{model_name=\"smol\"} 2");
  has("inferd:time_to_first_token_seconds_bucket{model_name=\"smol\",le=\"0.1\"} 0");
  has("inferd:time_to_first_token_seconds_bucket{model_name=\"smol\",le=\"0.25\"} 1");
  has("inferd:time_to_first_token_seconds_bucket{model_name=\"smol\",le=\"0.5\"} 2");
  has("inferd:time_to_first_token_seconds_sum{model_name=\"smol\"} 0.75");
  has("inferd:e2e_request_latency_seconds_count{model_name=\"smol\"} 3");
  has("inferd:e2e_request_latency_seconds_bucket{model_name=\"smol\",le=\"0.3\"} 0");
  has("inferd:e2e_request_latency_seconds_bucket{model_name=\"smol\",le=\"0.5\"} 1");
  has("inferd:e2e_request_latency_seconds_bucket{model_name=\"smol\",le=\"+Inf\"} 3");
  has("inferd:request_queue_time_seconds_count{model_name=\"smol\"} 3");
  has("inferd:inter_token_latency_seconds_bucket{model_name=\"smol\",le=\"0.025\"} 2");
  has("inferd:inter_token_latency_seconds_sum{model_name=\"smol\"} 0.04");
}

TEST(ServerMetrics, ConcurrentUseFromServerThreads) {
  ServerMetrics m("smol");
  constexpr int kThreads = 4, kIters = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 1; i <= kIters; ++i) {
        m.ObserveFinished(i % 2 ? "stop" : "length", 0.01, 0.1, 1.0);
        m.ObserveInterToken(0.02);
        EngineStats e;
        e.generation_tokens = i;  // scrapes race with each other; the total is monotonic
        m.Update(e);
        if (t == 0 && i % 100 == 0) (void)m.Render();
      }
    });
  }
  for (auto& th : threads) th.join();
  std::string text = m.Render();
  EXPECT_NE(text.find("inferd:request_success_total{model_name=\"smol\",finished_reason=\"stop\"} 4000\n"),
            std::string::npos);
  EXPECT_NE(text.find("inferd:inter_token_latency_seconds_count{model_name=\"smol\"} 8000\n"), std::string::npos);
  // Totals from 4 threads arrive out of order; older (smaller) ones are ignored, so the
  // counter ends at the largest total and not above it.
  EXPECT_NE(text.find("inferd:generation_tokens_total{model_name=\"smol\"} 2000\n"), std::string::npos);
}

TEST(ServerMetrics, ModelNameIsEscaped) {
  ServerMetrics m("a\"b\\c");
  EXPECT_NE(m.Render().find("inferd:num_requests_running{model_name=\"a\\\"b\\\\c\"} 0\n"), std::string::npos);
}

}  // namespace
}  // namespace inferd::metrics
