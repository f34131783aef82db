// Host side of SampleRows (kernels.h): turns a SampleInput (sample/sampler.h) into the
// device's per-row parameters and sparse logit edits, so that SampleRows on the device
// follows SampleToken's rules. Plain C++ (g++).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/cuda/kernels.h"
#include "sample/logits_processors.h"

namespace inferd::cuda {

// The row's DeviceSampleParams (temperature, top_k, top_p, min_p, seed, step) with its edits
// (BuildLogitEdits, sample/logits_processors.h) at [edit_begin, edit_end) of the batch's edit
// array and its allowed-token mask at row `mask_row` of the batch's masks (-1: none).
DeviceSampleParams MakeDeviceSampleParams(const SampleInput& in, int32_t edit_begin, int32_t edit_end,
                                          int32_t mask_row = -1);

}  // namespace inferd::cuda
