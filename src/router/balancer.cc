// Replica choice (balancer.h).
#include "router/balancer.h"

#include "util/hash.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace inferd::router {
StatusOr<Policy> ParsePolicy(std::string_view name) {
  if (name == "prefix") return Policy::kPrefix;
  if (name == "least-load") return Policy::kLeastLoad;
  if (name == "round-robin") return Policy::kRoundRobin;
  return InvalidArgument("unknown policy '" + std::string(name) + "'; choose prefix, least-load or round-robin");
}

std::string_view PolicyName(Policy p) {
  switch (p) {
    case Policy::kPrefix: return "prefix";
    case Policy::kLeastLoad: return "least-load";
    case Policy::kRoundRobin: return "round-robin";
  }
  return "?";
}

std::string_view PickKindName(PickKind k) {
  switch (k) {
    case PickKind::kPrefixHit: return "prefix_hit";
    case PickKind::kRing: return "ring";
    case PickKind::kLeastLoad: return "least_load";
    case PickKind::kRoundRobin: return "round_robin";
  }
  return "?";
}

Balancer::Balancer(BalancerOptions options) : options_(options) {
  options_.virtual_nodes = std::max<size_t>(1, options_.virtual_nodes);
  options_.max_index_entries = std::max<size_t>(1, options_.max_index_entries);
}

void Balancer::AddBackend(size_t id) {
  if (std::find(members_.begin(), members_.end(), id) != members_.end()) return;
  members_.push_back(id);
  RebuildRing();
}

void Balancer::RemoveBackend(size_t id) {
  auto it = std::find(members_.begin(), members_.end(), id);
  if (it == members_.end()) return;
  members_.erase(it);
  RebuildRing();
  ForgetBackend(id);
}

void Balancer::ForgetBackend(size_t id) {
  for (auto it = index_.begin(); it != index_.end();) {
    Entry& e = it->second;
    auto end = std::remove(e.holders.begin(), e.holders.begin() + e.num_holders, id);
    e.num_holders = static_cast<size_t>(end - e.holders.begin());
    if (e.num_holders == 0) {
      lru_.erase(e.pos);
      it = index_.erase(it);
    } else {
      ++it;
    }
  }
}

void Balancer::RebuildRing() {
  ring_.clear();
  for (size_t id : members_) {
    for (size_t v = 0; v < options_.virtual_nodes; ++v) ring_.emplace_back(SplitMix64(SplitMix64(id) ^ v), id);
  }
  std::sort(ring_.begin(), ring_.end());
}

bool Balancer::WithinBound(const Candidate& c, double total, size_t n) const {
  return c.load + 1 <= std::ceil(options_.load_factor * (total + 1) / static_cast<double>(n));
}

const Candidate* Balancer::Find(std::span<const Candidate> candidates, size_t id) const {
  for (const Candidate& c : candidates) {
    if (c.id == id) return &c;
  }
  return nullptr;
}

Pick Balancer::Choose(std::span<const uint64_t> block_hashes, std::span<const Candidate> candidates) {
  switch (options_.policy) {
    case Policy::kPrefix: return ChoosePrefix(block_hashes, candidates);
    case Policy::kLeastLoad: return LeastLoad(candidates);
    case Policy::kRoundRobin: {
      std::vector<size_t> ids;
      for (const Candidate& c : candidates) ids.push_back(c.id);
      std::sort(ids.begin(), ids.end());
      return {ids[rotation_++ % ids.size()], PickKind::kRoundRobin, 0};
    }
  }
  return LeastLoad(candidates);
}

Pick Balancer::LeastLoad(std::span<const Candidate> candidates) {
  const size_t n = candidates.size();
  const size_t start = rotation_++ % n;
  size_t best = start;
  for (size_t k = 1; k < n; ++k) {
    const size_t i = (start + k) % n;
    if (candidates[i].load < candidates[best].load) best = i;
  }
  return {candidates[best].id, PickKind::kLeastLoad, 0};
}

Pick Balancer::ChoosePrefix(std::span<const uint64_t> hashes, std::span<const Candidate> candidates) {
  double total = 0;
  for (const Candidate& c : candidates) total += c.load;
  const size_t n = candidates.size();
  Pick pick;
  bool found = false;
  for (size_t i = hashes.size(); i-- > 0 && !found;) {
    auto it = index_.find(hashes[i]);
    if (it == index_.end()) continue;
    for (size_t h = 0; h < it->second.num_holders && !found; ++h) {  // most recent first
      const Candidate* c = Find(candidates, it->second.holders[h]);
      if (c && WithinBound(*c, total, n)) {
        pick = {c->id, PickKind::kPrefixHit, i + 1};
        found = true;
      }
    }
  }
  if (!found && hashes.empty()) {
    pick = LeastLoad(candidates);
    found = true;
  }
  if (!found && !ring_.empty()) {
    auto start = std::lower_bound(ring_.begin(), ring_.end(), std::make_pair(hashes[0], size_t{0}));
    for (size_t k = 0; k < ring_.size() && !found; ++k) {
      const auto& point = ring_[(static_cast<size_t>(start - ring_.begin()) + k) % ring_.size()];
      const Candidate* c = Find(candidates, point.second);
      if (c && WithinBound(*c, total, n)) {
        pick = {c->id, PickKind::kRing, 0};
        found = true;
      }
    }
  }
  if (!found) {  // every candidate over the bound (or none on the ring): the least loaded
    pick = LeastLoad(candidates);
  }
  Record(hashes, pick.id);
  return pick;
}

void Balancer::Record(std::span<const uint64_t> hashes, size_t id) {
  for (uint64_t h : hashes) {
    auto it = index_.find(h);
    if (it == index_.end()) {
      if (index_.size() >= options_.max_index_entries) {
        index_.erase(lru_.back());
        lru_.pop_back();
      }
      lru_.push_front(h);
      it = index_.emplace(h, Entry{{}, 0, lru_.begin()}).first;
    } else {
      lru_.splice(lru_.begin(), lru_, it->second.pos);
    }
    // `id` to the front of the holders, the rest in order, the oldest dropped past kHolders.
    Entry& e = it->second;
    auto end = e.holders.begin() + e.num_holders;
    auto at = std::find(e.holders.begin(), end, id);
    if (at == end) {
      if (e.num_holders < kHolders) ++e.num_holders;
      at = e.holders.begin() + e.num_holders - 1;
    }
    std::rotate(e.holders.begin(), at, at + 1);
    e.holders[0] = id;
  }
}

}  // namespace inferd::router
