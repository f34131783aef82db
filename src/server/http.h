// A small asynchronous HTTP/1.1 server (Boost.Beast + Asio behind this plain interface).
// HTTP/1.0 clients are served too: their streams are close-delimited, not chunked.
//
// One I/O thread runs every connection as a coroutine: no thread per connection, so
// thousands of idle or streaming clients cost a socket and a few KB each. A handler is
// called on the I/O thread for each complete request and must not block; it answers
// through an HttpExchange, now or later (streaming), from the I/O thread only — other
// threads hand work to it with HttpServer::Post().
//
// Lifecycle: Create() binds (errors if the port or socket path is taken), Run() serves
// until Stop(). StopAccepting() closes the listeners and makes every connection close
// after its current response. Thread-safety: Post(), StopAccepting() and Stop() may be
// called from any thread; everything else belongs to the I/O thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "inferd/status.h"

namespace boost::asio {
class io_context;
}

namespace inferd::server {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;                         // "GET", "POST", ...
  std::string path;                           // target without the query string
  std::string query;                          // after '?', may be empty
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string remote;                         // peer address, for logs
  int version = 11;                           // 10: HTTP/1.0, 11: HTTP/1.1
  bool keep_alive = true;                     // the client allows another request after this one

  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
  // A GET asking to switch to the WebSocket protocol (RFC 6455 §4.2.1: "Upgrade: websocket"
  // and "Connection: upgrade"); HttpExchange::AcceptWebSocket completes the handshake.
  bool IsWebSocketUpgrade() const;
};

// A WebSocket connection taken over from an HTTP request (HttpExchange::AcceptWebSocket).
// I/O thread only, like HttpExchange. Text messages only: a binary message from the client
// closes the connection with 1003 (unsupported data).
class WebSocket {
 public:
  virtual ~WebSocket() = default;
  // Queues a text message; messages go out in order. Past max_pending_bytes of unsent
  // messages the client is reading too slowly: the connection is dropped (no close frame
  // could get through either) and on_close runs. Ignored once closing.
  virtual void Send(std::string text) = 0;
  // Sends a close frame after the queued messages, then ends the connection.
  virtual void Close(int code, std::string reason) = 0;
  virtual size_t pending_bytes() const = 0;  // queued, not yet written to the socket
  virtual bool closed() const = 0;           // closing or closed: Send() does nothing
};

struct WebSocketOptions {
  size_t max_message_bytes = 1u << 20;   // a larger message from the client: close 1009
  size_t max_pending_bytes = 16u << 20;  // unsent bytes before a slow reader is dropped
  // Keep-alive: a ping when nothing arrived for this long; no frame at all (a pong is one)
  // for twice this long closes the connection. 0: no pings, no idle limit.
  double ping_interval_s = 20;
};

struct WebSocketCallbacks {
  std::function<void(std::string text)> on_message;
  // Once, when the connection ends for any reason (after on_message is last called):
  // the close code received or sent, 1006 when the connection dropped without one.
  std::function<void(int code)> on_close;
};

// One response. Either Respond() once, or StartStream() + Write()* + End(). Calls after
// the response ended, or after the client went away, are ignored.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  virtual void Respond(int status, std::string content_type, std::string body, HttpHeaders extra = {}) = 0;
  // Starts a streamed response (used for server-sent events): chunked for HTTP/1.1; for an
  // HTTP/1.0 client (no chunked coding there) the body ends when the connection closes.
  virtual void StartStream(int status, std::string content_type, HttpHeaders extra = {}) = 0;
  virtual void Write(std::string data) = 0;
  virtual void End() = 0;
  // `fn` runs once (on the I/O thread) if the client disconnects before the response ends.
  virtual void OnClientGone(std::function<void()> fn) = 0;
  virtual bool client_gone() const = 0;
  // Bytes handed to Write() that have not reached the socket yet. A producer that can wait
  // (the router reading a replica's stream) stops reading while this is large, so a slow
  // client never grows memory without bound.
  virtual size_t pending_bytes() const = 0;
  // Completes the WebSocket handshake for a request with IsWebSocketUpgrade() (101
  // Switching Protocols) instead of a response; the connection then belongs to the returned
  // WebSocket. A failed handshake (a bad Sec-WebSocket-Key, ...) is answered 400 by the
  // server and reported through on_close (1006).
  virtual std::shared_ptr<WebSocket> AcceptWebSocket(WebSocketOptions options, WebSocketCallbacks callbacks) = 0;
};

