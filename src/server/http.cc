// The only Boost.Beast translation unit of the server (DESIGN.md §3: Beast is slow to
// compile, so it stays behind http.h).
//
// Every connection is one coroutine on a single I/O thread: read a request, hand it to
// the handler, then pump the exchange (status + body, or a chunked stream) until it
// ends, while a second coroutine watches the socket for the client going away. With one
// thread there is no locking: the exchange's state is only touched on that thread, and
// the pump re-checks the state after every suspension, so a wake-up is never lost.
//
// Bytes become requests in http_parse.cc (shared with the tests and the fuzzer); this file
// does the socket side, CORS (Starlette's rules, before the handler) and the responses.
// Responses always carry the status line "HTTP/1.1", also to HTTP/1.0 clients: RFC 9110
// §6.2 has a server send the highest minor version it conforms to, and nginx and uvicorn
// (h11) do the same. What changes for an HTTP/1.0 client is the framing: no chunked
// coding (a stream is delimited by closing the connection, RFC 9112 §6.3), and keep-alive
// only when it asked with "Connection: keep-alive", confirmed by the same header.
#include <utility>  // Boost 1.74's asio/awaitable.hpp uses std::exchange without it

#include "server/http.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <deque>
#include <list>
#include <set>

#include <fmt/format.h>

#include "server/http_parse.h"
#include "util/logging.h"

namespace inferd::server {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using net::awaitable;
using net::use_awaitable;
using tcp = net::ip::tcp;
using unix_proto = net::local::stream_protocol;
using Clock = std::chrono::steady_clock;

std::chrono::milliseconds Ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

std::string DefaultErrorBody(int status, const std::string& message) {
  return fmt::format("{{\"error\": {{\"message\": \"{}\", \"code\": {}}}}}", message, status);
}

// Starlette's CORSMiddleware (starlette/middleware/cors.py), which vLLM serves behind:
// the same decisions and the same header values, precomputed from the options.
class Cors {
 public:
  explicit Cors(const CorsOptions& o) : options_(o) {
    auto has_star = [](const std::vector<std::string>& v) { return std::find(v.begin(), v.end(), "*") != v.end(); };
    allow_all_origins_ = has_star(o.allowed_origins);
    allow_all_headers_ = has_star(o.allowed_headers);
    methods_ = has_star(o.allowed_methods)
                   ? std::vector<std::string>{"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"}
                   : o.allowed_methods;
    // The CORS-safelisted request headers are always allowed; sorted and unique as
    // Python's sorted(set(...)) makes them (byte order equals code point order in UTF-8).
    std::set<std::string> headers = {"Accept", "Accept-Language", "Content-Language", "Content-Type"};
    headers.insert(o.allowed_headers.begin(), o.allowed_headers.end());
    for (const std::string& h : headers) {
      allow_headers_value_ += (allow_headers_value_.empty() ? "" : ", ") + h;
      allowed_headers_lower_.insert(Lower(h));
    }
  }

  // When `r` is a preflight, answers it through `ex` and returns true.
  bool Preflight(const HttpRequest& r, HttpExchange& ex) const {
    auto origin = r.headers.find("origin");
    if (origin == r.headers.end() || r.method != "OPTIONS") return false;
    auto method = r.headers.find("access-control-request-method");
    if (method == r.headers.end()) return false;
    // The origin is explicit (echoed) unless any origin may read without credentials.
    const bool explicit_origin = !allow_all_origins_ || options_.allow_credentials;
    HttpHeaders h;
    h.emplace_back(explicit_origin ? "Vary" : "Access-Control-Allow-Origin", explicit_origin ? "Origin" : "*");
    h.emplace_back("Access-Control-Allow-Methods", Join(methods_));
    h.emplace_back("Access-Control-Max-Age", std::to_string(options_.max_age_s));
    if (!allow_all_headers_) h.emplace_back("Access-Control-Allow-Headers", allow_headers_value_);
    if (options_.allow_credentials) h.emplace_back("Access-Control-Allow-Credentials", "true");
    std::vector<std::string> failures;
    if (!OriginAllowed(origin->second)) {
      failures.push_back("origin");
    } else if (explicit_origin) {
      h.emplace_back("Access-Control-Allow-Origin", origin->second);
    }
    if (std::find(methods_.begin(), methods_.end(), method->second) == methods_.end()) failures.push_back("method");
    if (auto requested = r.headers.find("access-control-request-headers"); requested != r.headers.end()) {
      if (allow_all_headers_) {
        h.emplace_back("Access-Control-Allow-Headers", requested->second);  // mirrored, as any is allowed
      } else if (!HeadersAllowed(requested->second)) {
        failures.push_back("headers");
      }
    }
    // Starlette's allow_private_network, which vLLM leaves off.
    if (r.headers.count("access-control-request-private-network")) failures.push_back("private-network");
    if (failures.empty()) {
      ex.Respond(200, "text/plain; charset=utf-8", "OK", std::move(h));
    } else {
      ex.Respond(400, "text/plain; charset=utf-8", "Disallowed CORS " + Join(failures), std::move(h));
    }
    return true;
  }

