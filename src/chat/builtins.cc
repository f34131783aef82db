// Operators, filters, tests, methods and global functions, each matching the behaviour of
// the Python object or jinja2 builtin of the same name.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <unordered_set>

#include "chat/evaluator.h"
#include "chat/pystr.h"

namespace inferd::chat {
namespace {


// Argument k of a call, by position or keyword, or `dflt`.
Value Arg(const CallArgs& a, size_t k, const char* name, Value dflt = Value::Undefined()) {
  for (const auto& [key, v] : a.kw)
    if (key == name) return v;
  if (k < a.pos.size()) return a.pos[k];
  return dflt;
}
bool Has(const CallArgs& a, size_t k, const char* name) {
  for (const auto& kv : a.kw)
    if (kv.first == name) return true;
  return k < a.pos.size();
}



int64_t CheckedInt(__int128 r) {
  if (r > INT64_MAX || r < INT64_MIN) Fail("integer overflow");
  return static_cast<int64_t>(r);
}

// base ** exp for exp >= 0, by squaring: O(log exp) (a loop of exp multiplications never
// overflows for a base of 0, 1 or -1 and ran 2^63 times for `1 ** 9223372036854775807`).
int64_t IntPow(int64_t base, int64_t exp) {
  __int128 result = 1, b = base;
  while (true) {
    if (exp & 1) result = CheckedInt(result * b);
    exp >>= 1;
    if (exp == 0) return static_cast<int64_t>(result);
    // Another bit of exp remains, so the result is at least b * b in magnitude (or 0).
    b = CheckedInt(b * b);
  }
}

int64_t Len(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return 0;
    case Kind::kString: return static_cast<int64_t>(CodePointCount(v.s()));
    case Kind::kList:
      if (v.list->generator) break;
      return static_cast<int64_t>(v.list->items.size());
    case Kind::kDict:
      if (!v.is_namespace()) return static_cast<int64_t>(v.dict->items.size());
      break;
    default: break;
  }
  Fail(std::string("object of type '") + v.TypeName() + "' has no len()");
}

// jinja2 make_attrgetter: "a.b.0" walks with subscript semantics.
Value AttrPath(Interpreter& in, const Value& item, const Value& attr) {
  if (attr.is_integer()) return in.GetItem(item, attr);
  const std::string& path = Str(attr, "attribute");
  ChargeWork(path.size());
  Value v = item;
  size_t k = 0;
  while (true) {
    size_t d = path.find('.', k);
    std::string part = path.substr(k, d == std::string::npos ? std::string::npos : d - k);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    v = in.GetItem(v, digits ? Value::Int(std::strtoll(part.c_str(), nullptr, 10)) : Value::Str(part));
    if (d == std::string::npos) break;
    k = d + 1;
  }
  return v;
}

Value Lowered(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::Str(MapChars(v.s(), ToLower));
  return v;
}

CallArgs Rest(const CallArgs& a, size_t from) {
  CallArgs r;
  for (size_t k = from; k < a.pos.size(); ++k) r.pos.push_back(a.pos[k]);
  r.kw = a.kw;
  return r;
}

// select / reject / selectattr / rejectattr.
Value SelectOrReject(Interpreter& in, const Value& seq, const CallArgs& a, bool use_attr, bool select) {
  size_t test_pos = use_attr ? 1 : 0;
  Value attr = use_attr ? Arg(a, 0, "attribute") : Value::Undefined();
  bool has_test = a.pos.size() > test_pos;
  std::string test = has_test ? Str(a.pos[test_pos], "select") : "";
  CallArgs test_args = Rest(a, test_pos + 1);
  test_args.kw.clear();
  std::vector<Value> out;
  if (!seq.Truthy()) return Value::Generator({});
  for (const auto& item : in.Iterate(seq)) {
    Value v = use_attr ? AttrPath(in, item, attr) : item;
    bool ok = has_test ? in.ApplyTest(test, v, test_args) : v.Truthy();
    if (ok == select) out.push_back(item);
  }
  return Value::Generator(std::move(out));
}

// The result is at most the text plus one indent per line: checked before it is built
// (|indent(100000000) and a text of many short lines multiply).
std::string Indent(const std::string& s0, const Value& width, bool first, bool blank) {
  size_t ind_size = width.is_string() ? width.s().size() : static_cast<size_t>(std::max<int64_t>(0, width.AsInt()));
  CheckAlloc(ind_size);
  std::string ind = width.is_string() ? width.s() : std::string(ind_size, ' ');
  std::string s = s0 + "\n";
  std::vector<std::string> lines = SplitLines(s, false);
  CheckAlloc(SatMulAdd(lines.size() + 1, ind.size() + 1, s.size()));
  std::string rv;
  if (blank) {
    for (size_t k = 0; k < lines.size(); ++k) rv += (k ? "\n" + ind : "") + lines[k];
  } else {
    rv = lines.empty() ? "" : lines[0];
    if (lines.size() > 1) {
      rv += "\n";
      for (size_t k = 1; k < lines.size(); ++k) {
        if (k > 1) rv += "\n";
        rv += lines[k].empty() ? lines[k] : ind + lines[k];
      }
    }
  }
  if (first) rv = ind + rv;
  return rv;
}

double PyRound(double x, int64_t ndigits) {
  if (!std::isfinite(x)) return x;
  if (ndigits > 300) return x;
  if (ndigits < -400) return std::copysign(0.0, x);  // 10^400 is beyond any double
  char buf[720];  // 309 integer digits of 1e308, 300 decimals
  if (ndigits >= 0) {
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(ndigits), x);
    return std::strtod(buf, nullptr);
  }
  double p = std::pow(10.0, static_cast<double>(-ndigits));
  return std::nearbyint(x / p) * p;
}