// An HttpExchange for a transport that carries the routes' responses in its own framing
// (WebSocket messages, gRPC calls): the client-gone bookkeeping both need, no HTTP framing of
// its own (StartStream does nothing) and no WebSocket upgrade. I/O thread only.
class RelayExchange : public HttpExchange {
 public:
  void StartStream(int, std::string, HttpHeaders) override {}
  void OnClientGone(std::function<void()> fn) override {
    on_gone_ = std::move(fn);
    if (abort_ && on_gone_) std::exchange(on_gone_, nullptr)();
  }
  bool client_gone() const override { return gone_; }
  std::shared_ptr<WebSocket> AcceptWebSocket(WebSocketOptions, WebSocketCallbacks) override { return nullptr; }

  // The client went away: the route aborts the request, and what it writes is dropped.
  void Gone() {
    gone_ = true;
    Abort();
  }

 protected:
  // Asks the route to abort the request (runs the OnClientGone callback once, now or when it
  // is set) without marking the client gone: the response still ends normally.
  void Abort() {
    abort_ = true;
    if (on_gone_) std::exchange(on_gone_, nullptr)();
  }
  bool gone_ = false;

 private:
  bool abort_ = false;
  std::function<void()> on_gone_;
};

using HttpHandler = std::function<void(const HttpRequest&, std::shared_ptr<HttpExchange>)>;

// Cross-origin resource sharing, applied by the server before the handler: the semantics
// of Starlette's CORSMiddleware, which vLLM installs with these four settings (same
// defaults). A request without an Origin header is untouched. A preflight (OPTIONS with
// Origin and Access-Control-Request-Method) is answered by the server itself: 200 "OK"
// with the Access-Control-Allow-* headers, or 400 "Disallowed CORS origin, method,
// headers" naming what failed; it never reaches the handler. Every other request with an
// Origin gets Access-Control-Allow-Origin on its response (errors and streams included):
// "*" when all origins are allowed, else the origin itself (if allowed) with
// "Vary: Origin" -- also instead of "*" for a request with a Cookie, or with an
// Authorization when credentials are allowed; and with credentials allowed,
// "Access-Control-Allow-Credentials: true".
struct CorsOptions {
  std::vector<std::string> allowed_origins = {"*"};  // exact origins ("http://a.com:8080"), "*": any
  std::vector<std::string> allowed_methods = {"*"};  // "*": DELETE GET HEAD OPTIONS PATCH POST PUT
  std::vector<std::string> allowed_headers = {"*"};  // beyond the CORS-safelisted ones; "*": any
  bool allow_credentials = false;
  int max_age_s = 600;  // how long a browser may cache a preflight answer

  // Whether allowed_origins admits `origin` ("*" admits any).
  bool AllowsOrigin(const std::string& origin) const;
};

struct HttpServerOptions {
  std::string host = "0.0.0.0";
  int port = 8000;                     // 0: pick a free port (see HttpServer::port())
  std::string uds;                     // unix socket path: listen there instead of TCP
  size_t max_body_bytes = 64u << 20;   // larger bodies get 413
  size_t max_header_bytes = 64 * 1024;  // larger header sections get 431
  double read_timeout_s = 30;          // a request must arrive completely within this
  double keep_alive_timeout_s = 5;     // idle keep-alive connections close after this
  double write_timeout_s = 60;         // a client that does not read for this long is dropped
  // Called when a response has ended (or the client went away: status 499), for access logs.
  std::function<void(const HttpRequest&, int status, double seconds)> on_complete;
  // Body and content type for server-generated errors (parse errors: 400, 413, 431, 501,
  // see http_parse.h).
  std::function<std::string(int status, const std::string& message)> error_body;
  CorsOptions cors;
};

class HttpServer {
 public:
  static StatusOr<std::unique_ptr<HttpServer>> Create(HttpServerOptions options, HttpHandler handler);
  virtual ~HttpServer() = default;

  virtual void Run() = 0;  // serves on the calling thread until Stop()
  virtual void Post(std::function<void()> fn) = 0;
  virtual void StopAccepting() = 0;
  virtual void Stop() = 0;
  // Runs `fn` on the I/O thread when SIGINT or SIGTERM arrives (once per signal).
  virtual void OnSignal(std::function<void(int)> fn) = 0;
  // Runs `fn` on the I/O thread after `seconds`.
  virtual void After(double seconds, std::function<void()> fn) = 0;
  // Changes the body limit for requests whose header arrives from now on (I/O thread
  // only): the server sizes it to the model's context once the model has loaded.
  virtual void SetMaxBodyBytes(size_t bytes) = 0;

  virtual int port() const = 0;                    // bound TCP port (0 for a unix socket)
  virtual int64_t num_connections() const = 0;     // open connections
  virtual int64_t num_active_exchanges() const = 0;  // requests whose response has not ended
  // The I/O thread's event loop, for code that does its own asynchronous I/O on the same
  // thread (the router's upstream client). Only Asio translation units use it.
  virtual boost::asio::io_context& io_context() = 0;
};

}  // namespace inferd::server
