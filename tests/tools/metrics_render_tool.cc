// metrics_render_tool: prints to stdout the /metrics text of a ServerMetrics (model_name
// "test-model") filled with the fixed observations below, so that
// tests/e2e/test_prometheus_harness.py can check it with prometheus_client's parser and
// with a real Prometheus. Keep the expected values there in step with this file.
#include <cstdio>
#include <string>

#include "server/metrics.h"

int main() {
  inferd::metrics::ServerMetrics m("test-model");
  inferd::metrics::EngineStats e;
  e.num_running = 3;
  e.num_waiting = 2;
  e.kv_usage = 0.375;
  e.prompt_tokens = 1234;
  e.generation_tokens = 567;
  e.num_preemptions = 1;
  e.prefix_queries = 1000;
  e.prefix_hits = 250;
  m.Update(e);
  // 10 requests: 6 stop, 3 length, 1 abort (before its first token).
  // TTFT of the 9 with a first token: 0.05 x4, 0.2 x4, 3.0 x1.
  for (int i = 0; i < 6; ++i) m.ObserveFinished("stop", 0.01, i < 4 ? 0.05 : 0.2, 1.0);
  for (int i = 0; i < 3; ++i) m.ObserveFinished("length", 0.5, i < 2 ? 0.2 : 3.0, 4.0);
  m.ObserveFinished("abort", 0.1, -1, 0.1);
  for (int i = 0; i < 100; ++i) m.ObserveInterToken(0.02);  // all in le="0.025"
  // An extra family with awkward label values, to check escaping end to end.
  m.registry()
      .AddGauge("inferd_test_escaping", "Label values with \\ backslash, \" quote and\nnewline.", {"value"})
      .Labels({"back\\slash \"quoted\"\nnext line"})
      .Set(7);
  std::string text = m.Render();
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}
