#include "chat/evaluator.h"

#include <algorithm>
#include <utility>

namespace inferd::chat {

Value* Scope::Find(const std::string& name) {
  size_t scanned = 0;  // a linear scan: charged by its length, as DictData::Find
  Value* found = nullptr;
  for (Scope* s = this; s && !found; s = s->parent.get()) {
    for (auto& kv : s->vars) {
      ++scanned;
      if (kv.first == name) {
        found = &kv.second;
        break;
      }
    }
  }
  ChargeSteps(static_cast<int64_t>(scanned / 16));
  return found;
}

void Scope::Set(const std::string& name, Value v) {
  for (auto& kv : vars) {
    if (kv.first == name) {
      kv.second = std::move(v);
      return;
    }
  }
  vars.emplace_back(name, std::move(v));
}

[[noreturn]] void FailUndefined(const Value& u) {
  throw TemplateError(u.s().empty() ? "value is undefined" : u.s());
}

namespace {

// Restores the interpreter's scope on exit.
struct ScopeGuard {
  ScopeGuard(std::shared_ptr<Scope>& slot, std::shared_ptr<Scope> next) : slot_(slot), saved_(slot) {
    slot_ = std::move(next);
  }
  ~ScopeGuard() { slot_ = std::move(saved_); }
  std::shared_ptr<Scope>& slot_;
  std::shared_ptr<Scope> saved_;
};

std::shared_ptr<Scope> Child(const std::shared_ptr<Scope>& parent) {
  auto s = std::make_shared<Scope>();
  s->parent = parent;
  return s;
}

}  // namespace

Interpreter::Interpreter(const Template& tmpl, Value globals, const RenderBudget& budget, RenderLimits limits)
    : tmpl_(tmpl),
      globals_(std::move(globals)),
      limits_(limits),
      budget_(budget, limits.max_stack_bytes),
      scope_(std::make_shared<Scope>()) {}

Interpreter::~Interpreter() {
  // Cut every edge out of a namespace first, then drop the values: no cycle survives and
  // no destruction recurses deeper than kMaxValueDepth.
  std::vector<std::vector<std::pair<std::string, Value>>> held;
  for (auto& ns : namespaces_) held.push_back(std::move(ns->items));
  namespaces_.clear();
}

std::string Interpreter::Render() {
  BudgetScope active(&budget_);
  std::string out;
  Exec(tmpl_.body, out);
  return out;
}

void Interpreter::Emit(std::string& out, const std::string& text) {
  budget_.CheckOutput(out.size() + text.size());
  out += text;
}

Interpreter::Flow Interpreter::Exec(const Body& body, std::string& out) {
  for (const auto& n : body) {
    Flow f = ExecNode(*n, out);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::ExecNode(const Node& n, std::string& out) {
  budget_.Step();
  budget_.CheckStack();
  switch (n.kind) {
    case NodeKind::kText: Emit(out, n.text); break;
    case NodeKind::kOutput: Emit(out, Eval(*n.expr).Str()); break;
    case NodeKind::kIf:
      for (size_t k = 0; k < n.conds.size(); ++k)
        if (Eval(*n.conds[k]).Truthy()) return Exec(n.bodies[k], out);
      return Exec(n.else_body, out);
    case NodeKind::kFor: return ExecFor(n, out);
    case NodeKind::kSet: ExecSet(n); break;
    case NodeKind::kMacro: scope_->Set(n.text, MakeMacro(n)); break;
    case NodeKind::kCallBlock: {
      // caller() renders the body in the current scope.
      auto def = std::weak_ptr<Scope>(scope_);
      const Node* node = &n;
      Value caller = Value::Function([node, def](Interpreter& in, CallArgs& a) {
        return in.CallMacro(*node, def, a, nullptr);
      });
      const Expr& call = *n.expr;
      Value callee = Eval(*call.args[0]);
      CallArgs args;
      CollectArgs(call, 1, &args);
      args.kw.emplace_back("caller", caller);
      Emit(out, CallValue(callee, args).Str());
      break;
    }
    case NodeKind::kFilterBlock: {
      std::string body;
      Exec(n.body, body);
      // Apply the chain innermost first; the innermost filter has a null operand.
      std::vector<const Expr*> chain;
      for (const Expr* e = n.expr.get(); e; e = e->args[0].get()) chain.push_back(e);
      Value v = Value::Str(std::move(body));
      for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        CallArgs args;
        CollectArgs(**it, 1, &args);
        v = ApplyFilter((*it)->name, std::move(v), args);
      }
      Emit(out, v.Str());
      break;
    }
    case NodeKind::kScope: return Exec(n.body, out);
    case NodeKind::kBreak: return Flow::kBreak;
    case NodeKind::kContinue: return Flow::kContinue;
  }
  return Flow::kNormal;
}

void Interpreter::Bind(const std::vector<std::string>& targets, const Value& v) {
  if (targets.size() == 1) {
    scope_->Set(targets[0], v);
    return;
  }
  std::vector<Value> items = Iterate(v);
  if (items.size() != targets.size())
    throw TemplateError("cannot unpack " + std::to_string(items.size()) + " values into " +
                        std::to_string(targets.size()) + " names");
  for (size_t k = 0; k < targets.size(); ++k) scope_->Set(targets[k], items[k]);
}

// The items are a new vector: its cells are charged before it is built (the items
// themselves are shared, or new strings charged as they are made).
std::vector<Value> Interpreter::Iterate(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return {};
    case Kind::kList:
      if (v.list->generator) return std::exchange(v.list->items, {});  // one pass, as in Python
      budget_.Alloc(SatMulAdd(v.list->items.size(), sizeof(Value)));
      return v.list->items;
    case Kind::kDict: {
      if (v.is_namespace()) break;
      budget_.Alloc(SatMulAdd(v.dict->items.size(), sizeof(Value)));
      std::vector<Value> keys;
      keys.reserve(v.dict->items.size());
      for (const auto& kv : v.dict->items) keys.push_back(KeyValue(kv.first));
      return keys;
    }
    case Kind::kString: {
      budget_.Alloc(SatMulAdd(CodePointCount(v.s()), sizeof(Value)));
      std::vector<Value> chars;
      for (char32_t c : DecodeUtf8(v.s())) {
        std::string s;
        AppendUtf8(s, c);
        chars.push_back(Value::Str(std::move(s)));
      }
      return chars;
    }
    default: break;
  }
  throw TemplateError(std::string("'") + v.TypeName() + "' object is not iterable");
}

namespace {

// The `loop` variable of iteration k of `items`. It is scaffolding of the iteration, counted
// as the iteration's step rather than as allocated bytes (only its dict header is charged):
// it dies with the iteration unless the template keeps it, and keeping many takes a growing
// list, which is charged. Its depth is tracked all the same: loop.previtem can be the loop
// of an earlier iteration, and a chain of those is a deep value.
Value MakeLoop(int64_t k, const std::vector<Value>& items) {
  const int64_t len = static_cast<int64_t>(items.size());
  Value prev = k > 0 ? items[k - 1] : Value::Undefined("there is no previous item");
  Value next = k + 1 < len ? items[k + 1] : Value::Undefined("there is no next item");
  const int depth = 1 + std::max(ChildDepth(prev), ChildDepth(next));
  CheckValueDepth(depth);
  Value loop = Value::Dict();
  DictData& d = *loop.dict;
  d.depth = depth;
  d.items.reserve(12);
  d.items.emplace_back("index", Value::Int(k + 1));
  d.items.emplace_back("index0", Value::Int(k));
  d.items.emplace_back("revindex", Value::Int(len - k));
  d.items.emplace_back("revindex0", Value::Int(len - k - 1));
  d.items.emplace_back("first", Value::Bool(k == 0));
  d.items.emplace_back("last", Value::Bool(k == len - 1));
  d.items.emplace_back("length", Value::Int(len));
  d.items.emplace_back("depth", Value::Int(1));
  d.items.emplace_back("depth0", Value::Int(0));
  d.items.emplace_back("previtem", std::move(prev));
  d.items.emplace_back("nextitem", std::move(next));
  d.items.emplace_back("cycle", Value::Function([k](Interpreter&, CallArgs& a) {
    if (a.pos.empty()) throw TemplateError("no items for cycling given");
    return a.pos[k % a.pos.size()];
  }));
  return loop;
}

}  // namespace

Interpreter::Flow Interpreter::ExecFor(const Node& n, std::string& out) {
  Value seq = Eval(*n.expr);
  // A plain list is immutable and `seq` keeps it alive: iterate it in place. Anything else
  // (generators, dicts, strings, filtered loops) is materialized first.
  std::vector<Value> owned;
  const std::vector<Value>* items = &owned;
  if (seq.is_plain_list() && !n.cond) {
    items = &seq.list->items;
  } else {
    owned = Iterate(seq);
    if (n.cond) {
      std::vector<Value> kept;
      for (auto& it : owned) {
        ScopeGuard g(scope_, Child(scope_));
        Bind(n.targets, it);
        if (Eval(*n.cond).Truthy()) kept.push_back(std::move(it));
      }
      owned = std::move(kept);
    }
  }
  if (items->empty()) return Exec(n.else_body, out);
  for (size_t k = 0; k < items->size(); ++k) {
    if (++iterations_ > limits_.max_loop_iterations)
      throw TemplateError("loop iteration limit exceeded (" + std::to_string(limits_.max_loop_iterations) + ")");
    budget_.Step();
    ScopeGuard g(scope_, Child(scope_));
    scope_->Set("loop", MakeLoop(static_cast<int64_t>(k), *items));
    Bind(n.targets, (*items)[k]);
    Flow f = Exec(n.body, out);
    if (f == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

// `{% set ns.a = ns.a ~ x ~ ... %}`, the way templates accumulate a prompt: appends to the
// namespace's string in place when nothing else shares it, so that n such statements cost
// O(total) bytes instead of O(n * total). The result is exactly jinja2's: ns.a is read
// first, the other operands are evaluated in order, and if one of them changed ns.a (a
// macro call can) the old value is used, as jinja2 would. Returns false when the
// statement has another shape (the caller evaluates it the ordinary way).
bool Interpreter::AppendToNamespace(const Node& n) {
  const Expr& e = *n.expr;
  if (e.kind != ExprKind::kBinary || e.name != "~") return false;
  std::vector<const Expr*> operands;  // reversed: the head ns.a comes last
  const Expr* x = &e;
  for (; x->kind == ExprKind::kBinary && x->name == "~"; x = x->args[0].get()) operands.push_back(x->args[1].get());
  if (x->kind != ExprKind::kGetAttr || x->name != n.text || x->args[0]->kind != ExprKind::kName ||
      x->args[0]->name != n.targets[0])
    return false;
  Value ns = LookupName(n.targets[0]);
  if (!ns.is_namespace()) return false;
  const Value* slot = ns.dict->Find(n.text);
  if (!slot || !slot->is_string() || slot->markup) return false;
  budget_.Step(2);  // the head and the `~` chain, not evaluated through Eval
  Value old = *slot;
  std::string tail;
  for (auto it = operands.rbegin(); it != operands.rend(); ++it) {
    Value v = Eval(**it);
    std::string text = v.is_string() ? std::string() : v.Str();
    const std::string& piece = v.is_string() ? v.s() : text;
    budget_.CheckAlloc(old.s().size() + tail.size() + piece.size());
    tail += piece;
  }
  Value* now = ns.dict->Find(n.text);  // found again: evaluating may have added keys
  if (now && now->SharesText(old)) {
    old = Value();  // drop our reference: the namespace may hold the only one
    if (now->AppendUnshared(tail)) return true;
    old = *now;
  }
  budget_.CheckAlloc(old.s().size() + tail.size());
  std::string joined;
  joined.reserve(old.s().size() + tail.size());
  joined += old.s();
  joined += tail;
  ns.dict->Set(n.text, Value::Str(std::move(joined)));
  return true;
}

void Interpreter::ExecSet(const Node& n) {
  if (!n.text.empty() && n.expr && AppendToNamespace(n)) return;
  Value v;
  if (n.expr) {
    v = Eval(*n.expr);
  } else {
    std::string body;
    Exec(n.body, body);
    v = Value::Str(std::move(body));
    if (n.cond) {
      std::vector<const Expr*> chain;
      for (const Expr* e = n.cond.get(); e; e = e->args[0].get()) chain.push_back(e);
      for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        CallArgs args;
        CollectArgs(**it, 1, &args);
        v = ApplyFilter((*it)->name, std::move(v), args);
      }
    }
  }
  if (!n.text.empty()) {
    Value ns = LookupName(n.targets[0]);
    if (!ns.is_namespace()) throw TemplateError("cannot assign attribute on non-namespace object");
    ns.dict->Set(n.text, std::move(v));
    return;
  }
  Bind(n.targets, v);
}

Value Interpreter::MakeMacro(const Node& n) {
  const Node* node = &n;
  std::weak_ptr<Scope> def = scope_;
  return Value::Function([node, def](Interpreter& in, CallArgs& a) { return in.CallMacro(*node, def, a, nullptr); });
}

Value Interpreter::CallMacro(const Node& n, const std::weak_ptr<Scope>& def_scope, CallArgs& args,
                             const Value* /*caller*/) {
  if (call_depth_ >= limits_.max_call_depth)
    throw TemplateError("maximum macro recursion depth (" + std::to_string(limits_.max_call_depth) + ") exceeded");
  std::shared_ptr<Scope> parent = def_scope.lock();
  if (!parent) parent = scope_;
  auto s = Child(parent);
  const std::string& name = n.kind == NodeKind::kMacro ? n.text : std::string("caller");
  if (args.pos.size() > n.targets.size())
    throw TemplateError("macro '" + name + "' takes not more than " + std::to_string(n.targets.size()) +
                        " argument(s)");
  std::vector<bool> bound(n.targets.size(), false);
  for (size_t k = 0; k < args.pos.size(); ++k) {
    s->Set(n.targets[k], args.pos[k]);
    bound[k] = true;
  }
  for (auto& [key, val] : args.kw) {
    size_t k = 0;
    while (k < n.targets.size() && n.targets[k] != key) ++k;
    if (k == n.targets.size()) {
      if (key == "caller") {
        s->Set("caller", val);
        continue;
      }
      throw TemplateError("macro '" + name + "' takes no keyword argument '" + key + "'");
    }
    if (bound[k]) throw TemplateError("macro '" + name + "' got multiple values for argument '" + key + "'");
    s->Set(key, val);
    bound[k] = true;
  }
  ++call_depth_;
  struct DepthRestore {
    int& d;
    ~DepthRestore() { --d; }
  } restore{call_depth_};
  ScopeGuard g(scope_, s);
  for (size_t k = 0; k < n.targets.size(); ++k) {
    if (bound[k]) continue;
    s->Set(n.targets[k], n.conds[k] ? Eval(*n.conds[k])
                                     : Value::Undefined("parameter '" + n.targets[k] + "' was not provided"));
  }
  std::string out;
  Exec(n.body, out);
  return Value::Str(std::move(out));
}

Value Interpreter::LookupName(const std::string& name) {
  if (Value* v = scope_->Find(name)) return *v;
  if (const Value* g = globals_.dict->Find(name)) return *g;
  return Value::Undefined("'" + name + "' is undefined");
}

void Interpreter::CollectArgs(const Expr& e, size_t first, CallArgs* args) {
  for (size_t k = first; k < e.args.size(); ++k) args->pos.push_back(Eval(*e.args[k]));
  for (const auto& [key, ex] : e.kwargs) args->kw.emplace_back(key, Eval(*ex));
}

Value Interpreter::Eval(const Expr& e) {
  budget_.Step();
  budget_.CheckStack();
  switch (e.kind) {
    case ExprKind::kLiteral: return e.literal;
    case ExprKind::kName: return LookupName(e.name);
    case ExprKind::kList:
    case ExprKind::kTuple: {
      std::vector<Value> items;
      items.reserve(e.args.size());
      for (const auto& a : e.args) items.push_back(Eval(*a));
      return Value::List(std::move(items), e.kind == ExprKind::kTuple);
    }
    case ExprKind::kDict: {
      Value d = Value::Dict();
      for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
        Value key = Eval(*e.args[k]);
        d.dict->Set(DictKey(key), Eval(*e.args[k + 1]));
      }
      return d;
    }
    case ExprKind::kGetAttr: return GetAttr(Eval(*e.args[0]), e.name);
    case ExprKind::kGetItem: return GetItem(Eval(*e.args[0]), Eval(*e.args[1]));
    case ExprKind::kSlice: return EvalSlice(e);
    case ExprKind::kCall: return EvalCall(e);
    case ExprKind::kFilter: {
      Value v = Eval(*e.args[0]);
      CallArgs args;
      CollectArgs(e, 1, &args);
      return ApplyFilter(e.name, std::move(v), args);
    }
    case ExprKind::kTest: {
      Value v = Eval(*e.args[0]);
      CallArgs args;
      CollectArgs(e, 1, &args);
      return Value::Bool(ApplyTest(e.name, v, args) != e.negated);
    }
    case ExprKind::kUnary: {
      Value v = Eval(*e.args[0]);
      if (e.name == "not") return Value::Bool(!v.Truthy());
      if (v.kind == Kind::kFloat) return Value::Float(e.name == "-" ? -v.f : v.f);
      if (v.is_integer()) {
        if (e.name == "-" && v.AsInt() == INT64_MIN) throw TemplateError("integer overflow");
        return Value::Int(e.name == "-" ? -v.AsInt() : v.AsInt());
      }
      if (v.is_undefined()) FailUndefined(v);
      throw TemplateError(std::string("bad operand type for unary ") + e.name + ": '" + v.TypeName() + "'");
    }
    case ExprKind::kBinary: return EvalBinary(e);
    case ExprKind::kCompare: return EvalCompare(e);
    case ExprKind::kCondExpr:
      if (Eval(*e.args[1]).Truthy()) return Eval(*e.args[0]);
      if (e.args[2]) return Eval(*e.args[2]);
      return Value::Undefined("the inline if-expression evaluated to false and no else section was defined");
  }
  return Value::Undefined();
}

Value Interpreter::EvalBinary(const Expr& e) {
  if (e.name == "and") {
    Value a = Eval(*e.args[0]);
    return a.Truthy() ? Eval(*e.args[1]) : a;
  }
  if (e.name == "or") {
    Value a = Eval(*e.args[0]);
    return a.Truthy() ? a : Eval(*e.args[1]);
  }
  if (e.name == "~") return EvalConcat(e);
  Value a = Eval(*e.args[0]);
  Value b = Eval(*e.args[1]);
  return BinaryOp(*this, e.name, a, b);
}

// `a ~ b ~ c ...` is one join of all operands, as jinja2 compiles it (a Concat node), not
// a copy of the growing prefix per `~`: `{% set ns.out = ns.out ~ x ~ y %}` in a loop
// over messages copies ns.out once per statement.
Value Interpreter::EvalConcat(const Expr& e) {
  std::vector<const Expr*> operands;  // the left-associated chain ((a ~ b) ~ c), reversed
  const Expr* x = &e;
  for (; x->kind == ExprKind::kBinary && x->name == "~"; x = x->args[0].get()) operands.push_back(x->args[1].get());
  operands.push_back(x);
  std::vector<Value> parts;
  parts.reserve(operands.size());
  size_t total = 0;
  for (auto it = operands.rbegin(); it != operands.rend(); ++it) {
    Value v = Eval(**it);
    if (!v.is_string()) v = Value::Str(v.Str());
    total += v.s().size();
    budget_.CheckAlloc(total);
    parts.push_back(std::move(v));
  }
  std::string out;
  out.reserve(total);
  for (const auto& p : parts) out += p.s();
  return Value::Str(std::move(out));
}

Value Interpreter::EvalCompare(const Expr& e) {
  Value left = Eval(*e.args[0]);
  for (size_t k = 0; k < e.ops.size(); ++k) {
    Value right = Eval(*e.args[k + 1]);
    const std::string& op = e.ops[k];
    bool r;
    if (op == "==") r = PyEquals(left, right);
    else if (op == "!=") r = !PyEquals(left, right);
    else if (op == "in") r = Contains(right, left);
    else if (op == "notin") r = !Contains(right, left);
    else {
      if (left.is_undefined()) FailUndefined(left);
      if (right.is_undefined()) FailUndefined(right);
      int c = PyCompare(left, right);
      r = op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
    }
    if (!r) return Value::Bool(false);
    left = std::move(right);
  }
  return Value::Bool(true);
}

Value Interpreter::EvalCall(const Expr& e) {
  const Expr& callee = *e.args[0];
  CallArgs args;
  // obj.method(...): call the method directly rather than materializing a bound value.
  if (callee.kind == ExprKind::kGetAttr) {
    Value obj = Eval(*callee.args[0]);
    if (obj.is_undefined()) FailUndefined(obj);
    bool unsafe = false;
    if (!obj.is_namespace() && HasMethod(obj, callee.name, &unsafe)) {
      if (unsafe)
        throw TemplateError("access to attribute '" + callee.name + "' of '" + obj.TypeName() +
                            "' object is unsafe.");
      CollectArgs(e, 1, &args);
      return CallMethod(*this, obj, callee.name, args);
    }
    Value fn = GetAttr(obj, callee.name);
    CollectArgs(e, 1, &args);
    return CallValue(fn, args);
  }
  Value fn = Eval(callee);
  CollectArgs(e, 1, &args);
  return CallValue(fn, args);
}

Value Interpreter::CallValue(const Value& callee, CallArgs& args) {
  budget_.Step();
  if (callee.kind == Kind::kCallable) return callee.fn->call(*this, args);
  if (callee.is_undefined()) FailUndefined(callee);
  throw TemplateError(std::string("'") + callee.TypeName() + "' object is not callable");
}

Value Interpreter::GetAttr(const Value& obj, const std::string& name) {
  switch (obj.kind) {
    case Kind::kUndefined: FailUndefined(obj);
    case Kind::kDict: {
      bool unsafe = false;
      if (!obj.is_namespace() && HasMethod(obj, name, &unsafe)) break;
      if (const Value* v = obj.dict->Find(name)) return *v;
      return Value::Undefined("'" + std::string(obj.is_namespace() ? "Namespace" : "dict object") +
                              "' has no attribute '" + name + "'");
    }
    default: break;
  }
  bool unsafe = false;
  if (HasMethod(obj, name, &unsafe)) {
    if (unsafe)
      return Value::Undefined("access to attribute '" + name + "' of '" + obj.TypeName() + "' object is unsafe.");
    Value self = obj;
    std::string method = name;
    return Value::Function([self, method](Interpreter& in, CallArgs& a) { return CallMethod(in, self, method, a); },
                           ChildDepth(self) + 1);
  }
  return Value::Undefined("'" + std::string(obj.TypeName()) + " object' has no attribute '" + name + "'");
}

Value Interpreter::GetItem(const Value& obj, const Value& key) {
  switch (obj.kind) {
    case Kind::kUndefined: FailUndefined(obj);
    case Kind::kDict:
      if (!obj.is_namespace() && !key.is_list() && !key.is_dict() && !key.is_undefined()) {
        if (const Value* v = key.is_string() ? obj.dict->Find(key.s()) : obj.dict->Find(DictKey(key))) return *v;
      }
      break;
    case Kind::kList:
      if (key.is_integer() && obj.list->is_plain()) {
        int64_t n = static_cast<int64_t>(obj.list->items.size());
        int64_t k = key.AsInt();
        if (k < 0) k += n;
        if (k >= 0 && k < n) return obj.list->items[k];
        return Value::Undefined(std::string(obj.TypeName()) + " index out of range");
      }
      break;
    case Kind::kString:
      if (key.is_integer()) {
        std::u32string u = DecodeUtf8(obj.s());
        int64_t n = static_cast<int64_t>(u.size());
        int64_t k = key.AsInt();
        if (k < 0) k += n;
        if (k >= 0 && k < n) {
          std::string s;
          AppendUtf8(s, u[k]);
          return Value::Str(std::move(s));
        }
        return Value::Undefined("string index out of range");
      }
      break;
    default: break;
  }
  if (key.is_string() && !obj.is_none()) {
    if (obj.is_namespace()) {
      if (const Value* v = obj.dict->Find(key.s())) return *v;
    }
    bool unsafe = false;
    if (HasMethod(obj, key.s(), &unsafe)) return GetAttr(obj, key.s());
  }
  return Value::Undefined("'" + std::string(obj.TypeName()) + " object' has no attribute '" + key.Str() + "'");
}

namespace {

// Python slice index normalization.
void SliceIndices(int64_t len, const Value& start, const Value& stop, const Value& step, int64_t* b, int64_t* e,
                  int64_t* st) {
  auto as_int = [](const Value& v) {
    if (!v.is_integer()) throw TemplateError("slice indices must be integers or None");
    return v.AsInt();
  };
  *st = step.is_none() || step.is_undefined() ? 1 : as_int(step);
  if (*st == 0) throw TemplateError("slice step cannot be zero");
  auto norm = [&](const Value& v, int64_t dflt) {
    if (v.is_none() || v.is_undefined()) return dflt;
    int64_t x = as_int(v);
    if (x < 0) {
      x += len;
      if (x < 0) x = *st < 0 ? -1 : 0;
    } else if (x >= len) {
      x = *st < 0 ? len - 1 : len;
    }
    return x;
  };
  *b = norm(start, *st < 0 ? len - 1 : 0);
  *e = norm(stop, *st < 0 ? -1 : len);
}

}  // namespace

Value Interpreter::EvalSlice(const Expr& e) {
  Value obj = Eval(*e.args[0]);
  auto part = [&](size_t k) { return e.args[k] ? Eval(*e.args[k]) : Value::None(); };
  Value start = part(1), stop = part(2), step = part(3);
  if (obj.is_undefined()) FailUndefined(obj);
  int64_t b, en, st;  // the index runs in __int128: b + st can pass INT64_MAX
  if (obj.is_plain_list()) {
    const auto& items = obj.list->items;
    SliceIndices(static_cast<int64_t>(items.size()), start, stop, step, &b, &en, &st);
    std::vector<Value> out;
    for (__int128 k = b; st > 0 ? k < en : k > en; k += st) out.push_back(items[static_cast<size_t>(k)]);
    return Value::List(std::move(out), obj.list->tuple);
  }
  if (obj.is_string()) {
    std::u32string u = DecodeUtf8(obj.s());
    SliceIndices(static_cast<int64_t>(u.size()), start, stop, step, &b, &en, &st);
    std::u32string out;
    for (__int128 k = b; st > 0 ? k < en : k > en; k += st) out.push_back(u[static_cast<size_t>(k)]);
    return Value::Str(EncodeUtf8(out));
  }
  return Value::Undefined(std::string("'") + obj.TypeName() + "' object is not subscriptable");
}

}  // namespace inferd::chat
