#include "chat/budget.h"

#include <limits>

#include "chat/value.h"

namespace inferd::chat {

Budget::Budget(const RenderBudget& limits, size_t max_stack_bytes)
    : limits_(limits),
      stack_base_(reinterpret_cast<uintptr_t>(__builtin_frame_address(0))),
      max_stack_bytes_(max_stack_bytes) {}

void Budget::SlowCheck() {
  if (steps_ > limits_.max_steps)
    throw TemplateError("exceeded the render step limit (" + std::to_string(limits_.max_steps) + ")");
  // Next check after kCancelCheckSteps more steps, or just past the limit if sooner.
  int64_t to_limit = limits_.max_steps - steps_;  // >= 0
  next_check_ = steps_ + (to_limit < kCancelCheckSteps ? to_limit + 1 : kCancelCheckSteps);
  if (limits_.cancel && limits_.cancel->load(std::memory_order_relaxed))
    throw TemplateError("render was cancelled");
}

void Budget::FailAlloc() const {
  throw TemplateError("render allocated more than " + std::to_string(limits_.max_alloc_bytes) +
                      " bytes (max_alloc_bytes)");
}

void Budget::FailOutput() const {
  throw TemplateError("rendered output exceeds " + std::to_string(limits_.max_output_bytes) +
                      " bytes (max_output_bytes)");
}

void Budget::FailStack() const {
  throw TemplateError("template recursion too deep: more than " + std::to_string(max_stack_bytes_) +
                      " bytes of stack");
}

BudgetScope::BudgetScope(Budget* b) : saved_(detail::t_current_budget) { detail::t_current_budget = b; }
BudgetScope::~BudgetScope() { detail::t_current_budget = saved_; }

size_t SatMulAdd(size_t a, size_t b, size_t c) {
  constexpr size_t kMax = std::numeric_limits<size_t>::max();
  if (a != 0 && b > kMax / a) return kMax;
  size_t p = a * b;
  return p > kMax - c ? kMax : p + c;
}

}  // namespace inferd::chat
