// The router's metric families (router_metrics.h).
#include "router/router_metrics.h"

namespace inferd::router {

RouterMetrics::RouterMetrics()
    : requests(registry.AddCounter("inferd_router_requests_total", "Answers from replicas by status class.",
                                   {"backend", "code"})),
      upstream_errors(registry.AddCounter("inferd_router_upstream_errors_total",
                                          "Attempts that failed without a complete answer, by kind.",
                                          {"backend", "kind"})),
      retries(registry.AddCounter("inferd_router_retries_total",
                                  "Attempts sent again, by the backend whose attempt failed.", {"backend"})),
      retry_budget_exhausted(registry.AddCounter("inferd_router_retry_budget_exhausted_total",
                                                 "Retries refused because the retry budget was spent.")),
      rate_limited(registry.AddCounter("inferd_router_rate_limited_total", "Requests refused with 429.", {"scope"})),
      client_requests(registry.AddCounter("inferd_router_client_requests_total",
                                          "Requests answered by the router, by status class.", {"code"})),
      routing_decisions(registry.AddCounter("inferd_router_routing_decisions_total",
                                            "Backend choices by reason.", {"kind"})),
      circuit_transitions(registry.AddCounter("inferd_router_circuit_transitions_total",
                                              "Circuit breaker state changes.", {"backend", "to"})),
      canary_rollbacks(registry.AddCounter("inferd_router_canary_rollbacks_total", "Canary rollbacks.")),
      canary_promotions(registry.AddCounter("inferd_router_canary_promotions_total", "Canary promotions.")),
      backend_up(registry.AddGauge("inferd_router_backend_up", "1 if the last health check passed.", {"backend"})),
      circuit_state(registry.AddGauge("inferd_router_circuit_state", "0 closed, 1 half-open, 2 open.", {"backend"})),
      backend_in_flight(registry.AddGauge("inferd_router_backend_in_flight",
                                          "Requests the router has in flight at the backend.", {"backend"})),
      backend_waiting(registry.AddGauge("inferd_router_backend_waiting",
                                        "The backend's num_requests_waiting at the last scrape.", {"backend"})),
      backend_kv_usage(registry.AddGauge("inferd_router_backend_kv_usage",
                                         "The backend's kv_cache_usage_perc at the last scrape.", {"backend"})),
      canary_weight(registry.AddGauge("inferd_router_canary_weight", "Percent of requests sent to the canary.")),
      prefix_index_entries(registry.AddGauge("inferd_router_prefix_index_entries",
                                             "Prompt block hashes the prefix balancer remembers.")),
      request_duration(registry.AddHistogram("inferd_router_request_duration_seconds",
                                             "Attempt sent to the backend until its response ended.", {"backend"},
                                             metrics::kRequestLatencyBuckets)),
      time_to_first_byte(registry.AddHistogram("inferd_router_time_to_first_byte_seconds",
                                               "Attempt sent to the backend until the first body byte.", {"backend"},
                                               metrics::kTtftBuckets)) {
  for (const char* code : {"2xx", "4xx", "5xx", "499"}) client_requests.Labels({code});
  for (const char* scope : {"key", "global"}) rate_limited.Labels({scope});
  for (const char* kind : {"prefix_hit", "ring", "least_load", "round_robin", "canary"}) routing_decisions.Labels({kind});
}

void InitBackendSeries(RouterMetrics& m, const std::string& backend) {
  for (const char* code : {"2xx", "4xx", "5xx"}) m.requests.Labels({backend, code});
  for (const char* kind : {"connect", "timeout", "reset", "body"}) m.upstream_errors.Labels({backend, kind});
  for (const char* to : {"closed", "open", "half_open"}) m.circuit_transitions.Labels({backend, to});
  m.retries.Labels({backend});
  m.request_duration.Labels({backend});
  m.time_to_first_byte.Labels({backend});
}

std::string StatusClass(int status) {
  if (status < 100 || status > 599) return "other";
  return std::to_string(status / 100) + "xx";
}

}  // namespace inferd::router
