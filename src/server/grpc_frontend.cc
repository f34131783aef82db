// The gRPC API (grpc_frontend.h, docs/grpc.md). One generic bidi reactor serves every method:
// gRPC hands it the raw request bytes, grpc_convert.h turns them into a request for the
// routes, and the route's answer back into response bytes. No libprotobuf (see protowire.h).
#include "server/grpc_frontend.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "server/grpc_convert.h"
#include "util/logging.h"

namespace inferd::server {
namespace proto {
// protoc's FileDescriptorSet of proto/inferd/v1/generation.proto, compiled in (for reflection).
std::string_view GenerationDescriptorSet();
}  // namespace proto
namespace {

namespace conv = grpc_convert;
using Clock = std::chrono::steady_clock;

enum class Method { kGenerate, kGenerateStream, kTokenize, kHealth, kReflection, kUnknown };

Method MethodOf(const std::string& path) {
  if (path == "/inferd.v1.Generation/Generate") return Method::kGenerate;
  if (path == "/inferd.v1.Generation/GenerateStream") return Method::kGenerateStream;
  if (path == "/inferd.v1.Generation/Tokenize") return Method::kTokenize;
  if (path == "/inferd.v1.Generation/Health") return Method::kHealth;
  if (path == "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo" ||
      path == "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") {
    return Method::kReflection;
  }
  return Method::kUnknown;
}

std::string ToString(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

grpc::ByteBuffer ToBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// ---- the call ----------------------------------------------------------------------------------
//
// What the reactor (gRPC's threads) and the exchange (the I/O thread) share. Every call must be
// finished exactly once, by whoever gets there first: the exchange (the route answered), a
// cancellation (the client cancelled, the deadline passed, the server shuts down) or a failed
// write. `finished` records that under the lock; the reactor lives until Finish has been called
// and its operations completed (then OnDone deletes it), so whoever set `finished` may still
// call it. Writes go out one at a time: `writing` is set while gRPC holds `current`, later
// messages wait in `queue`.
class Call;
struct Link {
  std::mutex mu;
  Call* reactor = nullptr;
  bool finished = false, writing = false, end_requested = false;
  grpc::Status end_status;
  grpc::ByteBuffer current;
  std::deque<std::string> queue;
  size_t queued_bytes = 0;
  std::function<void()> on_cancel;  // tells the exchange, through the I/O thread
};

class Service;

class Call final : public grpc::ServerGenericBidiReactor {
 public:
  Call(grpc::GenericCallbackServerContext* ctx, Service* service);

  const std::shared_ptr<Link>& link() const { return link_; }

  // Queues a response message (any thread). False when more than `max_queued` bytes wait
  // unread: the call then ends with RESOURCE_EXHAUSTED, and the caller aborts its request.
  static bool Push(Link& link, std::string bytes, size_t max_queued);
  // Finishes after the queued messages (any thread); later Push and End calls do nothing.
  static void End(Link& link, grpc::Status s);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Logs and finishes the call: the last thing a caller does with the reactor (it may be
  // deleted on another thread as soon as Finish has been called).
  void FinishWith(grpc::Status s);
  void Reflect();

  std::shared_ptr<Link> link_ = std::make_shared<Link>();
  grpc::GenericCallbackServerContext* ctx_;
  Service* service_;
  Method method_;
  grpc::ByteBuffer in_;
  Clock::time_point start_ = Clock::now();
};

// ---- exchanges: the HTTP response side of a call, on the I/O thread -----------------------------

// The response side of a call (the I/O thread): the routes answer into it.
class ExchangeBase : public RelayExchange {
 public:
  explicit ExchangeBase(std::shared_ptr<Link> link) : link_(std::move(link)) {}
  size_t pending_bytes() const override { return 0; }

 protected:
  std::shared_ptr<Link> link_;
};

// A unary call: the route's one response becomes the response message (through `fill`, which
// converts a 200 body) or the call's error status.
class UnaryExchange final : public ExchangeBase {
 public:
  // The response message for a 200 body, or nullopt when the body is not what it should be.
  using Fill = std::function<std::optional<std::string>(int status, const std::string& body)>;
  UnaryExchange(std::shared_ptr<Link> link, Fill fill) : ExchangeBase(std::move(link)), fill_(std::move(fill)) {}

  void Respond(int status, std::string, std::string body, HttpHeaders) override {
    if (gone_ || ended_) return;
    ended_ = true;
    std::optional<std::string> message = fill_(status, body);
    if (message) {
      Call::Push(*link_, std::move(*message), SIZE_MAX);
      return Call::End(*link_, grpc::Status::OK);
    }
    if (status == 200) return Call::End(*link_, grpc::Status(grpc::StatusCode::INTERNAL, "unexpected response from the route"));
    Call::End(*link_, conv::StatusFor(status, body));
  }
  void Write(std::string) override {}  // these routes do not stream
  void End() override {
    if (!gone_ && !ended_) Call::End(*link_, grpc::Status(grpc::StatusCode::INTERNAL, "empty response"));
  }

 private:
  Fill fill_;
  bool ended_ = false;
};

// A streaming call: each server-sent event's chunk becomes a message. The one with the finish
// reason waits for the usage chunk that follows it, so the last message carries both; an error
// event ends the call with its status.
class StreamExchange final : public ExchangeBase {
 public:
  StreamExchange(std::shared_ptr<Link> link, size_t max_queued) : ExchangeBase(std::move(link)), max_queued_(max_queued) {}

  void Respond(int status, std::string, std::string body, HttpHeaders) override {
    if (gone_ || ended_) return;
    // GenerateCall asks for a stream, so a whole response is only ever an error.
    EndWith(status == 200 ? grpc::Status(grpc::StatusCode::INTERNAL, "unexpected response from the route")
                          : conv::StatusFor(status, body));
  }
  void Write(std::string data) override {
    for (std::string_view e : SsePayloads(data)) {
      if (gone_ || ended_) return;
      if (e == "[DONE]") {
        FlushHeld();
        return EndWith(grpc::Status::OK);
      }
      const ojson chunk = ojson::parse(e, nullptr, false);
      if (chunk.is_object() && chunk.contains("error")) {  // ErrorEvent: the stream failed
        const int status = chunk["error"].is_object() ? chunk["error"].value("code", 500) : 500;
        FlushHeld();
        return EndWith(conv::StatusFor(status, e));
      }
      const bool usage_only = chunk.is_object() && chunk.contains("usage") && chunk["usage"].is_object() &&
                              chunk.value("choices", ojson::array()).empty();
      if (usage_only && held_) {
        conv::AddChunk(chunk, &*held_);
        FlushHeld();
        continue;
      }
      conv::Completion m;
      conv::AddChunk(chunk, &m);
      if (m.Empty()) continue;  // the opening chunk (role, prompt ids): nothing for this API
      FlushHeld();
      if (!m.finish_reason.empty()) {
        held_ = std::move(m);
      } else {
        Send(m);
      }
    }
  }
  void End() override {
    if (gone_ || ended_) return;
    FlushHeld();
    EndWith(grpc::Status::OK);
  }

 private:
  void Send(const conv::Completion& m) {
    if (!Call::Push(*link_, m.Encode(), max_queued_)) Gone();  // a slow reader: abort the request
  }
  void FlushHeld() {
    if (held_) Send(*std::exchange(held_, std::nullopt));
  }
  void EndWith(grpc::Status s) {
    ended_ = true;
    Call::End(*link_, std::move(s));
  }

  size_t max_queued_;
  bool ended_ = false;
  std::optional<conv::Completion> held_;
};

// ---- the service ------------------------------------------------------------------------------

class Service final : public grpc::CallbackGenericService {
 public:
  Service(const GrpcOptions& options, GrpcFrontend::Dispatch dispatch, GrpcFrontend::Post post)
      : options_(options), dispatch_(std::move(dispatch)), post_(std::move(post)) {}

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new Call(ctx, this);
  }

  const GrpcOptions& options() const { return options_; }

  // The request message of an inferd.v1 call: run it through the routes.
  void Start(Method method, grpc::GenericCallbackServerContext* ctx, const std::shared_ptr<Link>& link,
             const std::string& message) {
    conv::HttpCall call;
    std::shared_ptr<ExchangeBase> ex;
    switch (method) {
      case Method::kGenerate:
      case Method::kGenerateStream: {
        const bool stream = method == Method::kGenerateStream;
        call = conv::GenerateCall(message, stream);
        if (stream) {
          ex = std::make_shared<StreamExchange>(link, options_.max_queued_bytes);
        } else {
          ex = std::make_shared<UnaryExchange>(link, [](int status, const std::string& body) -> std::optional<std::string> {
            if (status != 200) return std::nullopt;
            std::optional<conv::Completion> c = conv::CompletionOf(ojson::parse(body, nullptr, false));
            return c ? std::optional(c->Encode()) : std::nullopt;
          });
        }
        break;
      }
      case Method::kTokenize:
        call = conv::TokenizeCall(message);
        ex = std::make_shared<UnaryExchange>(link, [](int status, const std::string& body) -> std::optional<std::string> {
          return status == 200 ? conv::TokenizeResponseOf(ojson::parse(body, nullptr, false)) : std::nullopt;
        });
        break;
      case Method::kHealth:
        call = conv::HealthCall(message);
        ex = std::make_shared<UnaryExchange>(link, [](int status, const std::string& body) -> std::optional<std::string> {
          if (status == 200) return conv::HealthResponse(true, "");
          if (status == 503) return conv::HealthResponse(false, conv::StatusFor(status, body).error_message());
          return std::nullopt;
        });
        break;
      default: return Call::End(*link, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "unknown method"));
    }
    if (!call.error.empty()) return Call::End(*link, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, call.error));

    HttpRequest r;
    r.method = method == Method::kHealth ? "GET" : "POST";
    r.path = std::move(call.path);
    r.body = std::move(call.body);
    r.remote = ctx->peer();
    if (!r.body.empty()) r.headers["content-type"] = "application/json";
    const auto& md = ctx->client_metadata();
    if (auto it = md.find("authorization"); it != md.end()) {
      r.headers["authorization"] = std::string(it->second.data(), it->second.size());
    }
    std::weak_ptr<ExchangeBase> weak = ex;
    {
      std::lock_guard lock(link->mu);
      link->on_cancel = [post = post_, weak] {
        post([weak] {
          if (auto e = weak.lock()) e->Gone();
        });
      };
    }
    post_([dispatch = dispatch_, r = std::move(r), ex] { dispatch(r, ex); });
  }

