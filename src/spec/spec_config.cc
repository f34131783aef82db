#include "spec/spec_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "util/json.h"

namespace inferd::spec {
namespace {

// Bounds on what a config may ask for: a step verifies at most this many tokens per request.
constexpr int kMaxSpeculativeTokens = 64;
constexpr int kMaxLookup = 64;

// vLLM methods inferd does not run: named in the error.
constexpr const char* kUnimplemented[] = {"eagle", "eagle3", "medusa", "mlp_speculator", "mtp",
                                          "ngram_gpu", "deepseek_mtp"};

std::string Field(const std::string& name) { return "--speculative-config: \"" + name + "\""; }

StatusOr<std::optional<int64_t>> IntField(const nlohmann::json& j, const std::string& name, int64_t lo, int64_t hi) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return std::optional<int64_t>();
  if (!it->is_number_integer()) return InvalidArgument(Field(name) + " must be an integer");
  const int64_t v = it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                        ? INT64_MAX
                        : it->get<int64_t>();
  if (v < lo || v > hi) return InvalidArgument(fmt::format("{} must be in [{}, {}], got {}", Field(name), lo, hi, v));
  return std::optional<int64_t>(v);
}

StatusOr<std::optional<double>> NumberField(const nlohmann::json& j, const std::string& name, double lo, double hi) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return std::optional<double>();
  if (!it->is_number()) return InvalidArgument(Field(name) + " must be a number");
  const double v = it->get<double>();
  if (!(v >= lo && v <= hi)) return InvalidArgument(fmt::format("{} must be in [{}, {}], got {}", Field(name), lo, hi, v));
  return std::optional<double>(v);
}

