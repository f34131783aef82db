#include "chat/reasoning_parser.h"

#include <algorithm>
#include <array>

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

// gpt-oss harmony: <|start|>role<|channel|>name [to=recipient] [<|constrain|>type]<|message|>body<|end|>.
class HarmonyParser : public ReasoningParser {
 public:
  void Start(std::string_view prompt) override {
    const size_t start = prompt.rfind("<|start|>");
    if (start == std::string_view::npos) return;
    Push(prompt.substr(start));  // sets the state; the prompt's text is not output
  }

  ReasoningDelta Push(std::string_view text) override {
    buffer_ += text;
    ReasoningDelta out;
    size_t from = 0;
    while (true) {
      const size_t at = buffer_.find("<|", from);
      if (at == std::string::npos) {
        const size_t keep = buffer_.size() > 0 && buffer_.back() == '<' ? 1 : 0;
        Emit(std::string_view(buffer_).substr(0, buffer_.size() - keep), out);
        buffer_.erase(0, buffer_.size() - keep);
        return out;
      }
      const std::string_view rest = std::string_view(buffer_).substr(at);
      const std::string_view* tag = nullptr;
      bool partial = false;
      for (const std::string_view& t : kTags) {
        if (rest.substr(0, t.size()) == t) tag = &t;
        if (rest.size() < t.size() && t.substr(0, rest.size()) == rest) partial = true;
      }
      if (!tag && partial) {  // may still become a tag: hold it back
        Emit(std::string_view(buffer_).substr(0, at), out);
        buffer_.erase(0, at);
        return out;
      }
      if (!tag) {  // "<|" that is no tag: text
        from = at + 2;
        continue;
      }
      Emit(std::string_view(buffer_).substr(0, at), out);
      const std::string tag_text(*tag);
      buffer_.erase(0, at + tag_text.size());
      from = 0;
      OnTag(tag_text, out);
    }
  }

  ReasoningDelta Finish() override {
    ReasoningDelta out;
    Emit(buffer_, out);
    buffer_.clear();
    return out;
  }

  bool in_content() const override {
    return state_ == State::kText || (state_ == State::kBody && channel_ == "final");
  }
  std::string_view end_marker() const override { return "<|channel|>final<|message|>"; }
  bool keeps_special_tokens() const override { return true; }

 private:
  enum class State { kText, kRole, kHeader, kBody };
  static constexpr std::array<std::string_view, 7> kTags = {"<|start|>", "<|channel|>", "<|message|>", "<|end|>",
                                                           "<|return|>", "<|call|>", "<|constrain|>"};

  // A message for a tool (to=… in its role or channel header) goes to the tool-call parser.
  bool ToTool() const { return frame_.find("to=") != std::string::npos; }

  void Emit(std::string_view text, ReasoningDelta& out) {
    if (text.empty()) return;
    switch (state_) {
      case State::kText: out.content += text; break;
      case State::kRole:
      case State::kHeader: frame_ += text; break;
      case State::kBody:
        if (channel_ == "analysis") {
          out.reasoning += text;
        } else {
          out.content += text;
        }
        break;
    }
  }

  void OnTag(const std::string& tag, ReasoningDelta& out) {
    if (tag == "<|start|>") {
      state_ = State::kRole;
      frame_ = tag;
    } else if (tag == "<|channel|>") {
      if (state_ != State::kRole) frame_.clear();
      frame_ += tag;
      state_ = State::kHeader;
    } else if (tag == "<|constrain|>" && state_ == State::kHeader) {
      frame_ += tag;
    } else if (tag == "<|message|>") {
      frame_ += tag;
      const size_t c = frame_.find("<|channel|>");
      channel_.clear();
      if (c != std::string::npos) {
        const size_t b = c + std::string_view("<|channel|>").size();
        const size_t e = frame_.find_first_of(" <", b);
        channel_ = frame_.substr(b, e == std::string::npos ? std::string::npos : e - b);
      }
      if (channel_ != "analysis" && channel_ != "final" && ToTool()) out.content += frame_;
      state_ = State::kBody;
    } else if (tag == "<|end|>" || tag == "<|return|>" || tag == "<|call|>") {
      if (state_ == State::kBody && channel_ != "analysis" && channel_ != "final" && ToTool()) out.content += tag;
      state_ = State::kText;
      frame_.clear();
    } else {
      Emit(tag, out);  // <|constrain|> outside a header
    }
  }

  State state_ = State::kText;
  std::string buffer_, frame_, channel_;
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
