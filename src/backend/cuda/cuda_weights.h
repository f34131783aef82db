// Model weights on the GPU: dense matrices in the compute dtype (cuBLAS), or GGUF
// Q8_0 / Q4_0 / Q4_K blocks kept as they are for the weight-only quantized kernels.
// QKV and gate/up are fused into one matrix each (one GEMM, outputs side by side).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/cuda/cuda_common.h"
#include "backend/cuda/kernels.h"
#include "model/config.h"
#include "model/weights.h"

namespace inferd::cuda {

struct DeviceMatrix {
  int64_t rows = 0, cols = 0;
  bool quantized = false;           // GGUF blocks of `qtype`; else dense in the model dtype
  GgmlType qtype = GgmlType::kF32;
  size_t row_bytes = 0;
  void* data = nullptr;
};

struct DeviceLayer {
  float* attn_norm = nullptr;   // [hidden]
  float* ffn_norm = nullptr;    // [hidden]
  DeviceMatrix wqkv;            // [q_dim + 2 kv_dim, hidden]
  float* bqkv = nullptr;        // [q_dim + 2 kv_dim] (Qwen2), or nullptr
  DeviceMatrix wo;              // [hidden, q_dim]
  DeviceMatrix w_gate_up;       // [2 ffn, hidden]
  DeviceMatrix w_down;          // [hidden, ffn]
};

struct DeviceWeights {
  DeviceMatrix tok_embd;        // dense [vocab, hidden]
  DeviceMatrix output;          // dense [vocab, hidden] (shares tok_embd's memory when tied)
  float* output_norm = nullptr;
  std::vector<DeviceLayer> layers;
  int64_t max_dequant_elems = 0;  // largest quantized matrix, for the dequantize workspace
};

// dtype "auto": bfloat16 when the checkpoint's matrices are bf16, else float16 (vLLM's rule).
StatusOr<DType> ResolveDType(const std::string& name, const ModelWeights& w);

// Uploads (synchronously) every tensor the forward pass needs. Matrices of a type with a
// quantized kernel (QuantMatMulSupports) stay quantized unless dt is float32; others are
// dequantized on the host and rounded to dt. AWQ / GPTQ layers (I4Z128) are Unimplemented.
StatusOr<DeviceWeights> UploadWeights(const ModelConfig& c, const ModelWeights& w, DType dt, DeviceMemory& mem);

}  // namespace inferd::cuda