Value Sorted(Interpreter& in, std::vector<Value> items, bool reverse, bool case_sensitive, const Value& attr) {
  std::vector<std::pair<Value, Value>> keyed;
  in.budget().Alloc(SatMulAdd(items.size(), sizeof(Value)));  // the keys' cells
  for (auto& it : items) {
    Value key = attr.is_undefined() || attr.is_none() ? it : AttrPath(in, it, attr);
    keyed.emplace_back(Lowered(key, case_sensitive), std::move(it));
  }
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? PyCompare(y.first, x.first) < 0 : PyCompare(x.first, y.first) < 0;
  });
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::List(std::move(out));
}

Value ToInt(const Value& v, const Value& dflt, int base) {
  if (v.is_string()) {
    std::string t = Strip(v.s(), Value::None(), true, true);
    std::string clean;
    for (char c : t)
      if (c != '_') clean.push_back(c);
    if (!clean.empty()) {
      char* end = nullptr;
      errno = 0;
      long long x = std::strtoll(clean.c_str(), &end, base);
      if (*end == '\0' && errno == 0) return Value::Int(x);
      double d = std::strtod(clean.c_str(), &end);
      if (*end == '\0' && std::isfinite(d)) return Value::Int(SaturatingInt(d));
    }
    return dflt;
  }
  if (v.kind == Kind::kFloat) return std::isfinite(v.f) ? Value::Int(SaturatingInt(v.f)) : dflt;
  if (v.is_integer()) return Value::Int(v.AsInt());
  return dflt;
}

Value ToFloat(const Value& v, const Value& dflt) {
  if (v.is_string()) {
    std::string t = Strip(v.s(), Value::None(), true, true);
    char* end = nullptr;
    double d = std::strtod(t.c_str(), &end);
    if (!t.empty() && *end == '\0') return Value::Float(d);
    return dflt;
  }
  if (v.is_number()) return Value::Float(v.AsDouble());
  return dflt;
}

Value MinMax(Interpreter& in, const Value& seq, const CallArgs& a, bool want_max) {
  std::vector<Value> items = in.Iterate(seq);
  if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
  bool cs = Arg(a, 0, "case_sensitive", Value::Bool(false)).Truthy();
  Value attr = Arg(a, 1, "attribute");
  auto key = [&](const Value& v) { return Lowered(attr.is_undefined() ? v : AttrPath(in, v, attr), cs); };
  size_t best = 0;
  for (size_t k = 1; k < items.size(); ++k) {
    int c = PyCompare(key(items[k]), key(items[best]));
    if (want_max ? c > 0 : c < 0) best = k;
  }
  return items[best];
}

}  // namespace

bool Contains(const Value& c, const Value& item) {
  switch (c.kind) {
    case Kind::kUndefined: return false;
    case Kind::kString:
      if (!item.is_string()) Fail("'in <string>' requires string as left operand");
      return FindCharged(c.s(), item.s()) != std::string::npos;
    case Kind::kList: {
      auto& items = c.list->items;
      for (size_t k = 0; k < items.size(); ++k) {
        if (!PyEquals(items[k], item)) continue;
        // A generator is consumed up to and including the match (shifting the rest).
        if (c.list->generator) {
          ChargeSteps(static_cast<int64_t>(items.size() / 8));
          items.erase(items.begin(), items.begin() + static_cast<ptrdiff_t>(k) + 1);
        }
        return true;
      }
      if (c.list->generator) items.clear();
      return false;
    }
    case Kind::kDict:
      if (c.is_namespace()) break;
      if (item.is_undefined() || item.is_tuple()) return false;
      if (item.is_list() || item.is_dict()) Fail(std::string("unhashable type: '") + item.TypeName() + "'");
      return (item.is_string() ? c.dict->Find(item.s()) : c.dict->Find(DictKey(item))) != nullptr;
    default: break;
  }
  Fail(std::string("argument of type '") + c.TypeName() + "' is not iterable");
}

