// Python `str` operations for the template engine (see pystr.h).
#include "chat/pystr.h"

#include <algorithm>
#include <cstdio>
#include <cctype>
#include <cstring>

namespace inferd::chat {

[[noreturn]] void Fail(const std::string& m) { throw TemplateError(m); }

const std::string& Str(const Value& v, const char* what) {
  if (!v.is_string()) Fail(std::string(what) + ": expected a string, got '" + v.TypeName() + "'");
  return v.s();
}

bool IsPySpace(char32_t c) {
  return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f) || c == 0x85 || c == 0xa0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
         c == 0x205f || c == 0x3000;
}

char32_t ToUpper(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if ((c >= 0xe0 && c <= 0xfe && c != 0xf7)) return c - 32;
  if (c >= 0x3b1 && c <= 0x3c9 && c != 0x3c2) return c - 32;
  if (c >= 0x430 && c <= 0x44f) return c - 32;
  if (c >= 0x450 && c <= 0x45f) return c - 80;
  return c;
}
char32_t ToLower(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if ((c >= 0xc0 && c <= 0xde && c != 0xd7)) return c + 32;
  if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) return c + 32;
  if (c >= 0x410 && c <= 0x42f) return c + 32;
  if (c >= 0x400 && c <= 0x40f) return c + 80;
  return c;
}
bool IsUpperC(char32_t c) { return ToLower(c) != c; }
bool IsLowerC(char32_t c) { return ToUpper(c) != c; }
bool IsAlphaC(char32_t c) { return IsUpperC(c) || IsLowerC(c) || (c > 0x7f && !IsPySpace(c) && c != 0x85); }
bool IsWordC(char32_t c) { return c == '_' || (c < 0x80 ? std::isalnum(static_cast<int>(c)) != 0 : IsAlphaC(c)); }

std::string MapChars(const std::string& s, char32_t (*f)(char32_t)) {
  std::u32string u = DecodeUtf8(s);
  for (auto& c : u) c = f(c);
  return EncodeUtf8(u);
}

std::string PyTitle(const std::string& s) {  // str.title()
  std::u32string u = DecodeUtf8(s);
  bool prev_cased = false;
  for (auto& c : u) {
    bool cased = IsUpperC(c) || IsLowerC(c);
    if (cased) c = prev_cased ? ToLower(c) : ToUpper(c);
    prev_cased = cased;
  }
  return EncodeUtf8(u);
}

std::string Capitalize(const std::string& s) {
  std::u32string u = DecodeUtf8(s);
  for (size_t k = 0; k < u.size(); ++k) u[k] = k == 0 ? ToUpper(u[k]) : ToLower(u[k]);
  return EncodeUtf8(u);
}

