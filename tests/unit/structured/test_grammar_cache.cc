// GrammarCache and GrammarState (structured/grammar_cache.h) on the embedded model's
// vocabulary: caching by constraint, the LRU bound, size limits before any compile, choice
// strings with characters that need escaping, and the mask after a grammar completes.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "format/gguf.h"
#include "model_test_util.h"
#include "structured/grammar_cache.h"

namespace inferd {
namespace {

std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& path) {
  auto gguf = GgufFile::Open(path);
  if (!gguf.ok()) return nullptr;
  auto tok = Tokenizer::FromGguf(**gguf);
  return tok.ok() ? std::move(*tok) : nullptr;
}

// The embedded model's tokenizer, loaded for each test (skipped without the model).
class OnEmbeddedVocab : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string path = ::inferd::testing::EmbeddedModelPath();
    if (path.empty()) GTEST_SKIP() << "embedded model missing: run scripts/fetch-model.sh or set INFERD_MODEL";
    tok = LoadTokenizer(path);
    ASSERT_NE(tok, nullptr);
  }
  std::unique_ptr<Tokenizer> tok;
};
using GrammarCacheTest = OnEmbeddedVocab;
using GrammarStateTest = OnEmbeddedVocab;

bool Allows(const std::vector<uint32_t>& mask, int32_t t) { return (mask[t / 32] >> (t % 32)) & 1u; }

StructuredOutputsParams Regex(const std::string& r) {
  StructuredOutputsParams p;
  p.regex = r;
  return p;
}

TEST_F(GrammarCacheTest, CachesByConstraintAndEvictsTheLeastRecent) {
  structured::GrammarCache cache(*tok, /*max_entries=*/2);
  auto a = cache.Get(Regex("a+"));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto a2 = cache.Get(Regex("a+"));
  ASSERT_TRUE(a2.ok());
  EXPECT_EQ(a->get(), a2->get());  // one compile
  StructuredOutputsParams json;
  json.json = R"({"type": "object"})";
  auto j1 = cache.Get(json);
  json.disable_any_whitespace = true;
  auto j2 = cache.Get(json);
  ASSERT_TRUE(j1.ok() && j2.ok());
  EXPECT_NE(j1->get(), j2->get());  // the whitespace option is part of the key
  EXPECT_EQ(cache.size(), 2u);      // "a+" was the least recent: evicted
  auto a3 = cache.Get(Regex("a+"));
  ASSERT_TRUE(a3.ok());
  EXPECT_NE(a3->get(), a->get());
}

TEST_F(GrammarCacheTest, BoundsAndErrorsComeBeforeAnyCompile) {
  structured::GrammarCache cache(*tok);
  auto big = cache.Get(Regex(std::string(structured::kMaxSpecBytes + 1, 'a')));
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("the limit is"), std::string::npos);
  StructuredOutputsParams many;
  many.choice = std::vector<std::string>(structured::kMaxChoices + 1, "x");
  EXPECT_EQ(cache.Get(many).status().code(), StatusCode::kInvalidArgument);
  StructuredOutputsParams none;
  EXPECT_EQ(cache.Get(none).status().code(), StatusCode::kInvalidArgument);
  auto bad = cache.Get(Regex("[z-a]"));
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message().find('['), std::string::npos) << "log prefix left in: " << bad.status().message();
  EXPECT_EQ(cache.size(), 0u);
}

// Each choice (quotes, backslashes, a newline) is accepted token by token to completion; a
// completed grammar allows only the stop tokens.
TEST_F(GrammarStateTest, ChoicesWithEscapedCharactersRunToCompletion) {
  structured::GrammarCache cache(*tok);
  StructuredOutputsParams p;
  p.choice = std::vector<std::string>{"say \"hi\"", R"(C:\path)", "two\nlines", "plain"};
  auto g = cache.Get(p);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  for (const std::string& c : *p.choice) {
    structured::GrammarState st(*g);
    for (int32_t id : tok->Encode(c, false, false)) {
      ASSERT_TRUE(Allows(st.NextMask(), id)) << c;
      ASSERT_TRUE(st.Accept(id)) << c;
    }
    const std::vector<uint32_t>& end = st.NextMask();
    int allowed = 0;
    for (int32_t t = 0; t < tok->vocab_size(); ++t) allowed += Allows(end, t);
    EXPECT_EQ(allowed, static_cast<int>(tok->eog_ids().size())) << c;
    EXPECT_TRUE(Allows(end, tok->eos_id()));
    EXPECT_TRUE(st.Accept(tok->eos_id()));
    EXPECT_TRUE(st.terminated());
  }
  structured::GrammarState st(*g);
  EXPECT_FALSE(st.Accept(tok->Encode("other", false, false)[0]));
}


