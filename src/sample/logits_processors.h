// The logits processors of one request, described once for every backend.
//
// A row of logits goes through, in this order:
//   1. the allowed-token bitmask (structured outputs): disallowed tokens become -inf
//      (MaskAllows);
//   2. sparse edits, one per distinct token that logit_bias, min_tokens suppression of the
//      stop ids, repetition penalty (prompt ∪ output) or frequency / presence penalties
//      (output) touch (BuildLogitEdits, applied with ApplyLogitEdit);
//   3. greedy argmax, or temperature, top-k, top-p, min-p and the counter-based draw.
// The CPU sampler (sample/sampler.cc) and the CUDA SampleRows kernel (backend/cuda) both run
// steps 1 and 2 from these definitions: the host builds the edits and the mask, each backend
// applies them to its copy of the row with the same fp32 operations.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sample/logit_edit.h"
#include "sample/sampler.h"

namespace inferd {

// Appends to *out one LogitEdit per distinct token the sparse processors change for `in`,
// in ascending token order, with the values that reproduce the sequential definition above
// (bias, then min_tokens, then repetition over prompt ∪ output once per token, then
// frequency × count and presence over the output). Tokens outside [0, vocab) are skipped.
void BuildLogitEdits(const SampleInput& in, int64_t vocab, std::vector<LogitEdit>* out);

}  // namespace inferd
