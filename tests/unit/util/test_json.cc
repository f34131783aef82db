// ParseJson: the bounded parser for JSON from outside (request bodies, model files).
#include "util/json.h"

#include <string>

#include <gtest/gtest.h>

namespace inferd {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

std::string Nested(int levels, const char* open = "[", const char* close = "]") {
  std::string s;
  for (int i = 0; i < levels; ++i) s += open;
  for (int i = 0; i < levels; ++i) s += close;
  return s;
}

TEST(ParseJsonTest, ParsesLikeNlohmann) {
  const std::string text = R"({"b": [1, -2, 3.5, "x", null, true, {"c": {}}], "a": 18446744073709551615})";
  ordered_json o;
  json j;
  JsonError err;
  ASSERT_TRUE(ParseJson(text, &o, &err)) << err.message;
  ASSERT_TRUE(ParseJson(text, &j, &err)) << err.message;
  EXPECT_EQ(o, ordered_json::parse(text));
  EXPECT_EQ(j, json::parse(text));
  EXPECT_EQ(o.begin().key(), "b");  // client order kept
  EXPECT_TRUE(o["a"].is_number_unsigned());
}

TEST(ParseJsonTest, DepthLimitIsExact) {
  ordered_json o;
  JsonError err;
  EXPECT_TRUE(ParseJson(Nested(kMaxJsonDepth), &o, &err)) << err.message;
  EXPECT_FALSE(ParseJson(Nested(kMaxJsonDepth + 1), &o, &err));
  EXPECT_EQ(err.message, "JSON nested deeper than 200 levels");
  EXPECT_TRUE(o.is_null());
}

TEST(ParseJsonTest, HostileDepthFailsWithoutRecursing) {
  // The attack that killed the server: ~75,000 levels in 150 KB, inside a real field.
  std::string deep;
  for (int i = 0; i < 75000; ++i) deep += "{\"a\":";
  deep += "1";
  deep += std::string(75000, '}');
  const std::string text =
      R"({"model": "m", "messages": [{"role": "user", "content": "hi", "extra": )" + deep + "}]}";
  ordered_json o;
  JsonError err;
  EXPECT_FALSE(ParseJson(text, &o, &err));
  EXPECT_EQ(err.message, "JSON nested deeper than 200 levels");
  EXPECT_EQ(err.path.rfind("messages[0].extra.a.a", 0), 0u) << err.path;
  EXPECT_NE(err.path.find("..."), std::string::npos) << "deep paths are elided";
  json j;
  EXPECT_FALSE(ParseJson(Nested(1000000), &j, &err));
}

TEST(ParseJsonTest, NumberOverflowNamesTheField) {
  ordered_json o;
  JsonError err;
  EXPECT_FALSE(ParseJson(R"({"model": "m", "temperature": 1e999})", &o, &err));
  EXPECT_EQ(err.path, "temperature");
  EXPECT_EQ(err.message, "number overflow: 1e999 is not a finite number");
  EXPECT_EQ(FormatJsonError(err), "temperature: number overflow: 1e999 is not a finite number");
  EXPECT_FALSE(ParseJson(R"({"messages": [{"role": "user"}, {"content": -1e400}]})", &o, &err));
  EXPECT_EQ(err.path, "messages[1].content");
  EXPECT_FALSE(ParseJson(R"({"logit_bias": {"5": 1}, "stop_token_ids": [1, 2, 1e309]})", &o, &err));
  EXPECT_EQ(err.path, "stop_token_ids[2]");
  EXPECT_FALSE(ParseJson("1e999", &o, &err));
  EXPECT_EQ(err.path, "");
}

TEST(ParseJsonTest, SyntaxErrorsKeepNlohmannsMessage) {
  ordered_json o;
  JsonError err;
  EXPECT_FALSE(ParseJson(R"({"a": [1, 2,]})", &o, &err));
  EXPECT_NE(err.message.find("syntax error"), std::string::npos) << err.message;
  EXPECT_EQ(err.message.find("[json.exception"), std::string::npos) << err.message;
  EXPECT_EQ(err.path, "a[2]");
  EXPECT_FALSE(ParseJson("{\"a\": \"\xff\"}", &o, &err));
  EXPECT_NE(err.message.find("UTF-8"), std::string::npos) << err.message;
  EXPECT_FALSE(ParseJson("{} x", &o, &err));
  EXPECT_FALSE(ParseJson("", &o, &err));
}

TEST(ParseJsonTest, DuplicateKeysLastWinsAtFirstPosition) {
  ordered_json o;
  json j;
  JsonError err;
  const char* text = R"({"a": 1, "b": {"x": 1}, "a": [2], "b": {"y": 2}})";
  ASSERT_TRUE(ParseJson(text, &o, &err));
  ASSERT_TRUE(ParseJson(text, &j, &err));
  EXPECT_EQ(o.dump(), R"({"a":[2],"b":{"y":2}})");
  EXPECT_EQ(j, json::parse(text));
}

TEST(ParseJsonTest, ManyKeysInOneObject) {
  // 200,000 keys: linear-search insertion would take minutes; the index makes it linear.
  std::string text = "{";
  for (int i = 0; i < 200000; ++i) text += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
  text += ",\"k7\":-1}";
  ordered_json o;
  JsonError err;
  ASSERT_TRUE(ParseJson(text, &o, &err)) << err.message;
  EXPECT_EQ(o.size(), 200000u);
  EXPECT_EQ(o["k7"], -1);
  EXPECT_EQ(o["k199999"], 199999);
}

}  // namespace
}  // namespace inferd