Value BinaryOp(Interpreter& in, const std::string& op, const Value& a, const Value& b) {
  if (op == "%" && a.is_string()) return Value::Str(PercentFormat(a.s(), b));
  if (a.is_undefined()) FailUndefined(a);
  if (b.is_undefined()) FailUndefined(b);
  const char o = op[0];
  if (a.is_number() && b.is_number()) {
    bool fl = a.kind == Kind::kFloat || b.kind == Kind::kFloat;
    if (op == "/") {
      if (b.AsDouble() == 0) Fail("division by zero");
      return Value::Float(a.AsDouble() / b.AsDouble());
    }
    if (op == "**") {
      if (!fl && b.AsInt() >= 0) return Value::Int(IntPow(a.AsInt(), b.AsInt()));
      return Value::Float(std::pow(a.AsDouble(), b.AsDouble()));
    }
    if (fl) {
      double x = a.AsDouble(), y = b.AsDouble();
      switch (o) {
        case '+': return Value::Float(x + y);
        case '-': return Value::Float(x - y);
        case '*': return Value::Float(x * y);
        default: {  // % and //: CPython's float divmod, bit for bit
          if (y == 0) Fail(o == '%' ? "float modulo" : "float floor division by zero");
          double mod = std::fmod(x, y);
          double div = (x - mod) / y;
          if (mod != 0) {
            if ((y < 0) != (mod < 0)) {
              mod += y;
              div -= 1.0;
            }
          } else {
            mod = std::copysign(0.0, y);
          }
          double floordiv;
          if (div != 0) {
            floordiv = std::floor(div);
            if (div - floordiv > 0.5) floordiv += 1.0;
          } else {
            floordiv = std::copysign(0.0, x / y);
          }
          return Value::Float(o == '%' ? mod : floordiv);
        }
      }
    }
    __int128 x = a.AsInt(), y = b.AsInt();
    switch (o) {
      case '+': return Value::Int(CheckedInt(x + y));
      case '-': return Value::Int(CheckedInt(x - y));
      case '*': return Value::Int(CheckedInt(x * y));
      default: {
        if (y == 0) Fail("integer division or modulo by zero");
        __int128 q = x / y, r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {
          --q;
          r += y;
        }
        return Value::Int(CheckedInt(op == "%" ? r : q));
      }
    }
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      bool markup = a.markup || b.markup;
      std::string s = a.markup || !markup ? a.s() : HtmlEscape(a.s());
      const std::string& t = b.markup || !markup ? b.s() : HtmlEscape(b.s());
      in.budget().CheckAlloc(s.size() + t.size());
      s += t;
      return Value::Str(std::move(s), markup);
    }
    if (a.is_plain_list() && b.is_plain_list() && a.list->tuple == b.list->tuple) {
      // The doubling loop `l = l + l` grows exponentially: checked before copying.
      in.budget().CheckAlloc(SatMulAdd(a.list->items.size() + b.list->items.size(), sizeof(Value)));
      std::vector<Value> items;
      items.reserve(a.list->items.size() + b.list->items.size());
      items = a.list->items;
      items.insert(items.end(), b.list->items.begin(), b.list->items.end());
      return Value::List(std::move(items), a.list->tuple);
    }
  }
  if (op == "*") {
    const Value* seq = a.is_integer() ? &b : &a;
    const Value* n = a.is_integer() ? &a : &b;
    if (n->is_integer() && (seq->is_string() || seq->is_plain_list())) {
      const size_t times = static_cast<size_t>(std::max<int64_t>(0, n->AsInt()));
      if (seq->is_string()) {
        if (seq->s().empty()) return Value::Str("", seq->markup);
        in.budget().CheckAlloc(SatMulAdd(times, seq->s().size()));  // before building
        std::string s;
        s.reserve(times * seq->s().size());
        for (size_t k = 0; k < times; ++k) s += seq->s();
        return Value::Str(std::move(s), seq->markup);
      }
      const auto& src = seq->list->items;
      if (src.empty()) return Value::List({}, seq->list->tuple);
      in.budget().CheckAlloc(SatMulAdd(times, src.size() * sizeof(Value)));  // cells; strings are shared
      std::vector<Value> items;
      items.reserve(times * src.size());
      for (size_t k = 0; k < times; ++k) items.insert(items.end(), src.begin(), src.end());
      return Value::List(std::move(items), seq->list->tuple);
    }
  }
  Fail("unsupported operand type(s) for " + op + ": '" + a.TypeName() + "' and '" + b.TypeName() + "'");
}

bool HasMethod(const Value& self, const std::string& name, bool* unsafe) {
  static const std::unordered_set<std::string> kStr = {
      "strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "upper", "lower", "title",
      "capitalize", "replace", "find", "rfind", "index", "rindex", "count", "format", "join", "splitlines",
      "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower", "zfill", "removeprefix", "removesuffix",
      "center", "ljust", "rjust", "partition", "rpartition", "casefold", "swapcase", "isnumeric", "isdecimal",
      "istitle", "isidentifier", "encode", "expandtabs", "format_map", "isascii", "isprintable", "maketrans",
      "translate", "rjust"};
  static const std::unordered_set<std::string> kDict = {"items", "keys", "values", "get", "copy", "fromkeys"};
  static const std::unordered_set<std::string> kDictUnsafe = {"pop", "popitem", "setdefault", "update", "clear"};
  static const std::unordered_set<std::string> kList = {"index", "count", "copy"};
  static const std::unordered_set<std::string> kListUnsafe = {"append", "pop", "insert", "extend", "remove",
                                                              "sort", "reverse", "clear"};
  *unsafe = false;
  switch (self.kind) {
    case Kind::kString: return kStr.count(name) > 0;
    case Kind::kDict:
      if (self.is_namespace()) return false;
      if (kDictUnsafe.count(name)) return *unsafe = true;
      return kDict.count(name) > 0;
    case Kind::kList:
      if (!self.list->is_plain()) return false;
      if (self.list->tuple) return name == "index" || name == "count";
      if (kListUnsafe.count(name)) return *unsafe = true;
      return kList.count(name) > 0;
    default: return false;
  }
}

