// Request side of the OpenAI protocol: every field a route accepts, its type and range,
// in one place. A field that is not listed is a 400 naming it, and a field listed as not
// supported is a 400 saying so: nothing is accepted and then dropped.
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "engine/chat_prompt.h"
#include "server/openai.h"
#include "server/request_fields.h"
#include "tokenizer/tokenizer.h"
#include "util/json.h"

namespace inferd::server {
namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

// prompt: string | [string] | [int] | [[int]]
std::vector<PromptInput> ParsePrompts(const Fields& f, const ModelInfo& model, const Tokenizer& tok) {
  if (!f.Has("prompt")) throw ApiError(400, "'prompt' is required", "prompt");
  const bool add_special = f.Bool("add_special_tokens").value_or(true);
  const ojson& p = f.body()["prompt"];
  std::vector<PromptInput> out;
  auto from_text = [&](std::string text) {
    CheckPromptBytes(text.size(), model, "prompt");
    PromptInput in;
    in.token_ids = tok.Encode(text, add_special, /*parse_special=*/false);
    in.text = std::move(text);
    return in;
  };
  constexpr const char* kWant = "a string, an array of strings, or token ids";
  if (p.is_string()) {
    out.push_back(from_text(p.get<std::string>()));
  } else if (p.is_array()) {
    if (p.empty()) throw ApiError(400, "'prompt' must not be empty", "prompt");
    if (p[0].is_string()) {
      for (const ojson& s : p) {
        if (!s.is_string()) BadType("prompt", kWant);
        out.push_back(from_text(s.get<std::string>()));
      }
    } else if (p[0].is_array()) {
      for (const ojson& ids : p) {
        if (!ids.is_array()) BadType("prompt", kWant);
        out.push_back(PromptInput{{}, ParseTokenIds(ids, "prompt", model.vocab_size)});
      }
    } else {
      out.push_back(PromptInput{{}, ParseTokenIds(p, "prompt", model.vocab_size)});
    }
  } else {
    BadType("prompt", kWant);
  }
  return out;
}

// An assistant message replayed in the conversation, as vLLM prepares it for HF templates:
// tool-call arguments sent as JSON text become objects (templates iterate them), missing or
// empty ones {}; the reasoning under its current name ("reasoning") also reaches templates
// that read "reasoning_content" (Qwen3, DeepSeek).
void NormalizeAssistant(ojson& msg) {
  auto reasoning = msg.find("reasoning");
  if (reasoning != msg.end() && !msg.contains("reasoning_content")) msg["reasoning_content"] = *reasoning;
  auto calls = msg.find("tool_calls");
  if (calls == msg.end() || !calls->is_array()) return;
  for (ojson& call : *calls) {
    if (!call.is_object() || !call.contains("function") || !call["function"].is_object()) continue;
    ojson& fn = call["function"];
    auto args = fn.find("arguments");
    if (args == fn.end() || args->is_null() || (args->is_string() && args->get_ref<const std::string&>().empty())) {
      fn["arguments"] = ojson::object();
    } else if (args->is_string()) {
      ojson parsed;
      JsonError err;
      if (!ParseJson(args->get_ref<const std::string&>(), &parsed, &err)) {
        throw ApiError(400, "a tool call's 'arguments' in 'messages' is not valid JSON: " + err.message, "messages");
      }
      *args = std::move(parsed);
    }
  }
}

// Chat messages with content parts flattened to text, as vLLM's "string" content format.
ojson NormalizeMessages(const ojson& messages) {
  if (!messages.is_array() || messages.empty()) throw ApiError(400, "'messages' must be a non-empty array", "messages");
  ojson out = ojson::array();
  for (const ojson& m : messages) {
    if (!m.is_object()) throw ApiError(400, "each message must be an object", "messages");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) throw ApiError(400, "each message needs a 'role' string", "messages");
    ojson msg = m;
    auto content = m.find("content");
    if (content != m.end() && content->is_array()) {
      std::string text;
      for (const ojson& part : *content) {
        auto type = part.is_object() ? part.find("type") : part.end();
        if (!part.is_object() || type == part.end() || !type->is_string()) {
          throw ApiError(400, "message content parts must be objects with a 'type'", "messages");
        }
        const std::string& t = type->get_ref<const std::string&>();
        if (t != "text" && t != "input_text") {
          throw ApiError(400, fmt::format("content part type '{}' is not supported (text only)", t), "messages");
        }
        auto part_text = part.find("text");
        if (part_text == part.end() || !part_text->is_string()) {
          throw ApiError(400, "a text content part needs a 'text' string", "messages");
        }
        if (!text.empty()) text += "\n";
        text += part_text->get_ref<const std::string&>();
      }
      msg["content"] = std::move(text);
    } else if (content != m.end() && !content->is_string() && !content->is_null()) {
      throw ApiError(400, "message 'content' must be a string, an array of content parts, or null", "messages");
    }
    if (*role == "assistant") NormalizeAssistant(msg);
    out.push_back(std::move(msg));
  }
  return out;
}

