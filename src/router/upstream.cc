// The router's upstream HTTP client (upstream.h): Boost.Beast + Asio, one C++20 coroutine
// per call, on the router's I/O thread.
#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses std::exchange without it

#include "router/upstream.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <chrono>
#include <deque>
#include <limits>
#include <map>
#include <optional>

namespace inferd::router {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using asio::awaitable;
using asio::use_awaitable;

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

constexpr size_t kReadBuffer = 16 * 1024;
constexpr double kPausePollS = 0.005;

class ClientImpl;

// One call's state, shared by the coroutine and the handle given to the router.
class CallImpl final : public UpstreamCall, public std::enable_shared_from_this<CallImpl> {
 public:
  CallImpl(asio::io_context& ioc, UpstreamHandlers h) : ioc_(ioc), handlers_(std::move(h)), pause_timer_(ioc) {}

  void Cancel() override {
    if (ended_ || cancelled_) return;
    cancelled_ = true;
    beast::error_code ec;
    if (stream_) stream_->socket().close(ec);
    pause_timer_.cancel();
  }

  void End(UpstreamError error, std::string message) {
    if (ended_) return;
    ended_ = true;
    UpstreamResult r{cancelled_ ? UpstreamError::kCancelled : error, cancelled_ ? "cancelled" : std::move(message),
                     head_received_};
    auto on_end = std::move(handlers_.on_end);
    handlers_ = {};
    if (on_end) on_end(r);
  }

  asio::io_context& ioc_;
  UpstreamHandlers handlers_;
  asio::steady_timer pause_timer_;
  std::unique_ptr<beast::tcp_stream> stream_;  // the connection in use, while one is
  bool cancelled_ = false, ended_ = false, head_received_ = false;
};

// Why an attempt on a connection failed, and whether the request may go again on a fresh one.
struct Attempt {
  UpstreamError error = UpstreamError::kNone;
  std::string message;
  bool nothing_received = false;  // the connection was reused and died before any byte came back
  bool keep_alive = false;        // the connection may be pooled again
};

class ClientImpl final : public UpstreamClient {
 public:
  ClientImpl(asio::io_context& ioc, size_t max_idle) : ioc_(ioc), max_idle_(max_idle) {}

  std::shared_ptr<UpstreamCall> Start(const BaseUrl& url, UpstreamRequest request, UpstreamHandlers handlers) override {
    auto call = std::make_shared<CallImpl>(ioc_, std::move(handlers));
    asio::co_spawn(ioc_, Run(call, url, std::move(request)), asio::detached);
    return call;
  }

  void DropIdle(const BaseUrl& url) override { idle_.erase(HostPort(url)); }

  void Resolve(const std::string& host, const std::string& port,
               std::function<void(StatusOr<std::vector<std::string>>)> done) override {
    auto resolver = std::make_shared<tcp::resolver>(ioc_);
    resolver->async_resolve(host, port, [resolver, host, done = std::move(done)](const beast::error_code& ec,
                                                                                  tcp::resolver::results_type results) {
      if (ec) {
        done(Status(StatusCode::kUnavailable, fmt::format("resolve {}: {}", host, ec.message())));
        return;
      }
      std::vector<std::string> out;
      for (const auto& r : results) {
        std::string ip = r.endpoint().address().to_string();
        if (std::find(out.begin(), out.end(), ip) == out.end()) out.push_back(std::move(ip));
      }
      done(std::move(out));
    });
  }

 private:
  awaitable<void> Run(std::shared_ptr<CallImpl> call, BaseUrl url, UpstreamRequest request) {
    const std::string key = HostPort(url);
    http::request<http::string_body> req{ParseMethod(request.method), url.prefix + request.target, 11};
    req.set(http::field::host, HostHeader(url));
    for (const auto& [k, v] : request.headers) req.set(k, v);
    req.body() = std::move(request.body);
    req.prepare_payload();
    req.keep_alive(true);

    for (int round = 0; round < 2; ++round) {
      call->stream_ = round == 0 ? TakeIdle(key) : nullptr;  // once a pooled one was stale: a fresh one
      const bool reused = call->stream_ != nullptr;
      if (!reused) {
        Attempt c = co_await Connect(*call, url, request.connect_timeout_s);
        if (c.error != UpstreamError::kNone) {
          call->stream_ = nullptr;
          call->End(c.error, std::move(c.message));
          co_return;
        }
      }
      Attempt a = co_await Exchange(*call, req, request, reused);
      std::unique_ptr<beast::tcp_stream> done = std::move(call->stream_);
      if (a.nothing_received && !call->cancelled_) continue;  // a stale pooled connection: once more, fresh
      if (a.error == UpstreamError::kNone && a.keep_alive && !call->cancelled_) PutIdle(key, std::move(done));
      call->End(a.error, std::move(a.message));
      co_return;
    }
    call->End(UpstreamError::kReset, "connection closed by the backend before any response");
  }

  static http::verb ParseMethod(const std::string& m) {
    http::verb v = http::string_to_verb(m);
    return v == http::verb::unknown ? http::verb::get : v;
  }

