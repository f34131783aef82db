// The CUDA backend's class (cuda_backend.cc: set-up, memory, graphs, sampling;
// cuda_ops.cc: its ops::Ops, which the layer builder drives). Internal to backend/cuda.
#pragma once

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>

#include "backend/backend.h"
#include "backend/batch_plan.h"
#include "backend/cuda/cuda_common.h"
#include "backend/cuda/cuda_weights.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/sample_host.h"
#include "backend/memory_plan.h"
#include "ops/forward.h"
#include "ops/ops.h"
#include "util/logging.h"

namespace inferd {

using cuda::DeviceMatrix;
using cuda::DeviceMemory;
using cuda::DType;

inline size_t Align(size_t n) { return (n + 255) & ~size_t{255}; }

// Offsets of the per-step metadata arrays in one pinned host block and one device block.
struct MetaLayout {
  size_t token_ids = 0, positions = 0, row_seq = 0, decode_rows = 0, prefill_tiles = 0, logits_rows = 0,
         block_tables = 0, slot_mapping = 0, total = 0;
  void Init(int64_t rows, int64_t seqs, int64_t blocks_per_seq) {
    size_t o = 0;
    auto take = [&](size_t bytes) {
      const size_t at = o;
      o += Align(bytes);
      return at;
    };
    const size_t r = static_cast<size_t>(rows);
    token_ids = take(r * 4);
    positions = take(r * 4);
    row_seq = take(r * 4);
    decode_rows = take(r * 4);
    prefill_tiles = take(r * 8);
    logits_rows = take(r * 4);
    block_tables = take(static_cast<size_t>(seqs * blocks_per_seq) * 4);
    slot_mapping = take(r * 8);
    total = o;
  }
};

class CudaBackend : public Backend, public ops::Ops {
 public:
  static StatusOr<std::unique_ptr<Backend>> Create(const LoadedModel& model, const BackendOptions& options,
                                                   int device);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  const KvCacheShape& kv_shape() const override { return kv_shape_; }
  Status Forward(const ForwardBatch& batch, float* logits) override;
  MemoryReport memory() const override { return report_; }
  bool can_sample() const override { return true; }
  Status ForwardSample(const ForwardBatch& batch, std::span<const DeviceSample> rows, float* logits,
                       std::span<SampleResult> results, const std::function<void()>& inputs_ready) override;

 private:
  CudaBackend(const LoadedModel& model, const BackendOptions& options) : model_(model), options_(options) {}
  Status Init(int device);
  Status AllocateBuffers();
  Status AllocateKvCache(int64_t num_blocks, bool profiling);
  Status ProfileRun();
  Status CaptureGraphs();
  Status Upload(const DeviceBatchPlan& plan);
  // Plans and uploads the batch and runs every layer; for a decode-only batch that fits a
  // captured graph, the graph (LM head included, logits rows in batch order). Returns
  // whether the graph ran.
  StatusOr<bool> RunBatch(const ForwardBatch& batch, const std::vector<int32_t>* logits_order);
  // Samples logits_dev_ rows [0, n) with params_host_ / edits_host_ into the results of
  // `targets` (index into results per device row; -1: not wanted).
  Status SampleDeviceRows(int64_t n, const std::vector<int64_t>& targets, std::span<SampleResult> results);
  // A device buffer that grows when a step needs more (sampling edits, masks).
  struct GrowingBuffer {
    void* dev = nullptr;
    size_t cap = 0;  // bytes
  };
  // Copies `bytes` from host to buf (growing it first, after a sync, when too small).
  Status UploadGrowing(const void* host, size_t bytes, GrowingBuffer& buf, const char* what);
  int64_t MaskWords() const { return (model_.config.vocab_size + 31) / 32; }
  // Enqueues the layers (ops::RunLayers) for `rows` rows of the uploaded plan.
  Status RunLayers(int64_t rows, int64_t num_decode_rows, int64_t num_prefill_tiles, int64_t max_context);
  // LM head for logits rows [first, first + count) of the uploaded plan into logits_dev_.
  Status RunLmHead(int64_t first, int64_t count);

