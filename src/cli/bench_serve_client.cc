// The asynchronous HTTP client of `inferd bench serve`: Boost.Beast + Asio on one io thread,
// one C++20 coroutine per request. The only Beast translation unit of the CLI (it takes
// ~14 s to compile); the interface is in bench_serve.h.
//
// Connections: one per request in flight. A finished keep-alive connection is kept for a
// later request only while requests remain to be sent (an idle keep-alive connection ties
// up a worker thread in thread-per-connection servers such as llama-server's), and a
// request that finds its reused connection closed by the server is retried once on a fresh
// one (nothing was received, so nothing was measured).
#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <sys/resource.h>

#include <chrono>
#include <deque>
#include <memory>
#include <random>

#include "cli/bench_serve.h"

namespace inferd::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

void RaiseFileLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

std::string Trimmed(std::string s, size_t max_len) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  if (s.size() > max_len) s = s.substr(0, max_len) + "...";
  return s;
}

std::chrono::steady_clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

class LoadRunner {
 public:
  LoadRunner(const ServeLoadOptions& o, std::span<const std::string> bodies, std::span<const int64_t> prompt_lens,
             const std::function<void(size_t, const RequestResult&)>& on_done)
      : opt_(o),
        bodies_(bodies),
        prompt_lens_(prompt_lens),
        on_done_(on_done),
        target_(o.url.prefix + o.endpoint),
        host_header_(HostHeader(o.url)),
        timeout_(Seconds(o.timeout_s)),
        results_(bodies.size()),
        available_(o.max_concurrency),
        remaining_to_start_(static_cast<int64_t>(bodies.size())) {}

  std::vector<RequestResult> Run(double* duration_s) {
    beast::error_code ec;
    tcp::resolver resolver(ioc_);
    endpoints_ = resolver.resolve(opt_.url.host, opt_.url.port, ec);
    if (ec) resolve_error_ = fmt::format("resolve {}:{}: {}", opt_.url.host, opt_.url.port, ec.message());
    epoch_ = Clock::now();
    asio::co_spawn(ioc_, Dispatch(), asio::detached);
    ioc_.run();
    if (duration_s) *duration_s = last_done_;
    return std::move(results_);
  }

 private:
  double Now() const { return std::chrono::duration<double>(Clock::now() - epoch_).count(); }

  // Arrivals as vLLM's get_request: the first request at once, then gamma-distributed gaps
  // (exponential for burstiness 1) of mean 1 / request_rate.
  asio::awaitable<void> Dispatch() {
    const bool paced = std::isfinite(opt_.request_rate) && opt_.request_rate > 0;
    std::mt19937_64 rng(opt_.seed);
    std::gamma_distribution<double> gap(opt_.burstiness, paced ? 1.0 / (opt_.request_rate * opt_.burstiness) : 1.0);
    asio::steady_timer timer(ioc_);
    for (size_t i = 0; i < bodies_.size(); ++i) {
      asio::co_spawn(ioc_, RunOne(i), asio::detached);
      if (paced && i + 1 < bodies_.size()) {
        timer.expires_after(Seconds(gap(rng)));
        beast::error_code ec;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
    }
  }

  // A counting semaphore for --max-concurrency. Release() hands the slot straight to the
  // oldest waiter (by cancelling its timer), so the count never overshoots.
  asio::awaitable<void> Acquire() {
    if (available_ > 0) {
      --available_;
      co_return;
    }
    asio::steady_timer wake(ioc_, Clock::time_point::max());
    waiters_.push_back(&wake);
    beast::error_code ec;
    co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }

  void Release() {
    if (waiters_.empty()) {
      ++available_;
      return;
    }
    asio::steady_timer* next = waiters_.front();
    waiters_.pop_front();
    next->cancel();
  }

  asio::awaitable<void> RunOne(size_t i) {
    const bool capped = opt_.max_concurrency > 0;
    if (capped) co_await Acquire();
    RequestResult r;
    try {
      r = co_await Send(i);
    } catch (const std::exception& e) {
      r = RequestResult{};
      r.error = std::string("client error: ") + e.what();
    }
    r.prompt_len = prompt_lens_[i];
    if (capped) Release();
    results_[i] = std::move(r);
    last_done_ = Now();
    if (on_done_) on_done_(i, results_[i]);
  }

  asio::awaitable<RequestResult> Send(size_t i) {
    --remaining_to_start_;
    for (int attempt = 0;; ++attempt) {
      std::unique_ptr<beast::tcp_stream> s;
      const bool reused = attempt == 0 && !idle_.empty();
      if (reused) {
        s = std::move(idle_.back());
        idle_.pop_back();
      } else {
        RequestResult r;
        if (!resolve_error_.empty()) {
          r.error = resolve_error_;
          co_return r;
        }
        s = std::make_unique<beast::tcp_stream>(ioc_);
        s->expires_after(timeout_);
        beast::error_code ec;
        co_await s->async_connect(endpoints_, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          r.error = fmt::format("connect {}: {}", host_header_, ec.message());
          co_return r;
        }
        s->socket().set_option(tcp::no_delay(true), ec);
      }
      bool got_response = false, keep_alive = false;
      RequestResult r = co_await Exchange(*s, i, got_response, keep_alive);
      if (!r.success && reused && !got_response) continue;  // stale keep-alive connection
      if (keep_alive && static_cast<int64_t>(idle_.size()) < remaining_to_start_) {
        s->expires_never();
        idle_.push_back(std::move(s));
      } else {
        beast::error_code ec;
        s->socket().shutdown(tcp::socket::shutdown_both, ec);
        s->close();
      }
      co_return r;
    }
  }

  // One POST and its streamed response. got_response: a status line arrived.
  asio::awaitable<RequestResult> Exchange(beast::tcp_stream& s, size_t i, bool& got_response, bool& keep_alive) {
    http::request<http::string_body> req{http::verb::post, target_, 11};
    req.set(http::field::host, host_header_);
    req.set(http::field::user_agent, "inferd-bench-serve");
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "text/event-stream");
    req.keep_alive(true);
    req.body() = bodies_[i];
    req.prepare_payload();

    beast::error_code ec;
    auto token = asio::redirect_error(asio::use_awaitable, ec);
    SseStream sse(Now());
    s.expires_after(timeout_);
    co_await http::async_write(s, req, token);
    if (ec) {
      sse.SetError("send request: " + ec.message());
      co_return sse.Finish(Now());
    }
    beast::flat_buffer buf;
    http::response_parser<http::buffer_body> p;
    p.body_limit(std::numeric_limits<std::uint64_t>::max());
    s.expires_after(timeout_);
    co_await http::async_read_header(s, buf, p, token);
    if (ec) {
      sse.SetError("read response: " + ec.message());
      co_return sse.Finish(Now());
    }
    got_response = true;
    const unsigned status = p.get().result_int();
    std::string error_body;
    char chunk[8192];
    while (!p.is_done()) {
      p.get().body().data = chunk;
      p.get().body().size = sizeof(chunk);
      s.expires_after(timeout_);
      co_await http::async_read_some(s, buf, p, token);
      if (ec == http::error::need_buffer) ec = {};
      const size_t n = sizeof(chunk) - p.get().body().size;
      if (n > 0) {
        if (status == 200) {
          sse.Feed(std::string_view(chunk, n), Now());
        } else if (error_body.size() < 4096) {
          error_body.append(chunk, n);
        }
      }
      if (ec) break;
    }
    if (status != 200) {
      sse.SetError(fmt::format("HTTP {}: {}", status, Trimmed(error_body, 500)));
    } else if (ec) {
      sse.SetError("read stream: " + ec.message());
    }
    keep_alive = !ec && p.is_done() && p.keep_alive();
    co_return sse.Finish(Now());
  }

