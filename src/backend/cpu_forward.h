// The CPU implementation of ops::Ops (ops/ops.h): the layer builder of ops/forward.h run
// on the kernels of backend/cpu over a host KvCache. CpuBackend owns one; tests use it
// directly.
//
// Thread-safety: one Forward() at a time per instance (it owns scratch buffers).
#pragma once

#include <cstdint>
#include <vector>

#include "inferd/status.h"
#include "kv/kv_cache.h"
#include "model/config.h"
#include "model/weights.h"
#include "ops/batch.h"
#include "ops/ops.h"

namespace inferd {

// Repacks every matrix of `weights` once into the layout of the CPU's quantized kernels
// (backend/cpu/qgemm.h) and fuses [q; k; v] and [gate; up]; the copies are kept in
// weights.storage. Matrices without a packed form are left as they are. A no-op when done
// before. INFERD_CPU_MATMUL=fp32 in the environment skips it, so that every matmul runs in
// fp32 on dequantized rows (the exact mode tests use).
void PrepareCpuWeights(ModelWeights& weights);

class CpuForward : public ops::Ops {
 public:
  // max_model_len: the engine's maximum sequence length (picks LongRoPE's factor set,
  // ModelConfig::LongRopeFactors); 0: the model's context length.
  CpuForward(const ModelConfig& config, const ModelWeights& weights, int64_t max_model_len = 0);

  // logits: [batch.logits_rows.size(), vocab_size], written in the order of logits_rows.
  // The KV cache must have blocks for every position in the batch (block tables).
  Status Forward(const ForwardBatch& batch, KvCache& kv, float* logits);

  const ModelConfig& config() const { return config_; }
  // Bytes of scratch Forward() grows to for a batch of num_tokens rows.
  static int64_t ScratchBytes(const ModelConfig& config, int64_t num_tokens);

  // ops::Ops
  Status Embed(ops::Act out, float scale) override;
  Status AddRmsNorm(ops::Act x, std::optional<ops::Act> delta, int64_t layer, ops::Weight norm, float eps,
                    ops::Act out) override;
  Status RmsNorm(ops::Act a, int64_t layer, ops::Weight norm, float eps) override;
  Status HeadRmsNorm(ops::Act a, int64_t layer, ops::Weight norm, float eps) override;
  Status Linear(int64_t layer, ops::Weight w, bool bias) override;
  Status Rope(int64_t layer) override;
  Status Attention(int64_t layer, const ops::AttnParams& p) override;
  Status GatedAct(Activation act) override;
  Status Add(ops::Act x, ops::Act delta) override;
  Status Logits(int64_t first, int64_t count, float eps, float softcap) override;

 private:
  float* Buf(ops::Act a);
  int64_t Width(ops::Act a) const;
  const std::vector<float>& NormWeight(int64_t layer, ops::Weight w) const;
  // cos_sin [rows_, head_dim]: (cos, sin) x mscale of position x inv_freq for each row.
  void Tabulate(const std::vector<double>& inv_freq, double mscale, std::vector<float>& cos_sin);

  const ModelConfig& config_;
  const ModelWeights& weights_;
  std::vector<double> inv_freq_, inv_freq_local_;  // [head_dim / 2] global and local layers
  std::vector<float> alibi_slopes_;                // [num_heads] when the model uses ALiBi
  // The batch being run (set by Forward).
  const ForwardBatch* batch_ = nullptr;
  KvCache* kv_ = nullptr;
  std::vector<ops::AttnSeq> group_seqs_;  // Attention: the batch's sequences with one group's tables
  float* logits_ = nullptr;
  int64_t rows_ = 0;
  // Scratch, grown to the largest batch seen: one array per ops::Act, cos_sin [T, head_dim]
  // per RoPE table, gathered logits rows [n, hidden].
  std::vector<float> acts_[10];
  std::vector<float> cos_sin_, cos_sin_local_, head_rows_;
};

}  // namespace inferd
