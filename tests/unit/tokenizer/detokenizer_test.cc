// IncrementalDetokenizer: UTF-8 safety, SentencePiece spaces, skip_special, and the
// property Push()* + Flush() == Decode(all) on random sequences of real vocabularies.
#include <gtest/gtest.h>

#include <random>

#include "test_util.h"
#include "tokenizer/unicode.h"

namespace inferd {
namespace {

using testing::LoadVocab;

// check_tail: the text is valid UTF-8, so no delta may end inside a character. (With
// random ids a broken sequence may be followed by a new lead byte; that is passed through.)
std::string Stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip,
                   std::span<const int32_t> prompt = {}, bool check_tail = true) {
  IncrementalDetokenizer d(tok, skip, prompt);
  std::string out;
  for (int32_t id : ids) {
    const std::string delta = d.Push(id);
    // Never a partial character at the end of a delta.
    if (check_tail) {
      EXPECT_EQ(tok::IncompleteUtf8Tail(delta), 0u);
    }
    out += delta;
  }
  return out + d.Flush();
}

TEST(IncrementalDetokenizer, ByteTokensOfOneCharacter) {
  const Tokenizer* tok = LoadVocab("llama-spm");
  ASSERT_NE(tok, nullptr);
  // 🦙 is not in the vocabulary: four <0xNN> byte tokens.
  const auto ids = tok->Encode(" \xF0\x9F\xA6\x99", false, false);
  ASSERT_GE(ids.size(), 4u);
  IncrementalDetokenizer d(*tok, true);
  std::vector<std::string> deltas;
  for (int32_t id : ids) deltas.push_back(d.Push(id));
  EXPECT_EQ(d.Flush(), "");
  std::string all;
  for (size_t i = 0; i + 1 < deltas.size(); ++i) {
    EXPECT_TRUE(deltas[i].empty() || deltas[i] == " " || deltas[i] == "  ") << i;
    all += deltas[i];
  }
  all += deltas.back();
  EXPECT_EQ(all, tok->Decode(ids, true));
  EXPECT_EQ(deltas.back().substr(deltas.back().size() - 4), "\xF0\x9F\xA6\x99");
}

TEST(IncrementalDetokenizer, ByteLevelEmojiSplitAcrossTokens) {
  for (const char* name : {"gpt-2", "llama-bpe", "qwen2"}) {
    const Tokenizer* tok = LoadVocab(name);
    ASSERT_NE(tok, nullptr);
    const std::string text = "ok \xF0\x9F\x98\xB6\xE2\x80\x8D\xF0\x9F\x8C\xAB\xEF\xB8\x8F \xE1\x9E\x80!";
    const auto ids = tok->Encode(text, false, false);
    EXPECT_EQ(Stream(*tok, ids, true), text) << name;
  }
}

TEST(IncrementalDetokenizer, IncompleteTailFlushesReplacement) {
  const Tokenizer* tok = LoadVocab("llama-spm");
  ASSERT_NE(tok, nullptr);
  const auto ids = tok->Encode("a\xF0\x9F\xA6\x99", false, false);
  ASSERT_GE(ids.size(), 3u);
  IncrementalDetokenizer d(*tok, true);
  std::string out;
  for (size_t i = 0; i + 2 < ids.size(); ++i) out += d.Push(ids[i]);  // drop the last 2 bytes
  EXPECT_EQ(out, "a");
  EXPECT_EQ(d.Flush(), "\xEF\xBF\xBD");
}

TEST(IncrementalDetokenizer, SpmLeadingSpaceWithAndWithoutPrompt) {
  const Tokenizer* tok = LoadVocab("llama-spm");
  ASSERT_NE(tok, nullptr);
  const auto prompt = tok->Encode("Hello", true, false);
  const auto gen = tok->Encode("world", false, false);  // "▁world"
  ASSERT_EQ(gen.size(), 1u);
  // Mid-text (after a prompt) the space is real.
  EXPECT_EQ(Stream(*tok, gen, true, prompt), " world");
  // At the very start it is the SentencePiece prefix and is dropped, like Decode does.
  EXPECT_EQ(Stream(*tok, gen, true), "world");
  // A prompt of only BOS is still the start of the text.
  const int32_t bos[1] = {tok->bos_id()};
  EXPECT_EQ(Stream(*tok, gen, true, bos), "world");
  // Full decode of prompt + generated equals prompt text + streamed text.
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), gen.begin(), gen.end());
  EXPECT_EQ(tok->Decode(all, true), tok->Decode(prompt, true) + Stream(*tok, gen, true, prompt));
}

TEST(IncrementalDetokenizer, SkipSpecial) {
  const Tokenizer* tok = LoadVocab("qwen2");
  ASSERT_NE(tok, nullptr);
  const auto ids = tok->Encode("Hi there<|im_end|>", false, true);
  EXPECT_EQ(Stream(*tok, ids, true), "Hi there");
  EXPECT_EQ(Stream(*tok, ids, false), "Hi there<|im_end|>");
}

// Random token sequences: the streamed text equals Decode(all) whenever the decoded text
// does not end inside a character (then Flush emits U+FFFD instead of the raw bytes).
TEST(IncrementalDetokenizer, RandomSequencesMatchDecode) {
  std::mt19937 rng(1234);
  for (const auto& name : testing::VocabsWithVectors()) {
    const Tokenizer* tok = LoadVocab(name);
    ASSERT_NE(tok, nullptr);
    std::uniform_int_distribution<int32_t> any(0, tok->vocab_size() - 1);
    int checked = 0;
    for (int trial = 0; trial < 300; ++trial) {
      std::vector<int32_t> ids(1 + rng() % 40);
      for (int32_t& id : ids) id = any(rng);
      for (bool skip : {true, false}) {
        const std::string full = tok->Decode(ids, skip);
        if (tok::IncompleteUtf8Tail(full) != 0) continue;
        ASSERT_EQ(Stream(*tok, ids, skip, {}, /*check_tail=*/false), full) << name << " " << testing::IdsToString(ids);
        ++checked;
      }
    }
    EXPECT_GT(checked, 300) << name;
  }
}

// Random valid text (mixed scripts, emoji, spaces) encoded then streamed gives the text back.
TEST(IncrementalDetokenizer, RandomTextRoundTrip) {
  static const char* kPieces[] = {"a", "Z", " ", "  ", "\n", "\t", "7", "42", "\xC3\xA9",
                                  "\xD0\xB6", "\xE4\xBD\xA0", "\xE1\x9E\x80", "\xF0\x9F\xA6\x99",
                                  "\xF0\x9F\x98\x81", "'s", "!", "...", "\xE2\x80\x8D", "x"};
  std::mt19937 rng(99);
  for (const auto& name : testing::VocabsWithVectors()) {
    const Tokenizer* tok = LoadVocab(name);
    ASSERT_NE(tok, nullptr);
    for (int trial = 0; trial < 100; ++trial) {
      std::string text;
      const int n = 1 + static_cast<int>(rng() % 30);
      for (int i = 0; i < n; ++i) text += kPieces[rng() % std::size(kPieces)];
      const auto ids = tok->Encode(text, true, false);
      ASSERT_EQ(tok->Decode(ids, true), text) << name;
      ASSERT_EQ(Stream(*tok, ids, true), text) << name;
    }
  }
}

}  // namespace
}  // namespace inferd
