// Vocabulary storage shared by the tokenizer algorithms: token texts, scores, types,
// text -> id lookup, and the special-token partition of input text.
// Internal to src/tokenizer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace inferd::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct TokenData {
  std::string text;
  float score = 0.0f;
  TokenType type = TokenType::kNormal;
  bool lstrip = false;  // eat whitespace before the token when it is matched in text
  bool rstrip = false;  // ... and after it
};

// A piece of input text after special-token partitioning: either a token id or raw text.
struct Fragment {
  int32_t token = -1;      // >= 0: a special / added token
  std::string_view text;   // raw text when token < 0 (never empty)
};

class Vocab {
 public:
  // Takes the token list; builds the text -> id map (a later duplicate wins, as llama.cpp)
  // and the special-token cache. Empty texts become "[EMPTY_<id>]".
  void Build(std::vector<TokenData> tokens);

  int32_t size() const { return static_cast<int32_t>(tokens_.size()); }
  const TokenData& at(int32_t id) const { return tokens_[static_cast<size_t>(id)]; }
  TokenData& mutable_at(int32_t id) { return tokens_[static_cast<size_t>(id)]; }
  bool valid(int32_t id) const { return id >= 0 && id < size(); }
  // -1 when absent.
  int32_t Find(std::string_view text) const {
    auto it = text_to_id_.find(text);
    return it == text_to_id_.end() ? -1 : it->second;
  }
  // Rebuilds the special-token cache after token types changed.
  void RebuildSpecialCache();
  const std::vector<int32_t>& special_cache() const { return special_cache_; }

  // Splits `text` at occurrences of special tokens (longest texts first). With
  // parse_special false, only user-defined tokens are matched (control and unknown tokens
  // are plain text), as llama.cpp does.
  std::vector<Fragment> Partition(std::string_view text, bool parse_special) const;

 private:
  std::vector<TokenData> tokens_;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> text_to_id_;
  std::vector<int32_t> special_cache_;  // control, user-defined, unknown; longest first
};

}  // namespace inferd::tok
