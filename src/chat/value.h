// Value: the dynamic value of the template language, modelled on the Python objects that
// jinja2 manipulates (None, bool, int, float, str, list, tuple, dict, callables) plus
// jinja2's Undefined.
//
// Values are cheap to copy: containers are shared (shared_ptr). Lists and dicts are
// immutable once built (the sandbox forbids mutation, as jinja2's ImmutableSandbox does),
// except namespace() objects, which `{% set ns.attr = ... %}` mutates in place.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

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

enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kCallable };

struct ListData;
struct DictData;

struct Value {
  Kind kind = Kind::kUndefined;
  bool b = false;
  bool markup = false;  // kString: jinja2 Markup (from |safe); `+` escapes plain strings
  int64_t i = 0;
  double f = 0;
  std::string s;  // kString: UTF-8 text; kUndefined: name/hint used in error messages
  std::shared_ptr<ListData> list;
  std::shared_ptr<DictData> dict;
  std::shared_ptr<NativeFn> fn;

  Value() = default;
  static Value Undefined(std::string hint = "") {
    Value v;
    v.s = std::move(hint);
    return v;
  }
  static Value None() { Value v; v.kind = Kind::kNone; return v; }
  static Value Bool(bool x) { Value v; v.kind = Kind::kBool; v.b = x; return v; }
  static Value Int(int64_t x) { Value v; v.kind = Kind::kInt; v.i = x; return v; }
  static Value Float(double x) { Value v; v.kind = Kind::kFloat; v.f = x; return v; }
  static Value Str(std::string x, bool markup = false) {
    Value v;
    v.kind = Kind::kString;
    v.s = std::move(x);
    v.markup = markup;
    return v;
  }
  static Value List(std::vector<Value> items, bool tuple = false);
  static Value Generator(std::vector<Value> items);
  static Value View(std::vector<Value> items, const char* name);
  static Value Dict();  // empty, ordered
  static Value Namespace();
  static Value Function(NativeFn fn);
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
  int64_t AsInt() const;  // bool or int
  // Python str(): what `{{ v }}` prints. Undefined prints as "".
  std::string Str() const;
  // Python repr().
  std::string Repr(int depth = 0) const;
  const char* TypeName() const;
};

// Containers are at most kMaxValueDepth deep (checked when built): values are destroyed,
// printed and compared recursively. Namespaces count as leaves; they are the only mutable
// containers, so only they can form cycles, and the Interpreter clears them all at the end
// of a render to break those.
inline constexpr int kMaxValueDepth = 512;
int ChildDepth(const Value& v);

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
  void Set(const std::string& key, Value v);
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

}  // namespace inferd::chat
