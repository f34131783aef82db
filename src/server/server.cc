#include "server/server.h"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "engine/chat_prompt.h"
#include "server/beam_run.h"
#include "server/grpc_frontend.h"
#include "server/metrics.h"
#include "server/openai.h"
#include "server/web/chat_page.h"
#include "server/ws_session.h"
#include "util/url.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/logging.h"
#include "util/work_queue.h"

namespace inferd::server {
namespace {

constexpr const char* kVersion = "0.1.0";
constexpr const char* kJson = "application/json";

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int HttpStatusFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kNotFound:
    case StatusCode::kFailedPrecondition: return 400;
    case StatusCode::kResourceExhausted:
    case StatusCode::kUnavailable:
    case StatusCode::kAborted: return 503;
    default: return 500;
  }
}

// Workers for request preparation: enough that one slow template or long prompt does
// not hold up the others, few enough not to compete with the engine's compute threads.
int PrepThreads() {
  const unsigned hw = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp(hw / 2, 2u, 8u));
}

// One HTTP generation request: one engine request per prompt.
struct Generation {
  ParsedRequest req;
  std::unique_ptr<ResponseBuilder> builder;
  std::shared_ptr<HttpExchange> ex;
  std::vector<std::string> engine_ids;
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<std::optional<RequestOutput>> finals;
  std::vector<double> last_token_time;  // per prompt, sample 0: for inter-token latency
  size_t num_final = 0;
  std::optional<std::pair<int, std::string>> error;
  bool timed_out = false, done = false;
  int64_t completion_tokens = 0;
  std::string route;
  std::string internal_id;  // ours, unique; the engine ids are "<internal_id>-<prompt index>"
  std::shared_ptr<BeamRun> beam;  // use_beam_search: the search in progress (no streams)
};

class Server {
 public:
  explicit Server(ServeOptions options) : options_(std::move(options)) {}

  int Run(EngineFactory factory) {
    HttpServerOptions http = options_.http;
    // Until the model (and so the context) is known every request is a 503 anyway.
    if (http.max_body_bytes == 0) http.max_body_bytes = 1u << 20;
    max_body_bytes_ = http.max_body_bytes;
    http.error_body = [](int status, const std::string& message) { return ErrorBody(status, message); };
    if (options_.access_log) {
      http.on_complete = [](const HttpRequest& r, int status, double seconds) {
        INFERD_LOG_INFO("{} - \"{} {}\" {} {:.3f}s", r.remote, r.method, r.path, status, seconds);
      };
    }
    auto created = HttpServer::Create(http, [this](const HttpRequest& r, std::shared_ptr<HttpExchange> ex) {
      Handle(r, std::move(ex));
    });
    if (!created.ok()) {
      INFERD_LOG_ERROR("{}", created.status().message());
      return 1;
    }
    http_ = std::move(*created);
    http_->OnSignal([this](int sig) { OnSignal(sig); });
    if (options_.grpc_port >= 0 && !StartGrpc()) return 1;
    loader_ = std::thread([this, factory = std::move(factory)] { Load(factory); });
    if (options_.http.uds.empty()) {
      INFERD_LOG_INFO("Starting server on http://{}:{} (loading the model; /health answers 503 until ready)",
                      options_.http.host, http_->port());
    } else {
      INFERD_LOG_INFO("Starting server on unix socket {}", options_.http.uds);
    }
    http_->Run();
    // Calls still running (a second signal, a failed load) are cancelled; finished ones flush.
    if (grpc_) grpc_->Shutdown(1.0);
    // Sockets still open hold their sessions (and the sessions them): let go of both.
    for (auto& [ptr, weak] : std::exchange(ws_sessions_, {})) {
      if (auto session = weak.lock()) session->OnClose();
    }
    cancel_renders_ = true;
    prep_.Stop();  // after the loop: its tasks post to it
    if (loader_.joinable()) loader_.join();
    if (shutdown_thread_.joinable()) shutdown_thread_.join();
    if (engine_) engine_->Shutdown();
    return exit_code_.load();
  }

 private:
  // ---- start-up and shutdown --------------------------------------------------------------

