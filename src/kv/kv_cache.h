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
#include "kv/kv_layout.h"

namespace inferd {

// Element type of the cached K and V.
// kBF16 is the CUDA backend's cache for bfloat16 models (the CPU kernels use kF32 / kF16).
// kInt8, kFp8E4M3 and kFp8E5M2 are 1-byte codes with one fp16 scale per (token, KV head) for
// K and one for V, set when the token is written (backend/cpu/kv_quant.h has the definition;
// CPU backend only for now).
enum class KvDtype : uint8_t { kF32, kF16, kBF16, kInt8, kFp8E4M3, kFp8E5M2 };
const char* KvDtypeName(KvDtype d);  // "fp32" | "fp16" | "bf16" | "int8" | "fp8_e4m3" | "fp8_e5m2"
inline bool KvDtypeIsQuantized(KvDtype d) {
  return d == KvDtype::kInt8 || d == KvDtype::kFp8E4M3 || d == KvDtype::kFp8E5M2;
}
// vLLM's --kv-cache-dtype values: auto, float32/fp32, float16/fp16/half, bfloat16/bf16, fp8
// (= fp8_e4m3, OCP E4M3FN), fp8_e4m3, fp8_e5m2, and int8. "auto" is fp32 for a model whose
// weights are all fp32 and fp16 otherwise (llama.cpp's default cache type for quantized
// models). Unknown values are errors; whether a backend runs a dtype is the backend's check.
StatusOr<KvDtype> ParseKvDtype(const std::string& name, bool weights_are_fp32);
// The accepted names, for messages and --help.
inline constexpr const char* kKvDtypeNames = "auto, float16, bfloat16, float32, fp8, fp8_e4m3, fp8_e5m2 or int8";

struct KvCacheShape {
  // Layers whose K and V one block holds: the layers of one KV group (kv_layout.h), all of
  // the model's layers when it has one attention type.
  int64_t layers_per_block = 0, num_kv_heads = 0, head_dim = 0;
  int64_t block_size = 16, num_blocks = 0;
  KvDtype dtype = KvDtype::kF32;
  KvLayout layout;  // empty: one group of layers_per_block layers (tests, one attention type)
  int64_t elem_bytes() const { return dtype == KvDtype::kF32 ? 4 : KvDtypeIsQuantized(dtype) ? 1 : 2; }
  // Bytes of the scale of one (token, KV head) vector: 2 (fp16) for the 1-byte codes, else 0.
  int64_t scale_bytes() const { return KvDtypeIsQuantized(dtype) ? 2 : 0; }
  // Bytes of one token slot of one block (K and V of layers_per_block layers, with their
  // scales): 2 * layers * kv_heads * (head_dim * elem_bytes + scale_bytes).
  int64_t bytes_per_token() const {
    return 2 * layers_per_block * num_kv_heads * (head_dim * elem_bytes() + scale_bytes());
  }
  int64_t bytes_per_block() const { return block_size * bytes_per_token(); }
  // The tensor slot and KV group of model layer `l`.
  int64_t slot(int64_t l) const { return layout.layer_slot.empty() ? l : layout.layer_slot[static_cast<size_t>(l)]; }
  int64_t group(int64_t l) const { return layout.layer_group.empty() ? 0 : layout.layer_group[static_cast<size_t>(l)]; }
  int64_t num_groups() const { return layout.groups.empty() ? 1 : layout.num_groups(); }
};

// K and V tensors for each of shape.layers_per_block slots, shape.dtype elements, block_size * num_kv_heads *
// head_dim per block; the backend decides the layout inside a block (CPU: cpu_ops.h
// KvLayerView). Quantized dtypes add K and V scale arrays of block_size * num_kv_heads fp16
// per block (CPU: [num_blocks][num_kv_heads][block_size]).
class KvCache {
 public:
  explicit KvCache(const KvCacheShape& shape);
  const KvCacheShape& shape() const { return shape_; }
  // Slot `slot` (shape().slot(layer) for a model layer).
  void* k(int64_t slot) { return k_[slot].get(); }
  void* v(int64_t slot) { return v_[slot].get(); }
  // Scales of slot `slot`; nullptr unless the dtype is quantized.
  uint16_t* k_scale(int64_t slot) { return ks_.empty() ? nullptr : reinterpret_cast<uint16_t*>(ks_[slot].get()); }
  uint16_t* v_scale(int64_t slot) { return vs_.empty() ? nullptr : reinterpret_cast<uint16_t*>(vs_[slot].get()); }
  // Elements per block per layer for one of K or V.
  int64_t block_stride() const { return shape_.block_size * shape_.num_kv_heads * shape_.head_dim; }
  size_t nbytes() const;

 private:
  KvCacheShape shape_;
  // Resident from construction (every page is faulted in: see the constructor) but not
  // initialised: a slot is always written before attention reads it.
  std::vector<std::unique_ptr<uint8_t[]>> k_, v_, ks_, vs_;
};

// Number of blocks that fit in `bytes` (at least 1 block is required).
int64_t NumBlocksForBytes(const KvCacheShape& shape, int64_t bytes);

}  // namespace inferd
