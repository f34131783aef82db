// KV-cache manager: per-request block tables on top of the BlockPool, with prefix caching
// (vLLM V1's KVCacheManager, with its KV-cache groups: kv_layout.h). It maps requests to block
// ids and token counts only; the backend owns the KV tensors.
//
// Groups: a request has one block table per group, all drawn from one pool. A full-attention
// group holds a block for every block of the sequence; a group with a sliding window W frees
// the blocks that no later query can see (those wholly before num_computed - W + 1) at every
// AllocateSlots, and its table holds kNullBlock there. With any window, block 0 is reserved as
// that null block and never handed out.
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
//   - a request's tables hold one reference on each of their non-null blocks; Free drops
//     exactly those;
//   - hashes[i] is the chain hash of tokens [0, (i + 1) * block_size) for the first
//     hashes.size() (full) blocks; group g caches block i of its table under
//     GroupHash(hashes[i], g), so the groups' blocks for the same tokens never alias.
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
#include "kv/kv_layout.h"

namespace inferd {

// Prefix-cache counters in tokens, as vLLM's: `queries` counts the prompt tokens looked up,
// `hits` the tokens found cached. Monotonic (ResetPrefixCache keeps them).
struct PrefixCacheStats {
  int64_t queries = 0, hits = 0;
};

class KvCacheManager {
 public:
  // One full-attention group.
  KvCacheManager(int64_t num_blocks, int64_t block_size, bool enable_prefix_caching)
      : KvCacheManager(num_blocks, block_size, enable_prefix_caching, std::vector<int64_t>{0}) {}
  // One group per entry of `group_windows` (0: full attention; else the group's window).
  KvCacheManager(int64_t num_blocks, int64_t block_size, bool enable_prefix_caching,
                 std::vector<int64_t> group_windows);

  int64_t block_size() const { return block_size_; }
  int64_t num_groups() const { return static_cast<int64_t>(windows_.size()); }
  // Blocks requests can use (the reserved null block excluded).
  int64_t num_blocks() const { return pool_.num_blocks() - num_reserved_; }
  int64_t num_free_blocks() const { return pool_.num_free_blocks(); }
  double usage() const;
  // Most blocks one request of `num_tokens` tokens holds at once when computed in chunks of
  // up to `chunk` tokens (BlocksPerRequest in kv_layout.h).
  int64_t BlocksPerRequest(int64_t num_tokens, int64_t chunk) const {
    return inferd::BlocksPerRequest(windows_, num_tokens, block_size_, chunk);
  }

  // Longest prefix of `tokens` made of cached full blocks (hash chain with extra_key). Never
  // covers the whole sequence: at most tokens.size() - 1 tokens are looked up, so when every
  // full block is cached and the sequence ends on a block boundary, the last block is left to
  // compute (the model needs the last token's logits). num_tokens == hashes.size() * block_size.
  // With groups, the hit is the longest prefix that every group can resume: full groups need
  // all of its blocks cached, windowed groups only those their window still sees (the others
  // are kNullBlock in `blocks`). With caching disabled returns nothing and records nothing.
  struct ComputedBlocks {
    std::vector<std::vector<int32_t>> blocks;  // per group (empty: no hit)
    std::vector<BlockHash> hashes;             // chain hash of each block of the hit
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
  // Windowed groups first drop the blocks their window left behind (see above).
  // Returns group 0's block table (valid until the next call that changes this request;
  // BlockTable(id, g) for the others), or nullopt when there are not enough free blocks —
  // counting that adopting a cached free block takes it out of the free pool — in which case
  // nothing changes but the dropped blocks.
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

  // Speculative decoding: frees the blocks of every group's table past the first
  // ceil(num_tokens / block_size), tail first. They held slots of draft tokens that were
  // rejected: never computed as verified tokens, so never cached. Unknown ids are ignored.
  void TrimSlots(const std::string& id, int64_t num_tokens);

  // Frees all of the request's blocks, last block first, so its tail is evicted before its
  // (more shareable) head. Unknown ids (including a second Free) are ignored.
  void Free(const std::string& id);

  // Group `group`'s block table of the request; empty if unknown.
  std::span<const int32_t> BlockTable(const std::string& id, int64_t group = 0) const;
  // Entries of group `group`'s table before this index are kNullBlock (left behind by the
  // window); 0 if unknown.
  int64_t NumDropped(const std::string& id, int64_t group) const;
  // Non-null blocks the request holds over all groups (0 if unknown).
  int64_t NumBlocksHeld(const std::string& id) const;
  const PrefixCacheStats& stats() const { return stats_; }
  // Drops the whole prefix cache; false (and nothing dropped) while any block is in use.
  bool ResetPrefixCache() { return pool_.ResetPrefixCache(num_reserved_); }

  const BlockPool& pool() const { return pool_; }  // for tests and metrics

 private:
  struct RequestBlocks {
    std::vector<std::vector<int32_t>> tables;  // per group, in token order
    std::vector<BlockHash> hashes;             // chain hashes of the first hashes.size() (full) blocks
    std::vector<int64_t> dropped;              // per group: entries before it are all null
    int64_t held = 0;                          // non-null entries over all tables
  };
  bool IsNull(int32_t b) const { return num_reserved_ > 0 && b == kNullBlock; }
  BlockHash GroupHash(BlockHash h, int64_t group) const;
  // The longest k <= found[g].size() such that every windowed group g holds cached blocks
  // (found[g][i] != -1) for the blocks its window still sees after k full blocks.
  int64_t LongestWindowedHit(const std::vector<std::vector<int32_t>>& found, int64_t k) const;
  // Frees the blocks of windowed groups that no query from position `first_pos` on can see.
  void DropSkippedBlocks(RequestBlocks& req, int64_t first_pos);

  int64_t block_size_;
  bool enable_caching_;
  std::vector<int64_t> windows_;  // per group
  int64_t num_reserved_ = 0;      // 1 when block 0 is the null block
  BlockPool pool_;
  std::unordered_map<std::string, RequestBlocks> requests_;
  PrefixCacheStats stats_;
};

}  // namespace inferd
