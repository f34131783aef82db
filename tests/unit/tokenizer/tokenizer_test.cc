// Special tokens, BOS/EOS, EOG sets, error paths, speed.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>

#include "test_util.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"

namespace inferd {
namespace {

using testing::LoadVocab;

bool Contains(const std::vector<int32_t>& v, int32_t id) {
  return std::find(v.begin(), v.end(), id) != v.end();
}

TEST(Tokenizer, ParseSpecialOnOff) {
  const Tokenizer* tok = LoadVocab("qwen2");
  ASSERT_NE(tok, nullptr);
  const std::string text = "<|im_start|>user\nHello<|im_end|>";
  const auto on = tok->Encode(text, false, /*parse_special=*/true);
  ASSERT_GE(on.size(), 3u);
  EXPECT_EQ(on.front(), 151644);
  EXPECT_EQ(on.back(), 151645);
  const auto off = tok->Encode(text, false, /*parse_special=*/false);
  EXPECT_FALSE(Contains(off, 151644));
  EXPECT_FALSE(Contains(off, 151645));
  EXPECT_GT(off.size(), on.size());
  EXPECT_EQ(tok->Decode(on, /*skip_special=*/false), text);
  EXPECT_EQ(tok->Decode(off, false), text);
  EXPECT_EQ(tok->Decode(on, /*skip_special=*/true), "user\nHello");
  EXPECT_EQ(tok->Decode(off, true), text);  // plain text stays text
  EXPECT_TRUE(tok->IsSpecial(151644));
  EXPECT_FALSE(tok->IsSpecial(on[1]));
}

TEST(Tokenizer, SpmSpecialTokensAndSpacePrefix) {
  const Tokenizer* tok = LoadVocab("llama-spm");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->model_name(), "llama");
  // A space prefix is added at the start and after each special token.
  const auto ids = tok->Encode("Hi</s>Hi", false, true);
  ASSERT_EQ(ids.size(), 3u) << testing::IdsToString(ids);
  EXPECT_EQ(ids[1], 2);
  EXPECT_EQ(ids[0], ids[2]);
  EXPECT_EQ(tok->TokenText(ids[0]), "\xE2\x96\x81Hi");
  const auto plain = tok->Encode("Hi</s>Hi", false, false);
  EXPECT_FALSE(Contains(plain, 2));
}

TEST(Tokenizer, UserDefinedTokensMatchWithoutParseSpecial) {
  // deepseek-llm has user-defined tokens such as "ø" (id 100002): llama.cpp splits them
  // out of the text even when parse_special is false.
  const Tokenizer* tok = LoadVocab("deepseek-llm");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->GetTokenType(100002), TokenType::kUserDefined);
  const auto ids = tok->Encode("søster", false, false);
  EXPECT_TRUE(Contains(ids, 100002)) << testing::IdsToString(ids);
  EXPECT_EQ(tok->Decode(ids, true), "søster");
}

TEST(Tokenizer, AddBosEos) {
  const Tokenizer* spm = LoadVocab("llama-spm");
  ASSERT_NE(spm, nullptr);
  EXPECT_TRUE(spm->add_bos());
  EXPECT_FALSE(spm->add_eos());
  const auto a = spm->Encode("Hello", true, false);
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a.front(), 1);
  EXPECT_NE(a.back(), 2);
  EXPECT_EQ(spm->Encode("", true, false), std::vector<int32_t>{1});
  EXPECT_TRUE(spm->Encode("", false, false).empty());

  const Tokenizer* l3 = LoadVocab("llama-bpe");
  ASSERT_NE(l3, nullptr);
  EXPECT_TRUE(l3->add_bos());
  EXPECT_EQ(l3->Encode("Hello", true, false).front(), 128000);
  EXPECT_NE(l3->Encode("Hello", false, false).front(), 128000);

  const Tokenizer* g2 = LoadVocab("gpt-2");
  ASSERT_NE(g2, nullptr);
  EXPECT_FALSE(g2->add_bos());
  EXPECT_EQ(g2->Encode("Hello", true, false), g2->Encode("Hello", false, false));
}

