// Value: the dynamic value of the template language, modelled on the Python objects that
// jinja2 manipulates (None, bool, int, float, str, list, tuple, dict, callables) plus
// jinja2's Undefined.
//
// Values are cheap to copy: containers are shared (shared_ptr). Lists and dicts are
// immutable once built (the sandbox forbids mutation, as jinja2's ImmutableSandbox does),
// except namespace() objects, which `{% set ns.attr = ... %}` mutates in place. Strings are
// immutable and shared too, as Python's are: a name lookup or a list copy copies no text.
// A new string is charged to the current render's budget (budget.h) when it becomes a
// Value. (The one exception, AppendUnshared, changes text that no other Value can see.)
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/budget.h"

namespace inferd::chat {

// Thrown inside the chat module only; ChatTemplate converts it to a Status at its edge.
struct TemplateError : std::runtime_error {
  explicit TemplateError(const std::string& m) : std::runtime_error(m) {}
};
// raise_exception(msg) from a template: the message is returned to the user verbatim.
struct RaisedError : std::runtime_error {
  explicit RaisedError(const std::string& m) : std::runtime_error(m) {}
};

class Interpreter;
struct Value;

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

using NativeFn = std::function<Value(Interpreter&, CallArgs&)>;

// A callable value: a builtin, a macro, or a method bound to its object (`x.upper`), which
// holds that object, so it has a nesting depth like a container (see kMaxValueDepth).
struct Callable {
  NativeFn call;
  int depth = 0;
};

enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kCallable };

struct ListData;
struct DictData;

struct Value {
  Kind kind = Kind::kUndefined;
  bool b = false;
  bool markup = false;  // kString: jinja2 Markup (from |safe); `+` escapes plain strings
  int64_t i = 0;
  double f = 0;
  std::shared_ptr<ListData> list;
  std::shared_ptr<DictData> dict;
  std::shared_ptr<Callable> fn;

  // kString: the UTF-8 text; kUndefined: the name / hint used in error messages; else "".
  const std::string& s() const { return str_ ? *str_ : EmptyString(); }
  // Whether both hold the very same (non-empty) text object.
  bool SharesText(const Value& o) const { return str_ && str_ == o.str_; }
  // Appends `tail` to this plain string in place, if no other Value shares its text (as
  // CPython does for `s += t` when s holds the only reference), charging the bytes it
  // allocates; returns false, changing nothing, otherwise. Concurrent renders share only
  // the template's literals, which the template itself always holds a reference to.
  bool AppendUnshared(const std::string& tail);

  static Value Undefined(std::string hint = "") {
    ChargeAlloc(hint.size());  // hints can quote a template's value: `d[big]` is undefined
    Value v;
    v.SetText(std::move(hint));
    return v;
  }
  static Value None() { Value v; v.kind = Kind::kNone; return v; }
  static Value Bool(bool x) { Value v; v.kind = Kind::kBool; v.b = x; return v; }
  static Value Int(int64_t x) { Value v; v.kind = Kind::kInt; v.i = x; return v; }
  static Value Float(double x) { Value v; v.kind = Kind::kFloat; v.f = x; return v; }
  // Charges x's bytes: the string is new to the render.
  static Value Str(std::string x, bool markup = false) {
    ChargeAlloc(x.size());
    Value v;
    v.kind = Kind::kString;
    v.SetText(std::move(x));
    v.markup = markup;
    return v;
  }
  static Value List(std::vector<Value> items, bool tuple = false);
  static Value Generator(std::vector<Value> items);
  static Value View(std::vector<Value> items, const char* name);
  static Value Dict();  // empty, ordered
  static Value Namespace();
  // depth: ChildDepth of what fn holds, plus one (0: it holds no Value).
  static Value Function(NativeFn fn, int depth = 0);
  static Value FromJson(const nlohmann::ordered_json& j, int depth = 0);

  bool is_undefined() const { return kind == Kind::kUndefined; }
  bool is_none() const { return kind == Kind::kNone; }
  bool is_string() const { return kind == Kind::kString; }
  bool is_list() const { return kind == Kind::kList; }
  bool is_dict() const { return kind == Kind::kDict; }
  bool is_number() const { return kind == Kind::kInt || kind == Kind::kFloat || kind == Kind::kBool; }
  bool is_integer() const { return kind == Kind::kInt || kind == Kind::kBool; }
  bool is_tuple() const;
  bool is_plain_list() const;  // list or tuple (not a generator or dict view)
  bool is_namespace() const;

  bool Truthy() const;
  double AsDouble() const;
  int64_t AsInt() const;  // bool or int; a float truncated and saturated
  // Python str(): what `{{ v }}` prints. Undefined prints as "".
  std::string Str() const;
  // Python repr(). Throws TemplateError past kMaxValueDepth (namespaces can refer to
  // themselves) and when the text would exceed the render's allocation budget.
  std::string Repr() const;
  const char* TypeName() const;

