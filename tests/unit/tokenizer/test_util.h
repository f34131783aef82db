// Shared helpers for the tokenizer tests: cached vocabularies and the .inp/.out vectors.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

namespace inferd::testing {

inline std::string TokDataDir() { return std::string(INFERD_TESTDATA_DIR) + "/tokenizer"; }

inline std::string VocabPath(const std::string& name) {
  return TokDataDir() + "/ggml-vocab-" + name + ".gguf";
}

// Loads each vocabulary once per test binary (the big ones take a moment).
inline const Tokenizer* LoadVocab(const std::string& name) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(name);
  if (it != cache.end()) return it->second.get();
  auto gguf = GgufFile::Open(VocabPath(name));
  if (!gguf.ok()) {
    ADD_FAILURE() << gguf.status().ToString();
    return nullptr;
  }
  auto tok = Tokenizer::FromGguf(**gguf);
  if (!tok.ok()) {
    ADD_FAILURE() << tok.status().ToString();
    return nullptr;
  }
  return (cache[name] = std::move(*tok)).get();
}

struct Vector {
  std::string text;
  std::vector<int32_t> ids;
};

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Test strings are separated by "\n__ggml_vocab_test__\n"; the text after the last
// separator is empty and not a test.
inline std::vector<Vector> ReadVectors(const std::string& name) {
  const std::string inp = ReadAll(VocabPath(name) + ".inp");
  const std::string out = ReadAll(VocabPath(name) + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<Vector> v;
  size_t pos = 0;
  for (;;) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) break;
    v.push_back({inp.substr(pos, next - pos), {}});
    pos = next + sep.size();
  }
  std::istringstream lines(out);
  std::string line;
  size_t i = 0;
  while (std::getline(lines, line) && i < v.size()) {
    std::istringstream nums(line);
    int32_t id;
    while (nums >> id) v[i].ids.push_back(id);
    ++i;
  }
  EXPECT_EQ(i, v.size()) << "line count of " << name << ".out";
  return v;
}

inline std::string IdsToString(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) {
    if (!s.empty()) s += ' ';
    s += std::to_string(id);
  }
  return s;
}

inline std::filesystem::path TempDir(const std::string& tag) {
  auto p = std::filesystem::temp_directory_path() /
           ("inferd-tok-" + tag + "-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "-" + std::to_string(reinterpret_cast<uintptr_t>(&tag) & 0xffff));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

inline const std::vector<std::string>& VocabsWithVectors() {
  static const std::vector<std::string> v = {"llama-spm", "llama-bpe", "gpt-2",  "qwen2",
                                             "phi-3",     "deepseek-llm", "falcon", "starcoder"};
  return v;
}

}  // namespace inferd::testing
