// `inferd router`: an OpenAI-compatible proxy in front of several `inferd serve` replicas
// (docs/router.md). Admission (rate limits), choice (canary split, health, circuit breakers,
// prefix-aware / least-load / round-robin balancing), forwarding with retries before the
// first byte, and its own /metrics and /health.
#pragma once

#include <string>
#include <vector>

#include "inferd/status.h"
#include "router/balancer.h"
#include "router/canary.h"
#include "router/circuit_breaker.h"
#include "router/rate_limiter.h"
#include "router/retry.h"

namespace inferd::router {

struct RouterOptions {
  std::string host = "0.0.0.0";
  int port = 8000;
  std::vector<std::string> backends;     // replica base URLs: "http://10.0.0.5:8000"
  std::vector<std::string> backend_dns;  // "name:port": every address of name is a replica (headless Service)
  double dns_refresh_s = 5;
  std::string canary;                    // base URL of the canary replica ("": none)
  CanaryOptions canary_options;          // weight in percent
  double canary_eval_interval_s = 1;

  BalancerOptions balancer;
  size_t prefix_block_bytes = 256;  // routing key: the prompt's text in blocks of this many bytes
  size_t prefix_max_blocks = 64;
  RateLimitOptions rate_limit;
  CircuitBreakerOptions breaker;
  RetryBudgetOptions retry_budget;

  double request_timeout_s = 600;  // the whole request, first byte to last
  int max_retries = 2;             // extra attempts, each before any byte reached the client
  double retry_backoff_s = 0.05;   // base of the exponential backoff (full jitter)
  double retry_backoff_max_s = 2;
  double connect_timeout_s = 2;
  double health_check_interval_s = 2;  // GET /health and /metrics of every replica
  double health_check_timeout_s = 2;

  size_t max_body_bytes = 64u << 20;           // request bodies (413 above)
  size_t max_response_bytes = 256u << 20;      // a non-streamed response held before it is forwarded
  size_t stream_buffer_bytes = 1u << 20;       // a slow client: stop reading the replica past this
  bool access_log = true;
};

// Validates the options (URLs, ranges): InvalidArgument naming the flag.
Status ValidateRouterOptions(const RouterOptions& options);

// Binds, serves until SIGINT/SIGTERM, returns. Errors: bad options, port taken.
Status RunRouter(const RouterOptions& options);

}  // namespace inferd::router
