// The OpenAI protocol: request JSON → engine requests, engine outputs → response JSON
// (completions, chat completions, streaming chunks, errors). No I/O here; the routes in
// server.cc glue this to the HTTP server and the AsyncEngine.
//
// Shapes follow OpenAI's API and vLLM's extras (top_k, min_p, repetition_penalty, ...).
// Errors are thrown as ApiError inside parsing and rendered as
//   {"error": {"message", "type", "param", "code"}} with vLLM's type names.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "chat/tool_call_stream.h"
#include "chat/reasoning_parser.h"
#include "chat/tool_parser.h"
#include "inferd/engine.h"
#include "format/hf_config.h"
#include "inferd/request_output.h"
#include "inferd/sampling_params.h"
#include "server/openai_error.h"

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

// What the server knows about the model, for validation and defaults.
struct ModelInfo {
  std::vector<std::string> served_names;  // the first is reported in responses
  int64_t max_model_len = 0;
  int64_t vocab_size = 0;
  // Text longer than this cannot fit in max_model_len tokens (see PromptByteBound); such
  // prompts are rejected before they are tokenized, and a chat template may not render more.
  size_t max_prompt_bytes = SIZE_MAX;
  int max_logprobs = 20;                  // vLLM's --max-logprobs default
  bool trust_request_chat_template = false;  // --trust-request-chat-template
  std::string tool_call_parser;           // set with --enable-auto-tool-choice: tool_choice "auto" works
  std::string reasoning_parser;           // --reasoning-parser (chat/reasoning_parser.h); "" = none
  GenerationDefaults defaults;            // applied to fields the request leaves out
  // What one chat-template render may spend; its output is further capped at
  // max_prompt_bytes (a longer prompt could not fit anyway).
  RenderBudget chat_budget;
};

// The most bytes of text that could still tokenize to fewer than `max_model_len` tokens:
// every token decodes to at most `max_token_bytes` bytes, and normalisation (NFKC in some
// SentencePiece models) shrinks text by at most 3x before it is cut into tokens ("Ａ", 3
// bytes, becomes "A"), plus one for slack.
size_t PromptByteBound(int64_t max_model_len, size_t max_token_bytes);

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
  std::string chat_echo;         // chat with echo: the final assistant message, put before the output
  int logprobs = -1;             // completions: top-N per token; chat: top_logprobs; -1: off
  bool prompt_logprobs_field = false;  // prompt_logprobs asked for explicitly: returned as its own field
  bool return_token_ids = false;       // vLLM's return_token_ids: token_ids / prompt_token_ids fields
  bool tokens_as_ids = false;          // vLLM's return_tokens_as_token_ids: "token_id:N" in logprobs
  std::string request_id;        // the client's, if any: a label for the response id only
  std::string user;              // OpenAI's end-user id: written in the request log
  // tool_choice a named function or "required": the output is tool calls (chat/tool_call_stream.h).
  // kAuto: the model decides; the server's --tool-call-parser splits its output.
  enum class ToolMode { kNone, kNamed, kRequired, kAuto } tool_mode = ToolMode::kNone;
  std::string tool_name;         // kNamed
  std::string tool_parser;       // kAuto: the --tool-call-parser name
  nlohmann::ordered_json tools;  // kAuto: the request's tools (qwen3_xml types values by their schemas)
  // Chat with --reasoning-parser: its name splits reasoning from content (include_reasoning:
  // false drops the reasoning). With structured outputs and a prompt that leaves the output
  // inside the reasoning, the grammar starts after structured_after (the parser's end marker).
  std::string reasoning_parser;
  bool include_reasoning = true;
  std::string structured_after;
  // Beam search (use_beam_search): params.n is the beam width.
  bool beam_search = false;
  float length_penalty = 1.0f;
};

// Chat rendering inputs shared by /v1/chat/completions and /tokenize: everything in the
// body that reaches the chat template.
struct ChatInputs {
  nlohmann::ordered_json messages;
  nlohmann::ordered_json tools;      // null or the tools array (as sent, key order kept)
  nlohmann::ordered_json kwargs;     // chat_template_kwargs (+ reasoning_effort, documents)
  bool add_generation_prompt = true;
  bool continue_final_message = false;
  bool add_special_tokens = false;
  std::string chat_template;         // from the request; "" = the server's
};

// Parses and validates /v1/completions (chat=false) and /v1/chat/completions (chat=true).
// `prompter` may be null when the model has no chat template (chat requests then fail
// unless they bring one). `cancel` (may be null) stops a chat-template render when set.
// Throws ApiError (400 / 404) naming the parameter at fault.
ParsedRequest ParseGenerateRequest(const ojson& body, bool chat, const ModelInfo& model, const Tokenizer& tokenizer,
                                   const ChatPrompter* prompter, const std::atomic<bool>* cancel = nullptr);

// /tokenize: {"prompt": ...} or {"messages": ...} (with the chat fields above) -> the JSON
// response body. /detokenize likewise. Both throw ApiError.
std::string TokenizeResponse(const ojson& body, const ModelInfo& model, const Tokenizer& tokenizer,
                             const ChatPrompter* prompter, const std::atomic<bool>* cancel = nullptr);
std::string DetokenizeResponse(const ojson& body, const ModelInfo& model, const Tokenizer& tokenizer);

// n random characters of `alphabet` (ids); RandomHex: of 0-9a-f (response and tool-call ids).
std::string RandomChars(size_t n, std::string_view alphabet);
std::string RandomHex(size_t n);

// Parses a request body: a JSON object, nested at most kMaxJsonDepth levels. Throws a 400
// ApiError naming the field of a malformed number or too deep a value.
ojson ParseRequestBody(std::string_view text);

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
  ojson PromptLogprobs(const RequestOutput& ro) const;
  // How a token is shown in logprobs: its text, or "token_id:N" (return_tokens_as_token_ids).
  std::string Shown(int32_t id, const std::string& decoded) const;
  std::string Piece(int32_t id, const PositionLogprobs* pl) const;
  static ojson Usage(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens);

  const ParsedRequest& req_;
  std::string id_;
  int64_t created_;
  const Tokenizer& tokenizer_;
  std::vector<size_t> text_offsets_;    // completions streaming: running text offset per choice
  std::vector<bool> echoed_;            // completions streaming: first chunk sent per choice
  std::vector<int64_t> completion_tokens_;  // streaming: tokens sent so far per choice
  std::vector<ToolCallStream> tool_streams_;  // chat streaming, forced tool calls: one per choice
  std::vector<std::unique_ptr<ToolParser>> tool_parsers_;  // chat streaming, tool_choice auto: one per choice
  std::vector<std::unique_ptr<ReasoningParser>> reasoning_parsers_;  // chat streaming, --reasoning-parser: one per choice
};

}  // namespace inferd::server
