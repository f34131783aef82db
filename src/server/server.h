// `inferd serve`: the OpenAI-compatible API server.
//
// Routes: POST /v1/completions, POST /v1/chat/completions, GET /v1/models, POST /tokenize,
// POST /detokenize, GET /health, GET /metrics, GET /version, GET /v1/ws (WebSocket,
// server/ws_session.h), GET / (the chat page, server/web/chat.html); with grpc_port, the
// gRPC API on its own port (server/grpc_frontend.h), whose calls run through the same routes. The HTTP side runs on one
// I/O thread (server/http.h), the engine on its own (engine/async_engine.h); outputs
// travel from the engine thread to the I/O thread through RequestStream notifications.
//
// Start-up: the port is bound first and answers /health with 503 while the model loads,
// so orchestrators can tell "loading" from "down". Shutdown (SIGTERM / SIGINT): stop
// accepting, let in-flight requests finish for up to shutdown_timeout_s, abort the rest
// (streams get an error event), exit 0. Every accepted request ends exactly once.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "inferd/engine.h"
#include "inferd/status.h"
#include "server/http.h"

namespace inferd::server {

struct ServeOptions {
  HttpServerOptions http;  // http.max_body_bytes 0: sized to the model (DefaultMaxBodyBytes)
  std::vector<std::string> served_model_names;  // empty: the model path
  std::string api_key;                          // empty: no authentication
  std::string chat_template;                    // template text; empty: the model's
  std::string generation_config = "auto";       // auto: the model's defaults; vllm: none;
                                                // else a folder with generation_config.json
  int64_t max_waiting_requests = 0;             // 0: unbounded
  double request_timeout_s = 0;                 // 0: none
  double shutdown_timeout_s = 30;               // drain time on SIGTERM
  double stats_interval_s = 10;
  bool access_log = true;
  bool log_requests = false;                    // --enable-log-requests: one line per accepted request
  bool trust_request_chat_template = false;     // --trust-request-chat-template
  bool enable_auto_tool_choice = false;         // --enable-auto-tool-choice
  std::string tool_call_parser;                 // --tool-call-parser (chat/tool_parser.h)
  std::string reasoning_parser;                 // --reasoning-parser (chat/reasoning_parser.h)
  // Fault injection for resilience drills (a canary that fails or is slow, docs/router.md):
  // this share of completion requests is answered 500, and every completion request waits
  // this long before it is handled.
  double inject_error_rate = 0;                 // --inject-error-rate, 0..1
  double inject_delay_s = 0;                    // --inject-delay
  double ws_ping_interval_s = 20;               // --ws-ping-interval: GET /v1/ws keep-alive (0: off)
  size_t ws_max_queued_bytes = 16u << 20;       // --ws-max-queued-bytes: unread output before a drop
  int grpc_port = -1;                           // --grpc-port: the gRPC API there (-1: off, 0: any free port)
};

// The default request body limit once the model is known: twice the longest prompt text
// the context could hold, plus 1 MiB for the rest of the request (JSON escaping, other
// fields). A body past it is a 413 before a byte of it is parsed; batches of many long
// prompts need --max-request-body.
size_t DefaultMaxBodyBytes(size_t max_prompt_bytes);

// Builds the engine (on a background thread, while /health answers 503).
using EngineFactory = std::function<StatusOr<std::unique_ptr<Engine>>()>;

// Serves until SIGTERM/SIGINT; returns the process exit code (0 after a clean shutdown,
// 1 when the port cannot be bound or the model cannot be loaded).
int RunServer(ServeOptions options, EngineFactory factory);

}  // namespace inferd::server
