// "qwen3_xml" (vLLM's Qwen3XMLToolParser, Qwen3-Coder's format):
//   <tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>
// Parameter values are text, typed by the request's tool schema as vLLM does: "null" is null;
// string types (or an unknown parameter or function) stay strings; int*/number/float/boolean
// convert (an unconvertible int or float stays a string, a boolean other than true is false);
// object/array parse as JSON, then (as for any other type) as a Python literal, else a string.
// The name is sent when its tag completes, then each parameter as it closes.
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <memory>

#include "chat/tool_parser_internal.h"
#include "util/json.h"

namespace inferd::tool_parser {
namespace qwen3 {

constexpr std::string_view kCallOpen = "<tool_call>", kCallClose = "</tool_call>";
constexpr std::string_view kFnOpen = "<function=", kFnClose = "</function>";
constexpr std::string_view kParamOpen = "<parameter=", kParamClose = "</parameter>";

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e + 1 - b));
}

// Python's int(text): an optional sign, digits (with '_' between).
bool IntText(std::string_view text, std::string* json) {
  std::string s = Trim(text), digits;
  size_t i = 0;
  const bool neg = !s.empty() && s[0] == '-';
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) i = 1;
  for (; i < s.size(); ++i) {
    if (s[i] >= '0' && s[i] <= '9') {
      digits += s[i];
    } else if (s[i] != '_' || digits.empty() || i + 1 == s.size() || s[i + 1] == '_') {
      return false;
    }
  }
  if (digits.empty()) return false;
  const size_t nz = digits.find_first_not_of('0');
  *json = nz == std::string::npos ? "0" : (neg ? "-" : "") + digits.substr(nz);
  return true;
}

// float(text), written as an int when it is whole (vLLM's rule).
bool FloatText(std::string_view text, std::string* json) {
  const std::string s = Trim(text);
  if (s.empty() || s.find_first_not_of("0123456789+-.eE") != std::string::npos) return false;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (*end != '\0' || !std::isfinite(v)) return false;
  if (v == std::floor(v) && std::fabs(v) < 9.2e18) {
    *json = std::to_string(static_cast<long long>(v));
  } else {
    *json = nlohmann::json(v).dump();
  }
  return true;
}

// The parameter's value as JSON text, by its schema type.
std::string Convert(const std::string& value, const nlohmann::ordered_json* schema) {
  if (Lower(value) == "null") return "null";
  if (!schema) return JsonQuote(value);  // not in the schema
  std::string type = "string";
  if (schema->is_object() && schema->contains("type")) {
    const auto& t = (*schema)["type"];
    type = Lower(Trim(t.is_string() ? t.get<std::string>() : t.dump()));
  }
  std::string json;
  for (std::string_view s : {"string", "str", "text", "varchar", "char", "enum"}) {
    if (type == s) return JsonQuote(value);
  }
  for (std::string_view s : {"int", "uint", "long", "short", "unsigned"}) {
    if (type.starts_with(s)) return IntText(value, &json) ? json : JsonQuote(value);
  }
  if (type.starts_with("num") || type.starts_with("float")) return FloatText(value, &json) ? json : JsonQuote(value);
  if (type == "boolean" || type == "bool" || type == "binary") return Lower(value) == "true" ? "true" : "false";
  if (type == "object" || type == "array" || type == "arr" || type.starts_with("dict") || type.starts_with("list")) {
    nlohmann::ordered_json j;
    JsonError err;
    if (ParseJson(value, &j, &err)) return PyJsonDump(j);
  }
  size_t pos = 0;
  if (PythonLiteralToJson(value, &pos, &json) == LiteralStatus::kOk) {
    while (pos < value.size() && std::string_view(" \t\r\n").find(value[pos]) != std::string_view::npos) ++pos;
    if (pos == value.size()) return json;
  }
  return JsonQuote(value);
}

class Qwen3XmlParser : public ToolParser {
 public:
  explicit Qwen3XmlParser(const nlohmann::ordered_json& tools) : tools_(tools) {}

  ToolParse Push(std::string_view text) override {
    buffer_ += text;
    ToolParse out;
    while (Step(out)) {
    }
    return out;
  }

  ToolParse Finish() override {
    ToolParse out;
    if (state_ == State::kContent) out.content = std::move(buffer_);
    if (state_ == State::kFnName || state_ == State::kParamName) malformed_ = true;  // no '>'
    if (state_ == State::kParamValue) EndParam(buffer_, out);
    if (state_ == State::kInFunction || state_ == State::kParamValue) EndFunction(out);
    buffer_.clear();
    state_ = State::kContent;
    return out;
  }

  int num_calls() const override { return calls_; }
  bool keeps_special_tokens() const override { return true; }

  bool WellFormed(std::string_view text) const override {
    Qwen3XmlParser p(tools_);
    p.Push(text);
    p.Finish();
    return !p.malformed_;
  }