namespace {

Value StrMethod(Interpreter& in, const Value& self, const std::string& m, CallArgs& a) {
  const std::string& s = self.s();
  if (m == "strip") return Value::Str(Strip(s, Arg(a, 0, "chars", Value::None()), true, true));
  if (m == "lstrip") return Value::Str(Strip(s, Arg(a, 0, "chars", Value::None()), true, false));
  if (m == "rstrip") return Value::Str(Strip(s, Arg(a, 0, "chars", Value::None()), false, true));
  if (m == "split" || m == "rsplit")
    return Value::List(Split(s, Arg(a, 0, "sep", Value::None()), Arg(a, 1, "maxsplit", Value::Int(-1)).AsInt(),
                             m == "rsplit"));
  if (m == "startswith") return Value::Bool(PrefixMatch(s, Arg(a, 0, "prefix"), false));
  if (m == "endswith") return Value::Bool(PrefixMatch(s, Arg(a, 0, "suffix"), true));
  if (m == "upper") return Value::Str(MapChars(s, ToUpper));
  if (m == "lower" || m == "casefold") return Value::Str(MapChars(s, ToLower));
  if (m == "title") return Value::Str(PyTitle(s));
  if (m == "capitalize") return Value::Str(Capitalize(s));
  if (m == "replace")
    return Value::Str(Replace(s, Str(Arg(a, 0, "old"), "replace"), Str(Arg(a, 1, "new"), "replace"),
                              Arg(a, 2, "count", Value::Int(-1)).AsInt()));
  if (m == "find" || m == "index" || m == "rfind" || m == "rindex" || m == "count") {
    const Value sub_v = Arg(a, 0, "sub");
    const std::string& sub = Str(sub_v, m.c_str());
    if (m == "count") {
      if (sub.empty()) return Value::Int(static_cast<int64_t>(CodePointCount(s)) + 1);
      int64_t n = 0;
      for (size_t k = FindCharged(s, sub); k != std::string::npos; k = FindCharged(s, sub, k + sub.size())) ++n;
      return Value::Int(n);
    }
    size_t f = m[0] == 'r' ? RFindCharged(s, sub) : FindCharged(s, sub);
    if (f == std::string::npos) {
      if (m == "index" || m == "rindex") Fail("substring not found");
      return Value::Int(-1);
    }
    return Value::Int(static_cast<int64_t>(CodePointCount(s.substr(0, f))));
  }
  if (m == "format") return Value::Str(PyFormat(s, a));
  if (m == "join") {
    std::string out;
    bool first = true;
    for (const auto& it : in.Iterate(Arg(a, 0, "iterable"))) {
      const std::string& piece = Str(it, "join");
      in.budget().CheckAlloc(out.size() + s.size() + piece.size());  // n separators
      if (!first) out += s;
      first = false;
      out += piece;
    }
    return Value::Str(std::move(out));
  }
  if (m == "splitlines") {
    std::vector<Value> out;
    for (auto& l : SplitLines(s, Arg(a, 0, "keepends", Value::Bool(false)).Truthy())) out.push_back(Value::Str(l));
    return Value::List(std::move(out));
  }
  if (m == "removeprefix" || m == "removesuffix") {
    const Value p_v = Arg(a, 0, "prefix");
    const std::string& p = Str(p_v, m.c_str());
    if (m == "removeprefix") return Value::Str(MatchAt(s, 0, p) ? s.substr(p.size()) : s);
    bool ends = s.size() >= p.size() && MatchAt(s, s.size() - p.size(), p);
    return Value::Str(ends ? s.substr(0, s.size() - p.size()) : s);
  }
  std::u32string u = DecodeUtf8(s);
  auto all = [&](auto pred) { return !u.empty() && std::all_of(u.begin(), u.end(), pred); };
  if (m == "isdigit" || m == "isnumeric" || m == "isdecimal") return Value::Bool(all([](char32_t c) { return c >= '0' && c <= '9'; }));
  if (m == "isalpha") return Value::Bool(all(IsAlphaC));
  if (m == "isalnum") return Value::Bool(all([](char32_t c) { return IsAlphaC(c) || (c >= '0' && c <= '9'); }));
  if (m == "isspace") return Value::Bool(all(IsPySpace));
  if (m == "isupper" || m == "islower") {
    bool any_cased = false, ok = true;
    for (char32_t c : u) {
      if (IsUpperC(c) || IsLowerC(c)) any_cased = true;
      if (m == "isupper" ? IsLowerC(c) : IsUpperC(c)) ok = false;
    }
    return Value::Bool(any_cased && ok);
  }
  if (m == "zfill" || m == "center" || m == "ljust" || m == "rjust") {
    int64_t width = Arg(a, 0, "width").AsInt();
    if (width <= static_cast<int64_t>(u.size())) return self;
    int64_t pad = width - static_cast<int64_t>(u.size());
    // Padding to `width` code points, built as UTF-32 and encoded: checked before.
    in.budget().CheckAlloc(SatMulAdd(static_cast<size_t>(width), sizeof(char32_t) + 4));
    if (m == "zfill") {
      size_t sign = (!u.empty() && (u[0] == '+' || u[0] == '-')) ? 1 : 0;
      u.insert(sign, std::u32string(pad, U'0'));
      return Value::Str(EncodeUtf8(u));
    }
    Value fill_v = Arg(a, 1, "fillchar", Value::Str(" "));
    std::u32string fill = DecodeUtf8(Str(fill_v, m.c_str()));
    char32_t fc = fill.empty() ? U' ' : fill[0];
    int64_t left = m == "rjust" ? pad : m == "ljust" ? 0 : pad / 2 + (pad & width & 1);
    return Value::Str(EncodeUtf8(std::u32string(left, fc) + u + std::u32string(pad - left, fc)));
  }
  if (m == "partition" || m == "rpartition") {
    const Value sep_v = Arg(a, 0, "sep");
    const std::string& sep = Str(sep_v, m.c_str());
    if (sep.empty()) Fail("empty separator");
    size_t f = m == "partition" ? FindCharged(s, sep) : RFindCharged(s, sep);
    if (f == std::string::npos)
      return m == "partition" ? Value::List({self, Value::Str(""), Value::Str("")}, true)
                              : Value::List({Value::Str(""), Value::Str(""), self}, true);
    return Value::List({Value::Str(s.substr(0, f)), Value::Str(sep), Value::Str(s.substr(f + sep.size()))}, true);
  }
  Fail("str method '" + m + "' is not supported");
}

Value DictMethod(const Value& self, const std::string& m, CallArgs& a) {
  const DictData& d = *self.dict;
  if (m == "items") {
    std::vector<Value> out;
    for (const auto& [k, v] : d.items) out.push_back(Value::List({KeyValue(k), v}, true));
    return Value::View(std::move(out), "dict_items");
  }
  if (m == "keys") {
    std::vector<Value> out;
    for (const auto& kv : d.items) out.push_back(KeyValue(kv.first));
    return Value::View(std::move(out), "dict_keys");
  }
  if (m == "values") {
    std::vector<Value> out;
    for (const auto& kv : d.items) out.push_back(kv.second);
    return Value::View(std::move(out), "dict_values");
  }
  if (m == "get") {
    Value key = Arg(a, 0, "key");
    if (!key.is_list() && !key.is_dict() && !key.is_undefined())
      if (const Value* v = key.is_string() ? d.Find(key.s()) : d.Find(DictKey(key))) return *v;
    return Arg(a, 1, "default", Value::None());
  }
  if (m == "copy") {
    Value c = Value::Dict();
    size_t bytes = SatMulAdd(d.items.size(), sizeof(d.items[0]));
    for (const auto& kv : d.items) bytes += kv.first.size();
    ChargeAlloc(bytes);  // cells and keys; the values are shared
    c.dict->items = d.items;
    c.dict->depth = d.depth;
    return c;
  }
  Fail("dict method '" + m + "' is not supported");
}

Value ListMethod(const Value& self, const std::string& m, CallArgs& a) {
  const auto& items = self.list->items;
  if (m == "index" || m == "count") {
    Value x = Arg(a, 0, "value");
    int64_t n = 0;
    for (size_t k = 0; k < items.size(); ++k) {
      if (!PyEquals(items[k], x)) continue;
      if (m == "index") return Value::Int(static_cast<int64_t>(k));
      ++n;
    }
    if (m == "index") Fail(x.Repr() + " is not in list");
    return Value::Int(n);
  }
  if (m == "copy") return Value::List(items);
  Fail("list method '" + m + "' is not supported");
}

}  // namespace

