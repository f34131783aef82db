// "openai" (vLLM's OpenAIToolParser for gpt-oss), on the harmony messages as text:
//   <|channel|>analysis<|message|>...<|end|><|start|>assistant<|channel|>commentary
//   to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>
// A message to functions.NAME is a call (its body the arguments, sent in pieces as they come;
// kept as written when it is not JSON, as vLLM); final-channel and plain commentary messages
// are content; analysis messages and messages to other recipients (built-in tools) are
// dropped. Text outside any message (no harmony framing at all) is content.
#include <memory>

#include "chat/tool_parser_internal.h"

namespace inferd::tool_parser {
namespace harmony {

constexpr std::string_view kStart = "<|start|>", kChannel = "<|channel|>", kMessage = "<|message|>";
constexpr std::string_view kEnd = "<|end|>", kCall = "<|call|>", kReturn = "<|return|>";

// The value after `key` in a message header ("commentary", "functions.f"), to the next space
// or tag.
std::string HeaderField(std::string_view header, std::string_view key) {
  const size_t at = header.find(key);
  if (at == std::string_view::npos) return "";
  std::string_view v = header.substr(at + key.size());
  const size_t end = v.find_first_of(" \t\n<");
  return std::string(v.substr(0, end));
}

class HarmonyParser : public ToolParser {
 public:
  ToolParse Push(std::string_view text) override {
    buffer_ += text;
    ToolParse out;
    while (Step(out)) {
    }
    return out;
  }

  ToolParse Finish() override {
    ToolParse out;
    if (state_ == State::kBody) Body(buffer_, out);
    if (state_ == State::kOutside) out.content += buffer_;
    buffer_.clear();
    state_ = State::kOutside;
    return out;
  }

  int num_calls() const override { return calls_; }
  bool WellFormed(std::string_view) const override { return true; }
  bool keeps_special_tokens() const override { return true; }

 private:
  enum class State { kOutside, kHeader, kBody } state_ = State::kOutside;
  enum class Target { kContent, kCall, kDrop } target_ = Target::kContent;

  // Finds the first of `tags` in buffer_: its index and position, or -1 and how much of the
  // buffer is surely not a tag.
  int Find(std::initializer_list<std::string_view> tags, size_t* at) const {
    size_t best = std::string::npos;
    int which = -1, k = 0;
    for (std::string_view tag : tags) {
      const size_t pos = buffer_.find(tag);
      if (pos < best) best = pos, which = k;
      ++k;
    }
    *at = which >= 0 ? best : buffer_.size() - PartialTagsSuffix(buffer_, tags);
    return which;
  }

  bool Step(ToolParse& out) {
    size_t at = 0;
    switch (state_) {
      case State::kOutside: {  // a message starts with <|start|> or <|channel|> (or <|message|>)
        const int k = Find({kStart, kChannel, kMessage, kEnd, kCall, kReturn}, &at);
        out.content += buffer_.substr(0, at);
        buffer_.erase(0, at);
        if (k < 0) return false;
        if (k >= 3) {  // a stray end of message
          buffer_.erase(0, (k == 3 ? kEnd : k == 4 ? kCall : kReturn).size());
          return true;
        }
        header_.clear();
        state_ = State::kHeader;
        if (k == 0) buffer_.erase(0, kStart.size());
        return true;
      }
      case State::kHeader: {
        const size_t end = buffer_.find(kMessage);
        if (end == std::string::npos) return false;
        header_ = buffer_.substr(0, end);
        buffer_.erase(0, end + kMessage.size());
        StartBody(out);
        return true;
      }
      case State::kBody: {
        const int k = Find({kEnd, kCall, kReturn, kStart, kChannel}, &at);
        Body(buffer_.substr(0, at), out);
        buffer_.erase(0, at);
        if (k < 0) return false;
        if (k <= 2) buffer_.erase(0, (k == 0 ? kEnd : k == 1 ? kCall : kReturn).size());
        state_ = State::kOutside;
        return true;
      }
    }
    return false;
  }

  // The header (role, channel, recipient, content type) decides where the body goes.
  void StartBody(ToolParse& out) {
    const std::string channel = HeaderField(header_, kChannel);
    const std::string recipient = HeaderField(header_, "to=");
    if (recipient.starts_with("functions.")) {
      target_ = Target::kCall;
      AddDelta(out, ToolCallDelta{calls_++, recipient.substr(std::string_view("functions.").size()), ""});
    } else if (!recipient.empty() || channel == "analysis") {
      target_ = Target::kDrop;
    } else {
      target_ = Target::kContent;  // final, commentary (a preamble), or no channel
    }
    state_ = State::kBody;
  }

  void Body(const std::string& text, ToolParse& out) {
    if (text.empty()) return;
    if (target_ == Target::kContent) out.content += text;
    if (target_ == Target::kCall) AddDelta(out, ToolCallDelta{calls_ - 1, std::nullopt, text});
  }

  std::string buffer_, header_;
  int calls_ = 0;
};

}  // namespace harmony

std::unique_ptr<ToolParser> MakeHarmonyParser() { return std::make_unique<harmony::HarmonyParser>(); }

}  // namespace inferd::tool_parser