// Text a grammar accepts; false (state unchanged) otherwise.
bool AcceptText(structured::GrammarState& st, const Tokenizer& tok, const std::string& text) {
  for (int32_t id : tok.Encode(text, false, false)) {
    if (!Allows(st.NextMask(), id) || !st.Accept(id)) return false;
  }
  return true;
}

// The completion of a half-written document is accepted and leaves only stop tokens; loops
// in the grammar (a repeated group, an unbounded integer, array items, a pattern) end.
TEST_F(GrammarStateTest, ShortestCompletionFinishesHalfWrittenDocuments) {
  structured::GrammarCache cache(*tok);
  StructuredOutputsParams json;
  json.json = R"({"type": "object", "properties": {
      "n": {"type": "integer"}, "mail": {"type": "string", "pattern": "^[a-z]+@[a-z]+\\.(com|org)$"},
      "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "minItems": 2},
      "child": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}},
    "required": ["n", "mail", "tags", "child"], "additionalProperties": false})";
  struct Case {
    const StructuredOutputsParams* params;
    std::string prefix;
  };
  StructuredOutputsParams email;
  email.json = R"({"type": "object", "properties": {"to": {"type": "array", "items": {"type": "string", "format": "email"}, "minItems": 1}}, "required": ["to"]})";
  StructuredOutputsParams loop = Regex("(ab|cd)*e"), digits = Regex("[0-9]+(px|em)");
  const std::vector<Case> cases = {
      {&email, ""}, {&json, ""}, {&json, R"({"n": 1234567)"}, {&json, R"({"n": 1, "mail": "abc)"},
      {&json, R"({"n": 1, "mail": "a@b.com", "tags": ["x")"}, {&json, R"({"n": 1, "mail": "a@b.org", "tags": ["x", "y", "x"], "child": {)"},
      {&loop, "abcdab"}, {&digits, "123"}};
  for (const Case& c : cases) {
    auto g = cache.Get(*c.params);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    structured::GrammarState st(*g, c.params->json ? &cache.json_text_mask() : nullptr);
    ASSERT_TRUE(AcceptText(st, *tok, c.prefix)) << c.prefix;
    std::optional<std::string> done = st.ShortestCompletion(512);
    ASSERT_TRUE(done.has_value()) << c.prefix;
    EXPECT_LE(done->size(), 64u) << c.prefix << " + " << *done;
    // Unchanged by the search: the same completion again, then accepted token by token.
    EXPECT_EQ(st.ShortestCompletion(512), done);
    ASSERT_TRUE(AcceptText(st, *tok, *done)) << c.prefix << " + " << *done;
    EXPECT_TRUE(Allows(st.NextMask(), tok->eos_id())) << c.prefix << " + " << *done;
    EXPECT_TRUE(st.Accept(tok->eos_id()));
    if (c.params == &json) {
      auto doc = nlohmann::json::parse(c.prefix + *done);
      EXPECT_TRUE(doc["n"].is_number_integer());
      const std::string mail = doc["mail"].get<std::string>();  // [a-z]+@[a-z]+\.(com|org)
      const size_t at = mail.find('@'), dot = mail.rfind('.');
      EXPECT_TRUE(at > 0 && at != std::string::npos && dot > at + 1 &&
                  mail.find_first_not_of("abcdefghijklmnopqrstuvwxyz@.") == std::string::npos &&
                  (mail.substr(dot) == ".com" || mail.substr(dot) == ".org"))
          << mail;
      EXPECT_GE(doc["tags"].size(), 2u);
      EXPECT_TRUE(doc["child"]["ok"].is_boolean());
    }
  }
}

