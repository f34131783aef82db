// Scheduling policies: the order of the waiting queue and the choice of preemption victim.
// Small classes behind one interface (TensorRT-LLM's capacity/scheduling policy style).
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "sched/request.h"

namespace inferd {

class SchedulingPolicy {
 public:
  virtual ~SchedulingPolicy() = default;
  virtual const char* name() const = 0;
  // Waiting queue.
  virtual void AddWaiting(Request* r) = 0;
  // A preempted request goes back so that it is resumed before newer ones.
  virtual void AddPreempted(Request* r) = 0;
  virtual Request* PeekWaiting() const = 0;  // nullptr when empty
  virtual void PopWaiting() = 0;
  virtual bool RemoveWaiting(const Request* r) = 0;
  virtual size_t num_waiting() const = 0;
  // Which running request to preempt when blocks run out: lowest priority (largest value),
  // then newest.
  virtual Request* PickVictim(const std::vector<Request*>& running) const = 0;
};

// First come, first served; preempted requests go to the head of the queue; the victim is
// the newest running request.
class FcfsPolicy final : public SchedulingPolicy {
 public:
  const char* name() const override { return "fcfs"; }
  void AddWaiting(Request* r) override { queue_.push_back(r); }
  void AddPreempted(Request* r) override { queue_.push_front(r); }
  Request* PeekWaiting() const override { return queue_.empty() ? nullptr : queue_.front(); }
  void PopWaiting() override { queue_.pop_front(); }
  bool RemoveWaiting(const Request* r) override;
  size_t num_waiting() const override { return queue_.size(); }
  Request* PickVictim(const std::vector<Request*>& running) const override;

 private:
  std::deque<Request*> queue_;
};

// Lowest `priority` value first, then arrival order; preempted requests keep their place
// by (priority, arrival). The victim is the lowest-priority running request, newest first.
class PriorityPolicy final : public SchedulingPolicy {
 public:
  const char* name() const override { return "priority"; }
  void AddWaiting(Request* r) override;
  void AddPreempted(Request* r) override { AddWaiting(r); }
  Request* PeekWaiting() const override { return queue_.empty() ? nullptr : queue_.front(); }
  void PopWaiting() override { queue_.pop_front(); }
  bool RemoveWaiting(const Request* r) override;
  size_t num_waiting() const override { return queue_.size(); }
  Request* PickVictim(const std::vector<Request*>& running) const override;

 private:
  std::deque<Request*> queue_;  // sorted by (priority, arrival_seq)
};

// "fcfs" or "priority"; nullptr for anything else.
std::unique_ptr<SchedulingPolicy> MakeSchedulingPolicy(const std::string& name);

}  // namespace inferd