Value CallMethod(Interpreter& in, const Value& self, const std::string& m, CallArgs& a) {
  if (self.is_string()) return StrMethod(in, self, m, a);
  if (self.is_dict()) return DictMethod(self, m, a);
  if (self.is_list()) return ListMethod(self, m, a);
  Fail(std::string("'") + self.TypeName() + "' object has no method '" + m + "'");
}

namespace {

// Filters on text: string, trim, case, replace, indent, escaping.
std::optional<Value> StringFilter(Interpreter& in, const std::string& f, Value& v, CallArgs& a) {
  if (f == "string") return v.is_string() ? v : Value::Str(v.Str());
  if (f == "trim") return Value::Str(Strip(v.Str(), Arg(a, 0, "chars", Value::None()), true, true), v.markup);
  if (f == "upper") return Value::Str(MapChars(v.Str(), ToUpper));
  if (f == "lower") return Value::Str(MapChars(v.Str(), ToLower));
  if (f == "title") return Value::Str(JinjaTitle(v.Str()));
  if (f == "capitalize") return Value::Str(Capitalize(v.Str()));
  if (f == "safe") return Value::Str(v.Str(), true);
  if (f == "escape" || f == "e") return v.markup ? v : Value::Str(HtmlEscape(v.Str()), true);
  if (f == "replace") {
    Value cnt = Arg(a, 2, "count", Value::None());
    return Value::Str(Replace(v.Str(), Arg(a, 0, "old").Str(), Arg(a, 1, "new").Str(),
                              cnt.is_none() ? -1 : cnt.AsInt()),
                      v.markup);
  }
  if (f == "indent") {
    if (!v.is_string()) Fail(std::string("unsupported operand type(s) for +=: '") + v.TypeName() + "' and 'str'");
    return Value::Str(Indent(v.Str(), Arg(a, 0, "width", Value::Int(4)),
                             Arg(a, 1, "first", Value::Bool(false)).Truthy(),
                             Arg(a, 2, "blank", Value::Bool(false)).Truthy()),
                      v.markup);
  }
  if (f == "wordcount") {
    int64_t n = 0;
    bool in_word = false;
    for (char32_t c : DecodeUtf8(v.Str())) {
      bool w = IsWordC(c);
      if (w && !in_word) ++n;
      in_word = w;
    }
    return Value::Int(n);
  }
  if (f == "center") {
    CallArgs c;
    c.pos.push_back(Arg(a, 0, "width", Value::Int(80)));
    return CallMethod(in, Value::Str(v.Str()), "center", c);
  }
  if (f == "pprint") return Value::Str(v.Repr());
  return std::nullopt;
}

// Filters on sequences and mappings: length, join, map/select, sorting, aggregates.
std::optional<Value> SequenceFilter(Interpreter& in, const std::string& f, Value& v, CallArgs& a) {
  if (f == "length" || f == "count") return Value::Int(Len(v));
  if (f == "join") {
    Value attr = Arg(a, 1, "attribute", Value::None());
    std::string sep = Arg(a, 0, "d", Value::Str("")).Str();
    std::string out;
    bool first = true;
    for (const auto& it : in.Iterate(v)) {
      std::string piece = (attr.is_none() ? it : AttrPath(in, it, attr)).Str();
      in.budget().CheckAlloc(out.size() + sep.size() + piece.size());  // n separators
      if (!first) out += sep;
      first = false;
      out += piece;
    }
    return Value::Str(std::move(out));
  }
  if (f == "items") {
    if (v.is_undefined()) return Value::List({});
    if (!v.is_dict() || v.is_namespace()) Fail("Can only get item pairs from a mapping.");
    CallArgs none;
    return Value::Generator(CallMethod(in, v, "items", none).list->items);
  }
  if (f == "list") return Value::List(in.Iterate(v));
  if (f == "first" && v.is_list() && v.list->generator) {  // next(): takes one item
    auto& items = v.list->items;
    if (items.empty()) return Value::Undefined("No first item, sequence was empty.");
    Value x = std::move(items.front());
    in.budget().Step(static_cast<int64_t>(items.size() / 8));  // the shift below
    items.erase(items.begin());
    return x;
  }
  if (f == "first") {
    std::vector<Value> items = in.Iterate(v);
    return items.empty() ? Value::Undefined("No first item, sequence was empty.") : items.front();
  }
  if (f == "last") {
    if (v.is_list() && v.list->generator) Fail("'generator' object is not reversible");
    std::vector<Value> items = in.Iterate(v);
    return items.empty() ? Value::Undefined("No last item, sequence was empty.") : items.back();
  }
  if (f == "reverse") {
    if (v.is_string()) {
      std::u32string u = DecodeUtf8(v.s());
      std::reverse(u.begin(), u.end());
      return Value::Str(EncodeUtf8(u));
    }
    std::vector<Value> items = in.Iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::Generator(std::move(items));  // reversed(): an iterator
  }
  if (f == "select" || f == "reject") return SelectOrReject(in, v, a, false, f == "select");
  if (f == "selectattr" || f == "rejectattr") return SelectOrReject(in, v, a, true, f == "selectattr");
  if (f == "map") {
    std::vector<Value> out;
    if (!v.Truthy()) {
    } else if (a.pos.empty()) {
      Value attr = Arg(a, 99, "attribute");
      Value dflt = Arg(a, 99, "default");
      for (const auto& it : in.Iterate(v)) {
        Value x = AttrPath(in, it, attr);
        out.push_back(x.is_undefined() && Has(a, 99, "default") ? dflt : x);
      }
    } else {
      std::string filter = Str(a.pos[0], "map");
      CallArgs rest = Rest(a, 1);
      for (const auto& it : in.Iterate(v)) {
        CallArgs copy = rest;
        out.push_back(in.ApplyFilter(filter, it, copy));
      }
    }
    return Value::Generator(std::move(out));
  }
  if (f == "unique") {
    bool cs = Arg(a, 0, "case_sensitive", Value::Bool(false)).Truthy();
    Value attr = Arg(a, 1, "attribute", Value::None());
    std::vector<Value> out, seen;
    for (const auto& it : in.Iterate(v)) {
      Value key = Lowered(attr.is_none() ? it : AttrPath(in, it, attr), cs);
      if (key.is_list() || key.is_dict()) Fail(std::string("unhashable type: '") + key.TypeName() + "'");
      bool dup = false;
      for (const auto& s : seen)
        if (PyEquals(s, key)) { dup = true; break; }
      if (dup) continue;
      seen.push_back(key);
      out.push_back(it);
    }
    return Value::Generator(std::move(out));
  }
  if (f == "dictsort") {
    if (!v.is_dict() || v.is_namespace()) Fail("dictsort: expected a mapping");
    bool cs = Arg(a, 0, "case_sensitive", Value::Bool(false)).Truthy();
    std::string by = Arg(a, 1, "by", Value::Str("key")).Str();
    bool rev = Arg(a, 2, "reverse", Value::Bool(false)).Truthy();
    std::vector<std::pair<Value, Value>> keyed;
    for (const auto& [k, x] : v.dict->items)
      keyed.emplace_back(Lowered(by == "value" ? x : KeyValue(k), cs), Value::List({KeyValue(k), x}, true));
    std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
      return rev ? PyCompare(y.first, x.first) < 0 : PyCompare(x.first, y.first) < 0;
    });
    std::vector<Value> out;
    for (auto& kv : keyed) out.push_back(std::move(kv.second));
    return Value::List(std::move(out));
  }
  if (f == "sort")
    return Sorted(in, in.Iterate(v), Arg(a, 0, "reverse", Value::Bool(false)).Truthy(),
                  Arg(a, 1, "case_sensitive", Value::Bool(false)).Truthy(), Arg(a, 2, "attribute", Value::None()));
  if (f == "max" || f == "min") return MinMax(in, v, a, f == "max");
  if (f == "sum") {
    Value attr = Arg(a, 0, "attribute", Value::None());
    Value total = Arg(a, 1, "start", Value::Int(0));
    for (const auto& it : in.Iterate(v)) total = BinaryOp(in, "+", total, attr.is_none() ? it : AttrPath(in, it, attr));
    return total;
  }
  return std::nullopt;
}

