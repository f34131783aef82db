// On-the-fly weight-only quantization at load (--quantization int8 | int4, vLLM's flag).
//
// Every linear-layer matrix (wq wk wv wo w_gate w_up w_down of each layer) of an fp32 /
// fp16 / bf16 model is re-encoded in a GGUF block layout, so every backend reads it with the
// kernels it already has for GGUF files:
//   int8 -> Q8_0: 32 weights per fp16 scale d = max|x| / 127, q = round(x / d) (symmetric),
//           llama.cpp's quantize_row_q8_0
//   int4 -> llama.cpp's Q4_K_M recipe (llama-quant.cpp): Q4_K (256-weight super-blocks of 8
//           sub-blocks with 6-bit scales and mins, fitted by weighted least squares), Q6_K for
//           wv and w_down of the layers where llama.cpp's use_more_bits(i, n) holds (the first
//           and last eighth and every third between), and where a row is not a multiple of
//           256 its fallback: Q5_0 for Q4_K, Q8_0 for Q6_K
// with the reference quantizers of format/ggml_quantize.h, byte for byte llama.cpp's. The
// token embedding and the LM head stay as stored (as vLLM, AWQ and GPTQ leave them;
// llama-quantize makes the LM head Q6_K).
#pragma once

#include <string>

#include "inferd/status.h"
#include "model/model.h"

namespace inferd {

// The main GGML type for a --quantization value: kQ8_0 for "int8", kQ4_K for "int4", and kF32
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
