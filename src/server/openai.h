// The OpenAI protocol: request JSON → engine requests, engine outputs → response JSON
// (completions, chat completions, streaming chunks, errors). No I/O here; the routes in
// server.cc glue this to the HTTP server and the AsyncEngine.
//
// Shapes follow OpenAI's API and vLLM's extras (top_k, min_p, repetition_penalty, ...).
// Errors are thrown as ApiError inside parsing and rendered as
//   {"error": {"message", "type", "param", "code"}} with vLLM's type names.
#pragma once

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine_core.h"
#include "format/hf_config.h"
#include "inferd/request_output.h"
#include "inferd/sampling_params.h"

namespace inferd {
class ChatPrompter;
class Tokenizer;
}  // namespace inferd

namespace inferd::server {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

struct ApiError : std::exception {
  ApiError(int status, std::string message, std::string param = {})
      : status(status), message(std::move(message)), param(std::move(param)) {}
  const char* what() const noexcept override { return message.c_str(); }
  int status;
  std::string message;
  std::string param;
};

// {"error": {...}} for an HTTP status; type is vLLM's name for the status.
std::string ErrorBody(int status, const std::string& message, const std::string& param = {});
// The same, as an SSE event for errors after a stream started.
std::string ErrorEvent(int status, const std::string& message);
// JSON text that never throws on invalid UTF-8 (bytes are replaced by U+FFFD).
std::string Dump(const ojson& j);

// What the server knows about the model, for validation and defaults.
struct ModelInfo {
  std::vector<std::string> served_names;  // the first is reported in responses
  int64_t max_model_len = 0;
  int64_t vocab_size = 0;
  GenerationDefaults defaults;            // applied to fields the request leaves out
};

// One engine request derived from an HTTP request (a completions request with several
// prompts makes several).
struct PromptInput {
  std::string text;              // prompt text ("" when given as token ids)
  std::vector<int32_t> token_ids;
};

struct ParsedRequest {
  bool chat = false;
  std::string model;             // the served name to report
  std::vector<PromptInput> prompts;
  SamplingParams params;
  int priority = 0;
  bool stream = false, include_usage = false, continuous_usage = false;
  bool echo = false;             // completions: prompt text before the output
  int logprobs = -1;             // completions: top-N per token; chat: top_logprobs; -1: off
  std::string request_id;        // the client's, if any
};

// Parses and validates /v1/completions (chat=false) and /v1/chat/completions (chat=true).
// `prompter` may be null when the model has no chat template (chat requests then fail).
// Throws ApiError (400 / 404) naming the parameter at fault.
ParsedRequest ParseGenerateRequest(const json& body, bool chat, const ModelInfo& model, const Tokenizer& tokenizer,
                                   const ChatPrompter* prompter);

// Renders responses. `choice_base` numbers the choices of prompt i as i * n + index.
class ResponseBuilder {
 public:
  ResponseBuilder(const ParsedRequest& req, std::string id, int64_t created, const Tokenizer& tokenizer);

  // Non-streaming: the whole response from the final outputs (one per prompt, in order).
  std::string Complete(const std::vector<RequestOutput>& outputs) const;

  // Streaming: events ("data: {...}\n\n") for one delta of prompt `prompt_index`;
  // empty when the delta carries nothing a client would see.
  std::string StreamStart() const;  // chat: the role chunk for every choice
  std::string StreamDelta(int prompt_index, const OutputDelta& delta);
  // The usage chunk (if asked for) and "data: [DONE]".
  std::string StreamEnd(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens) const;

  const std::string& id() const { return id_; }

 private:
  ojson ChunkBase() const;
  ojson CompletionLogprobs(const std::vector<PositionLogprobs>& lps, const std::vector<int32_t>& ids,
                           size_t text_offset0, const std::vector<std::optional<PositionLogprobs>>* prompt_lps,
                           const std::vector<int32_t>* prompt_ids) const;
  ojson ChatLogprobs(const std::vector<PositionLogprobs>& lps, const std::vector<int32_t>& ids) const;
  static ojson Usage(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens);

  const ParsedRequest& req_;
  std::string id_;
  int64_t created_;
  const Tokenizer& tokenizer_;
  std::vector<size_t> text_offsets_;    // completions streaming: running text offset per choice
  std::vector<bool> echoed_;            // completions streaming: prompt already sent per choice
};

}  // namespace inferd::server