// jinja2 do_title: split on runs of [-\s({\[<], capitalize each piece.
std::string JinjaTitle(const std::string& s) {
  std::u32string u = DecodeUtf8(s), out;
  auto is_sep = [](char32_t c) { return IsPySpace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<'; };
  size_t k = 0;
  while (k < u.size()) {
    size_t j = k;
    bool sep = is_sep(u[k]);
    while (j < u.size() && is_sep(u[j]) == sep) ++j;
    for (size_t m = k; m < j; ++m) out.push_back(sep ? u[m] : (m == k ? ToUpper(u[m]) : ToLower(u[m])));
    k = j;
  }
  return EncodeUtf8(out);
}

std::string Strip(const std::string& s, const Value& chars, bool left, bool right) {
  std::u32string u = DecodeUtf8(s);
  std::u32string set;
  bool ws = chars.is_none() || chars.is_undefined();
  if (!ws) {
    // Sorted, so that each test is O(log m): a linear scan of a long `chars` per character
    // stripped is O(n·m).
    set = DecodeUtf8(Str(chars, "strip"));
    std::sort(set.begin(), set.end());
  }
  auto strip_it = [&](char32_t c) { return ws ? IsPySpace(c) : std::binary_search(set.begin(), set.end(), c); };
  size_t b = 0, e = u.size();
  if (left)
    while (b < e && strip_it(u[b])) ++b;
  if (right)
    while (e > b && strip_it(u[e - 1])) --e;
  return EncodeUtf8(u.substr(b, e - b));
}

// Before adding part number n of a split: each part becomes a string and a Value cell, and
// a short separator makes many parts of a short string, so the cells are checked as they
// grow (the parts' bytes never exceed the input's).
namespace {
void CheckPart(size_t n) { CheckAlloc(SatMulAdd(n + 1, sizeof(Value) + sizeof(std::u32string))); }
}  // namespace

std::vector<Value> Split(const std::string& s, const Value& sep_v, int64_t maxsplit, bool from_right) {
  std::vector<Value> out;
  if (sep_v.is_none() || sep_v.is_undefined()) {
    std::u32string u = DecodeUtf8(s);
    std::vector<std::u32string> parts;
    if (!from_right) {
      size_t k = 0;
      while (true) {
        while (k < u.size() && IsPySpace(u[k])) ++k;
        if (k >= u.size()) break;
        CheckPart(parts.size());
        if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
          size_t e = u.size();
          while (e > k && IsPySpace(u[e - 1])) --e;
          parts.push_back(u.substr(k, e - k));
          break;
        }
        size_t j = k;
        while (j < u.size() && !IsPySpace(u[j])) ++j;
        parts.push_back(u.substr(k, j - k));
        k = j;
      }
    } else {
      int64_t k = static_cast<int64_t>(u.size());
      while (true) {
        while (k > 0 && IsPySpace(u[k - 1])) --k;
        if (k <= 0) break;
        CheckPart(parts.size());
        if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
          size_t b = 0;
          while (b < static_cast<size_t>(k) && IsPySpace(u[b])) ++b;
          parts.push_back(u.substr(b, k - b));
          break;
        }
        int64_t j = k;
        while (j > 0 && !IsPySpace(u[j - 1])) --j;
        parts.push_back(u.substr(j, k - j));
        k = j;
      }
      std::reverse(parts.begin(), parts.end());
    }
    for (auto& p : parts) out.push_back(Value::Str(EncodeUtf8(p)));
    return out;
  }
  const std::string& sep = Str(sep_v, "split");
  if (sep.empty()) Fail("empty separator");
  std::vector<std::string> parts;
  if (!from_right) {
    size_t k = 0;
    while (true) {
      CheckPart(parts.size());
      size_t f = (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) ? std::string::npos
                                                                                    : FindCharged(s, sep, k);
      if (f == std::string::npos) {
        parts.push_back(s.substr(k));
        break;
      }
      parts.push_back(s.substr(k, f - k));
      k = f + sep.size();
    }
  } else {
    size_t end = s.size();
    while (true) {
      CheckPart(parts.size());
      size_t f = std::string::npos;
      if (!(maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) && end >= sep.size())
        f = RFindCharged(s, sep, end - sep.size());
      if (f == std::string::npos) {
        parts.push_back(s.substr(0, end));
        break;
      }
      parts.push_back(s.substr(f + sep.size(), end - f - sep.size()));
      end = f;
    }
    std::reverse(parts.begin(), parts.end());
  }
  for (auto& p : parts) out.push_back(Value::Str(std::move(p)));
  return out;
}

// The result is checked against the allocation budget as it grows: n replacements of a
// long `rep` make a result n times longer than the input.
std::string Replace(const std::string& s, const std::string& old, const std::string& rep, int64_t count) {
  std::string out;
  if (old.empty()) {
    std::u32string u = DecodeUtf8(s);
    int64_t n = 0;
    for (size_t k = 0; k <= u.size(); ++k) {
      if (count < 0 || n < count) {
        CheckAlloc(out.size() + rep.size() + 4);
        out += rep;
        ++n;
      }
      if (k < u.size()) AppendUtf8(out, u[k]);
    }
    return out;
  }
  size_t k = 0;
  int64_t n = 0;
  while (true) {
    size_t f = (count >= 0 && n >= count) ? std::string::npos : FindCharged(s, old, k);
    if (f == std::string::npos) break;
    CheckAlloc(out.size() + (f - k) + rep.size());
    out.append(s, k, f - k);
    out += rep;
    k = f + old.size();
    ++n;
  }
  out.append(s, k, std::string::npos);
  return out;
}

