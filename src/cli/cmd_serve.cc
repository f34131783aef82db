// inferd serve [MODEL]: the OpenAI-compatible server, with vLLM's flag names.
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/reasoning_parser.h"
#include "chat/tool_parser.h"
#include "cli/common.h"
#include "format/hf_config.h"
#include "server/server.h"
#include "util/bytes.h"
#include "util/logging.h"

namespace inferd::cli {
namespace {

struct ServeFlags {
  ModelFlags model;
  std::string positional_model;
  server::ServeOptions serve;
  std::string chat_template_file;
  std::string max_body = "auto";
  std::string ws_max_queued = "16MiB";
  // CORS lists as vLLM takes them: one JSON list of strings each (json.loads in its cli_args).
  std::string allowed_origins = R"(["*"])", allowed_methods = R"(["*"])", allowed_headers = R"(["*"])";
  bool disable_log_stats = false, disable_access_log = false;
};

// Parses a --allowed-* value: a JSON list of strings, e.g. '["http://localhost:3000"]'.
Status ParseJsonStringList(const std::string& flag, const std::string& text, std::vector<std::string>* out) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  bool ok = j.is_array();
  for (size_t i = 0; ok && i < j.size(); ++i) ok = j[i].is_string();
  if (!ok) return InvalidArgument(flag + ": expected a JSON list of strings such as '[\"*\"]', got '" + text + "'");
  *out = j.get<std::vector<std::string>>();
  return Status::OK();
}

void RunServe(ServeFlags& f) {
  if (!f.positional_model.empty()) f.model.load.model = f.positional_model;
  if (f.serve.served_model_names.empty()) {
    // As vLLM: the model as the user named it; the embedded default gets a short name.
    f.serve.served_model_names.push_back(f.model.load.model == DefaultModelPath() ? "SmolLM2-135M-Instruct"
                                                                                  : f.model.load.model);
  }
  if (f.serve.api_key.empty()) {
    if (const char* k = std::getenv("INFERD_API_KEY"); k && *k) f.serve.api_key = k;
  }
  if (!f.chat_template_file.empty()) {
    StatusOr<std::string> text = ReadFileToString(f.chat_template_file);
    if (!text.ok()) return Fail(text.status());
    f.serve.chat_template = std::move(*text);
  }
  {
    StatusOr<int64_t> queued = ParseByteSize(f.ws_max_queued);
    if (!queued.ok() || *queued < 4096) {
      return Fail(InvalidArgument(fmt::format("--ws-max-queued-bytes: '{}' is not a size of at least 4KiB", f.ws_max_queued)));
    }
    f.serve.ws_max_queued_bytes = static_cast<size_t>(*queued);
  }
  if (f.max_body != "auto") {
    StatusOr<int64_t> body = ParseByteSize(f.max_body);
    if (!body.ok()) return Fail(InvalidArgument("--max-request-body: " + body.status().message()));
    if (*body <= 0) return Fail(InvalidArgument("--max-request-body must be positive"));
    f.serve.http.max_body_bytes = static_cast<size_t>(*body);
  } else {
    f.serve.http.max_body_bytes = 0;  // sized to the model's context once it has loaded
  }
  if (f.serve.request_timeout_s > 0) {
    f.serve.http.read_timeout_s = std::min(f.serve.http.read_timeout_s, f.serve.request_timeout_s);
  }
  server::CorsOptions& cors = f.serve.http.cors;
  for (const Status& st : {ParseJsonStringList("--allowed-origins", f.allowed_origins, &cors.allowed_origins),
                           ParseJsonStringList("--allowed-methods", f.allowed_methods, &cors.allowed_methods),
                           ParseJsonStringList("--allowed-headers", f.allowed_headers, &cors.allowed_headers)}) {
    if (!st.ok()) return Fail(st);
  }
  if (f.serve.enable_auto_tool_choice && f.serve.tool_call_parser.empty()) {
    return Fail(InvalidArgument("--enable-auto-tool-choice needs --tool-call-parser (one of: " +
                                fmt::format("{}", fmt::join(ToolParserNames(), ", ")) + ")"));
  }
  if (!f.serve.tool_call_parser.empty() && !MakeToolParser(f.serve.tool_call_parser)) {
    return Fail(InvalidArgument(fmt::format("--tool-call-parser '{}' is not implemented; available: {}",
                                            f.serve.tool_call_parser, fmt::join(ToolParserNames(), ", "))));
  }
  if (!f.serve.reasoning_parser.empty() && !MakeReasoningParser(f.serve.reasoning_parser)) {
    return Fail(InvalidArgument(fmt::format("--reasoning-parser '{}' is not implemented; available: {}",
                                            f.serve.reasoning_parser, fmt::join(ReasoningParserNames(), ", "))));
  }
  if (f.disable_log_stats) f.serve.stats_interval_s = 0;
  f.serve.access_log = !f.disable_access_log;
  // Flag errors before the server starts; Engine::Create (on the loader thread) resolves again.
  if (Status st = ResolveEngineArgs(f.model); !st.ok()) return Fail(st);
  InitLogging();
  const EngineArgs args = f.model;
  ExitCode() = server::RunServer(f.serve, [args]() { return Engine::Create(args); });
}

}  // namespace

