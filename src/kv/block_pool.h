// Block pool: reference counts, the LRU free queue and the prefix cache (hash -> block) over the
// KV-cache block ids, as in vLLM V1's BlockPool. It sees block ids only, never device memory.
//
// Cache invariant (checked by CheckInvariants(), which the property test runs after every op):
//   1. Every block id in [0, num_blocks) is in exactly one state:
//        free       — ref_cnt == 0 and linked into the free queue exactly once, or
//        referenced — ref_cnt > 0 and not in the free queue.
//      num_free_blocks() == length of the free queue == number of blocks with ref_cnt 0.
//   2. Free-queue order is eviction order: the head is handed out (and its hash evicted) next.
//      Blocks whose ref_cnt drops to 0 are appended at the tail, so the least recently freed
//      block goes first (LRU).
//   3. The prefix cache is a bijection between cached hashes and blocks that carry a hash:
//      map[h] == b  <=>  block_hash(b) == h. A block may be cached whether free or referenced;
//      a free cached block keeps its contents until it is popped from the head, at which point
//      its hash is removed, so a later lookup misses instead of returning overwritten KV.
//   4. With caching disabled, no block ever carries a hash and every lookup misses.
//
// Hashing: a 64-bit hash, chained (each block's hash covers its parent's hash, hence the whole
// prefix), with a fixed seed. Collision stance: accepted, as vLLM did with its builtin hash. Two
// different prefixes collide with probability ~2^-64 per pair, i.e. ~n^2/2^65 for n cached
// blocks (~3e-8 for a million) — a collision would silently reuse another prefix's KV, but at
// that rate it is far below hardware error rates. The hash is NOT cryptographic: a client who
// can choose token ids could in principle craft a collision; deployments that share a cache
// between untrusting tenants should salt per tenant through extra_key (vLLM's cache_salt) or
// replace this function with SHA-256 (vLLM's sha256 option).
//
// Thread-safety: none; owned and used by the engine thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "inferd/status.h"

namespace inferd {

using BlockHash = uint64_t;

// Hash of one full block: `parent` is the previous block's hash (0 for the first block of a
// sequence), `tokens` the block's token ids, `extra_key` a salt that must separate caches whose
// KV differs for the same tokens (LoRA adapter, multimodal inputs, per-tenant salt; 0 = none).
// Deterministic across processes and builds (tests pin it through equality, not values).
BlockHash HashBlockTokens(BlockHash parent, std::span<const int32_t> tokens, uint64_t extra_key);

class BlockPool {
 public:
  // A fresh pool has every block free, in id order, so it hands out 0, 1, 2, ...
  // `enable_caching` defaults to false only so the pre-prefix-cache engine keeps compiling.
  explicit BlockPool(int64_t num_blocks, bool enable_caching = false);

  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  int64_t num_blocks() const { return num_blocks_; }
  int64_t num_free_blocks() const { return num_free_; }
  bool caching_enabled() const { return enable_caching_; }
  // Fraction of blocks in use (ref_cnt > 0); free cached blocks count as unused.
  double usage() const;

  // Pops n blocks from the head of the free queue (LRU order), evicting their cached hash if
  // any. Precondition (aborts otherwise): 0 <= n <= num_free_blocks(). Returned blocks have
  // ref_cnt 1.
  std::vector<int32_t> GetNewBlocks(int64_t n);

  // The block caching `hash`, if any (it may be free or referenced). nullopt when disabled.
  std::optional<int32_t> GetCachedBlock(BlockHash hash) const;

  // ref_cnt++ for each block; a block at ref 0 leaves the free queue (it stays cached).
  // Precondition: valid ids.
  void Touch(std::span<const int32_t> blocks);

  // ref_cnt-- for each block, in the given order; blocks reaching 0 are appended to the free
  // queue tail in that order (callers pass a request's blocks in reverse so that its tail blocks,
  // the least shareable, are evicted first). Precondition (aborts otherwise): ref_cnt > 0.
  void FreeBlocks(std::span<const int32_t> blocks);

  // Records `hash` for `block`, whose full contents were just computed. If another block already
  // caches `hash` the call does nothing (the first block wins; duplicates are not cached twice).
  // No-op when caching is disabled. Precondition: the block carries no hash or this same hash
  // (a block's contents change only after GetNewBlocks, which drops its hash).
  void CacheBlock(int32_t block, BlockHash hash);

  int32_t ref_cnt(int32_t block) const;
  std::optional<BlockHash> block_hash(int32_t block) const;

  // Drops every cached hash (e.g. when the weights change). Only allowed when no block is in use
  // but `num_reserved` (held by the caller for good, never hashed), since a referenced block's
  // hash is part of its owner's hash chain; returns false otherwise. The free-queue order is kept.
  bool ResetPrefixCache(int64_t num_reserved = 0);

  // Free-queue order (head first), for tests.
  std::vector<int32_t> FreeQueueForTest() const;
  // Checks the cache invariant above in O(num_blocks); returns Internal with the first violation.
  Status CheckInvariants() const;

  // --- Pre-prefix-cache API, kept as thin wrappers until src/engine moves to KvCacheManager. ---
  int64_t num_free() const { return num_free_blocks(); }
  // GetNewBlocks with ResourceExhausted instead of a precondition when fewer than n are free.
  StatusOr<std::vector<int32_t>> Allocate(int64_t n);
  // FreeBlocks that ignores out-of-range ids and blocks already at ref 0 (double free).
  void Free(std::span<const int32_t> blocks);

 private:
  // Intrusive doubly-linked free queue over block ids: prev_/next_ have num_blocks + 1 entries,
  // the last one (sentinel_ == num_blocks_) being the list head/tail sentinel. O(1) per op and no
  // allocation after construction.
  void QueueAppend(int32_t block);
  void QueueRemove(int32_t block);
  void DropHash(int32_t block);
  bool Valid(int32_t block) const { return block >= 0 && block < num_blocks_; }

  int64_t num_blocks_;
  bool enable_caching_;
  int32_t sentinel_;
  int64_t num_free_ = 0;
  std::vector<int32_t> ref_;
  std::vector<int32_t> prev_, next_;
  std::vector<BlockHash> hash_;     // valid where has_hash_
  std::vector<uint8_t> has_hash_;
  std::unordered_map<BlockHash, int32_t> cached_;  // hash -> block (invariant 3)
};

}  // namespace inferd