// tojson, default, numeric conversions and the rest.
std::optional<Value> OtherFilter(Interpreter& in, const std::string& f, Value& v, CallArgs& a) {
  if (f == "tojson") {
    JsonOptions o;
    o.ensure_ascii = Arg(a, 0, "ensure_ascii", Value::Bool(false)).Truthy();
    Value indent = Arg(a, 1, "indent", Value::None());
    Value seps = Arg(a, 2, "separators", Value::None());
    o.sort_keys = Arg(a, 3, "sort_keys", Value::Bool(false)).Truthy();
    if (indent.is_string()) {
      o.indent_is_str = true;
      o.indent_str = indent.s();
    } else if (!indent.is_none() && !indent.is_undefined()) {
      o.indent = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(indent.AsInt(), 1000)));
    }
    if (o.indent >= 0 || o.indent_is_str) o.item_sep = ",";
    if (seps.is_list() && seps.list->items.size() == 2) {
      o.item_sep = Str(seps.list->items[0], "tojson separators");
      o.key_sep = Str(seps.list->items[1], "tojson separators");
    }
    return Value::Str(ToJson(v, o));
  }
  if (f == "default" || f == "d") {
    bool boolean = Arg(a, 1, "boolean", Value::Bool(false)).Truthy();
    if (v.is_undefined() || (boolean && !v.Truthy())) return Arg(a, 0, "default_value", Value::Str(""));
    return v;
  }
  if ((f == "int" || f == "float") && v.is_undefined()) FailUndefined(v);
  if (f == "int") {
    Value base = Arg(a, 1, "base", Value::Int(10));
    return ToInt(v, Arg(a, 0, "default", Value::Int(0)), static_cast<int>(base.AsInt()));
  }
  if (f == "float") return ToFloat(v, Arg(a, 0, "default", Value::Float(0.0)));
  if (f == "abs") {
    if (v.kind == Kind::kFloat) return Value::Float(std::fabs(v.f));
    if (v.is_integer()) return Value::Int(CheckedInt(v.AsInt() < 0 ? -static_cast<__int128>(v.AsInt()) : v.AsInt()));
    Fail(std::string("bad operand type for abs(): '") + v.TypeName() + "'");
  }
  if (f == "round") {
    int64_t prec = Arg(a, 0, "precision", Value::Int(0)).AsInt();
    std::string method = Arg(a, 1, "method", Value::Str("common")).Str();
    if (!v.is_number()) Fail("round: expected a number");
    if (v.is_integer() && method == "common") return Value::Int(v.AsInt());  // round(int, n) is an int
    double x = v.AsDouble();
    if (method == "common") return Value::Float(PyRound(x, prec));
    double p = std::pow(10.0, static_cast<double>(prec));
    return Value::Float((method == "ceil" ? std::ceil(x * p) : std::floor(x * p)) / p);
  }
  if (f == "attr") return in.GetAttr(v, Str(Arg(a, 0, "name"), "attr"));
  return std::nullopt;
}

}  // namespace

