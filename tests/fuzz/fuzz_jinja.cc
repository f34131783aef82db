// libFuzzer target: a chat template from an untrusted source (a model repository or the
// request's `chat_template` field) must parse and render to a result or a Status for any
// input: never crash, leak, hang or exhaust memory. The input is the template source; it
// renders against a fixed conversation (text, content parts, tool calls and results,
// numbers, nested values) with a small budget, so that one input costs milliseconds and
// any input exceeding it must fail cleanly. The input's length picks the render options
// (generation prompt, continue_final_message, tools), so mutations reach all of them
// without a header the seed templates would need.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "chat/chat_template.h"

namespace {

using Json = nlohmann::ordered_json;

const Json& Messages() {
  static const Json m = Json::parse(R"([
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello! What is 2 + 2? héllo 世界 🚀 \"q\" <tag> & 'single'"},
    {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4.", "reasoning_content": "add"},
    {"role": "user", "content": [{"type": "text", "text": "Describe this:"}, {"type": "image"},
                                 {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call00001", "type": "function",
       "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "opts": [1, 2.5, true, null]}}},
      {"id": "call00002", "type": "function", "function": {"name": "search", "arguments": "{\"query\": \"news\"}"}}]},
    {"role": "tool", "tool_call_id": "call00001", "name": "get_weather", "content": "{\"temperature\": 21}"},
    {"role": "tool", "tool_call_id": "call00002", "name": "search", "content": "No news."},
    {"role": "assistant", "content": "It is 21 °C and sunny in Paris."},
    {"role": "user", "content": "And tomorrow?"}])");
  return m;
}

const Json& Tools() {
  static const Json t = Json::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "description": "Get the weather.",
      "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "search", "description": "Search the web.",
      "parameters": {"type": "object", "properties": {"query": {"type": "string"},
        "filters": {"type": "array", "items": {"type": "string"}}}, "required": ["query"]}}}])");
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string source(reinterpret_cast<const char*>(data), size);
  auto t = inferd::ChatTemplate::Parse(source);
  if (!t.ok()) return 0;
  inferd::ChatTemplateInputs in;
  in.messages = Messages();
  const unsigned options = static_cast<unsigned>(size % 4);
  if (options & 1) in.tools = Tools();
  in.add_generation_prompt = options != 2;
  in.continue_final_message = options == 2;
  in.bos_token = "<s>";
  in.eos_token = "</s>";
  in.extra_context = {{"enable_thinking", (options & 2) != 0}, {"reasoning_effort", "high"}, {"n", 3}};
  in.now_unix_seconds = 1721995200;
  in.budget.max_steps = 200'000;
  in.budget.max_alloc_bytes = 8u << 20;
  in.budget.max_output_bytes = 1u << 20;
  auto r = (*t)->Render(in);
  if (r.ok() && r->size() > in.budget.max_output_bytes) std::abort();  // the output limit held
  return 0;
}
