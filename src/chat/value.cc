#include "chat/value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace inferd::chat {

int ChildDepth(const Value& v) {
  if (v.kind == Kind::kList) return v.list->depth;
  if (v.kind == Kind::kDict && !v.dict->is_namespace) return v.dict->depth;
  if (v.kind == Kind::kCallable) return v.fn->depth;
  return 0;
}

void CheckValueDepth(int d) {
  if (d > kMaxValueDepth) throw TemplateError("value nested too deeply (limit " + std::to_string(kMaxValueDepth) + ")");
}

const std::string& Value::EmptyString() {
  static const std::string empty;
  return empty;
}

bool Value::AppendUnshared(const std::string& tail) {
  if (kind != Kind::kString || markup || !str_ || str_.use_count() != 1) return false;
  std::string& text = *str_;
  const size_t need = text.size() + tail.size();
  // Growing reallocates and copies: charge the new buffer, doubling as std::string does,
  // so that n appends cost O(total) bytes, not O(n * total).
  if (need > text.capacity()) {
    const size_t cap = std::max(need, 2 * text.capacity());
    ChargeAlloc(cap);
    text.reserve(cap);
  } else {
    ChargeAlloc(tail.size());
  }
  text += tail;
  return true;
}

Value Value::List(std::vector<Value> items, bool tuple) {
  // Charged once built: builders of big lists (range, `*`, `+`, split ...) check the size
  // before they build.
  ChargeAlloc(SatMulAdd(items.size(), sizeof(Value), sizeof(ListData)));
  int depth = 1;
  for (const auto& it : items) depth = std::max(depth, ChildDepth(it) + 1);
  CheckValueDepth(depth);
  Value v;
  v.kind = Kind::kList;
  v.list = std::make_shared<ListData>();
  v.list->items = std::move(items);
  v.list->tuple = tuple;
  v.list->depth = depth;
  return v;
}

Value Value::Generator(std::vector<Value> items) {
  Value v = List(std::move(items));
  v.list->generator = true;
  return v;
}

Value Value::View(std::vector<Value> items, const char* name) {
  Value v = List(std::move(items));
  v.list->view = name;
  return v;
}

Value Value::Dict() {
  ChargeAlloc(sizeof(DictData));
  Value v;
  v.kind = Kind::kDict;
  v.dict = std::make_shared<DictData>();
  return v;
}

Value Value::Namespace() {
  Value v = Dict();
  v.dict->is_namespace = true;
  return v;
}

Value Value::Function(NativeFn fn, int depth) {
  CheckValueDepth(depth);
  Value v;
  v.kind = Kind::kCallable;
  v.fn = std::make_shared<Callable>(Callable{std::move(fn), depth});
  return v;
}

