// Which replica gets a request (docs/router.md).
//
// Policies:
// - kPrefix: a replica recorded for the request's longest known prompt prefix (its chained
//   block hashes, prefix_key.h; up to 4 replicas per block, most recent first) that is within
//   the load bound, trying shorter prefixes when none is; else a walk of a
//   consistent-hash ring (virtual nodes) from the first block's hash to the first candidate
//   within the bound; with no block hashes, the least loaded candidate. Every block hash of
//   the request is then recorded for the chosen replica (an LRU index of bounded size).
//   Load bound, as consistent hashing with bounded loads (Mirrokni et al. 2018): a candidate
//   may take the request while load + 1 <= ceil(c * (total load + 1) / n), over the n
//   candidates.
// - kLeastLoad: the least loaded candidate; ties rotate, so equal loads spread.
// - kRoundRobin: the candidates in turn, by id.
// Ring membership is every added backend, eligible or not, so positions stay stable while a
// replica is briefly unhealthy; Choose() sees only the candidates passed.
// Single-threaded: the router calls it from its I/O thread.
#pragma once

#include <cstddef>
#include <array>
#include <cstdint>
#include <list>
#include <span>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "inferd/status.h"

namespace inferd::router {

enum class Policy { kPrefix, kLeastLoad, kRoundRobin };
// "prefix" | "least-load" | "round-robin".
StatusOr<Policy> ParsePolicy(std::string_view name);
std::string_view PolicyName(Policy p);

// An eligible backend and its load (requests in flight at it + waiting in its queue).
struct Candidate {
  size_t id = 0;
  double load = 0;
};

enum class PickKind { kPrefixHit, kRing, kLeastLoad, kRoundRobin };
std::string_view PickKindName(PickKind k);  // "prefix_hit", "ring", "least_load", "round_robin"

struct Pick {
  size_t id = 0;
  PickKind kind = PickKind::kRing;
  size_t matched_blocks = 0;  // kPrefixHit: the length of the prefix found, in blocks
};

struct BalancerOptions {
  Policy policy = Policy::kPrefix;
  double load_factor = 1.25;           // c of the load bound
  size_t virtual_nodes = 64;           // ring points per backend
  size_t max_index_entries = 1 << 16;  // block hash -> backend entries kept (LRU)
};

class Balancer {
 public:
  explicit Balancer(BalancerOptions options);

  void AddBackend(size_t id);
  void RemoveBackend(size_t id);   // off the ring, and its index entries forgotten
  void ForgetBackend(size_t id);   // its cache is gone (it restarted): index entries dropped
  // `candidates`: non-empty, each an added backend.
  Pick Choose(std::span<const uint64_t> block_hashes, std::span<const Candidate> candidates);
  size_t index_size() const { return index_.size(); }

 private:
  bool WithinBound(const Candidate& c, double total, size_t n) const;
  const Candidate* Find(std::span<const Candidate> candidates, size_t id) const;
  Pick ChoosePrefix(std::span<const uint64_t> hashes, std::span<const Candidate> candidates);
  Pick LeastLoad(std::span<const Candidate> candidates);
  void Record(std::span<const uint64_t> hashes, size_t id);
  void RebuildRing();

  BalancerOptions options_;
  std::vector<size_t> members_;
  std::vector<std::pair<uint64_t, size_t>> ring_;  // (point, backend id), sorted by point
  // LRU index: block hash -> the backends that served it, most recent first (a request that
  // spilled to another backend leaves the first one known too, for when that one is the
  // less loaded again). Most recently used hash at the front of lru_.
  static constexpr size_t kHolders = 4;
  std::list<uint64_t> lru_;
  struct Entry {
    std::array<size_t, kHolders> holders;
    size_t num_holders;
    std::list<uint64_t>::iterator pos;
  };
  std::unordered_map<uint64_t, Entry> index_;
  size_t rotation_ = 0;
};

}  // namespace inferd::router
