// "mistral" (vLLM's MistralToolParser): content, then [TOOL_CALLS] and either a JSON array of
// {"name": ..., "arguments": {...}} (Mistral 7B v0.3, tokenizers before v11) or, newer,
// name[ARGS]{...} (or name{...}) per call, each call after its own [TOOL_CALLS]. Text before
// the first [TOOL_CALLS] is content; text after the calls is dropped (as vLLM).
#include <algorithm>
#include <memory>

#include "chat/tool_parser_internal.h"
#include "util/json.h"

namespace inferd::tool_parser {
namespace mistral {

constexpr std::string_view kBot = "[TOOL_CALLS]", kArgs = "[ARGS]";

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.';
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

class MistralParser : public ToolParser {
 public:
  ToolParse Push(std::string_view text) override {
    buffer_ += text;
    ToolParse out;
    size_t i = 0;
    while (i < buffer_.size()) {
      if (!Step(i, out)) break;  // needs more text
    }
    buffer_.erase(0, i);
    return out;
  }

  ToolParse Finish() override {
    ToolParse out;
    if (state_ == State::kContent) out.content = std::move(buffer_);
    if (state_ == State::kName || state_ == State::kArgs) malformed_ = true;  // cut off
    buffer_.clear();
    return out;
  }

  int num_calls() const override { return array_ ? scanner_.num_calls() : calls_; }
  bool keeps_special_tokens() const override { return true; }
  IdKind id_kind() const override { return IdKind::kMistral; }

  bool WellFormed(std::string_view text) const override {
    const size_t bot = text.find(kBot);
    if (bot == std::string_view::npos) return true;
    size_t pos = bot + kBot.size();
    while (pos < text.size() && IsSpace(text[pos])) ++pos;
    if (pos < text.size() && text[pos] == '[') return ArrayWellFormed(text.substr(pos));
    MistralParser p;
    p.Push(text);
    p.Finish();
    return !p.malformed_ && p.calls_ > 0;
  }

 private:
  enum class State { kContent, kStart, kArray, kName, kArgs, kBetween } state_ = State::kContent;

  // The array form: one JSON array of calls (the [TOOL_CALLS] of later calls ignored, as vLLM
  // removes them all).
  static bool ArrayWellFormed(std::string_view text) {
    std::string joined(text);
    for (size_t at; (at = joined.find(kBot)) != std::string::npos;) joined.erase(at, kBot.size());
    JsonValueEnd end;
    size_t close = 0;
    while (close < joined.size() && !end.Char(joined[close])) ++close;
    if (close == joined.size()) return false;
    nlohmann::ordered_json calls;
    JsonError err;
    if (!ParseJson(std::string_view(joined).substr(0, close + 1), &calls, &err) || calls.empty()) return false;
    for (const auto& call : calls) {
      if (!IsJsonCall(call.dump(), {"arguments"})) return false;
    }
    return true;
  }

  // Consumes what it can at buffer_[i]; false when it must wait for more text.
  bool Step(size_t& i, ToolParse& out) {
    const std::string_view rest = std::string_view(buffer_).substr(i);
    switch (state_) {
      case State::kContent: {
        const size_t at = rest.find(kBot);
        const size_t take = at == std::string_view::npos ? rest.size() - PartialTagSuffix(rest, kBot) : at;
        out.content += rest.substr(0, take);
        i += take;
        if (at == std::string_view::npos) return false;
        i += kBot.size();
        state_ = State::kStart;
        return true;
      }
      case State::kStart:  // the array form, or a name
        if (IsSpace(rest[0])) {
          ++i;
        } else if (rest.starts_with(kBot)) {
          i += kBot.size();
        } else if (rest[0] == '[' && kBot.starts_with(rest)) {
          return false;  // maybe another [TOOL_CALLS]
        } else if (rest[0] == '[') {
          array_ = true;
          state_ = State::kArray;
        } else {
          state_ = State::kName;
        }
        return true;
      case State::kArray:
        AddDeltas(out, scanner_.Push(rest));
        i += rest.size();
        return false;
      case State::kName:
        return StepName(i, rest, out);
      case State::kArgs:
        return StepArgs(i, rest, out);
      case State::kBetween:
        return StepBetween(i, rest);
    }
    return false;
  }

  // The name runs to the arguments' '{' ([ARGS] between them is dropped).
  bool StepName(size_t& i, std::string_view rest, ToolParse& out) {
    const size_t brace = rest.find('{');
    if (brace == std::string_view::npos) return false;
    std::string name(rest.substr(0, brace));
    if (name.ends_with(kArgs)) name.resize(name.size() - kArgs.size());
    if (name.empty() || !std::all_of(name.begin(), name.end(), IsNameChar)) malformed_ = true;
    AddDelta(out, ToolCallDelta{calls_++, name, ""});
    args_ = JsonValueEnd();
    args_text_.clear();
    i += brace;
    state_ = State::kArgs;
    return true;
  }

  // The arguments object, through its matching '}'.
  bool StepArgs(size_t& i, std::string_view rest, ToolParse& out) {
    size_t n = 0;
    bool closed = false;
    while (n < rest.size() && !closed) closed = args_.Char(rest[n++]);
    args_text_ += rest.substr(0, n);
    AddDelta(out, ToolCallDelta{calls_ - 1, std::nullopt, std::string(rest.substr(0, n))});
    i += n;
    if (!closed) return false;
    nlohmann::json j;
    JsonError err;
    if (!ParseJson(args_text_, &j, &err) || !j.is_object()) malformed_ = true;
    state_ = State::kBetween;
    return true;
  }

  // After a call: separators, [TOOL_CALLS], the next name; anything else ends the calls.
  bool StepBetween(size_t& i, std::string_view rest) {
    if (IsSpace(rest[0]) || rest[0] == ',') {
      ++i;
    } else if (rest.starts_with(kBot)) {
      i += kBot.size();
    } else if (kBot.starts_with(rest)) {
      return false;
    } else if (IsNameChar(rest[0])) {
      state_ = State::kName;
    } else {
      malformed_ = true;
      i += rest.size();
      return false;
    }
    return true;
  }

  std::string buffer_;
  bool array_ = false, malformed_ = false;
  int calls_ = 0;
  ToolCallStream scanner_ = ToolCallStream::Required("arguments");
  JsonValueEnd args_;
  std::string args_text_;
};

}  // namespace mistral

std::unique_ptr<ToolParser> MakeMistralParser() { return std::make_unique<mistral::MistralParser>(); }

}  // namespace inferd::tool_parser
