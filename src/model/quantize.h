// On-the-fly weight-only quantization at load (--quantization int8 | int4, vLLM's flag).
//
// Every linear-layer matrix (wq wk wv wo w_gate w_up w_down of each layer) of an fp32 /
// fp16 / bf16 model is re-encoded in a GGUF block layout, so every backend reads it with the
// kernels it already has for GGUF files:
//   int8 -> Q8_0: 32 weights per fp16 scale d = max|x| / 127, q = round(x / d) (symmetric)
//   int4 -> Q4_0: 32 weights per fp16 scale d = x_max / -8 (x_max: the value of largest
//           magnitude, with its sign), q = clamp(round(x / d) + 8, 0, 15)
// exactly as llama.cpp's reference quantize_row_q8_0 / q4_0 (QuantizeRow) do. The token
// embedding and the LM head stay as stored (as vLLM, AWQ and GPTQ leave them).
#pragma once

#include <string>

#include "inferd/status.h"
#include "model/model.h"

namespace inferd {

// The GGML type for a --quantization value: kQ8_0 for "int8", kQ4_0 for "int4", and kF32
// (meaning: leave the weights as stored) for "" / "none". Unknown values: InvalidArgument.
StatusOr<GgmlType> WeightQuantizationType(const std::string& quantization);

// Re-encodes the layer matrices of `model` as `quantization` says (no-op for "" / "none"),
// in parallel over rows on ThreadPool::Global(). Must run before PrepareCpuWeights (the
// matrices must not be packed yet). Owned buffers that held only replaced matrices (dummy
// weights) are released; mapped files stay mapped. Updates the matrices, weights.nbytes and
// model.weight_type ("q8_0 (int8 from f16)"), and logs one line with the time and sizes.
// Errors: unknown value, weights already quantized, a matrix whose columns are not a
// multiple of 32.
Status QuantizeWeights(LoadedModel& model, const std::string& quantization);

}  // namespace inferd