  // Opens call.stream_ (where Cancel() can close it).
  awaitable<Attempt> Connect(CallImpl& call, const BaseUrl& url, double timeout_s) {
    Attempt a;
    beast::error_code ec;
    tcp::resolver resolver(ioc_);
    auto results = co_await resolver.async_resolve(url.host, url.port, asio::redirect_error(use_awaitable, ec));
    if (ec || call.cancelled_) {
      a.error = UpstreamError::kConnect;
      a.message = fmt::format("resolve {}: {}", HostPort(url), call.cancelled_ ? "cancelled" : ec.message());
      co_return a;
    }
    call.stream_ = std::make_unique<beast::tcp_stream>(ioc_);
    call.stream_->expires_after(Seconds(timeout_s));
    co_await call.stream_->async_connect(results, asio::redirect_error(use_awaitable, ec));
    if (ec || call.cancelled_) {
      const bool timeout = ec == beast::error::timeout;
      a.error = timeout ? UpstreamError::kTimeout : UpstreamError::kConnect;
      a.message = fmt::format("connect {}: {}", HostPort(url), timeout ? std::string("timed out") : ec.message());
      co_return a;
    }
    call.stream_->socket().set_option(tcp::no_delay(true), ec);
    co_return a;
  }

  // Sends the request and reads the response on call.stream_.
  awaitable<Attempt> Exchange(CallImpl& call, http::request<http::string_body>& req, const UpstreamRequest& o,
                              bool reused) {
    beast::tcp_stream& stream = *call.stream_;
    beast::error_code ec;
    Attempt a;
    stream.expires_after(Seconds(o.head_timeout_s));
    co_await http::async_write(stream, req, asio::redirect_error(use_awaitable, ec));
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    // Not boost::none: Boost 1.74 compares the Content-Length with the optional directly, and
    // every length is "greater" than an empty optional (body_limit error on every body).
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (!ec) co_await http::async_read_header(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      a.error = ec == beast::error::timeout ? UpstreamError::kTimeout : UpstreamError::kReset;
      a.message = ec == beast::error::timeout ? std::string("timed out waiting for the response header")
                                               : "before the response header: " + ec.message();
      a.nothing_received = reused && buffer.size() == 0 && ec != beast::error::timeout;
      co_return a;
    }
    UpstreamHead head;
    head.status = static_cast<int>(parser.get().result_int());
    for (const auto& f : parser.get()) {
      head.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
      if (f.name() == http::field::content_type) head.content_type = std::string(f.value());
    }
    call.head_received_ = true;
    if (call.handlers_.on_head) call.handlers_.on_head(head);
    a = co_await ReadBody(call, stream, buffer, parser, o.idle_timeout_s);
    co_return a;
  }

  awaitable<Attempt> ReadBody(CallImpl& call, beast::tcp_stream& stream, beast::flat_buffer& buffer,
                              http::response_parser<http::buffer_body>& parser, double idle_timeout_s) {
    Attempt a;
    std::vector<char> chunk(kReadBuffer);
    beast::error_code ec;
    while (!parser.is_done()) {
      while (call.handlers_.paused && call.handlers_.paused() && !call.cancelled_) {
        call.pause_timer_.expires_after(Seconds(kPausePollS));
        co_await call.pause_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
      }
      if (call.cancelled_) {
        a.error = UpstreamError::kCancelled;
        co_return a;
      }
      parser.get().body().data = chunk.data();
      parser.get().body().size = chunk.size();
      stream.expires_after(Seconds(idle_timeout_s));
      co_await http::async_read_some(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      const size_t n = chunk.size() - parser.get().body().size;
      if (n > 0 && call.handlers_.on_data) call.handlers_.on_data(std::string_view(chunk.data(), n));
      if (ec) {
        a.error = ec == beast::error::timeout ? UpstreamError::kTimeout : UpstreamError::kBody;
        a.message = "reading the response body: " + ec.message();
        co_return a;
      }
    }
    a.keep_alive = parser.get().keep_alive();
    co_return a;
  }

  // The most recently used idle connection that has not idled past kMaxIdle (replicas close
  // idle keep-alive connections after a few seconds: inferd serve after 5).
  std::unique_ptr<beast::tcp_stream> TakeIdle(const std::string& key) {
    auto it = idle_.find(key);
    if (it == idle_.end()) return nullptr;
    const auto now = Clock::now();
    while (!it->second.empty()) {
      Idle idle = std::move(it->second.back());
      it->second.pop_back();
      if (now - idle.since < kMaxIdle) return std::move(idle.stream);
    }
    return nullptr;
  }

  void PutIdle(const std::string& key, std::unique_ptr<beast::tcp_stream> s) {
    if (!s) return;
    s->expires_never();
    auto& list = idle_[key];
    if (list.size() >= max_idle_) list.pop_front();
    list.push_back({std::move(s), Clock::now()});
  }

  asio::io_context& ioc_;
  const size_t max_idle_;
  struct Idle {
    std::unique_ptr<beast::tcp_stream> stream;
    Clock::time_point since;
  };
  static constexpr auto kMaxIdle = std::chrono::seconds(2);
  std::map<std::string, std::deque<Idle>> idle_;  // per host:port, most recently used last
};

}  // namespace

std::string_view UpstreamErrorName(UpstreamError e) {
  switch (e) {
    case UpstreamError::kNone: return "none";
    case UpstreamError::kConnect: return "connect";
    case UpstreamError::kTimeout: return "timeout";
    case UpstreamError::kReset: return "reset";
    case UpstreamError::kBody: return "body";
    case UpstreamError::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::unique_ptr<UpstreamClient> UpstreamClient::Create(boost::asio::io_context& ioc, size_t max_idle_per_backend) {
  return std::make_unique<ClientImpl>(ioc, max_idle_per_backend);
}

}  // namespace inferd::router
