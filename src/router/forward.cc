// One client request through the router (forward.h).
#include "router/forward.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "router/prefix_key.h"
#include "server/openai_error.h"
#include "util/json.h"
#include "util/logging.h"

namespace inferd::router {

using server::ErrorBody;
using server::ErrorEvent;
using server::HttpExchange;
using server::HttpRequest;

namespace {

constexpr size_t kMaxUsageLine = 1u << 20;

bool IsGeneration(const std::string& path) { return path == "/v1/completions" || path == "/v1/chat/completions"; }

// Hop-by-hop headers (RFC 9110 §7.6.1) and those the client library sets itself.
bool Forwardable(const std::string& lower_name) {
  // "expect": the router's server already answered a 100-continue; the body is complete.
  static const char* kDrop[] = {"connection", "keep-alive",     "proxy-connection",    "transfer-encoding",
                                "te",         "trailer",        "upgrade",             "host",
                                "expect",     "content-length", "proxy-authorization"};
  return std::none_of(std::begin(kDrop), std::end(kDrop), [&](const char* d) { return lower_name == d; });
}

std::string BearerKey(const HttpRequest& r) {
  const std::string auth = r.Header("authorization");
  return auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : std::string();
}

class Forward : public std::enable_shared_from_this<Forward> {
 public:
  Forward(RouterContext& ctx, const HttpRequest& req, std::shared_ptr<HttpExchange> ex)
      : ctx_(ctx), req_(req), ex_(std::move(ex)), start_(ctx.now()) {}

  void Start() {
    // Weak: the exchange outlives the response (it holds this callback), and a strong
    // reference here would keep both alive for good.
    ex_->OnClientGone([weak = weak_from_this()] {
      if (auto self = weak.lock()) self->OnClientGone();
    });
    const bool generation = req_.method == "POST" && IsGeneration(req_.path);
    if (generation) traits_ = ReadRequestTraits(req_.body, req_.path, ctx_.options);
    if (generation && ctx_.limiter.enabled()) {
      key_ = BearerKey(req_);
      RateDecision d = ctx_.limiter.Admit(key_, traits_.estimated_tokens, start_);
      if (!d.allowed) {
        ctx_.metrics.rate_limited.Labels({d.reason.rfind("global", 0) == 0 ? "global" : "key"}).Inc();
        const auto after = static_cast<int64_t>(std::max(1.0, std::ceil(d.retry_after_s)));
        Finish(429, kJson, ErrorBody(429, d.reason), {{"Retry-After", std::to_string(after)}});
        return;
      }
      admitted_ = true;
    }
    ctx_.retry_budget.OnRequest(start_);
    ctx_.server.After(ctx_.options.request_timeout_s, [weak = weak_from_this()] {
      if (auto s = weak.lock()) s->OnTimeout();
    });
    Attempt();
  }

 private:
  // Picks a backend and sends one attempt.
  void Attempt() {
    if (done_) return;
    const double now = ctx_.now();
    const bool want_canary = ctx_.canary.state() == CanaryState::kActive && ctx_.canary.PickCanary(ctx_.rng);
    std::vector<Backend*> eligible = ctx_.pool.Eligible(want_canary, tried_);
    if (eligible.empty() && want_canary) eligible = ctx_.pool.Eligible(false, tried_);
    if (eligible.empty() && !tried_.empty()) eligible = ctx_.pool.Eligible(false, {});  // all tried: any again
    if (eligible.empty()) {
      const std::string msg = last_error_.empty() ? "no healthy backend" : "no healthy backend; last attempt: " + last_error_;
      Finish(503, kJson, ErrorBody(503, msg), {{"Retry-After", "1"}});
      return;
    }
    std::vector<Candidate> cands;
    for (Backend* b : eligible) cands.push_back({b->id, b->load()});
    Pick pick = ctx_.balancer.Choose(traits_.block_hashes, cands);
    backend_ = ctx_.pool.get(pick.id);
    ctx_.metrics.routing_decisions.Labels({backend_->canary ? "canary" : std::string(PickKindName(pick.kind))}).Inc();
    if (!backend_->breaker.Allow(now)) {  // cannot happen for an eligible backend; be safe
      tried_.push_back(backend_->id);
      Attempt();
      return;
    }
    Send(now);
  }

