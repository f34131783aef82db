// The fields each route accepts, and typed access to them that turns every wrong type or
// out-of-range value into a 400 naming the field. Internal to src/server.
//
// Each route has one table (request_fields.cc): a field is implemented, or listed as not
// supported (a 400 that says so and why), or unknown (a 400 naming it). vLLM logs unknown
// fields and drops them; here nothing a client sends is dropped without its knowing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/openai.h"

namespace inferd::server {

enum class RouteFields { kCompletions, kChat, kStreamOptions, kTokenizeCompletion, kTokenizeChat, kDetokenize };

// A view of one JSON object of a request, checked against its route's table on
// construction. `prefix` names nested objects in messages ("stream_options.").
class Fields {
 public:
  Fields(const ojson& obj, std::string prefix, RouteFields route);

  const ojson& body() const { return obj_; }
  // Present and not null (pydantic treats null as "unset" for optional fields).
  bool Has(const char* key) const;

  std::optional<bool> Bool(const char* key) const;
  std::optional<std::string> String(const char* key) const;
  // A JSON number that fits a float32 (temperature 1e300 would become inf).
  std::optional<float> Float(const char* key) const;
  // An integer (or an integral float such as 3.0, as pydantic accepts) within [lo, hi].
  std::optional<int64_t> Int(const char* key, int64_t lo, int64_t hi) const;

 private:
  std::string Name(const char* key) const { return prefix_ + key; }
  const ojson& obj_;
  std::string prefix_;
};

[[noreturn]] void BadType(const std::string& key, const char* want);
// Token ids in [0, vocab_size).
std::vector<int32_t> ParseTokenIds(const ojson& arr, const char* key, int64_t vocab_size);
// A prompt text of `bytes` cannot fit the context: 400 before it is tokenized.
void CheckPromptBytes(size_t bytes, const ModelInfo& model, const char* param);
// The served name the request asks for (404 for an unknown one); the first when absent.
std::string CheckModel(const Fields& f, const ModelInfo& model);
// tools / tool_choice / parallel_tool_calls (structured_request.cc):
// a named function or "required" becomes a JSON-schema constraint and r.tool_mode; "auto"
// (also tools without tool_choice) needs the server's --enable-auto-tool-choice and
// --tool-call-parser, else a 400.
void ParseToolChoice(const Fields& f, const ModelInfo& model, ParsedRequest& r);
// include_reasoning and the server's --reasoning-parser, after the chat prompt is rendered
// (structured_request.cc): where the output starts (inside the reasoning or not) and so where
// a structured-output grammar starts; include_reasoning: false without a parser is a 400.
void ParseReasoning(const Fields& f, const ModelInfo& model, ParsedRequest& r);
// response_format, structured_outputs and guided_json / guided_regex / guided_choice /
// guided_grammar into p.structured_outputs (structured_request.cc); 400 for two constraints.
void ParseStructuredOutputs(const Fields& f, SamplingParams& p);

}  // namespace inferd::server
