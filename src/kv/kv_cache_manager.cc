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

KvCacheManager::KvCacheManager(int64_t num_blocks, int64_t block_size, bool enable_prefix_caching,
                               std::vector<int64_t> group_windows)
    : block_size_(block_size),
      enable_caching_(enable_prefix_caching),
      windows_(std::move(group_windows)),
      pool_(num_blocks, enable_prefix_caching) {
  if (block_size_ <= 0) Die(fmt::format("block_size {}", block_size_));
  if (windows_.empty()) Die("no KV-cache groups");
  if (std::any_of(windows_.begin(), windows_.end(), [](int64_t w) { return w > 0; })) {
    // Block 0 is the null block (kNullBlock): a fresh pool hands it out first.
    if (pool_.num_free_blocks() < 1 || pool_.GetNewBlocks(1).front() != kNullBlock) Die("no block for the null block");
    num_reserved_ = 1;
  }
}

double KvCacheManager::usage() const {
  const int64_t usable = num_blocks();
  if (usable <= 0) return 0.0;
  return static_cast<double>(usable - pool_.num_free_blocks()) / static_cast<double>(usable);
}

BlockHash KvCacheManager::GroupHash(BlockHash h, int64_t group) const {
  // Group 0 keeps the plain chain hash; the others rehash it with the group as salt (a hash
  // of zero tokens, so it cannot equal any block's own hash but by collision).
  return group == 0 ? h : HashBlockTokens(h, std::span<const int32_t>(), static_cast<uint64_t>(group));
}

int64_t KvCacheManager::LongestWindowedHit(const std::vector<std::vector<int32_t>>& found, int64_t k) const {
  // run[g][i] = cached blocks of group g ending at block i.
  std::vector<std::vector<int64_t>> runs(windows_.size());
  for (size_t g = 0; g < windows_.size(); ++g) {
    if (windows_[g] <= 0) continue;
    runs[g].assign(static_cast<size_t>(k), 0);
    for (int64_t i = 0; i < k; ++i) runs[g][i] = found[g][i] < 0 ? 0 : (i > 0 ? runs[g][i - 1] : 0) + 1;
  }
  for (; k > 0; --k) {
    bool ok = true;
    for (size_t g = 0; g < windows_.size() && ok; ++g) {
      ok = windows_[g] <= 0 || runs[g][k - 1] >= k - FirstNeededBlock(windows_[g], k * block_size_, block_size_);
    }
    if (ok) break;
  }
  return k;
}

KvCacheManager::ComputedBlocks KvCacheManager::GetComputedBlocks(std::span<const int32_t> tokens,
                                                                 uint64_t extra_key, bool record_stats) {
  ComputedBlocks out;
  if (!enable_caching_) return out;
  // Look up at most size - 1 tokens so at least the last token is computed.
  const int64_t max_hit = tokens.empty() ? 0 : static_cast<int64_t>(tokens.size()) - 1;
  const int64_t max_blocks = max_hit / block_size_;
  const size_t G = windows_.size();
  // found[g][i]: group g's cached block for block i (-1: none). Each block is looked up once
  // per group; a miss in a full-attention group ends the hit there (the chain makes every
  // later block a miss too).
  std::vector<std::vector<int32_t>> found(G);
  std::vector<int32_t> row(G);
  BlockHash parent = 0;
  for (int64_t i = 0; i < max_blocks; ++i) {
    parent = HashBlockTokens(parent, tokens.subspan(i * block_size_, block_size_), extra_key);
    bool full_miss = false;
    for (size_t g = 0; g < G && !full_miss; ++g) {
      const std::optional<int32_t> b = pool_.GetCachedBlock(GroupHash(parent, static_cast<int64_t>(g)));
      row[g] = b.value_or(-1);
      full_miss = windows_[g] <= 0 && !b;
    }
    if (full_miss) break;
    for (size_t g = 0; g < G; ++g) found[g].push_back(row[g]);
    out.hashes.push_back(parent);
  }
  const int64_t k = LongestWindowedHit(found, static_cast<int64_t>(out.hashes.size()));
  out.hashes.resize(static_cast<size_t>(k));
  out.num_tokens = k * block_size_;
  if (k > 0) {
    out.blocks.resize(G);
    for (size_t g = 0; g < G; ++g) {
      const int64_t lo = FirstNeededBlock(windows_[g], out.num_tokens, block_size_);
      for (int64_t i = 0; i < k; ++i) out.blocks[g].push_back(i < lo ? kNullBlock : found[g][i]);
    }
  }
  if (record_stats) {
    stats_.queries += static_cast<int64_t>(tokens.size());
    stats_.hits += out.num_tokens;
  }
  return out;
}

