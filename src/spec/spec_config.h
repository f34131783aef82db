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

struct SpeculativeConfig {
  std::string method;  // "" (speculation off) | "ngram" | "suffix" | "draft_model"
  int num_speculative_tokens = 0;  // most tokens proposed per step
  NgramConfig ngram;               // method ngram
  SuffixConfig suffix;             // method suffix
  std::string draft_model;         // method draft_model: the draft's path (same tokenizer)
  // vLLM's disable_by_batch_size: no speculation in a step while more than this many requests
  // are running (0: no limit).
  int disable_by_batch_size = 0;
  // inferd's own field "adaptive" (default true): speculation turns itself off while it
  // measures slower than decoding without it (engine/spec_controller.h); false speculates
  // on every step (timing-independent, as tests need).
  bool adaptive = true;
  bool enabled() const { return !method.empty(); }
};

// Parses the JSON text of --speculative-config ("" or "{}"-free: "" means off). Errors name
// the field: unknown fields, wrong types, out-of-range values, unimplemented methods.
StatusOr<SpeculativeConfig> ParseSpeculativeConfig(std::string_view json_text);

// The config as one line for the start-up log.
std::string DescribeSpeculativeConfig(const SpeculativeConfig& c);

}  // namespace inferd::spec
