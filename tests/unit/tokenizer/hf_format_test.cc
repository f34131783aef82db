// tokenizer.json as Hugging Face writes it (not only as WriteHfFiles does): "a b" merge
// strings, the (?i:...) Llama-3 regex, a TemplateProcessing BOS, Metaspace, and errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "test_util.h"

namespace inferd {
namespace {

using nlohmann::json;
using testing::LoadVocab;
using testing::ReadVectors;

json ReadJsonFile(const std::filesystem::path& p) { return json::parse(testing::ReadAll(p.string())); }

void WriteJsonFile(const std::filesystem::path& p, const json& j) {
  std::ofstream out(p, std::ios::trunc);
  out << j.dump();
}

TEST(HfFormat, Llama3StyleTokenizerJson) {
  const Tokenizer* tok = LoadVocab("llama-bpe");
  ASSERT_NE(tok, nullptr);
  const auto dir = testing::TempDir("hf-llama3");
  ASSERT_TRUE(tok->WriteHfFiles(dir.string()).ok());
  json j = ReadJsonFile(dir / "tokenizer.json");
  // As in Meta's file: case-insensitive contractions, merges as "a b" strings, BOS from the
  // post-processor template, no add_bos_token in the config.
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
      "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  json merges = json::array();
  for (const json& m : j["model"]["merges"]) merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
  j["model"]["merges"] = merges;
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", json::array({{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                                                 {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})}};
  WriteJsonFile(dir / "tokenizer.json", j);
  WriteJsonFile(dir / "tokenizer_config.json",
                {{"eos_token", "<|eot_id|>"}, {"bos_token", "<|begin_of_text|>"}});
  auto hf = Tokenizer::FromHfDir(dir.string());
  ASSERT_TRUE(hf.ok()) << hf.status().ToString();
  EXPECT_EQ((*hf)->pre_name(), "llama-bpe");
  EXPECT_TRUE((*hf)->add_bos());
  EXPECT_EQ((*hf)->bos_id(), 128000);
  EXPECT_EQ((*hf)->eos_id(), 128009);
  EXPECT_TRUE((*hf)->IsEog(128001));
  for (const auto& v : ReadVectors("llama-bpe")) {
    EXPECT_EQ((*hf)->Encode(v.text, false, false), v.ids) << v.text;
  }
  std::filesystem::remove_all(dir);
}

TEST(HfFormat, MetaspaceFirstOnlyPrefix) {
  const Tokenizer* tok = LoadVocab("llama-spm");
  ASSERT_NE(tok, nullptr);
  const auto dir = testing::TempDir("hf-metaspace");
  ASSERT_TRUE(tok->WriteHfFiles(dir.string()).ok());
  json j = ReadJsonFile(dir / "tokenizer.json");
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"},
                        {"prepend_scheme", "first"}, {"split", false}};
  WriteJsonFile(dir / "tokenizer.json", j);
  auto hf = Tokenizer::FromHfDir(dir.string());
  ASSERT_TRUE(hf.ok()) << hf.status().ToString();
  // Metaspace has no Replace normalizer: spaces are still "▁" (the pre-tokenizer does it).
  EXPECT_EQ((*hf)->Encode("Hello world", false, false), tok->Encode("Hello world", false, false));
  const auto legacy = tok->Encode("Hi</s>Hi", false, true);
  const auto first_only = (*hf)->Encode("Hi</s>Hi", false, true);
  ASSERT_EQ(legacy.size(), 3u);
  EXPECT_EQ(first_only[0], legacy[0]);
  EXPECT_EQ(first_only[1], 2);
  EXPECT_NE(first_only[2], legacy[2]);  // "Hi" rather than "▁Hi" after the special token
  EXPECT_EQ((*hf)->TokenText(first_only[2]), "Hi");
  std::filesystem::remove_all(dir);
}

TEST(HfFormat, Errors) {
  const auto dir = testing::TempDir("hf-errors");
  auto missing = Tokenizer::FromHfDir(dir.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  WriteJsonFile(dir / "tokenizer.json", {{"model", {{"type", "WordPiece"}, {"vocab", json::object()}}}});
  auto wp = Tokenizer::FromHfDir(dir.string());
  ASSERT_FALSE(wp.ok());
  EXPECT_EQ(wp.status().code(), StatusCode::kUnimplemented);
  {
    std::ofstream bad(dir / "tokenizer.json", std::ios::trunc);
    bad << "{ not json";
  }
  auto garbage = Tokenizer::FromHfDir(dir.string());
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().code(), StatusCode::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

// Encode is const and safe to call from several threads at once.
TEST(Tokenizer, ConcurrentEncode) {
  for (const char* name : {"qwen2", "llama-spm"}) {
    const Tokenizer* tok = LoadVocab(name);
    ASSERT_NE(tok, nullptr);
    const auto vectors = ReadVectors(name);
    std::vector<std::thread> threads;
    std::vector<int> failures(4, 0);
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int rep = 0; rep < 20; ++rep) {
          for (const auto& v : vectors) {
            if (tok->Encode(v.text, false, false) != v.ids) ++failures[static_cast<size_t>(t)];
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    for (int f : failures) EXPECT_EQ(f, 0) << name;
  }
}

}  // namespace
}  // namespace inferd
