// Llama-family decoder (llama, mistral, qwen2, baichuan-7B, smollm) on the CPU ops.
//
// Forward() runs one flat batch: rows from any number of sequences, each a contiguous
// slice with its own positions and KV block table (prefill chunks and decodes mixed).
// Thread-safety: one Forward() at a time per instance (it owns scratch buffers).
#pragma once

#include <cstdint>
#include <vector>

#include "inferd/status.h"
#include "kv/kv_cache.h"
#include "model/config.h"
#include "model/weights.h"
#include "ops/ops.h"

namespace inferd {

struct ForwardBatch {
  std::vector<int32_t> token_ids;    // [T]
  std::vector<int32_t> positions;    // [T] position of each row within its sequence
  std::vector<ops::AttnSeq> seqs;    // row ranges and block tables
  std::vector<int64_t> logits_rows;  // rows whose logits are wanted, in output order
};

class LlamaModel {
 public:
  LlamaModel(const ModelConfig& config, const ModelWeights& weights);

  // logits: [batch.logits_rows.size(), vocab_size], written in the order of logits_rows.
  // The KV cache must have blocks for every position in the batch (block tables).
  Status Forward(const ForwardBatch& batch, KvCache& kv, float* logits);

  const ModelConfig& config() const { return config_; }
  // RoPE inverse frequencies [head_dim / 2] with scaling and freq factors applied.
  const std::vector<double>& inv_freq() const { return inv_freq_; }
  // Bytes of scratch Forward() grows to for a batch of num_tokens rows.
  static int64_t ScratchBytes(const ModelConfig& config, int64_t num_tokens);

 private:
  void ComputeRope(const std::vector<int32_t>& positions);

  const ModelConfig& config_;
  const ModelWeights& weights_;
  std::vector<double> inv_freq_;  // [head_dim / 2], scaling and freq factors applied
  // Scratch, grown to the largest batch seen: x/xn [T, hidden], q/attn [T, q_dim],
  // k/v [T, kv_dim], gate/up [T, ffn], cos_sin [T, head_dim].
  std::vector<float> x_, xn_, q_, k_, v_, attn_, gate_, up_, cos_sin_, rows_;
};

}  // namespace inferd
