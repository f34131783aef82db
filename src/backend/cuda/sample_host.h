// Host side of SampleRows (kernels.h): turns a SampleInput (sample/sampler.h) into the
// device's per-row parameters and sparse logit edits, so that SampleRows on the device
// follows SampleToken's rules. Plain C++ (g++).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/cuda/kernels.h"
#include "sample/sampler.h"

namespace inferd::cuda {

// Appends to *out one LogitEdit per distinct token that ApplyLogitsProcessors would change
// for `in` (logit_bias, min_tokens suppression of in.stop_ids, repetition penalty over
// prompt ∪ output, frequency / presence penalties over output), in ascending token order,
// with the values that reproduce its fp32 arithmetic exactly (see LogitEdit). Tokens outside
// [0, vocab) are skipped, as on the CPU. The row's range is [size before, size after).
void BuildLogitEdits(const SampleInput& in, int64_t vocab, std::vector<LogitEdit>* out);

// The row's DeviceSampleParams (temperature, top_k, top_p, min_p, seed, step) with its edits
// at [edit_begin, edit_end) of the batch's edit array.
DeviceSampleParams MakeDeviceSampleParams(const SampleInput& in, int32_t edit_begin, int32_t edit_end);

}  // namespace inferd::cuda
