// gpt-oss's "harmony" messages, read as text while they stream:
//   <|start|>assistant<|channel|>analysis<|message|>...<|end|>
//   <|start|>assistant<|channel|>commentary to=functions.f <|constrain|>json<|message|>{...}<|call|>
//   <|channel|>final<|message|>...<|return|>
// A message begins at <|start|> or <|channel|> (or a bare <|message|>), its header runs to
// <|message|>, its body to <|end|>, <|call|>, <|return|> or the next message's start. Text
// outside any message is plain text. The reader turns the stream into events; the "openai"
// reasoning parser and tool-call parser each route them (chat/reasoning_parser.cc,
// chat/tool_parser_harmony.cc).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace inferd {

struct HarmonyEvent {
  enum class Kind {
    kText,    // text outside any message
    kHeader,  // a message's framing as written, from <|start|> or <|channel|> through <|message|>
    kBody,    // a piece of the current message's body
    kEnd,     // the message ended: its closing tag, or "" when the next message began instead
  };
  Kind kind;
  std::string text;
};

class HarmonyReader {
 public:
  // The next piece of text; text that may still become a tag is held back.
  void Push(std::string_view text, std::vector<HarmonyEvent>* out);
  // The end of the stream: held-back body or outside text (an unfinished header is dropped).
  void Finish(std::vector<HarmonyEvent>* out);
  bool in_header() const { return state_ == State::kHeader; }
  bool in_body() const { return state_ == State::kBody; }

 private:
  enum class State { kOutside, kHeader, kBody } state_ = State::kOutside;
  bool Step(std::vector<HarmonyEvent>* out);
  std::string buffer_, header_;
};

// The value after `key` in a message header (HeaderField(h, "<|channel|>") = "commentary",
// HeaderField(h, "to=") = "functions.f"), up to the next space or tag; "" when absent.
std::string HarmonyHeaderField(std::string_view header, std::string_view key);

}  // namespace inferd