void ParseStop(const Fields& f, SamplingParams& p) {
  if (!f.Has("stop")) return;
  const ojson& s = f.body()["stop"];
  if (s.is_string()) {
    p.stop.push_back(s.get<std::string>());
  } else if (s.is_array()) {
    for (const ojson& x : s) {
      if (!x.is_string()) BadType("stop", "a string or an array of strings");
      p.stop.push_back(x.get<std::string>());
    }
  } else {
    BadType("stop", "a string or an array of strings");
  }
  for (const std::string& x : p.stop) {
    if (x.empty()) throw ApiError(400, "'stop' strings must not be empty", "stop");
  }
}

void ParseLogitBias(const Fields& f, const ModelInfo& model, SamplingParams& p) {
  if (!f.Has("logit_bias")) return;
  const ojson& lb = f.body()["logit_bias"];
  if (!lb.is_object()) BadType("logit_bias", "an object mapping token ids to numbers");
  for (const auto& [k, v] : lb.items()) {
    int64_t id = -1;
    const bool digits = !k.empty() && k.size() <= 10 && k.find_first_not_of("0123456789") == std::string::npos;
    if (digits) id = std::stoll(k);
    if (!digits || id >= model.vocab_size) {
      throw ApiError(400, fmt::format("logit_bias key '{}' is not a token id in the vocabulary", k), "logit_bias");
    }
    if (!v.is_number()) BadType("logit_bias", "an object mapping token ids to numbers");
    const double bias = v.get<double>();
    if (!(bias >= -100 && bias <= 100)) {
      throw ApiError(400, fmt::format("logit_bias values must be in [-100, 100], got {}", bias), "logit_bias");
    }
    p.logit_bias[static_cast<int32_t>(id)] = static_cast<float>(bias);
  }
}

void ParseMaxTokens(const Fields& f, bool chat, const ModelInfo& model, SamplingParams& p) {
  // chat prefers max_completion_tokens; unset means "up to the context".
  const char* key = chat && f.Has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (auto v = f.Int(key, 1, kInt32Max)) {
    p.max_tokens = static_cast<int>(*v);
  } else if (!chat) {
    p.max_tokens = 16;  // OpenAI's legacy completions default
  } else if (model.defaults.max_new_tokens) {
    p.max_tokens = *model.defaults.max_new_tokens;
  } else {
    p.max_tokens = std::nullopt;
  }
}

void ParseLogprobs(const Fields& f, bool chat, const ModelInfo& model, ParsedRequest& r) {
  const int max = model.max_logprobs;
  if (chat) {
    if (f.Bool("logprobs").value_or(false)) {
      r.logprobs = static_cast<int>(f.Int("top_logprobs", 0, max).value_or(0));
    } else if (f.Int("top_logprobs", 0, max).value_or(0) > 0) {
      throw ApiError(400, "'top_logprobs' requires 'logprobs' to be true", "top_logprobs");
    }
  } else if (auto lp = f.Int("logprobs", 0, max)) {
    r.logprobs = static_cast<int>(*lp);
  }
  if (r.logprobs >= 0) r.params.logprobs = r.logprobs;
  if (f.Has("prompt_logprobs")) {
    // vLLM accepts -1 (the whole vocabulary) only when --max-logprobs allows it.
    const int64_t pl = *f.Int("prompt_logprobs", -1, kInt32Max);
    if (pl == -1 || pl > max) {
      throw ApiError(400,
                     fmt::format("Requested prompt logprobs of {}, which is greater than max allowed: {}",
                                 pl == -1 ? model.vocab_size : pl, max),
                     "prompt_logprobs");
    }
    if (r.stream) throw ApiError(400, "'prompt_logprobs' is not available when 'stream' is true", "prompt_logprobs");
    r.params.prompt_logprobs = static_cast<int>(pl);
    r.prompt_logprobs_field = true;
  }
  r.tokens_as_ids = f.Bool("return_tokens_as_token_ids").value_or(false);
  r.return_token_ids = f.Bool("return_token_ids").value_or(false);
}