  void Load(const EngineFactory& factory) {
    StatusOr<std::unique_ptr<Engine>> loaded = factory();
    if (!loaded.ok()) {
      INFERD_LOG_ERROR("{}", loaded.status().message());
      exit_code_ = 1;
      http_->Post([this] { http_->Stop(); });
      return;
    }
    const Engine& c = **loaded;
    ModelInfo info;
    info.served_names = options_.served_model_names;
    if (info.served_names.empty()) info.served_names.push_back(c.model().path);
    info.max_model_len = c.max_model_len();
    info.vocab_size = c.vocab_size();
    size_t max_token_bytes = 1;
    for (int32_t id = 0; id < c.tokenizer().vocab_size(); ++id) {
      max_token_bytes = std::max(max_token_bytes, c.tokenizer().TokenToPiece(id, false).size());
    }
    info.max_prompt_bytes = PromptByteBound(info.max_model_len, max_token_bytes);
    info.trust_request_chat_template = options_.trust_request_chat_template;
    if (options_.enable_auto_tool_choice) info.tool_call_parser = options_.tool_call_parser;
    info.reasoning_parser = options_.reasoning_parser;
    if (options_.generation_config == "auto") {
      info.defaults = c.model().generation;
    } else if (options_.generation_config != "vllm") {
      StatusOr<GenerationDefaults> d = LoadGenerationConfig(options_.generation_config);
      if (!d.ok()) {
        INFERD_LOG_ERROR("--generation-config: {}", d.status().message());
        exit_code_ = 1;
        http_->Post([this] { http_->Stop(); });
        return;
      }
      info.defaults = *d;
    }
    std::unique_ptr<ChatPrompter> prompter;
    auto p = ChatPrompter::Create(c.tokenizer(), options_.chat_template);
    if (p.ok()) {
      prompter = std::move(*p);
    } else if (!options_.chat_template.empty()) {
      INFERD_LOG_ERROR("--chat-template: {}", p.status().message());
      exit_code_ = 1;
      http_->Post([this] { http_->Stop(); });
      return;
    } else {
      INFERD_LOG_WARN("{}; /v1/chat/completions will answer 400", p.status().message());
    }
    // Handed to the I/O thread in one piece (std::function needs a copyable closure).
    struct Ready {
      ModelInfo info;
      std::unique_ptr<ChatPrompter> prompter;
      std::unique_ptr<metrics::ServerMetrics> metrics;
      std::unique_ptr<AsyncEngine> engine;
    };
    auto ready = std::make_shared<Ready>();
    ready->metrics = std::make_unique<metrics::ServerMetrics>(info.served_names.front());
    ready->info = std::move(info);
    ready->prompter = std::move(prompter);
    ready->engine = std::make_unique<AsyncEngine>(std::move(*loaded), options_.stats_interval_s);
    http_->Post([this, ready] {
      info_ = std::move(ready->info);
      if (options_.http.max_body_bytes == 0) {
        max_body_bytes_ = DefaultMaxBodyBytes(info_.max_prompt_bytes);
        http_->SetMaxBodyBytes(max_body_bytes_);
        INFERD_LOG_INFO("request bodies up to {} bytes (--max-request-body; sized to a {}-token context)",
                        max_body_bytes_, info_.max_model_len);
      }
      prompter_ = std::move(ready->prompter);
      metrics_ = std::move(ready->metrics);
      engine_ = std::move(ready->engine);
      if (stopping_) {
        BeginShutdown();
        return;
      }
      INFERD_LOG_INFO("Serving model '{}' (max model length {}); ready", info_.served_names.front(),
                      info_.max_model_len);
      if (grpc_) grpc_->SetServing(true);
      INFERD_LOG_INFO("Application startup complete.");
    });
  }

  void OnSignal(int sig) {
    if (stopping_) {
      INFERD_LOG_WARN("second signal: exiting now");
      http_->Stop();
      return;
    }
    INFERD_LOG_INFO("{} received: shutting down (draining in-flight requests for up to {:.0f} s)",
                    sig == SIGINT ? "SIGINT" : "SIGTERM", options_.shutdown_timeout_s);
    stopping_ = true;
    cancel_renders_ = true;  // a chat template still rendering stops now
    if (grpc_) grpc_->SetServing(false);
    http_->StopAccepting();
    for (auto& [ptr, weak] : ws_sessions_) {
      if (auto session = weak.lock()) session->CloseWhenIdle();
    }
    if (engine_) BeginShutdown();  // else the loader calls it when done
  }

