// Python `str` semantics for the template engine's methods and filters (strip, split,
// replace, format, `%`, case mapping), with the render budget charged where results grow.
// Internal to src/chat.
#pragma once

#include <string>
#include <vector>

#include "chat/evaluator.h"

namespace inferd::chat {

// Throws TemplateError(m).
[[noreturn]] void Fail(const std::string& m);
// v's string, or a TemplateError naming `what` and v's type.
const std::string& Str(const Value& v, const char* what);

// str.isspace, upper, lower on one code point; MapChars applies one to each of s's.
bool IsPySpace(char32_t c);
char32_t ToUpper(char32_t c);
char32_t ToLower(char32_t c);
// str.isupper / islower / isalpha on one code point, and a regex \w character.
bool IsUpperC(char32_t c);
bool IsLowerC(char32_t c);
bool IsAlphaC(char32_t c);
bool IsWordC(char32_t c);
std::string MapChars(const std::string& s, char32_t (*f)(char32_t));
// str.title, str.capitalize and jinja2's title filter.
std::string PyTitle(const std::string& s);
std::string Capitalize(const std::string& s);
std::string JinjaTitle(const std::string& s);
// str.strip / lstrip / rstrip (chars: none or a string), str.split / rsplit, str.replace,
// str.splitlines, str.startswith / endswith (p: a string or a tuple of them).
std::string Strip(const std::string& s, const Value& chars, bool left, bool right);
std::vector<Value> Split(const std::string& s, const Value& sep_v, int64_t maxsplit, bool from_right);
std::string Replace(const std::string& s, const std::string& old, const std::string& rep, int64_t count);
std::vector<std::string> SplitLines(const std::string& s, bool keepends);
bool PrefixMatch(const std::string& s, const Value& p, bool suffix);
// str.format and `str % args`.
std::string PyFormat(const std::string& fmt, const CallArgs& a);
std::string PercentFormat(const std::string& fmt, const Value& args);

}  // namespace inferd::chat