void AddServeCommand(CLI::App& app) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (like `vllm serve`)");
  cmd->add_option("model_tag", flags->positional_model, "GGUF file or Hugging Face directory (default: embedded model)");
  flags->model.Add(cmd, /*engine_flags=*/true);
  server::ServeOptions& s = flags->serve;
  cmd->add_option("--host", s.http.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", s.http.port, "TCP port")->capture_default_str();
  cmd->add_option("--uds", s.http.uds, "listen on this unix domain socket instead of TCP");
  cmd->add_option("--api-key", s.api_key, "require 'Authorization: Bearer KEY' on /v1 routes (or env INFERD_API_KEY)");
  cmd->add_option("--served-model-name", s.served_model_names, "model name(s) in the API (default: the model path)");
  cmd->add_option("--chat-template", flags->chat_template_file, "Jinja chat template file (default: the model's)");
  cmd->add_option("--generation-config", s.generation_config,
                  "auto: default sampling values from the model's generation_config.json; vllm: none; "
                  "or a folder holding a generation_config.json")
      ->capture_default_str();
  cmd->add_option("--max-waiting-requests", s.max_waiting_requests,
                  "answer 503 when this many requests are already waiting (0 = unbounded)")
      ->capture_default_str();
  cmd->add_option("--inject-error-rate", s.inject_error_rate,
                  "testing aid: answer this share (0..1) of completion requests with 500 (resilience and canary drills)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--inject-delay", s.inject_delay_s, "testing aid: hold every completion request this many seconds first")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  cmd->add_option("--ws-ping-interval", s.ws_ping_interval_s,
                  "GET /v1/ws: ping a WebSocket idle this many seconds, close it after twice that without a frame (0: off)")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  cmd->add_option("--ws-max-queued-bytes", flags->ws_max_queued,
                  "GET /v1/ws and gRPC streams: drop a client that leaves this much output unread (a slow reader never "
                  "grows memory)")
      ->capture_default_str();
  cmd->add_option("--grpc-port", s.grpc_port,
                  "also serve the gRPC API (inferd.v1.Generation, grpc.health.v1, reflection) on this port (0: any free "
                  "port, shown in the log; default: off)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--request-timeout", s.request_timeout_s, "abort requests running longer than this many seconds (0 = none)")
      ->capture_default_str();
  cmd->add_option("--shutdown-timeout", s.shutdown_timeout_s, "seconds in-flight requests get to finish on SIGTERM")
      ->capture_default_str();
  cmd->add_option("--max-request-body", flags->max_body,
                  "largest accepted request body (auto: twice the text the context can hold, plus 1 MiB)")
      ->capture_default_str();
  cmd->add_option("--allowed-origins", flags->allowed_origins, "CORS: origins allowed to read responses, a JSON list")
      ->capture_default_str();
  cmd->add_option("--allowed-methods", flags->allowed_methods, "CORS: methods allowed in preflights, a JSON list")
      ->capture_default_str();
  cmd->add_option("--allowed-headers", flags->allowed_headers,
                  "CORS: request headers allowed in preflights, a JSON list")
      ->capture_default_str();
  cmd->add_flag("--allow-credentials,!--no-allow-credentials", s.http.cors.allow_credentials,
                "CORS: let browsers send cookies and Authorization cross-origin");
  cmd->add_flag("--enable-log-requests", s.log_requests, "log one line per accepted request (id, user, sizes, sampling)");
  cmd->add_flag("--trust-request-chat-template", s.trust_request_chat_template,
                "let requests bring their own 'chat_template' (rendered with step and size limits)");
  cmd->add_flag("--enable-auto-tool-choice", s.enable_auto_tool_choice,
                "let the model decide when to call tools (tool_choice \"auto\"); needs --tool-call-parser");
  cmd->add_option("--tool-call-parser", s.tool_call_parser,
                  "how tool calls look in the model's output, for tool_choice \"auto\": " +
                      fmt::format("{}", fmt::join(ToolParserNames(), ", ")));
  cmd->add_option("--reasoning-parser", s.reasoning_parser,
                  "split the model's reasoning into message.reasoning_content (structured outputs start after "
                  "it): " + fmt::format("{}", fmt::join(ReasoningParserNames(), ", ")));
  cmd->add_flag("--disable-log-stats", flags->disable_log_stats, "no periodic engine stats in the log");
  cmd->add_flag("--disable-uvicorn-access-log,--disable-access-log", flags->disable_access_log,
                "no log line per HTTP request");
  cmd->callback([flags] { RunServe(*flags); });
}

}  // namespace inferd::cli