// The search is bounded in characters tried, not only in bytes: a grammar that needs the last
// candidates at every position (here "Y" or "Z", tried after about 85 others; a choice, so no
// jump-forward text) gives up past kMaxAttempts.
TEST_F(GrammarStateTest, ShortestCompletionGivesUpAfterBoundedWork) {
  structured::GrammarCache cache(*tok);
  auto small = cache.Get(Regex("[YZ]{100}"));
  auto big = cache.Get(Regex("[YZ]{3000}"));
  ASSERT_TRUE(small.ok() && big.ok());
  structured::GrammarState a(*small), b(*big);
  std::optional<std::string> done = a.ShortestCompletion(4096);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->size(), 100u);
  EXPECT_EQ(b.ShortestCompletion(4096), std::nullopt);  // 3000 x ~86 tries > kMaxAttempts
}

// What a scripted "model" generated under FinishWithin (RunScriptedModel).
struct ScriptedRun {
  std::string text;  // the pieces before the stop token
  int64_t used = 0;  // positions, the stop token included
  bool stopped = false;
};

// Generates up to max_tokens positions, calling FinishWithin before each as the engine does;
// each position takes the first token of `prefer` the mask allows, else the first allowed one.
void RunScriptedModel(structured::GrammarState& st, const Tokenizer& tok, int64_t max_tokens,
                      std::initializer_list<int32_t> prefer, ScriptedRun* run) {
  while (run->used < max_tokens && !run->stopped) {
    st.FinishWithin(max_tokens - run->used, tok);
    const std::vector<uint32_t>& m = st.NextMask();
    int32_t pick = -1;
    for (int32_t t : prefer) {
      if (pick < 0 && Allows(m, t)) pick = t;
    }
    for (int32_t t = 0; t < tok.vocab_size() && pick < 0; ++t) {
      if (Allows(m, t)) pick = t;
    }
    ASSERT_GE(pick, 0);
    ASSERT_TRUE(st.Accept(pick));
    ++run->used;
    run->stopped = tok.IsEog(pick);
    if (!run->stopped) run->text += tok.TokenToPiece(pick, false);
  }
}

// A "model" that always continues a value (the digit 7 while an integer may grow) never ends
// the document by itself; with FinishWithin the output is complete, valid and ends with a stop
// token exactly when the budget allows.
TEST_F(GrammarStateTest, FinishWithinForcesTheCompletionBeforeTheBudgetRunsOut) {
  structured::GrammarCache cache(*tok);
  StructuredOutputsParams json;
  json.json = R"({"type": "object", "properties": {"id": {"type": "integer"},
      "rest": {"type": "array", "items": {"type": "integer"}, "minItems": 1}}, "required": ["id", "rest"]})";
  json.disable_any_whitespace = true;
  auto g = cache.Get(json);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const int32_t seven = tok->Encode("7", false, false).at(0);
  for (int64_t max_tokens : {40, 57, 100}) {
    structured::GrammarState st(*g, &cache.json_text_mask());
    ScriptedRun run;  // the digit if allowed, else the first allowed token
    ASSERT_NO_FATAL_FAILURE(RunScriptedModel(st, *tok, max_tokens, {seven}, &run));
    const std::string& text = run.text;
    const int64_t used = run.used;
    EXPECT_TRUE(run.stopped) << max_tokens << ": " << text;
    EXPECT_TRUE(st.terminated());
    EXPECT_TRUE(st.closing());
    auto doc = nlohmann::json::parse(text);  // throws (fails) if incomplete
    // {"id": 7...7, ...: the digits are past int64, so not is_number_integer.
    EXPECT_EQ(text.rfind(R"({"id": 7)", 0), 0u) << text;
    EXPECT_EQ(text.find_first_not_of('7', 7), text.find(',')) << text;
    EXPECT_GE(doc["rest"].size(), 1u) << text;
    // The budget went to the model's digits but for the completion's few tokens: closing
    // starts `need` + `need` + kCloseMargin before the end and spends `need`, where the
    // completion (`, "rest": [0]}` and a stop token) is at most 8 tokens.
    EXPECT_GE(used, max_tokens - 8 - structured::GrammarState::kCloseMargin) << text;
  }
}

