// PrepareJsonSchema (structured/json_schema_prep.h): allOf merged into one schema, exact
// patterns for the formats whose XGrammar patterns accept invalid values, clear errors for
// what cannot be merged.
#include <gtest/gtest.h>

// std::regex (the independent check of the patterns) trips GCC 12's maybe-uninitialized false
// positive inside <regex> at -O1 (the sanitizer presets).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "structured/json_schema_prep.h"

namespace inferd {
namespace {

nlohmann::ordered_json Prepared(const std::string& schema) {
  auto out = structured::PrepareJsonSchema(schema);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? nlohmann::ordered_json::parse(*out) : nlohmann::ordered_json();
}

std::string Error(const std::string& schema) {
  auto out = structured::PrepareJsonSchema(schema);
  EXPECT_FALSE(out.ok()) << schema;
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  return std::string(out.status().message());
}

TEST(PrepareJsonSchema, MergesAllOfWithReferencesIntoOneSchema) {
  auto s = Prepared(R"({"$defs": {"base": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 0}},
                                           "required": ["id"]}},
      "allOf": [{"$ref": "#/$defs/base"},
                {"type": "object", "properties": {"id": {"type": "number", "maximum": 9}, "name": {"type": "string"}},
                 "required": ["name"]}]})");
  EXPECT_FALSE(s.contains("allOf"));
  EXPECT_EQ(s["type"], "object");
  EXPECT_EQ(s["required"], nlohmann::ordered_json({"id", "name"}));
  // "id" in both subschemas: merged too (integer ∩ number, both bounds).
  EXPECT_EQ(s["properties"]["id"], nlohmann::ordered_json::parse(R"({"type": "integer", "minimum": 0, "maximum": 9})"));
  EXPECT_EQ(s["properties"]["name"]["type"], "string");
  // Nested allOf, and an allOf inside a property.
  auto n = Prepared(R"({"type": "object", "properties": {"p": {"allOf": [{"allOf": [{"minLength": 2}, {"maxLength": 5}]},
                                                                             {"type": "string"}]}}})");
  EXPECT_EQ(n["properties"]["p"], nlohmann::ordered_json::parse(R"({"minLength": 2, "maxLength": 5, "type": "string"})"));
}

TEST(PrepareJsonSchema, ClosedSubschemasKeepOnlyTheirProperties) {
  auto s = Prepared(R"({"allOf": [{"properties": {"a": {}, "b": {}}, "additionalProperties": false},
                                  {"properties": {"b": {}, "c": {}}}]})");
  EXPECT_EQ(s["additionalProperties"], false);
  EXPECT_TRUE(s["properties"].contains("b"));
  EXPECT_FALSE(s["properties"].contains("c"));
  EXPECT_NE(Error(R"({"allOf": [{"properties": {"a": {}}, "additionalProperties": false},
                                {"properties": {"c": {}}, "required": ["c"]}]})").find("\"c\""), std::string::npos);
}

TEST(PrepareJsonSchema, WhatCannotBeMergedIsAnErrorNamingIt) {
  EXPECT_NE(Error(R"({"allOf": [{"pattern": "^a"}, {"pattern": "b$"}]})").find("\"pattern\""), std::string::npos);
  EXPECT_NE(Error(R"({"allOf": [{"type": "string"}, {"type": "integer"}]})").find("no common type"), std::string::npos);
  EXPECT_NE(Error(R"({"allOf": [{"enum": [1, 2]}, {"enum": [3]}]})").find("enum"), std::string::npos);
  EXPECT_NE(Error(R"({"$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}]}}, "allOf": [{"$ref": "#/$defs/a"}]})").find("loop"),
            std::string::npos);
  EXPECT_NE(Error(R"({"allOf": [{"$ref": "https://example.com/s.json"}]})").find("not a local reference"),
            std::string::npos);
  EXPECT_NE(Error(R"({"allOf": [{"$ref": "#/$defs/missing"}]})").find("points nowhere"), std::string::npos);
  EXPECT_NE(Error(R"({"allOf": [false]})").find("false"), std::string::npos);
  EXPECT_NE(Error("{\"type\": ").find("invalid JSON schema"), std::string::npos);
}

bool Matches(const nlohmann::ordered_json& schema, const std::string& value) {
  return std::regex_search(value, std::regex(schema["pattern"].get<std::string>()));
}

TEST(PrepareJsonSchema, FormatsGetExactPatterns) {
  auto s = Prepared(R"({"type": "object", "properties": {
      "ip": {"type": "string", "format": "ipv4"}, "day": {"type": "string", "format": "date"},
      "at": {"type": "string", "format": "date-time"}, "t": {"type": "string", "format": "time"},
      "host": {"type": "string", "format": "hostname"}, "mail": {"type": "string", "format": "email"},
      "mine": {"type": "string", "format": "date", "pattern": "^2024"},
      "format": {"type": "string"}, "fixed": {"const": {"format": "date"}}}})");
  const auto& p = s["properties"];
  EXPECT_FALSE(p["ip"].contains("format"));
  for (const char* ok : {"0.0.0.0", "192.168.1.10", "255.255.255.255"}) EXPECT_TRUE(Matches(p["ip"], ok)) << ok;
  for (const char* bad : {"200.01.12.153", "256.1.1.1", "1.2.3"}) EXPECT_FALSE(Matches(p["ip"], bad)) << bad;
  for (const char* ok : {"2024-02-29", "2000-02-29", "2023-12-31", "2023-04-30", "0001-01-01"}) {
    EXPECT_TRUE(Matches(p["day"], ok)) << ok;
  }
  for (const char* bad : {"2023-02-29", "1900-02-29", "2023-02-30", "2023-04-31", "2023-13-01", "0000-01-01"}) {
    EXPECT_FALSE(Matches(p["day"], bad)) << bad;
  }
  EXPECT_TRUE(Matches(p["at"], "2024-02-29T23:59:59.123+05:30"));
  EXPECT_FALSE(Matches(p["at"], "5555-02-30T12:33:56-02:33"));
  EXPECT_FALSE(Matches(p["at"], "4567-08-19T23:45:60-07:18"));  // no leap seconds
  EXPECT_FALSE(Matches(p["t"], "12:00:00.1234567891Z"));         // at most nine fractional digits
  EXPECT_TRUE(Matches(p["t"], "12:00:00Z"));
  EXPECT_TRUE(Matches(p["host"], "api.example.com"));
  EXPECT_TRUE(Matches(p["host"], "localhost"));
  EXPECT_FALSE(Matches(p["host"], "1.0.1.1.1.1.1.1.1.1"));  // more than 8 labels; numeric last label
  EXPECT_EQ(p["mail"]["format"], "email");  // XGrammar's own pattern is kept
  EXPECT_EQ(p["mine"]["pattern"], "^2024");  // a schema's pattern wins
  EXPECT_EQ(p["format"], nlohmann::ordered_json::parse(R"({"type": "string"})"));
  EXPECT_EQ(p["fixed"]["const"]["format"], "date");  // values are not schemas
}

