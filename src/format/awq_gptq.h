// AWQ and GPTQ int4 linear layers of Hugging Face checkpoints, repacked into rows of inferd's
// I4Z128 block type (format/ggml_types.h): one row per output feature, one block per 128
// inputs holding the group's fp16 scale s, its zero z and the 128 4-bit codes u, so that
// w = s (u - z) exactly as the checkpoint defines it. Nothing is re-quantized.
//
// Stored tensors (`out`/`in`: output/input features; G the group size, -1: G = in):
//   AWQ "gemm" (AutoAWQ WQLinear_GEMM; vLLM awq.py):
//     qweight int32 [in, out/8]: nibble i (bits 4i..4i+3) of word c is output column
//             8c + [0,2,4,6,1,3,5,7][i] (read back with shifts 4 [0,4,1,5,2,6,3,7])
//     qzeros  int32 [in/G, out/8], the same order; scales fp16 [in/G, out]
//     w[o][k] = scales[k/G][o] (q - z)
//   GPTQ (AutoGPTQ qlinear_cuda_old; vLLM gptq.py):
//     qweight int32 [in/8, out]: bits 4j..4j+3 of word (i, o) is input 8i + j
//     qzeros  int32 [in/G, out/8]: bits 4j..4j+3 of word (g, c) is output 8c + j
//     scales  fp16 [in/G, out]; g_idx int32 [in] (optional; must be k / G)
//     z = stored + 1 for checkpoint_format "gptq" (v1: AutoGPTQ stores z - 1), stored for
//     "gptq_v2"; w[o][k] = scales[g_idx[k]][o] (q - z)
// A group size that is a multiple of 128 (or -1, G = in) repeats s and z in each 128-block:
// lossless. Other group sizes, act-order (g_idx != k / G) and bad shapes or dtypes are
// errors naming the tensor.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "format/matrix.h"
#include "format/safetensors.h"
#include "inferd/status.h"

namespace inferd {

enum class Int4Packing { kAwq, kGptq, kGptqV2 };

// The tensors of one quantized linear layer `<name>.qweight`, `.qzeros`, `.scales`, and for
// GPTQ `.g_idx` (nullptr when the checkpoint has none).
struct Int4LayerTensors {
  const StTensor* qweight = nullptr;
  const StTensor* qzeros = nullptr;
  const StTensor* scales = nullptr;
  const StTensor* g_idx = nullptr;
};

// The layer as I4Z128 rows [out, in] in a new buffer, which *storage keeps alive (the
// Matrix points into it). group_size: the checkpoint's (-1: in). `name` (the layer's prefix,
// "model.layers.0.self_attn.q_proj") names it in errors. Rows are converted in parallel
// (ThreadPool::Global()).
StatusOr<Matrix> Int4LayerToI4Z128(Int4Packing packing, const std::string& name, const Int4LayerTensors& t,
                                   int64_t group_size, std::vector<std::shared_ptr<const void>>* storage);

}  // namespace inferd