void ParseSampling(const Fields& f, bool chat, const ModelInfo& model, ParsedRequest& r) {
  SamplingParams& p = r.params;
  const GenerationDefaults& d = model.defaults;
  p.temperature = f.Float("temperature").value_or(d.temperature.value_or(1.0f));
  p.top_p = f.Float("top_p").value_or(d.top_p.value_or(1.0f));
  p.top_k = static_cast<int>(f.Int("top_k", -1, kInt32Max).value_or(d.top_k.value_or(0)));
  p.min_p = f.Float("min_p").value_or(d.min_p.value_or(0.0f));
  p.repetition_penalty = f.Float("repetition_penalty").value_or(d.repetition_penalty.value_or(1.0f));
  p.presence_penalty = f.Float("presence_penalty").value_or(0.0f);
  p.frequency_penalty = f.Float("frequency_penalty").value_or(0.0f);
  p.n = static_cast<int>(f.Int("n", 1, 128).value_or(1));
  p.seed = f.Int("seed", kInt64Min, kInt64Max);
  p.min_tokens = static_cast<int>(f.Int("min_tokens", 0, kInt32Max).value_or(0));
  p.ignore_eos = f.Bool("ignore_eos").value_or(false);
  p.skip_special_tokens = f.Bool("skip_special_tokens").value_or(true);
  p.spaces_between_special_tokens = f.Bool("spaces_between_special_tokens").value_or(true);
  p.include_stop_str_in_output = f.Bool("include_stop_str_in_output").value_or(false);
  ParseStop(f, p);
  if (f.Has("stop_token_ids")) {
    const ojson& ids = f.body()["stop_token_ids"];
    if (!ids.is_array()) BadType("stop_token_ids", "an array of token ids");
    p.stop_token_ids = ParseTokenIds(ids, "stop_token_ids", model.vocab_size);
  }
  ParseLogitBias(f, model, p);
  ParseMaxTokens(f, chat, model, p);
  ParseLogprobs(f, chat, model, r);
  if (Status s = p.Validate(); !s.ok()) {
    const std::string& m = s.message();
    throw ApiError(400, m, m.substr(0, m.find(' ')));
  }
}

// use_beam_search: vLLM's BeamSearchParams take n (the beam width), max_tokens,
// ignore_eos, temperature, length_penalty and include_stop_str_in_output; vLLM drops the
// other sampling fields silently, here they are an error.
void ParseBeamSearch(const Fields& f, const ModelInfo& model, ParsedRequest& r) {
  r.beam_search = f.Bool("use_beam_search").value_or(false);
  if (f.Has("length_penalty")) {
    r.length_penalty = f.Float("length_penalty").value_or(1.0f);
    if (!r.beam_search) throw ApiError(400, "'length_penalty' only applies with 'use_beam_search'", "length_penalty");
  }
  if (!r.beam_search) return;
  static const char* const kIncompatible[] = {
      "top_p", "top_k", "min_p", "seed", "presence_penalty", "frequency_penalty", "repetition_penalty",
      "logit_bias", "stop", "stop_token_ids", "min_tokens", "logprobs", "top_logprobs", "prompt_logprobs",
      "echo", "return_tokens_as_token_ids", "include_stop_str_in_output"};
  for (const char* key : kIncompatible) {
    if (f.Has(key) && !(f.body()[key].is_boolean() && !f.body()[key].get<bool>())) {
      throw ApiError(400, fmt::format("'{}' cannot be used with 'use_beam_search'", key), key);
    }
  }
  // Each step asks for 2 * n logprobs per beam (vLLM's check and message).
  if (2 * r.params.n > model.max_logprobs) {
    throw ApiError(400,
                   fmt::format("Requested sample logprobs of {}, which is greater than max allowed: {} (beam search "
                               "with n={} asks for 2 * n)",
                               2 * r.params.n, model.max_logprobs, r.params.n),
                   "n");
  }
}

