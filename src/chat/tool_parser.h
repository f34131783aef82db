// Tool calls in a model's own output format, for tool_choice "auto" (vLLM's
// --tool-call-parser). A parser splits generated text into content and tool calls, whole or
// as it streams. Implemented:
// - "hermes" (Hermes 2/3, Qwen 2.5/3): <tool_call>{"name": ..., "arguments": {...}}</tool_call>.
// - "llama3_json" (Llama 3.1-3.3): the whole output is {"name": ..., "parameters" (or
//   "arguments"): {...}} objects separated by "; ", optionally after <|python_tag|>.
// - "mistral": content[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...] or the newer
//   content[TOOL_CALLS]f[ARGS]{...}[TOOL_CALLS]g{...}; calls get Mistral's 9-character ids.
// - "pythonic" (Llama 3.2/4, ToolACE): the whole output is [f(a=1, b='x'), g()] with Python
//   literal arguments, optionally inside Llama 4's <|python_start|>...<|python_end|>.
// - "qwen3_xml" (Qwen3-Coder): <tool_call><function=f><parameter=p>value</parameter>
//   </function></tool_call>; values typed by the request's tool schemas.
// - "openai" (gpt-oss harmony messages as text): commentary messages to=functions.f are calls,
//   the final (and plain commentary) channel is content, analysis is dropped.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "chat/tool_call_stream.h"

namespace inferd {

struct ToolParse {
  std::string content;               // text outside tool calls
  std::vector<ToolCallDelta> calls;  // call pieces (names first), as ToolCallStream gives them
};

class ToolParser {
 public:
  virtual ~ToolParser() = default;
  // Streaming: the next piece of text. Text that may still turn into a tag is held back.
  virtual ToolParse Push(std::string_view text) = 0;
  // The end of the output: whatever was held back.
  virtual ToolParse Finish() = 0;
  virtual int num_calls() const = 0;
  // Whole output: whether every tool-call body parses (else it is all content).
  virtual bool WellFormed(std::string_view text) const = 0;
  // Whether the format's tags are special tokens that detokenizing must keep (vLLM's
  // adjust_request sets skip_special_tokens=False for these parsers).
  virtual bool keeps_special_tokens() const { return false; }
  // How the server names the calls: OpenAI's "chatcmpl-tool-<hex>", or 9 letters and digits
  // (Mistral's chat template rejects other ids when the calls come back).
  enum class IdKind { kRandomHex, kMistral };
  virtual IdKind id_kind() const { return IdKind::kRandomHex; }
};

// The parser of that name, or nullptr for a name that is not implemented. `tools` is the
// request's tools array (qwen3_xml types parameter values by its schemas; null for none).
std::unique_ptr<ToolParser> MakeToolParser(std::string_view name, const nlohmann::ordered_json& tools = nullptr);
// The implemented names, for --help and errors.
const std::vector<std::string>& ToolParserNames();

// A whole output through a fresh parser: content and complete calls ({name, arguments} with
// arguments the JSON text). When a tool-call body does not parse (WellFormed is false, e.g.
// Hermes: not a JSON object with a string "name"), the whole text is content and there are no calls (vLLM's behaviour).
struct ParsedToolOutput {
  std::string content;
  std::vector<ToolCallResult> calls;
};
ParsedToolOutput ParseToolOutput(ToolParser& parser, std::string_view text);

}  // namespace inferd
