// Stop conditions. See stop_checker.h for the contract.

#include "sample/stop_checker.h"

#include <algorithm>

namespace inferd {

StopDecision CheckStopToken(const SamplingParams& params, int32_t token, bool token_is_eos,
                            int64_t num_output_tokens, int64_t num_total_tokens,
                            int64_t max_model_len) {
  StopDecision d;
  // min_tokens gates EOS and stop_token_ids only; the length limits always apply.
  if (num_output_tokens >= params.min_tokens) {
    if (token_is_eos && !params.ignore_eos) {
      d.stopped = true;
      d.finish_reason = "stop";  // stop_reason stays empty: EOS is not a user stop
      return d;
    }
    if (std::find(params.stop_token_ids.begin(), params.stop_token_ids.end(), token) !=
        params.stop_token_ids.end()) {
      d.stopped = true;
      d.finish_reason = "stop";
      d.stop_reason = token;
      return d;
    }
  }
  if ((params.max_tokens.has_value() && num_output_tokens >= *params.max_tokens) ||
      (max_model_len > 0 && num_total_tokens >= max_model_len)) {
    d.stopped = true;
    d.finish_reason = "length";
  }
  return d;
}

StopDecision CheckStopStrings(const SamplingParams& params, const std::string& text,
                              size_t new_len) {
  StopDecision d;
  if (new_len == 0 || params.stop.empty()) return d;
  new_len = std::min(new_len, text.size());
  // Earliest match start over all stop strings; on equal starts the first in the list wins.
  size_t best_pos = std::string::npos;
  const std::string* best = nullptr;
  for (const std::string& stop : params.stop) {
    if (stop.empty() || stop.size() > text.size()) continue;
    // A match must end inside the new bytes, so it starts at or after this position; text
    // before it was already searched when it arrived.
    const size_t old_len = text.size() - new_len;
    const size_t from = old_len + 1 > stop.size() ? old_len + 1 - stop.size() : 0;
    size_t pos = text.find(stop, from);
    if (pos != std::string::npos && pos < best_pos) {
      best_pos = pos;
      best = &stop;
    }
  }
  if (best == nullptr) return d;
  d.stopped = true;
  d.finish_reason = "stop";
  d.stop_reason = *best;
  if (!params.include_stop_str_in_output) {
    d.truncate_text_to = best_pos;
  } else if (best_pos + best->size() < text.size()) {
    d.truncate_text_to = best_pos + best->size();  // keep the stop string, drop what follows
  }
  return d;
}

size_t StopStringHoldback(const SamplingParams& params, const std::string& text) {
  // With include_stop_str_in_output nothing needs holding back: a match keeps the bytes
  // already sent and only drops bytes after the stop string, which are not yet sent.
  if (params.include_stop_str_in_output) return 0;
  size_t hold = 0;
  for (const std::string& stop : params.stop) {
    // Longest proper prefix of `stop` that is a suffix of `text`.
    size_t max_k = std::min(stop.size() - (stop.empty() ? 0 : 1), text.size());
    for (size_t k = max_k; k > hold; --k) {
      if (text.compare(text.size() - k, k, stop, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

}  // namespace inferd