 public:
  // ops::Ops (cuda_ops.cc): enqueued on stream_ for the step_rows_ rows of the uploaded plan.
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
  // The device buffer of an activation handle (x_, xn_, qkv_ + offset, ...).
  StatusOr<void*> ActPtr(ops::Act a) const;
  // y[T, w.rows] (row stride ldy) = x[T, w.cols] . W^T; out_fp32 writes fp32 (LM head).
  Status Gemm(const DeviceMatrix& w, const void* x, int64_t num_tokens, void* y, int64_t ldy, bool out_fp32 = false);
  template <typename T>
  T* Meta(size_t offset) const {
    return reinterpret_cast<T*>(static_cast<uint8_t*>(meta_dev_) + offset);
  }
  void* At(void* base, int64_t elems) const {
    return static_cast<uint8_t*>(base) + static_cast<size_t>(elems) * cuda::DTypeBytes(dt_);
  }

  const LoadedModel& model_;
  BackendOptions options_;
  int device_ = 0;
  cudaDeviceProp prop_{};
  DType dt_ = DType::kF16;
  cudaStream_t stream_ = nullptr;
  cuda::GemmRunner gemm_;
  DeviceMemory mem_;
  cuda::DeviceWeights w_;
  KvCacheShape kv_shape_;
  std::vector<void*> k_cache_, v_cache_;
  // Sizes every per-step buffer is allocated for.
  int64_t max_rows_ = 0, max_seqs_ = 0, max_blocks_per_seq_ = 0, logits_cap_ = 0;
  int64_t qkv_dim_ = 0;
  // Per-step buffers: x (residual) and xn [R, hidden]; qkv [R, q + 2 kv]; attn [R, q];
  // o [R, hidden] (attention and MLP outputs); gate_up [R, 2 ffn]; act [R, ffn].
  void *x_ = nullptr, *xn_ = nullptr, *qkv_ = nullptr, *attn_ = nullptr, *o_ = nullptr, *gate_up_ = nullptr,
       *act_ = nullptr;
  float* logits_dev_ = nullptr;  // [logits_cap, vocab]
  void* dequant_ws_ = nullptr;
  void* attn_ws_ = nullptr;
  size_t attn_ws_bytes_ = 0;
  void* blas_ws_ = nullptr;
  float* cos_sin_ = nullptr;  // [max_model_len, head_dim / 2, 2]
  MetaLayout meta_;
  void* meta_dev_ = nullptr;
  uint8_t* meta_host_ = nullptr;  // pinned
  DeviceBatchPlan plan_;
  // Device sampling: per-row parameters and logit edits (host staging and device copies),
  // the kernel's scratch rows, and the sampled ids / logprobs.
  std::vector<cuda::DeviceSampleParams> params_host_;
  std::vector<cuda::LogitEdit> edits_host_;
  std::vector<uint32_t> masks_host_;  // allowed-token masks of the constrained rows, MaskWords() each
  void* params_dev_ = nullptr;
  GrowingBuffer edits_dev_, masks_dev_;
  void* sample_ws_ = nullptr;
  size_t sample_ws_bytes_ = 0;
  int32_t* tokens_dev_ = nullptr;
  float* logprobs_dev_ = nullptr;
  std::vector<int32_t> tokens_host_;
  std::vector<float> logprobs_host_;
  std::vector<int64_t> graph_sizes_;
  std::map<int64_t, cudaGraphExec_t> graphs_;
  MemoryReport report_;
  // The step being enqueued (RunLayers): rows and the attention parameters of the plan.
  int64_t step_rows_ = 0;
  cuda::AttentionParams step_attn_;
};

// Features of `c` the CUDA kernels do not run yet: an Unimplemented naming them, or OK.
Status CheckCudaFeatures(const ModelConfig& c);


}  // namespace inferd
