#include "chat/reasoning_parser.h"

#include <algorithm>

#include "chat/harmony.h"
#include "util/tag_match.h"

namespace inferd {
namespace {

// <think>…</think> (deepseek_r1, qwen3).
class ThinkParser : public ReasoningParser {
 public:
  explicit ThinkParser(bool thinks_by_default) : thinks_by_default_(thinks_by_default) {}

  void Start(std::string_view prompt) override {
    const size_t open = prompt.rfind(kOpen), close = prompt.rfind(kClose);
    if (open == std::string_view::npos && close == std::string_view::npos) {
      state_ = thinks_by_default_ ? State::kReasoning : State::kUndecided;
    } else if (close == std::string_view::npos || (open != std::string_view::npos && open > close)) {
      state_ = State::kReasoning;
    } else {
      state_ = State::kContent;
    }
    leading_ = true;  // the output may still open with <think> (a model thinking after a closed history)
  }

  ReasoningDelta Push(std::string_view text) override {
    buffer_ += text;
    ReasoningDelta out;
    while (!buffer_.empty()) {
      if (leading_ && !Lead()) return out;  // still could be a leading <think>
      if (state_ == State::kContent) {
        out.content += buffer_;
        buffer_.clear();
        break;
      }
      const size_t at = buffer_.find(kClose);
      if (at == std::string::npos) {
        const size_t keep = PartialTagSuffix(buffer_, kClose);
        out.reasoning += buffer_.substr(0, buffer_.size() - keep);
        buffer_.erase(0, buffer_.size() - keep);
        break;
      }
      out.reasoning += buffer_.substr(0, at);
      buffer_.erase(0, at + kClose.size());
      state_ = State::kContent;
    }
    return out;
  }

  ReasoningDelta Finish() override {
    ReasoningDelta out;
    if (state_ == State::kReasoning) {
      out.reasoning = std::move(buffer_);
    } else {
      out.content = std::move(buffer_);
    }
    buffer_.clear();
    if (state_ == State::kUndecided) state_ = State::kContent;
    leading_ = false;
    return out;
  }

  bool in_content() const override { return state_ == State::kContent; }
  std::string_view end_marker() const override { return kClose; }

 private:
  enum class State { kUndecided, kReasoning, kContent };
  static constexpr std::string_view kOpen = "<think>", kClose = "</think>";

  // At the start of the output: a <think> (after whitespace) opens the reasoning and is
  // dropped. False while the buffer could still become one.
  bool Lead() {
    const size_t ws = std::min(buffer_.find_first_not_of(" \t\r\n"), buffer_.size());
    const std::string_view rest = std::string_view(buffer_).substr(ws);
    if (rest.substr(0, kOpen.size()) == kOpen) {
      buffer_.erase(0, ws + kOpen.size());
      state_ = State::kReasoning;
    } else if (rest.size() < kOpen.size() && kOpen.substr(0, rest.size()) == rest) {
      return false;
    } else if (state_ == State::kUndecided) {
      state_ = State::kContent;
    }
    leading_ = false;
    return true;
  }

  const bool thinks_by_default_;
  State state_ = State::kContent;
  bool leading_ = false;
  std::string buffer_;
};

// gpt-oss harmony (chat/harmony.h): analysis bodies are reasoning, final bodies content;
// a message to a recipient (to=functions.f) goes to the content as written, framing and
// closing tag included, for the "openai" tool-call parser.
class HarmonyParser : public ReasoningParser {
 public:
  void Start(std::string_view prompt) override {
    const size_t start = prompt.rfind("<|start|>");
    if (start == std::string_view::npos) return;
    std::vector<HarmonyEvent> events;
    reader_.Push(prompt.substr(start), &events);  // sets the state; the prompt is not output
    for (const HarmonyEvent& e : events) Route(e, nullptr);
  }

  ReasoningDelta Push(std::string_view text) override {
    std::vector<HarmonyEvent> events;
    reader_.Push(text, &events);
    ReasoningDelta out;
    for (const HarmonyEvent& e : events) Route(e, &out);
    return out;
  }

  ReasoningDelta Finish() override {
    std::vector<HarmonyEvent> events;
    reader_.Finish(&events);
    ReasoningDelta out;
    for (const HarmonyEvent& e : events) Route(e, &out);
    return out;
  }

  bool in_content() const override {
    return !reader_.in_header() && (!reader_.in_body() || (channel_ == "final" && !to_tool_));
  }
  std::string_view end_marker() const override { return "<|channel|>final<|message|>"; }
  bool keeps_special_tokens() const override { return true; }

 private:
  void Route(const HarmonyEvent& e, ReasoningDelta* out) {
    std::string* to = nullptr;
    switch (e.kind) {
      case HarmonyEvent::Kind::kText: to = out ? &out->content : nullptr; break;
      case HarmonyEvent::Kind::kHeader:
        channel_ = HarmonyHeaderField(e.text, "<|channel|>");
        to_tool_ = !HarmonyHeaderField(e.text, "to=").empty();
        if (to_tool_ && out) to = &out->content;
        break;
      case HarmonyEvent::Kind::kBody:
        if (out) to = channel_ == "analysis" && !to_tool_ ? &out->reasoning : &out->content;
        break;
      case HarmonyEvent::Kind::kEnd:
        if (to_tool_ && out) to = &out->content;
        channel_.clear();
        to_tool_ = false;
        break;
    }
    if (to) *to += e.text;
  }

  HarmonyReader reader_;
  std::string channel_;
  bool to_tool_ = false;
};

}  // namespace

std::unique_ptr<ReasoningParser> MakeReasoningParser(std::string_view name) {
  if (name == "deepseek_r1") return std::make_unique<ThinkParser>(/*thinks_by_default=*/true);
  if (name == "qwen3") return std::make_unique<ThinkParser>(/*thinks_by_default=*/false);
  if (name == "openai") return std::make_unique<HarmonyParser>();
  return nullptr;
}

const std::vector<std::string>& ReasoningParserNames() {
  static const std::vector<std::string> names = {"deepseek_r1", "qwen3", "openai"};
  return names;
}

ReasoningDelta SplitReasoning(ReasoningParser& parser, std::string_view prompt, std::string_view output) {
  parser.Start(prompt);
  ReasoningDelta a = parser.Push(output), b = parser.Finish();
  return {a.reasoning + b.reasoning, a.content + b.content};
}

}  // namespace inferd
