// XGrammar driven through inferd's tokenizer (structured/grammar_vocab.h), on the embedded
// model's real vocabulary: a JSON schema compiles, its token masks allow exactly the
// continuations of valid documents, and the tokens of a valid document are accepted to
// completion while those of an invalid one are refused.
#include <gtest/gtest.h>

#include <xgrammar/compiler.h>

#include <memory>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "model_test_util.h"
#include "structured/grammar_cache.h"
#include "structured/grammar_vocab.h"

namespace inferd {
namespace {

std::unique_ptr<Tokenizer> LoadEmbeddedTokenizer(const std::string& path) {
  auto gguf = GgufFile::Open(path);
  EXPECT_TRUE(gguf.ok()) << gguf.status().ToString();
  if (!gguf.ok()) return nullptr;
  auto tok = Tokenizer::FromGguf(**gguf);
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  return tok.ok() ? std::move(*tok) : nullptr;
}

// The allowed-token bitmask of the next step, as a bool per token.
std::vector<bool> Allowed(structured::GrammarState& m, int vocab) {
  const std::vector<uint32_t>& mask = m.NextMask();
  std::vector<bool> out(static_cast<size_t>(vocab));
  for (int i = 0; i < vocab; ++i) out[i] = (mask[i / 32] >> (i % 32)) & 1u;
  return out;
}

constexpr const char* kSchema = R"({"type": "object",
  "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
  "required": ["name", "age"], "additionalProperties": false})";

TEST(GrammarVocab, JsonSchemaMasksAndAcceptsTheEmbeddedVocabulary) {
  INFERD_REQUIRE_MODEL(path);
  auto tok = LoadEmbeddedTokenizer(path);
  ASSERT_NE(tok, nullptr);
  const xgrammar::TokenizerInfo info = structured::MakeGrammarVocab(*tok);
  ASSERT_EQ(info.GetVocabSize(), tok->vocab_size());
  xgrammar::GrammarCompiler compiler(info, /*max_threads=*/1);
  const auto g = std::make_shared<const xgrammar::CompiledGrammar>(
      compiler.CompileJSONSchema(kSchema, /*any_whitespace=*/false, std::nullopt, std::nullopt, /*strict_mode=*/true));

  // A valid document, tokenized as the model would write it, is accepted token by token and
  // leaves the matcher able to stop; the first step allows "{" and refuses a plain word.
  {
    structured::GrammarState m(g);
    const std::vector<bool> first = Allowed(m, tok->vocab_size());
    const auto brace = tok->Encode("{", false, false);
    const auto word = tok->Encode("hello", false, false);
    ASSERT_EQ(brace.size(), 1u);
    ASSERT_EQ(word.size(), 1u);
    EXPECT_TRUE(first[brace[0]]);
    EXPECT_FALSE(first[word[0]]);
    for (int32_t id : tok->eog_ids()) EXPECT_FALSE(first[id]) << "stop token allowed before the document";
    for (int32_t id : tok->Encode(R"({"name": "Bob", "age": 42})", false, false)) {
      ASSERT_TRUE(Allowed(m, tok->vocab_size())[id]) << "mask refuses token " << id;
      ASSERT_TRUE(m.Accept(id)) << "token " << id;
    }
    EXPECT_TRUE(Allowed(m, tok->vocab_size())[tok->eos_id()]);
    EXPECT_TRUE(m.Accept(tok->eos_id()));
    EXPECT_TRUE(m.terminated());
  }
  // A document that breaks the schema (age is a string) is refused at the offending token.
  {
    structured::GrammarState m(g);
    bool refused = false;
    for (int32_t id : tok->Encode(R"({"name": "Bob", "age": "old"})", false, false)) {
      if (!m.Accept(id)) {
        refused = true;
        break;
      }
    }
    EXPECT_TRUE(refused);
  }
}

TEST(GrammarVocab, InvalidSchemaIsAnErrorNotACrash) {
  INFERD_REQUIRE_MODEL(path);
  auto tok = LoadEmbeddedTokenizer(path);
  ASSERT_NE(tok, nullptr);
  xgrammar::GrammarCompiler compiler(structured::MakeGrammarVocab(*tok), 1);
  EXPECT_ANY_THROW(compiler.CompileJSONSchema(R"({"type": "object", "properties": 5})"));
  EXPECT_ANY_THROW(compiler.CompileJSONSchema("{not json"));
  EXPECT_ANY_THROW(compiler.CompileRegex("(unclosed"));
}

}  // namespace
}  // namespace inferd
