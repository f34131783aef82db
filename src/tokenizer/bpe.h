// The two merge algorithms: byte-level BPE (ranked merges over one pre-token) and
// SentencePiece-style BPE (score-ordered merges with byte fallback), both as llama.cpp's
// llama-vocab runs them. Internal to src/tokenizer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/vocab.h"

namespace inferd::tok {

class BpeMerges {
 public:
  // `merge` is "left right", split at the first space after position 0 (so a merge whose
  // left side starts with a space still parses). The first occurrence of a pair wins.
  void Add(std::string_view merge);
  void AddPair(std::string_view left, std::string_view right);
  // Rank of the pair, or -1. `scratch` avoids an allocation per lookup.
  int32_t Rank(std::string_view left, std::string_view right, std::string* scratch) const;
  size_t size() const { return list_.size(); }
  // In rank order (the rank of list()[i] is i unless a duplicate was dropped).
  const std::vector<std::pair<std::string, std::string>>& list() const { return list_; }

 private:
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> ranks_;
  std::vector<std::pair<std::string, std::string>> list_;
};

// Encodes one pre-token `word` (already mapped byte -> unicode) and appends the ids.
// ignore_merges: a word that is itself a token is emitted as that token (Llama-3).
void BpeEncodeWord(std::string_view word, const Vocab& vocab, const BpeMerges& merges,
                   bool ignore_merges, std::vector<int32_t>* out);

// SentencePiece-style encoding of `text` whose spaces are already "▁": merges the adjacent
// pair whose concatenation is the highest-scoring token (leftmost on ties) until none is
// left; symbols that are not tokens become <0xNN> byte tokens (or unk_id).
void SpmEncode(std::string_view text, const Vocab& vocab, int32_t unk_id,
               std::vector<int32_t>* out);

// The <0xNN> token of a byte, else the token whose text is that byte, else -1.
int32_t ByteToken(const Vocab& vocab, uint8_t byte);

}  // namespace inferd::tok
