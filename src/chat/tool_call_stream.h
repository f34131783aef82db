// Tool calls out of a constrained output, incrementally (docs/structured-outputs.md): when
// tool_choice is a named function the whole output is that call's arguments object; when it
// is "required" the output is a JSON array [{"name": "f", "parameters": {...}}, ...] (the
// grammar guarantees the shape; keys in that order). Push() takes the text as it streams and
// returns what the client should see next, as OpenAI's streamed tool calls arrive: a call's
// first delta carries its name, later ones pieces of its arguments.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace inferd {

struct ToolCallDelta {
  int index = 0;                    // the call's position in tool_calls
  std::optional<std::string> name;  // set on the call's first delta only
  std::string arguments;            // the next piece of the arguments' JSON text
};

// A complete call: its name and its arguments' JSON text.
struct ToolCallResult {
  std::string name, arguments;
};
// Adds deltas (in the order they came) to whole calls: a delta with a name starts call
// `index`, the others extend it.
void CollectToolCalls(const std::vector<ToolCallDelta>& deltas, std::vector<ToolCallResult>* calls);

class ToolCallStream {
 public:
  static ToolCallStream Named(std::string name);
  // An array of {"name": ..., "<args_key>": {...}} objects ("parameters" for tool_choice
  // "required"; "arguments" for the tool-call bodies of model formats such as Hermes').
  static ToolCallStream Required(std::string args_key = "parameters");
  // The same, taking the arguments under either key (Llama 3's "parameters" or "arguments").
  static ToolCallStream Required(std::string args_key, std::string alt_args_key);

  std::vector<ToolCallDelta> Push(std::string_view text);
  // Calls whose name has been seen (the named one counts from the first byte).
  int num_calls() const { return calls_; }

 private:
  ToolCallStream() = default;
  void Char(char c, std::vector<ToolCallDelta>& out);
  static void Append(std::vector<ToolCallDelta>& out, int index, std::string_view piece);

  bool named_ = false;
  std::string name_;
  std::string args_key_ = "parameters", alt_args_key_;
  int calls_ = 0;
  // "required" scanner: structure depth outside the parameters (1: the array, 2: an item),
  // the string being read at item level, and the parameters value being copied.
  int depth_ = 0;
  bool in_string_ = false, escape_ = false;
  bool expect_key_ = false;
  std::string key_, str_;
  bool in_params_ = false;
  int params_depth_ = 0;
  bool params_string_ = false, params_escape_ = false;
};

}  // namespace inferd
