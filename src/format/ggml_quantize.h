// Reference quantizers for the GGML types beyond QuantizeRow's simple ones (Q5_0, Q4_K,
// Q6_K: what `--quantization int4` writes, llama.cpp's Q4_K_M recipe).
#pragma once

#include <cstdint>

#include "format/ggml_types.h"

namespace inferd {

// Quantizes nblocks blocks of `type` from x into y as llama.cpp's quantize_row_*_ref does.
// False (nothing written) for a type this file does not quantize.
bool QuantizeBlocks(GgmlType type, const float* x, uint8_t* y, int64_t nblocks);

}  // namespace inferd