  const ServeLoadOptions& opt_;
  std::span<const std::string> bodies_;
  std::span<const int64_t> prompt_lens_;
  const std::function<void(size_t, const RequestResult&)>& on_done_;
  const std::string target_, host_header_;
  const Clock::duration timeout_;

  asio::io_context ioc_{1};
  tcp::resolver::results_type endpoints_;
  std::string resolve_error_;
  Clock::time_point epoch_;
  std::vector<RequestResult> results_;
  double last_done_ = 0;
  int64_t available_;
  std::deque<asio::steady_timer*> waiters_;
  int64_t remaining_to_start_;  // requests that have not yet taken a connection
  std::vector<std::unique_ptr<beast::tcp_stream>> idle_;
};

}  // namespace

std::vector<RequestResult> RunServeLoad(const ServeLoadOptions& options, std::span<const std::string> bodies,
                                        std::span<const int64_t> prompt_lens,
                                        const std::function<void(size_t, const RequestResult&)>& on_done,
                                        double* duration_s) {
  RaiseFileLimit();
  LoadRunner runner(options, bodies, prompt_lens, on_done);
  return runner.Run(duration_s);
}

StatusOr<std::string> HttpGet(const BaseUrl& url, const std::string& target, double timeout_s) {
  asio::io_context ioc{1};
  std::string body, error;
  unsigned status = 0;
  auto get = [&]() -> asio::awaitable<void> {
    beast::error_code ec;
    auto token = asio::redirect_error(asio::use_awaitable, ec);
    tcp::resolver resolver(ioc);
    auto endpoints = co_await resolver.async_resolve(url.host, url.port, token);
    if (ec) {
      error = fmt::format("resolve {}:{}: {}", url.host, url.port, ec.message());
      co_return;
    }
    beast::tcp_stream s(ioc);
    s.expires_after(Seconds(timeout_s));
    co_await s.async_connect(endpoints, token);
    if (ec) {
      error = fmt::format("connect {}: {}", HostHeader(url), ec.message());
      co_return;
    }
    http::request<http::empty_body> req{http::verb::get, url.prefix + target, 11};
    req.set(http::field::host, HostHeader(url));
    req.set(http::field::user_agent, "inferd-bench-serve");
    req.keep_alive(false);
    co_await http::async_write(s, req, token);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    if (!ec) co_await http::async_read(s, buf, res, token);
    if (ec) {
      error = fmt::format("GET {}: {}", url.prefix + target, ec.message());
      co_return;
    }
    status = res.result_int();
    body = std::move(res.body());
    s.socket().shutdown(tcp::socket::shutdown_both, ec);
  };
  asio::co_spawn(ioc, get(), asio::detached);
  ioc.run();
  if (!error.empty()) return Internal(error);
  if (status != 200) return Internal(fmt::format("GET {}: HTTP {}: {}", url.prefix + target, status, Trimmed(body, 500)));
  return body;
}

}  // namespace inferd::cli