// A "model" that fills an array of objects item after item (a letter while a string may
// grow, else "," to start another item): the completion is a few tokens at the end of each
// item's last string, and a whole item (about 50 tokens) once the next one is opened ("{"
// preferred to anything else, so the array is never left empty). The budget is re-estimated
// at the item's closing quote and brace, so no budget leaves the output cut off inside a new
// item.
TEST_F(GrammarStateTest, FinishWithinAnticipatesTheNextArrayItem) {
  structured::GrammarCache cache(*tok);
  StructuredOutputsParams json;
  json.json = R"({"type": "array", "maxItems": 40, "items": {"type": "object", "additionalProperties": false,
      "properties": {"a": {"type": "string", "pattern": "^[A-Z]{20}$"}, "b": {"type": "string", "pattern": "^[A-Z]{20}$"}},
      "required": ["a", "b"]}})";
  json.disable_any_whitespace = true;
  auto g = cache.Get(json);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const int32_t letter = tok->Encode("A", false, false).at(0);
  const int32_t comma = tok->Encode(",", false, false).at(0);
  const int32_t brace = tok->Encode("{", false, false).at(0);
  for (int64_t max_tokens = 60; max_tokens <= 180; max_tokens += 3) {
    structured::GrammarState st(*g, &cache.json_text_mask());
    ScriptedRun run;
    ASSERT_NO_FATAL_FAILURE(RunScriptedModel(st, *tok, max_tokens, {letter, comma, brace}, &run));
    ASSERT_TRUE(run.stopped) << max_tokens << ": " << run.text;
    auto doc = nlohmann::json::parse(run.text);  // throws (fails) if incomplete
    EXPECT_GE(doc.size(), 1u) << run.text;
  }
}

// Schemas go through PrepareJsonSchema: XGrammar enforces the exact format patterns, and a
// merged allOf requires the properties of every subschema.
TEST_F(GrammarCacheTest, CompilesPreparedSchemas) {
  structured::GrammarCache cache(*tok);
  auto accepts = [&](const std::string& schema, const std::string& text) {
    StructuredOutputsParams p;
    p.json = schema;
    auto g = cache.Get(p);
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    if (!g.ok()) return false;
    structured::GrammarState st(*g, &cache.json_text_mask());
    return AcceptText(st, *tok, text) && Allows(st.NextMask(), tok->eos_id());
  };
  const std::string at = R"({"type": "string", "format": "date-time"})";
  EXPECT_TRUE(accepts(at, R"("2024-02-29T23:59:59.5Z")"));
  EXPECT_TRUE(accepts(at, R"("2023-04-15T23:06:47-15:23")"));
  EXPECT_FALSE(accepts(at, R"("2023-02-29T23:59:59Z")"));
  EXPECT_FALSE(accepts(at, R"("0123-04-15T23:06:4789-15:23")"));
  EXPECT_FALSE(accepts(at, R"("2023-04-15T23:06:47.Z")"));
  EXPECT_TRUE(accepts(at, R"("2023-04-15T23:06:47.123456789Z")"));
  EXPECT_FALSE(accepts(at, R"("2023-04-15T23:06:47.1234567890Z")"));
  const std::string host = R"({"type": "string", "format": "hostname"})";
  EXPECT_TRUE(accepts(host, R"("api.example-1.com")"));
  EXPECT_FALSE(accepts(host, R"("api.-example.com")"));
  EXPECT_FALSE(accepts(host, R"("api.example-.com")"));
  EXPECT_FALSE(accepts(host, R"("a.b.c.d.e.f.g.h.i")"));
  const std::string ip = R"({"type": "string", "format": "ipv4"})";
  EXPECT_TRUE(accepts(ip, R"("10.0.0.1")"));
  EXPECT_FALSE(accepts(ip, R"("10.00.0.1")"));
  const std::string both = R"({"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                                         {"properties": {"b": {"type": "boolean"}}, "required": ["b"]}]})";
  EXPECT_TRUE(accepts(both, R"({"a": 1, "b": true})"));
  EXPECT_FALSE(accepts(both, R"({"a": 1})"));
  StructuredOutputsParams bad;
  bad.json = R"({"allOf": [{"type": "string"}, {"type": "integer"}]})";
  auto err = cache.Get(bad);
  EXPECT_EQ(err.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(err.status().message().find("structured_outputs.json: allOf"), std::string::npos) << err.status().message();
}

}  // namespace
}  // namespace inferd
