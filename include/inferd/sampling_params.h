// Sampling parameters with vLLM's field names, defaults and validation messages.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "inferd/status.h"

namespace inferd {

// Structured outputs (vLLM's StructuredOutputsParams): exactly one constraint of
// json (a JSON schema, as JSON text), regex, choice, grammar (EBNF as XGrammar reads it,
// GBNF-like), json_object (any JSON object) or structural_tag (XGrammar's structural tag JSON).
// The output is constrained to it token by token (docs/structured-outputs.md).
struct StructuredOutputsParams {
  std::optional<std::string> json;
  std::optional<std::string> regex;
  std::optional<std::vector<std::string>> choice;
  std::optional<std::string> grammar;
  bool json_object = false;
  std::optional<std::string> structural_tag;
  bool disable_any_whitespace = false;  // json / json_object: no free whitespace between tokens

  int num_constraints() const {
    return json.has_value() + regex.has_value() + choice.has_value() + grammar.has_value() + json_object +
           structural_tag.has_value();
  }
};

struct SamplingParams {
  int n = 1;
  float presence_penalty = 0.0f;    // [-2, 2]
  float frequency_penalty = 0.0f;   // [-2, 2]
  float repetition_penalty = 1.0f;  // > 0; 1 = off (applied to prompt and output tokens)
  float temperature = 1.0f;         // >= 0; < 1e-5 means greedy
  float top_p = 1.0f;               // (0, 1]
  int top_k = 0;                    // 0 or -1 = off; else >= 1
  float min_p = 0.0f;               // [0, 1]
  std::optional<int64_t> seed;      // per-request seed: same seed => same tokens
  std::vector<std::string> stop;    // stop strings (not included unless include_stop_str_in_output)
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  std::optional<int> max_tokens = 16;  // nullopt = up to the context limit
  int min_tokens = 0;                  // EOS / stop tokens suppressed before this many
  std::optional<int> logprobs;         // top-N logprobs per output token (plus the chosen one)
  std::optional<int> prompt_logprobs;  // top-N per prompt position
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;
  bool spaces_between_special_tokens = true;
  std::map<int32_t, float> logit_bias;  // token id -> added to the logit
  std::optional<StructuredOutputsParams> structured_outputs;

  bool greedy() const { return temperature < 1e-5f; }
  // Checks ranges as vLLM does; the message names the parameter, e.g.
  // "temperature must be non-negative, got -1.0."
  Status Validate() const;
};

}  // namespace inferd