 private:
  GrpcOptions options_;
  GrpcFrontend::Dispatch dispatch_;
  GrpcFrontend::Post post_;
};

Call::Call(grpc::GenericCallbackServerContext* ctx, Service* service)
    : ctx_(ctx), service_(service), method_(MethodOf(ctx->method())) {
  link_->reactor = this;
  if (method_ == Method::kUnknown) {
    End(*link_, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, fmt::format("unknown method {}", ctx->method())));
    return;
  }
  StartRead(&in_);
}

bool Call::Push(Link& link, std::string bytes, size_t max_queued) {
  Call* start = nullptr;
  bool overflow = false;
  {
    std::lock_guard lock(link.mu);
    if (link.finished || link.end_requested) return true;
    if (link.writing) {
      link.queued_bytes += bytes.size();
      link.queue.push_back(std::move(bytes));
      if (link.queued_bytes > max_queued) {
        overflow = true;
        link.queue.clear();
        link.queued_bytes = 0;
        link.end_requested = true;  // finished when the write in flight completes
        link.end_status = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                       fmt::format("the client left more than {} bytes of the stream unread", max_queued));
      }
    } else {
      link.writing = true;
      link.current = ToBuffer(bytes);
      start = link.reactor;
    }
  }
  if (start) start->StartWrite(&start->link_->current);
  return !overflow;
}