Value Interpreter::ApplyFilter(const std::string& name, Value v, CallArgs& a) {
  budget_.Step();  // map / select apply filters and tests per item, outside Eval
  if (auto r = StringFilter(*this, name, v, a)) return std::move(*r);
  if (auto r = SequenceFilter(*this, name, v, a)) return std::move(*r);
  if (auto r = OtherFilter(*this, name, v, a)) return std::move(*r);
  Fail("No filter named '" + name + "'.");
}

bool Interpreter::ApplyTest(const std::string& t, const Value& v, CallArgs& a) {
  budget_.Step();
  auto arg = [&]() { return Arg(a, 0, "other"); };
  if (t == "defined") return !v.is_undefined();
  if (t == "undefined") return v.is_undefined();
  if (t == "none") return v.is_none();
  if (t == "string") return v.is_string();
  if (t == "mapping") return v.is_dict() && !v.is_namespace();
  if (t == "iterable") return v.is_undefined() || v.is_string() || v.is_list() || (v.is_dict() && !v.is_namespace());
  if (t == "sequence") return v.is_undefined() || v.is_string() || v.is_plain_list() || (v.is_dict() && !v.is_namespace());
  if (t == "number") return v.is_number();
  if (t == "integer") return v.kind == Kind::kInt;
  if (t == "float") return v.kind == Kind::kFloat;
  if (t == "boolean") return v.kind == Kind::kBool;
  if (t == "true") return v.kind == Kind::kBool && v.b;
  if (t == "false") return v.kind == Kind::kBool && !v.b;
  if (t == "callable") return v.kind == Kind::kCallable || v.is_undefined();  // Undefined has __call__
  if (t == "equalto" || t == "eq" || t == "==" || t == "sameas") return PyEquals(v, arg());
  if (t == "ne" || t == "!=") return !PyEquals(v, arg());
  if (t == "gt" || t == ">" || t == "greaterthan") return PyCompare(v, arg()) > 0;
  if (t == "ge" || t == ">=") return PyCompare(v, arg()) >= 0;
  if (t == "lt" || t == "<" || t == "lessthan") return PyCompare(v, arg()) < 0;
  if (t == "le" || t == "<=") return PyCompare(v, arg()) <= 0;
  if (t == "in") return Contains(Arg(a, 0, "seq"), v);
  if (t == "odd" || t == "even" || t == "divisibleby") {
    // jinja2: value % 2 == 1, value % 2 == 0, value % num == 0 (Python modulo, floats too).
    Value m = BinaryOp(*this, "%", v, t == "divisibleby" ? Arg(a, 0, "num") : Value::Int(2));
    return PyEquals(m, Value::Int(t == "odd" ? 1 : 0));
  }
  if (t == "lower" || t == "upper") {
    CallArgs none;
    return CallMethod(*this, Value::Str(v.Str()), t == "lower" ? "islower" : "isupper", none).b;
  }
  if (t == "escaped") return v.markup;
  Fail("No test named '" + t + "'.");
}

