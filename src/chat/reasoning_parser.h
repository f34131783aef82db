// Reasoning in a model's output (vLLM's --reasoning-parser): splits generated text into the
// reasoning (message.reasoning_content) and the content, whole or as it streams, and says when
// the reasoning has ended so that structured outputs can start there.
//
// Implemented:
// - "deepseek_r1": <think>…</think>; the opening tag may be in the prompt or the output (or
//   absent: DeepSeek-R1 starts thinking at once); everything before </think> is reasoning,
//   so an output cut before </think> is all reasoning.
// - "qwen3": the same tags, but thinking is optional: when neither the prompt nor the output
//   opens a <think>, the output is content (Qwen3 with enable_thinking=false closes the tags
//   in the prompt; with it on, the model writes <think> itself).
// - "openai": gpt-oss's harmony channels: the analysis channel is reasoning, the final
//   channel is content; commentary messages addressed to a tool (to=functions.f) are passed
//   through as content with their framing, for the "openai" tool-call parser.
// The prompt the output continues decides the starting state: the last tag in it wins (as
// vLLM's is_reasoning_end reads the prompt), so "<think>\n" at the end of a prompt means the
// output starts inside the reasoning.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace inferd {

struct ReasoningDelta {
  std::string reasoning;
  std::string content;
};

class ReasoningParser {
 public:
  virtual ~ReasoningParser() = default;
  // The prompt (or its tail) the output continues; call once, before Push.
  virtual void Start(std::string_view prompt) = 0;
  // Streaming: the next piece of output. Text that may still become a tag is held back.
  virtual ReasoningDelta Push(std::string_view text) = 0;
  // The end of the output: whatever was held back.
  virtual ReasoningDelta Finish() = 0;
  // Whether the output is in its content now (reasoning ended, or never began).
  virtual bool in_content() const = 0;
  // The text whose appearance in the output ends the reasoning (where a structured-output
  // grammar starts when the output does not start in content).
  virtual std::string_view end_marker() const = 0;
  // Whether the tags are special tokens that detokenizing must keep (harmony's).
  virtual bool keeps_special_tokens() const { return false; }
};

// The parser of that name, or nullptr for a name that is not implemented.
std::unique_ptr<ReasoningParser> MakeReasoningParser(std::string_view name);
// The implemented names, for --help and errors.
const std::vector<std::string>& ReasoningParserNames();

// A whole output through a fresh parser started on `prompt`.
ReasoningDelta SplitReasoning(ReasoningParser& parser, std::string_view prompt, std::string_view output);

}  // namespace inferd
