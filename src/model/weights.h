// Weight tensors of a decoder-only transformer, as views into their storage (the GGUF or
// safetensors mapping, or owned buffers for dummy / converted weights). Which of them a
// family has is in its ModelConfig (model/config.h); absent ones are empty.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "format/matrix.h"

namespace inferd {

struct LayerWeights {
  std::vector<float> attn_norm;          // [hidden]
  Matrix wq, wk, wv, wo;                 // [q_dim, hidden] [kv_dim, hidden] x2 [hidden, q_dim]
  std::vector<float> bq, bk, bv;         // QKV biases (qwen2); empty when absent
  std::vector<float> q_norm, k_norm;     // [head_dim] QK-norm (qwen3, gemma3); empty when absent
  std::vector<float> post_attn_norm;     // [hidden] norm of the attention output (gemma2/3)
  std::vector<float> ffn_norm;           // [hidden]
  std::vector<float> post_ffn_norm;      // [hidden] norm of the FFN output (gemma2/3)
  Matrix w_gate, w_up, w_down;           // [ffn, hidden] x2, [hidden, ffn]
  // Backend-fused copies (the CPU backend's PrepareWeights), or empty: [q; k; v] and
  // [gate; up] rows, packed only (data is null).
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
  // Bytes of the CPU kernels' repacked copies of matrices (PrepareCpuWeights), held beside
  // the file's mapping; 0 when nothing was repacked.
  size_t packed_nbytes = 0;
  // Set by the CPU backend's PrepareWeights (a model that goes to the GPU is never
  // repacked for the CPU).
  bool prepared = false;
};

}  // namespace inferd