Value Value::FromJson(const nlohmann::ordered_json& j, int depth) {
  CheckValueDepth(depth);
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return None();
    case nlohmann::ordered_json::value_t::boolean: return Bool(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Int(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Int(static_cast<int64_t>(u));
      return Float(static_cast<double>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Float(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Str(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(FromJson(e, depth + 1));
      return List(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      // JSON object keys are unique already: append directly. (Set looks each key up,
      // which made a 100k-key object from a request quadratic.)
      Value d = Dict();
      d.dict->items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) d.dict->Append(it.key(), FromJson(it.value(), depth + 1));
      return d;
    }
    default: return None();
  }
}

bool Value::is_tuple() const { return kind == Kind::kList && list->tuple; }
bool Value::is_plain_list() const { return kind == Kind::kList && list->is_plain(); }
bool Value::is_namespace() const { return kind == Kind::kDict && dict->is_namespace; }

bool Value::Truthy() const {
  switch (kind) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return b;
    case Kind::kInt: return i != 0;
    case Kind::kFloat: return f != 0.0;
    case Kind::kString: return !s().empty();
    case Kind::kList: return list->generator || !list->items.empty();
    case Kind::kDict: return is_namespace() || !dict->items.empty();
    case Kind::kCallable: return true;
  }
  return false;
}

int64_t SaturatingInt(double d) {
  if (std::isnan(d)) return 0;
  // 2^63 is exactly representable; every double below it converts without overflow.
  if (d >= 9223372036854775808.0) return INT64_MAX;
  if (d <= -9223372036854775808.0) return INT64_MIN;
  return static_cast<int64_t>(d);
}

double Value::AsDouble() const {
  if (kind == Kind::kFloat) return f;
  return static_cast<double>(AsInt());
}

int64_t Value::AsInt() const {
  if (kind == Kind::kBool) return b ? 1 : 0;
  if (kind == Kind::kFloat) return SaturatingInt(f);
  return i;
}

const char* Value::TypeName() const {
  switch (kind) {
    case Kind::kUndefined: return "Undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList:
      if (list->generator) return "generator";
      if (list->view) return list->view;
      return list->tuple ? "tuple" : "list";
    case Kind::kDict: return is_namespace() ? "Namespace" : "dict";
    case Kind::kCallable: return "function";
  }
  return "object";
}

std::string PyFloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  int prec = 1;
  for (; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof(buf), "%.*e", prec - 1, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  // buf: [-]d.ddde[+-]XX
  std::string sbuf(buf);
  bool neg = sbuf[0] == '-';
  if (neg) sbuf.erase(0, 1);
  size_t epos = sbuf.find('e');
  int exp = std::atoi(sbuf.c_str() + epos + 1);
  std::string digits;
  for (size_t k = 0; k < epos; ++k)
    if (sbuf[k] != '.') digits.push_back(sbuf[k]);
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      std::string ip = digits.substr(0, std::min<size_t>(digits.size(), exp + 1));
      while (static_cast<int>(ip.size()) < exp + 1) ip.push_back('0');
      std::string fp = static_cast<int>(digits.size()) > exp + 1 ? digits.substr(exp + 1) : "0";
      out += ip;
      out.push_back('.');
      out += fp;
    } else {
      out += "0.";
      out.append(static_cast<size_t>(-exp - 1), '0');
      out += digits;
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) {
      out.push_back('.');
      out.append(digits, 1, std::string::npos);
    }
    char eb[16];
    std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += eb;
  }
  return out;
}

static bool IsPrintable(char32_t c) {
  if (c < 0x20 || c == 0x7f) return false;
  if (c >= 0x80 && c <= 0xa0) return false;
  if (c == 0xad || c == 0x1680 || (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) ||
      (c >= 0x205f && c <= 0x2064) || c == 0x3000 || c == 0xfeff || (c >= 0xd800 && c <= 0xdfff) ||
      (c >= 0xe000 && c <= 0xf8ff))
    return false;
  return true;
}

std::string PyStrRepr(const std::string& s) {
  bool has_sq = s.find('\'') != std::string::npos;
  bool has_dq = s.find('"') != std::string::npos;
  char q = (has_sq && !has_dq) ? '"' : '\'';
  std::string out(1, q);
  for (char32_t c : DecodeUtf8(s)) {
    if (c == static_cast<char32_t>(q) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (!IsPrintable(c)) {
      char buf[16];
      if (c < 0x100) std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
      else if (c < 0x10000) std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      else std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(c));
      out += buf;
    } else {
      AppendUtf8(out, c);
    }
  }
  out.push_back(q);
  return out;
}

std::string Value::Str() const {
  switch (kind) {
    case Kind::kUndefined: return "";
    case Kind::kNone: return "None";
    case Kind::kBool: return b ? "True" : "False";
    case Kind::kInt: return std::to_string(i);
    case Kind::kFloat: return PyFloatRepr(f);
    case Kind::kString: ChargeWork(s().size()); return s();  // a copy: charged as work
    default: return Repr();
  }
}

// Appends repr(v) to out. Values are DAGs (`[x, x]` shares x), so the printed size can be
// exponential in the value's size: each element visited is a step and the text built is
// checked against the allocation budget as it grows (the caller charges the result).
static void ReprTo(std::string& out, const Value& v, int depth) {
  if (depth > kMaxValueDepth) throw TemplateError("value nested too deeply to print (or refers to itself)");
  ChargeSteps(1);
  CheckStack();
  switch (v.kind) {
    case Kind::kString:
      if (v.markup) out += "Markup(";
      out += PyStrRepr(v.s());
      if (v.markup) out += ")";
      break;
    case Kind::kList: {
      const ListData& l = *v.list;
      if (l.generator) {
        out += "<generator object>";
        break;
      }
      if (l.view) out += std::string(l.view) + "(";
      out += l.tuple ? "(" : "[";
      for (size_t k = 0; k < l.items.size(); ++k) {
        if (k) out += ", ";
        ReprTo(out, l.items[k], depth + 1);
      }
      if (l.tuple && l.items.size() == 1) out += ",";
      out += l.tuple ? ")" : "]";
      if (l.view) out += ")";
      break;
    }
    case Kind::kDict: {
      out += v.is_namespace() ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [k, x] : v.dict->items) {
        if (!first) out += ", ";
        first = false;
        ReprTo(out, KeyValue(k), depth + 1);
        out += ": ";
        ReprTo(out, x, depth + 1);
      }
      out += v.is_namespace() ? "}>" : "}";
      break;
    }
    case Kind::kCallable: out += "<function>"; break;
    default: out += v.Str(); break;
  }
  CheckAlloc(out.size());
}

