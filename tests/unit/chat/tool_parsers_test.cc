// The tool-call parsers other than Hermes (llama3_json, mistral, pythonic, qwen3_xml, openai)
// on outputs written in each model family's own format: parsed whole, and streamed split at
// every point and in random pieces, they give the same content and calls; malformed bodies
// leave the text as content.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "chat/tool_parser.h"

namespace inferd {
namespace {

using ojson = nlohmann::ordered_json;

struct Call {
  std::string name, arguments;
};

ParsedToolOutput Whole(const std::string& parser, const std::string& text, const ojson& tools = nullptr) {
  auto p = MakeToolParser(parser, tools);
  EXPECT_NE(p, nullptr) << parser;
  return ParseToolOutput(*p, text);
}

// The text in pieces ending at `cuts`.
ParsedToolOutput Streamed(const std::string& parser, const std::string& text, const std::vector<size_t>& cuts,
                          const ojson& tools = nullptr) {
  auto p = MakeToolParser(parser, tools);
  ParsedToolOutput out;
  auto take = [&](const ToolParse& t) {
    out.content += t.content;
    CollectToolCalls(t.calls, &out.calls);
  };
  size_t from = 0;
  for (size_t cut : cuts) {
    take(p->Push(std::string_view(text).substr(from, cut - from)));
    from = cut;
  }
  take(p->Push(std::string_view(text).substr(from)));
  take(p->Finish());
  EXPECT_EQ(p->num_calls(), static_cast<int>(out.calls.size()));
  return out;
}

void ExpectSame(const ParsedToolOutput& got, const std::string& content, const std::vector<Call>& calls,
                const std::string& where) {
  EXPECT_EQ(got.content, content) << where;
  ASSERT_EQ(got.calls.size(), calls.size()) << where;
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(got.calls[i].name, calls[i].name) << where << " call " << i;
    EXPECT_EQ(got.calls[i].arguments, calls[i].arguments) << where << " call " << i;
  }
}

// Whole, then streamed: in two pieces at every split point, one byte at a time, and in random
// pieces; all give `content` and `calls`.
void ExpectParses(const std::string& parser, const std::string& text, const std::string& content,
                  const std::vector<Call>& calls, const ojson& tools = nullptr) {
  ExpectSame(Whole(parser, text, tools), content, calls, parser + " whole");
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    ExpectSame(Streamed(parser, text, {cut}, tools), content, calls, parser + " split at " + std::to_string(cut));
  }
  std::vector<size_t> bytes;
  for (size_t i = 1; i < text.size(); ++i) bytes.push_back(i);
  ExpectSame(Streamed(parser, text, bytes, tools), content, calls, parser + " bytewise");
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    std::vector<size_t> cuts;
    for (size_t at = rng() % 9; at < text.size(); at += 1 + rng() % 9) cuts.push_back(at);
    ExpectSame(Streamed(parser, text, cuts, tools), content, calls, parser + " random " + std::to_string(round));
  }
}

void ExpectContent(const std::string& parser, const std::string& text, const ojson& tools = nullptr) {
  const ParsedToolOutput r = Whole(parser, text, tools);
  EXPECT_EQ(r.content, text) << parser;
  EXPECT_TRUE(r.calls.empty()) << parser << ": " << text;
}

// ---- llama3_json -----------------------------------------------------------------------------