std::vector<std::string> SplitLines(const std::string& s, bool keepends) {
  std::vector<std::string> out;
  std::u32string u = DecodeUtf8(s);
  std::u32string cur;
  for (size_t k = 0; k < u.size(); ++k) {
    char32_t c = u[k];
    bool br = c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e ||
              c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!br) {
      cur.push_back(c);
      continue;
    }
    if (keepends) cur.push_back(c);
    if (c == '\r' && k + 1 < u.size() && u[k + 1] == '\n') {
      if (keepends) cur.push_back('\n');
      ++k;
    }
    CheckPart(out.size());
    out.push_back(EncodeUtf8(cur));
    cur.clear();
  }
  if (!cur.empty()) out.push_back(EncodeUtf8(cur));
  return out;
}

bool PrefixMatch(const std::string& s, const Value& p, bool suffix) {
  auto one = [&](const Value& x) {
    const std::string& t = Str(x, suffix ? "endswith" : "startswith");
    if (t.size() > s.size()) return false;
    return MatchAt(s, suffix ? s.size() - t.size() : 0, t);
  };
  if (p.is_list()) {
    for (const auto& x : p.list->items)
      if (one(x)) return true;
    return false;
  }
  return one(p);
}

// Python str.format with auto/explicit numbering and keyword fields (no format specs
// beyond an empty one, no attribute access in fields).
std::string PyFormat(const std::string& fmt, const CallArgs& a) {
  std::string out;
  size_t auto_idx = 0;
  for (size_t k = 0; k < fmt.size(); ++k) {
    char c = fmt[k];
    if (c == '}') {
      if (k + 1 < fmt.size() && fmt[k + 1] == '}') ++k;
      else Fail("Single '}' encountered in format string");
      out.push_back('}');
      continue;
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (k + 1 < fmt.size() && fmt[k + 1] == '{') {
      out.push_back('{');
      ++k;
      continue;
    }
    size_t e = fmt.find('}', k);
    if (e == std::string::npos) Fail("Single '{' encountered in format string");
    std::string field = fmt.substr(k + 1, e - k - 1);
    size_t colon = field.find_first_of(":!");
    if (colon != std::string::npos) {
      if (field.substr(colon) != ":") Fail("format specs are not supported in str.format");
      field.resize(colon);
    }
    Value v;
    if (field.empty()) {
      if (auto_idx >= a.pos.size()) Fail("Replacement index out of range for positional args tuple");
      v = a.pos[auto_idx++];
    } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
      size_t idx = std::strtoul(field.c_str(), nullptr, 10);
      if (idx >= a.pos.size()) Fail("Replacement index out of range for positional args tuple");
      v = a.pos[idx];
    } else {
      bool found = false;
      for (const auto& [key, val] : a.kw)
        if (key == field) { v = val; found = true; }
      if (!found) Fail("KeyError: '" + field + "'");
    }
    std::string text = v.Str();
    CheckAlloc(out.size() + text.size());  // '{0}{0}{0}…' repeats one argument
    out += text;
    k = e;
  }
  return out;
}

