// tokenizer.model directories (libsentencepiece) against the real spm_encode, and our
// SentencePiece-style merge loop against a real SentencePiece BPE model. Needs the
// Debian `sentencepiece` tools (spm_train, spm_encode); skips without them.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "test_util.h"

namespace inferd {
namespace {

bool HaveTools() {
  return std::system("command -v spm_train >/dev/null 2>&1 && command -v spm_encode >/dev/null 2>&1") == 0;
}

int Run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

std::string RandomLine(std::mt19937& rng) {
  static const char* kSyl[] = {"ka", "lo", "mi", "ten", "ber", "quo", "st", "ing", "the", "and",
                               "\xC3\xA9t\xC3\xA9", "\xC3\xBC", "\xD0\xB4\xD0\xB0", "\xE4\xBD\xA0",
                               "\xE5\xA5\xBD", "x", "zz", "pre", "tion", "ly"};
  static const char* kSep[] = {" ", " ", " ", ", ", ". ", "  ", " (", ") ", "-", "'s ", "! ", "? "};
  std::string line;
  const int words = 3 + static_cast<int>(rng() % 12);
  for (int w = 0; w < words; ++w) {
    const int syl = 1 + static_cast<int>(rng() % 3);
    for (int s = 0; s < syl; ++s) line += kSyl[rng() % std::size(kSyl)];
    if (rng() % 7 == 0) line += std::to_string(rng() % 1000);
    line += kSep[rng() % std::size(kSep)];
  }
  return line;
}

struct SpmFixture {
  std::filesystem::path dir;
  std::vector<std::string> test_lines;
};

// Trains a small model and writes the test lines; returns false when the tools fail.
bool Train(const std::string& tag, const std::string& train_args, SpmFixture* f) {
  f->dir = testing::TempDir("spm-" + tag);
  std::mt19937 rng(7);
  {
    std::ofstream corpus(f->dir / "corpus.txt");
    for (int i = 0; i < 3000; ++i) corpus << RandomLine(rng) << "\n";
  }
  {
    std::ofstream test(f->dir / "test.txt");
    for (int i = 0; i < 200; ++i) {
      std::string line = RandomLine(rng);
      // Unseen characters exercise byte fallback / unk.
      if (i % 10 == 0) line += " \xF0\x9F\xA6\x99 \xE1\x9E\x80 q#";
      f->test_lines.push_back(line);
      test << line << "\n";
    }
  }
  const std::string prefix = (f->dir / "tokenizer").string();
  const std::string cmd = "spm_train --input=" + (f->dir / "corpus.txt").string() +
                          " --model_prefix=" + prefix + " " + train_args;
  if (Run(cmd) != 0) return false;
  const std::string encode = "spm_encode --model=" + prefix + ".model --output_format=id < " +
                             (f->dir / "test.txt").string() + " > " +
                             (f->dir / "expected.txt").string() + " 2>/dev/null";
  return std::system(encode.c_str()) == 0;
}

std::vector<std::vector<int32_t>> ReadIds(const std::filesystem::path& path) {
  std::vector<std::vector<int32_t>> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::vector<int32_t> ids;
    int32_t id;
    while (ss >> id) ids.push_back(id);
    out.push_back(std::move(ids));
  }
  return out;
}

class SentencePieceModel : public ::testing::TestWithParam<std::string> {};

TEST_P(SentencePieceModel, MatchesSpmEncode) {
  if (!HaveTools()) GTEST_SKIP() << "spm_train/spm_encode not installed (Debian package sentencepiece)";
  SpmFixture f;
  ASSERT_TRUE(Train(GetParam(), "--vocab_size=400 --character_coverage=1.0 --byte_fallback=true "
                    "--model_type=" + GetParam(), &f));
  auto tok = Tokenizer::FromHfDir(f.dir.string());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->vocab_size(), 400);
  const auto expected = ReadIds(f.dir / "expected.txt");
  ASSERT_EQ(expected.size(), f.test_lines.size());
  size_t pass = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto got = (*tok)->Encode(f.test_lines[i], false, false);
    if (got == expected[i]) ++pass;
    else ADD_FAILURE() << "'" << f.test_lines[i] << "'\n expected " << testing::IdsToString(expected[i])
                       << "\n got      " << testing::IdsToString(got);
    // The default normalizer trims and collapses runs of spaces.
    std::string normalized;
    for (char c : f.test_lines[i]) {
      if (c == ' ' && (normalized.empty() || normalized.back() == ' ')) continue;
      normalized += c;
    }
    while (!normalized.empty() && normalized.back() == ' ') normalized.pop_back();
    EXPECT_EQ((*tok)->Decode(got, true), normalized);
  }
  std::printf("[ spm ] %s model: %zu/%zu lines equal spm_encode\n", GetParam().c_str(), pass,
              expected.size());
  // BOS from the model; WriteHfFiles keeps the tokenizer.model path.
  const auto with_bos = (*tok)->Encode("hello", true, false);
  ASSERT_FALSE(with_bos.empty());
  EXPECT_EQ(with_bos.front(), (*tok)->bos_id());
  EXPECT_TRUE((*tok)->IsEog((*tok)->eos_id()));
  const auto out_dir = testing::TempDir("spm-out-" + GetParam());
  ASSERT_TRUE((*tok)->WriteHfFiles(out_dir.string()).ok());
  auto again = Tokenizer::FromHfDir(out_dir.string());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  for (const auto& line : f.test_lines) {
    EXPECT_EQ((*again)->Encode(line, true, true), (*tok)->Encode(line, true, true));
  }
  std::filesystem::remove_all(f.dir);
  std::filesystem::remove_all(out_dir);
}

