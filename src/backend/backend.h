// Backend: a model placed on a device together with its paged KV cache; runs flat
// batches (DESIGN.md §1, step 2). The engine owns one and sees only this interface:
// block ids and token counts go in, host logits come out.
//
//   CpuBackend  (cpu_backend.cc)        the layer builder on the CPU kernels (CpuForward)
//   CudaBackend (cuda/cuda_backend.cc)  NVIDIA GPUs, built with -DINFERD_CUDA=ON
//
// Thread-safety: one Forward() at a time (the engine thread).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "inferd/status.h"
#include "kv/kv_cache.h"
#include "ops/batch.h"
#include "model/model.h"
#include "sample/sampler.h"

namespace inferd {

struct BackendOptions {
  std::string device = "auto";    // auto (cuda:0 when built with CUDA and a GPU is present) | cpu | cuda | cuda:N
  std::string dtype = "auto";     // compute dtype on the GPU: auto | float16 | bfloat16 | float32
  KvCacheShape kv;                // everything but num_blocks, which the backend decides
  std::string kv_cache_dtype = "auto";  // as the user gave it (the GPU's "auto" is the model dtype)
  int64_t kv_cache_bytes = 0;     // --kv-cache-memory; 0: the backend's default
  int64_t max_model_len = 0;      // resolved maximum sequence length
  std::string max_model_len_source = "--max-model-len";  // for errors: the flag or the model's field
  int64_t max_num_batched_tokens = 512;
  int64_t max_num_seqs = 64;
  double gpu_memory_utilization = 0.9;  // fraction of GPU memory inferd may use
  bool enforce_eager = false;     // no CUDA graphs
};

// Where device memory goes (`inferd memory`, start-up log). Bytes.
struct MemoryReport {
  std::string device;        // "cpu" | "cuda:0 (NVIDIA H100 80GB HBM3, sm_90)"
  int64_t total = 0;         // device memory (GPU) or physical RAM (CPU)
  int64_t budget = 0;        // what inferd may use: gpu_memory_utilization x total (GPU), 0 on CPU
  int64_t weights = 0;
  int64_t packed_weights = 0;  // CPU: the kernels' repacked copies of weight matrices, beside the file's
  int64_t kv_cache = 0;
  int64_t activations = 0;   // per-step buffers sized for the largest batch, workspaces
  int64_t cuda_graphs = 0;
  int64_t other = 0;         // CUDA context, library handles: measured, not allocated by inferd
};
// Human-readable table of a report, one line per category with MiB and % of the budget.
std::string FormatMemoryReport(const MemoryReport& r);

// A row the engine asks the backend to sample on its device: `logits_index` indexes the
// batch's logits_rows; `input` (and the spans in it) stay valid during the call.
struct DeviceSample {
  int64_t logits_index = 0;
  SampleInput input;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu" | "cuda"
  // The KV cache as allocated (num_blocks set).
  virtual const KvCacheShape& kv_shape() const = 0;
  // logits: [batch.logits_rows.size(), vocab] on the host, in the order of logits_rows.
  virtual Status Forward(const ForwardBatch& batch, float* logits) = 0;
  virtual MemoryReport memory() const = 0;

  // Sampling on the device (so that only token ids come back), for backends that have it.
  // ForwardSample runs Forward, then samples `rows` there with the rules of SampleToken:
  // results[r.logits_index] gets the token and its raw logprob (rank and top logprobs are
  // not computed: the engine samples rows that want logprobs itself). Logits of the rows
  // not in `rows` are copied to `logits` as Forward does; the others' slots are untouched.
  // `inputs_ready` (may be empty) is called once the forward is enqueued and before the
  // rows' inputs are read: the engine finishes their grammar masks while the device runs.
  virtual bool can_sample() const { return false; }
  virtual Status ForwardSample(const ForwardBatch& batch, std::span<const DeviceSample> rows, float* logits,
                               std::span<SampleResult> results, const std::function<void()>& inputs_ready) {
    return Unimplemented("this backend does not sample on its device");
  }
};

// Creates the backend for options.device and allocates its KV cache. Errors: unknown
// device, CUDA requested in a build without it, no GPU, not enough memory.
// The CPU backend repacks `model`'s weights for its kernels (once: PrepareCpuWeights).
StatusOr<std::unique_ptr<Backend>> CreateBackend(LoadedModel& model, const BackendOptions& options);

// True when this binary was built with the CUDA backend.
bool CudaBackendBuilt();

// Implementation pieces.
StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(LoadedModel& model, const BackendOptions& options);
#ifdef INFERD_HAVE_CUDA
StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const LoadedModel& model, const BackendOptions& options,
                                                     int device_index);
// Number of usable CUDA devices, or an error that says why there are none.
StatusOr<int> CudaDeviceCount();
#endif

}  // namespace inferd
