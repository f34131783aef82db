// "pythonic" (vLLM's PythonicToolParser, and Llama 4's <|python_start|> wrapper): the whole
// output is a Python list of calls with keyword arguments that are literals,
// [get_weather(city='Paris', days=3), get_time()]; an output that does not start with '['
// is content. Each call is sent whole when its ')' arrives (the arguments are converted, not
// copied). A call that does not parse makes the whole output content (streamed: the rest).
#include <memory>
#include <set>

#include "chat/tool_parser_internal.h"

namespace inferd::tool_parser {
namespace pythonic {

constexpr std::string_view kStart = "<|python_start|>", kEnd = "<|python_end|>";

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdent(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }

void SkipSpace(std::string_view t, size_t* pos) {
  while (*pos < t.size() && (t[*pos] == ' ' || t[*pos] == '\t' || t[*pos] == '\n' || t[*pos] == '\r')) ++*pos;
}

// An identifier at t[*pos]; incomplete when it runs to the end of the text.
LiteralStatus Ident(std::string_view t, size_t* pos, std::string* name) {
  SkipSpace(t, pos);
  if (*pos >= t.size()) return LiteralStatus::kIncomplete;
  if (!IsIdentStart(t[*pos])) return LiteralStatus::kError;
  size_t e = *pos;
  while (e < t.size() && IsIdent(t[e])) ++e;
  if (e == t.size()) return LiteralStatus::kIncomplete;
  *name = std::string(t.substr(*pos, e - *pos));
  *pos = e;
  return LiteralStatus::kOk;
}

// name(key=literal, ...) at t[*pos]: the name and the arguments as a JSON object.
LiteralStatus Call(std::string_view t, size_t* pos, std::string* name, std::string* args) {
  using S = LiteralStatus;
  size_t p = *pos;
  if (const S s = Ident(t, &p, name); s != S::kOk) return s;
  SkipSpace(t, &p);
  if (p >= t.size()) return S::kIncomplete;
  if (t[p++] != '(') return S::kError;
  std::set<std::string> seen;
  *args = "{";
  while (true) {
    SkipSpace(t, &p);
    if (p >= t.size()) return S::kIncomplete;
    if (t[p] == ')') break;
    std::string key;
    if (const S s = Ident(t, &p, &key); s != S::kOk) return s;
    SkipSpace(t, &p);
    if (p >= t.size()) return S::kIncomplete;
    if (t[p++] != '=' || !seen.insert(key).second) return S::kError;  // positional or repeated
    if (seen.size() > 1) *args += ", ";
    *args += JsonQuote(key) + ": ";
    if (const S s = PythonLiteralToJson(t, &p, args); s != S::kOk) return s;
    SkipSpace(t, &p);
    if (p >= t.size()) return S::kIncomplete;
    if (t[p] == ',') {
      ++p;
    } else if (t[p] != ')') {
      return S::kError;
    }
  }
  *args += "}";
  *pos = p + 1;
  return S::kOk;
}

class PythonicParser : public ToolParser {
 public:
  ToolParse Push(std::string_view text) override {
    ToolParse out;
    buffer_ += text;
    if (mode_ == Mode::kUndecided) Decide();
    if (mode_ == Mode::kCalls) Calls(out, /*end=*/false);
    if (mode_ == Mode::kContent) {
      out.content += buffer_;
      buffer_.clear();
    }
    return out;
  }

  ToolParse Finish() override {
    ToolParse out;
    if (mode_ == Mode::kCalls) Calls(out, /*end=*/true);
    if (mode_ != Mode::kDone) out.content += buffer_;
    buffer_.clear();
    return out;
  }

  int num_calls() const override { return calls_; }

  bool WellFormed(std::string_view text) const override {
    PythonicParser p;
    p.Push(text);
    p.Finish();
    return !p.malformed_;
  }

 private:
  enum class Mode { kUndecided, kContent, kCalls, kDone } mode_ = Mode::kUndecided;

  // '[' (after <|python_start|>, if any) starts the calls; anything else is content.
  void Decide() {
    if (buffer_.starts_with(kStart)) {
      size_t p = kStart.size();
      SkipSpace(buffer_, &p);
      if (p == buffer_.size()) return;
      if (buffer_[p] != '[') {
        mode_ = Mode::kContent;
        return;
      }
      buffer_.erase(0, p + 1);
      mode_ = Mode::kCalls;
    } else if (buffer_.empty() || kStart.starts_with(buffer_)) {
      return;
    } else if (buffer_[0] == '[') {
      buffer_.erase(0, 1);
      mode_ = Mode::kCalls;
    } else {
      mode_ = Mode::kContent;
    }
  }

  // The calls complete in buffer_; at the end, what is left must be the list's ']'.
  void Calls(ToolParse& out, bool end) {
    using S = LiteralStatus;
    while (true) {
      size_t p = 0;
      SkipSpace(buffer_, &p);
      if (p < buffer_.size() && buffer_[p] == ']') {
        return Close(p + 1, end);
      }
      if (calls_ > 0 && !comma_) {
        if (p >= buffer_.size()) break;
        if (buffer_[p] != ',') return Malformed();
        comma_ = true;
        buffer_.erase(0, p + 1);
        continue;
      }
      std::string name, args;
      const S s = Call(buffer_, &p, &name, &args);
      if (s == S::kError) return Malformed();
      if (s == S::kIncomplete) break;
      AddDelta(out, ToolCallDelta{calls_++, std::move(name), std::move(args)});
      comma_ = false;
      buffer_.erase(0, p);
    }
    if (end) Malformed();  // cut off inside the list
  }

  // After ']': only whitespace and Llama 4's <|python_end|>.
  void Close(size_t at, bool end) {
    std::string_view rest = std::string_view(buffer_).substr(at);
    size_t p = 0;
    SkipSpace(rest, &p);
    rest.remove_prefix(p);
    if (rest.starts_with(kEnd)) {
      rest.remove_prefix(kEnd.size());
      p = 0;
      SkipSpace(rest, &p);
      rest.remove_prefix(p);
    } else if (!end && kEnd.starts_with(rest)) {
      return;  // more may come
    }
    if (!rest.empty()) return Malformed();
    if (end) {
      mode_ = Mode::kDone;
      buffer_.clear();
    }
  }

  void Malformed() {
    malformed_ = true;
    mode_ = Mode::kContent;  // the rest, as text
  }

  std::string buffer_;
  int calls_ = 0;
  bool comma_ = false, malformed_ = false;
};

}  // namespace pythonic

std::unique_ptr<ToolParser> MakePythonicParser() { return std::make_unique<pythonic::PythonicParser>(); }

}  // namespace inferd::tool_parser
