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
#include "chat/value.h"

namespace inferd::chat {

struct RenderLimits {
  int max_call_depth = 100;                 // nested macro calls
  int64_t max_loop_iterations = 1'000'000;  // over the whole render
  size_t max_output_bytes = 64u << 20;      // rendered text and any string built
};

struct Scope {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Scope> parent;

  Value* Find(const std::string& name);
  void Set(const std::string& name, Value v);
};

class Interpreter {
 public:
  Interpreter(const Template& tmpl, Value globals, RenderLimits limits = {});
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // Throws TemplateError / RaisedError.
  std::string Render();

  // ---- used by builtins ----
  Value Eval(const Expr& e);
  Value CallValue(const Value& callee, CallArgs& args);
  Value GetAttr(const Value& obj, const std::string& name);
  Value GetItem(const Value& obj, const Value& key);
  Value ApplyFilter(const std::string& name, Value v, CallArgs& args);
  bool ApplyTest(const std::string& name, const Value& v, CallArgs& args);
  void CheckSize(size_t n) const;
  // namespace() objects are tracked so that reference cycles through them are cut when the
  // render ends.
  void RegisterNamespace(const Value& ns) { namespaces_.push_back(ns.dict); }
  // Items of an iterable as a for loop sees them (dict -> keys, str -> characters).
  std::vector<Value> Iterate(const Value& v);

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Flow Exec(const Body& body, std::string& out);
  Flow ExecNode(const Node& n, std::string& out);
  Flow ExecFor(const Node& n, std::string& out);
  void ExecSet(const Node& n);
  Value MakeMacro(const Node& n);
  Value CallMacro(const Node& n, const std::weak_ptr<Scope>& def_scope, CallArgs& args, const Value* caller);
  void Bind(const std::vector<std::string>& targets, const Value& v);
  Value EvalBinary(const Expr& e);
  Value EvalCompare(const Expr& e);
  Value EvalCall(const Expr& e);
  Value EvalSlice(const Expr& e);
  Value LookupName(const std::string& name);
  void CollectArgs(const Expr& e, size_t first, CallArgs* args);

  const Template& tmpl_;
  Value globals_;
  RenderLimits limits_;
  std::shared_ptr<Scope> scope_;
  int call_depth_ = 0;
  int64_t iterations_ = 0;
  std::vector<std::shared_ptr<DictData>> namespaces_;
};

// Builtins (builtins.cc).
Value CallMethod(Interpreter& in, const Value& self, const std::string& name, CallArgs& args);
// Whether `name` is a method of self's type; *unsafe is set for mutating methods.
bool HasMethod(const Value& self, const std::string& name, bool* unsafe);
Value BinaryOp(Interpreter& in, const std::string& op, const Value& a, const Value& b);
bool Contains(const Value& container, const Value& item);
void AddGlobalFunctions(Value& globals);

}  // namespace inferd::chat
