// Interpreter: renders a parsed Template against a set of global variables.
//
// One Interpreter per render (not thread-safe itself); the Template it walks is shared and
// never modified, which is what makes ChatTemplate::Render thread-safe.
//
// Semantics follow jinja2 as transformers configures it (ImmutableSandboxedEnvironment):
// Undefined is falsy, prints as "", iterates as empty, and raises on attribute access, calls
// and arithmetic; mutating list/dict methods (append, pop, update, ...) are unsafe and raise
// when called; each for-loop iteration gets a fresh scope; `if` does not open a scope.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/ast.h"
#include "chat/budget.h"
#include "chat/value.h"

namespace inferd::chat {

// Structural limits of a render, fixed by the engine (what a render may spend is the
// caller's RenderBudget).
struct RenderLimits {
  int max_call_depth = 100;                 // nested macro calls
  int64_t max_loop_iterations = 1'000'000;  // over the whole render
  // C++ stack a render may use below Render(), checked by every recursion of the evaluator
  // and of the value printers and comparers. Parse limits bound the nesting of one
  // template body (128 blocks, 512-deep expressions), but a macro call re-enters its body,
  // so 100 nested calls times the body's nesting needs its own bound. Measured in a release
  // build: ~2.2 KB a macro call, ~0.8 KB an expression or for-loop level, so 512 KiB runs
  // the deepest expression the parser accepts, or 100 nested calls of a plain macro. It
  // leaves room on a 1 MiB worker-thread stack for the caller and for destroying a value
  // kMaxValueDepth deep (~32 KB, the one recursion that cannot check) at the deepest point.
  size_t max_stack_bytes = (512u << 10) * kStackScale;
};

struct Scope {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Scope> parent;

  Value* Find(const std::string& name);
  void Set(const std::string& name, Value v);
};

class Interpreter {
 public:
  Interpreter(const Template& tmpl, Value globals, const RenderBudget& budget = {}, RenderLimits limits = {});
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // Throws TemplateError / RaisedError. Installs the render's budget as this thread's
  // current budget (budget.h) while it runs.
  std::string Render();

  // ---- used by builtins ----
  Value Eval(const Expr& e);
  Value CallValue(const Value& callee, CallArgs& args);
  Value GetAttr(const Value& obj, const std::string& name);
  Value GetItem(const Value& obj, const Value& key);
  Value ApplyFilter(const std::string& name, Value v, CallArgs& args);
  bool ApplyTest(const std::string& name, const Value& v, CallArgs& args);
  Budget& budget() { return budget_; }
  // namespace() objects are tracked so that reference cycles through them are cut when the
  // render ends.
  void RegisterNamespace(const Value& ns) { namespaces_.push_back(ns.dict); }
  // Items of an iterable as a for loop sees them (dict -> keys, str -> characters).
  std::vector<Value> Iterate(const Value& v);

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Flow Exec(const Body& body, std::string& out);
  // Appends rendered text to a buffer, within max_output_bytes (checked before growing).
  void Emit(std::string& out, const std::string& text);
  Flow ExecNode(const Node& n, std::string& out);
  Flow ExecFor(const Node& n, std::string& out);
  void ExecSet(const Node& n);
  bool AppendToNamespace(const Node& n);
  Value MakeMacro(const Node& n);
  Value CallMacro(const Node& n, const std::weak_ptr<Scope>& def_scope, CallArgs& args, const Value* caller);
  void Bind(const std::vector<std::string>& targets, const Value& v);
  Value EvalBinary(const Expr& e);
  Value EvalConcat(const Expr& e);
  Value EvalCompare(const Expr& e);
  Value EvalCall(const Expr& e);
  Value EvalSlice(const Expr& e);
  Value LookupName(const std::string& name);
  void CollectArgs(const Expr& e, size_t first, CallArgs* args);

  const Template& tmpl_;
  Value globals_;
  RenderLimits limits_;
  Budget budget_;
  std::shared_ptr<Scope> scope_;
  int call_depth_ = 0;
  int64_t iterations_ = 0;
  std::vector<std::shared_ptr<DictData>> namespaces_;
};

// Throws TemplateError for using an undefined value (its message, or "value is undefined").
[[noreturn]] void FailUndefined(const Value& u);

// Builtins (builtins.cc).
Value CallMethod(Interpreter& in, const Value& self, const std::string& name, CallArgs& args);
// Whether `name` is a method of self's type; *unsafe is set for mutating methods.
bool HasMethod(const Value& self, const std::string& name, bool* unsafe);
Value BinaryOp(Interpreter& in, const std::string& op, const Value& a, const Value& b);
bool Contains(const Value& container, const Value& item);
void AddGlobalFunctions(Value& globals);

}  // namespace inferd::chat