TEST(Tokenizer, AddEosFromHfConfig) {
  const Tokenizer* tok = LoadVocab("gpt-2");
  ASSERT_NE(tok, nullptr);
  const auto dir = testing::TempDir("eos");
  ASSERT_TRUE(tok->WriteHfFiles(dir.string()).ok());
  {
    std::ofstream cfg(dir / "tokenizer_config.json", std::ios::trunc);
    cfg << R"({"add_bos_token": true, "add_eos_token": true,
               "bos_token": {"content": "<|endoftext|>"}, "eos_token": "<|endoftext|>",
               "chat_template": [{"name": "default", "template": "{{ x }}"}]})";
  }
  auto hf = Tokenizer::FromHfDir(dir.string());
  ASSERT_TRUE(hf.ok()) << hf.status().ToString();
  const auto ids = (*hf)->Encode("Hi", true, false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 50256);
  EXPECT_EQ(ids.back(), 50256);
  EXPECT_EQ((*hf)->chat_template(), "{{ x }}");
  std::filesystem::remove_all(dir);
}

TEST(Tokenizer, EogSets) {
  const Tokenizer* qwen = LoadVocab("qwen2");
  ASSERT_NE(qwen, nullptr);
  EXPECT_TRUE(qwen->IsEog(151643));  // <|endoftext|>
  EXPECT_TRUE(qwen->IsEog(151645));  // <|im_end|>
  EXPECT_FALSE(qwen->IsEog(151644));  // <|im_start|>
  const Tokenizer* l3 = LoadVocab("llama-bpe");
  ASSERT_NE(l3, nullptr);
  EXPECT_TRUE(l3->IsEog(128001));  // <|end_of_text|>
  EXPECT_TRUE(l3->IsEog(128009));  // <|eot_id|>
  EXPECT_FALSE(l3->IsEog(128000));
  const Tokenizer* phi3 = LoadVocab("phi-3");
  ASSERT_NE(phi3, nullptr);
  EXPECT_TRUE(phi3->IsEog(32000));  // <|endoftext|> (eos)
  EXPECT_TRUE(phi3->IsEog(32007));  // <|end|>
  EXPECT_FALSE(phi3->IsEog(32010));
}

