// SamplingParams::Validate: vLLM's SamplingParams._verify_args rules and messages.
//
// Floats are printed the way Python's repr prints them ("-1.0", "0.5", "inf", "nan") so a
// client sees the same text from inferd as from vLLM. The fields are float32, so the value
// printed is the shortest decimal that round-trips the float (1.1f prints as "1.1").

#include <charconv>
#include <cmath>
#include <string>

#include "inferd/sampling_params.h"

namespace inferd {
namespace {

std::string FormatFloat(float v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  std::string s = ec == std::errc() ? std::string(buf, end) : std::to_string(v);
  // Python writes integral floats with a trailing ".0" ("2.0", not "2").
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

Status SamplingParams::Validate() const {
  if (n < 1) return InvalidArgument("n must be at least 1, got " + std::to_string(n) + ".");
  // Written as !(lo <= x && x <= hi) so that NaN fails every range check.
  if (!(-2.0f <= presence_penalty && presence_penalty <= 2.0f)) {
    return InvalidArgument("presence_penalty must be in [-2, 2], got " +
                           FormatFloat(presence_penalty) + ".");
  }
  if (!(-2.0f <= frequency_penalty && frequency_penalty <= 2.0f)) {
    return InvalidArgument("frequency_penalty must be in [-2, 2], got " +
                           FormatFloat(frequency_penalty) + ".");
  }
  if (!std::isfinite(repetition_penalty)) {
    return InvalidArgument("repetition_penalty must be a finite number, got " +
                           FormatFloat(repetition_penalty) + ".");
  }
  if (!(repetition_penalty > 0.0f)) {
    return InvalidArgument("repetition_penalty must be greater than zero, got " +
                           FormatFloat(repetition_penalty) + ".");
  }
  if (!std::isfinite(temperature)) {
    return InvalidArgument("temperature must be a finite number, got " +
                           FormatFloat(temperature) + ".");
  }
  if (temperature < 0.0f) {
    return InvalidArgument("temperature must be non-negative, got " + FormatFloat(temperature) +
                           ".");
  }
  if (!(0.0f < top_p && top_p <= 1.0f)) {
    return InvalidArgument("top_p must be in (0, 1], got " + FormatFloat(top_p) + ".");
  }
  if (top_k < -1) {
    return InvalidArgument("top_k must be 0 or -1 (disable), or at least 1, got " +
                           std::to_string(top_k) + ".");
  }
  if (!(0.0f <= min_p && min_p <= 1.0f)) {
    return InvalidArgument("min_p must be in [0, 1], got " + FormatFloat(min_p) + ".");
  }
  if (max_tokens.has_value() && *max_tokens < 1) {
    return InvalidArgument("max_tokens must be at least 1, got " + std::to_string(*max_tokens) +
                           ".");
  }
  if (min_tokens < 0) {
    return InvalidArgument("min_tokens must be greater than or equal to 0, got " +
                           std::to_string(min_tokens) + ".");
  }
  if (max_tokens.has_value() && min_tokens > *max_tokens) {
    return InvalidArgument("min_tokens must be less than or equal to max_tokens=" +
                           std::to_string(*max_tokens) + ", got " +
                           std::to_string(min_tokens) + ".");
  }
  if (logprobs.has_value() && *logprobs < 0) {
    return InvalidArgument("logprobs must be non-negative, got " + std::to_string(*logprobs) +
                           ".");
  }
  if (prompt_logprobs.has_value() && *prompt_logprobs < 0) {
    return InvalidArgument("prompt_logprobs must be non-negative, got " +
                           std::to_string(*prompt_logprobs) + ".");
  }
  for (const std::string& s : stop) {
    if (s.empty()) return InvalidArgument("stop cannot contain an empty string.");
  }
  for (int32_t id : stop_token_ids) {
    if (id < 0) {
      return InvalidArgument("stop_token_ids must be non-negative token ids, got " +
                             std::to_string(id) + ".");
    }
  }
  for (const auto& [id, bias] : logit_bias) {
    if (id < 0) {
      return InvalidArgument("logit_bias token ids must be non-negative, got " +
                             std::to_string(id) + ".");
    }
    if (std::isnan(bias)) {
      return InvalidArgument("logit_bias for token " + std::to_string(id) +
                             " must be a number, got nan.");
    }
  }
  if (structured_outputs.has_value()) {
    // vLLM's messages for zero or several constraints.
    const int k = structured_outputs->num_constraints();
    if (k == 0) {
      return InvalidArgument("You must use one kind of structured outputs constraint but none are specified.");
    }
    if (k > 1) {
      return InvalidArgument("You can only use one kind of structured outputs constraint but multiple are specified.");
    }
    if (structured_outputs->choice.has_value() && structured_outputs->choice->empty()) {
      return InvalidArgument("structured_outputs.choice must list at least one string.");
    }
  }
  return Status::OK();
}

}  // namespace inferd