  void BeginShutdown() {
    auto drain = std::chrono::milliseconds(static_cast<int64_t>(options_.shutdown_timeout_s * 1000));
    shutdown_thread_ = std::thread([this, drain] {
      engine_->Shutdown(drain);  // every stream gets its final output
      http_->Post([this] { WaitForResponsesThenStop(0); });
    });
  }

  void WaitForResponsesThenStop(int attempt) {
    // Finals were posted before this; give the connections a moment to flush them.
    // WebSockets close (1001) once their requests ended; their last messages are out then.
    if ((http_->num_active_exchanges() == 0 && in_flight_.empty() && ws_sessions_.empty()) || attempt >= 50) {
      INFERD_LOG_INFO("Shutdown complete.");
      http_->Stop();
      return;
    }
    http_->After(0.1, [this, attempt] { WaitForResponsesThenStop(attempt + 1); });
  }

  // ---- routing ---------------------------------------------------------------------------

  void Handle(const HttpRequest& r, std::shared_ptr<HttpExchange> ex) {
    const bool v1 = r.path.rfind("/v1/", 0) == 0;
    if (v1 && !options_.api_key.empty()) {
      const std::string auth = Authorization(r);
      if (auth.empty()) return SendError(ex, 401, "Missing API key: send 'Authorization: Bearer <key>'");
      if (auth != "Bearer " + options_.api_key) return SendError(ex, 401, "Incorrect API key provided");
    }
    const bool generation = r.method == "POST" && (r.path == "/v1/completions" || r.path == "/v1/chat/completions");
    if (generation && options_.inject_error_rate > 0 && std::uniform_real_distribution<double>(0, 1)(fault_rng_) <
                                                            options_.inject_error_rate) {
      return SendError(ex, 500, "injected fault (--inject-error-rate)");
    }
    if (generation && options_.inject_delay_s > 0) {
      return http_->After(options_.inject_delay_s, [this, r, ex] {
        if (!ex->client_gone()) Dispatch(r, ex);
      });
    }
    Dispatch(r, ex);
  }

  void Dispatch(const HttpRequest& r, std::shared_ptr<HttpExchange> ex) {
    struct Route {
      const char* method;
      const char* path;
      void (Server::*fn)(const HttpRequest&, std::shared_ptr<HttpExchange>);
    };
    static const Route routes[] = {
        {"POST", "/v1/completions", &Server::Completions},
        {"POST", "/v1/chat/completions", &Server::ChatCompletions},
        {"GET", "/v1/models", &Server::Models},
        {"POST", "/tokenize", &Server::Tokenize},
        {"POST", "/detokenize", &Server::Detokenize},
        {"GET", "/health", &Server::Health},
        {"GET", "/metrics", &Server::Metrics},
        {"GET", "/version", &Server::Version},
        {"GET", "/", &Server::ChatPage},
        {"GET", "/v1/ws", &Server::WebSocketRoute},
    };
    bool path_known = false;
    for (const Route& route : routes) {
      if (r.path != route.path) continue;
      path_known = true;
      if (r.method == route.method) {
        try {
          (this->*route.fn)(r, ex);
        } catch (const ApiError& e) {
          SendError(ex, e.status, e.message, e.param);
        } catch (const std::exception& e) {
          INFERD_LOG_ERROR("{} {}: {}", r.method, r.path, e.what());
          SendError(ex, 500, std::string("internal error: ") + e.what());
        }
        return;
      }
    }
    if (path_known) return SendError(ex, 405, fmt::format("method {} is not allowed for {}", r.method, r.path));
    SendError(ex, 404, fmt::format("Not Found: {} {}", r.method, r.path));
  }

  // The Authorization header, or for GET /v1/ws (browsers cannot set headers on a
  // WebSocket) "Bearer " + the api_key query parameter.
  static std::string Authorization(const HttpRequest& r) {
    std::string auth = r.Header("authorization");
    if (auth.empty() && r.path == "/v1/ws") {
      if (std::optional<std::string> key = QueryParam(r.query, "api_key"); key && !key->empty()) auth = "Bearer " + *key;
    }
    return auth;
  }

