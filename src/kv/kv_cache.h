// Paged KV cache storage. The block pool that hands out its blocks is in block_pool.h.
//
// The cache is split into fixed-size blocks of `block_size` token slots. A sequence owns a
// block table (list of block ids); token position p of the sequence lives in block
// table[p / block_size] at offset p % block_size. The scheduler and KV manager see only
// block ids; the backend owns the tensors below and reads them through block tables.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <span>
#include <vector>

#include "inferd/status.h"
#include "kv/block_pool.h"  // BlockPool, for users that include only this header

namespace inferd {

struct KvCacheShape {
  int64_t num_layers = 0, num_kv_heads = 0, head_dim = 0;
  int64_t block_size = 16, num_blocks = 0;
  int64_t bytes_per_token() const { return 2 * num_layers * num_kv_heads * head_dim * 4; }
};

// K and V tensors for every layer, fp32, each block_size * num_kv_heads * head_dim floats per
// block; the backend decides the layout inside a block (CPU: ops.h KvLayerView).
class KvCache {
 public:
  explicit KvCache(const KvCacheShape& shape);
  const KvCacheShape& shape() const { return shape_; }
  float* k(int64_t layer) { return k_[layer].get(); }
  float* v(int64_t layer) { return v_[layer].get(); }
  const float* k(int64_t layer) const { return k_[layer].get(); }
  const float* v(int64_t layer) const { return v_[layer].get(); }
  // Floats per block per layer for one of K or V.
  int64_t block_stride() const { return shape_.block_size * shape_.num_kv_heads * shape_.head_dim; }
  size_t nbytes() const;

 private:
  KvCacheShape shape_;
  // Left uninitialized on purpose: large allocations are mapped lazily, so start-up does
  // not touch every page; a slot is always written before attention reads it.
  std::vector<std::unique_ptr<float[]>> k_, v_;
};

// Number of blocks that fit in `bytes` (at least 1 block is required).
int64_t NumBlocksForBytes(const KvCacheShape& shape, int64_t bytes);
// Parses "512MiB", "2GiB", "1G", "1073741824" into bytes.
StatusOr<int64_t> ParseByteSize(const std::string& text);

}  // namespace inferd