// Chat fields that reach the template, shared by /v1/chat/completions and /tokenize.
struct ChatRequest {
  ChatRenderInputs render;
  bool add_special_tokens = false;
  std::string chat_template;
};

ChatRequest ParseChatInputs(const Fields& f, const ModelInfo& model) {
  ChatRequest c;
  if (!f.Has("messages")) throw ApiError(400, "'messages' is required", "messages");
  c.render.messages = NormalizeMessages(f.body()["messages"]);
  c.render.add_generation_prompt = f.Bool("add_generation_prompt").value_or(true);
  c.render.continue_final_message = f.Bool("continue_final_message").value_or(false);
  if (c.render.continue_final_message && c.render.add_generation_prompt && f.Has("add_generation_prompt")) {
    throw ApiError(400, "'continue_final_message' and 'add_generation_prompt' cannot both be true",
                   "continue_final_message");
  }
  c.add_special_tokens = f.Bool("add_special_tokens").value_or(false);
  c.render.kwargs = ojson::object();
  if (f.Has("chat_template_kwargs")) {
    if (!f.body()["chat_template_kwargs"].is_object()) BadType("chat_template_kwargs", "an object");
    c.render.kwargs = f.body()["chat_template_kwargs"];
  }
  if (f.Has("tools")) {
    if (!f.body()["tools"].is_array()) BadType("tools", "an array");
    c.render.tools = f.body()["tools"];
  }
  // As vLLM passes them to apply_chat_template: documents and reasoning_effort become
  // template variables.
  if (f.Has("documents")) {
    const ojson& docs = f.body()["documents"];
    if (!docs.is_array()) BadType("documents", "an array of objects");
    for (const ojson& d : docs) {
      if (!d.is_object()) BadType("documents", "an array of objects");
    }
    c.render.kwargs["documents"] = docs;
  }
  if (auto effort = f.String("reasoning_effort")) {
    if (*effort != "low" && *effort != "medium" && *effort != "high") {
      throw ApiError(400, "'reasoning_effort' must be low, medium or high", "reasoning_effort");
    }
    c.render.kwargs["reasoning_effort"] = *effort;
  }
  if (auto t = f.String("chat_template")) {
    if (!model.trust_request_chat_template) {
      throw ApiError(400,
                     "Chat template is passed with request, but --trust-request-chat-template is not set. "
                     "Refused request with untrusted chat template.",
                     "chat_template");
    }
    c.chat_template = *t;
  }
  c.render.budget = model.chat_budget;
  c.render.budget.max_output_bytes = std::min(c.render.budget.max_output_bytes, model.max_prompt_bytes);
  return c;
}

// Renders and tokenizes; the rendered text is bounded by the budget (sized to what the
// context can hold) before the tokenizer sees it.
PromptInput RenderChat(ChatRequest& c, const ModelInfo& model, const Tokenizer& tok, const ChatPrompter* prompter,
                       const std::atomic<bool>* cancel) {
  std::unique_ptr<ChatPrompter> own;
  if (!c.chat_template.empty()) {
    auto p = ChatPrompter::Create(tok, c.chat_template);
    if (!p.ok()) throw ApiError(400, p.status().message(), "chat_template");
    own = std::move(*p);
    prompter = own.get();
  }
  if (!prompter) throw ApiError(400, "this model has no chat template; start the server with --chat-template FILE");
  c.render.budget.cancel = cancel;
  StatusOr<std::string> text = prompter->Render(c.render);
  if (!text.ok()) throw ApiError(400, text.status().message(), "messages");
  CheckPromptBytes(text->size(), model, "messages");
  PromptInput in;
  in.token_ids = tok.Encode(*text, c.add_special_tokens, /*parse_special=*/true);
  in.text = std::move(*text);
  if (in.token_ids.empty()) throw ApiError(400, "the chat template produced an empty prompt", "messages");
  return in;
}