std::string Value::Repr() const {
  std::string out;
  ReprTo(out, *this, 0);
  return out;
}

std::string DictKey(const Value& key) {
  switch (key.kind) {
    case Kind::kString: ChargeWork(key.s().size()); return key.s();  // a copy: charged as work
    case Kind::kBool:
    case Kind::kInt: return "\x01" + std::to_string(key.AsInt());
    case Kind::kFloat:
      if (std::isfinite(key.f) && key.f == std::floor(key.f) && std::fabs(key.f) < 9e18)
        return "\x01" + std::to_string(static_cast<int64_t>(key.f));
      return "\x01" + PyFloatRepr(key.f);
    case Kind::kNone: return "\x01None";
    default: throw TemplateError(std::string("unhashable type: '") + key.TypeName() + "'");
  }
}

Value KeyValue(const std::string& key) {
  if (key.empty() || key[0] != '\x01') return Value::Str(key);
  std::string r = key.substr(1);
  if (r == "None") return Value::None();
  if (r.find_first_of(".einfa") != std::string::npos) return Value::Float(std::strtod(r.c_str(), nullptr));
  return Value::Int(std::strtoll(r.c_str(), nullptr, 10));
}

// A linear scan: charged by the dict's size and by the bytes of the keys compared.
const Value* DictData::Find(const std::string& key) const {
  ChargeSteps(1 + static_cast<int64_t>(items.size() / 16));
  for (const auto& kv : items) {
    if (kv.first.size() != key.size()) continue;
    ChargeWork(key.size());
    if (kv.first == key) return &kv.second;
  }
  return nullptr;
}

void DictData::Set(const std::string& key, Value v) {
  int d = ChildDepth(v) + 1;
  CheckValueDepth(d);
  depth = std::max(depth, d);
  ChargeSteps(1 + static_cast<int64_t>(items.size() / 16));
  for (auto& kv : items) {
    if (kv.first.size() == key.size() && (ChargeWork(key.size()), kv.first == key)) {
      kv.second = std::move(v);
      return;
    }
  }
  ChargeAlloc(sizeof(items[0]) + key.size());
  items.emplace_back(key, std::move(v));
}

void DictData::Append(std::string key, Value v) {
  int d = ChildDepth(v) + 1;
  CheckValueDepth(d);
  depth = std::max(depth, d);
  ChargeAlloc(sizeof(items[0]) + key.size());
  items.emplace_back(std::move(key), std::move(v));
}

// PyEquals / PyCompare walk both values: a step per element (values are DAGs, see ReprTo)
// and work for the bytes compared.
bool PyEquals(const Value& a, const Value& b) {
  ChargeSteps(1);
  CheckStack();
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::kFloat || b.kind == Kind::kFloat) return a.AsDouble() == b.AsDouble();
    return a.AsInt() == b.AsInt();
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::kUndefined:
    case Kind::kNone: return true;
    case Kind::kString:
      if (&a.s() == &b.s()) return true;  // shared text
      if (a.s().size() != b.s().size()) return false;
      ChargeWork(a.s().size());
      return a.s() == b.s();
    case Kind::kList: {
      if (!a.list->is_plain() || !b.list->is_plain()) return a.list == b.list;
      if (a.list->tuple != b.list->tuple || a.list->items.size() != b.list->items.size()) return false;
      for (size_t k = 0; k < a.list->items.size(); ++k)
        if (!PyEquals(a.list->items[k], b.list->items[k])) return false;
      return true;
    }
    case Kind::kDict: {
      if (a.is_namespace() || b.is_namespace()) return a.dict == b.dict;
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& [k, v] : a.dict->items) {
        const Value* o = b.dict->Find(k);
        if (!o || !PyEquals(v, *o)) return false;
      }
      return true;
    }
    case Kind::kCallable: return a.fn == b.fn;
    default: return false;
  }
}

