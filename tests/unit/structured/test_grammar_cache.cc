// GrammarCache and GrammarState (structured/grammar_cache.h) on the embedded model's
// vocabulary: caching by constraint, the LRU bound, size limits before any compile, choice
// strings with characters that need escaping, and the mask after a grammar completes.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

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

bool Allows(const std::vector<uint32_t>& mask, int32_t t) { return (mask[t / 32] >> (t % 32)) & 1u; }

StructuredOutputsParams Regex(const std::string& r) {
  StructuredOutputsParams p;
  p.regex = r;
  return p;
}

TEST(GrammarCache, CachesByConstraintAndEvictsTheLeastRecent) {
  INFERD_REQUIRE_MODEL(path);
  auto tok = LoadTokenizer(path);
  ASSERT_NE(tok, nullptr);
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

TEST(GrammarCache, BoundsAndErrorsComeBeforeAnyCompile) {
  INFERD_REQUIRE_MODEL(path);
  auto tok = LoadTokenizer(path);
  ASSERT_NE(tok, nullptr);
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
TEST(GrammarState, ChoicesWithEscapedCharactersRunToCompletion) {
  INFERD_REQUIRE_MODEL(path);
  auto tok = LoadTokenizer(path);
  ASSERT_NE(tok, nullptr);
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

}  // namespace
}  // namespace inferd