// vLLM's chat echo: when the conversation ends with an assistant message (the role of the
// response), its content is put before the generated text.
std::string ChatEcho(const ojson& messages) {
  const ojson& last = messages.back();
  if (last["role"] != "assistant") return {};
  auto c = last.find("content");
  return c != last.end() && c->is_string() ? c->get<std::string>() : std::string();
}

// truncate_prompt_tokens: keep the last k tokens (vLLM truncates on the left; -1 means
// max_model_len).
void TruncatePrompts(const Fields& f, const ModelInfo& model, std::vector<PromptInput>& prompts) {
  auto k = f.Int("truncate_prompt_tokens", -1, kInt32Max);
  if (!k) return;
  if (*k == 0) throw ApiError(400, "'truncate_prompt_tokens' must be at least 1 (or -1)", "truncate_prompt_tokens");
  const int64_t keep = *k == -1 ? model.max_model_len : *k;
  if (keep > model.max_model_len) {
    throw ApiError(400,
                   fmt::format("truncate_prompt_tokens value ({}) is greater than max_model_len ({}). Please, select "
                               "a smaller truncation size.",
                               keep, model.max_model_len),
                   "truncate_prompt_tokens");
  }
  for (PromptInput& in : prompts) {
    if (static_cast<int64_t>(in.token_ids.size()) <= keep) continue;
    in.token_ids.erase(in.token_ids.begin(), in.token_ids.end() - keep);
    in.text.clear();  // the text no longer matches the tokens; echo decodes them instead
  }
}

// The prompt must leave room, and max_tokens must fit beside it.
void CheckContext(const ParsedRequest& r, const Fields& f, const ModelInfo& model) {
  const char* where = r.chat ? "messages" : "prompt";
  for (const PromptInput& in : r.prompts) {
    const int64_t n = static_cast<int64_t>(in.token_ids.size());
    if (n == 0) throw ApiError(400, "the prompt is empty", where);
    if (n >= model.max_model_len) {
      throw ApiError(400,
                     fmt::format("This model's maximum context length is {} tokens. However, your request has {} "
                                 "input tokens. Please reduce the length of the input {}.",
                                 model.max_model_len, n, where),
                     where);
    }
    if (r.params.max_tokens && n + *r.params.max_tokens > model.max_model_len) {
      throw ApiError(400,
                     fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens "
                                 "({} in the {}, {} in the completion). Please reduce the length of the {} or "
                                 "completion.",
                                 model.max_model_len, n + *r.params.max_tokens, n, where, *r.params.max_tokens, where),
                     r.chat && f.Has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens");
    }
  }
}

void ParseStreamOptions(const Fields& f, ParsedRequest& r) {
  r.stream = f.Bool("stream").value_or(false);
  if (!f.Has("stream_options")) return;
  if (!r.stream) throw ApiError(400, "'stream_options' is only allowed when 'stream' is true", "stream_options");
  Fields so(f.body()["stream_options"], "stream_options", RouteFields::kStreamOptions);
  // vLLM's StreamOptions default include_usage to true once the object is given.
  r.include_usage = so.Bool("include_usage").value_or(true);
  r.continuous_usage = so.Bool("continuous_usage_stats").value_or(false);
}

}  // namespace

size_t PromptByteBound(int64_t max_model_len, size_t max_token_bytes) {
  return static_cast<size_t>(max_model_len) * std::max<size_t>(max_token_bytes, 1) * 4;
}

ojson ParseRequestBody(std::string_view text) {
  if (text.empty()) throw ApiError(400, "the request body is empty; expected a JSON object");
  ojson body;
  JsonError err;
  if (!ParseJson(text, &body, &err)) {
    const std::string where = err.path.empty() ? "" : fmt::format(" in '{}'", err.path);
    throw ApiError(400, fmt::format("malformed JSON in the request body{}: {}", where, err.message), err.path);
  }
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return body;
}

