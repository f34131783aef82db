// One client request on its way through the router (docs/router.md): admission, choice of
// a backend, attempts with retries before the first byte, the answer passed through.
//
// A Forward ends exactly once: the replica's answer forwarded, or a clear error (429, 502,
// 503, 504; after the first byte of a stream, an SSE error event and the end of the
// stream), or the client went away (the attempt is cancelled, so the replica aborts).
// Threading: the router's I/O thread only.
#pragma once

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "router/backends.h"
#include "router/canary.h"
#include "router/rate_limiter.h"
#include "router/retry.h"
#include "router/router.h"
#include "router/router_metrics.h"
#include "router/upstream.h"
#include "server/http.h"

namespace inferd::router {

inline constexpr const char* kJson = "application/json";

// What every Forward shares: the router's state.
struct RouterContext {
  const RouterOptions& options;
  server::HttpServer& server;
  UpstreamClient& upstream;
  BackendPool& pool;
  Balancer& balancer;
  RateLimiter& limiter;
  RetryBudget& retry_budget;
  CanaryController& canary;
  RouterMetrics& metrics;
  std::mt19937_64& rng;
  std::function<double()> now;
};

// Starts forwarding `request` (a /v1 route) and answers on `exchange`.
void StartForward(RouterContext& ctx, const server::HttpRequest& request,
                  std::shared_ptr<server::HttpExchange> exchange);

// The routing key of a request body: chained block hashes of its prompt text (prefix_key.h),
// and an estimate of the tokens it will use (prompt bytes / 4 + max_tokens, or 256 when the
// request sets no limit, times n) for the tokens-per-minute limits.
struct RequestTraits {
  std::vector<uint64_t> block_hashes;
  double estimated_tokens = 0;
};
RequestTraits ReadRequestTraits(const std::string& body, const std::string& path, const RouterOptions& options);

// Scans a streamed (SSE) or whole JSON response for usage.total_tokens.
class UsageScanner {
 public:
  void FeedStream(std::string_view bytes);
  void ReadWhole(std::string_view body);
  std::optional<double> total_tokens() const { return total_; }

 private:
  void Line(std::string_view line);
  std::string line_;
  std::optional<double> total_;
};

// Notes when a stream passed on has carried its `data: [DONE]` marker, wherever the reads
// split it; copies at most a marker's length per read.
class StreamEndScanner {
 public:
  void Feed(std::string_view bytes);
  bool done() const { return done_; }

 private:
  bool done_ = false;
  std::string tail_;  // the last marker-length - 1 bytes fed
};

}  // namespace inferd::router
