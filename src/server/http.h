// A small asynchronous HTTP/1.1 server (Boost.Beast + Asio behind this plain interface).
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
#include <vector>

#include "inferd/status.h"

namespace inferd::server {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;                         // "GET", "POST", ...
  std::string path;                           // target without the query string
  std::string query;                          // after '?', may be empty
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string remote;                         // peer address, for logs

  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// One response. Either Respond() once, or StartStream() + Write()* + End(). Calls after
// the response ended, or after the client went away, are ignored.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  virtual void Respond(int status, std::string content_type, std::string body, HttpHeaders extra = {}) = 0;
  // Starts a chunked response (used for server-sent events).
  virtual void StartStream(int status, std::string content_type, HttpHeaders extra = {}) = 0;
  virtual void Write(std::string data) = 0;
  virtual void End() = 0;
  // `fn` runs once (on the I/O thread) if the client disconnects before the response ends.
  virtual void OnClientGone(std::function<void()> fn) = 0;
  virtual bool client_gone() const = 0;
};

using HttpHandler = std::function<void(const HttpRequest&, std::shared_ptr<HttpExchange>)>;

struct HttpServerOptions {
  std::string host = "0.0.0.0";
  int port = 8000;                     // 0: pick a free port (see HttpServer::port())
  std::string uds;                     // unix socket path: listen there instead of TCP
  size_t max_body_bytes = 64u << 20;   // larger bodies get 413
  double read_timeout_s = 30;          // a request must arrive completely within this
  double keep_alive_timeout_s = 5;     // idle keep-alive connections close after this
  double write_timeout_s = 60;         // a client that does not read for this long is dropped
  // Called when a response has ended (or the client went away: status 499), for access logs.
  std::function<void(const HttpRequest&, int status, double seconds)> on_complete;
  // Body and content type for server-generated errors (413, 400 parse errors).
  std::function<std::string(int status, const std::string& message)> error_body;
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

  virtual int port() const = 0;                    // bound TCP port (0 for a unix socket)
  virtual int64_t num_connections() const = 0;     // open connections
  virtual int64_t num_active_exchanges() const = 0;  // requests whose response has not ended
};

}  // namespace inferd::server