 private:
  static const std::string& EmptyString();
  void SetText(std::string x) {
    if (!x.empty()) str_ = std::make_shared<std::string>(std::move(x));
  }
  std::shared_ptr<std::string> str_;  // null for ""; never changed while shared
};

// Containers (and bound methods) are at most kMaxValueDepth deep (checked when built):
// values are destroyed, printed and compared recursively. Namespaces count as leaves; they
// are the only mutable containers, so only they can form cycles or unbounded chains, and
// the Interpreter holds every namespace until the end of the render, when it cuts their
// edges before dropping them (no recursive destruction through a chain of namespaces).
// 512 levels fit a 1 MiB worker-thread stack: measured in a release build, destroying takes
// ~63 B a level (32 KB), comparing 63 B, repr 223 B, tojson 303 B, FromJson 400 B (200 KB);
// sanitizer builds take up to 5x that, within their scaled stacks (kStackScale). Inside a
// render the printers and comparers also check the render's stack limit as they recurse
// (tests/unit/chat/render_limits_test.cc runs all of them on a 1 MiB thread).
inline constexpr int kMaxValueDepth = 512;
int ChildDepth(const Value& v);
// Throws TemplateError when a container of this depth may not be built.
void CheckValueDepth(int depth);

struct ListData {
  std::vector<Value> items;
  int depth = 1;
  bool tuple = false;
  // What jinja2 would hand over instead of a list: the generators that map / select /
  // reject / unique / items / reverse return, or a dict view (dict.items() etc., named
  // here). They iterate like lists but have no len(), no indexing, are always truthy
  // (generators) and are not JSON serializable. A generator is consumed by iteration, as
  // in Python: its items are moved out (shared by every copy of the Value).
  bool generator = false;
  const char* view = nullptr;
  bool is_plain() const { return !generator && view == nullptr; }
};

// Insertion-ordered string-keyed map (Python dict semantics for JSON-like data).
struct DictData {
  std::vector<std::pair<std::string, Value>> items;
  int depth = 1;
  bool is_namespace = false;

  const Value* Find(const std::string& key) const;
  Value* Find(const std::string& key) {
    return const_cast<Value*>(static_cast<const DictData*>(this)->Find(key));
  }
  void Set(const std::string& key, Value v);
  // Adds a key known to be absent (no lookup); keeps depth, charges like Set.
  void Append(std::string key, Value v);
};

// Dict keys are strings. A non-string key (int, float, bool, None: `{0: 'a'}` in a
// template) is stored encoded as "\x01" + its repr, so the rare dict literal with number
// keys behaves as in Python; DictKey / KeyValue convert in both directions.
std::string DictKey(const Value& key);  // throws TemplateError for unhashable keys
Value KeyValue(const std::string& key);

// Python semantics helpers.
bool PyEquals(const Value& a, const Value& b);
// Three-way compare for <, >, sort; throws TemplateError for unorderable types.
int PyCompare(const Value& a, const Value& b);
std::string PyFloatRepr(double d);
// Truncates toward zero, saturating at the int64 range (NaN -> 0): a C++ cast of an
// out-of-range double is undefined behaviour.
int64_t SaturatingInt(double d);
std::string PyStrRepr(const std::string& s);
// json.dumps(v, ensure_ascii, indent (<0: none), separators, sort_keys).
struct JsonOptions {
  bool ensure_ascii = false;
  int indent = -1;
  std::string indent_str;  // used when indent given as a string
  bool indent_is_str = false;
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
};
std::string ToJson(const Value& v, const JsonOptions& opts);
Value ParseJsonText(const std::string& text);  // throws TemplateError

// Markup escaping as markupsafe.escape does: & < > ' ".
std::string HtmlEscape(const std::string& s);

// UTF-8 helpers: strings are indexed by code point, as Python does.
std::u32string DecodeUtf8(const std::string& s);
std::string EncodeUtf8(const std::u32string& s);
void AppendUtf8(std::string& out, char32_t c);
size_t CodePointCount(const std::string& s);

// std::string::find / rfind, charging the current budget for the bytes compared: a naive
// search costs O(n·m) on 'aaa…' against 'aa…ab', so the work, not the call, is charged.
size_t FindCharged(const std::string& s, const std::string& sub, size_t from = 0);
size_t RFindCharged(const std::string& s, const std::string& sub, size_t pos = std::string::npos);
// Whether s[pos, pos + sub.size()) == sub (false when it does not fit), charging the compare.
bool MatchAt(const std::string& s, size_t pos, const std::string& sub);

}  // namespace inferd::chat
