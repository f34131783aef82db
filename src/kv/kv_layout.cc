#include "kv/kv_layout.h"

#include <algorithm>
#include <numeric>

namespace inferd {

bool KvLayout::has_windows() const {
  return std::any_of(groups.begin(), groups.end(), [](const KvGroupSpec& g) { return g.sliding_window > 0; });
}

std::vector<int64_t> KvLayout::windows() const {
  if (groups.empty()) return {0};  // an empty layout is one full-attention group
  std::vector<int64_t> w;
  w.reserve(groups.size());
  for (const KvGroupSpec& g : groups) w.push_back(g.sliding_window);
  return w;
}

int64_t KvLayout::BlocksPerRequest(int64_t num_tokens, int64_t block_size, int64_t chunk) const {
  const std::vector<int64_t> w = windows();
  return inferd::BlocksPerRequest(w, num_tokens, block_size, chunk);
}

int64_t BlocksPerRequest(std::span<const int64_t> group_windows, int64_t num_tokens, int64_t block_size,
                         int64_t chunk) {
  const int64_t full = (num_tokens + block_size - 1) / block_size;
  int64_t total = 0;
  for (const int64_t w : group_windows) {
    if (w <= 0 || w >= num_tokens) {  // no window, or one the sequence never outgrows (any size from a file)
      total += full;
      continue;
    }
    // Keys (p - W, p] for the chunk's queries: at most W - 1 + chunk positions, which can
    // straddle one more block than they fill.
    const int64_t span = w - 1 + std::max<int64_t>(chunk, 1);
    total += std::min(full, (span + block_size - 1) / block_size + 1);
  }
  return total;
}

KvLayout MakeKvLayout(std::span<const int64_t> layer_windows) {
  KvLayout out;
  const int64_t n = static_cast<int64_t>(layer_windows.size());
  if (n == 0) return out;
  // Attention types in order of first appearance, with their layers.
  std::vector<int64_t> types;
  std::vector<std::vector<int64_t>> members;
  for (int64_t l = 0; l < n; ++l) {
    const int64_t w = std::max<int64_t>(0, layer_windows[l]);
    auto it = std::find(types.begin(), types.end(), w);
    if (it == types.end()) {
      types.push_back(w);
      members.emplace_back();
      it = types.end() - 1;
    }
    members[static_cast<size_t>(it - types.begin())].push_back(l);
  }
  int64_t size = 0;
  for (const auto& m : members) size = std::gcd(size, static_cast<int64_t>(m.size()));
  out.layer_group.assign(static_cast<size_t>(n), 0);
  out.layer_slot.assign(static_cast<size_t>(n), 0);
  for (size_t t = 0; t < types.size(); ++t) {
    for (size_t i = 0; i < members[t].size(); i += static_cast<size_t>(size)) {
      KvGroupSpec g;
      g.sliding_window = types[t];
      g.layers.assign(members[t].begin() + static_cast<std::ptrdiff_t>(i),
                      members[t].begin() + static_cast<std::ptrdiff_t>(i + static_cast<size_t>(size)));
      for (size_t s = 0; s < g.layers.size(); ++s) {
        out.layer_group[static_cast<size_t>(g.layers[s])] = static_cast<int32_t>(out.groups.size());
        out.layer_slot[static_cast<size_t>(g.layers[s])] = static_cast<int32_t>(s);
      }
      out.groups.push_back(std::move(g));
    }
  }
  return out;
}

}  // namespace inferd