  // Headers for the response to an actual (not preflight) request; none without Origin.
  // "Vary: Origin" means: add Origin to the response's Vary; the others replace.
  HttpHeaders ResponseHeaders(const HttpRequest& r) const {
    HttpHeaders h;
    auto origin = r.headers.find("origin");
    if (origin == r.headers.end()) return h;
    // A request with a cookie (or, with credentials, an Authorization) gets the origin
    // itself, as browsers refuse "*" for a credentialed request; with a list of origins,
    // an allowed one is always echoed.
    const bool credentialed =
        r.headers.count("cookie") || (options_.allow_credentials && r.headers.count("authorization"));
    const bool echo = allow_all_origins_ ? credentialed : OriginAllowed(origin->second);
    if (allow_all_origins_ && !echo) h.emplace_back("Access-Control-Allow-Origin", "*");
    if (options_.allow_credentials) h.emplace_back("Access-Control-Allow-Credentials", "true");
    if (echo) {
      h.emplace_back("Access-Control-Allow-Origin", origin->second);
      h.emplace_back("Vary", "Origin");
    }
    return h;
  }

 private:
  static std::string Lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
  static std::string Join(const std::vector<std::string>& v) {
    std::string out;
    for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
  }
  bool OriginAllowed(const std::string& origin) const { return allow_all_origins_ || options_.AllowsOrigin(origin); }
  // Each comma-separated name, lower-cased and stripped of whitespace, must be allowed
  // (an empty name is not: Starlette's split(",") gives "" for it, which never matches).
  bool HeadersAllowed(const std::string& requested) const {
    for (std::string_view name : HeaderListItems(requested)) {
      if (!allowed_headers_lower_.count(Lower(std::string(name)))) return false;
    }
    return true;
  }

  CorsOptions options_;
  bool allow_all_origins_ = false, allow_all_headers_ = false;
  std::vector<std::string> methods_;
  std::string allow_headers_value_;
  std::set<std::string> allowed_headers_lower_;
};

class ServerImpl;

// A WebSocket's state on the I/O thread: the queue of outgoing messages and how it ends.
// The connection's coroutines (ServerImpl::RunWebSocket) drain it; it outlives them when
// the handler still holds it.
class WsState final : public WebSocket {
 public:
  WsState(WebSocketOptions options, WebSocketCallbacks callbacks)
      : options_(std::move(options)), callbacks_(std::move(callbacks)) {}

  void Send(std::string text) override {
    if (closing_) return;
    if (pending_ + text.size() > options_.max_pending_bytes) {
      INFERD_LOG_WARN("websocket: {} bytes unsent, the client reads too slowly: dropping the connection",
                      pending_ + text.size());
      Drop();
      return;
    }
    pending_ += text.size();
    out_.push_back(std::move(text));
    Kick();
  }
  void Close(int code, std::string reason) override {
    if (closing_) return;
    closing_ = true;
    close_code_ = code;
    close_reason_ = std::move(reason);
    Kick();
  }
  size_t pending_bytes() const override { return pending_; }
  bool closed() const override { return closing_; }

  // Connection side.
  void Drop() {  // no close frame: the socket is closed under every operation
    closing_ = dropped_ = true;
    if (drop_) drop_();
    Kick();
  }
  void Finish(int code) {
    closing_ = true;
    if (callbacks_.on_close) std::exchange(callbacks_.on_close, nullptr)(code);
  }
  void Kick() {
    if (wake_) wake_->cancel();
  }

