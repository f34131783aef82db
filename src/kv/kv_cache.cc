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
    case KvDtype::kF32: return "fp32";
    case KvDtype::kF16: return "fp16";
    case KvDtype::kBF16: return "bf16";
    case KvDtype::kInt8: return "int8";
    case KvDtype::kFp8E4M3: return "fp8_e4m3";
    case KvDtype::kFp8E5M2: return "fp8_e5m2";
  }
  return "?";
}

StatusOr<KvDtype> ParseKvDtype(const std::string& name, bool weights_are_fp32) {
  if (name == "auto") return weights_are_fp32 ? KvDtype::kF32 : KvDtype::kF16;
  if (name == "float32" || name == "fp32") return KvDtype::kF32;
  if (name == "float16" || name == "fp16" || name == "half") return KvDtype::kF16;
  if (name == "bfloat16" || name == "bf16") return KvDtype::kBF16;  // CUDA backend only
  if (name == "fp8" || name == "fp8_e4m3") return KvDtype::kFp8E4M3;  // vLLM: fp8 is e4m3
  if (name == "fp8_e5m2") return KvDtype::kFp8E5M2;
  if (name == "int8") return KvDtype::kInt8;
  return InvalidArgument("unknown --kv-cache-dtype '" + name + "': use " + kKvDtypeNames);
}

KvCache::KvCache(const KvCacheShape& shape) : shape_(shape) {
  const size_t n = static_cast<size_t>(shape.num_blocks * block_stride() * shape.elem_bytes());
  // Scales: one per (block, KV head, slot).
  const size_t ns = static_cast<size_t>(shape.num_blocks * shape.block_size * shape.num_kv_heads * shape.scale_bytes());
  for (int64_t l = 0; l < shape.layers_per_block; ++l) {
    k_.emplace_back(new uint8_t[n]);
    v_.emplace_back(new uint8_t[n]);
    if (ns > 0) {
      ks_.emplace_back(new uint8_t[ns]);
      vs_.emplace_back(new uint8_t[ns]);
    }
  }
  // Fault every page in now (one byte per page, in parallel: ~0.2 s per GiB on 2 cores).
  // Left lazy, the pool's pages become resident as traffic first reaches them, so RSS
  // climbs by up to the whole pool under load and never comes back down: it looks like a
  // leak, and on an overcommitted machine the OOM killer strikes mid-load instead of the
  // server failing at start-up. The pool is the server's memory; it is taken up front.
  constexpr size_t kPage = 4096;
  const int64_t per_slot = ns > 0 ? 4 : 2;  // buffers per slot: k, v (, ks, vs)
  const int64_t buffers = per_slot * shape.layers_per_block;
  ThreadPool::Global().ParallelFor(buffers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const size_t slot = static_cast<size_t>(b / per_slot);
      const int64_t which = b % per_slot;
      uint8_t* p = (which == 0 ? k_ : which == 1 ? v_ : which == 2 ? ks_ : vs_)[slot].get();
      const size_t size = which < 2 ? n : ns;
      for (size_t off = 0; off < size; off += kPage) p[off] = 0;
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
