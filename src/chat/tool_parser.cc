#include "chat/tool_parser.h"

#include <nlohmann/json.hpp>

#include "util/json.h"

namespace inferd {
namespace {

constexpr std::string_view kOpen = "<tool_call>", kClose = "</tool_call>";

// The length of the longest suffix of `text` that is a proper prefix of `tag` (text that may
// still become the tag).
size_t PartialTagSuffix(std::string_view text, std::string_view tag) {
  for (size_t n = std::min(text.size(), tag.size() - 1); n > 0; --n) {
    if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}

class HermesParser : public ToolParser {
 public:
  ToolParse Push(std::string_view text) override {
    buffer_ += text;
    ToolParse out;
    while (true) {
      if (!in_call_) {
        const size_t at = buffer_.find(kOpen);
        if (at == std::string::npos) {
          const size_t keep = PartialTagSuffix(buffer_, kOpen);
          out.content += buffer_.substr(0, buffer_.size() - keep);
          buffer_.erase(0, buffer_.size() - keep);
          return out;
        }
        out.content += buffer_.substr(0, at);
        buffer_.erase(0, at + kOpen.size());
        in_call_ = true;
        Feed(started_ ? "," : "[", out);  // the calls, as one array for the scanner
        started_ = true;
      } else {
        const size_t at = buffer_.find(kClose);
        if (at == std::string::npos) {
          const size_t keep = PartialTagSuffix(buffer_, kClose);
          Feed(std::string_view(buffer_).substr(0, buffer_.size() - keep), out);
          buffer_.erase(0, buffer_.size() - keep);
          return out;
        }
        Feed(std::string_view(buffer_).substr(0, at), out);
        buffer_.erase(0, at + kClose.size());
        in_call_ = false;
      }
    }
  }

  ToolParse Finish() override {
    ToolParse out;
    if (in_call_) {
      Feed(buffer_, out);
    } else {
      out.content = buffer_;
    }
    buffer_.clear();
    return out;
  }

  int num_calls() const override { return scanner_.num_calls(); }
  bool WellFormed(std::string_view text) const override;

 private:
  void Feed(std::string_view text, ToolParse& out) {
    for (ToolCallDelta& d : scanner_.Push(text)) {
      if (!out.calls.empty() && out.calls.back().index == d.index && !d.name) {
        out.calls.back().arguments += d.arguments;
      } else {
        out.calls.push_back(std::move(d));
      }
    }
  }

  ToolCallStream scanner_ = ToolCallStream::Required("arguments");
  std::string buffer_;
  bool in_call_ = false, started_ = false;
};

// Every body must be a JSON object with a string name (and object arguments).
bool HermesParser::WellFormed(std::string_view text) const {
  size_t pos = 0;
  while ((pos = text.find(kOpen, pos)) != std::string_view::npos) {
    pos += kOpen.size();
    const size_t end = text.find(kClose, pos);
    const std::string_view body = text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    nlohmann::json j;
    JsonError err;
    if (!ParseJson(body, &j, &err) || !j.is_object() || !j.contains("name") || !j["name"].is_string()) return false;
    if (j.contains("arguments") && !j["arguments"].is_object()) return false;
    if (end == std::string_view::npos) break;
    pos = end + kClose.size();
  }
  return true;
}

}  // namespace

std::unique_ptr<ToolParser> MakeToolParser(std::string_view name) {
  if (name == "hermes") return std::make_unique<HermesParser>();
  return nullptr;
}

const std::vector<std::string>& ToolParserNames() {
  static const std::vector<std::string> names = {"hermes"};
  return names;
}

ParsedToolOutput ParseToolOutput(ToolParser& parser, std::string_view text) {
  ParsedToolOutput out;
  if (!parser.WellFormed(text)) {
    out.content = std::string(text);
    return out;
  }
  ToolParse a = parser.Push(text), b = parser.Finish();
  out.content = a.content + b.content;
  CollectToolCalls(a.calls, &out.calls);
  CollectToolCalls(b.calls, &out.calls);
  return out;
}

}  // namespace inferd
