// Regex pre-tokenization for byte-level BPE: the text is cut by a list of patterns applied
// in turn, each one to every piece left by the previous pass; both the matches and the
// text between matches become pieces (HF "Split" with behavior "Isolated"; llama.cpp's
// unicode_regex_split). Patterns use PCRE2 syntax (UTF + UCP, JIT-compiled); \s and \S are
// rewritten to Unicode White_Space so that they mean what llama.cpp means by them.
// Internal to src/tokenizer.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "inferd/status.h"

namespace inferd::tok {

class RegexSplitter {
 public:
  static StatusOr<std::unique_ptr<RegexSplitter>> Create(std::vector<std::string> patterns);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // `text` must be valid UTF-8. Returns non-empty pieces covering `text` in order.
  // Thread-safe (match data is per call).
  std::vector<std::string_view> Split(std::string_view text) const;
  const std::vector<std::string>& patterns() const { return patterns_; }

 private:
  RegexSplitter() = default;
  struct Compiled;
  std::vector<std::string> patterns_;
  std::vector<Compiled*> compiled_;
};

// What a GGUF tokenizer.ggml.pre name selects (llama.cpp's pre-tokenizer types).
struct PreTokenizerSpec {
  std::string name;
  std::vector<std::string> patterns;
  bool ignore_merges = false;  // a whole pre-token found in the vocabulary is used as is
  bool add_bos = false;        // default for add_bos_token when the key is absent
};

// Unimplemented (listing the supported names) for an unknown name.
StatusOr<PreTokenizerSpec> LookupPreTokenizer(std::string_view name);
// Canonical pre name whose patterns equal `patterns`, or "" (used for HF directories).
std::string PreNameForPatterns(const std::vector<std::string>& patterns);
const std::string& Gpt2Pattern();

}  // namespace inferd::tok
