#include "chat/tool_parser.h"

#include <nlohmann/json.hpp>

#include "chat/tool_parser_internal.h"
#include "util/json.h"

namespace inferd {
namespace tool_parser {
namespace {

constexpr std::string_view kOpen = "<tool_call>", kClose = "</tool_call>";

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
  bool keeps_special_tokens() const override { return true; }  // <tool_call> is special in some vocabularies

 private:
  void Feed(std::string_view text, ToolParse& out) { AddDeltas(out, scanner_.Push(text)); }

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
    if (!IsJsonCall(body, {"arguments"}, /*args_optional=*/true)) return false;
    if (end == std::string_view::npos) break;
    pos = end + kClose.size();
  }
  return true;
}

}  // namespace

std::unique_ptr<ToolParser> MakeHermesParser() { return std::make_unique<HermesParser>(); }

bool IsJsonCall(std::string_view body, std::initializer_list<std::string_view> args_keys, bool args_optional) {
  nlohmann::ordered_json j;
  JsonError err;
  if (!ParseJson(body, &j, &err) || !j.is_object()) return false;
  const auto name = j.find("name");
  if (name == j.end() || !name->is_string()) return false;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::find(args_keys.begin(), args_keys.end(), it.key()) == args_keys.end()) continue;
    // The arguments must be an object, after the name.
    return it->is_object() && std::distance(j.begin(), name) < std::distance(j.begin(), it);
  }
  return args_optional;
}

std::string JsonQuote(std::string_view s) {
  return nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string PyJsonDump(const nlohmann::ordered_json& j) {
  std::string out;
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      out += (out.empty() ? "{" : ", ") + JsonQuote(it.key()) + ": " + PyJsonDump(*it);
    }
    return out.empty() ? "{}" : out + "}";
  }
  if (j.is_array()) {
    for (const auto& v : j) out += (out.empty() ? "[" : ", ") + PyJsonDump(v);
    return out.empty() ? "[]" : out + "]";
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace tool_parser

std::unique_ptr<ToolParser> MakeToolParser(std::string_view name, const nlohmann::ordered_json& tools) {
  using namespace tool_parser;
  if (name == "hermes") return MakeHermesParser();
  if (name == "llama3_json") return MakeLlama3JsonParser();
  if (name == "mistral") return MakeMistralParser();
  if (name == "pythonic") return MakePythonicParser();
  if (name == "qwen3_xml") return MakeQwen3XmlParser(tools);
  if (name == "openai") return MakeHarmonyParser();
  return nullptr;
}

const std::vector<std::string>& ToolParserNames() {
  static const std::vector<std::string> names = {"hermes", "llama3_json", "mistral", "openai", "pythonic", "qwen3_xml"};
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