// Python's `str % args` (printf-style): %s %r %d %i %f %x %%, optional %(key)s with a
// dict, flags / width / precision for the numeric conversions.
std::string PercentFormat(const std::string& fmt, const Value& args) {
  std::vector<Value> pos;
  bool mapping = args.is_dict() || args.is_undefined() || (args.is_list() && !args.is_tuple());
  if (args.is_tuple()) pos = args.list->items;
  else pos.push_back(args);
  size_t next = 0;
  bool used_any = false;
  std::string out;
  for (size_t k = 0; k < fmt.size(); ++k) {
    if (fmt[k] != '%') {
      out.push_back(fmt[k]);
      continue;
    }
    if (++k >= fmt.size()) Fail("incomplete format");
    if (fmt[k] == '%') {
      out.push_back('%');
      continue;
    }
    Value arg;
    if (fmt[k] == '(') {
      size_t e = fmt.find(')', k);
      if (e == std::string::npos || !args.is_dict()) Fail("format requires a mapping");
      const Value* v = args.dict->Find(fmt.substr(k + 1, e - k - 1));
      if (!v) Fail("KeyError: '" + fmt.substr(k + 1, e - k - 1) + "'");
      arg = *v;
      k = e + 1;
    } else {
      if (next >= pos.size()) Fail("not enough arguments for format string");
      arg = pos[next++];
    }
    used_any = true;
    size_t spec_start = k;
    while (k < fmt.size() && std::strchr("-+ #0123456789.", fmt[k])) ++k;
    if (k >= fmt.size()) Fail("incomplete format");
    std::string spec = "%" + fmt.substr(spec_start, k - spec_start);
    char conv = fmt[k];
    // Width and precision size the result ('%999999999d'): bounded and checked first, and
    // the buffer sized from them (%f of 1e308 alone has 309 digits).
    size_t spec_size = 0;
    for (size_t p = 1; p < spec.size();) {
      if (!std::isdigit(static_cast<unsigned char>(spec[p]))) {
        ++p;
        continue;
      }
      size_t num = 0;
      for (; p < spec.size() && std::isdigit(static_cast<unsigned char>(spec[p])); ++p)
        num = SatMulAdd(num, 10, static_cast<size_t>(spec[p] - '0'));
      spec_size = SatMulAdd(1, spec_size, num);
    }
    if (spec_size > (1u << 30)) Fail("format width or precision too large");
    CheckAlloc(out.size() + spec_size + 400);
    std::string buf(spec_size + 400, '\0');
    if (conv == 's' || conv == 'r') {
      std::string text = conv == 's' ? arg.Str() : arg.Repr();
      size_t width = std::strtoul(spec.c_str() + 1 + (spec.size() > 1 && spec[1] == '-'), nullptr, 10);
      size_t n = CodePointCount(text);
      CheckAlloc(SatMulAdd(1, std::max(width, n), out.size() + text.size()));  // '%999999999s'
      std::string padding = n < width ? std::string(width - n, ' ') : "";
      out += spec.find('-') != std::string::npos ? text + padding : padding + text;
    } else if (std::strchr("diuxXo", conv)) {
      if (!arg.is_number()) Fail(std::string("%") + conv + " format: a real number is required, not " + arg.TypeName());
      char c = conv == 'i' || conv == 'u' ? 'd' : conv;
      int n = std::snprintf(buf.data(), buf.size(), (spec + "ll" + c).c_str(), static_cast<long long>(arg.AsInt()));
      out.append(buf.data(), static_cast<size_t>(std::clamp(n, 0, static_cast<int>(buf.size()) - 1)));
    } else if (std::strchr("feEgG", conv)) {
      if (!arg.is_number()) Fail(std::string("must be real number, not ") + arg.TypeName());
      int n = std::snprintf(buf.data(), buf.size(), (spec + conv).c_str(), arg.AsDouble());
      out.append(buf.data(), static_cast<size_t>(std::clamp(n, 0, static_cast<int>(buf.size()) - 1)));
    } else {
      Fail(std::string("unsupported format character '") + conv + "'");
    }
  }
  if (!mapping && next < pos.size() && (args.is_tuple() || !used_any))
    Fail("not all arguments converted during string formatting");
  return out;
}

}  // namespace inferd::chat