void KvCacheManager::DropSkippedBlocks(RequestBlocks& req, int64_t first_pos) {
  for (size_t g = 0; g < windows_.size(); ++g) {
    std::vector<int32_t>& table = req.tables[g];
    const int64_t lo = std::min<int64_t>(FirstNeededBlock(windows_[g], first_pos, block_size_),
                                         static_cast<int64_t>(table.size()));
    for (int64_t i = req.dropped[g]; i < lo; ++i) {
      if (IsNull(table[i])) continue;
      pool_.FreeBlocks(std::span<const int32_t>(&table[i], 1));
      table[i] = kNullBlock;
      --req.held;
    }
    req.dropped[g] = std::max(req.dropped[g], lo);
  }
}

std::optional<std::span<const int32_t>> KvCacheManager::AllocateSlots(const std::string& id,
                                                                      int64_t num_computed_tokens,
                                                                      int64_t num_new_tokens,
                                                                      const ComputedBlocks& new_computed) {
  if (num_computed_tokens < 0 || num_new_tokens < 0) {
    Die(fmt::format("AllocateSlots({}, {}, {})", id, num_computed_tokens, num_new_tokens));
  }
  const size_t G = windows_.size();
  const auto it = requests_.find(id);
  const bool adopting = !new_computed.hashes.empty();
  if (adopting) {
    if (it != requests_.end() && it->second.held > 0) Die(fmt::format("AllocateSlots({}): new_computed after first allocation", id));
    if (new_computed.blocks.size() != G) Die(fmt::format("AllocateSlots({}): hit for {} groups", id, new_computed.blocks.size()));
  }
  if (it != requests_.end()) DropSkippedBlocks(it->second, num_computed_tokens);

  const int64_t first_pos = std::max(num_computed_tokens, new_computed.num_tokens);
  const int64_t num_blocks_needed = CeilDiv(first_pos + num_new_tokens, block_size_);
  int64_t num_to_allocate = 0, num_adopted_free = 0;
  for (size_t g = 0; g < G; ++g) {
    int64_t have = it == requests_.end() ? 0 : static_cast<int64_t>(it->second.tables[g].size());
    if (adopting) {
      have = static_cast<int64_t>(new_computed.blocks[g].size());
      // Adopting a free cached block takes it out of the free pool too.
      for (const int32_t b : new_computed.blocks[g]) num_adopted_free += !IsNull(b) && pool_.ref_cnt(b) == 0;
    }
    const int64_t lo = FirstNeededBlock(windows_[g], first_pos, block_size_);
    num_to_allocate += std::max<int64_t>(0, num_blocks_needed - std::max(have, lo));
  }
  if (num_to_allocate > pool_.num_free_blocks() - num_adopted_free) return std::nullopt;

  RequestBlocks& req = requests_[id];
  if (req.tables.empty()) {
    req.tables.resize(G);
    req.dropped.assign(G, 0);
  }
  if (adopting) {
    req.hashes = new_computed.hashes;
    for (size_t g = 0; g < G; ++g) {
      for (const int32_t b : new_computed.blocks[g]) {
        if (!IsNull(b)) {
          // A hit holds a hash by construction and, now referenced, cannot lose it to eviction.
          if (!pool_.block_hash(b)) Die(fmt::format("AllocateSlots({}): adopted block {} is not cached", id, b));
          pool_.Touch(std::span<const int32_t>(&b, 1));
          ++req.held;
        }
        req.tables[g].push_back(b);
      }
    }
  }
  for (size_t g = 0; g < G; ++g) {
    std::vector<int32_t>& table = req.tables[g];
    const int64_t lo = FirstNeededBlock(windows_[g], first_pos, block_size_);
    while (static_cast<int64_t>(table.size()) < std::min(lo, num_blocks_needed)) table.push_back(kNullBlock);
    req.dropped[g] = std::max(req.dropped[g], std::min(lo, static_cast<int64_t>(table.size())));
    const int64_t n = std::max<int64_t>(0, num_blocks_needed - static_cast<int64_t>(table.size()));
    const std::vector<int32_t> fresh = pool_.GetNewBlocks(n);
    table.insert(table.end(), fresh.begin(), fresh.end());
    req.held += n;
  }
  return std::span<const int32_t>(req.tables[0]);
}

