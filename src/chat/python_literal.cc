// Python literals as JSON text (tool_parser_internal.h): what ast.literal_eval accepts of
// str, int, float, bool, None, list and dict, written as json.dumps(..., ensure_ascii=False)
// writes it. Anything else (names, calls, operators but a sign, sets, tuples, f-strings) is an
// error; text that ends inside a literal is incomplete (a stream may bring the rest).
#include <cmath>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "chat/tool_parser_internal.h"

namespace inferd::tool_parser {
namespace pyliteral {

using S = LiteralStatus;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsIdentChar(char c) { return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

void SkipSpace(std::string_view t, size_t* pos) {
  while (*pos < t.size() && (t[*pos] == ' ' || t[*pos] == '\t' || t[*pos] == '\n' || t[*pos] == '\r')) ++*pos;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // a lone surrogate: not UTF-8
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The escape after a backslash at t[*pos] (Python's rules; an unknown one keeps its backslash).
S Escape(std::string_view t, size_t* pos, std::string* out) {
  if (*pos >= t.size()) return S::kIncomplete;
  const char c = t[(*pos)++];
  static constexpr std::string_view kFrom = "nrtabfv\\'\"", kTo = "\n\r\t\a\b\f\v\\'\"";
  if (const size_t k = kFrom.find(c); k != std::string_view::npos) {
    *out += kTo[k];
    return S::kOk;
  }
  if (c == '\n') return S::kOk;  // a line continuation
  int digits = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
  if (digits > 0) {
    if (*pos + digits > t.size()) return S::kIncomplete;
    uint32_t cp = 0;
    for (int k = 0; k < digits; ++k) {
      const char h = t[*pos + k];
      const int v = IsDigit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
      if (v < 0) return S::kError;
      cp = cp * 16 + static_cast<uint32_t>(v);
    }
    if (cp > 0x10FFFF) return S::kError;
    *pos += digits;
    AppendUtf8(cp, out);
    return S::kOk;
  }
  if (c >= '0' && c <= '7') {  // up to three octal digits
    uint32_t cp = static_cast<uint32_t>(c - '0');
    for (int k = 0; k < 2 && *pos < t.size() && t[*pos] >= '0' && t[*pos] <= '7'; ++k) cp = cp * 8 + (t[(*pos)++] - '0');
    AppendUtf8(cp, out);
    return S::kOk;
  }
  if (c == 'N') return S::kError;  // \N{name}: not supported
  *out += '\\';
  *out += c;
  return S::kOk;
}

// A quoted string (single, double or triple quotes) at t[*pos], decoded into *out.
S String(std::string_view t, size_t* pos, std::string* out) {
  const char q = t[*pos];
  size_t p = *pos;
  const bool triple = t.substr(p, 3) == std::string(3, q);
  if (!triple && p + 3 > t.size() && t.substr(p) == std::string(t.size() - p, q)) return S::kIncomplete;
  p += triple ? 3 : 1;
  while (true) {
    if (p >= t.size()) return S::kIncomplete;
    const char c = t[p];
    if (c == '\\') {
      ++p;
      if (const S s = Escape(t, &p, out); s != S::kOk) return s;
      continue;
    }
    if (c == q && (!triple || t.substr(p, 3) == std::string(3, q))) {
      *pos = p + (triple ? 3 : 1);
      return S::kOk;
    }
    if (c == '\n' && !triple) return S::kError;
    if (triple && c == q && p + 3 > t.size()) return S::kIncomplete;
    *out += c;
    ++p;
  }
}

// A number at t[*pos] (an optional sign, then decimal digits with '_' between, a fraction, an
// exponent; or 0x/0o/0b integers): its JSON text.
S Number(std::string_view t, size_t* pos, std::string* json) {
  size_t p = *pos;
  std::string digits;
  if (t[p] == '-' || t[p] == '+') {
    if (t[p] == '-') digits += '-';
    ++p;
    SkipSpace(t, &p);
  }
  const size_t start = p;
  while (p < t.size() && (IsIdentChar(t[p]) || t[p] == '.' ||
                          ((t[p] == '+' || t[p] == '-') && p > start && (t[p - 1] == 'e' || t[p - 1] == 'E')))) {
    ++p;
  }
  if (p == t.size()) return S::kIncomplete;  // the number may go on
  std::string body;
  for (size_t k = start; k < p; ++k) {
    if (t[k] != '_') body += t[k];
  }
  if (body.empty()) return S::kError;
  const bool radix = body.size() > 1 && body[0] == '0' && std::string_view("xXoObB").find(body[1]) != std::string_view::npos;
  char* end = nullptr;
  if (radix) {
    const int base = (body[1] == 'x' || body[1] == 'X') ? 16 : (body[1] == 'o' || body[1] == 'O') ? 8 : 2;
    const unsigned long long v = std::strtoull(body.c_str() + 2, &end, base);
    if (body.size() == 2 || *end != '\0') return S::kError;
    *json += digits + std::to_string(v);
  } else if (body.find_first_of(".eE") == std::string::npos) {
    if (body.find_first_not_of("0123456789") != std::string::npos) return S::kError;
    const size_t nz = body.find_first_not_of('0');
    if (nz != std::string::npos && nz > 0) return S::kError;  // 007 is a syntax error
    *json += (nz == std::string::npos ? std::string("0") : digits + body);
  } else {
    if (!IsDigit(body[0]) && body[0] != '.') return S::kError;
    const double v = std::strtod(body.c_str(), &end);
    if (*end != '\0' || !std::isfinite(v)) return S::kError;
    std::string s = nlohmann::json(digits.empty() ? v : -v).dump();
    if (s.find_first_of(".e") == std::string::npos) s += ".0";  // Python writes floats with a point
    *json += s;
  }
  *pos = p;
  return S::kOk;
}

// '[' items ']' or '{' key: value '}' at t[*pos].
S Container(std::string_view t, size_t* pos, std::string* json, int depth) {
  const bool dict = t[*pos] == '{';
  const char close = dict ? '}' : ']';
  size_t p = *pos + 1;
  *json += dict ? '{' : '[';
  for (bool first = true;; first = false) {
    SkipSpace(t, &p);
    if (p >= t.size()) return S::kIncomplete;
    if (t[p] == close) break;
    if (!first) {
      if (t[p] != ',') return S::kError;
      SkipSpace(t, &++p);
      if (p >= t.size()) return S::kIncomplete;
      if (t[p] == close) break;  // a trailing comma
      *json += ", ";
    }
    if (dict) {  // str (or int) keys, as json.dumps writes them
      std::string key;
      if (const S s = PythonLiteralToJson(t, &p, &key, depth + 1); s != S::kOk) return s;
      if (key.empty() || (key[0] != '"' && key.find_first_not_of("-0123456789") != std::string::npos)) return S::kError;
      *json += key[0] == '"' ? key : JsonQuote(key);
      SkipSpace(t, &p);
      if (p >= t.size()) return S::kIncomplete;
      if (t[p++] != ':') return S::kError;
      *json += ": ";
    }
    if (const S s = PythonLiteralToJson(t, &p, json, depth + 1); s != S::kOk) return s;
  }
  *json += close;
  *pos = p + 1;
  return S::kOk;
}

}  // namespace pyliteral

LiteralStatus PythonLiteralToJson(std::string_view t, size_t* pos, std::string* json, int depth) {
  using namespace pyliteral;
  if (depth > kMaxLiteralDepth) return S::kError;
  size_t p = *pos;
  SkipSpace(t, &p);
  if (p >= t.size()) return S::kIncomplete;
  const char c = t[p];
  if (c == '\'' || c == '"') {
    std::string s;
    const S st = String(t, &p, &s);
    if (st == S::kOk) {
      *json += JsonQuote(s);
      *pos = p;
    }
    return st;
  }
  if (c == '[' || c == '{') {
    std::string items;
    const S st = Container(t, &p, &items, depth);
    if (st == S::kOk) {
      *json += items;
      *pos = p;
    }
    return st;
  }
  if (IsDigit(c) || c == '-' || c == '+' || c == '.') {
    const S st = Number(t, &p, json);
    if (st == S::kOk) *pos = p;
    return st;
  }
  size_t e = p;
  while (e < t.size() && IsIdentChar(t[e])) ++e;
  const std::string_view word = t.substr(p, e - p);
  if (e == t.size()) {  // a name cut off, or one that ends the text
    for (std::string_view k : {"True", "False", "None"}) {
      if (k.starts_with(word) && !word.empty()) return S::kIncomplete;
    }
    return S::kError;
  }
  const char* out = word == "True" ? "true" : word == "False" ? "false" : word == "None" ? "null" : nullptr;
  if (!out) return S::kError;
  *json += out;
  *pos = e;
  return S::kOk;
}

}  // namespace inferd::tool_parser