  void Send(double now) {
    attempt_start_ = now;
    discard_ = false;
    first_byte_ = -1;
    ++backend_->in_flight;
    ctx_.pool.PublishLoad(*backend_);
    UpstreamRequest up;
    up.method = req_.method;
    up.target = req_.query.empty() ? req_.path : req_.path + "?" + req_.query;
    up.body = req_.body;
    for (const auto& [k, v] : req_.headers) {
      if (Forwardable(k)) up.headers.emplace_back(k, v);
    }
    const double left = std::max(0.001, ctx_.options.request_timeout_s - (now - start_));
    up.connect_timeout_s = std::min(ctx_.options.connect_timeout_s, left);
    up.head_timeout_s = left;
    up.idle_timeout_s = left;
    auto self = shared_from_this();
    UpstreamHandlers h;
    h.on_head = [self](const UpstreamHead& head) { self->OnHead(head); };
    h.on_data = [self](std::string_view d) { self->OnData(d); };
    h.on_end = [self](const UpstreamResult& r) { self->OnEnd(r); };
    h.paused = [self] { return self->ex_->pending_bytes() > self->ctx_.options.stream_buffer_bytes; };
    call_ = ctx_.upstream.Start(backend_->url, std::move(up), std::move(h));
  }

  void OnHead(const UpstreamHead& head) {
    status_ = head.status;
    content_type_ = head.content_type;
    const bool retryable = status_ == 502 || status_ == 503 || status_ == 504;
    if (retryable && !done_ && MayRetry()) {
      discard_ = true;
      return;
    }
    streaming_ = content_type_.rfind("text/event-stream", 0) == 0;
    if (streaming_ && !done_) {
      server::HttpHeaders extra;
      for (const auto& [k, v] : head.headers) {
        if (k == "x-request-id" || k == "X-Request-Id") extra.emplace_back(k, v);
      }
      ex_->StartStream(status_, content_type_, std::move(extra));
      started_ = true;
    }
  }

  void OnData(std::string_view d) {
    if (discard_ || done_) return;
    if (first_byte_ < 0) {
      first_byte_ = ctx_.now() - attempt_start_;
      ctx_.metrics.time_to_first_byte.Labels({backend_->label}).Observe(first_byte_);
    }
    if (streaming_) {
      if (admitted_) usage_.FeedStream(d);
      stream_end_.Feed(d);
      ex_->Write(std::string(d));
    } else if (body_.size() + d.size() <= ctx_.options.max_response_bytes) {
      body_.append(d);
    } else {
      too_large_ = true;
    }
  }

