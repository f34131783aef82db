// The CPU backend: the layer builder (ops/forward.h) on the CPU kernels (CpuForward) over a
// host KvCache.
#include <fmt/format.h>

#include <algorithm>

#include "backend/backend.h"
#include "backend/cpu_forward.h"
#include "util/bytes.h"
#include "util/thread_pool.h"

namespace inferd {
namespace {

constexpr int64_t kDefaultCpuKvBytes = int64_t{1} << 30;

class CpuBackend : public Backend {
 public:
  CpuBackend(const LoadedModel& model, const KvCacheShape& shape, const BackendOptions& options)
      : kv_(shape), forward_(model.config, model.weights, options.max_model_len) {
    report_.device = fmt::format("cpu ({} threads)", ThreadPool::Global().num_threads());
    report_.total = UsableMemoryBytes();
    report_.weights = static_cast<int64_t>(model.weights.nbytes);
    report_.packed_weights = static_cast<int64_t>(model.weights.packed_nbytes);
    report_.kv_cache = static_cast<int64_t>(kv_.nbytes());
    const int64_t rows = std::max(options.max_num_batched_tokens, options.max_num_seqs);
    report_.activations = CpuForward::ScratchBytes(model.config, rows) +
                          options.max_num_seqs * model.config.vocab_size * static_cast<int64_t>(sizeof(float));
  }
  std::string name() const override { return "cpu"; }
  const KvCacheShape& kv_shape() const override { return kv_.shape(); }
  Status Forward(const ForwardBatch& batch, float* logits) override { return forward_.Forward(batch, kv_, logits); }
  MemoryReport memory() const override { return report_; }

 private:
  KvCache kv_;
  CpuForward forward_;
  MemoryReport report_;
};

}  // namespace

StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(LoadedModel& model, const BackendOptions& options) {
  KvCacheShape shape = options.kv;
  if (shape.dtype == KvDtype::kBF16) {
    return Unimplemented("--kv-cache-dtype bfloat16 needs the CUDA backend; the CPU cache is float16, float32, fp8, "
                         "fp8_e4m3, fp8_e5m2 or int8");
  }
  int64_t bytes = options.kv_cache_bytes;
  if (bytes > 0) {
    INFERD_RETURN_IF_ERROR(CheckFitsInMemory(bytes, "--kv-cache-memory"));
  } else {
    // Default: 1 GiB, and at least one sequence of the maximum length, which must fit in
    // memory: the length may come from a file (max_position_embeddings: 1e12).
    const int64_t one_sequence = SaturatingMul(
        shape.layout.BlocksPerRequest(options.max_model_len, shape.block_size, options.max_num_batched_tokens) + 2,
        shape.bytes_per_block());
    Status fits = CheckFitsInMemory(
        one_sequence, fmt::format("a KV cache for one sequence of {} tokens ({})", options.max_model_len,
                                  options.max_model_len_source));
    if (!fits.ok()) {
      const int64_t usable = UsableMemoryBytes();
      return ResourceExhausted(fmt::format("{}; pass --max-model-len (about {} tokens fit in half of it) or "
                                           "--kv-cache-memory",
                                           fits.message(), usable / 2 / std::max<int64_t>(shape.bytes_per_token() * shape.num_groups(), 1)));
    }
    bytes = std::max(kDefaultCpuKvBytes, one_sequence);
  }
  shape.num_blocks = NumBlocksForBytes(shape, bytes);
  PrepareCpuWeights(model.weights);  // repack once for the CPU kernels (no-op when done)
  return std::unique_ptr<Backend>(new CpuBackend(model, shape, options));
}

}  // namespace inferd
