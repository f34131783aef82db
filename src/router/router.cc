// `inferd router`: routes, the canary loop, start-up (router.h, docs/router.md).
#include "router/router.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <random>

#include "router/backends.h"
#include "router/forward.h"
#include "router/router_metrics.h"
#include "router/upstream.h"
#include "server/http.h"
#include "server/openai_error.h"
#include "util/logging.h"
#include "util/url.h"

namespace inferd::router {

using server::ErrorBody;
using server::HttpExchange;
using server::HttpRequest;

namespace {


// A --backend-dns value, "NAME:PORT", as the host and port to resolve.
StatusOr<BaseUrl> ParseDnsBackend(const std::string& d) {
  const size_t colon = d.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == d.size() ||
      d.find_first_not_of("0123456789", colon + 1) != std::string::npos) {
    return InvalidArgument("--backend-dns: expected NAME:PORT (a headless Service), got '" + d + "'");
  }
  return BaseUrl{d.substr(0, colon), d.substr(colon + 1), ""};
}

class Router {
 public:
  explicit Router(const RouterOptions& o)
      : options_(o),
        balancer_(o.balancer),
        limiter_(o.rate_limit),
        retry_budget_(o.retry_budget),
        canary_(o.canary.empty() ? CanaryOptions{.weight = 0} : o.canary_options),
        rng_(std::random_device{}()),
        epoch_(std::chrono::steady_clock::now()) {}

  Status Init() {
    server::HttpServerOptions http;
    http.host = options_.host;
    http.port = options_.port;
    http.max_body_bytes = options_.max_body_bytes;
    http.error_body = [](int status, const std::string& message) { return ErrorBody(status, message); };
    if (options_.access_log) {
      http.on_complete = [](const HttpRequest& r, int status, double s) {
        INFERD_LOG_INFO("{} \"{} {}\" {} {:.3f}s", r.remote, r.method, r.path, status, s);
      };
    }
    auto server = server::HttpServer::Create(std::move(http), [this](const HttpRequest& r, auto ex) {
      Handle(r, std::move(ex));
    });
    if (!server.ok()) return server.status();
    server_ = std::move(*server);
    upstream_ = UpstreamClient::Create(server_->io_context());
    BackendPool::Options po;
    po.breaker = options_.breaker;
    po.health_check_interval_s = options_.health_check_interval_s;
    po.health_check_timeout_s = options_.health_check_timeout_s;
    po.dns_refresh_s = options_.dns_refresh_s;
    pool_ = std::make_unique<BackendPool>(po, *server_, *upstream_, balancer_, metrics_, [this] { return Now(); });
    for (const std::string& u : options_.backends) pool_->Add(*ParseBaseUrl(u), /*canary=*/false);
    if (!options_.canary.empty()) pool_->Add(*ParseBaseUrl(options_.canary), /*canary=*/true);
    ctx_ = std::make_unique<RouterContext>(RouterContext{options_, *server_, *upstream_, *pool_, balancer_, limiter_,
                                                         retry_budget_, canary_, metrics_, rng_, [this] { return Now(); }});
    return Status::OK();
  }

  void Run() {
    for (const std::string& d : options_.backend_dns) {
      const BaseUrl name = *ParseDnsBackend(d);  // validated before
      pool_->Discover(name.host, name.port);
    }
    pool_->Start();
    if (canary_.state() == CanaryState::kActive) EvaluateCanary();
    server_->OnSignal([this](int sig) {
      INFERD_LOG_INFO("router: signal {}, stopping", sig);
      server_->Stop();
    });
    INFERD_LOG_INFO("router: listening on {}:{} ({} policy)", options_.host, server_->port(),
                    PolicyName(options_.balancer.policy));
    server_->Run();
  }

