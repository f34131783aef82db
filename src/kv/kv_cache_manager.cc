#include "kv/kv_cache_manager.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "util/logging.h"

namespace inferd {
namespace {

[[noreturn]] void Die(const std::string& what) { FatalInvariant("KvCacheManager", "precondition violated: " + what); }

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

KvCacheManager::KvCacheManager(int64_t num_blocks, int64_t block_size, bool enable_prefix_caching)
    : block_size_(block_size), enable_caching_(enable_prefix_caching), pool_(num_blocks, enable_prefix_caching) {
  if (block_size_ <= 0) Die(fmt::format("block_size {}", block_size_));
}

KvCacheManager::ComputedBlocks KvCacheManager::GetComputedBlocks(std::span<const int32_t> tokens,
                                                                 uint64_t extra_key, bool record_stats) {
  ComputedBlocks out;
  if (!enable_caching_) return out;
  // Look up at most size - 1 tokens so at least the last token is computed.
  const int64_t max_hit = tokens.empty() ? 0 : static_cast<int64_t>(tokens.size()) - 1;
  const int64_t max_blocks = max_hit / block_size_;
  BlockHash parent = 0;
  for (int64_t i = 0; i < max_blocks; ++i) {
    const BlockHash h = HashBlockTokens(parent, tokens.subspan(i * block_size_, block_size_), extra_key);
    const std::optional<int32_t> block = pool_.GetCachedBlock(h);
    if (!block) break;  // the chain makes every later block a miss too
    out.blocks.push_back(*block);
    parent = h;
  }
  out.num_tokens = static_cast<int64_t>(out.blocks.size()) * block_size_;
  if (record_stats) {
    stats_.queries += static_cast<int64_t>(tokens.size());
    stats_.hits += out.num_tokens;
  }
  return out;
}

std::optional<std::span<const int32_t>> KvCacheManager::AllocateSlots(const std::string& id,
                                                                      int64_t num_computed_tokens,
                                                                      int64_t num_new_tokens,
                                                                      const ComputedBlocks& new_computed) {
  if (num_computed_tokens < 0 || num_new_tokens < 0) {
    Die(fmt::format("AllocateSlots({}, {}, {})", id, num_computed_tokens, num_new_tokens));
  }
  const auto it = requests_.find(id);
  const int64_t num_held = it == requests_.end() ? 0 : static_cast<int64_t>(it->second.blocks.size());
  const int64_t num_adopted = static_cast<int64_t>(new_computed.blocks.size());
  if (num_adopted > 0 && num_held > 0) Die(fmt::format("AllocateSlots({}): new_computed after first allocation", id));

  const int64_t num_tokens = std::max(num_computed_tokens, new_computed.num_tokens) + num_new_tokens;
  const int64_t num_to_allocate = std::max<int64_t>(0, CeilDiv(num_tokens, block_size_) - num_held - num_adopted);
  // Adopting a free cached block takes it out of the free pool too.
  int64_t num_adopted_free = 0;
  for (const int32_t b : new_computed.blocks) num_adopted_free += pool_.ref_cnt(b) == 0 ? 1 : 0;
  if (num_to_allocate > pool_.num_free_blocks() - num_adopted_free) return std::nullopt;

  RequestBlocks& req = requests_[id];
  if (num_adopted > 0) {
    pool_.Touch(new_computed.blocks);
    for (const int32_t b : new_computed.blocks) {
      // A hit holds a hash by construction and, now referenced, cannot lose it to eviction.
      const std::optional<BlockHash> h = pool_.block_hash(b);
      if (!h) Die(fmt::format("AllocateSlots({}): adopted block {} is not cached", id, b));
      req.blocks.push_back(b);
      req.hashes.push_back(*h);
    }
  }
  const std::vector<int32_t> fresh = pool_.GetNewBlocks(num_to_allocate);
  req.blocks.insert(req.blocks.end(), fresh.begin(), fresh.end());
  return std::span<const int32_t>(req.blocks);
}

void KvCacheManager::CacheBlocks(const std::string& id, std::span<const int32_t> tokens,
                                 int64_t num_computed_tokens, uint64_t extra_key) {
  if (!enable_caching_) return;
  const auto it = requests_.find(id);
  if (it == requests_.end()) return;
  RequestBlocks& req = it->second;
  const int64_t num_known = std::min<int64_t>(num_computed_tokens, static_cast<int64_t>(tokens.size()));
  const int64_t num_full = std::min<int64_t>(num_known / block_size_, static_cast<int64_t>(req.blocks.size()));
  for (int64_t i = static_cast<int64_t>(req.hashes.size()); i < num_full; ++i) {
    const BlockHash parent = i == 0 ? 0 : req.hashes[i - 1];
    const BlockHash h = HashBlockTokens(parent, tokens.subspan(i * block_size_, block_size_), extra_key);
    pool_.CacheBlock(req.blocks[i], h);
    req.hashes.push_back(h);
  }
}

void KvCacheManager::Free(const std::string& id) {
  const auto it = requests_.find(id);
  if (it == requests_.end()) return;
  const std::vector<int32_t>& blocks = it->second.blocks;
  for (auto b = blocks.rbegin(); b != blocks.rend(); ++b) pool_.FreeBlocks(std::span<const int32_t>(&*b, 1));
  requests_.erase(it);
}

std::span<const int32_t> KvCacheManager::BlockTable(const std::string& id) const {
  const auto it = requests_.find(id);
  if (it == requests_.end()) return {};
  return it->second.blocks;
}

}  // namespace inferd
