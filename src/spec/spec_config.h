// `--speculative-config` (vLLM's flag and field names, issue 19): which proposer guesses the
// next tokens and how many. Parsed once at start-up; every field is either used or rejected.
//   {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_min": 2, "prompt_lookup_max": 5}
//   {"method": "suffix", "num_speculative_tokens": 16, "suffix_decoding_max_tree_depth": 24, ...}
//   {"method": "draft_model", "model": "draft.gguf", "num_speculative_tokens": 4}
// ("model" alone means a draft model, as in vLLM.) Methods vLLM has that inferd does not run
// (eagle, eagle3, medusa, mtp, ...) are errors that name the method.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "inferd/status.h"
#include "spec/ngram_proposer.h"
#include "spec/suffix_proposer.h"

namespace inferd::spec {

// Parses the JSON text of --speculative-config ("" or "{}"-free: "" means off). Errors name
// the field: unknown fields, wrong types, out-of-range values, unimplemented methods.
StatusOr<SpeculativeConfig> ParseSpeculativeConfig(std::string_view json_text);

// The config as one line for the start-up log.
std::string DescribeSpeculativeConfig(const SpeculativeConfig& c);

}  // namespace inferd::spec
