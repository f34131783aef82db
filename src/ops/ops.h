// The op interface of the forward pass (docs/model-families.md). The layer builder
// (ops/forward.h) composes these calls from a ModelConfig; each backend implements them
// over its own buffers and kernels (CPU: backend/cpu_backend.cc, CUDA:
// backend/cuda/cuda_backend.cc). Handles name activations and weights by role so that
// this interface depends on no backend's memory and on no weight storage.
//
// Batch invariance: every implementation computes each output element with an arithmetic
// order that depends only on that element's inputs (its token row, its weight row, its
// sequence's KV), never on the number of tokens in the batch, their order, or the thread
// count.
#pragma once

#include <cstdint>
#include <optional>

#include "inferd/status.h"
#include "model/config.h"
#include "ops/batch.h"

namespace inferd::ops {

// Activations, each [T, width] for the T rows of the batch being run. Widths: kX, kXn, kO
// hidden; kQ, kAttn num_heads * head_dim; kK, kV num_kv_heads * head_dim; kGate, kUp,
// kAct intermediate. Where they live is the backend's choice (the CUDA backend keeps q, k,
// v side by side in one buffer and gate, up in another).
enum class Act : uint8_t { kX, kXn, kQ, kK, kV, kAttn, kO, kGate, kUp, kAct };

// A layer's weights by role (model/weights.h names them); the backend resolves a role to
// its own copy.
enum class Weight : uint8_t {
  kAttnNorm, kQNorm, kKNorm, kPostAttnNorm, kFfnNorm, kPostFfnNorm,  // RMSNorm weights
  kQkv,     // [q; k; v] projections (+ biases): kXn -> kQ, kK, kV
  kO,       // attention output: kAttn -> kO
  kGateUp,  // [gate; up]: kXn -> kGate, kUp
  kDown,    // kAct -> kO
};

struct AttnParams {
  float scale = 1.0f;          // query scale (1 / sqrt(head_dim) unless the family says otherwise)
  int64_t sliding_window = 0;  // 0: keys [0, p]; W: keys (p - W, p] for a query at position p
  float softcap = 0.0f;        // > 0: scaled scores s become softcap * tanh(s / softcap)
  bool alibi = false;          // ALiBi: scores += AlibiSlopes(num_heads)[h] * (key - query position)
};

class Ops {
 public:
  virtual ~Ops() = default;
  // out = token embeddings of the batch's rows, times `scale` when it is not 0.
  virtual Status Embed(Act out, float scale) = 0;
  // x += delta (when given); out = RmsNorm(x) * w.
  virtual Status AddRmsNorm(Act x, std::optional<Act> delta, int64_t layer, Weight norm, float eps, Act out) = 0;
  // a = RmsNorm(a) * w, in place (the post norms).
  virtual Status RmsNorm(Act a, int64_t layer, Weight norm, float eps) = 0;
  // RMSNorm of every head_dim slice of a ([T, heads, head_dim]) with the [head_dim] weight.
  virtual Status HeadRmsNorm(Act a, int64_t layer, Weight norm, float eps) = 0;
  // The projection of `w` (inputs and outputs as Weight lists them); `bias` adds the
  // layer's q/k/v biases (kQkv only).
  virtual Status Linear(int64_t layer, Weight w, bool bias) = 0;
  // Rotary embedding of kQ and kK in place with the layer's table (positions of the batch).
  virtual Status Rope(int64_t layer) = 0;
  // Writes kK, kV into the layer's KV cache at the rows' positions, then kAttn = causal
  // attention of kQ over the cache through the block tables.
  virtual Status Attention(int64_t layer, const AttnParams& p) = 0;
  // kAct = act(kGate) * kUp.
  virtual Status GatedAct(Activation act) = 0;
  // x += delta.
  virtual Status Add(Act x, Act delta) = 0;
  // Logits of the batch's logits rows [first, first + count): RmsNorm(kX row) with the
  // output norm, the LM head, then c * tanh(logit / c) when softcap c is not 0.
  virtual Status Logits(int64_t first, int64_t count, float eps, float softcap) = 0;
};

}  // namespace inferd::ops
