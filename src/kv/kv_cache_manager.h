// KV-cache manager: per-request block tables on top of the BlockPool, with prefix caching
// (vLLM V1's KVCacheManager for one full-attention group). It maps requests to block ids and
// token counts only; the backend owns the KV tensors.
//
// Life of a request (the scheduler's calls, in order):
//   hit = GetComputedBlocks(prompt, key)              once, when the request is first scheduled
//   AllocateSlots(id, hit.num_tokens, n, hit)         first allocation adopts the hit
//   ... step runs ... CacheBlocks(id, tokens, computed, key)
//   AllocateSlots(id, computed, n)                    every later step (new_computed empty)
//   Free(id)                                          finished, aborted or preempted
// Nothing may touch the pool between GetComputedBlocks and the AllocateSlots that adopts its
// result: a hit on a free block is only protected once AllocateSlots has touched it.
//
// Invariants (beyond the pool's, see block_pool.h):
//   - a request's table holds one reference on each of its blocks; Free drops exactly those;
//   - the first hashes_.size() blocks of a request are full and hashed, and hashes_[i] is the
//     chain hash of tokens [0, (i + 1) * block_size) (the pool may have cached that hash on
//     another block first; the chain is kept per request so it continues regardless).
//
// Thread-safety: none; engine thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kv/block_pool.h"

namespace inferd {

// Prefix-cache counters in tokens, as vLLM's: `queries` counts the prompt tokens looked up,
// `hits` the tokens found cached. Monotonic (ResetPrefixCache keeps them).
struct PrefixCacheStats {
  int64_t queries = 0, hits = 0;
};

class KvCacheManager {
 public:
  KvCacheManager(int64_t num_blocks, int64_t block_size, bool enable_prefix_caching);

  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return pool_.num_blocks(); }
  int64_t num_free_blocks() const { return pool_.num_free_blocks(); }
  double usage() const { return pool_.usage(); }

  // Longest prefix of `tokens` made of cached full blocks (hash chain with extra_key). Never
  // covers the whole sequence: at most tokens.size() - 1 tokens are looked up, so when every
  // full block is cached and the sequence ends on a block boundary, the last block is left to
  // compute (the model needs the last token's logits). num_tokens == blocks.size() * block_size.
  // With caching disabled returns nothing and records nothing.
  struct ComputedBlocks {
    std::vector<int32_t> blocks;
    int64_t num_tokens = 0;
  };
  ComputedBlocks GetComputedBlocks(std::span<const int32_t> tokens, uint64_t extra_key,
                                   bool record_stats = true);

  // Makes room for `num_new_tokens` more tokens of request `id`, whose first
  // `num_computed_tokens` are already in its blocks. `new_computed` (first allocation only,
  // else empty) are cached blocks to adopt: they are touched and put at the front of the table,
  // and their tokens count as computed — the request needs blocks for
  // max(num_computed_tokens, new_computed.num_tokens) + num_new_tokens tokens, so passing either
  // 0 or new_computed.num_tokens as num_computed_tokens on the first call means the same.
  // Returns the request's whole block table (valid until the next call that changes this
  // request), or nullopt when there are not enough free blocks — counting that adopting a
  // cached free block takes it out of the free pool — in which case nothing changes.
  std::optional<std::span<const int32_t>> AllocateSlots(const std::string& id, int64_t num_computed_tokens,
                                                        int64_t num_new_tokens,
                                                        const ComputedBlocks& new_computed);
  // Same with no blocks to adopt. (An overload, not a default argument: GCC rejects `= {}` for a
  // nested struct with member initializers inside its enclosing class.)
  std::optional<std::span<const int32_t>> AllocateSlots(const std::string& id, int64_t num_computed_tokens,
                                                        int64_t num_new_tokens) {
    return AllocateSlots(id, num_computed_tokens, num_new_tokens, ComputedBlocks{});
  }

  // After a step computed tokens [0, num_computed_tokens) of `tokens` (the request's prompt +
  // output so far): hashes and caches every block of the request that is now full and not yet
  // hashed, continuing the chain from its previous full block. A partial block is never cached.
  // No-op when caching is disabled or the request is unknown.
  void CacheBlocks(const std::string& id, std::span<const int32_t> tokens, int64_t num_computed_tokens,
                   uint64_t extra_key);

  // Frees all of the request's blocks, last block first, so its tail is evicted before its
  // (more shareable) head. Unknown ids (including a second Free) are ignored.
  void Free(const std::string& id);

  std::span<const int32_t> BlockTable(const std::string& id) const;  // empty if unknown
  const PrefixCacheStats& stats() const { return stats_; }
  // Drops the whole prefix cache; false (and nothing dropped) while any block is in use.
  bool ResetPrefixCache() { return pool_.ResetPrefixCache(); }

  const BlockPool& pool() const { return pool_; }  // for tests and metrics

 private:
  struct RequestBlocks {
    std::vector<int32_t> blocks;    // block table, in token order
    std::vector<BlockHash> hashes;  // chain hashes of the first hashes.size() (full) blocks
  };

  int64_t block_size_;
  bool enable_caching_;
  BlockPool pool_;
  std::unordered_map<std::string, RequestBlocks> requests_;
  PrefixCacheStats stats_;
};

}  // namespace inferd
