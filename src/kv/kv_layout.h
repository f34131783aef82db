// KV-cache groups: which layers share a block table (vLLM's hybrid KV-cache groups).
//
// Layers with the same attention type (full causal attention, or a sliding window of W
// positions) are split into groups of equal size; every group has its own block table per
// request, and all groups draw from one block pool. A block id therefore stands for the K and
// V of `layers_per_group` layers (those of the group that holds it), so the cache stores
// `layers_per_group` K and V tensors ("slots") and layer l lives in slot layer_slot[l] of the
// blocks in the table of group layer_group[l].
//
// A windowed group only needs the blocks that overlap its window: a query at position p sees
// keys (p - W, p], so once a request has computed c tokens the blocks wholly before c - W + 1
// go back to the pool (their table entries become kNullBlock). For Gemma 3 (5 local layers of
// window 512 per global one) a long request holds about a sixth of the blocks full attention
// would. A model whose layers all have one type has one group holding every layer: the
// layout of a plain paged cache.
//
// Group size: the greatest common divisor of the per-type layer counts, so no slot is ever
// padding (vLLM pads to the smallest count instead). Gemma 3 270M: 15 local + 3 global layers
// -> 6 groups of 3; Gemma 2 (alternating) -> 2 groups of half the layers each.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace inferd {

// The block-table entry of a block a windowed group no longer holds. Block 0 is reserved for
// it when any group has a window, so a stray read stays inside the cache.
inline constexpr int32_t kNullBlock = 0;

struct KvGroupSpec {
  int64_t sliding_window = 0;  // 0: full attention
  std::vector<int64_t> layers; // model layers, ascending; slot i holds layers[i]
};

struct KvLayout {
  std::vector<KvGroupSpec> groups;
  std::vector<int32_t> layer_group, layer_slot;  // per model layer

  int64_t num_groups() const { return static_cast<int64_t>(groups.size()); }
  int64_t layers_per_group() const { return groups.empty() ? 0 : static_cast<int64_t>(groups[0].layers.size()); }
  bool has_windows() const;
  // Group windows in group order (what KvCacheManager takes); {0} for an empty layout.
  std::vector<int64_t> windows() const;
  // Blocks one request holds, summed over the groups, while it computes a chunk of up to
  // `chunk` tokens anywhere in a sequence of `num_tokens`: ceil(num_tokens / block_size) per
  // full group; per windowed group the blocks that cover the window plus the chunk, at most
  // as many as full attention would hold.
  int64_t BlocksPerRequest(int64_t num_tokens, int64_t block_size, int64_t chunk) const;
};

// KvLayout::BlocksPerRequest for groups with these windows.
int64_t BlocksPerRequest(std::span<const int64_t> group_windows, int64_t num_tokens, int64_t block_size,
                         int64_t chunk);

// The layout for layers whose sliding windows are `layer_windows` (0 = full attention). Types
// appear in order of their first layer; within a type, layers fill groups in ascending order.
KvLayout MakeKvLayout(std::span<const int64_t> layer_windows);

// First block index a windowed group still needs when computing from position `first_pos`:
// blocks before it hold only keys that no query at or after first_pos can see.
inline int64_t FirstNeededBlock(int64_t sliding_window, int64_t first_pos, int64_t block_size) {
  if (sliding_window <= 0) return 0;
  const int64_t first_key = first_pos - sliding_window + 1;
  return first_key <= 0 ? 0 : first_key / block_size;
}

}  // namespace inferd
