// "openai" (vLLM's OpenAIToolParser for gpt-oss), on the harmony messages as text:
//   <|channel|>analysis<|message|>...<|end|><|start|>assistant<|channel|>commentary
//   to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>
// A message to functions.NAME is a call (its body the arguments, sent in pieces as they come;
// kept as written when it is not JSON, as vLLM); final-channel and plain commentary messages
// are content; analysis messages and messages to other recipients (built-in tools) are
// dropped. Text outside any message (no harmony framing at all) is content.
#include <memory>

#include "chat/harmony.h"
#include "chat/tool_parser_internal.h"

namespace inferd::tool_parser {
namespace harmony {

class HarmonyParser : public ToolParser {
 public:
  ToolParse Push(std::string_view text) override {
    events_.clear();
    reader_.Push(text, &events_);
    return Route();
  }

  ToolParse Finish() override {
    events_.clear();
    reader_.Finish(&events_);
    return Route();
  }

  int num_calls() const override { return calls_; }
  bool WellFormed(std::string_view) const override { return true; }
  bool keeps_special_tokens() const override { return true; }

 private:
  enum class Target { kContent, kCall, kDrop } target_ = Target::kContent;

  ToolParse Route() {
    ToolParse out;
    for (const HarmonyEvent& e : events_) {
      switch (e.kind) {
        case HarmonyEvent::Kind::kText: out.content += e.text; break;
        case HarmonyEvent::Kind::kHeader: StartBody(e.text, out); break;
        case HarmonyEvent::Kind::kBody:
          if (target_ == Target::kContent) out.content += e.text;
          if (target_ == Target::kCall) AddDelta(out, ToolCallDelta{calls_ - 1, std::nullopt, e.text});
          break;
        case HarmonyEvent::Kind::kEnd: break;
      }
    }
    return out;
  }

  // The header (role, channel, recipient, content type) decides where the body goes.
  void StartBody(const std::string& header, ToolParse& out) {
    const std::string channel = HarmonyHeaderField(header, "<|channel|>");
    const std::string recipient = HarmonyHeaderField(header, "to=");
    if (recipient.starts_with("functions.")) {
      target_ = Target::kCall;
      AddDelta(out, ToolCallDelta{calls_++, recipient.substr(std::string_view("functions.").size()), ""});
    } else if (!recipient.empty() || channel == "analysis") {
      target_ = Target::kDrop;
    } else {
      target_ = Target::kContent;  // final, commentary (a preamble), or no channel
    }
  }

  HarmonyReader reader_;
  std::vector<HarmonyEvent> events_;
  int calls_ = 0;
};

}  // namespace harmony

std::unique_ptr<ToolParser> MakeHarmonyParser() { return std::make_unique<harmony::HarmonyParser>(); }

}  // namespace inferd::tool_parser
