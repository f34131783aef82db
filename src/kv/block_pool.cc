#include "kv/block_pool.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "util/logging.h"

namespace inferd {
namespace {

// Precondition violations corrupt the cache silently if ignored (a block handed to two
// requests), so they stop the process with a message instead.
[[noreturn]] void DieBlockPool(const std::string& what) { FatalInvariant("BlockPool", "precondition violated: " + what); }

// splitmix64's finalizer: a bijection on 64-bit values with full avalanche.
inline uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

constexpr uint64_t kSeed = 0x6A09E667F3BCC908ull;   // arbitrary fixed constants (sqrt(2), sqrt(3))
constexpr uint64_t kExtra = 0xBB67AE8584CAA73Bull;  // so parent and extra_key are not interchangeable

}  // namespace

BlockHash HashBlockTokens(BlockHash parent, std::span<const int32_t> tokens, uint64_t extra_key) {
  // Each step is h = Mix(h ^ word): for a fixed state a bijection of the word, so two inputs
  // differing in one word always differ right after it. Tokens go two per 64-bit word; the
  // token count is folded in last so blocks of different lengths never alias.
  uint64_t h = Mix(parent ^ kSeed);
  h = Mix(h ^ Mix(extra_key ^ kExtra));
  size_t i = 0;
  for (; i + 1 < tokens.size(); i += 2) {
    const uint64_t w = static_cast<uint64_t>(static_cast<uint32_t>(tokens[i])) |
                       (static_cast<uint64_t>(static_cast<uint32_t>(tokens[i + 1])) << 32);
    h = Mix(h ^ w);
  }
  if (i < tokens.size()) h = Mix(h ^ static_cast<uint32_t>(tokens[i]));
  return Mix(h ^ static_cast<uint64_t>(tokens.size()));
}

BlockPool::BlockPool(int64_t num_blocks, bool enable_caching)
    : num_blocks_(num_blocks < 0 ? 0 : num_blocks),
      enable_caching_(enable_caching),
      sentinel_(static_cast<int32_t>(num_blocks_)),
      ref_(num_blocks_, 0),
      prev_(num_blocks_ + 1),
      next_(num_blocks_ + 1),
      hash_(num_blocks_, 0),
      has_hash_(num_blocks_, 0) {
  if (num_blocks_ > INT32_MAX - 1) DieBlockPool("num_blocks does not fit block ids (int32)");
  prev_[sentinel_] = next_[sentinel_] = sentinel_;
  for (int32_t b = 0; b < sentinel_; ++b) QueueAppend(b);
  if (enable_caching_) cached_.reserve(static_cast<size_t>(num_blocks_));
}

double BlockPool::usage() const {
  if (num_blocks_ == 0) return 0.0;
  return static_cast<double>(num_blocks_ - num_free_) / static_cast<double>(num_blocks_);
}

void BlockPool::QueueAppend(int32_t block) {
  const int32_t last = prev_[sentinel_];
  prev_[block] = last;
  next_[block] = sentinel_;
  next_[last] = block;
  prev_[sentinel_] = block;
  ++num_free_;
}

void BlockPool::QueueRemove(int32_t block) {
  next_[prev_[block]] = next_[block];
  prev_[next_[block]] = prev_[block];
  prev_[block] = next_[block] = -1;  // poison: a stale link shows up in CheckInvariants
  --num_free_;
}

void BlockPool::DropHash(int32_t block) {
  if (!has_hash_[block]) return;
  cached_.erase(hash_[block]);
  has_hash_[block] = 0;
  hash_[block] = 0;
}

std::vector<int32_t> BlockPool::GetNewBlocks(int64_t n) {
  if (n < 0 || n > num_free_) DieBlockPool(fmt::format("GetNewBlocks({}) with {} free", n, num_free_));
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t b = next_[sentinel_];
    QueueRemove(b);
    DropHash(b);  // its contents are about to be overwritten
    ref_[b] = 1;
    out.push_back(b);
  }
  return out;
}

std::optional<int32_t> BlockPool::GetCachedBlock(BlockHash hash) const {
  const auto it = cached_.find(hash);
  if (it == cached_.end()) return std::nullopt;
  return it->second;
}

void BlockPool::Touch(std::span<const int32_t> blocks) {
  for (const int32_t b : blocks) {
    if (!Valid(b)) DieBlockPool(fmt::format("Touch of invalid block {}", b));
    if (ref_[b] == 0) QueueRemove(b);
    ++ref_[b];
  }
}

