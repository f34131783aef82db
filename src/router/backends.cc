// The router's replicas: discovery, health checks, load scrapes (backends.h).
#include "router/backends.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "server/http.h"
#include "util/logging.h"

namespace inferd::router {

std::optional<double> ScrapeValue(std::string_view text, std::string_view name) {
  std::optional<double> sum;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.starts_with(name) || line.size() == name.size()) continue;
    const char next = line[name.size()];
    if (next != '{' && next != ' ') continue;
    const size_t space = line.rfind(' ');
    if (space == std::string_view::npos || space + 1 >= line.size()) continue;
    const std::string value(line.substr(space + 1));
    char* stop = nullptr;
    const double v = std::strtod(value.c_str(), &stop);
    if (stop == value.c_str() || !std::isfinite(v)) continue;
    sum = sum.value_or(0) + v;
  }
  return sum;
}

namespace {

double StateGauge(CircuitState s) {
  switch (s) {
    case CircuitState::kClosed: return 0;
    case CircuitState::kHalfOpen: return 1;
    case CircuitState::kOpen: return 2;
  }
  return 0;
}

}  // namespace

BackendPool::BackendPool(Options options, server::HttpServer& server, UpstreamClient& upstream, Balancer& balancer,
                         RouterMetrics& metrics, std::function<double()> now)
    : options_(options),
      server_(server),
      upstream_(upstream),
      balancer_(balancer),
      metrics_(metrics),
      now_(std::move(now)) {}

Backend* BackendPool::Add(const BaseUrl& url, bool canary, const std::string& dns_name) {
  auto b = std::make_unique<Backend>();
  b->id = backends_.size();
  b->url = url;
  b->label = HostPort(url);
  b->canary = canary;
  b->dns_name = dns_name;
  b->breaker = CircuitBreaker(options_.breaker);
  Backend* raw = b.get();
  raw->breaker.set_on_change([this, raw](CircuitState from, CircuitState to) {
    INFERD_LOG_WARN("router: backend {} circuit {} -> {}", raw->label, CircuitStateName(from), CircuitStateName(to));
    metrics_.circuit_state.Labels({raw->label}).Set(StateGauge(to));
    metrics_.circuit_transitions.Labels({raw->label, std::string(CircuitStateName(to))}).Inc();
  });
  InitBackendSeries(metrics_, raw->label);
  metrics_.circuit_state.Labels({raw->label}).Set(0);
  metrics_.backend_up.Labels({raw->label}).Set(1);
  PublishLoad(*raw);
  balancer_.AddBackend(raw->id);
  backends_.push_back(std::move(b));
  INFERD_LOG_INFO("router: backend {}{}", raw->label, canary ? " (canary)" : "");
  return raw;
}

void BackendPool::Discover(const std::string& host, const std::string& port) {
  upstream_.Resolve(host, port, [this, host, port](StatusOr<std::vector<std::string>> ips) {
    if (!ips.ok()) {
      INFERD_LOG_WARN("router: {}", ips.status().message());
    } else {
      // Only this name's backends: another --backend-dns name on the same port has its own.
      auto mine = [&](const Backend& b) { return b.dns_name == host && b.url.port == port; };
      for (auto& b : backends_) {
        if (!mine(*b)) continue;
        const bool present = std::find(ips->begin(), ips->end(), b->url.host) != ips->end();
        if (b->removed == present) {
          INFERD_LOG_INFO("router: backend {} {} DNS name {}", b->label, present ? "is back in" : "left", host);
          b->removed = !present;
          if (!present) balancer_.ForgetBackend(b->id);
        }
      }
      for (const std::string& ip : *ips) {
        const bool known = std::any_of(backends_.begin(), backends_.end(),
                                       [&](const auto& b) { return mine(*b) && b->url.host == ip; });
        if (!known) Add(BaseUrl{ip, port, ""}, /*canary=*/false, host);
      }
    }
    server_.After(options_.dns_refresh_s, [this, host, port] { Discover(host, port); });
  });
}

void BackendPool::Start() { CheckAll(); }

void BackendPool::CheckAll() {
  for (auto& b : backends_) {
    if (!b->removed) Check(*b);
  }
  server_.After(options_.health_check_interval_s, [this] { CheckAll(); });
}

void BackendPool::Get(const Backend& b, const std::string& target, std::function<void(int, std::string)> done) {
  UpstreamRequest req;
  req.method = "GET";
  req.target = target;
  req.connect_timeout_s = options_.health_check_timeout_s;
  req.head_timeout_s = options_.health_check_timeout_s;
  req.idle_timeout_s = options_.health_check_timeout_s;
  auto state = std::make_shared<std::pair<int, std::string>>(0, std::string());
  UpstreamHandlers h;
  h.on_head = [state](const UpstreamHead& head) { state->first = head.status; };
  h.on_data = [state](std::string_view d) {
    if (state->second.size() < (8u << 20)) state->second.append(d);
  };
  h.on_end = [state, done = std::move(done)](const UpstreamResult& r) {
    if (r.error != UpstreamError::kNone) state->second = r.message;
    done(r.error == UpstreamError::kNone ? state->first : 0, std::move(state->second));
  };
  upstream_.Start(b.url, std::move(req), std::move(h));
}

void BackendPool::Check(Backend& b) {
  Get(b, "/health", [this, &b](int status, std::string body) {
    if (status != 200 && b.healthy) {
      INFERD_LOG_WARN("router: backend {} /health: {}", b.label,
                      status == 0 ? body : "HTTP " + std::to_string(status));
    }
    OnHealth(b, status == 200);
    if (status == 200) Scrape(b);
  });
}

void BackendPool::OnHealth(Backend& b, bool ok) {
  if (ok != b.healthy) {
    INFERD_LOG_WARN("router: backend {} health check {}", b.label, ok ? "passes again" : "fails");
    if (ok) {  // back after failing: probably restarted, its prefix cache is empty
      balancer_.ForgetBackend(b.id);
      upstream_.DropIdle(b.url);
    }
  }
  b.healthy = ok;
  b.breaker.OnHealthCheck(ok, now_());
  metrics_.backend_up.Labels({b.label}).Set(ok ? 1 : 0);
}

void BackendPool::Scrape(Backend& b) {
  Get(b, "/metrics", [this, &b](int status, std::string body) {
    if (status != 200) return;
    b.waiting = ScrapeValue(body, "inferd:num_requests_waiting").value_or(0);
    b.kv_usage = ScrapeValue(body, "inferd:kv_cache_usage_perc").value_or(0);
    PublishLoad(b);
  });
}

void BackendPool::PublishLoad(const Backend& b) {
  metrics_.backend_in_flight.Labels({b.label}).Set(static_cast<double>(b.in_flight));
  metrics_.backend_waiting.Labels({b.label}).Set(b.waiting);
  metrics_.backend_kv_usage.Labels({b.label}).Set(b.kv_usage);
}

std::vector<Backend*> BackendPool::Eligible(bool canary, const std::vector<size_t>& exclude) const {
  std::vector<Backend*> out;
  const double now = now_();
  for (const auto& b : backends_) {
    if (b->removed || !b->healthy || b->canary != canary) continue;
    if (std::find(exclude.begin(), exclude.end(), b->id) != exclude.end()) continue;
    if (!b->breaker.WouldAllow(now)) continue;
    out.push_back(b.get());
  }
  return out;
}

bool BackendPool::AnyEligible() const { return !Eligible(false, {}).empty() || !Eligible(true, {}).empty(); }

void BackendPool::PromoteCanary() {
  for (auto& b : backends_) b->canary = false;
}

}  // namespace inferd::router