ParsedRequest ParseGenerateRequest(const ojson& body, bool chat, const ModelInfo& model, const Tokenizer& tokenizer,
                                   const ChatPrompter* prompter, const std::atomic<bool>* cancel) {
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  Fields f(body, "", chat ? RouteFields::kChat : RouteFields::kCompletions);
  ParsedRequest r;
  r.chat = chat;
  r.model = CheckModel(f, model);
  ParseStreamOptions(f, r);
  r.request_id = f.String("request_id").value_or("");
  if (r.request_id.size() > 256) throw ApiError(400, "'request_id' must be at most 256 characters", "request_id");
  r.user = f.String("user").value_or("");
  if (r.user.size() > 256) throw ApiError(400, "'user' must be at most 256 characters", "user");
  r.priority = static_cast<int>(f.Int("priority", kInt32Min, kInt32Max).value_or(0));
  ParseSampling(f, chat, model, r);
  ParseStructuredOutputs(f, r.params);
  ParseBeamSearch(f, model, r);
  if (r.beam_search && r.params.structured_outputs) {
    throw ApiError(400, "structured outputs cannot be used with 'use_beam_search'", "use_beam_search");
  }
  r.echo = f.Bool("echo").value_or(false);
  if (chat) {
    ChatRequest c = ParseChatInputs(f, model);
    ParseToolChoice(f, model, r);
    r.prompts.push_back(RenderChat(c, model, tokenizer, prompter, cancel));
    ParseReasoning(f, model, r);
    if (r.echo) r.chat_echo = ChatEcho(c.render.messages);
  } else {
    r.prompts = ParsePrompts(f, model, tokenizer);
    // vLLM: echo with logprobs returns the prompt's logprobs too.
    if (r.echo && r.logprobs >= 0 && !r.params.prompt_logprobs) r.params.prompt_logprobs = r.logprobs;
    if (r.echo && r.logprobs >= 0 && r.stream) {
      throw ApiError(400, "'echo' with 'logprobs' is not supported when streaming", "echo");
    }
  }
  TruncatePrompts(f, model, r.prompts);
  CheckContext(r, f, model);
  return r;
}

std::string TokenizeResponse(const ojson& body, const ModelInfo& model, const Tokenizer& tok,
                             const ChatPrompter* prompter, const std::atomic<bool>* cancel) {
  const bool chat = body.contains("messages");
  Fields f(body, "", chat ? RouteFields::kTokenizeChat : RouteFields::kTokenizeCompletion);
  CheckModel(f, model);
  std::vector<int32_t> ids;
  if (chat) {
    ChatRequest c = ParseChatInputs(f, model);  // tools reach the template; no tool_choice here (as vLLM)
    ids = RenderChat(c, model, tok, prompter, cancel).token_ids;
  } else {
    auto prompt = f.String("prompt");
    if (!prompt) throw ApiError(400, "'prompt' must be a string", "prompt");
    CheckPromptBytes(prompt->size(), model, "prompt");
    ids = tok.Encode(*prompt, f.Bool("add_special_tokens").value_or(true), false);
  }
  ojson out = {{"count", ids.size()}, {"max_model_len", model.max_model_len}, {"tokens", ids}};
  if (f.Bool("return_token_strs").value_or(false)) {
    ojson strs = ojson::array();
    for (int32_t id : ids) strs.push_back(tok.TokenToPiece(id, false));
    out["token_strs"] = std::move(strs);
  } else {
    out["token_strs"] = nullptr;
  }
  return Dump(out);
}

std::string DetokenizeResponse(const ojson& body, const ModelInfo& model, const Tokenizer& tok) {
  Fields f(body, "", RouteFields::kDetokenize);
  CheckModel(f, model);
  if (!f.Has("tokens") || !body["tokens"].is_array()) {
    throw ApiError(400, "'tokens' must be an array of token ids", "tokens");
  }
  const std::vector<int32_t> ids = ParseTokenIds(body["tokens"], "tokens", model.vocab_size);
  return Dump(ojson{{"prompt", tok.Decode(ids, false)}});
}

}  // namespace inferd::server
