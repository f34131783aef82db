#include "server/openai.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "engine/chat_prompt.h"
#include "tokenizer/tokenizer.h"

namespace inferd::server {
namespace {

const char* ErrorType(int status) {
  switch (status) {
    case 400: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowedError";
    case 408: return "TimeoutError";
    case 413: return "RequestTooLargeError";
    case 429: return "RateLimitError";
    case 503: return "ServiceUnavailableError";
    default: return status >= 500 ? "InternalServerError" : "BadRequestError";
  }
}

// ---- typed field access: a wrong type is a 400 naming the field -------------------------

bool Has(const json& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && !it->is_null();
}

[[noreturn]] void BadType(const char* key, const char* want) {
  throw ApiError(400, fmt::format("'{}' must be {}", key, want), key);
}

std::optional<double> GetNumber(const json& body, const char* key) {
  if (!Has(body, key)) return std::nullopt;
  const json& v = body[key];
  if (!v.is_number()) BadType(key, "a number");
  return v.get<double>();
}

std::optional<int64_t> GetInt(const json& body, const char* key) {
  if (!Has(body, key)) return std::nullopt;
  const json& v = body[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {  // 3.0 is accepted, 3.5 is not (as pydantic does)
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
  }
  BadType(key, "an integer");
}

std::optional<bool> GetBool(const json& body, const char* key) {
  if (!Has(body, key)) return std::nullopt;
  const json& v = body[key];
  if (!v.is_boolean()) BadType(key, "a boolean");
  return v.get<bool>();
}

std::optional<std::string> GetString(const json& body, const char* key) {
  if (!Has(body, key)) return std::nullopt;
  const json& v = body[key];
  if (!v.is_string()) BadType(key, "a string");
  return v.get<std::string>();
}

int IntInRange(int64_t v, const char* key, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) throw ApiError(400, fmt::format("'{}' must be between {} and {}, got {}", key, lo, hi, v), key);
  return static_cast<int>(v);
}

std::vector<int32_t> ParseTokenIds(const json& arr, const char* key, int64_t vocab_size) {
  std::vector<int32_t> ids;
  ids.reserve(arr.size());
  for (const json& t : arr) {
    if (!t.is_number_integer()) BadType(key, "a string, an array of strings, or token ids");
    const int64_t id = t.get<int64_t>();
    if (id < 0 || id >= vocab_size) {
      throw ApiError(400, fmt::format("token id {} in '{}' is out of vocabulary (0..{})", id, key, vocab_size - 1), key);
    }
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

// prompt: string | [string] | [int] | [[int]]
std::vector<PromptInput> ParsePrompts(const json& body, const Tokenizer& tok, int64_t vocab_size) {
  if (!Has(body, "prompt")) throw ApiError(400, "'prompt' is required", "prompt");
  const json& p = body["prompt"];
  std::vector<PromptInput> out;
  auto from_text = [&](const std::string& text) {
    PromptInput in;
    in.text = text;
    in.token_ids = tok.Encode(text, /*add_special=*/true, /*parse_special=*/false);
    return in;
  };
  if (p.is_string()) {
    out.push_back(from_text(p.get<std::string>()));
  } else if (p.is_array()) {
    if (p.empty()) throw ApiError(400, "'prompt' must not be empty", "prompt");
    if (p[0].is_string()) {
      for (const json& s : p) {
        if (!s.is_string()) BadType("prompt", "a string, an array of strings, or token ids");
        out.push_back(from_text(s.get<std::string>()));
      }
    } else if (p[0].is_array()) {
      for (const json& ids : p) {
        if (!ids.is_array()) BadType("prompt", "a string, an array of strings, or token ids");
        PromptInput in;
        in.token_ids = ParseTokenIds(ids, "prompt", vocab_size);
        out.push_back(std::move(in));
      }
    } else {
      PromptInput in;
      in.token_ids = ParseTokenIds(p, "prompt", vocab_size);
      out.push_back(std::move(in));
    }
  } else {
    BadType("prompt", "a string, an array of strings, or token ids");
  }
  for (const PromptInput& in : out) {
    if (in.token_ids.empty()) throw ApiError(400, "the prompt is empty", "prompt");
  }
  return out;
}

// Chat messages with content parts flattened to text, as vLLM's "string" content format.
ojson NormalizeMessages(const json& messages) {
  if (!messages.is_array() || messages.empty()) throw ApiError(400, "'messages' must be a non-empty array", "messages");
  ojson out = ojson::array();
  for (const json& m : messages) {
    if (!m.is_object()) throw ApiError(400, "each message must be an object", "messages");
    if (!m.contains("role") || !m["role"].is_string()) {
      throw ApiError(400, "each message needs a 'role' string", "messages");
    }
    ojson msg = ojson::parse(m.dump());
    if (m.contains("content") && m["content"].is_array()) {
      std::string text;
      for (const json& part : m["content"]) {
        if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) {
          throw ApiError(400, "message content parts must be objects with a 'type'", "messages");
        }
        const std::string type = part["type"].get<std::string>();
        if (type != "text" && type != "input_text") {
          throw ApiError(400, fmt::format("content part type '{}' is not supported (text only)", type), "messages");
        }
        if (!part.contains("text") || !part["text"].is_string()) {
          throw ApiError(400, "a text content part needs a 'text' string", "messages");
        }
        if (!text.empty()) text += "\n";
        text += part["text"].get<std::string>();
      }
      msg["content"] = text;
    } else if (m.contains("content") && !m["content"].is_string() && !m["content"].is_null()) {
      throw ApiError(400, "message 'content' must be a string, an array of content parts, or null", "messages");
    }
    out.push_back(std::move(msg));
  }
  return out;
}

void ParseStop(const json& body, SamplingParams& p) {
  if (!Has(body, "stop")) return;
  const json& s = body["stop"];
  if (s.is_string()) {
    p.stop.push_back(s.get<std::string>());
  } else if (s.is_array()) {
    for (const json& x : s) {
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

void ParseSampling(const json& body, bool chat, const ModelInfo& model, ParsedRequest& r) {
  SamplingParams& p = r.params;
  const GenerationDefaults& d = model.defaults;
  p.temperature = static_cast<float>(GetNumber(body, "temperature").value_or(d.temperature.value_or(1.0f)));
  p.top_p = static_cast<float>(GetNumber(body, "top_p").value_or(d.top_p.value_or(1.0f)));
  p.top_k = static_cast<int>(GetInt(body, "top_k").value_or(d.top_k.value_or(0)));
  p.min_p = static_cast<float>(GetNumber(body, "min_p").value_or(d.min_p.value_or(0.0f)));
  p.repetition_penalty =
      static_cast<float>(GetNumber(body, "repetition_penalty").value_or(d.repetition_penalty.value_or(1.0f)));
  p.presence_penalty = static_cast<float>(GetNumber(body, "presence_penalty").value_or(0.0));
  p.frequency_penalty = static_cast<float>(GetNumber(body, "frequency_penalty").value_or(0.0));
  if (auto n = GetInt(body, "n")) p.n = IntInRange(*n, "n", 1, 128);
  if (auto s = GetInt(body, "seed")) p.seed = *s;
  p.min_tokens = IntInRange(GetInt(body, "min_tokens").value_or(0), "min_tokens", 0, std::numeric_limits<int>::max());
  p.ignore_eos = GetBool(body, "ignore_eos").value_or(false);
  p.skip_special_tokens = GetBool(body, "skip_special_tokens").value_or(true);
  p.spaces_between_special_tokens = GetBool(body, "spaces_between_special_tokens").value_or(true);
  p.include_stop_str_in_output = GetBool(body, "include_stop_str_in_output").value_or(false);
  ParseStop(body, p);
  if (Has(body, "stop_token_ids")) {
    const json& ids = body["stop_token_ids"];
    if (!ids.is_array()) BadType("stop_token_ids", "an array of token ids");
    p.stop_token_ids = ParseTokenIds(ids, "stop_token_ids", model.vocab_size);
  }
  if (Has(body, "logit_bias")) {
    const json& lb = body["logit_bias"];
    if (!lb.is_object()) BadType("logit_bias", "an object mapping token ids to numbers");
    for (const auto& [k, v] : lb.items()) {
      char* end = nullptr;
      const long id = std::strtol(k.c_str(), &end, 10);
      if (k.empty() || *end != '\0' || id < 0 || id >= model.vocab_size) {
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
  // max_tokens: chat prefers max_completion_tokens; unset means "up to the context".
  std::optional<int64_t> max_tokens = GetInt(body, "max_tokens");
  if (chat) {
    if (auto mct = GetInt(body, "max_completion_tokens")) max_tokens = mct;
  }
  const char* max_key = chat && Has(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (max_tokens) {
    if (*max_tokens < 1) throw ApiError(400, fmt::format("'{}' must be at least 1, got {}", max_key, *max_tokens), max_key);
    p.max_tokens = static_cast<int>(std::min<int64_t>(*max_tokens, std::numeric_limits<int>::max()));
  } else if (!chat) {
    p.max_tokens = 16;  // OpenAI's legacy completions default
  } else if (d.max_new_tokens) {
    p.max_tokens = *d.max_new_tokens;
  } else {
    p.max_tokens = std::nullopt;
  }
  // logprobs: completions take an int; chat a bool plus top_logprobs.
  if (chat) {
    if (GetBool(body, "logprobs").value_or(false)) {
      r.logprobs = IntInRange(GetInt(body, "top_logprobs").value_or(0), "top_logprobs", 0, 20);
    } else if (Has(body, "top_logprobs") && GetInt(body, "top_logprobs").value_or(0) > 0) {
      throw ApiError(400, "'top_logprobs' requires 'logprobs' to be true", "top_logprobs");
    }
  } else if (auto lp = GetInt(body, "logprobs")) {
    r.logprobs = IntInRange(*lp, "logprobs", 0, 20);
  }
  if (r.logprobs >= 0) p.logprobs = r.logprobs;
  if (Status s = p.Validate(); !s.ok()) {
    std::string param;
    const std::string& m = s.message();
    if (auto sp = m.find(' '); sp != std::string::npos) param = m.substr(0, sp);
    throw ApiError(400, m, param);
  }
}

}  // namespace

std::string Dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

std::string ErrorBody(int status, const std::string& message, const std::string& param) {
  ojson e = {{"message", message}, {"type", ErrorType(status)}, {"param", nullptr}, {"code", status}};
  if (!param.empty()) e["param"] = param;
  return Dump(ojson{{"error", e}});
}

std::string ErrorEvent(int status, const std::string& message) {
  return "data: " + ErrorBody(status, message) + "\n\n";
}

ParsedRequest ParseGenerateRequest(const json& body, bool chat, const ModelInfo& model, const Tokenizer& tokenizer,
                                   const ChatPrompter* prompter) {
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  ParsedRequest r;
  r.chat = chat;
  r.model = model.served_names.front();
  if (auto m = GetString(body, "model")) {
    bool known = false;
    for (const std::string& name : model.served_names) known = known || name == *m;
    if (!known) throw ApiError(404, fmt::format("The model `{}` does not exist.", *m), "model");
    r.model = *m;
  }
  r.stream = GetBool(body, "stream").value_or(false);
  if (Has(body, "stream_options")) {
    const json& so = body["stream_options"];
    if (!so.is_object()) BadType("stream_options", "an object");
    if (!r.stream) throw ApiError(400, "'stream_options' is only allowed when 'stream' is true", "stream_options");
    r.include_usage = GetBool(so, "include_usage").value_or(false);
    r.continuous_usage = GetBool(so, "continuous_usage_stats").value_or(false);
  }
  if (auto id = GetString(body, "request_id")) r.request_id = *id;
  r.priority = static_cast<int>(GetInt(body, "priority").value_or(0));
  if (auto u = GetString(body, "user"); u) {
    // Accepted and ignored, as vLLM does.
  }
  ParseSampling(body, chat, model, r);

  if (chat) {
    if (!prompter) throw ApiError(400, "this model has no chat template; start the server with --chat-template FILE");
    if (!Has(body, "messages")) throw ApiError(400, "'messages' is required", "messages");
    ojson messages = NormalizeMessages(body["messages"]);
    const bool add_generation_prompt = GetBool(body, "add_generation_prompt").value_or(true);
    const bool continue_final = GetBool(body, "continue_final_message").value_or(false);
    if (continue_final && add_generation_prompt && Has(body, "add_generation_prompt")) {
      throw ApiError(400, "'continue_final_message' and 'add_generation_prompt' cannot both be true",
                     "continue_final_message");
    }
    ojson tools = nullptr, kwargs = nullptr;
    if (Has(body, "tools")) {
      if (!body["tools"].is_array()) BadType("tools", "an array");
      tools = ojson::parse(body["tools"].dump());
    }
    if (Has(body, "chat_template_kwargs")) {
      if (!body["chat_template_kwargs"].is_object()) BadType("chat_template_kwargs", "an object");
      kwargs = ojson::parse(body["chat_template_kwargs"].dump());
    }
    StatusOr<ChatPrompter::Prompt> prompt =
        prompter->Apply(messages, add_generation_prompt, continue_final, tools, kwargs);
    if (!prompt.ok()) throw ApiError(400, prompt.status().message(), "messages");
    PromptInput in;
    in.text = std::move(prompt->text);
    in.token_ids = std::move(prompt->token_ids);
    if (in.token_ids.empty()) throw ApiError(400, "the chat template produced an empty prompt", "messages");
    r.prompts.push_back(std::move(in));
  } else {
    r.echo = GetBool(body, "echo").value_or(false);
    if (Has(body, "suffix")) throw ApiError(400, "'suffix' is not supported", "suffix");
    r.prompts = ParsePrompts(body, tokenizer, model.vocab_size);
    if (r.echo && r.logprobs >= 0) r.params.prompt_logprobs = r.logprobs;
    if (r.echo && r.logprobs >= 0 && r.stream) {
      throw ApiError(400, "'echo' with 'logprobs' is not supported when streaming", "echo");
    }
  }

  // Context length: the prompt must leave room, and max_tokens must fit beside it.
  const char* where = chat ? "messages" : "prompt";
  for (const PromptInput& in : r.prompts) {
    const int64_t n = static_cast<int64_t>(in.token_ids.size());
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
                     chat && Has(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens");
    }
  }
  return r;
}

// ---- responses ----------------------------------------------------------------------------

ResponseBuilder::ResponseBuilder(const ParsedRequest& req, std::string id, int64_t created, const Tokenizer& tokenizer)
    : req_(req), id_(std::move(id)), created_(created), tokenizer_(tokenizer) {
  const size_t choices = req.prompts.size() * static_cast<size_t>(req.params.n);
  text_offsets_.assign(choices, 0);
  echoed_.assign(choices, false);
}

ojson ResponseBuilder::Usage(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens) {
  return ojson{{"prompt_tokens", prompt_tokens},
               {"total_tokens", prompt_tokens + completion_tokens},
               {"completion_tokens", completion_tokens},
               {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
}

ojson ResponseBuilder::ChunkBase() const {
  return ojson{{"id", id_},
               {"object", req_.chat ? "chat.completion.chunk" : "text_completion"},
               {"created", created_},
               {"model", req_.model}};
}

namespace {
double ClampLogprob(double lp) { return std::isfinite(lp) ? lp : -9999.0; }

ojson Bytes(const std::string& s) {
  ojson b = ojson::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

std::string StopReasonString(const CompletionOutput& o, ojson* out) {
  if (std::holds_alternative<int32_t>(o.stop_reason)) {
    *out = std::get<int32_t>(o.stop_reason);
  } else if (std::holds_alternative<std::string>(o.stop_reason)) {
    *out = std::get<std::string>(o.stop_reason);
  } else {
    *out = nullptr;
  }
  return {};
}
}  // namespace

ojson ResponseBuilder::CompletionLogprobs(const std::vector<PositionLogprobs>& lps, const std::vector<int32_t>& ids,
                                          size_t text_offset0,
                                          const std::vector<std::optional<PositionLogprobs>>* prompt_lps,
                                          const std::vector<int32_t>* prompt_ids) const {
  ojson tokens = ojson::array(), token_lps = ojson::array(), top = ojson::array(), offsets = ojson::array();
  size_t offset = text_offset0;
  auto add = [&](int32_t id, const PositionLogprobs* pl) {
    std::string piece;
    if (pl && pl->count(id)) {
      piece = pl->at(id).decoded_token;
    } else {
      piece = tokenizer_.TokenToPiece(id, false);
    }
    tokens.push_back(piece);
    offsets.push_back(offset);
    offset += piece.size();
    if (!pl) {
      token_lps.push_back(nullptr);
      top.push_back(nullptr);
      return;
    }
    token_lps.push_back(pl->count(id) ? ClampLogprob(pl->at(id).logprob) : -9999.0);
    ojson t = ojson::object();
    std::vector<std::pair<int, const Logprob*>> ranked;
    for (const auto& [tid, lp] : *pl) ranked.emplace_back(lp.rank, &lp);
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [rank, lp] : ranked) {
      if (!t.contains(lp->decoded_token)) t[lp->decoded_token] = ClampLogprob(lp->logprob);
    }
    top.push_back(std::move(t));
  };
  if (prompt_ids) {
    for (size_t i = 0; i < prompt_ids->size(); ++i) {
      const PositionLogprobs* pl = nullptr;
      if (prompt_lps && i < prompt_lps->size() && (*prompt_lps)[i]) pl = &*(*prompt_lps)[i];
      add((*prompt_ids)[i], pl);
    }
  }
  for (size_t i = 0; i < ids.size() && i < lps.size(); ++i) add(ids[i], &lps[i]);
  return ojson{{"text_offset", offsets}, {"token_logprobs", token_lps}, {"tokens", tokens}, {"top_logprobs", top}};
}

ojson ResponseBuilder::ChatLogprobs(const std::vector<PositionLogprobs>& lps, const std::vector<int32_t>& ids) const {
  ojson content = ojson::array();
  for (size_t i = 0; i < ids.size() && i < lps.size(); ++i) {
    const PositionLogprobs& pl = lps[i];
    std::string piece = pl.count(ids[i]) ? pl.at(ids[i]).decoded_token : tokenizer_.TokenToPiece(ids[i], false);
    const double lp = pl.count(ids[i]) ? ClampLogprob(pl.at(ids[i]).logprob) : -9999.0;
    std::vector<const Logprob*> ranked;
    for (const auto& [tid, l] : pl) {
      if (l.rank >= 1 && l.rank <= req_.logprobs) ranked.push_back(&l);
    }
    std::sort(ranked.begin(), ranked.end(), [](const Logprob* a, const Logprob* b) { return a->rank < b->rank; });
    ojson top = ojson::array();
    for (const Logprob* l : ranked) {
      top.push_back({{"token", l->decoded_token}, {"logprob", ClampLogprob(l->logprob)}, {"bytes", Bytes(l->decoded_token)}});
    }
    content.push_back({{"token", piece}, {"logprob", lp}, {"bytes", Bytes(piece)}, {"top_logprobs", top}});
  }
  return ojson{{"content", content}};
}

std::string ResponseBuilder::Complete(const std::vector<RequestOutput>& outputs) const {
  ojson choices = ojson::array();
  int64_t prompt_tokens = 0, completion_tokens = 0, cached = 0;
  const int n = req_.params.n;
  for (size_t p = 0; p < outputs.size(); ++p) {
    const RequestOutput& ro = outputs[p];
    prompt_tokens += static_cast<int64_t>(ro.prompt_token_ids.size());
    cached += ro.num_cached_tokens;
    for (const CompletionOutput& o : ro.outputs) {
      completion_tokens += static_cast<int64_t>(o.token_ids.size());
      ojson stop_reason;
      StopReasonString(o, &stop_reason);
      const int index = static_cast<int>(p) * n + o.index;
      ojson logprobs = nullptr;
      if (req_.chat) {
        if (req_.logprobs >= 0 && o.logprobs) logprobs = ChatLogprobs(*o.logprobs, o.token_ids);
        choices.push_back({{"index", index},
                           {"message", {{"role", "assistant"}, {"content", o.text}}},
                           {"logprobs", logprobs},
                           {"finish_reason", o.finish_reason ? ojson(*o.finish_reason) : ojson(nullptr)},
                           {"stop_reason", stop_reason}});
      } else {
        std::string prompt_text;
        if (req_.echo) {
          prompt_text = !req_.prompts[p].text.empty() ? req_.prompts[p].text
                                                       : tokenizer_.Decode(ro.prompt_token_ids, false);
        }
        if (req_.logprobs >= 0 && o.logprobs) {
          logprobs = CompletionLogprobs(*o.logprobs, o.token_ids, 0,
                                        req_.echo && ro.prompt_logprobs ? &*ro.prompt_logprobs : nullptr,
                                        req_.echo ? &ro.prompt_token_ids : nullptr);
        }
        choices.push_back({{"index", index},
                           {"text", prompt_text + o.text},
                           {"logprobs", logprobs},
                           {"finish_reason", o.finish_reason ? ojson(*o.finish_reason) : ojson(nullptr)},
                           {"stop_reason", stop_reason}});
      }
    }
  }
  std::sort(choices.begin(), choices.end(),
            [](const ojson& a, const ojson& b) { return a["index"].get<int>() < b["index"].get<int>(); });
  ojson r = {{"id", id_},
             {"object", req_.chat ? "chat.completion" : "text_completion"},
             {"created", created_},
             {"model", req_.model},
             {"choices", choices},
             {"usage", Usage(prompt_tokens, completion_tokens, cached)}};
  return Dump(r);
}

std::string ResponseBuilder::StreamStart() const {
  if (!req_.chat) return {};
  std::string out;
  const int choices = static_cast<int>(text_offsets_.size());
  for (int i = 0; i < choices; ++i) {
    ojson c = ChunkBase();
    c["choices"] = ojson::array({{{"index", i},
                                  {"delta", {{"role", "assistant"}, {"content", ""}}},
                                  {"logprobs", nullptr},
                                  {"finish_reason", nullptr}}});
    if (req_.include_usage) c["usage"] = nullptr;
    out += "data: " + Dump(c) + "\n\n";
  }
  return out;
}

std::string ResponseBuilder::StreamDelta(int prompt_index, const OutputDelta& d) {
  const size_t index = static_cast<size_t>(prompt_index) * static_cast<size_t>(req_.params.n) + static_cast<size_t>(d.index);
  std::string text = d.new_text;
  if (!req_.chat && req_.echo && index < echoed_.size() && !echoed_[index]) {
    echoed_[index] = true;
    const PromptInput& in = req_.prompts[static_cast<size_t>(prompt_index)];
    text = (in.text.empty() ? tokenizer_.Decode(in.token_ids, false) : in.text) + text;
  }
  const bool has_lp = req_.logprobs >= 0 && !d.new_logprobs.empty();
  if (text.empty() && !d.finish_reason && !has_lp) return {};
  ojson choice;
  if (req_.chat) {
    choice = {{"index", index}, {"delta", ojson::object()}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
    if (!text.empty() || !d.finish_reason) choice["delta"]["content"] = text;
    if (has_lp) choice["logprobs"] = ChatLogprobs(d.new_logprobs, d.new_token_ids);
  } else {
    choice = {{"index", index}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", nullptr}, {"stop_reason", nullptr}};
    if (has_lp) {
      choice["logprobs"] = CompletionLogprobs(d.new_logprobs, d.new_token_ids,
                                              index < text_offsets_.size() ? text_offsets_[index] : 0, nullptr, nullptr);
    }
    if (index < text_offsets_.size()) text_offsets_[index] += text.size();
  }
  if (d.finish_reason) choice["finish_reason"] = *d.finish_reason;
  ojson c = ChunkBase();
  c["choices"] = ojson::array({choice});
  if (req_.include_usage) c["usage"] = nullptr;
  return "data: " + Dump(c) + "\n\n";
}

std::string ResponseBuilder::StreamEnd(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens) const {
  std::string out;
  if (req_.include_usage) {
    ojson c = ChunkBase();
    c["choices"] = ojson::array();
    c["usage"] = Usage(prompt_tokens, completion_tokens, cached_tokens);
    out += "data: " + Dump(c) + "\n\n";
  }
  out += "data: [DONE]\n\n";
  return out;
}

}  // namespace inferd::server