  const WebSocketOptions options_;
  WebSocketCallbacks callbacks_;
  std::deque<std::string> out_;
  size_t pending_ = 0;
  bool closing_ = false, dropped_ = false;
  int close_code_ = 1000;
  std::string close_reason_;
  net::steady_timer* wake_ = nullptr;  // the writer's
  std::function<void()> drop_;         // closes the socket
};

// The state of one response; lives as long as the handler or the connection holds it.
class Exchange final : public HttpExchange {
 public:
  explicit Exchange(net::steady_timer* wake, std::atomic<int64_t>* active) : wake_(wake), active_(active) {
    ++*active_;
  }
  ~Exchange() override {
    if (!counted_down_) --*active_;
  }

  void Respond(int status, std::string content_type, std::string body, HttpHeaders extra) override {
    if (started_ || gone_) return;
    started_ = ended_ = true;
    status_ = status;
    content_type_ = std::move(content_type);
    body_ = std::move(body);
    extra_ = std::move(extra);
    Kick();
  }
  void StartStream(int status, std::string content_type, HttpHeaders extra) override {
    if (started_ || gone_) return;
    started_ = streaming_ = true;
    status_ = status;
    content_type_ = std::move(content_type);
    extra_ = std::move(extra);
    Kick();
  }
  void Write(std::string data) override {
    if (!streaming_ || ended_ || gone_ || data.empty()) return;
    pending_ += data.size();
    chunks_.push_back(std::move(data));
    Kick();
  }
  size_t pending_bytes() const override { return pending_; }
  void End() override {
    if (!started_ || ended_ || gone_) return;
    ended_ = true;
    Kick();
  }
  void OnClientGone(std::function<void()> fn) override {
    on_gone_ = std::move(fn);
    if (gone_ && on_gone_) std::exchange(on_gone_, nullptr)();
  }
  bool client_gone() const override { return gone_; }
  std::shared_ptr<WebSocket> AcceptWebSocket(WebSocketOptions options, WebSocketCallbacks callbacks) override {
    if (started_ || gone_ || !upgrade_allowed_) return nullptr;
    started_ = ended_ = true;
    status_ = 101;
    ws_ = std::make_shared<WsState>(std::move(options), std::move(callbacks));
    Kick();
    return ws_;
  }

  // Connection side.
  void MarkGone() {
    if (gone_ || done_) return;
    gone_ = true;
    if (on_gone_) std::exchange(on_gone_, nullptr)();
    Kick();
  }
  void Detach() {  // the connection is closing: no more wake-ups into it
    wake_ = nullptr;
    if (!counted_down_) {
      counted_down_ = true;
      --*active_;
    }
  }
  void MarkDone() {
    done_ = true;
    Detach();
  }

  bool started_ = false, streaming_ = false, ended_ = false, gone_ = false, done_ = false, header_sent_ = false;
  int status_ = 200;
  std::string content_type_, body_;
  HttpHeaders extra_;
  HttpHeaders cors_;  // Cors::ResponseHeaders of the request, applied over extra_
  std::deque<std::string> chunks_;
  size_t pending_ = 0;  // bytes in chunks_ plus those of the write in flight
  bool upgrade_allowed_ = false;  // the request asks for a WebSocket
  std::shared_ptr<WsState> ws_;   // set by AcceptWebSocket