  void OnEnd(const UpstreamResult& r) {
    call_ = nullptr;
    const double now = ctx_.now();
    --backend_->in_flight;
    ctx_.pool.PublishLoad(*backend_);
    ctx_.metrics.request_duration.Labels({backend_->label}).Observe(now - attempt_start_);
    if (r.error == UpstreamError::kCancelled) {
      backend_->breaker.OnAbandoned();
      if (timed_out_) FailAfterTimeout();
      return;
    }
    const bool failed = r.error != UpstreamError::kNone;
    if (failed) {
      ctx_.metrics.upstream_errors.Labels({backend_->label, std::string(UpstreamErrorName(r.error))}).Inc();
      last_error_ = fmt::format("backend {}: {}", backend_->label, r.message);
      INFERD_LOG_WARN("router: {} {}: {}", req_.method, req_.path, last_error_);
    } else {
      ctx_.metrics.requests.Labels({backend_->label, StatusClass(status_)}).Inc();
    }
    const bool server_error = failed || status_ >= 500;
    if (server_error) {
      backend_->breaker.OnFailure(now);
    } else {
      backend_->breaker.OnSuccess(now);
    }
    RecordCanary(!server_error, now);
    if (done_) return;
    if (discard_ || (failed && !r.head_received)) {
      if (discard_) last_error_ = fmt::format("backend {}: HTTP {}", backend_->label, status_);
      if (discard_ || MayRetry()) return Retry();
      const int code = r.error == UpstreamError::kTimeout ? 504 : 502;
      return Finish(code, kJson, ErrorBody(code, last_error_));
    }
    if (failed) {  // after the header: the answer is cut
      if (started_) {
        ex_->Write(ErrorEvent(502, last_error_));
        EndStream();
      } else {
        Finish(502, kJson, ErrorBody(502, last_error_));
      }
      return;
    }
    if (started_) return EndStream();
    if (too_large_) return Finish(502, kJson, ErrorBody(502, "the backend's response is larger than the router holds"));
    if (admitted_) usage_.ReadWhole(body_);
    Finish(status_, content_type_.empty() ? kJson : content_type_, std::move(body_), {});
  }

  // A retry is possible: attempts left and the budget allows one (taken now).
  bool MayRetry() {
    if (retries_ >= ctx_.options.max_retries) return false;
    if (!ctx_.retry_budget.TryRetry(ctx_.now())) {
      ctx_.metrics.retry_budget_exhausted.Get().Inc();
      return false;
    }
    return true;
  }

  void Retry() {
    ++retries_;
    ctx_.metrics.retries.Labels({backend_->label}).Inc();
    tried_.push_back(backend_->id);
    const double delay = BackoffDelay(retries_, ctx_.options.retry_backoff_s, ctx_.options.retry_backoff_max_s, ctx_.rng);
    ctx_.server.After(delay, [self = shared_from_this()] { self->Attempt(); });
  }

  void RecordCanary(bool ok, double now) {
    if (ctx_.canary.state() != CanaryState::kActive) return;
    const double ttft = first_byte_ >= 0 ? first_byte_ : std::nan("");
    ctx_.canary.Record(backend_->canary, ok, ttft, now);
  }

  void OnClientGone() {
    if (done_) return;
    done_ = true;
    Settle();
    if (stream_end_.done()) {
      // The client has the whole answer and closed before the replica's body ended (the
      // openai SDK stops reading at [DONE]): an answered request, and the replica's end is
      // still counted when it comes (OnEnd), so the call is not cancelled.
      ctx_.metrics.client_requests.Labels({StatusClass(status_)}).Inc();
      return;
    }
    ctx_.metrics.client_requests.Labels({"499"}).Inc();
    if (call_) call_->Cancel();
  }

  void OnTimeout() {
    if (done_) return;
    timed_out_ = true;
    if (call_) {
      call_->Cancel();  // OnEnd(kCancelled) answers
    } else {
      FailAfterTimeout();
    }
  }

  void FailAfterTimeout() {
    const std::string msg = fmt::format("request timed out after {} s", ctx_.options.request_timeout_s);
    if (started_) {
      ex_->Write(ErrorEvent(504, msg));
      EndStream();
    } else {
      Finish(504, kJson, ErrorBody(504, msg), {});
    }
  }

  void EndStream() {
    if (done_) return;
    done_ = true;
    Settle();
    ctx_.metrics.client_requests.Labels({StatusClass(status_)}).Inc();
    ex_->End();
  }

  void Finish(int status, std::string content_type, std::string body, server::HttpHeaders extra = {}) {
    if (done_) return;
    done_ = true;
    Settle();
    ctx_.metrics.client_requests.Labels({StatusClass(status)}).Inc();
    ex_->Respond(status, std::move(content_type), std::move(body), std::move(extra));
  }

  void Settle() {
    if (!admitted_) return;
    admitted_ = false;
    if (auto t = usage_.total_tokens()) ctx_.limiter.Settle(key_, traits_.estimated_tokens, *t, ctx_.now());
  }