 private:
  double Now() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_).count(); }

  void Handle(const HttpRequest& r, std::shared_ptr<HttpExchange> ex) {
    if (r.path == "/health" && (r.method == "GET" || r.method == "HEAD")) {
      if (pool_->AnyEligible()) return ex->Respond(200, kJson, R"({"status":"ok"})");
      return ex->Respond(503, kJson, ErrorBody(503, "no healthy backend"));
    }
    if (r.path == "/metrics" && r.method == "GET") {
      metrics_.canary_weight.Get().Set(canary_.weight());
      metrics_.prefix_index_entries.Get().Set(static_cast<double>(balancer_.index_size()));
      return ex->Respond(200, std::string(metrics::kContentType), metrics_.Render());
    }
    if (r.path == "/router/status" && r.method == "GET") return ex->Respond(200, kJson, StatusJson());
    if (r.path == "/router/canary/promote" && r.method == "POST") return Promote(*ex);
    if (r.path == "/router/canary/rollback" && r.method == "POST") return ManualRollback(*ex);
    if (r.path.rfind("/v1/", 0) == 0 || r.path == "/tokenize" || r.path == "/detokenize" || r.path == "/version") {
      return StartForward(*ctx_, r, std::move(ex));
    }
    ex->Respond(404, kJson, ErrorBody(404, fmt::format("no route {} {}", r.method, r.path)));
  }

  std::string StatusJson() const {
    nlohmann::ordered_json backends = nlohmann::ordered_json::array();
    for (const auto& b : pool_->all()) {
      backends.push_back({{"backend", b->label},
                          {"canary", b->canary},
                          {"removed", b->removed},
                          {"healthy", b->healthy},
                          {"circuit", CircuitStateName(b->breaker.state())},
                          {"in_flight", b->in_flight},
                          {"waiting", b->waiting},
                          {"kv_usage", b->kv_usage}});
    }
    nlohmann::ordered_json j = {{"policy", PolicyName(options_.balancer.policy)},
                                {"backends", backends},
                                {"canary",
                                 {{"state", CanaryStateName(canary_.state())},
                                  {"weight", canary_.weight()},
                                  {"reason", canary_.last_reason()}}}};
    return j.dump();
  }

  void Promote(HttpExchange& ex) {
    if (canary_.state() != CanaryState::kActive) {
      return ex.Respond(409, kJson, ErrorBody(409, fmt::format("no active canary (state: {})",
                                                                 CanaryStateName(canary_.state()))));
    }
    canary_.Promote();
    pool_->PromoteCanary();
    metrics_.canary_promotions.Get().Inc();
    INFERD_LOG_INFO("router: canary {} promoted into the stable pool", options_.canary);
    ex.Respond(200, kJson, StatusJson());
  }

  void ManualRollback(HttpExchange& ex) {
    if (canary_.state() != CanaryState::kActive) {
      return ex.Respond(409, kJson, ErrorBody(409, fmt::format("no active canary (state: {})",
                                                                 CanaryStateName(canary_.state()))));
    }
    canary_.Rollback("rolled back by request");
    metrics_.canary_rollbacks.Get().Inc();
    INFERD_LOG_WARN("router: canary {} rolled back by request", options_.canary);
    ex.Respond(200, kJson, StatusJson());
  }

  void EvaluateCanary() {
    if (canary_.state() != CanaryState::kActive) return;
    // A canary whose circuit opened on failed requests gets no traffic, so the window would
    // never fill: that is a verdict of its own.
    for (const auto& b : pool_->all()) {
      if (b->canary && b->breaker.state() == CircuitState::kOpen &&
          b->breaker.consecutive_failures() >= options_.breaker.failure_threshold) {
        canary_.Rollback(fmt::format("canary circuit opened after {} consecutive failed requests",
                                     b->breaker.consecutive_failures()));
      }
    }
    std::optional<std::string> reason = canary_.state() == CanaryState::kRolledBack
                                            ? std::optional<std::string>(canary_.last_reason())
                                            : canary_.Evaluate(Now());
    if (reason) {
      metrics_.canary_rollbacks.Get().Inc();
      INFERD_LOG_WARN("router: canary {} rolled back: {}", options_.canary, *reason);
      return;
    }
    server_->After(options_.canary_eval_interval_s, [this] { EvaluateCanary(); });
  }

  const RouterOptions options_;
  RouterMetrics metrics_;
  Balancer balancer_;
  RateLimiter limiter_;
  RetryBudget retry_budget_;
  CanaryController canary_;
  std::mt19937_64 rng_;
  const std::chrono::steady_clock::time_point epoch_;
  std::unique_ptr<server::HttpServer> server_;
  std::unique_ptr<UpstreamClient> upstream_;
  std::unique_ptr<BackendPool> pool_;
  std::unique_ptr<RouterContext> ctx_;
};

Status CheckPositive(const char* flag, double v) {
  if (!(v > 0) || !std::isfinite(v)) return InvalidArgument(fmt::format("{} must be a positive number, got {}", flag, v));
  return Status::OK();
}

}  // namespace

Status ValidateRouterOptions(const RouterOptions& o) {
  if (o.backends.empty() && o.backend_dns.empty()) {
    return InvalidArgument("give at least one --backend URL or --backend-dns NAME:PORT");
  }
  for (const std::string& u : o.backends) {
    auto url = ParseBaseUrl(u);
    if (!url.ok()) return InvalidArgument("--backend: " + url.status().message());
  }
  for (const std::string& d : o.backend_dns) INFERD_RETURN_IF_ERROR(ParseDnsBackend(d).status());
  if (!o.canary.empty()) {
    auto url = ParseBaseUrl(o.canary);
    if (!url.ok()) return InvalidArgument("--canary: " + url.status().message());
    const double w = o.canary_options.weight;
    if (!(w > 0 && w <= 100)) return InvalidArgument(fmt::format("--canary-weight must be in (0, 100], got {}", w));
  } else if (o.canary_options.weight != 0) {
    return InvalidArgument("--canary-weight needs --canary URL");
  }
  if (o.max_retries < 0 || o.max_retries > 10) return InvalidArgument("--max-retries must be in [0, 10]");
  INFERD_RETURN_IF_ERROR(CheckPositive("--request-timeout", o.request_timeout_s));
  INFERD_RETURN_IF_ERROR(CheckPositive("--health-check-interval", o.health_check_interval_s));
  INFERD_RETURN_IF_ERROR(CheckPositive("--connect-timeout", o.connect_timeout_s));
  INFERD_RETURN_IF_ERROR(CheckPositive("--canary-window", o.canary_options.window_s));
  for (auto [flag, v] : {std::pair{"--rate-limit-rps", o.rate_limit.rps}, {"--rate-limit-burst", o.rate_limit.burst},
                         {"--rate-limit-tpm", o.rate_limit.tpm}, {"--global-rate-limit-rps", o.rate_limit.global_rps},
                         {"--global-rate-limit-tpm", o.rate_limit.global_tpm}}) {
    if (!(v >= 0) || !std::isfinite(v)) return InvalidArgument(fmt::format("{} must be >= 0, got {}", flag, v));
  }
  return Status::OK();
}

Status RunRouter(const RouterOptions& options) {
  INFERD_RETURN_IF_ERROR(ValidateRouterOptions(options));
  Router router(options);
  INFERD_RETURN_IF_ERROR(router.Init());
  router.Run();
  return Status::OK();
}

}  // namespace inferd::router
