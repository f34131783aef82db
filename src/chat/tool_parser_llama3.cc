// "llama3_json" (vLLM's Llama3JsonToolParser): Llama 3.1-3.3 answer a tool call with the
// whole output {"name": "f", "parameters": {...}} (or "arguments"), several separated by "; ",
// sometimes after <|python_tag|>. An output that starts otherwise is content.
#include <memory>

#include "chat/tool_parser_internal.h"

namespace inferd::tool_parser {
namespace llama3 {

constexpr std::string_view kPythonTag = "<|python_tag|>";

class Llama3JsonParser : public ToolParser {
 public:
  ToolParse Push(std::string_view text) override {
    ToolParse out;
    if (mode_ == Mode::kContent) {
      out.content = std::string(text);
      return out;
    }
    if (mode_ == Mode::kCalls) {
      AddDeltas(out, scanner_.Push(text));
      return out;
    }
    buffer_ += text;  // undecided: the first characters say which
    if (buffer_.empty() || (buffer_.size() < kPythonTag.size() && kPythonTag.substr(0, buffer_.size()) == buffer_)) {
      return out;
    }
    std::string rest = std::move(buffer_);
    buffer_.clear();
    if (rest.starts_with(kPythonTag)) {
      rest.erase(0, kPythonTag.size());
    } else if (rest[0] != '{') {
      mode_ = Mode::kContent;
      out.content = std::move(rest);
      return out;
    }
    mode_ = Mode::kCalls;
    AddDeltas(out, scanner_.Push("["));  // the calls, as one array for the scanner
    AddDeltas(out, scanner_.Push(rest));
    return out;
  }

  ToolParse Finish() override {
    ToolParse out;
    out.content = std::move(buffer_);  // a lone prefix of <|python_tag|>
    buffer_.clear();
    return out;
  }

  int num_calls() const override { return scanner_.num_calls(); }

  // Every object must be a call; between them only "; " (and whitespace).
  bool WellFormed(std::string_view text) const override {
    size_t pos = 0;
    if (text.starts_with(kPythonTag)) {
      pos = kPythonTag.size();
    } else if (!text.starts_with("{")) {
      return true;  // content
    }
    auto skip_space = [&] {
      while (pos < text.size() && std::string_view(" \t\r\n").find(text[pos]) != std::string_view::npos) ++pos;
    };
    skip_space();
    while (pos < text.size()) {
      if (text[pos] != '{') return false;
      JsonValueEnd end;
      size_t close = pos;
      while (close < text.size() && !end.Char(text[close])) ++close;
      if (close == text.size()) return false;  // cut off
      if (!IsJsonCall(text.substr(pos, close + 1 - pos), {"parameters", "arguments"})) return false;
      pos = close + 1;
      skip_space();
      if (pos < text.size() && text[pos] == ';') ++pos;
      skip_space();
    }
    return true;
  }

 private:
  enum class Mode { kUndecided, kContent, kCalls } mode_ = Mode::kUndecided;
  std::string buffer_;
  ToolCallStream scanner_ = ToolCallStream::Required("parameters", "arguments");
};

}  // namespace llama3

std::unique_ptr<ToolParser> MakeLlama3JsonParser() { return std::make_unique<llama3::Llama3JsonParser>(); }

}  // namespace inferd::tool_parser