TEST(Tokenizer, RealModelEog) {
  const char* env = std::getenv("INFERD_MODEL");
  std::string path = env != nullptr ? env : "";
  if (path.empty()) {
    const char* home = std::getenv("HOME");
    path = std::string(home != nullptr ? home : "") +
           "/.cache/inferd/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  }
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "model not found: " << path;
  auto gguf = GgufFile::Open(path);
  ASSERT_TRUE(gguf.ok()) << gguf.status().ToString();
  auto tok = Tokenizer::FromGguf(**gguf);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  const auto im_end = (*tok)->Encode("<|im_end|>", false, true);
  ASSERT_EQ(im_end.size(), 1u);
  EXPECT_TRUE((*tok)->IsEog(im_end[0]));
  EXPECT_TRUE((*tok)->IsEog((*tok)->eos_id()));
  const auto im_start = (*tok)->Encode("<|im_start|>", false, true);
  ASSERT_EQ(im_start.size(), 1u);
  EXPECT_FALSE((*tok)->IsEog(im_start[0]));
  const std::string text = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n";
  const auto ids = (*tok)->Encode(text, false, true);
  EXPECT_EQ((*tok)->Decode(ids, false), text);
  EXPECT_EQ((*tok)->pre_name(), "smollm");
  // The exported HF files of the real model tokenize the same way.
  const auto dir = testing::TempDir("hf-model");
  ASSERT_TRUE((*tok)->WriteHfFiles(dir.string()).ok());
  auto hf = Tokenizer::FromHfDir(dir.string());
  ASSERT_TRUE(hf.ok()) << hf.status().ToString();
  EXPECT_EQ((*hf)->Encode(text, true, true), (*tok)->Encode(text, true, true));
  EXPECT_EQ((*hf)->eog_ids(), (*tok)->eog_ids());
  EXPECT_EQ((*hf)->chat_template(), (*tok)->chat_template());
  EXPECT_FALSE((*hf)->chat_template().empty());
  std::filesystem::remove_all(dir);
}

TEST(Tokenizer, UnknownPreTokenizerIsUnimplemented) {
  GgufWriter w;
  w.AddString("tokenizer.ggml.model", "gpt2");
  w.AddString("tokenizer.ggml.pre", "no-such-pre");
  w.AddStringArray("tokenizer.ggml.tokens", {"a", "b", "ab"});
  w.AddInt32Array("tokenizer.ggml.token_type", {1, 1, 1});
  w.AddStringArray("tokenizer.ggml.merges", {"a b"});
  const auto bytes = w.Serialize();
  auto gguf = GgufFile::Parse(bytes.data(), bytes.size());
  ASSERT_TRUE(gguf.ok()) << gguf.status().ToString();
  auto tok = Tokenizer::FromGguf(**gguf);
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(tok.status().message().find("llama-bpe"), std::string::npos);
  EXPECT_NE(tok.status().message().find("qwen2"), std::string::npos);
}

TEST(Tokenizer, SyntheticBpeMergesAndByteFallback) {
  GgufWriter w;
  w.AddString("tokenizer.ggml.model", "gpt2");
  w.AddString("tokenizer.ggml.pre", "gpt-2");
  // "Ġ" is the byte-level form of a space.
  w.AddStringArray("tokenizer.ggml.tokens", {"a", "b", "c", "ab", "abc", "\xC4\xA0", "\xC4\xA0" "a"});
  w.AddInt32Array("tokenizer.ggml.token_type", {1, 1, 1, 1, 1, 1, 1});
  w.AddStringArray("tokenizer.ggml.merges", {"a b", "ab c", "\xC4\xA0 a"});
  const auto bytes = w.Serialize();
  auto gguf = GgufFile::Parse(bytes.data(), bytes.size());
  ASSERT_TRUE(gguf.ok());
  auto tok = Tokenizer::FromGguf(**gguf);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->Encode("abc", false, false), (std::vector<int32_t>{4}));
  // " ab" is "Ġab": "a b" (rank 0) wins over "Ġ a" (rank 2), and "Ġ ab" is no merge.
  EXPECT_EQ((*tok)->Encode("abc ab", false, false), (std::vector<int32_t>{4, 5, 3}));
  // "z" is neither a token nor reachable: llama.cpp drops bytes without a token.
  EXPECT_EQ((*tok)->Encode("abz", false, false), (std::vector<int32_t>{3}));
  EXPECT_EQ((*tok)->Decode((*tok)->Encode("abc ab", false, false), false), "abc ab");
  EXPECT_FALSE((*tok)->add_bos());
}

TEST(Tokenizer, UnknownModelIsUnimplemented) {
  GgufWriter w;
  w.AddString("tokenizer.ggml.model", "bert");
  w.AddStringArray("tokenizer.ggml.tokens", {"a"});
  const auto bytes = w.Serialize();
  auto gguf = GgufFile::Parse(bytes.data(), bytes.size());
  ASSERT_TRUE(gguf.ok());
  auto tok = Tokenizer::FromGguf(**gguf);
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), StatusCode::kUnimplemented);
}

TEST(Tokenizer, AllPreTokenizersCompile) {
  for (const char* name : {"default", "llama-bpe", "deepseek-llm", "deepseek-coder", "falcon",
                           "starcoder", "smollm", "gpt-2", "qwen2"}) {
    auto spec = tok::LookupPreTokenizer(name);
    ASSERT_TRUE(spec.ok()) << name;
    auto splitter = tok::RegexSplitter::Create(spec->patterns);
    ASSERT_TRUE(splitter.ok()) << name << ": " << splitter.status().ToString();
    const std::string text = "Hello, y'all! 123456 \xE4\xBD\xA0\xE5\xA5\xBD   \n\n x";
    std::string joined;
    for (auto p : (*splitter)->Split(text)) joined += p;
    EXPECT_EQ(joined, text) << name;
  }
}

TEST(Tokenizer, Gpt2RegexSplits) {
  auto s = tok::RegexSplitter::Create({tok::Gpt2Pattern()});
  ASSERT_TRUE(s.ok());
  std::vector<std::string> got;
  for (auto p : (*s)->Split("Hello world's  end\xC2\xA0\xC2\xA0x")) got.emplace_back(p);
  // The second no-break space matches no alternative: it is a piece of its own (a gap).
  EXPECT_EQ(got, (std::vector<std::string>{"Hello", " world", "'s", " ", " end", "\xC2\xA0",
                                           "\xC2\xA0", "x"}));
}