TEST(Llama3JsonToolParser, CallsAfterThePythonTag) {
  const std::string text =
      "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"São Paulo\", \"unit\": \"celsius\"}}; "
      "{\"name\": \"web_search\", \"arguments\": {\"query\": \"caf\\u00e9 \\\"best\\\" {x}; y\", \"filters\": "
      "{\"tags\": [\"a\", \"b\"], \"limit\": 5}}}";
  ExpectParses("llama3_json", text, "",
               {{"get_weather", R"({"city": "São Paulo", "unit": "celsius"})"},
                {"web_search", R"({"query": "caf\u00e9 \"best\" {x}; y", "filters": {"tags": ["a", "b"], "limit": 5}})"}});
  ExpectParses("llama3_json", "{\"name\": \"get_time\", \"parameters\": {}}", "", {{"get_time", "{}"}});
}

TEST(Llama3JsonToolParser, OtherOutputIsContent) {
  const std::string plain = "It is sunny in {Paris} today.";
  ExpectParses("llama3_json", plain, plain, {});
  ExpectParses("llama3_json", "<|python", "<|python", {});
  ExpectContent("llama3_json", " {\"name\": \"f\", \"parameters\": {}}");  // must start the output
  ExpectContent("llama3_json", "{\"name\": \"f\", \"parameters\": {\"a\": 1}}; {\"name\": }");
  ExpectContent("llama3_json", "{\"name\": \"f\"}");                      // no parameters
  ExpectContent("llama3_json", "{\"name\": \"f\", \"parameters\": [1]}");  // not an object
  ExpectContent("llama3_json", "{\"name\": \"f\", \"parameters\": {}} and then some words");
  ExpectContent("llama3_json", "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"a\": ");
  EXPECT_FALSE(MakeToolParser("llama3_json")->keeps_special_tokens());
}

// ---- mistral ---------------------------------------------------------------------------------

TEST(MistralToolParser, ArrayForm) {
  const std::string text =
      "Sure, let me check.[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Zürich\", "
      "\"unit\": \"celsius\"}}, {\"name\": \"get_time\", \"arguments\": {\"tz\": \"Europe/Zurich\", \"fmt\": "
      "\"[HH:mm] {24h} \\\"x\\\"\"}}]";
  ExpectParses("mistral", text, "Sure, let me check.",
               {{"get_weather", R"({"city": "Zürich", "unit": "celsius"})"},
                {"get_time", R"({"tz": "Europe/Zurich", "fmt": "[HH:mm] {24h} \"x\""})"}});
}

TEST(MistralToolParser, NameArgsForm) {
  const std::string text =
      "I'll look these up.\n[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\", \"days\": [1, 2], \"opts\": "
      "{\"metric\": true}}[TOOL_CALLS]get_time[ARGS]{\"tz\": \"Europe/Paris\", \"note\": \"a } in \\\"quotes\\\"\"}";
  ExpectParses("mistral", text, "I'll look these up.\n",
               {{"get_weather", R"({"city": "Paris", "days": [1, 2], "opts": {"metric": true}})"},
                {"get_time", R"({"tz": "Europe/Paris", "note": "a } in \"quotes\""})"}});
  ExpectParses("mistral", "[TOOL_CALLS]add{\"a\": 3.5, \"b\": 4}", "", {{"add", R"({"a": 3.5, "b": 4})"}});
}

TEST(MistralToolParser, MalformedIsContentAndIdsAreMistrals) {
  ExpectParses("mistral", "No tools [TOOL here.", "No tools [TOOL here.", {});
  ExpectContent("mistral", "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": 1}");
  ExpectContent("mistral", "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": \"a\"}]");
  ExpectContent("mistral", "Hi[TOOL_CALLS]get_weather[ARGS]{\"city\": Paris}");
  ExpectContent("mistral", "[TOOL_CALLS]get weather[ARGS]{}");
  ExpectContent("mistral", "[TOOL_CALLS]");
  auto p = MakeToolParser("mistral");
  EXPECT_TRUE(p->keeps_special_tokens());
  EXPECT_EQ(p->id_kind(), ToolParser::IdKind::kMistral);
  EXPECT_EQ(MakeToolParser("hermes")->id_kind(), ToolParser::IdKind::kRandomHex);
}

// ---- pythonic --------------------------------------------------------------------------------

TEST(PythonicToolParser, LiteralsBecomeJson) {
  const std::string text =
      "[get_weather(city='San Francisco', metric=True, days=3), search(query=\"it's \\\"quoted\\\"\\n\", "
      "tags=['a', \"b\",], opts={'limit': 10, 'ratio': 0.5, 'x': None, 1: [False]}, neg=-2, sci=1e3, "
      "big=1_000, esc='\\u00e9\\x41\\t', raw='''tri'ple'''),\n get_time()]";
  ExpectParses("pythonic", text, "",
               {{"get_weather", R"({"city": "San Francisco", "metric": true, "days": 3})"},
                {"search", R"({"query": "it's \"quoted\"\n", "tags": ["a", "b"], "opts": {"limit": 10, "ratio": 0.5, )"
                           R"("x": null, "1": [false]}, "neg": -2, "sci": 1000.0, "big": 1000, "esc": "éA\t", )"
                           R"("raw": "tri'ple"})"},
                {"get_time", "{}"}});
}

TEST(PythonicToolParser, Llama4Wrapper) {
  ExpectParses("pythonic", "<|python_start|>[get_weather(city=\"東京\", days=2)]<|python_end|>", "",
               {{"get_weather", R"({"city": "東京", "days": 2})"}});
}

TEST(PythonicToolParser, AnythingButLiteralsIsContent) {
  ExpectParses("pythonic", "I can't call tools: [f(a=1)] is how.", "I can't call tools: [f(a=1)] is how.", {});
  for (const char* text : {"[f(a=1+2)]", "[f(a=b)]", "[f(1)]", "[f(a=1, a=2)]", "[os.system('ls')]",
                           "[f(a={1, 2})]", "[f(a=(1, 2))]", "[f(a=1)] trailing", "[f(a='x')", "[f(a=__import__('os'))]",
                           "[f(a=f'{x}')]", "[f(a=1) g(b=2)]", "[f(a=007)]"}) {
    ExpectContent("pythonic", text);
  }
}

TEST(PythonicToolParser, NestingDepthIsBounded) {
  auto nested = [](int depth) { return "[f(a=" + std::string(depth, '[') + std::string(depth, ']') + ")]"; };
  const ParsedToolOutput ok = Whole("pythonic", nested(64));
  ASSERT_EQ(ok.calls.size(), 1u);
  EXPECT_EQ(ok.calls[0].arguments, "{\"a\": " + std::string(64, '[') + std::string(64, ']') + "}");
  ExpectContent("pythonic", nested(100));
  ExpectContent("pythonic", nested(100000));  // no stack overflow
}

// ---- qwen3_xml -------------------------------------------------------------------------------

const ojson kQwenTools = ojson::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
    "city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"},
    "ratio": {"type": "number"}, "whole": {"type": "number"}, "tags": {"type": "array"},
    "opts": {"type": "object"}, "note": {"description": "no type"}, "count": {"type": "integer"},
    "code": {"type": "string"}, "maybe": {"type": "custom"}}}}},
  {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {
    "tz": {"type": "string"}}}}}])");

