// Budget: the running account of one render against its RenderBudget (steps, output,
// allocation, cancellation) and against the C++ stack.
//
// Why cumulative accounting: a template is a program from a model author or a client, and
// every way it can spend time or memory either evaluates nodes (counted as steps), scans
// bytes without keeping them (counted as work: kWorkBytesPerStep bytes = one step) or
// creates strings and container cells (counted as allocated bytes, never refunded). With
// all three capped, a render's time and peak memory are bounded by a constant times the
// limits, whatever the template does: no loop shape, recursion or sharing (values are
// DAGs: `[x, x]` twice-referenced) escapes, because the charges sit where values are
// created, compared, scanned and printed, not in the few builtins that looked dangerous.
//
// Two kinds of charge, so that nothing is counted twice:
//   - ChargeAlloc: at creation of a value (Value::Str / List / Dict / Undefined, a new dict
//     key, an in-place append) and of transient buffers (DecodeUtf8);
//   - CheckAlloc: in a builder, BEFORE it allocates its result ('x' * n, join, replace,
//     indent, repr, tojson ...): "would this many more bytes fit?", without charging; the
//     result is charged when it becomes a Value. So no single operation allocates far
//     beyond the budget: at most one piece past it.
//
// Thread-safety: a Budget belongs to one render on one thread. The render installs it as
// the thread's current budget (BudgetScope) so that value-level code (Value::Str, ToJson,
// PyEquals) charges it without a parameter on every call; outside a render
// (parsing, building the inputs) there is no current budget and nothing is charged.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "chat/chat_template.h"

namespace inferd::chat {

// Bytes scanned (compared, searched, decoded) per step: a step, one evaluated node, costs
// about as much as scanning this many bytes, so the step limit bounds scans as well.
inline constexpr size_t kWorkBytesPerStep = 64;
// The cancel flag is read once per this many steps.
inline constexpr int64_t kCancelCheckSteps = 1024;

// Stack limits are production figures; sanitizer builds spend several times more stack per
// frame (redzones, no inlining), measured 4-6x for the evaluator, and scale them by this.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr size_t kStackScale = 4;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr size_t kStackScale = 4;
#else
inline constexpr size_t kStackScale = 1;
#endif
#else
inline constexpr size_t kStackScale = 1;
#endif

class Budget {
 public:
  // max_stack_bytes: how much C++ stack the render may use below the frame that created
  // the Budget (0: unchecked).
  Budget(const RenderBudget& limits, size_t max_stack_bytes);

  // n evaluated nodes / loop iterations / builtin work units. Throws TemplateError past
  // max_steps or when the cancel flag is set.
  void Step(int64_t n = 1) {
    steps_ += n;
    if (steps_ >= next_check_) SlowCheck();
  }
  // A scan over `bytes` bytes that allocates nothing (kWorkBytesPerStep per step).
  void Work(size_t bytes) {
    work_bytes_ += bytes;
    if (work_bytes_ >= kWorkBytesPerStep) {
      int64_t n = static_cast<int64_t>(work_bytes_ / kWorkBytesPerStep);
      work_bytes_ %= kWorkBytesPerStep;
      Step(n);
    }
  }
  // Charges `bytes` created; throws (without charging) when they would exceed the budget.
  void Alloc(size_t bytes) {
    CheckAlloc(bytes);
    allocated_ += bytes;
  }
  // Throws when `bytes` more would exceed the allocation budget; charges nothing.
  void CheckAlloc(size_t bytes) const {
    if (bytes > limits_.max_alloc_bytes - allocated_) FailAlloc();
  }
  // Throws when a rendered text buffer of `bytes` would exceed max_output_bytes.
  void CheckOutput(size_t bytes) const {
    if (bytes > limits_.max_output_bytes) FailOutput();
  }
  // Throws when the C++ stack below the Budget's creator is deeper than allowed. Called on
  // every recursion of the evaluator (nodes, expressions, macro calls), whose depth the
  // parse limits bound only per template body, not across nested macro calls.
  void CheckStack() const {
    if (max_stack_bytes_ == 0) return;
    auto here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
    if (here < stack_base_ && stack_base_ - here > max_stack_bytes_) FailStack();
  }

  int64_t steps() const { return steps_; }
  size_t allocated() const { return allocated_; }
  const RenderBudget& limits() const { return limits_; }

 private:
  void SlowCheck();
  [[noreturn]] void FailAlloc() const;
  [[noreturn]] void FailOutput() const;
  [[noreturn]] void FailStack() const;

  RenderBudget limits_;
  int64_t steps_ = 0;
  int64_t next_check_ = 0;  // steps_ at which SlowCheck runs next
  size_t work_bytes_ = 0;   // scanned bytes not yet converted into steps
  size_t allocated_ = 0;
  uintptr_t stack_base_ = 0;
  size_t max_stack_bytes_ = 0;
};

namespace detail {
// Constant-initialized, so reading it is a plain TLS load (no wrapper call): it is read on
// every value created.
inline thread_local Budget* t_current_budget = nullptr;
}  // namespace detail

// The budget of the render running on this thread, or null.
inline Budget* CurrentBudget() { return detail::t_current_budget; }

// Installs `b` as this thread's current budget for its lifetime (restores the previous).
class BudgetScope {
 public:
  explicit BudgetScope(Budget* b);
  ~BudgetScope();
  BudgetScope(const BudgetScope&) = delete;
  BudgetScope& operator=(const BudgetScope&) = delete;

 private:
  Budget* saved_;
};

// Charges on the current budget; no-ops outside a render.
inline void ChargeSteps(int64_t n) {
  if (Budget* b = CurrentBudget()) b->Step(n);
}
inline void ChargeWork(size_t bytes) {
  if (Budget* b = CurrentBudget()) b->Work(bytes);
}
inline void ChargeAlloc(size_t bytes) {
  if (Budget* b = CurrentBudget()) b->Alloc(bytes);
}
inline void CheckAlloc(size_t bytes) {
  if (Budget* b = CurrentBudget()) b->CheckAlloc(bytes);
}
// For the recursions over values (print, serialize, compare) inside a render.
inline void CheckStack() {
  if (Budget* b = CurrentBudget()) b->CheckStack();
}

// a * b + c in size_t, saturating at SIZE_MAX: sizes of results computed before building
// them ('x' * n, list * n) must not wrap around and pass a check.
size_t SatMulAdd(size_t a, size_t b, size_t c = 0);

}  // namespace inferd::chat