INSTANTIATE_TEST_SUITE_P(Types, SentencePieceModel, ::testing::Values("bpe", "unigram"));

// Our own SentencePiece-style merge loop (the GGUF "llama" path) on the pieces and scores of
// a real SentencePiece BPE model, with normalization off so both see the same text.
TEST(SentencePieceModel, MergeLoopMatchesRealBpeModel) {
  if (!HaveTools()) GTEST_SKIP() << "spm_train/spm_encode not installed (Debian package sentencepiece)";
  SpmFixture f;
  ASSERT_TRUE(Train("gguf", "--vocab_size=400 --character_coverage=1.0 --byte_fallback=true "
                    "--model_type=bpe --normalization_rule_name=identity "
                    "--remove_extra_whitespaces=false", &f));
  auto spm = Tokenizer::FromHfDir(f.dir.string());
  ASSERT_TRUE(spm.ok()) << spm.status().ToString();
  GgufWriter w;
  w.AddString("tokenizer.ggml.model", "llama");
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  const Tokenizer& s = **spm;
  for (int32_t id = 0; id < s.vocab_size(); ++id) {
    tokens.push_back(s.TokenText(id));
    types.push_back(static_cast<int32_t>(s.GetTokenType(id)));
  }
  // Scores are not exposed by Tokenizer; SentencePiece BPE scores are minus the merge order,
  // which for normal pieces is their id order.
  for (int32_t id = 0; id < s.vocab_size(); ++id) scores.push_back(-static_cast<float>(id));
  w.AddStringArray("tokenizer.ggml.tokens", tokens);
  w.AddFloat32Array("tokenizer.ggml.scores", scores);
  w.AddInt32Array("tokenizer.ggml.token_type", types);
  w.AddUint32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(s.bos_id()));
  w.AddUint32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(s.eos_id()));
  w.AddUint32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(s.unk_id()));
  const auto bytes = w.Serialize();
  auto gguf = GgufFile::Parse(bytes.data(), bytes.size());
  ASSERT_TRUE(gguf.ok());
  auto ours = Tokenizer::FromGguf(**gguf);
  ASSERT_TRUE(ours.ok()) << ours.status().ToString();
  const auto expected = ReadIds(f.dir / "expected.txt");
  size_t pass = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto got = (*ours)->Encode(f.test_lines[i], false, false);
    if (got == expected[i]) ++pass;
    else ADD_FAILURE() << "'" << f.test_lines[i] << "'\n expected " << testing::IdsToString(expected[i])
                       << "\n got      " << testing::IdsToString(got);
  }
  std::printf("[ spm ] merge loop on a real BPE model: %zu/%zu lines equal spm_encode\n", pass,
              expected.size());
  std::filesystem::remove_all(f.dir);
}

}  // namespace
}  // namespace inferd