int PyCompare(const Value& a, const Value& b) {
  ChargeSteps(1);
  CheckStack();
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::kFloat || b.kind == Kind::kFloat) {
      double x = a.AsDouble(), y = b.AsDouble();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    int64_t x = a.AsInt(), y = b.AsInt();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    ChargeWork(std::min(a.s().size(), b.s().size()));
    int c = a.s().compare(b.s());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_plain_list() && b.is_plain_list() && a.list->tuple == b.list->tuple) {
    size_t n = std::min(a.list->items.size(), b.list->items.size());
    for (size_t k = 0; k < n; ++k) {
      if (PyEquals(a.list->items[k], b.list->items[k])) continue;
      return PyCompare(a.list->items[k], b.list->items[k]);
    }
    size_t x = a.list->items.size(), y = b.list->items.size();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  throw TemplateError(std::string("'<' not supported between instances of '") + a.TypeName() +
                      "' and '" + b.TypeName() + "'");
}

static void JsonString(std::string& out, const std::string& s, bool ensure_ascii) {
  out.push_back('"');
  char buf[16];
  for (char32_t c : DecodeUtf8(s)) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else if (ensure_ascii && c > 0x7f) {
          if (c >= 0x10000) {
            char32_t v = c - 0x10000;
            std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", static_cast<unsigned>(0xd800 + (v >> 10)),
                          static_cast<unsigned>(0xdc00 + (v & 0x3ff)));
          } else {
            std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          }
          out += buf;
        } else {
          AppendUtf8(out, c);
        }
    }
  }
  out.push_back('"');
}

// Appends json.dumps(v) to out: a step per element and the text checked against the
// allocation budget as it grows, as ReprTo (indentation multiplies the size by the depth).
static void JsonValue(std::string& out, const Value& v, const JsonOptions& o, int depth) {
  if (depth > 500) throw TemplateError("tojson: value nested too deeply");
  ChargeSteps(1);
  CheckStack();
  CheckAlloc(out.size());
  bool pretty = o.indent >= 0 || o.indent_is_str;
  auto newline = [&](int level) {
    const size_t unit = o.indent_is_str ? o.indent_str.size() : static_cast<size_t>(std::max(o.indent, 0));
    CheckAlloc(SatMulAdd(unit, static_cast<size_t>(level), out.size() + 1));
    out.push_back('\n');
    for (int k = 0; k < level; ++k) {
      if (o.indent_is_str) out += o.indent_str;
      else out.append(unit, ' ');
    }
  };
  switch (v.kind) {
    case Kind::kNone: out += "null"; return;
    case Kind::kBool: out += v.b ? "true" : "false"; return;
    case Kind::kInt: out += std::to_string(v.i); return;
    case Kind::kFloat:
      if (std::isnan(v.f)) out += "NaN";
      else if (std::isinf(v.f)) out += v.f < 0 ? "-Infinity" : "Infinity";
      else out += PyFloatRepr(v.f);
      return;
    case Kind::kString: JsonString(out, v.s(), o.ensure_ascii); return;
    case Kind::kList: {
      if (!v.list->is_plain())
        throw TemplateError(std::string("Object of type ") + v.TypeName() + " is not JSON serializable");
      if (v.list->items.empty()) { out += "[]"; return; }
      out.push_back('[');
      bool first = true;
      for (const auto& e : v.list->items) {
        if (!first) out += o.item_sep;
        first = false;
        if (pretty) newline(depth + 1);
        JsonValue(out, e, o, depth + 1);
      }
      if (pretty) newline(depth);
      out.push_back(']');
      return;
    }
    case Kind::kDict: {
      if (v.is_namespace()) throw TemplateError("Object of type Namespace is not JSON serializable");
      if (v.dict->items.empty()) { out += "{}"; return; }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : v.dict->items) items.push_back(&kv);
      if (o.sort_keys)
        std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
      out.push_back('{');
      bool first = true;
      for (const auto* kv : items) {
        if (!first) out += o.item_sep;
        first = false;
        if (pretty) newline(depth + 1);
        Value key = KeyValue(kv->first);
        if (key.is_string()) {
          JsonString(out, kv->first, o.ensure_ascii);
        } else {
          out.push_back('"');
          out += key.is_none() ? "null" : key.Str();
          out.push_back('"');
        }
        out += o.key_sep;
        JsonValue(out, kv->second, o, depth + 1);
      }
      if (pretty) newline(depth);
      out.push_back('}');
      return;
    }
    default:
      throw TemplateError(std::string("Object of type ") + v.TypeName() + " is not JSON serializable");
  }
}

