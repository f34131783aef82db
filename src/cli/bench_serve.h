// `inferd bench serve`: an online serving load generator in the manner of `vllm bench serve`.
//
// Pieces (this header has no Boost in it; Beast lives in bench_serve_client.cc only, which
// keeps the ~14 s Beast compile in one translation unit):
//   - SseStream: turns the body bytes of one streamed /v1/completions response (any chunking)
//     into a RequestResult: TTFT, inter-token latencies, output tokens, errors — measured the
//     way vLLM's benchmark_serving request function does.
//   - ComputeServeMetrics / FormatServeResult / ServeResultJson: vLLM's calculate_metrics and
//     its result block; percentiles as numpy's default (linear interpolation).
//   - RunServeLoad: the asynchronous HTTP client (one io thread, C++20 coroutines), Poisson
//     arrivals and a cap on requests in flight.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "inferd/status.h"
#include "util/url.h"

namespace CLI {
class App;
}

namespace inferd::cli {

// Registers `bench serve` under the `bench` command (cmd_bench_serve.cc).
void AddBenchServeCommand(CLI::App* bench);

// ----------------------------------------------------------------------------- one request

// Outcome of one request. Times are seconds; `itl` holds the gaps between successive
// token chunks (vLLM's definition: every SSE event that carries a non-empty `choices`).
struct RequestResult {
  bool success = false;
  std::string error;           // first error seen, when !success
  int64_t prompt_len = 0;      // dataset's token count of the prompt
  int64_t output_tokens = 0;   // usage.completion_tokens if sent, else the number of token chunks
  double ttft = 0;             // request sent → first token chunk
  double latency = 0;          // request sent → last token chunk (vLLM's E2EL)
  std::vector<double> itl;
};

// Parses the Server-Sent Events of one streamed completion: `data: {json}` lines, events
// ended by a blank line, `data: [DONE]`. Bytes may be split anywhere (TCP, HTTP chunks).
// Feed() stamps whatever events complete in the bytes with `now`.
class SseStream {
 public:
  explicit SseStream(double start_time) : start_(start_time) {}
  void Feed(std::string_view bytes, double now);
  // End of the body: dispatches an unterminated last event and fills the result.
  RequestResult Finish(double now);
  // Marks the request failed (HTTP status, connection error); the first message wins.
  void SetError(std::string message);

 private:
  void HandleLine(std::string_view line, double now);
  void Dispatch(double now);

  double start_;
  std::string line_;   // bytes of the current, unfinished line
  std::string data_;   // data of the current event (data lines joined by '\n')
  bool has_data_ = false;
  bool first_chunk_ = false, done_ = false;
  double first_chunk_time_ = 0, last_chunk_ = 0;
  int64_t chunks_ = 0, usage_tokens_ = -1;
  std::vector<double> itl_;
  std::string error_;
};

// ----------------------------------------------------------------------------- metrics

struct MetricStats {  // milliseconds
  double mean = 0, median = 0, std = 0;
  std::vector<std::pair<double, double>> percentiles;  // (p, value)
};

struct ServeMetrics {
  int64_t completed = 0, failed = 0;
  int64_t total_input = 0, total_output = 0;
  double duration = 0;  // seconds
  double request_throughput = 0, output_throughput = 0, total_token_throughput = 0;
  MetricStats ttft, tpot, itl, e2el;
};

// numpy.percentile(values, p) with the default "linear" method; 0 for no values (as vLLM's
// `np.percentile(x or 0, p)`). `values` need not be sorted.
double Percentile(std::vector<double> values, double p);
MetricStats Summarize(const std::vector<double>& seconds, std::span<const double> percentiles);

// vLLM's calculate_metrics: successful requests count their prompt and output tokens; TPOT
// = (latency - ttft) / (output_tokens - 1) for requests with more than one output token.
ServeMetrics ComputeServeMetrics(std::span<const RequestResult> results, double duration_s,
                                 std::span<const double> percentiles);

struct ServeRunInfo {
  int64_t num_prompts = 0;
  double request_rate = std::numeric_limits<double>::infinity();
  double burstiness = 1.0;
  std::optional<int64_t> max_concurrency;
  std::string model_id, tokenizer;
  std::vector<std::string> percentile_metrics = {"ttft", "tpot", "itl"};  // printed sections
};

// vLLM's "Serving Benchmark Result" block (ends in a newline).
std::string FormatServeResult(const ServeMetrics& m, const ServeRunInfo& info);
// One object with vLLM's result keys (completed, failed, duration, total_input_tokens, ...,
// mean/median/std/pNN for ttft, tpot, itl and e2el, max_concurrency, request_rate).
nlohmann::json ServeResultJson(const ServeMetrics& m, const ServeRunInfo& info);

// ----------------------------------------------------------------------------- client

struct ServeLoadOptions {
  BaseUrl url;
  std::string endpoint = "/v1/completions";
  double request_rate = std::numeric_limits<double>::infinity();  // requests/s; inf = all at once
  double burstiness = 1.0;      // gamma shape of the inter-arrival gaps; 1 = Poisson
  int64_t max_concurrency = 0;  // requests in flight at most; 0 = no cap
  uint64_t seed = 0;            // arrival gaps
  double timeout_s = 6 * 3600;  // a request fails after this long without progress
};

// Sends POST url.prefix + endpoint with bodies[i] (JSON) for every i, arrivals and cap as in
// `options`, on one io thread (the caller's). Connections are kept alive and reused while
// requests remain to be sent. on_done(i, result) runs after each request ends.
// Returns the results (prompt_len from prompt_lens[i]) and sets *duration_s: first send →
// last completion. Raises the RLIMIT_NOFILE soft limit to the hard limit.
std::vector<RequestResult> RunServeLoad(const ServeLoadOptions& options, std::span<const std::string> bodies,
                                        std::span<const int64_t> prompt_lens,
                                        const std::function<void(size_t, const RequestResult&)>& on_done,
                                        double* duration_s);

// GET url.prefix + target; the body of a 200 response, else an error naming the status.
StatusOr<std::string> HttpGet(const BaseUrl& url, const std::string& target, double timeout_s = 30);

}  // namespace inferd::cli