// The method: "method", or vLLM's older spelling "model": "ngram" / "[ngram]".
StatusOr<std::string> Method(const nlohmann::json& j) {
  std::string method, model;
  if (auto it = j.find("method"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return InvalidArgument(Field("method") + " must be a string");
    method = it->get<std::string>();
  }
  if (auto it = j.find("model"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return InvalidArgument(Field("model") + " must be a string");
    model = it->get<std::string>();
  }
  if (method == "[ngram]") method = "ngram";
  const bool model_is_method = model == "ngram" || model == "[ngram]" || model == "suffix";
  if (method.empty() && model_is_method) method = model == "suffix" ? "suffix" : "ngram";
  if (method.empty() && !model.empty()) method = "draft_model";  // vLLM: a model path is a draft model
  if (method.empty()) {
    return InvalidArgument("--speculative-config needs \"method\": \"ngram\", \"suffix\" or \"draft_model\"");
  }
  if (std::find_if(std::begin(kUnimplemented), std::end(kUnimplemented),
                   [&](const char* m) { return method == m; }) != std::end(kUnimplemented)) {
    return InvalidArgument("--speculative-config: method \"" + method +
                           "\" is not implemented in inferd; use \"ngram\", \"suffix\" or \"draft_model\"");
  }
  if (method != "ngram" && method != "suffix" && method != "draft_model") {
    return InvalidArgument("--speculative-config: unknown method \"" + method +
                           "\"; use \"ngram\", \"suffix\" or \"draft_model\"");
  }
  if (method == "draft_model" && (model.empty() || model_is_method)) {
    return InvalidArgument("--speculative-config: method \"draft_model\" needs \"model\": the draft model's path");
  }
  if (method != "draft_model" && !model.empty() && !model_is_method) {
    return InvalidArgument("--speculative-config: \"model\" (a draft model) goes with method \"draft_model\", not \"" +
                           method + "\"");
  }
  return method;
}

Status CheckFields(const nlohmann::json& j, const std::string& method) {
  static const char* const kCommon[] = {"method", "model", "num_speculative_tokens", "disable_by_batch_size",
                                        "adaptive"};
  static const char* const kNgram[] = {"prompt_lookup_min", "prompt_lookup_max"};
  static const char* const kSuffix[] = {"suffix_decoding_max_tree_depth", "suffix_decoding_max_cached_requests",
                                        "suffix_decoding_max_spec_factor", "suffix_decoding_min_token_prob"};
  const auto in = [](const auto& list, const std::string& k) {
    return std::find_if(std::begin(list), std::end(list), [&](const char* f) { return k == f; }) != std::end(list);
  };
  for (const auto& [key, value] : j.items()) {
    if (in(kCommon, key)) continue;
    if (in(kNgram, key)) {
      if (method == "ngram") continue;
      return InvalidArgument(Field(key) + " applies to method \"ngram\" only");
    }
    if (in(kSuffix, key)) {
      if (method == "suffix") continue;
      return InvalidArgument(Field(key) + " applies to method \"suffix\" only");
    }
    return InvalidArgument(fmt::format(
        "{} is not supported; fields: method, model, num_speculative_tokens, disable_by_batch_size, adaptive, "
        "prompt_lookup_min, "
        "prompt_lookup_max (ngram), suffix_decoding_max_tree_depth, suffix_decoding_max_cached_requests, "
        "suffix_decoding_max_spec_factor, suffix_decoding_min_token_prob (suffix)",
        Field(key)));
  }
  return Status::OK();
}

Status ParseNgram(const nlohmann::json& j, SpeculativeConfig& c) {
  INFERD_ASSIGN_OR_RETURN(auto lo, IntField(j, "prompt_lookup_min", 1, kMaxLookup));
  INFERD_ASSIGN_OR_RETURN(auto hi, IntField(j, "prompt_lookup_max", 1, kMaxLookup));
  // vLLM's defaults: both 5 when neither is given, else the given one for both.
  if (!lo && !hi) lo = hi = 5;
  if (!lo) lo = hi;
  if (!hi) hi = lo;
  if (*lo > *hi) {
    return InvalidArgument(fmt::format("--speculative-config: prompt_lookup_min={} must be <= prompt_lookup_max={}",
                                       *lo, *hi));
  }
  if (c.num_speculative_tokens == 0) {
    return InvalidArgument("--speculative-config: method \"ngram\" needs \"num_speculative_tokens\"");
  }
  c.ngram.prompt_lookup_min = static_cast<int>(*lo);
  c.ngram.prompt_lookup_max = static_cast<int>(*hi);
  c.ngram.num_speculative_tokens = c.num_speculative_tokens;
  return Status::OK();
}

Status ParseSuffix(const nlohmann::json& j, SpeculativeConfig& c) {
  INFERD_ASSIGN_OR_RETURN(auto depth, IntField(j, "suffix_decoding_max_tree_depth", 1, 1024));
  INFERD_ASSIGN_OR_RETURN(auto cached, IntField(j, "suffix_decoding_max_cached_requests", 0, 1000000));
  INFERD_ASSIGN_OR_RETURN(auto factor, NumberField(j, "suffix_decoding_max_spec_factor", 0.0, 1e6));
  INFERD_ASSIGN_OR_RETURN(auto prob, NumberField(j, "suffix_decoding_min_token_prob", 0.0, 1.0));
  if (depth) c.suffix.max_tree_depth = static_cast<int>(*depth);
  if (cached) c.suffix.max_cached_requests = static_cast<int>(*cached);
  if (factor) c.suffix.max_spec_factor = static_cast<float>(*factor);
  if (prob) c.suffix.min_token_prob = static_cast<float>(*prob);
  // vLLM: num_speculative_tokens defaults to the tree depth.
  if (c.num_speculative_tokens == 0) c.num_speculative_tokens = std::min(c.suffix.max_tree_depth, kMaxSpeculativeTokens);
  c.suffix.num_speculative_tokens = c.num_speculative_tokens;
  return ValidateSuffixConfig(c.suffix);
}

}  // namespace

StatusOr<SpeculativeConfig> ParseSpeculativeConfig(std::string_view json_text) {
  SpeculativeConfig c;
  if (json_text.find_first_not_of(" \t\r\n") == std::string_view::npos) return c;
  nlohmann::json j;
  JsonError err;
  if (!ParseJson(json_text, &j, &err, 8)) {
    return InvalidArgument("--speculative-config is not valid JSON: " + err.message);
  }
  if (!j.is_object()) return InvalidArgument("--speculative-config must be a JSON object");
  INFERD_ASSIGN_OR_RETURN(c.method, Method(j));
  if (c.method == "draft_model") c.draft_model = j["model"].get<std::string>();
  INFERD_RETURN_IF_ERROR(CheckFields(j, c.method));
  INFERD_ASSIGN_OR_RETURN(auto k, IntField(j, "num_speculative_tokens", 1, kMaxSpeculativeTokens));
  if (k) c.num_speculative_tokens = static_cast<int>(*k);
  INFERD_ASSIGN_OR_RETURN(auto disable, IntField(j, "disable_by_batch_size", 2, 1 << 20));
  if (disable) c.disable_by_batch_size = static_cast<int>(*disable);
  if (auto it = j.find("adaptive"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) return InvalidArgument(Field("adaptive") + " must be true or false");
    c.adaptive = it->get<bool>();
  }
  if (c.method == "ngram") INFERD_RETURN_IF_ERROR(ParseNgram(j, c));
  if (c.method == "suffix") INFERD_RETURN_IF_ERROR(ParseSuffix(j, c));
  if (c.method == "draft_model" && c.num_speculative_tokens == 0) {
    return InvalidArgument("--speculative-config: method \"draft_model\" needs \"num_speculative_tokens\"");
  }
  return c;
}

std::string DescribeSpeculativeConfig(const SpeculativeConfig& c) {
  if (!c.enabled()) return "off";
  std::string s = fmt::format("method {}, up to {} tokens per step", c.method, c.num_speculative_tokens);
  if (c.method == "ngram") {
    s += fmt::format(", prompt lookup {}..{} tokens", c.ngram.prompt_lookup_min, c.ngram.prompt_lookup_max);
  } else if (c.method == "draft_model") {
    s += ", draft model " + c.draft_model;
  } else if (c.method == "suffix") {
    s += fmt::format(", tree depth {}, {} cached requests, spec factor {}, min token prob {}", c.suffix.max_tree_depth,
                     c.suffix.max_cached_requests, c.suffix.max_spec_factor, c.suffix.min_token_prob);
  }
  if (c.disable_by_batch_size > 0) s += fmt::format(", off above {} running requests", c.disable_by_batch_size);
  s += c.adaptive ? ", off while measured slower" : ", on every step";
  return s;
}

}  // namespace inferd::spec