  void SendJson(const std::shared_ptr<HttpExchange>& ex, int status, const std::string& body) {
    ex->Respond(status, kJson, body);
  }
  void SendError(const std::shared_ptr<HttpExchange>& ex, int status, const std::string& message,
                 const std::string& param = {}) {
    HttpHeaders extra;
    if (status == 503 || status == 429) extra.emplace_back("Retry-After", "1");
    if (status == 401) extra.emplace_back("WWW-Authenticate", "Bearer");
    ex->Respond(status, kJson, ErrorBody(status, message, param), std::move(extra));
  }

  // Throws 503 while the model loads or after the engine stopped.
  AsyncEngine& ReadyEngine() {
    if (!engine_) throw ApiError(503, "the model is still loading");
    if (stopping_) throw ApiError(503, "the server is shutting down");
    return *engine_;
  }

  // Work that must not run on the I/O thread (JSON parsing, chat templates, tokenizing)
  // goes to the prep queue; what it returns runs back on the I/O thread to answer. Errors
  // thrown by `work` are answered like those of a route.
  using Continuation = std::function<void(const std::shared_ptr<HttpExchange>&)>;
  void OffThread(const HttpRequest& r, const std::shared_ptr<HttpExchange>& ex, std::function<Continuation()> work) {
    const std::string what = r.method + " " + r.path;
    const bool queued = prep_.TrySubmit([this, ex, what, work = std::move(work)] {
      Continuation done;
      std::optional<ApiError> error;
      try {
        done = work();
      } catch (const ApiError& e) {
        error = e;
      } catch (const std::exception& e) {
        INFERD_LOG_ERROR("{}: {}", what, e.what());
        error = ApiError(500, std::string("internal error: ") + e.what());
      }
      http_->Post([this, ex, done = std::move(done), error = std::move(error)] {
        if (ex->client_gone()) return;
        // A render cancelled by SIGTERM reports the shutdown, not a template error.
        if (error && stopping_) return SendError(ex, 503, "the server is shutting down");
        if (error) return SendError(ex, error->status, error->message, error->param);
        try {
          done(ex);
        } catch (const ApiError& e) {
          SendError(ex, e.status, e.message, e.param);
        }
      });
    });
    if (!queued) {
      throw ApiError(503, fmt::format("the server is overloaded: {} requests are waiting to be parsed", prep_.num_waiting()));
    }
  }

  // ---- gRPC (server/grpc_frontend.h, docs/grpc.md) --------------------------------------------

  bool StartGrpc() {
    GrpcOptions o;
    o.host = options_.http.host;
    o.port = options_.grpc_port;
    if (options_.http.max_body_bytes > 0) o.max_message_bytes = options_.http.max_body_bytes;
    o.max_queued_bytes = options_.ws_max_queued_bytes;
    o.access_log = options_.access_log;
    auto started = GrpcFrontend::Start(
        o, [this](const HttpRequest& r, std::shared_ptr<HttpExchange> ex) { Handle(r, std::move(ex)); },
        [this](std::function<void()> fn) { http_->Post(std::move(fn)); });
    if (!started.ok()) {
      INFERD_LOG_ERROR("{}", started.status().message());
      return false;
    }
    grpc_ = std::move(*started);
    INFERD_LOG_INFO("gRPC API (inferd.v1.Generation, grpc.health.v1, reflection) on {}:{}", options_.http.host,
                    grpc_->port());
    return true;
  }

  // ---- WebSocket (server/ws_session.h, docs/websocket.md) -----------------------------------