 private:
  void Kick() {
    if (wake_) wake_->cancel();
  }
  net::steady_timer* wake_;
  std::atomic<int64_t>* active_;
  bool counted_down_ = false;
  std::function<void()> on_gone_;
};

// As Starlette's MutableHeaders.update + add_vary_header: CORS headers replace the
// handler's of the same name, except Vary, which gains "Origin".
template <class Body>
void ApplyCors(http::response<Body>& res, const HttpHeaders& cors) {
  for (const auto& [k, v] : cors) {
    if (beast::iequals(k, "vary") && !res[http::field::vary].empty()) {
      res.set(http::field::vary, std::string(res[http::field::vary]) + ", " + v);
    } else {
      res.set(k, v);
    }
  }
}

// `version`: the request's. res.keep_alive(true) writes no header on an HTTP/1.1 response,
// but an HTTP/1.0 client closes unless it reads "Connection: keep-alive".
template <class Body>
void SetCommonHeaders(http::response<Body>& res, const Exchange& ex, bool keep_alive, int version) {
  res.set(http::field::server, "inferd");
  res.set(http::field::content_type, ex.content_type_);
  for (const auto& [k, v] : ex.extra_) res.set(k, v);
  ApplyCors(res, ex.cors_);
  res.keep_alive(keep_alive);
  if (keep_alive && version < 11) res.set(http::field::connection, "keep-alive");
}

class ServerImpl final : public HttpServer {
 public:
  ServerImpl(HttpServerOptions options, HttpHandler handler)
      : options_(std::move(options)), handler_(std::move(handler)), cors_(options_.cors), ioc_(1), signals_(ioc_) {
    if (!options_.error_body) options_.error_body = DefaultErrorBody;
  }