void AddGlobalFunctions(Value& globals) {
  DictData& g = *globals.dict;
  g.Set("range", Value::Function([](Interpreter&, CallArgs& a) {
          if (!a.kw.empty() || a.pos.empty() || a.pos.size() > 3) Fail("range expected 1 to 3 integer arguments");
          for (const auto& p : a.pos)
            if (!p.is_integer()) Fail(std::string("'") + p.TypeName() + "' object cannot be interpreted as an integer");
          int64_t start = 0, stop, step = 1;
          if (a.pos.size() == 1) {
            stop = a.pos[0].AsInt();
          } else {
            start = a.pos[0].AsInt();
            stop = a.pos[1].AsInt();
            if (a.pos.size() == 3) step = a.pos[2].AsInt();
          }
          if (step == 0) Fail("range() arg 3 must not be zero");
          __int128 n = step > 0 ? (static_cast<__int128>(stop) - start + step - 1) / step
                                : (static_cast<__int128>(start) - stop - step - 1) / -step;
          if (n < 0) n = 0;
          if (n > 100000) Fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
          CheckAlloc(static_cast<size_t>(n) * sizeof(Value));
          std::vector<Value> out;
          out.reserve(static_cast<size_t>(n));
          for (int64_t k = 0; k < static_cast<int64_t>(n); ++k)  // within [start, stop): fits
            out.push_back(Value::Int(static_cast<int64_t>(start + static_cast<__int128>(k) * step)));
          return Value::List(std::move(out));
        }));
  g.Set("namespace", Value::Function([](Interpreter& in, CallArgs& a) {
          Value ns = Value::Namespace();
          in.RegisterNamespace(ns);
          for (const auto& p : a.pos) {
            if (!p.is_dict()) Fail("namespace() positional argument must be a mapping");
            for (const auto& [k, v] : p.dict->items) ns.dict->Set(k, v);
          }
          for (const auto& [k, v] : a.kw) ns.dict->Set(k, v);
          return ns;
        }));
  g.Set("dict", Value::Function([](Interpreter&, CallArgs& a) {
          Value d = Value::Dict();
          for (const auto& p : a.pos) {
            if (!p.is_dict()) Fail("dict() positional argument must be a mapping");
            for (const auto& [k, v] : p.dict->items) d.dict->Set(k, v);
          }
          for (const auto& [k, v] : a.kw) d.dict->Set(k, v);
          return d;
        }));
  g.Set("raise_exception", Value::Function([](Interpreter&, CallArgs& a) -> Value {
          throw RaisedError(a.pos.empty() ? std::string() : a.pos[0].Str());
        }));
}

}  // namespace inferd::chat
