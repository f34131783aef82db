// Tool parsers on recorded model outputs (Hermes / Qwen format): whole and streamed in pieces
// give the same content and calls; a malformed body leaves everything as content.
#include "chat/tool_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace inferd {
namespace {

// Qwen2.5-7B-Instruct's output for "weather in Paris and Tokyo?" with two tools (the format its
// chat template asks for), with a lead-in sentence.
const std::string kTwoCalls =
    "Let me check both.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", "
    "\"unit\": \"celsius\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": "
    "\"Asia/Tokyo\", \"note\": \"a </b> {tag}\"}}\n</tool_call>";

ParsedToolOutput Streamed(const std::string& text, size_t piece) {
  auto p = MakeToolParser("hermes");
  ParsedToolOutput out;
  auto take = [&](const ToolParse& t) {
    out.content += t.content;
    CollectToolCalls(t.calls, &out.calls);
  };
  for (size_t i = 0; i < text.size(); i += piece) take(p->Push(std::string_view(text).substr(i, piece)));
  take(p->Finish());
  return out;
}

TEST(HermesToolParser, WholeAndStreamedAgree) {
  auto p = MakeToolParser("hermes");
  ASSERT_NE(p, nullptr);
  const ParsedToolOutput whole = ParseToolOutput(*p, kTwoCalls);
  EXPECT_EQ(whole.content, "Let me check both.\n\n");
  ASSERT_EQ(whole.calls.size(), 2u);
  EXPECT_EQ(whole.calls[0].name, "get_weather");
  EXPECT_EQ(whole.calls[0].arguments, R"({"city": "Paris", "unit": "celsius"})");
  EXPECT_EQ(whole.calls[1].name, "get_time");
  EXPECT_EQ(whole.calls[1].arguments, R"({"tz": "Asia/Tokyo", "note": "a </b> {tag}"})");
  for (size_t piece : {size_t{1}, size_t{3}, size_t{11}}) {
    const ParsedToolOutput s = Streamed(kTwoCalls, piece);
    EXPECT_EQ(s.content, whole.content) << piece;
    ASSERT_EQ(s.calls.size(), 2u) << piece;
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(s.calls[i].name, whole.calls[i].name);
      EXPECT_EQ(s.calls[i].arguments, whole.calls[i].arguments);
    }
  }
}

TEST(HermesToolParser, PlainTextAndLookalikesStayContent) {
  for (const std::string& text : {std::string("No tools needed: 2 < 3 and <tool is fine."),
                                  std::string("ends with a partial tag <tool_ca")}) {
    auto p = MakeToolParser("hermes");
    const ParsedToolOutput whole = ParseToolOutput(*p, text);
    EXPECT_EQ(whole.content, text);
    EXPECT_TRUE(whole.calls.empty());
    EXPECT_EQ(Streamed(text, 2).content, text);
  }
  auto p = MakeToolParser("hermes");
  const std::string bad = "<tool_call>\n{\"name\": get_weather}\n</tool_call>";
  const ParsedToolOutput r = ParseToolOutput(*p, bad);
  EXPECT_EQ(r.content, bad);
  EXPECT_TRUE(r.calls.empty());
  EXPECT_EQ(MakeToolParser("no-such-parser"), nullptr);
}

}  // namespace
}  // namespace inferd