  RouterContext& ctx_;
  const HttpRequest req_;
  std::shared_ptr<HttpExchange> ex_;
  const double start_;
  RequestTraits traits_;
  std::string key_;
  bool admitted_ = false;  // charged to the rate limiter, not settled yet
  Backend* backend_ = nullptr;
  std::shared_ptr<UpstreamCall> call_;
  std::vector<size_t> tried_;
  std::string last_error_;
  int retries_ = 0;
  double attempt_start_ = 0, first_byte_ = -1;
  int status_ = 0;
  std::string content_type_, body_;
  bool discard_ = false, streaming_ = false, started_ = false, too_large_ = false;
  bool done_ = false, timed_out_ = false;
  StreamEndScanner stream_end_;  // has the stream's `data: [DONE]` been passed on
  UsageScanner usage_;
};

}  // namespace

void StartForward(RouterContext& ctx, const HttpRequest& request, std::shared_ptr<HttpExchange> exchange) {
  std::make_shared<Forward>(ctx, request, std::move(exchange))->Start();
}

RequestTraits ReadRequestTraits(const std::string& body, const std::string& path, const RouterOptions& options) {
  RequestTraits t;
  nlohmann::json j;
  JsonError err;
  // Bounded depth (util/json.h): a hostile body must not blow the stack here.
  if (!ParseJson(body, &j, &err) || !j.is_object()) return t;  // the replica answers 400
  const std::string text =
      PromptPrefixText(j, path, options.prefix_block_bytes * options.prefix_max_blocks);
  t.block_hashes = BlockHashes(text, options.prefix_block_bytes, options.prefix_max_blocks);
  double max_tokens = 256;
  for (const char* k : {"max_completion_tokens", "max_tokens"}) {
    auto it = j.find(k);
    if (it != j.end() && it->is_number() && it->get<double>() > 0) {
      max_tokens = std::min(it->get<double>(), 1e7);
      break;
    }
  }
  double n = 1;
  if (auto it = j.find("n"); it != j.end() && it->is_number_integer()) n = std::clamp(it->get<double>(), 1.0, 128.0);
  t.estimated_tokens = (static_cast<double>(body.size()) / 4 + max_tokens) * n;
  return t;
}

void StreamEndScanner::Feed(std::string_view bytes) {
  static constexpr std::string_view kDone = "data: [DONE]";
  constexpr size_t kKeep = kDone.size() - 1;
  if (done_) return;
  std::string edge = tail_;  // a marker across this read's start
  edge.append(bytes.substr(0, kKeep));
  done_ = edge.find(kDone) != std::string::npos || bytes.find(kDone) != std::string_view::npos;
  if (bytes.size() >= kKeep) {
    tail_.assign(bytes.substr(bytes.size() - kKeep));
  } else {  // edge holds the old tail and all of bytes
    tail_ = edge.size() > kKeep ? edge.substr(edge.size() - kKeep) : edge;
  }
}

void UsageScanner::FeedStream(std::string_view bytes) {
  for (char c : bytes) {
    if (c == '\n') {
      Line(line_);
      line_.clear();
    } else if (line_.size() < kMaxUsageLine) {
      line_.push_back(c);
    }
  }
}

void UsageScanner::Line(std::string_view line) {
  if (!line.starts_with("data: {") || line.find("\"usage\"") == std::string_view::npos) return;
  ReadWhole(line.substr(6));
}

void UsageScanner::ReadWhole(std::string_view body) {
  nlohmann::json j;
  JsonError err;
  if (!ParseJson(body, &j, &err) || !j.is_object()) return;
  auto u = j.find("usage");
  if (u == j.end() || !u->is_object()) return;
  auto t = u->find("total_tokens");
  if (t != u->end() && t->is_number()) total_ = t->get<double>();
}

}  // namespace inferd::router
