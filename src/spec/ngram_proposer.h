// Prompt-lookup ("ngram") proposals for speculative decoding (issue 19; vLLM's
// `--speculative-config '{"method": "ngram", ...}'`): when the last tokens of a sequence
// occurred earlier in it (prompt or output), the tokens that followed them then are a cheap
// guess of what follows now. Text that repeats its input (code edits, extraction, quoting)
// accepts most of them; the target model verifies every proposal, so a bad guess costs
// only the verification.
// Thread-safety: a pure function.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "inferd/engine_args.h"

namespace inferd::spec {

// The longest suffix of `tokens` (between prompt_lookup_max and prompt_lookup_min tokens long)
// that also occurs earlier in `tokens`; returns the up to num_speculative_tokens tokens that
// followed its latest earlier occurrence (fewer where the sequence ends first), or nothing.
// O(len(tokens) * prompt_lookup_max) token comparisons.
std::vector<int32_t> ProposeNgram(std::span<const int32_t> tokens, const NgramConfig& config);

}  // namespace inferd::spec
