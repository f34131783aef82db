#include "sched/policy.h"

#include <algorithm>

namespace inferd {

bool FcfsPolicy::RemoveWaiting(const Request* r) {
  auto it = std::find(queue_.begin(), queue_.end(), r);
  if (it == queue_.end()) return false;
  queue_.erase(it);
  return true;
}

Request* FcfsPolicy::PickVictim(const std::vector<Request*>& running) const {
  Request* victim = nullptr;
  for (Request* r : running)
    if (victim == nullptr || r->arrival_seq > victim->arrival_seq) victim = r;
  return victim;
}

namespace {
bool Before(const Request* a, const Request* b) {
  return a->priority != b->priority ? a->priority < b->priority : a->arrival_seq < b->arrival_seq;
}
}  // namespace

void PriorityPolicy::AddWaiting(Request* r) {
  queue_.insert(std::upper_bound(queue_.begin(), queue_.end(), r, Before), r);
}

bool PriorityPolicy::RemoveWaiting(const Request* r) {
  auto it = std::find(queue_.begin(), queue_.end(), r);
  if (it == queue_.end()) return false;
  queue_.erase(it);
  return true;
}

Request* PriorityPolicy::PickVictim(const std::vector<Request*>& running) const {
  Request* victim = nullptr;
  for (Request* r : running)
    if (victim == nullptr || Before(victim, r)) victim = r;
  return victim;
}

std::unique_ptr<SchedulingPolicy> MakeSchedulingPolicy(const std::string& name) {
  if (name == "fcfs") return std::make_unique<FcfsPolicy>();
  if (name == "priority") return std::make_unique<PriorityPolicy>();
  return nullptr;
}

}  // namespace inferd
