// Pieces the tool-call parsers (tool_parser*.cc) share; not part of the chat API.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/tool_parser.h"
#include "util/tag_match.h"

namespace inferd::tool_parser {

using inferd::PartialTagSuffix;   // util/tag_match.h
using inferd::PartialTagsSuffix;

// Appends a call piece to `out`, merging argument pieces of the same call.
inline void AddDelta(ToolParse& out, ToolCallDelta d) {
  if (!out.calls.empty() && out.calls.back().index == d.index && !d.name) {
    out.calls.back().arguments += d.arguments;
  } else {
    out.calls.push_back(std::move(d));
  }
}

// Appends the pieces a ToolCallStream gave.
inline void AddDeltas(ToolParse& out, std::vector<ToolCallDelta> deltas) {
  for (ToolCallDelta& d : deltas) AddDelta(out, std::move(d));
}

// Follows one JSON value (object or array) character by character: where it ends.
class JsonValueEnd {
 public:
  // Feeds one character; true when it closed the value.
  bool Char(char c) {
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      return false;
    }
    if (c == '"') in_string_ = true;
    if (c == '{' || c == '[') ++depth_;
    if ((c == '}' || c == ']') && depth_ > 0) return --depth_ == 0;
    return false;
  }

 private:
  int depth_ = 0;
  bool in_string_ = false, escape_ = false;
};

// Whether `body` is a JSON object with a string "name" and an object under one of `args_keys`,
// the name coming first (the streamed scanner reads them in that order); with args_optional
// the arguments may be left out.
bool IsJsonCall(std::string_view body, std::initializer_list<std::string_view> args_keys, bool args_optional = false);

// A Python literal (str with either quote and escapes, int, float, True/False/None, list,
// tuple-free dict, nested up to kMaxLiteralDepth) as JSON text written as Python's json.dumps
// writes it (", " and ": "; non-ASCII kept). Reads from text[*pos]; on kOk *pos is past it.
enum class LiteralStatus { kOk, kIncomplete, kError };
constexpr int kMaxLiteralDepth = 64;
LiteralStatus PythonLiteralToJson(std::string_view text, size_t* pos, std::string* json, int depth = 0);
// A JSON string literal for `s` (UTF-8 kept, controls escaped), as json.dumps writes it.
std::string JsonQuote(std::string_view s);
// `j` as Python's json.dumps(j, ensure_ascii=False) writes it (", " and ": " separators).
std::string PyJsonDump(const nlohmann::ordered_json& j);

// The parsers in their own files.
std::unique_ptr<ToolParser> MakeHermesParser();
std::unique_ptr<ToolParser> MakeLlama3JsonParser();
std::unique_ptr<ToolParser> MakeMistralParser();
std::unique_ptr<ToolParser> MakePythonicParser();
std::unique_ptr<ToolParser> MakeQwen3XmlParser(const nlohmann::ordered_json& tools);
std::unique_ptr<ToolParser> MakeHarmonyParser();

}  // namespace inferd::tool_parser
