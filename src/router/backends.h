// The router's replicas (docs/router.md): their addresses (static, or every address of a
// headless Service's DNS name, refreshed), health by active /health checks, load scraped
// from /metrics, and one circuit breaker each.
//
// Lifetime: backends are never deleted while the router runs (a replica that leaves DNS is
// marked removed and gets no new requests; requests in flight keep their pointer).
// Threading: the router's I/O thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "router/balancer.h"
#include "router/circuit_breaker.h"
#include "router/router_metrics.h"
#include "router/upstream.h"
#include "util/url.h"

namespace inferd::server {
class HttpServer;
}

namespace inferd::router {

struct Backend {
  size_t id = 0;
  BaseUrl url;
  std::string label;       // "host:port", the metrics label
  bool canary = false;     // part of the canary pool (until promoted)
  std::string dns_name;    // the --backend-dns name it was found under ("" for --backend)
  bool removed = false;    // left DNS: no new requests
  bool healthy = true;     // last active health check (optimistic until the first one)
  CircuitBreaker breaker;
  int64_t in_flight = 0;   // requests the router has there now
  double waiting = 0;      // num_requests_waiting at the last scrape
  double kv_usage = 0;     // kv_cache_usage_perc at the last scrape

  double load() const { return static_cast<double>(in_flight) + waiting; }
};

// Sums the samples of one metric in a Prometheus text exposition (every label set);
// nullopt when absent. "inferd:num_requests_waiting" matches its labelled lines, not
// "inferd:num_requests_waiting_foo".
std::optional<double> ScrapeValue(std::string_view exposition, std::string_view name);

class BackendPool {
 public:
  struct Options {
    CircuitBreakerOptions breaker;
    double health_check_interval_s = 2;
    double health_check_timeout_s = 2;
    double dns_refresh_s = 5;
  };
  BackendPool(Options options, server::HttpServer& server, UpstreamClient& upstream, Balancer& balancer,
              RouterMetrics& metrics, std::function<double()> now);

  Backend* Add(const BaseUrl& url, bool canary, const std::string& dns_name = "");
  // Re-resolves host:port every dns_refresh_s: new addresses become backends, missing ones
  // are removed (and come back if they reappear).
  void Discover(const std::string& host, const std::string& port);
  // Starts the periodic health checks and scrapes (the first round at once).
  void Start();

  // Backends that may take a request now: not removed, healthy, circuit allows, in the
  // requested pool (canary or stable), not in `exclude` (ids already tried).
  std::vector<Backend*> Eligible(bool canary, const std::vector<size_t>& exclude) const;
  bool AnyEligible() const;
  // The canary pool joins the stable pool.
  void PromoteCanary();
  const std::vector<std::unique_ptr<Backend>>& all() const { return backends_; }
  Backend* get(size_t id) const { return id < backends_.size() ? backends_[id].get() : nullptr; }

  // Keeps the load gauges current (called when in_flight changes).
  void PublishLoad(const Backend& b);

 private:
  void CheckAll();
  void Check(Backend& b);
  void OnHealth(Backend& b, bool ok);
  void Scrape(Backend& b);
  // `done` gets the status and body, or status 0 and the error message.
  void Get(const Backend& b, const std::string& target, std::function<void(int status, std::string body)> done);

  Options options_;
  server::HttpServer& server_;
  UpstreamClient& upstream_;
  Balancer& balancer_;
  RouterMetrics& metrics_;
  std::function<double()> now_;
  std::vector<std::unique_ptr<Backend>> backends_;
};

}  // namespace inferd::router
