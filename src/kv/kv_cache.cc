#include "kv/kv_cache.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string>

#include "util/thread_pool.h"

namespace inferd {

const char* KvDtypeName(KvDtype d) {
  switch (d) {
    case KvDtype::kF16: return "fp16";
    case KvDtype::kBF16: return "bf16";
    default: return "fp32";
  }
}

StatusOr<KvDtype> ParseKvDtype(const std::string& name, bool weights_are_fp32) {
  if (name == "auto") return weights_are_fp32 ? KvDtype::kF32 : KvDtype::kF16;
  if (name == "float32" || name == "fp32") return KvDtype::kF32;
  if (name == "float16" || name == "fp16" || name == "half") return KvDtype::kF16;
  if (name == "bfloat16" || name == "bf16") return KvDtype::kBF16;  // CUDA backend only
  if (name.rfind("fp8", 0) == 0) {
    return Unimplemented("--kv-cache-dtype " + name + " is not supported yet; use auto, float16, bfloat16 or float32");
  }
  return InvalidArgument("unknown --kv-cache-dtype '" + name + "': use auto, float16, bfloat16 or float32");
}

KvCache::KvCache(const KvCacheShape& shape) : shape_(shape) {
  const size_t n = static_cast<size_t>(shape.num_blocks * block_stride() * shape.elem_bytes());
  for (int64_t l = 0; l < shape.layers_per_block; ++l) {
    k_.emplace_back(new uint8_t[n]);
    v_.emplace_back(new uint8_t[n]);
  }
  // Fault every page in now (one byte per page, in parallel: ~0.2 s per GiB on 2 cores).
  // Left lazy, the pool's pages become resident as traffic first reaches them, so RSS
  // climbs by up to the whole pool under load and never comes back down: it looks like a
  // leak, and on an overcommitted machine the OOM killer strikes mid-load instead of the
  // server failing at start-up. The pool is the server's memory; it is taken up front.
  constexpr size_t kPage = 4096;
  const int64_t buffers = 2 * shape.layers_per_block;
  ThreadPool::Global().ParallelFor(buffers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      uint8_t* p = (b % 2 == 0 ? k_ : v_)[static_cast<size_t>(b / 2)].get();
      for (size_t off = 0; off < n; off += kPage) p[off] = 0;
    }
  });
}

size_t KvCache::nbytes() const {
  return static_cast<size_t>(shape_.num_blocks) * shape_.block_size * shape_.bytes_per_token();
}

int64_t NumBlocksForBytes(const KvCacheShape& shape, int64_t bytes) {
  const int64_t per_block = shape.bytes_per_block();
  return per_block > 0 ? bytes / per_block : 0;
}

}  // namespace inferd
