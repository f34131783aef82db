// Conformance with llama.cpp: every test string of every ggml-vocab-*.gguf with vectors
// tokenizes (add_special=false, parse_special=false) to exactly the expected ids, both from
// the GGUF and through WriteHfFiles -> FromHfDir.
#include <gtest/gtest.h>

#include "test_util.h"

namespace inferd {
namespace {

using testing::IdsToString;
using testing::LoadVocab;
using testing::ReadVectors;

class VocabConformance : public ::testing::TestWithParam<std::string> {};

void CheckVectors(const Tokenizer& tok, const std::string& name, const std::string& via) {
  const auto vectors = ReadVectors(name);
  ASSERT_FALSE(vectors.empty());
  size_t pass = 0;
  for (const auto& v : vectors) {
    const auto got = tok.Encode(v.text, /*add_special=*/false, /*parse_special=*/false);
    if (got == v.ids) {
      ++pass;
    } else {
      ADD_FAILURE() << name << " (" << via << ") text '" << v.text << "'\n  expected "
                    << IdsToString(v.ids) << "\n  got      " << IdsToString(got);
    }
  }
  std::printf("[ conformance ] %-13s %-9s %zu/%zu\n", name.c_str(), via.c_str(), pass,
              vectors.size());
  EXPECT_EQ(pass, vectors.size());
}

TEST_P(VocabConformance, GgufMatchesLlamaCppVectors) {
  const Tokenizer* tok = LoadVocab(GetParam());
  ASSERT_NE(tok, nullptr);
  CheckVectors(*tok, GetParam(), "gguf");
}

TEST_P(VocabConformance, HfRoundTripMatchesVectors) {
  const Tokenizer* tok = LoadVocab(GetParam());
  ASSERT_NE(tok, nullptr);
  const auto dir = testing::TempDir("hf-" + GetParam());
  ASSERT_TRUE(tok->WriteHfFiles(dir.string()).ok());
  auto hf = Tokenizer::FromHfDir(dir.string());
  ASSERT_TRUE(hf.ok()) << hf.status().ToString();
  CheckVectors(**hf, GetParam(), "hf");
  EXPECT_EQ((*hf)->vocab_size(), tok->vocab_size());
  EXPECT_EQ((*hf)->bos_id(), tok->bos_id());
  EXPECT_EQ((*hf)->eos_id(), tok->eos_id());
  EXPECT_EQ((*hf)->add_bos(), tok->add_bos());
  EXPECT_EQ((*hf)->add_eos(), tok->add_eos());
  EXPECT_EQ((*hf)->pre_name(), tok->pre_name());
  EXPECT_EQ((*hf)->model_name(), tok->model_name());
  EXPECT_EQ((*hf)->eog_ids(), tok->eog_ids());
  EXPECT_EQ((*hf)->chat_template(), tok->chat_template());
  // Special-token handling and decoding survive the trip as well.
  const std::string s = "<|im_start|>user\nHi <s>there</s>\n<|endoftext|>";
  EXPECT_EQ((*hf)->Encode(s, true, true), tok->Encode(s, true, true));
  const auto ids = tok->Encode("Hello wörld 🦙 ½", true, false);
  EXPECT_EQ((*hf)->Decode(ids, true), tok->Decode(ids, true));
  EXPECT_EQ((*hf)->Decode(ids, false), tok->Decode(ids, false));
  std::filesystem::remove_all(dir);
}

// Decoding the encoded test strings gives the strings back.
TEST_P(VocabConformance, DecodeRoundTrip) {
  const Tokenizer* tok = LoadVocab(GetParam());
  ASSERT_NE(tok, nullptr);
  for (const auto& v : ReadVectors(GetParam())) {
    EXPECT_EQ(tok->Decode(v.ids, false), v.text) << GetParam();
    const auto with_special = tok->Encode(v.text, /*add_special=*/true, false);
    EXPECT_EQ(tok->Decode(with_special, /*skip_special=*/true), v.text) << GetParam();
  }
}

INSTANTIATE_TEST_SUITE_P(AllVocabs, VocabConformance,
                         ::testing::ValuesIn(testing::VocabsWithVectors()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace inferd