// XGrammar drops minLength/maxLength beside a pattern or format: a repeated character class
// takes them into its repetition, anything else is an error instead of a bound ignored.
TEST(PrepareJsonSchema, LengthBoundsBesideAPatternAreKeptOrRefused) {
  auto s = Prepared(R"({"type": "object", "properties": {
      "slug": {"type": "string", "pattern": "^[a-z0-9-]+$", "maxLength": 30},
      "pin": {"type": "string", "pattern": "\\d{2,8}", "minLength": 4},
      "esc": {"type": "string", "pattern": "^[\\]a]*$", "minLength": 1, "maxLength": 3},
      "any": {"type": "string", "pattern": "^.+$", "minLength": 2},
      "plain": {"type": "string", "maxLength": 9}}})");
  const auto& p = s["properties"];
  EXPECT_EQ(p["slug"], nlohmann::ordered_json::parse(R"({"type": "string", "pattern": "^[a-z0-9-]{1,30}$"})"));
  EXPECT_EQ(p["pin"]["pattern"], "^\\d{4,8}$");
  EXPECT_EQ(p["esc"]["pattern"], "^[\\]a]{1,3}$");
  EXPECT_EQ(p["any"]["pattern"], "^.{2,}$");
  EXPECT_EQ(p["plain"]["maxLength"], 9);
  EXPECT_TRUE(Matches(p["slug"], std::string(30, 'a')));
  EXPECT_FALSE(Matches(p["slug"], std::string(31, 'a')));
  EXPECT_NE(Error(R"({"type": "string", "pattern": "^[a-z]+@x$", "maxLength": 5})").find("not supported"),
            std::string::npos);
  EXPECT_NE(Error(R"({"type": "string", "format": "email", "maxLength": 254})").find("format \"email\""),
            std::string::npos);
  EXPECT_NE(Error(R"({"type": "string", "pattern": "^[a]{5}$", "maxLength": 3})").find("allows no string"),
            std::string::npos);
  // Bounds that every string of a format meets are implied: an IPv4 address is 7 to 15
  // characters, a date 10; tighter ones cannot be enforced beside the pattern.
  auto f = Prepared(R"({"type": "string", "format": "ipv4", "minLength": 7, "maxLength": 15})");
  EXPECT_FALSE(f.contains("maxLength") || f.contains("minLength") || f.contains("format"));
  EXPECT_NE(Error(R"({"type": "string", "format": "ipv4", "maxLength": 11})").find("not supported"), std::string::npos);
  EXPECT_FALSE(Prepared(R"({"type": "string", "format": "date", "maxLength": 10})").contains("maxLength"));
  // However the bounds are spelled (found by fuzz_json_schema: -0 once kept, then dropped).
  auto g = Prepared(R"({"type": "string", "format": "date", "minLength": -0, "maxLength": 10.0})");
  EXPECT_FALSE(g.contains("minLength") || g.contains("maxLength"));
  EXPECT_EQ(Prepared(R"({"type": "string", "pattern": "^a+$", "maxLength": 3.0})")["pattern"], "^a{1,3}$");
}

}  // namespace
}  // namespace inferd
