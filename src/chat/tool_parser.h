// Tool calls in a model's own output format, for tool_choice "auto" (vLLM's
// --tool-call-parser). A parser splits generated text into content and tool calls, whole or
// as it streams. Implemented: "hermes" (Hermes 2/3, Qwen 2.5/3: <tool_call>{"name": ...,
// "arguments": {...}}</tool_call>).
#pragma once

#include <memory>
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
};

// The parser of that name, or nullptr for a name that is not implemented.
std::unique_ptr<ToolParser> MakeToolParser(std::string_view name);
// The implemented names, for --help and errors.
const std::vector<std::string>& ToolParserNames();

// A whole output through a fresh parser: content and complete calls ({name, arguments} with
// arguments the JSON text). When a tool-call body does not parse (Hermes: not a JSON object
// with a string "name"), the whole text is content and there are no calls (vLLM's behaviour).
struct ParsedToolOutput {
  std::string content;
  std::vector<ToolCallResult> calls;
};
ParsedToolOutput ParseToolOutput(ToolParser& parser, std::string_view text);

}  // namespace inferd