TEST(Qwen3XmlToolParser, ValuesAreTypedByTheSchema) {
  const std::string text =
      "I'll check.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nNew York\n</parameter>\n"
      "<parameter=days>\n3\n</parameter>\n<parameter=metric>\nTrue\n</parameter>\n<parameter=ratio>\n2.50\n"
      "</parameter>\n<parameter=whole>\n4.0\n</parameter>\n<parameter=tags>\n[\"a\",\"b\"]\n</parameter>\n"
      "<parameter=opts>\n{'k': 1, 'n': None}\n</parameter>\n<parameter=note>\nnull\n</parameter>\n"
      "<parameter=count>\nmany\n</parameter>\n<parameter=code>\nif a < b:\n    print(\"x\\n\")\n</parameter>\n"
      "<parameter=maybe>\n[1, 2]\n</parameter>\n<parameter=unknown>\n42\n</parameter>\n</function>\n</tool_call>\n"
      "<tool_call>\n<function=get_time>\n<parameter=tz>\nAsia/Tokyo\n</parameter>\n</function>\n</tool_call>";
  ExpectParses("qwen3_xml", text, "I'll check.\n\n",
               {{"get_weather", R"({"city": "New York", "days": 3, "metric": true, "ratio": 2.5, "whole": 4, )"
                                R"("tags": ["a", "b"], "opts": {"k": 1, "n": null}, "note": null, "count": "many", )"
                                R"j("code": "if a < b:\n    print(\"x\\n\")", "maybe": [1, 2], "unknown": "42"})j"},
                {"get_time", R"({"tz": "Asia/Tokyo"})"}},
               kQwenTools);
}

TEST(Qwen3XmlToolParser, WithoutToolsEverythingIsAString) {
  const std::string text = "<tool_call>\n<function=lookup>\n<parameter=id>\n7\n</parameter>\n<parameter=flag>\ntrue\n"
                           "</function>\n</tool_call>";
  ExpectParses("qwen3_xml", text, "", {{"lookup", R"({"id": "7", "flag": "true"})"}});
  ExpectParses("qwen3_xml", "Plain <b>text</b> <tool", "Plain <b>text</b> <tool", {});
  ExpectContent("qwen3_xml", "<tool_call>\n<function=f\n</tool_call>");
  ExpectContent("qwen3_xml", "<tool_call>\n<function=f>\n<parameter=a\n");
  EXPECT_TRUE(MakeToolParser("qwen3_xml")->keeps_special_tokens());
}

// ---- openai (harmony) ------------------------------------------------------------------------

TEST(HarmonyToolParser, CommentaryToFunctionsIsACall) {
  const std::string text =
      "<|channel|>analysis<|message|>User wants the weather and time. Call both.<|end|><|start|>assistant"
      "<|channel|>commentary<|message|>Checking two things…<|end|><|start|>assistant<|channel|>commentary "
      "to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Köln\", \"unit\": \"celsius\"}<|call|>"
      "<|start|>assistant to=functions.get_time<|channel|>commentary json<|message|>{\"tz\": \"Europe/Berlin\"}"
      "<|call|>";
  ExpectParses("openai", text, "Checking two things…",
               {{"get_weather", R"({"city": "Köln", "unit": "celsius"})"}, {"get_time", R"({"tz": "Europe/Berlin"})"}});
}

TEST(HarmonyToolParser, FinalIsContentAndAnalysisIsDropped) {
  ExpectParses("openai",
               "<|channel|>analysis<|message|>Just greet.<|end|><|start|>assistant<|channel|>final<|message|>Hello "
               "<there>!<|return|>",
               "Hello <there>!", {});
  ExpectParses("openai", "Just text, no framing <|x|>.", "Just text, no framing <|x|>.", {});
  // A built-in tool (not functions.*) is not a function call.
  ExpectParses("openai", "<|channel|>analysis to=browser.search<|message|>{\"q\": 1}<|call|>", "", {});
  // A body that is not JSON stays the call's arguments, as written (vLLM).
  ExpectParses("openai", "<|channel|>commentary to=functions.run<|message|>ls -la<|call|>", "", {{"run", "ls -la"}});
  EXPECT_TRUE(MakeToolParser("openai")->keeps_special_tokens());
}

TEST(ToolParsers, AllNamesAreMade) {
  EXPECT_EQ(ToolParserNames().size(), 6u);
  for (const std::string& name : ToolParserNames()) EXPECT_NE(MakeToolParser(name), nullptr) << name;
}

}  // namespace
}  // namespace inferd
