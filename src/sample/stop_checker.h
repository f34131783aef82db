// Stop conditions of one sequence, checked after each sampled token.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>

#include "inferd/sampling_params.h"

namespace inferd {

struct StopDecision {
  bool stopped = false;
  const char* finish_reason = nullptr;  // "stop" or "length"
  std::variant<std::monostate, int32_t, std::string> stop_reason;  // token id or stop string
  // When a stop string matched: the output text must be cut to this many bytes
  // (the stop string removed unless include_stop_str_in_output).
  std::optional<size_t> truncate_text_to;
};

// Token-level checks, in vLLM's order: EOS (unless ignore_eos; only once
// num_output_tokens >= min_tokens), stop_token_ids (same min_tokens rule), max_tokens,
// and the context limit (num_total_tokens >= max_model_len => "length").
StopDecision CheckStopToken(const SamplingParams& params, int32_t token, bool token_is_eos,
                            int64_t num_output_tokens, int64_t num_total_tokens,
                            int64_t max_model_len);

// Stop strings: `text` is the whole output so far, the last `new_len` bytes just added.
// Finds the earliest stop string that ends inside the new bytes (searching from
// text.size() - new_len - (longest_stop - 1)). Earliest = smallest start offset; on equal
// starts the first string in params.stop wins.
StopDecision CheckStopStrings(const SamplingParams& params, const std::string& text,
                              size_t new_len);

// How many trailing bytes of `text` a streaming server must hold back because they could
// be the start of a stop string: the longest proper prefix of any stop string that is a
// suffix of `text`. 0 when there are no stop strings or include_stop_str_in_output is set
// (then a match only cuts bytes after the stop string, which were not yet sent).
size_t StopStringHoldback(const SamplingParams& params, const std::string& text);

}  // namespace inferd