TEST(Tokenizer, InvalidUtf8DoesNotCrash) {
  for (const auto& name : testing::VocabsWithVectors()) {
    const Tokenizer* tok = LoadVocab(name);
    ASSERT_NE(tok, nullptr);
    const std::string bad = "ab\xFF\xC3(\xE2\x82 \xF0\x9F\x98";
    const auto ids = tok->Encode(bad, true, true);
    EXPECT_FALSE(ids.empty()) << name;
    for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < tok->vocab_size());
  }
}

TEST(Tokenizer, RandomBytesStayInRange) {
  std::mt19937 rng(5);
  for (const auto& name : testing::VocabsWithVectors()) {
    const Tokenizer* tok = LoadVocab(name);
    ASSERT_NE(tok, nullptr);
    for (int trial = 0; trial < 50; ++trial) {
      std::string bytes(rng() % 64, '\0');
      for (char& c : bytes) c = static_cast<char>(rng() % 256);
      for (bool special : {false, true}) {
        const auto ids = tok->Encode(bytes, true, special);
        for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok->vocab_size()) << name;
        (void)tok->Decode(ids, special);
      }
    }
  }
}

// Baichuan has no test vectors: it loads as SentencePiece and round-trips text.
TEST(Tokenizer, BaichuanLoads) {
  const Tokenizer* tok = LoadVocab("baichuan");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->model_name(), "llama");
  EXPECT_EQ(tok->vocab_size(), 64000);
  EXPECT_TRUE(tok->add_bos());
  const std::string text = "Hello world, \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\xA6\x99!";
  const auto ids = tok->Encode(text, true, false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(tok->Decode(ids, true), text);
  EXPECT_TRUE(tok->IsEog(2));
}

TEST(Tokenizer, LongInputIsFast) {
  std::string text;
  const std::string para =
      "The quick brown fox jumps over the lazy dog; 12345 \xC3\xA9t\xC3\xA9 \xF0\x9F\xA6\x99 "
      "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x81\n    code(x) { return y + 1; }\n";
  while (text.size() < 100 * 1024) text += para;
  text += std::string(20000, ' ') + std::string(5000, 'a');
  for (const char* name : {"llama-bpe", "llama-spm", "qwen2", "deepseek-llm", "falcon"}) {
    const Tokenizer* tok = LoadVocab(name);
    ASSERT_NE(tok, nullptr);
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok->Encode(text, false, false);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(s, 1.0) << name;
    std::printf("[ speed ] %-13s %zu bytes -> %zu tokens in %.3f s\n", name, text.size(),
                ids.size(), s);
    EXPECT_EQ(tok->Decode(ids, false), text) << name;
  }
}

TEST(Unicode, ByteMappingRoundTrips) {
  for (int b = 0; b < 256; ++b) {
    std::string back;
    tok::UnicodeToBytes(tok::ByteToUnicode(static_cast<uint8_t>(b)), &back);
    ASSERT_EQ(back, std::string(1, static_cast<char>(b)));
  }
  EXPECT_EQ(tok::ByteToUnicode(' '), "\xC4\xA0");   // Ġ
  EXPECT_EQ(tok::ByteToUnicode('\n'), "\xC4\x8A");  // Ċ
  EXPECT_EQ(tok::ByteToUnicode('A'), "A");
}

TEST(Unicode, Utf8Helpers) {
  EXPECT_EQ(tok::SanitizeUtf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(tok::IncompleteUtf8Tail("ab\xF0\x9F"), 2u);
  EXPECT_EQ(tok::IncompleteUtf8Tail("ab\xF0\x9F\xA6\x99"), 0u);
  EXPECT_EQ(tok::IncompleteUtf8Tail("\xE2"), 1u);
  EXPECT_EQ(tok::IncompleteUtf8Tail("a\x80"), 0u);
}

}  // namespace
}  // namespace inferd
