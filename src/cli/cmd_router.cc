// inferd router: an OpenAI-compatible proxy in front of `inferd serve` replicas
// (docs/router.md).
#include <memory>
#include <string>

#include "cli/common.h"
#include "router/router.h"

namespace inferd::cli {
namespace {

struct RouterFlags {
  router::RouterOptions o;
  std::string policy = "prefix";
  bool disable_access_log = false;
};

void AddFlags(CLI::App* cmd, RouterFlags& f) {
  router::RouterOptions& o = f.o;
  cmd->add_option("--host", o.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", o.port, "TCP port")->capture_default_str();
  cmd->add_option("--backend", o.backends, "replica base URL, e.g. http://10.0.0.5:8000 (repeat for each)");
  cmd->add_option("--backend-dns", o.backend_dns,
                  "NAME:PORT: every address NAME resolves to is a replica (a Kubernetes headless Service), "
                  "re-resolved every --dns-refresh seconds");
  cmd->add_option("--dns-refresh", o.dns_refresh_s, "seconds between --backend-dns lookups")->capture_default_str();
  cmd->add_option("--policy", f.policy,
                  "prefix: the replica that holds the prompt's longest known prefix, within a load bound; "
                  "least-load; round-robin")
      ->capture_default_str();
  cmd->add_option("--prefix-load-factor", o.balancer.load_factor,
                  "prefix policy: a replica keeps its prefix hits while its load + 1 <= ceil(F * (total load + 1) / "
                  "replicas); larger F favours cache hits over balance")
      ->check(CLI::Range(1.0, 100.0))
      ->capture_default_str();
  cmd->add_option("--rate-limit-rps", o.rate_limit.rps, "requests per second per API key (0 = no limit)")
      ->capture_default_str();
  cmd->add_option("--rate-limit-burst", o.rate_limit.burst, "requests an API key may send at once (0 = the rps)")
      ->capture_default_str();
  cmd->add_option("--rate-limit-tpm", o.rate_limit.tpm, "tokens per minute per API key (0 = no limit)")
      ->capture_default_str();
  cmd->add_option("--global-rate-limit-rps", o.rate_limit.global_rps, "requests per second over all keys (0 = none)")
      ->capture_default_str();
  cmd->add_option("--global-rate-limit-tpm", o.rate_limit.global_tpm, "tokens per minute over all keys (0 = none)")
      ->capture_default_str();
  cmd->add_option("--canary", o.canary, "base URL of a canary replica (a new version) that gets --canary-weight %");
  cmd->add_option("--canary-weight", o.canary_options.weight, "percent of requests sent to the canary")
      ->capture_default_str();
  cmd->add_option("--canary-window", o.canary_options.window_s, "seconds of traffic the canary is judged on")
      ->capture_default_str();
  cmd->add_option("--canary-min-requests", o.canary_options.min_requests, "canary requests in the window before a verdict")
      ->capture_default_str();
  cmd->add_option("--canary-max-error-rate-delta", o.canary_options.max_error_rate_delta,
                  "roll back when the canary's error rate exceeds the stable pool's by more than this")
      ->capture_default_str();
  cmd->add_option("--canary-max-ttft-ratio", o.canary_options.max_ttft_p99_ratio,
                  "roll back when the canary's time-to-first-byte p99 exceeds this multiple of the stable pool's")
      ->capture_default_str();
  cmd->add_option("--request-timeout", o.request_timeout_s, "seconds a request may take, end to end")
      ->capture_default_str();
  cmd->add_option("--max-retries", o.max_retries,
                  "extra attempts on another replica, only before any byte reached the client")
      ->capture_default_str();
  cmd->add_option("--connect-timeout", o.connect_timeout_s, "seconds to connect to a replica")->capture_default_str();
  cmd->add_option("--health-check-interval", o.health_check_interval_s, "seconds between /health checks of each replica")
      ->capture_default_str();
  cmd->add_option("--circuit-failure-threshold", o.breaker.failure_threshold,
                  "consecutive failures that open a replica's circuit")
      ->capture_default_str();
  cmd->add_option("--circuit-open-seconds", o.breaker.open_s, "first cool-down of an open circuit (doubles per failed probe)")
      ->capture_default_str();
  cmd->add_flag("--disable-access-log", f.disable_access_log, "no log line per request");
}

}  // namespace

void AddRouterCommand(CLI::App& app) {
  auto flags = std::make_shared<RouterFlags>();
  CLI::App* cmd = app.add_subcommand("router", "OpenAI-compatible router in front of several `inferd serve` replicas");
  AddFlags(cmd, *flags);
  cmd->callback([flags] {
    RouterFlags& f = *flags;
    auto policy = router::ParsePolicy(f.policy);
    if (!policy.ok()) return Fail(InvalidArgument("--policy: " + policy.status().message()));
    f.o.balancer.policy = *policy;
    f.o.access_log = !f.disable_access_log;
    Status s = router::RunRouter(f.o);
    if (!s.ok()) Fail(s);
  });
}

}  // namespace inferd::cli
