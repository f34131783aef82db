// The gRPC API (proto/inferd/v1/generation.proto, docs/grpc.md): service inferd.v1.Generation,
// the standard grpc.health.v1.Health and server reflection, on their own port.
//
// gRPC C++ runs the calls on its own threads (the callback API). Each call becomes an
// HttpRequest (the OpenAI JSON body built from the proto message) handed to `dispatch`,
// which must run it through the server's routes on the I/O thread; the GrpcFrontend's
// HttpExchange stands in for the HTTP response and turns what the route writes (a JSON
// body, or server-sent events) back into proto messages. So one place validates requests,
// checks the API key, counts metrics and applies timeouts, whatever the transport.
//
// A cancelled call, or one whose deadline passed, tells its exchange that the client went
// away (on the I/O thread, through `post`), which aborts the engine request. A stream whose
// client leaves more than max_queued_bytes unread is ended with RESOURCE_EXHAUSTED and its
// request aborted.
//
// No gRPC header is visible here: the server's other files do not compile them.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "inferd/status.h"
#include "server/http.h"

namespace inferd::server {

struct GrpcOptions {
  std::string host = "0.0.0.0";
  int port = 0;                          // 0: pick a free port (see GrpcFrontend::port())
  size_t max_message_bytes = 64u << 20;  // largest request message
  size_t max_queued_bytes = 16u << 20;   // unread stream output before the call is ended
  bool access_log = true;                // a log line per finished call
};

class GrpcFrontend {
 public:
  // Runs a request through the routes; called on the I/O thread.
  using Dispatch = std::function<void(const HttpRequest&, std::shared_ptr<HttpExchange>)>;
  // Runs `fn` on the I/O thread (HttpServer::Post).
  using Post = std::function<void(std::function<void()>)>;

  // Binds and starts serving (errors when the port is taken).
  static StatusOr<std::unique_ptr<GrpcFrontend>> Start(const GrpcOptions& options, Dispatch dispatch, Post post);
  virtual ~GrpcFrontend() = default;

  virtual int port() const = 0;
  // grpc.health.v1 answers SERVING for "" and "inferd.v1.Generation" once set (the model
  // loaded), NOT_SERVING before and after shutdown begins. Any thread.
  virtual void SetServing(bool serving) = 0;
  // Stops accepting calls, gives running ones `grace_s` to finish, cancels the rest and
  // waits for them. Call before the I/O thread's loop and the routes go away.
  virtual void Shutdown(double grace_s) = 0;
};

}  // namespace inferd::server
