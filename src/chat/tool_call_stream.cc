#include "chat/tool_call_stream.h"

#include <utility>

namespace inferd {

void CollectToolCalls(const std::vector<ToolCallDelta>& deltas, std::vector<ToolCallResult>* calls) {
  for (const ToolCallDelta& d : deltas) {
    if (d.name) calls->push_back(ToolCallResult{*d.name, ""});
    if (d.index < static_cast<int>(calls->size())) (*calls)[d.index].arguments += d.arguments;
  }
}

ToolCallStream ToolCallStream::Named(std::string name) {
  ToolCallStream s;
  s.named_ = true;
  s.name_ = std::move(name);
  return s;
}

ToolCallStream ToolCallStream::Required(std::string args_key) {
  ToolCallStream s;
  s.args_key_ = std::move(args_key);
  return s;
}

ToolCallStream ToolCallStream::Required(std::string args_key, std::string alt_args_key) {
  ToolCallStream s = Required(std::move(args_key));
  s.alt_args_key_ = std::move(alt_args_key);
  return s;
}

void ToolCallStream::Append(std::vector<ToolCallDelta>& out, int index, std::string_view piece) {
  if (!out.empty() && out.back().index == index) {
    out.back().arguments += piece;
  } else {
    out.push_back(ToolCallDelta{index, std::nullopt, std::string(piece)});
  }
}

std::vector<ToolCallDelta> ToolCallStream::Push(std::string_view text) {
  std::vector<ToolCallDelta> out;
  if (named_) {
    if (calls_ == 0) {
      calls_ = 1;
      out.push_back(ToolCallDelta{0, name_, std::string(text)});
    } else if (!text.empty()) {
      out.push_back(ToolCallDelta{0, std::nullopt, std::string(text)});
    }
    return out;
  }
  for (char c : text) Char(c, out);
  return out;
}

void ToolCallStream::Char(char c, std::vector<ToolCallDelta>& out) {
  if (in_params_) {  // copy the parameters value through its matching close
    Append(out, calls_ - 1, std::string_view(&c, 1));
    if (params_string_) {
      if (params_escape_) {
        params_escape_ = false;
      } else if (c == '\\') {
        params_escape_ = true;
      } else if (c == '"') {
        params_string_ = false;
      }
      return;
    }
    if (c == '"') params_string_ = true;
    if (c == '{' || c == '[') ++params_depth_;
    if (c == '}' || c == ']') --params_depth_;
    if (params_depth_ == 0) in_params_ = false;
    return;
  }
  if (in_string_) {
    if (escape_) {
      escape_ = false;
      str_ += c;  // the grammar's names are plain identifiers; escapes are kept as written
    } else if (c == '\\') {
      escape_ = true;
    } else if (c == '"') {
      in_string_ = false;
      if (depth_ == 2 && expect_key_) {
        key_ = str_;
      } else if (depth_ == 2 && key_ == "name") {
        out.push_back(ToolCallDelta{calls_, str_, ""});
        ++calls_;
      }
    } else {
      str_ += c;
    }
    return;
  }
  switch (c) {
    case '"':
      in_string_ = true;
      str_.clear();
      break;
    case '[':
      if (depth_ == 0) depth_ = 1;
      break;
    case '{':
      if (depth_ == 1) {  // a new item
        depth_ = 2;
        expect_key_ = true;
        key_.clear();
      } else if (depth_ == 2 && !expect_key_ && calls_ > 0 &&
                 (key_ == args_key_ || (!alt_args_key_.empty() && key_ == alt_args_key_))) {
        in_params_ = true;  // the arguments object: copied through its matching '}'
        params_depth_ = 1;
        params_string_ = params_escape_ = false;
        Append(out, calls_ - 1, "{");
      }
      break;
    case '}':
      if (depth_ == 2) depth_ = 1;
      break;
    case ']':
      if (depth_ == 1) depth_ = 0;
      break;
    case ',':
      if (depth_ == 2) expect_key_ = true;
      break;
    case ':':
      if (depth_ == 2) expect_key_ = false;
      break;
    default:
      break;  // whitespace, and the scalars the grammar does not put at item level
  }
}

}  // namespace inferd
