// The router's HTTP/1.1 client to its replicas (docs/router.md): one call per forwarded
// request, the response header and body handed over as they arrive (SSE streams pass
// through chunk by chunk), keep-alive connections pooled per backend.
//
// Threading: everything runs on the io_context given to Create() (the router's HttpServer
// I/O thread); handlers are called there, and Start(), Cancel() and DropIdle() must be
// called there. No Boost in this header: upstream.cc is the router's only Beast unit.
//
// A call ends exactly once, through on_end: after the whole body (kNone), on an error, or on
// Cancel() (kCancelled; the connection is closed, so the replica sees its client go away and
// aborts the request). Pooled connections idle for more than 2 s are not reused (replicas
// close idle ones: inferd serve after 5 s); one that the replica closed anyway is detected
// when nothing at all comes back, and the request is sent again on a fresh connection (the
// replica never saw it), once.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "inferd/status.h"
#include "server/http.h"
#include "util/url.h"

namespace inferd::router {

struct UpstreamRequest {
  std::string method = "POST";
  std::string target;             // path and query: "/v1/chat/completions"
  std::string body;
  server::HttpHeaders headers;    // sent as given (Host, Content-Length are added)
  double connect_timeout_s = 2;   // resolve + connect
  double head_timeout_s = 600;    // request sent → response header complete
  double idle_timeout_s = 600;    // the longest gap between two reads of the body
};

struct UpstreamHead {
  int status = 0;
  std::string content_type;
  server::HttpHeaders headers;  // all of them, names as the replica wrote them
};

enum class UpstreamError {
  kNone,       // the whole response arrived
  kConnect,    // resolve or connect failed: the replica never saw the request
  kTimeout,    // a timeout (connect, head or idle)
  kReset,      // the connection broke before the response header
  kBody,       // the connection broke or the body was malformed after the header
  kCancelled,  // Cancel() was called
};
std::string_view UpstreamErrorName(UpstreamError e);  // "none", "connect", "timeout", ...

struct UpstreamResult {
  UpstreamError error = UpstreamError::kNone;
  std::string message;         // for logs and error bodies; empty on success
  bool head_received = false;  // on_head was called
};

struct UpstreamHandlers {
  std::function<void(const UpstreamHead&)> on_head;   // once, before any on_data
  std::function<void(std::string_view)> on_data;      // body bytes, de-chunked
  std::function<void(const UpstreamResult&)> on_end;  // exactly once, last
  // Backpressure: while this returns true the body is not read (polled every few ms).
  std::function<bool()> paused;
};

class UpstreamCall {
 public:
  virtual ~UpstreamCall() = default;
  virtual void Cancel() = 0;  // idempotent; on_end(kCancelled) follows unless it already ended
};

class UpstreamClient {
 public:
  // `max_idle_per_backend`: keep-alive connections kept per host:port.
  static std::unique_ptr<UpstreamClient> Create(boost::asio::io_context& ioc, size_t max_idle_per_backend = 16);
  virtual ~UpstreamClient() = default;

  virtual std::shared_ptr<UpstreamCall> Start(const BaseUrl& url, UpstreamRequest request,
                                              UpstreamHandlers handlers) = 0;
  // Closes the idle connections to this backend (it restarted or left).
  virtual void DropIdle(const BaseUrl& url) = 0;
  // Every address of `host` (a headless Service's name gives one per pod), as "ip" strings;
  // `done` runs on the I/O thread.
  virtual void Resolve(const std::string& host, const std::string& port,
                       std::function<void(StatusOr<std::vector<std::string>>)> done) = 0;
};

}  // namespace inferd::router