std::string ToJson(const Value& v, const JsonOptions& opts) {
  std::string out;
  JsonValue(out, v, opts, 0);
  CheckAlloc(out.size());
  return out;
}

Value ParseJsonText(const std::string& text) {
  try {
    return Value::FromJson(nlohmann::ordered_json::parse(text));
  } catch (const nlohmann::json::exception& e) {
    throw TemplateError(std::string("invalid JSON: ") + e.what());
  }
}

std::string HtmlEscape(const std::string& s) {
  size_t n = s.size();
  for (char c : s) n += c == '&' || c == '\'' || c == '"' ? 4 : c == '<' || c == '>' ? 3 : 0;
  ChargeWork(s.size());
  CheckAlloc(n);
  std::string out;
  out.reserve(n);
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '\'': out += "&#39;"; break;
      case '"': out += "&#34;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::u32string DecodeUtf8(const std::string& s) {
  ChargeAlloc(SatMulAdd(s.size(), sizeof(char32_t)));  // a transient buffer, but a real one
  std::u32string out;
  out.reserve(s.size());
  size_t k = 0, n = s.size();
  while (k < n) {
    unsigned char c = static_cast<unsigned char>(s[k]);
    char32_t cp;
    int len;
    if (c < 0x80) { cp = c; len = 1; }
    else if ((c >> 5) == 6) { cp = c & 0x1f; len = 2; }
    else if ((c >> 4) == 14) { cp = c & 0x0f; len = 3; }
    else if ((c >> 3) == 30) { cp = c & 0x07; len = 4; }
    else { out.push_back(0xfffd); ++k; continue; }
    if (k + len > n) { out.push_back(0xfffd); ++k; continue; }
    bool ok = true;
    for (int m = 1; m < len; ++m) {
      unsigned char cc = static_cast<unsigned char>(s[k + m]);
      if ((cc >> 6) != 2) { ok = false; break; }
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (!ok) { out.push_back(0xfffd); ++k; continue; }
    out.push_back(cp);
    k += len;
  }
  return out;
}

void AppendUtf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  }
}

std::string EncodeUtf8(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) AppendUtf8(out, c);
  return out;
}

size_t CodePointCount(const std::string& s) {
  ChargeWork(s.size());
  size_t n = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xc0) != 0x80) ++n;
  return n;
}

size_t FindCharged(const std::string& s, const std::string& sub, size_t from) {
  const size_t n = s.size(), m = sub.size();
  if (m == 0) return from <= n ? from : std::string::npos;
  for (size_t k = from; k + m <= n;) {
    const void* p = std::memchr(s.data() + k, sub[0], n - m + 1 - k);
    const size_t at = p ? static_cast<size_t>(static_cast<const char*>(p) - s.data()) : n - m + 1;
    ChargeWork(at - k + 1);
    if (!p) break;
    ChargeWork(m);
    if (std::memcmp(p, sub.data(), m) == 0) return at;
    k = at + 1;
  }
  return std::string::npos;
}

size_t RFindCharged(const std::string& s, const std::string& sub, size_t pos) {
  const size_t n = s.size(), m = sub.size();
  if (m > n) return std::string::npos;
  size_t k = std::min(pos, n - m);  // last candidate start
  if (m == 0) return k;
  // A plain backward scan, not memrchr: sanitizers check memrchr's whole range on every
  // call, which made this quadratic in fuzzing builds.
  for (size_t at = k + 1; at-- > 0;) {
    if (s[at] != sub[0]) continue;
    ChargeWork(k - at + 1 + m);  // the bytes scanned since the last candidate, and the compare
    k = at;
    if (std::memcmp(s.data() + at, sub.data(), m) == 0) return at;
  }
  ChargeWork(k + 1);
  return std::string::npos;
}

bool MatchAt(const std::string& s, size_t pos, const std::string& sub) {
  if (pos > s.size() || sub.size() > s.size() - pos) return false;
  ChargeWork(sub.size());
  return s.compare(pos, sub.size(), sub) == 0;
}

}  // namespace inferd::chat
