// Weight tensors of a Llama-family model, as views into their storage (the GGUF or
// safetensors mapping, or owned buffers for dummy / converted weights).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "format/ggml_types.h"

namespace inferd {

// A weight matrix [rows = out_features, cols = in_features]; row r starts at
// data + r * row_bytes and holds `cols` elements of `type` (GGML block layout).
struct Matrix {
  GgmlType type = GgmlType::kF32;
  int64_t rows = 0, cols = 0;
  const uint8_t* data = nullptr;
  size_t row_bytes = 0;
  // The backend's repacked copy for its fast kernels (ops::PrepareWeights), or nullptr;
  // owned by ModelWeights::storage (or whoever packed it).
  const void* packed = nullptr;

  bool empty() const { return data == nullptr; }
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes; }
  size_t nbytes() const { return static_cast<size_t>(rows) * row_bytes; }
};

struct LayerWeights {
  std::vector<float> attn_norm;          // [hidden]
  Matrix wq, wk, wv, wo;                 // [q_dim, hidden] [kv_dim, hidden] x2 [hidden, q_dim]
  std::vector<float> bq, bk, bv;         // Qwen2 QKV biases; empty when absent
  std::vector<float> ffn_norm;           // [hidden]
  Matrix w_gate, w_up, w_down;           // [ffn, hidden] x2, [hidden, ffn]
  // Backend-fused copies (ops::PrepareWeights), or empty: [q; k; v] and [gate; up] rows,
  // packed only (data is null; use with ops::MatMulSegments).
  Matrix wqkv, w_gate_up;
};

struct ModelWeights {
  Matrix tok_embd;                   // [vocab, hidden]
  std::vector<float> output_norm;    // [hidden]
  Matrix output;                     // [vocab, hidden]; same storage as tok_embd when tied
  std::vector<float> rope_freq_factors;  // [head_dim / 2] (GGUF rope_freqs), empty if none
  std::vector<LayerWeights> layers;
  // Keeps mappings and owned buffers alive for the views above.
  std::vector<std::shared_ptr<const void>> storage;
  size_t nbytes = 0;  // bytes of all matrices and vectors
  // Set by ops::PrepareWeights (the CPU backend runs it when it is created: a model that
  // goes to the GPU is never repacked for the CPU).
  bool prepared = false;
};

}  // namespace inferd