void BlockPool::FreeBlocks(std::span<const int32_t> blocks) {
  for (const int32_t b : blocks) {
    if (!Valid(b) || ref_[b] <= 0) DieBlockPool(fmt::format("FreeBlocks of block {} not in use", b));
    if (--ref_[b] == 0) QueueAppend(b);
  }
}

void BlockPool::CacheBlock(int32_t block, BlockHash hash) {
  if (!Valid(block)) DieBlockPool(fmt::format("CacheBlock of invalid block {}", block));
  if (!enable_caching_) return;
  if (has_hash_[block]) {
    if (hash_[block] != hash) DieBlockPool(fmt::format("CacheBlock: block {} already caches another hash", block));
    return;
  }
  if (!cached_.emplace(hash, block).second) return;  // another block already holds these tokens
  hash_[block] = hash;
  has_hash_[block] = 1;
}

int32_t BlockPool::ref_cnt(int32_t block) const { return Valid(block) ? ref_[block] : 0; }

std::optional<BlockHash> BlockPool::block_hash(int32_t block) const {
  if (!Valid(block) || !has_hash_[block]) return std::nullopt;
  return hash_[block];
}

bool BlockPool::ResetPrefixCache(int64_t num_reserved) {
  if (num_free_ + num_reserved != num_blocks_) return false;
  cached_.clear();
  std::fill(hash_.begin(), hash_.end(), 0);
  std::fill(has_hash_.begin(), has_hash_.end(), 0);
  return true;
}

std::vector<int32_t> BlockPool::FreeQueueForTest() const {
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(num_free_));
  for (int32_t b = next_[sentinel_]; b != sentinel_ && out.size() <= static_cast<size_t>(num_blocks_);
       b = next_[b]) {
    out.push_back(b);
  }
  return out;
}

Status BlockPool::CheckInvariants() const {
  // 1. The free queue is a well-formed cycle through the sentinel holding exactly the ref-0 blocks.
  std::vector<uint8_t> in_queue(num_blocks_, 0);
  int64_t len = 0;
  int32_t prev = sentinel_;
  for (int32_t b = next_[sentinel_]; b != sentinel_; b = next_[b]) {
    if (!Valid(b)) return Internal(fmt::format("free queue links to invalid id {}", b));
    if (in_queue[b]) return Internal(fmt::format("block {} twice in the free queue", b));
    if (prev_[b] != prev) return Internal(fmt::format("block {}: prev link {} != {}", b, prev_[b], prev));
    in_queue[b] = 1;
    prev = b;
    ++len;
  }
  if (prev_[sentinel_] != prev) return Internal("free queue tail link is stale");
  if (len != num_free_) return Internal(fmt::format("free queue length {} != num_free {}", len, num_free_));
  for (int32_t b = 0; b < sentinel_; ++b) {
    if (ref_[b] < 0) return Internal(fmt::format("block {} has ref_cnt {}", b, ref_[b]));
    if ((ref_[b] == 0) != (in_queue[b] != 0)) {
      return Internal(fmt::format("block {} ref_cnt {} but {} the free queue", b, ref_[b],
                                  in_queue[b] ? "in" : "not in"));
    }
  }
  // 3. hash -> block map and per-block hashes are a bijection.
  int64_t num_hashed = 0;
  for (int32_t b = 0; b < sentinel_; ++b) {
    if (!has_hash_[b]) continue;
    ++num_hashed;
    const auto it = cached_.find(hash_[b]);
    if (it == cached_.end() || it->second != b) return Internal(fmt::format("block {}: hash not mapped to it", b));
  }
  for (const auto& [h, b] : cached_) {
    if (!Valid(b) || !has_hash_[b] || hash_[b] != h) return Internal(fmt::format("map entry -> block {} stale", b));
  }
  if (num_hashed != static_cast<int64_t>(cached_.size())) return Internal("hash map size mismatch");
  // 4.
  if (!enable_caching_ && !cached_.empty()) return Internal("caching disabled but blocks are cached");
  return Status::OK();
}

StatusOr<std::vector<int32_t>> BlockPool::Allocate(int64_t n) {
  if (n < 0 || n > num_free_) {
    return ResourceExhausted(fmt::format("KV cache: need {} blocks, {} free of {}", n, num_free_, num_blocks_));
  }
  return GetNewBlocks(n);
}

void BlockPool::Free(std::span<const int32_t> blocks) {
  for (const int32_t b : blocks) {
    if (!Valid(b) || ref_[b] <= 0) continue;
    if (--ref_[b] == 0) QueueAppend(b);
  }
}

}  // namespace inferd