 private:
  enum class State { kContent, kInCall, kFnName, kInFunction, kParamName, kParamValue } state_ = State::kContent;

  // Finds the first of `tags` in buffer_: its index in tags and where; or -1, having kept
  // back a possible partial tag (`passed` gets the text before).
  int Find(std::initializer_list<std::string_view> tags, size_t* at, std::string* passed) {
    size_t best = std::string::npos;
    int which = -1, k = 0;
    for (std::string_view tag : tags) {
      const size_t pos = buffer_.find(tag);
      if (pos < best) best = pos, which = k;
      ++k;
    }
    const size_t take = which >= 0 ? best : buffer_.size() - PartialTagsSuffix(buffer_, tags);
    *passed = buffer_.substr(0, take);
    *at = take;
    return which;
  }

  bool Step(ToolParse& out) {
    size_t at = 0;
    std::string before;
    switch (state_) {
      case State::kContent: {
        const int k = Find({kCallOpen}, &at, &before);
        out.content += before;
        buffer_.erase(0, at);
        if (k < 0) return false;
        buffer_.erase(0, kCallOpen.size());
        state_ = State::kInCall;
        return true;
      }
      case State::kInCall: {  // text between the tags is dropped
        const int k = Find({kFnOpen, kCallClose}, &at, &before);
        buffer_.erase(0, at);
        if (k < 0) return false;
        buffer_.erase(0, k == 0 ? kFnOpen.size() : kCallClose.size());
        state_ = k == 0 ? State::kFnName : State::kContent;
        return true;
      }
      case State::kFnName:
      case State::kParamName: {
        const size_t gt = buffer_.find('>');
        if (gt == std::string::npos) return false;
        const std::string name = Trim(std::string_view(buffer_).substr(0, gt));
        buffer_.erase(0, gt + 1);
        if (name.empty() || name.find_first_of("<\n") != std::string::npos) malformed_ = true;  // a tag with no '>'

        if (state_ == State::kFnName) {
          StartFunction(name, out);
        } else {
          param_ = name;
          state_ = State::kParamValue;
        }
        return true;
      }
      case State::kInFunction: {
        const int k = Find({kParamOpen, kFnClose}, &at, &before);
        buffer_.erase(0, at);
        if (k < 0) return false;
        buffer_.erase(0, k == 0 ? kParamOpen.size() : kFnClose.size());
        if (k == 0) {
          state_ = State::kParamName;
        } else {
          EndFunction(out);
        }
        return true;
      }
      case State::kParamValue: {  // to </parameter>, or the next parameter or </function>
        const int k = Find({kParamClose, kParamOpen, kFnClose}, &at, &before);
        if (k < 0) return false;
        buffer_.erase(0, k == 0 ? at + kParamClose.size() : at);
        EndParam(before, out);
        return true;
      }
    }
    return false;
  }

  void StartFunction(const std::string& name, ToolParse& out) {
    params_ = nullptr;
    if (tools_.is_array()) {
      for (const auto& t : tools_) {
        const auto fn = t.find("function");
        if (fn == t.end() || !fn->is_object() || fn->value("name", std::string()) != name) continue;
        const auto p = fn->find("parameters");
        if (p != fn->end() && p->is_object()) params_ = p->contains("properties") ? &(*p)["properties"] : &*p;
        break;
      }
    }
    AddDelta(out, ToolCallDelta{calls_++, name, "{"});
    first_param_ = true;
    state_ = State::kInFunction;
  }

  void EndParam(std::string value, ToolParse& out) {
    if (value.starts_with("\n")) value.erase(0, 1);
    if (value.ends_with("\n")) value.pop_back();
    const nlohmann::ordered_json* schema = nullptr;
    if (params_ && params_->is_object() && params_->contains(param_)) schema = &(*params_)[param_];
    std::string piece = first_param_ ? "" : ", ";
    piece += JsonQuote(param_) + ": " + Convert(value, schema);
    first_param_ = false;
    AddDelta(out, ToolCallDelta{calls_ - 1, std::nullopt, std::move(piece)});
    state_ = State::kInFunction;
  }

  void EndFunction(ToolParse& out) {
    AddDelta(out, ToolCallDelta{calls_ - 1, std::nullopt, "}"});
    state_ = State::kInCall;
  }

  const nlohmann::ordered_json tools_;
  const nlohmann::ordered_json* params_ = nullptr;  // the function's parameter schemas
  std::string buffer_, param_;
  int calls_ = 0;
  bool first_param_ = true, malformed_ = false;
};

}  // namespace qwen3

std::unique_ptr<ToolParser> MakeQwen3XmlParser(const nlohmann::ordered_json& tools) {
  return std::make_unique<qwen3::Qwen3XmlParser>(tools);
}

}  // namespace inferd::tool_parser