  void WebSocketRoute(const HttpRequest& r, std::shared_ptr<HttpExchange> ex) {
    if (!r.IsWebSocketUpgrade()) {
      return ex->Respond(426, kJson,
                         ErrorBody(426, "GET /v1/ws is a WebSocket endpoint: send 'Upgrade: websocket' and "
                                        "'Connection: Upgrade' (docs/websocket.md)"),
                         {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}});
    }
    if (stopping_) return SendError(ex, 503, "the server is shutting down");
    // A page from another site must not use this server through the visitor's browser: the
    // CORS origins apply to WebSockets too (browsers do not check them here).
    const std::string origin = r.Header("origin");
    if (!origin.empty() && !options_.http.cors.AllowsOrigin(origin)) {
      return SendError(ex, 403, fmt::format("origin '{}' is not allowed (--allowed-origins)", origin));
    }
    auto session = std::make_shared<WsSession>(
        r, Authorization(r), [this](const HttpRequest& req, std::shared_ptr<HttpExchange> e) { Handle(req, std::move(e)); },
        WsSessionLimits{});
    WebSocketOptions o;
    o.max_message_bytes = max_body_bytes_ + 4096;  // a request body plus the envelope
    o.ping_interval_s = options_.ws_ping_interval_s;
    o.max_pending_bytes = options_.ws_max_queued_bytes;
    std::weak_ptr<WsSession> weak = session;
    WebSocketCallbacks cb;
    cb.on_message = [weak](std::string text) {
      if (auto s = weak.lock()) s->OnMessage(text);
    };
    cb.on_close = [this, session](int) {
      session->OnClose();
      ws_sessions_.erase(session.get());
    };
    std::shared_ptr<WebSocket> ws = ex->AcceptWebSocket(o, std::move(cb));
    if (!ws) return SendError(ex, 400, "the WebSocket upgrade could not be accepted");
    session->Attach(std::move(ws));
    ws_sessions_[session.get()] = session;
  }

  // ---- simple routes ---------------------------------------------------------------------

  void Health(const HttpRequest&, std::shared_ptr<HttpExchange> ex) {
    if (!engine_) return SendError(ex, 503, "the model is still loading");
    if (!engine_->Snapshot().alive) return SendError(ex, 503, "the engine has stopped");
    ex->Respond(200, kJson, "");
  }

  // The page talks to this server only (its own origin), and never loads anything else.
  void ChatPage(const HttpRequest&, std::shared_ptr<HttpExchange> ex) {
    ex->Respond(200, "text/html; charset=utf-8", std::string(web::ChatPageHtml()),
                {{"Content-Security-Policy",
                  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
                  "connect-src 'self'; base-uri 'none'; form-action 'none'"},
                 {"Cache-Control", "no-cache"}});
  }

  void Version(const HttpRequest&, std::shared_ptr<HttpExchange> ex) {
    SendJson(ex, 200, Dump(ojson{{"version", kVersion}}));
  }

  void Metrics(const HttpRequest&, std::shared_ptr<HttpExchange> ex) {
    if (!metrics_) return SendError(ex, 503, "the model is still loading");
    metrics_->UpdateFromEngine(engine_->Snapshot());
    ex->Respond(200, std::string(metrics::kContentType), metrics_->Render());
  }

  void Models(const HttpRequest&, std::shared_ptr<HttpExchange> ex) {
    ReadyEngine();
    ojson data = ojson::array();
    for (const std::string& name : info_.served_names) {
      data.push_back({{"id", name},
                      {"object", "model"},
                      {"created", static_cast<int64_t>(Now())},
                      {"owned_by", "inferd"},
                      {"root", engine_->engine().model().path},
                      {"parent", nullptr},
                      {"max_model_len", info_.max_model_len}});
    }
    SendJson(ex, 200, Dump(ojson{{"object", "list"}, {"data", data}}));
  }

  void Tokenize(const HttpRequest& r, std::shared_ptr<HttpExchange> ex) {
    const Tokenizer& tok = ReadyEngine().engine().tokenizer();
    OffThread(r, ex, [this, body = r.body, &tok]() -> Continuation {
      std::string out = TokenizeResponse(ParseRequestBody(body), info_, tok, prompter_.get(), &cancel_renders_);
      return [out = std::move(out)](const std::shared_ptr<HttpExchange>& ex) { ex->Respond(200, kJson, out); };
    });
  }

  void Detokenize(const HttpRequest& r, std::shared_ptr<HttpExchange> ex) {
    const Tokenizer& tok = ReadyEngine().engine().tokenizer();
    OffThread(r, ex, [this, body = r.body, &tok]() -> Continuation {
      std::string out = DetokenizeResponse(ParseRequestBody(body), info_, tok);
      return [out = std::move(out)](const std::shared_ptr<HttpExchange>& ex) { ex->Respond(200, kJson, out); };
    });
  }

  // ---- generation ------------------------------------------------------------------------

  void Completions(const HttpRequest& r, std::shared_ptr<HttpExchange> ex) { Generate(r, std::move(ex), false); }
  void ChatCompletions(const HttpRequest& r, std::shared_ptr<HttpExchange> ex) { Generate(r, std::move(ex), true); }

  void Generate(const HttpRequest& r, std::shared_ptr<HttpExchange> ex, bool chat) {
    const Tokenizer& tok = ReadyEngine().engine().tokenizer();
    OffThread(r, ex, [this, body = r.body, chat, &tok, path = r.path]() -> Continuation {
      auto req = std::make_shared<ParsedRequest>(
          ParseGenerateRequest(ParseRequestBody(body), chat, info_, tok, prompter_.get(), &cancel_renders_));
      return [this, req, path](const std::shared_ptr<HttpExchange>& ex) { Admit(std::move(*req), path, ex); };
    });
  }

  // I/O thread: queues a parsed request on the engine and wires its streams to `ex`.
  void Admit(ParsedRequest parsed, const std::string& path, const std::shared_ptr<HttpExchange>& ex) {
    AsyncEngine& engine = ReadyEngine();
    auto g = std::make_shared<Generation>();
    g->req = std::move(parsed);
    if (options_.max_waiting_requests > 0 &&
        engine.NumQueued() + g->req.prompts.size() > static_cast<size_t>(options_.max_waiting_requests)) {
      throw ApiError(503, fmt::format("the server is overloaded: {} requests are already waiting (--max-waiting-requests {})",
                                      engine.NumQueued(), options_.max_waiting_requests));
    }
    const bool chat = g->req.chat;
    // Engine ids are always ours: a client's request_id is only a label in the response id,
    // so two clients sending the same one cannot collide.
    const std::string internal = RandomHex(32);
    const std::string id = (chat ? "chatcmpl-" : "cmpl-") + (g->req.request_id.empty() ? internal : g->req.request_id);
    g->internal_id = internal;
    g->builder = std::make_unique<ResponseBuilder>(g->req, id, static_cast<int64_t>(Now()), engine.engine().tokenizer());
    g->ex = ex;
    g->route = path;
    const size_t np = g->req.prompts.size();
    g->finals.resize(np);
    g->last_token_time.assign(np, 0);
    const double arrival = Now();
    std::weak_ptr<Generation> weak = g;
    for (size_t i = 0; i < np && !g->req.beam_search; ++i) {
      GenerateRequest er;
      er.request_id = fmt::format("{}-{}", internal, i);
      er.prompt = g->req.prompts[i].text;
      er.prompt_token_ids = g->req.prompts[i].token_ids;
      er.params = g->req.params;
      er.structured_after = g->req.structured_after;
      er.priority = g->req.priority;
      er.arrival_time = arrival;
      StatusOr<std::shared_ptr<RequestStream>> stream = engine.AddRequest(std::move(er));
      if (!stream.ok()) {
        for (const std::string& eid : g->engine_ids) engine.Abort(eid);
        // Earlier prompts' streams still end; nobody reads them.
        throw ApiError(HttpStatusFor(stream.status()), stream.status().message());
      }
      g->engine_ids.push_back((*stream)->request_id());
      g->streams.push_back(*stream);
    }
    in_flight_[internal] = g;
    if (options_.log_requests) LogRequest(*g);
    if (g->req.stream) {
      ex->StartStream(200, "text/event-stream");
      ex->Write(g->builder->StreamStart());
    }
    ex->OnClientGone([this, weak] {
      if (auto gen = weak.lock()) {
        if (options_.access_log) INFERD_LOG_INFO("client disconnected: aborting {}", gen->builder->id());
        AbortAll(*gen);
      }
    });
    if (options_.request_timeout_s > 0) {
      http_->After(options_.request_timeout_s, [this, weak] {
        auto gen = weak.lock();
        if (!gen || gen->done) return;
        gen->timed_out = true;
        AbortAll(*gen);
      });
    }
    for (auto& s : g->streams) {
      s->SetNotify([this, weak] {
        http_->Post([this, weak] {
          if (auto gen = weak.lock()) Pump(gen);
        });
      });
    }
    if (g->req.beam_search) StartBeamSearch(g);
  }

  // use_beam_search: one BeamRun searches every prompt; its result is the request's finals.
  void StartBeamSearch(const std::shared_ptr<Generation>& g) {
    const SamplingParams& p = g->req.params;
    BeamSearchParams bp;
    bp.beam_width = p.n;
    bp.max_tokens = p.max_tokens.value_or(static_cast<int>(info_.max_model_len));
    bp.ignore_eos = p.ignore_eos;
    bp.temperature = p.temperature;
    bp.length_penalty = g->req.length_penalty;
    std::vector<std::vector<int32_t>> prompts;
    for (const PromptInput& in : g->req.prompts) prompts.push_back(in.token_ids);
    std::weak_ptr<Generation> weak = g;
    g->beam = std::make_shared<BeamRun>(
        *engine_, [this](std::function<void()> fn) { http_->Post(std::move(fn)); }, g->internal_id, std::move(prompts),
        bp, g->req.priority, [this, weak](StatusOr<std::vector<RequestOutput>> result) {
          auto gen = weak.lock();
          if (gen && !gen->done) BeamSearchDone(gen, std::move(result));
        });
    g->beam->Start();
  }

  void BeamSearchDone(const std::shared_ptr<Generation>& g, StatusOr<std::vector<RequestOutput>> result) {
    g->num_final = g->finals.size();
    if (!result.ok()) {
      g->error = {HttpStatusFor(result.status()), result.status().message()};
      if (metrics_) metrics_->ObserveFinished("error", -1, -1, -1);
      return Finish(g);
    }
    for (size_t i = 0; i < result->size() && i < g->finals.size(); ++i) {
      RequestOutput& out = (*result)[i];
      for (const CompletionOutput& o : out.outputs) {
        g->completion_tokens += static_cast<int64_t>(o.token_ids.size());
        if (g->req.stream && !g->timed_out) {
          OutputDelta d;
          d.index = o.index;
          d.new_token_ids = o.token_ids;
          d.new_text = o.text;
          d.finish_reason = o.finish_reason;
          g->ex->Write(g->builder->StreamDelta(static_cast<int>(i), d));
        }
      }
      if (metrics_) metrics_->ObserveFinished(out.outputs.at(0).finish_reason.value_or("abort"), -1, -1, -1);
      g->finals[i] = std::move(out);
    }
    Finish(g);
  }

  // vLLM's --enable-log-requests line: what was asked, by whom.
  void LogRequest(const Generation& g) {
    const SamplingParams& p = g.req.params;
    size_t prompt_tokens = 0;
    for (const PromptInput& in : g.req.prompts) prompt_tokens += in.token_ids.size();
    INFERD_LOG_INFO(
        "Received request {} (engine id {}): user '{}', {} prompt(s), {} prompt tokens, n={}, temperature={}, "
        "top_p={}, top_k={}, max_tokens={}, seed={}, stream={}",
        g.builder->id(), g.internal_id, g.req.user, g.req.prompts.size(), prompt_tokens, p.n, p.temperature, p.top_p,
        p.top_k, p.max_tokens ? std::to_string(*p.max_tokens) : "none", p.seed ? std::to_string(*p.seed) : "none",
        g.req.stream);
  }

  void AbortAll(Generation& g) {
    if (!engine_) return;
    if (g.beam) g.beam->Abort();
    for (size_t i = 0; i < g.engine_ids.size(); ++i) {
      if (!g.finals[i] && !(g.error && i >= g.engine_ids.size())) engine_->Abort(g.engine_ids[i]);
    }
  }

  // Drains every stream of `g` (I/O thread) and writes what the client should see.
  void Pump(const std::shared_ptr<Generation>& g) {
    if (g->done) return;
    const double now = Now();
    for (size_t i = 0; i < g->streams.size(); ++i) {
      RequestStream::Item item;
      while (g->streams[i]->TryNext(&item)) {
        if (item.delta) {
          const OutputDelta& d = *item.delta;
          g->completion_tokens += static_cast<int64_t>(d.new_token_ids.size());
          if (d.index == 0 && !d.new_token_ids.empty()) {
            if (g->last_token_time[i] > 0 && metrics_) metrics_->ObserveInterToken(now - g->last_token_time[i]);
            g->last_token_time[i] = now;
          }
          if (g->req.stream && !g->timed_out) g->ex->Write(g->builder->StreamDelta(static_cast<int>(i), d));
        } else if (item.final) {
          ++g->num_final;
          if (!item.final->ok()) {
            if (!g->error) g->error = {HttpStatusFor(item.final->status()), item.final->status().message()};
            if (metrics_) metrics_->ObserveFinished("error", -1, -1, -1);
            continue;
          }
          RequestOutput& out = **item.final;
          const RequestMetrics& m = out.metrics;
          if (metrics_) {
            const std::string reason =
                !out.outputs.empty() && out.outputs[0].finish_reason ? *out.outputs[0].finish_reason : "abort";
            auto since = [&](double t) { return t > 0 && m.arrival_time > 0 ? t - m.arrival_time : -1.0; };
            metrics_->ObserveFinished(reason, since(m.first_scheduled_time), since(m.first_token_time),
                                      since(m.finished_time));
          }
          g->finals[i] = std::move(out);
        }
      }
    }
    if (g->num_final == g->streams.size()) Finish(g);
  }

  void Finish(const std::shared_ptr<Generation>& g) {
    g->done = true;
    in_flight_.erase(g->internal_id);
    HttpExchange& ex = *g->ex;
    std::optional<std::pair<int, std::string>> err = g->error;
    if (!err && g->timed_out) {
      err = {408, fmt::format("the request timed out after {:g} s (--request-timeout)", options_.request_timeout_s)};
    }
    if (!err && stopping_) {
      bool aborted = false;
      for (const auto& f : g->finals) {
        for (const CompletionOutput& o : f->outputs) aborted = aborted || (o.finish_reason && *o.finish_reason == "abort");
      }
      if (aborted) err = {503, "the server shut down before the request finished"};
    }
    if (g->req.stream) {
      if (err) {
        ex.Write(ErrorEvent(err->first, err->second));
        ex.Write("data: [DONE]\n\n");
      } else {
        int64_t prompt_tokens = 0, cached = 0;
        for (const auto& f : g->finals) {
          prompt_tokens += static_cast<int64_t>(f->prompt_token_ids.size());
          cached += f->num_cached_tokens;
        }
        ex.Write(g->builder->StreamEnd(prompt_tokens, g->completion_tokens, cached));
      }
      ex.End();
      return;
    }
    if (err) return SendError(g->ex, err->first, err->second);
    std::vector<RequestOutput> outs;
    outs.reserve(g->finals.size());
    for (auto& f : g->finals) outs.push_back(std::move(*f));
    SendJson(g->ex, 200, g->builder->Complete(outs));
  }

  ServeOptions options_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<GrpcFrontend> grpc_;  // --grpc-port; its calls post to http_'s I/O thread
  std::mt19937_64 fault_rng_{std::random_device{}()};  // --inject-error-rate draws (I/O thread)
  std::thread loader_, shutdown_thread_;
  std::atomic<int> exit_code_{0};
  // I/O thread only:
  bool stopping_ = false;
  ModelInfo info_;
  std::unique_ptr<ChatPrompter> prompter_;
  std::unique_ptr<metrics::ServerMetrics> metrics_;
  std::unique_ptr<AsyncEngine> engine_;  // set once on the I/O thread; read by the shutdown thread after
  std::unordered_map<std::string, std::shared_ptr<Generation>> in_flight_;  // by internal id
  std::unordered_map<const WsSession*, std::weak_ptr<WsSession>> ws_sessions_;  // open WebSockets
  size_t max_body_bytes_ = 0;  // the request body limit now (WebSocket messages follow it)
  // Off the I/O thread: request parsing, chat templates and tokenization (see OffThread).
  // Declared last so that it stops first: its tasks read the members above.
  std::atomic<bool> cancel_renders_{false};
  WorkQueue prep_{PrepThreads(), 4096};
};

}  // namespace

size_t DefaultMaxBodyBytes(size_t max_prompt_bytes) {
  const size_t mib = 1u << 20;
  return max_prompt_bytes > (SIZE_MAX - mib) / 2 ? SIZE_MAX : 2 * max_prompt_bytes + mib;
}

int RunServer(ServeOptions options, EngineFactory factory) {
  Server server(std::move(options));
  return server.Run(std::move(factory));
}

}  // namespace inferd::server
