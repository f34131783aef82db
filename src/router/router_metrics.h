// The router's own /metrics (Prometheus text format, server/metrics.h). Backends are
// labelled backend="host:port". Names:
//   counters    inferd_router_requests_total{backend,code}        answers from a replica by status class (2xx..5xx)
//               inferd_router_upstream_errors_total{backend,kind} connect|timeout|reset|body failures
//               inferd_router_retries_total{backend}              attempts sent again, by the backend that failed
//               inferd_router_retry_budget_exhausted_total        retries refused by the budget
//               inferd_router_rate_limited_total{scope}           429s: scope key|global
//               inferd_router_client_requests_total{code}         what the router answered its clients
//               inferd_router_routing_decisions_total{kind}       prefix_hit|ring|least_load|round_robin|canary
//               inferd_router_circuit_transitions_total{backend,to}
//               inferd_router_canary_rollbacks_total, inferd_router_canary_promotions_total
//   gauges      inferd_router_backend_up{backend}                 1 healthy by the last /health check
//               inferd_router_circuit_state{backend}              0 closed, 1 half-open, 2 open
//               inferd_router_backend_in_flight{backend}          requests the router has there now
//               inferd_router_backend_waiting{backend}            the replica's num_requests_waiting, last scrape
//               inferd_router_backend_kv_usage{backend}           the replica's kv_cache_usage_perc, last scrape
//               inferd_router_canary_weight                      percent of requests to the canary now
//               inferd_router_prefix_index_entries
//   histograms  inferd_router_request_duration_seconds{backend}   attempt sent → response ended
//               inferd_router_time_to_first_byte_seconds{backend} attempt sent → first body byte
// Thread-safety: as server/metrics.h (the router uses it from its I/O thread only).
#pragma once

#include <string>

#include "server/metrics.h"

namespace inferd::router {

struct RouterMetrics {
  RouterMetrics();
  std::string Render() const { return registry.Render(); }

  metrics::Registry registry;
  metrics::CounterFamily& requests;
  metrics::CounterFamily& upstream_errors;
  metrics::CounterFamily& retries;
  metrics::CounterFamily& retry_budget_exhausted;
  metrics::CounterFamily& rate_limited;
  metrics::CounterFamily& client_requests;
  metrics::CounterFamily& routing_decisions;
  metrics::CounterFamily& circuit_transitions;
  metrics::CounterFamily& canary_rollbacks;
  metrics::CounterFamily& canary_promotions;
  metrics::GaugeFamily& backend_up;
  metrics::GaugeFamily& circuit_state;
  metrics::GaugeFamily& backend_in_flight;
  metrics::GaugeFamily& backend_waiting;
  metrics::GaugeFamily& backend_kv_usage;
  metrics::GaugeFamily& canary_weight;
  metrics::GaugeFamily& prefix_index_entries;
  metrics::HistogramFamily& request_duration;
  metrics::HistogramFamily& time_to_first_byte;
};

// Creates a backend's series at 0 (every status class, error kind, circuit state, both
// histograms), so that the first increase after it appears is a rate, not a new series
// whose first sample already holds the count.
void InitBackendSeries(RouterMetrics& m, const std::string& backend);

// "2xx", "4xx", ... for an HTTP status.
std::string StatusClass(int status);

}  // namespace inferd::router
