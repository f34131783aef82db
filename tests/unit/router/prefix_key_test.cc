// Routing keys (router/prefix_key.h) on hostile and edge-case bodies; the common shapes are
// in balance_test.cc.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "router/prefix_key.h"

namespace inferd::router {
namespace {

using json = nlohmann::json;

// `levels` nested arrays, parsed the way the router parses bodies (no depth bound).
std::string Nested(int levels) { return std::string(levels, '[') + std::string(levels, ']'); }

TEST(PromptPrefixText, ToolsNestedPastTheJsonDepthBoundAreSkipped) {
  // dump() recurses once per level: a million levels (2 MB, well under the body limit)
  // overflowed the stack before the guard.
  const std::string deep = Nested(1'000'000);
  json body = json::parse("{\"tools\":" + deep + R"(,"messages":[{"role":"user","content":"hi"},)" +
                          R"({"role":"assistant","tool_calls":)" + deep + "}]}");
  ASSERT_TRUE(body.is_object());
  EXPECT_EQ(PromptPrefixText(body, "/v1/chat/completions", 1 << 20), "user\nhi\nassistant\n\n");
}

TEST(PromptPrefixText, ToolsWithinTheDepthBoundAreDumped) {
  json body = json::parse("{\"tools\":" + Nested(150) + R"(,"messages":[]})");
  EXPECT_EQ(PromptPrefixText(body, "/v1/chat/completions", 1 << 20), Nested(150));
}

TEST(PromptPrefixText, ValuesOfTheWrongTypeAreSkipped) {
  json body = json::parse(R"({"tools":null,"messages":[{"role":7,"content":5},{"role":"user","content":
      [{"type":"text","text":3},{"type":"text","text":"ok"},{"text":"no type"},"str",{"type":"input_audio"}]},
      {"role":"assistant","content":"x","tool_calls":{"not":"an array"}}]})");
  EXPECT_EQ(PromptPrefixText(body, "/v1/chat/completions", 1000), "\n\nuser\ntextokinput_audio\nassistant\nx\n");
}

TEST(PromptPrefixText, CutAtMaxBytesInsideAMessage) {
  json body = json::parse(R"({"messages":[{"role":"system","content":"abcdef"},{"role":"user","content":"z"}]})");
  EXPECT_EQ(PromptPrefixText(body, "/v1/chat/completions", 10), "system\nabc");
  EXPECT_EQ(PromptPrefixText(body, "/v1/chat/completions", 0), "");
  EXPECT_EQ(PromptPrefixText(json::parse(R"({"prompt":[1,2,3]})"), "/v1/completions", 3), "1 2");
}

TEST(PromptPrefixText, TokenIdPrompts) {
  // Ids past INT64_MAX print as themselves, not wrapped to negatives; non-integers are skipped.
  EXPECT_EQ(PromptPrefixText(json::parse(R"({"prompt":[18446744073709551615,-3,1.5,"x",7]})"), "/v1/completions", 100),
            "18446744073709551615 -3 7");
  EXPECT_EQ(PromptPrefixText(json::parse(R"({"prompt":[[]]})"), "/v1/completions", 100), "");
  EXPECT_EQ(PromptPrefixText(json::parse(R"({"prompt":[]})"), "/v1/completions", 100), "");
  EXPECT_EQ(PromptPrefixText(json::parse(R"({"prompt":[{"a":1}]})"), "/v1/completions", 100), "");
}

TEST(BlockHashes, SharedPrefixSharesLeadingHashes) {
  const std::string common(3 * 8, 'c');
  auto a = BlockHashes(common + "aaaaaaaa" + "tail", 8, 100);
  auto b = BlockHashes(common + "bbbbbbbb" + "tail", 8, 100);
  ASSERT_EQ(a.size(), 4u);  // "tail" is a partial block
  ASSERT_EQ(b.size(), 4u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(a[i], b[i]) << i;
  EXPECT_NE(a[3], b[3]);
  // Equal blocks at different positions hash differently (the chain names the prefix).
  EXPECT_NE(a[0], a[1]);
  EXPECT_EQ(BlockHashes(common, 8, 1), std::vector<uint64_t>{a[0]});
  EXPECT_TRUE(BlockHashes(common, 8, 0).empty());
}

}  // namespace
}  // namespace inferd::router
