#include "server/request_fields.h"

#include <cmath>
#include <limits>
#include <string_view>

#include <fmt/format.h>

namespace inferd::server {
namespace {

// A field a route does not implement (yet), with the reason the client is told.
struct Unsupported {
  const char* name;
  const char* why;
};

constexpr const char* kStructured = "is not supported: use structured_outputs (vLLM's field; XGrammar is the backend)";
constexpr const char* kNotHere = "is not supported by this server";

// Fields shared by completions and chat: OpenAI's sampling fields and vLLM's extras.
constexpr std::string_view kCommon[] = {
    "model", "frequency_penalty", "logit_bias", "max_tokens", "n", "presence_penalty", "seed", "stop", "stream",
    "stream_options", "temperature", "top_p", "user", "use_beam_search", "top_k", "min_p", "repetition_penalty",
    "length_penalty", "stop_token_ids", "include_stop_str_in_output", "ignore_eos", "min_tokens",
    "skip_special_tokens", "spaces_between_special_tokens", "truncate_prompt_tokens", "prompt_logprobs",
    "add_special_tokens", "response_format", "priority", "request_id", "return_tokens_as_token_ids",
    "return_token_ids", "echo", "logprobs", "structured_outputs", "guided_json", "guided_regex", "guided_choice",
    "guided_grammar"};
constexpr std::string_view kCompletionsOnly[] = {"prompt"};
constexpr std::string_view kChatOnly[] = {
    "messages", "top_logprobs", "max_completion_tokens", "tools", "tool_choice", "reasoning_effort",
    "include_reasoning", "add_generation_prompt", "continue_final_message", "documents", "chat_template",
    "parallel_tool_calls",
    "chat_template_kwargs"};
constexpr Unsupported kUnsupportedGenerate[] = {
    {"suffix", kNotHere},
    {"best_of", "is not supported (vLLM's V1 engine dropped it too); use n"},
    {"prompt_embeds", kNotHere},
    {"allowed_token_ids", "is not supported yet"},
    {"bad_words", "is not supported yet"},
    {"guided_decoding_backend", kStructured},
    {"guided_whitespace_pattern", kStructured},
    {"structural_tag", kStructured},
    {"logits_processors", kNotHere},
    {"cache_salt", "is not supported yet"},
    {"kv_transfer_params", kNotHere},
    {"vllm_xargs", kNotHere},
    {"mm_processor_kwargs", "is not supported (text-only models)"},
    {"functions", "is not supported (deprecated by OpenAI); use tools"},
    {"function_call", "is not supported (deprecated by OpenAI); use tool_choice"},
    {"audio", "is not supported (text-only models)"},
    {"modalities", "is not supported (text-only models)"},
    {"prediction", kNotHere},
    {"web_search_options", kNotHere},
    {"store", kNotHere},
    {"metadata", kNotHere},
    {"service_tier", kNotHere},
};
constexpr std::string_view kStreamOptions[] = {"include_usage", "continuous_usage_stats"};
constexpr std::string_view kTokenizeCompletion[] = {"model", "prompt", "add_special_tokens", "return_token_strs"};
constexpr std::string_view kTokenizeChat[] = {
    "model", "messages", "add_generation_prompt", "continue_final_message", "add_special_tokens", "return_token_strs",
    "chat_template", "chat_template_kwargs", "tools"};
constexpr std::string_view kDetokenize[] = {"model", "tokens"};

template <size_t N>
bool In(const std::string_view (&list)[N], std::string_view key) {
  for (std::string_view k : list) {
    if (k == key) return true;
  }
  return false;
}

bool Known(RouteFields route, std::string_view key) {
  switch (route) {
    case RouteFields::kCompletions: return In(kCommon, key) || In(kCompletionsOnly, key);
    case RouteFields::kChat: return In(kCommon, key) || In(kChatOnly, key);
    case RouteFields::kStreamOptions: return In(kStreamOptions, key);
    case RouteFields::kTokenizeCompletion: return In(kTokenizeCompletion, key);
    case RouteFields::kTokenizeChat: return In(kTokenizeChat, key);
    case RouteFields::kDetokenize: return In(kDetokenize, key);
  }
  return false;
}

const char* RouteName(RouteFields route) {
  switch (route) {
    case RouteFields::kCompletions: return "/v1/completions";
    case RouteFields::kChat: return "/v1/chat/completions";
    case RouteFields::kStreamOptions: return "stream_options";
    case RouteFields::kTokenizeCompletion:
    case RouteFields::kTokenizeChat: return "/tokenize";
    case RouteFields::kDetokenize: return "/detokenize";
  }
  return "";
}

// A value as the client wrote it, shortened for messages.
std::string Shown(const ojson& v) {
  std::string s = Dump(v);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

}  // namespace

[[noreturn]] void BadType(const std::string& key, const char* want) {
  throw ApiError(400, fmt::format("'{}' must be {}", key, want), key);
}

Fields::Fields(const ojson& obj, std::string prefix, RouteFields route) : obj_(obj), prefix_(std::move(prefix)) {
  if (!obj_.is_object()) {
    if (prefix_.empty()) throw ApiError(400, "the request body must be a JSON object");
    BadType(prefix_.substr(0, prefix_.size()), "an object");
  }
  if (!prefix_.empty()) prefix_ += '.';
  const bool generate = route == RouteFields::kCompletions || route == RouteFields::kChat;
  for (const auto& [key, value] : obj_.items()) {
    if (Known(route, key)) continue;
    const std::string name = prefix_ + key;
    if (generate) {
      for (const Unsupported& u : kUnsupportedGenerate) {
        if (key == u.name) throw ApiError(400, fmt::format("'{}' {}", name, u.why), name);
      }
    }
    throw ApiError(400, fmt::format("'{}' is not a field of {}", name, RouteName(route)), name);
  }
}

bool Fields::Has(const char* key) const {
  auto it = obj_.find(key);
  return it != obj_.end() && !it->is_null();
}

std::optional<bool> Fields::Bool(const char* key) const {
  if (!Has(key)) return std::nullopt;
  const ojson& v = obj_[key];
  if (!v.is_boolean()) BadType(Name(key), "a boolean");
  return v.get<bool>();
}

std::optional<std::string> Fields::String(const char* key) const {
  if (!Has(key)) return std::nullopt;
  const ojson& v = obj_[key];
  if (!v.is_string()) BadType(Name(key), "a string");
  return v.get<std::string>();
}

std::optional<float> Fields::Float(const char* key) const {
  if (!Has(key)) return std::nullopt;
  const ojson& v = obj_[key];
  if (!v.is_number()) BadType(Name(key), "a number");
  const double d = v.get<double>();
  if (!(std::fabs(d) <= std::numeric_limits<float>::max())) {
    throw ApiError(400, fmt::format("'{}' must be a finite 32-bit float, got {}", Name(key), Shown(v)), Name(key));
  }
  return static_cast<float>(d);
}

std::optional<int64_t> Fields::Int(const char* key, int64_t lo, int64_t hi) const {
  if (!Has(key)) return std::nullopt;
  const ojson& v = obj_[key];
  const std::string name = Name(key);
  auto out_of_range = [&]() -> ApiError {
    const bool open_top = hi == std::numeric_limits<int32_t>::max() || hi == std::numeric_limits<int64_t>::max();
    const bool open_bottom = lo == std::numeric_limits<int32_t>::min() || lo == std::numeric_limits<int64_t>::min();
    const char* bits = hi == std::numeric_limits<int32_t>::max() ? "32" : "64";
    std::string want = open_top && open_bottom ? fmt::format("a {}-bit integer", bits)
                       : open_top              ? fmt::format("an integer of at least {} ({}-bit)", lo, bits)
                                               : fmt::format("an integer between {} and {}", lo, hi);
    return ApiError(400, fmt::format("'{}' must be {}, got {}", name, want, Shown(v)), name);
  };
  int64_t x = 0;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) throw out_of_range();
    x = static_cast<int64_t>(u);
  } else if (v.is_number_integer()) {
    x = v.get<int64_t>();
  } else if (v.is_number_float()) {  // 3.0 is accepted, 3.5 is not (as pydantic does)
    const double d = v.get<double>();
    if (d != std::floor(d)) BadType(name, "an integer");
    // 2^63 is the first double past int64; anything at or beyond it is out of range.
    if (!(d > -9.2233720368547758e18 && d < 9.2233720368547758e18)) throw out_of_range();
    x = static_cast<int64_t>(d);
  } else {
    BadType(name, "an integer");
  }
  if (x < lo || x > hi) throw out_of_range();
  return x;
}