  Status Bind() {
    RaiseFileLimit();
    boost::system::error_code ec;
    if (!options_.uds.empty()) {
      ::unlink(options_.uds.c_str());
      uds_acceptor_.emplace(ioc_);
      uds_acceptor_->open(unix_proto(), ec);
      if (!ec) uds_acceptor_->bind(unix_proto::endpoint(options_.uds), ec);
      if (!ec) uds_acceptor_->listen(net::socket_base::max_listen_connections, ec);
      if (ec) return Status(StatusCode::kUnavailable, fmt::format("cannot listen on unix socket {}: {}", options_.uds, ec.message()));
      return Status::OK();
    }
    auto addr = net::ip::make_address(options_.host == "localhost" ? "127.0.0.1" : options_.host, ec);
    if (ec) return InvalidArgument(fmt::format("--host: '{}' is not an IP address", options_.host));
    tcp_acceptor_.emplace(ioc_);
    tcp::endpoint ep(addr, static_cast<uint16_t>(options_.port));
    tcp_acceptor_->open(ep.protocol(), ec);
    if (!ec) tcp_acceptor_->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) tcp_acceptor_->bind(ep, ec);
    if (!ec) tcp_acceptor_->listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status(StatusCode::kUnavailable,
                    fmt::format("cannot listen on {}:{}: {}", options_.host, options_.port, ec.message()));
    }
    port_ = tcp_acceptor_->local_endpoint().port();
    return Status::OK();
  }

  void Run() override {
    if (tcp_acceptor_) net::co_spawn(ioc_, AcceptLoop(*tcp_acceptor_), net::detached);
    if (uds_acceptor_) net::co_spawn(ioc_, AcceptLoop(*uds_acceptor_), net::detached);
    auto guard = net::make_work_guard(ioc_);
    ioc_.run();
  }
  void Post(std::function<void()> fn) override { net::post(ioc_, std::move(fn)); }
  void StopAccepting() override {
    net::post(ioc_, [this] {
      stopping_ = true;
      boost::system::error_code ec;
      if (tcp_acceptor_) tcp_acceptor_->close(ec);
      if (uds_acceptor_) {
        uds_acceptor_->close(ec);
        ::unlink(options_.uds.c_str());
      }
      for (auto& idle : idle_timers_) idle->cancel();  // idle keep-alive connections close now
    });
  }
  void Stop() override { ioc_.stop(); }
  void OnSignal(std::function<void(int)> fn) override {
    signals_.add(SIGINT);
    signals_.add(SIGTERM);
    on_signal_ = std::move(fn);
    WaitSignal();
  }
  void After(double seconds, std::function<void()> fn) override {
    auto timer = std::make_shared<net::steady_timer>(ioc_, Ms(seconds));
    timer->async_wait([timer, fn = std::move(fn)](const boost::system::error_code& ec) {
      if (!ec) fn();
    });
  }
  void SetMaxBodyBytes(size_t bytes) override { options_.max_body_bytes = bytes; }
  int port() const override { return port_; }
  int64_t num_connections() const override { return connections_.load(); }
  int64_t num_active_exchanges() const override { return active_.load(); }
  net::io_context& io_context() override { return ioc_; }

 private:
  static void RaiseFileLimit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
    }
  }

  void WaitSignal() {
    signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (on_signal_) on_signal_(sig);
      WaitSignal();
    });
  }

  template <class Acceptor>
  awaitable<void> AcceptLoop(Acceptor& acceptor) {
    for (;;) {
      boost::system::error_code ec;
      auto socket = co_await acceptor.async_accept(net::redirect_error(use_awaitable, ec));
      if (ec) {
        if (!acceptor.is_open() || stopping_) co_return;
        if (ec == net::error::no_descriptors) {  // EMFILE: back off instead of spinning
          INFERD_LOG_WARN("accept: {} (raise ulimit -n)", ec.message());
          net::steady_timer t(ioc_, std::chrono::milliseconds(100));
          co_await t.async_wait(net::redirect_error(use_awaitable, ec));
        }
        continue;
      }
      using Stream = beast::basic_stream<typename Acceptor::protocol_type>;
      net::co_spawn(ioc_, Session<Stream>(Stream(std::move(socket))), net::detached);
    }
  }

  template <class Stream>
  static std::string RemoteOf(Stream& stream) {
    boost::system::error_code ec;
    auto ep = beast::get_lowest_layer(stream).socket().remote_endpoint(ec);
    if (ec) return "?";
    if constexpr (std::is_same_v<typename Stream::protocol_type, tcp>) {
      return fmt::format("{}:{}", ep.address().to_string(), ep.port());
    } else {
      return "unix";
    }
  }

  template <class Stream>
  awaitable<void> Session(Stream stream) {
    ++connections_;
    struct CountDown {
      std::atomic<int64_t>& c;
      ~CountDown() { --c; }
    } count_down{connections_};
    if constexpr (std::is_same_v<typename Stream::protocol_type, tcp>) {
      boost::system::error_code ec;
      stream.socket().set_option(tcp::no_delay(true), ec);
    }
    const std::string remote = RemoteOf(stream);
    beast::flat_buffer buffer;
    net::steady_timer wake(ioc_);
    auto idle = std::make_shared<net::steady_timer>(ioc_);
    bool first = true;
    for (;;) {
      if (stopping_) break;
      boost::system::error_code ec;
      // Wait for the next request's first bytes (keep-alive idle time) unless buffered.
      if (buffer.size() == 0 && !first) {
        idle_timers_.push_back(idle);
        auto it = std::prev(idle_timers_.end());
        idle->expires_after(Ms(options_.keep_alive_timeout_s));
        auto ready = std::make_shared<bool>(false);  // outlives this frame if the wait is cancelled
        auto& sock = beast::get_lowest_layer(stream).socket();
        sock.async_wait(net::socket_base::wait_read, [ready, idle](const boost::system::error_code& e) {
          if (e) return;
          *ready = true;
          idle->cancel();
        });
        co_await idle->async_wait(net::redirect_error(use_awaitable, ec));
        idle_timers_.erase(it);
        if (!*ready) {
          sock.cancel(ec);
          break;
        }
      }
      first = false;
      HttpRequestParser parser(HttpParseLimits{options_.max_header_bytes, options_.max_body_bytes});
      if (!co_await ReadRequest(stream, buffer, parser)) break;
      stream.expires_never();
      HttpRequest hr = parser.Release();
      hr.remote = remote;
      const bool keep_alive = hr.keep_alive;

      auto ex = std::make_shared<Exchange>(&wake, &active_);
      ex->upgrade_allowed_ = hr.IsWebSocketUpgrade();
      bool ok = co_await Serve(stream, hr, ex, wake, keep_alive && !stopping_);
      if (ex->ws_) {  // the connection is a WebSocket's now, which closes it
        co_await RunWebSocket(std::move(stream), hr, ex->ws_);
        co_return;
      }
      if (!ok || !keep_alive || stopping_) break;
    }
    boost::system::error_code ec;
    if constexpr (std::is_same_v<typename Stream::protocol_type, tcp>) {
      beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_send, ec);
    }
    beast::get_lowest_layer(stream).socket().close(ec);
  }

  // Reads one request into `parser`, answering "100 Continue" when the client waits for
  // it. The whole request must arrive within read_timeout_s. False: the connection ends
  // (end of stream, timeout, reset, or a parse error, which has been answered).
  template <class Stream>
  awaitable<bool> ReadRequest(Stream& stream, beast::flat_buffer& buffer, HttpRequestParser& parser) {
    constexpr size_t kReadSize = 64 * 1024;
    stream.expires_after(Ms(options_.read_timeout_s));
    bool continue_sent = false;
    boost::system::error_code ec;
    for (;;) {
      // The parser consumes a prefix; the rest (a partial header, a pipelined request) stays.
      auto data = buffer.cdata();
      buffer.consume(parser.Feed(std::string_view(static_cast<const char*>(data.data()), data.size())));
      if (parser.failed()) {
        co_await WriteError(stream, HttpStatusForParseError(parser.error()), parser.error().message(),
                            parser.Release());
        co_await Drain(stream);
        co_return false;
      }
      if (parser.done()) co_return true;
      if (parser.expects_continue() && !continue_sent) {
        continue_sent = true;
        http::response<http::empty_body> cont{http::status::continue_, 11};
        co_await http::async_write(stream, cont, net::redirect_error(use_awaitable, ec));
        if (ec) co_return false;
      }
      size_t n = co_await stream.async_read_some(buffer.prepare(kReadSize), net::redirect_error(use_awaitable, ec));
      buffer.commit(n);
      if (ec == net::error::eof && (buffer.size() > 0 || parser.got_some()) && !parser.header_done()) {
        co_await WriteError(stream, 400, "malformed HTTP request: the header section ends early", parser.Release());
        co_return false;
      }
      // A clean end of stream, a reset, or the read timeout (the stream is closed by then).
      if (ec) co_return false;
    }
  }

  // Runs the handler and pumps its exchange. False: the connection must close.
  template <class Stream>
  awaitable<bool> Serve(Stream& stream, const HttpRequest& hr, std::shared_ptr<Exchange> ex,
                        net::steady_timer& wake, bool keep_alive) {
    const auto started = Clock::now();
    if (!cors_.Preflight(hr, *ex)) {
      ex->cors_ = cors_.ResponseHeaders(hr);
      handler_(hr, ex);
    }
    // HTTP/1.0 has no chunked coding: a stream's body ends when the connection closes.
    const bool close_delimited = hr.version < 11;
    // Watch for the client going away while the response is pending.
    auto& sock = beast::get_lowest_layer(stream).socket();
    auto watching = std::make_shared<bool>(true);
    std::weak_ptr<Exchange> weak = ex;
    sock.async_wait(net::socket_base::wait_read, [watching, weak, &sock](const boost::system::error_code& e) {
      if (e || !*watching) return;
      auto ex = weak.lock();
      if (!ex) return;
      boost::system::error_code ec2;
      // Readable with nothing to read: the peer closed (a pipelined request leaves bytes).
      if (sock.available(ec2) == 0 || ec2) ex->MarkGone();
    });
    bool ok = true;
    boost::system::error_code ec;
    for (;;) {
      if (ex->gone_ || ex->ws_) {
        ok = false;
        break;
      }
      if (ex->started_ && !ex->header_sent_) {
        ex->header_sent_ = true;
        stream.expires_after(Ms(options_.write_timeout_s));
        if (!ex->streaming_) {
          http::response<http::string_body> res{static_cast<http::status>(ex->status_), 11};
          SetCommonHeaders(res, *ex, keep_alive, hr.version);
          res.body() = std::move(ex->body_);
          res.prepare_payload();
          co_await http::async_write(stream, res, net::redirect_error(use_awaitable, ec));
          ok = !ec;
          break;
        }
        http::response<http::empty_body> res{static_cast<http::status>(ex->status_), 11};
        SetCommonHeaders(res, *ex, keep_alive && !close_delimited, hr.version);
        res.set(http::field::cache_control, "no-cache");
        res.chunked(!close_delimited);  // else neither Transfer-Encoding nor Content-Length
        http::response_serializer<http::empty_body> sr{res};
        co_await http::async_write_header(stream, sr, net::redirect_error(use_awaitable, ec));
        if (ec) {
          ex->MarkGone();
          continue;
        }
      }
      if (ex->header_sent_ && !ex->chunks_.empty()) {
        // Coalesce what piled up while the last write was in flight.
        std::string data;
        while (!ex->chunks_.empty()) {
          data += ex->chunks_.front();
          ex->chunks_.pop_front();
        }
        stream.expires_after(Ms(options_.write_timeout_s));
        if (close_delimited) {
          co_await net::async_write(stream, net::buffer(data), net::redirect_error(use_awaitable, ec));
        } else {
          co_await net::async_write(stream, http::make_chunk(net::buffer(data)),
                                    net::redirect_error(use_awaitable, ec));
        }
        ex->pending_ -= std::min(ex->pending_, data.size());
        if (ec) ex->MarkGone();
        continue;
      }
      if (ex->header_sent_ && ex->ended_) {
        if (close_delimited) {  // closing the connection is the end of the body
          ok = false;
          break;
        }
        stream.expires_after(Ms(options_.write_timeout_s));
        co_await net::async_write(stream, http::make_chunk_last(), net::redirect_error(use_awaitable, ec));
        ok = !ec;
        break;
      }
      wake.expires_at(Clock::time_point::max());
      co_await wake.async_wait(net::redirect_error(use_awaitable, ec));
    }
    stream.expires_never();
    if (options_.on_complete) {
      options_.on_complete(hr, ex->gone_ ? 499 : ex->status_,
                           std::chrono::duration<double>(Clock::now() - started).count());
    }
    ex->MarkDone();
    *watching = false;
    sock.cancel(ec);  // ends the watcher's wait
    co_return ok;
  }

  // A WebSocket on the connection of `hr`: the handshake (Beast answers a bad one with 400),
  // then a reader (this coroutine) and a writer (ws->out_, in order) until either side
  // closes. Ping/pong and the idle limit are Beast's (stream_base::timeout); a write that
  // does not finish within write_timeout_s drops the connection.
  template <class Stream>
  awaitable<void> RunWebSocket(Stream stream, const HttpRequest& hr, std::shared_ptr<WsState> st) {
    websocket::stream<Stream> ws(std::move(stream));
    beast::get_lowest_layer(ws).expires_never();  // the websocket's own timers instead
    websocket::stream_base::timeout timeout{};
    timeout.handshake_timeout = Ms(options_.read_timeout_s);
    timeout.idle_timeout = st->options_.ping_interval_s > 0 ? Ms(2 * st->options_.ping_interval_s)
                                                              : websocket::stream_base::none();
    timeout.keep_alive_pings = st->options_.ping_interval_s > 0;
    ws.set_option(timeout);
    ws.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "inferd"); }));
    ws.read_message_max(st->options_.max_message_bytes);
    http::request<http::empty_body> req{http::verb::get, hr.query.empty() ? hr.path : hr.path + "?" + hr.query,
                                        hr.version};
    for (const auto& [name, value] : hr.headers) req.set(name, value);
    boost::system::error_code ec;
    co_await ws.async_accept(req, net::redirect_error(use_awaitable, ec));
    if (ec) {
      st->Finish(1006);
      co_return;
    }
    auto& sock = beast::get_lowest_layer(ws).socket();
    st->drop_ = [&sock] {
      boost::system::error_code e;
      sock.close(e);
    };
    // The writer runs beside this reader; `writer_done` wakes the reader's final wait.
    net::steady_timer wake(ioc_), writer_done(ioc_, Clock::time_point::max());
    st->wake_ = &wake;
    bool writer_running = true, reader_done = false;
    net::co_spawn(ioc_, WsWriter(ws, st, wake, reader_done),
                  [&writer_running, &writer_done](std::exception_ptr) {
                    writer_running = false;
                    writer_done.cancel();
                  });
    int code = 1006;
    while (!st->dropped_) {
      beast::flat_buffer buffer;
      co_await ws.async_read(buffer, net::redirect_error(use_awaitable, ec));
      if (ec == websocket::error::closed) code = ws.reason().code;
      if (ec == websocket::error::message_too_big) code = 1009;  // Beast sent that close frame
      if (ec) break;
      if (!ws.got_text()) {
        st->Close(1003, "only text messages are accepted");
        continue;
      }
      if (st->closing_ || !st->callbacks_.on_message) continue;  // read on until the close handshake
      st->callbacks_.on_message(beast::buffers_to_string(buffer.data()));
    }
    if (code == 1006 && st->closing_ && !st->dropped_) code = st->close_code_;
    reader_done = true;
    st->Finish(code);
    st->Kick();
    while (writer_running) co_await writer_done.async_wait(net::redirect_error(use_awaitable, ec));
    st->wake_ = nullptr;
    st->drop_ = nullptr;
    sock.close(ec);
  }

  template <class WsStream>
  awaitable<void> WsWriter(WsStream& ws, std::shared_ptr<WsState> st, net::steady_timer& wake, const bool& reader_done) {
    boost::system::error_code ec;
    net::steady_timer deadline(ioc_);
    for (;;) {
      if (st->dropped_ || reader_done) co_return;
      if (!st->out_.empty()) {
        std::string message = std::move(st->out_.front());
        st->out_.pop_front();
        deadline.expires_after(Ms(options_.write_timeout_s));
        deadline.async_wait([st](const boost::system::error_code& e) {
          if (!e) st->Drop();  // the client has not read for write_timeout_s
        });
        ws.text(true);
        co_await ws.async_write(net::buffer(message), net::redirect_error(use_awaitable, ec));
        deadline.cancel();
        st->pending_ -= std::min(st->pending_, message.size());
        if (ec) {
          st->Drop();
          co_return;
        }
        continue;
      }
      if (st->closing_) {
        deadline.expires_after(Ms(options_.write_timeout_s));
        deadline.async_wait([st](const boost::system::error_code& e) {
          if (!e) st->Drop();
        });
        co_await ws.async_close(websocket::close_reason(static_cast<websocket::close_code>(st->close_code_),
                                                        beast::string_view(st->close_reason_.data(), std::min<size_t>(st->close_reason_.size(), 123))),
                                net::redirect_error(use_awaitable, ec));
        deadline.cancel();
        co_return;  // the reader sees the peer's close frame (or the error) and ends
      }
      wake.expires_at(Clock::time_point::max());
      co_await wake.async_wait(net::redirect_error(use_awaitable, ec));
    }
  }

  // After an early error response: stop sending, then read and drop what the client is
  // still sending (for up to 2 s) so that it gets to read the response instead of a reset.
  template <class Stream>
  awaitable<void> Drain(Stream& stream) {
    boost::system::error_code ec;
    if constexpr (std::is_same_v<typename Stream::protocol_type, tcp>) {
      beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_send, ec);
    }
    std::vector<char> sink(64 * 1024);
    stream.expires_after(std::chrono::seconds(2));
    while (!ec) {
      co_await stream.async_read_some(net::buffer(sink), net::redirect_error(use_awaitable, ec));
    }
  }

  // An error found by this layer; the connection closes after it. `r`: what was parsed of
  // the request, for its CORS headers (a browser can then read the error).
  template <class Stream>
  awaitable<void> WriteError(Stream& stream, int status, std::string message, const HttpRequest& r) {
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::server, "inferd");
    res.set(http::field::content_type, "application/json");
    ApplyCors(res, cors_.ResponseHeaders(r));
    res.keep_alive(false);
    res.body() = options_.error_body(status, message);
    res.prepare_payload();
    boost::system::error_code ec;
    stream.expires_after(Ms(options_.write_timeout_s));
    co_await http::async_write(stream, res, net::redirect_error(use_awaitable, ec));
  }

  HttpServerOptions options_;
  HttpHandler handler_;
  Cors cors_;
  net::io_context ioc_;
  net::signal_set signals_;
  std::function<void(int)> on_signal_;
  std::optional<tcp::acceptor> tcp_acceptor_;
  std::optional<unix_proto::acceptor> uds_acceptor_;
  std::list<std::shared_ptr<net::steady_timer>> idle_timers_;
  int port_ = 0;
  bool stopping_ = false;  // I/O thread only
  std::atomic<int64_t> connections_{0}, active_{0};
};

}  // namespace

bool CorsOptions::AllowsOrigin(const std::string& origin) const {
  return std::find(allowed_origins.begin(), allowed_origins.end(), "*") != allowed_origins.end() ||
         std::find(allowed_origins.begin(), allowed_origins.end(), origin) != allowed_origins.end();
}

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(HttpServerOptions options, HttpHandler handler) {
  auto server = std::make_unique<ServerImpl>(std::move(options), std::move(handler));
  INFERD_RETURN_IF_ERROR(server->Bind());
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace inferd::server
