// Outputs with the fields of vLLM's RequestOutput / CompletionOutput.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace inferd {

struct Logprob {
  float logprob = 0.0f;
  int rank = 0;                // 1 = most likely
  std::string decoded_token;
};
// One position: token id -> Logprob (the chosen token plus the top-N).
using PositionLogprobs = std::map<int32_t, Logprob>;

struct CompletionOutput {
  int index = 0;
  std::string text;
  std::vector<int32_t> token_ids;
  double cumulative_logprob = 0.0;
  std::optional<std::vector<PositionLogprobs>> logprobs;
  std::optional<std::string> finish_reason;           // "stop" | "length" | "abort" | "error"
  std::variant<std::monostate, int32_t, std::string> stop_reason;  // stop token id or string
};

struct RequestMetrics {
  double arrival_time = 0, first_scheduled_time = 0, first_token_time = 0,
         last_token_time = 0, finished_time = 0;
};

struct RequestOutput {
  std::string request_id;
  std::string prompt;
  std::vector<int32_t> prompt_token_ids;
  std::optional<std::vector<std::optional<PositionLogprobs>>> prompt_logprobs;
  std::vector<CompletionOutput> outputs;
  bool finished = false;
  int num_cached_tokens = 0;
  RequestMetrics metrics;
};

}  // namespace inferd