std::vector<int32_t> ParseTokenIds(const ojson& arr, const char* key, int64_t vocab_size) {
  std::vector<int32_t> ids;
  ids.reserve(arr.size());
  for (const ojson& t : arr) {
    if (!t.is_number_integer()) BadType(key, "a string, an array of strings, or token ids");
    const bool ok = t.is_number_unsigned() ? t.get<uint64_t>() < static_cast<uint64_t>(vocab_size)
                                           : t.get<int64_t>() >= 0 && t.get<int64_t>() < vocab_size;
    if (!ok) {
      throw ApiError(400, fmt::format("token id {} in '{}' is out of vocabulary (0..{})", Shown(t), key, vocab_size - 1),
                     key);
    }
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return ids;
}

void CheckPromptBytes(size_t bytes, const ModelInfo& model, const char* param) {
  if (bytes <= model.max_prompt_bytes) return;
  throw ApiError(400,
                 fmt::format("This model's maximum context length is {} tokens. However, your {} is {} bytes long, "
                             "more than {} tokens can hold (at most {} bytes). Please reduce the length of the input.",
                             model.max_model_len, param, bytes, model.max_model_len, model.max_prompt_bytes),
                 param);
}

std::string CheckModel(const Fields& f, const ModelInfo& model) {
  auto m = f.String("model");
  if (!m) return model.served_names.front();
  for (const std::string& name : model.served_names) {
    if (name == *m) return *m;
  }
  throw ApiError(404, fmt::format("The model `{}` does not exist.", *m), "model");
}


}  // namespace inferd::server