void Call::End(Link& link, grpc::Status s) {
  Call* finish = nullptr;
  {
    std::lock_guard lock(link.mu);
    if (link.finished || link.end_requested) return;
    link.end_requested = true;
    link.end_status = s;
    if (!link.writing) {
      link.finished = true;
      finish = link.reactor;
    }
  }
  if (finish) finish->FinishWith(std::move(s));
}

void Call::OnReadDone(bool ok) {
  if (method_ == Method::kReflection) return ok ? Reflect() : End(*link_, grpc::Status::OK);
  if (!ok) return End(*link_, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the call sent no request message"));
  service_->Start(method_, ctx_, link_, ToString(in_));
}

// grpc.reflection: one response per request, until the client closes its side.
void Call::Reflect() {
  Push(*link_, conv::ReflectionResponse(ToString(in_), proto::GenerationDescriptorSet()), service_->options().max_queued_bytes);
  StartRead(&in_);
}

void Call::OnWriteDone(bool ok) {
  bool write = false, finish = false;
  grpc::Status status;
  {
    std::lock_guard lock(link_->mu);
    link_->writing = false;
    if (!ok) {  // the call broke (cancelled): nothing more can be written
      link_->queue.clear();
      link_->queued_bytes = 0;
      if (!link_->end_requested) {
        link_->end_requested = true;
        link_->end_status = grpc::Status::CANCELLED;
      }
    }
    if (!link_->queue.empty()) {
      std::string next = std::move(link_->queue.front());
      link_->queue.pop_front();
      link_->queued_bytes -= std::min(link_->queued_bytes, next.size());
      link_->current = ToBuffer(next);
      link_->writing = write = true;  // a cancellation now waits for this write (OnCancel)
    } else if (link_->end_requested && !link_->finished) {
      link_->finished = finish = true;
      status = link_->end_status;
    }
  }
  if (write) StartWrite(&link_->current);
  if (finish) FinishWith(std::move(status));
}

void Call::OnCancel() {
  bool finish = false;
  grpc::Status status;
  std::function<void()> notify;
  {
    std::lock_guard lock(link_->mu);
    link_->queue.clear();
    link_->queued_bytes = 0;
    if (!link_->end_requested) {
      link_->end_requested = true;
      link_->end_status = grpc::Status::CANCELLED;
    }
    if (!link_->writing && !link_->finished) {
      link_->finished = finish = true;
      status = link_->end_status;
    }
    notify = link_->on_cancel;
  }
  if (notify) notify();
  if (finish) FinishWith(std::move(status));
}

void Call::OnDone() {
  {
    std::lock_guard lock(link_->mu);
    link_->reactor = nullptr;
  }
  delete this;
}

void Call::FinishWith(grpc::Status s) {
  if (service_->options().access_log) {
    const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    INFERD_LOG_INFO("{} - \"gRPC {}\" {} {:.3f}s", ctx_->peer(), ctx_->method(),
                    s.ok() ? std::string("OK") : fmt::format("code {}", static_cast<int>(s.error_code())), seconds);
  }
  Finish(s);
}

class Frontend final : public GrpcFrontend {
 public:
  Frontend(std::unique_ptr<Service> service, std::unique_ptr<grpc::Server> server, int port)
      : service_(std::move(service)), server_(std::move(server)), port_(port) {}
  ~Frontend() override { Shutdown(0); }

  int port() const override { return port_; }
  void SetServing(bool serving) override {
    std::lock_guard lock(mu_);
    if (shut_down_) return;
    if (grpc::HealthCheckServiceInterface* h = server_->GetHealthCheckService()) {
      h->SetServingStatus(serving);  // every service name, "" included
      h->SetServingStatus(conv::kServiceNames[0], serving);
    }
  }
  void Shutdown(double grace_s) override {
    {
      std::lock_guard lock(mu_);
      if (shut_down_) return;
      shut_down_ = true;
      if (grpc::HealthCheckServiceInterface* h = server_->GetHealthCheckService()) h->Shutdown();
    }
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(grace_s * 1000)));
    server_->Wait();
  }

 private:
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_;
  std::mutex mu_;
  bool shut_down_ = false;
};

}  // namespace

StatusOr<std::unique_ptr<GrpcFrontend>> GrpcFrontend::Start(const GrpcOptions& options, Dispatch dispatch, Post post) {
  grpc::EnableDefaultHealthCheckService(true);
  auto service = std::make_unique<Service>(options, std::move(dispatch), std::move(post));
  const std::string host = options.host.find(':') != std::string::npos ? "[" + options.host + "]" : options.host;
  const std::string address = fmt::format("{}:{}", host, options.port);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterCallbackGenericService(service.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<size_t>(options.max_message_bytes, INT_MAX)));
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a port someone holds fails here, not shared
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return Status(StatusCode::kUnavailable, fmt::format("--grpc-port: cannot listen on {}", address));
  auto frontend = std::make_unique<Frontend>(std::move(service), std::move(server), port);
  frontend->SetServing(false);  // until the model has loaded
  return std::unique_ptr<GrpcFrontend>(std::move(frontend));
}

}  // namespace inferd::server