void KvCacheManager::CacheBlocks(const std::string& id, std::span<const int32_t> tokens,
                                 int64_t num_computed_tokens, uint64_t extra_key) {
  if (!enable_caching_) return;
  const auto it = requests_.find(id);
  if (it == requests_.end()) return;
  RequestBlocks& req = it->second;
  const int64_t num_known = std::min<int64_t>(num_computed_tokens, static_cast<int64_t>(tokens.size()));
  const int64_t num_full = std::min<int64_t>(num_known / block_size_, static_cast<int64_t>(req.tables[0].size()));
  for (int64_t i = static_cast<int64_t>(req.hashes.size()); i < num_full; ++i) {
    const BlockHash parent = i == 0 ? 0 : req.hashes[i - 1];
    const BlockHash h = HashBlockTokens(parent, tokens.subspan(i * block_size_, block_size_), extra_key);
    for (size_t g = 0; g < req.tables.size(); ++g) {
      const int32_t b = req.tables[g][i];
      if (!IsNull(b)) pool_.CacheBlock(b, GroupHash(h, static_cast<int64_t>(g)));
    }
    req.hashes.push_back(h);
  }
}

void KvCacheManager::TrimSlots(const std::string& id, int64_t num_tokens) {
  const auto it = requests_.find(id);
  if (it == requests_.end()) return;
  RequestBlocks& req = it->second;
  const size_t keep = static_cast<size_t>(CeilDiv(std::max<int64_t>(0, num_tokens), block_size_));
  for (size_t g = 0; g < req.tables.size(); ++g) {
    std::vector<int32_t>& table = req.tables[g];
    while (table.size() > keep) {
      const int32_t b = table.back();
      table.pop_back();
      if (IsNull(b)) continue;
      pool_.FreeBlocks(std::span<const int32_t>(&b, 1));
      --req.held;
    }
    req.dropped[g] = std::min<int64_t>(req.dropped[g], static_cast<int64_t>(table.size()));
  }
  if (req.hashes.size() > keep) req.hashes.resize(keep);
}

void KvCacheManager::Free(const std::string& id) {
  const auto it = requests_.find(id);
  if (it == requests_.end()) return;
  for (const std::vector<int32_t>& table : it->second.tables) {
    for (auto b = table.rbegin(); b != table.rend(); ++b) {
      if (IsNull(*b)) continue;
      pool_.FreeBlocks(std::span<const int32_t>(&*b, 1));
    }
  }
  requests_.erase(it);
}

std::span<const int32_t> KvCacheManager::BlockTable(const std::string& id, int64_t group) const {
  const auto it = requests_.find(id);
  if (it == requests_.end() || group < 0 || group >= static_cast<int64_t>(it->second.tables.size())) return {};
  return it->second.tables[group];
}

int64_t KvCacheManager::NumDropped(const std::string& id, int64_t group) const {
  const auto it = requests_.find(id);
  if (it == requests_.end() || group < 0 || group >= static_cast<int64_t>(it->second.dropped.size())) return 0;
  return it->second.dropped[group];
}

int64_t KvCacheManager::NumBlocksHeld(const std::string& id) const {
  const auto it = requests_.find(id);
  return it == requests_.end() ? 0 : it->second.held;
}

}  // namespace inferd
