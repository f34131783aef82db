#include "tokenizer/tokenizer.h"

#include "tokenizer/unicode.h"

namespace inferd {

// Invariant: everything returned so far plus pending_ equals Decode(ids so far) (before
// Flush's U+FFFD substitution). pending_ only ever holds an incomplete-but-valid UTF-8
// tail (at most 3 bytes), which the next token may complete.
//
// first_ is true while the decode is still "at the start": no non-control token has been
// seen, so the next one's SentencePiece leading space is dropped (Decode does the same).
IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special,
                                               std::span<const int32_t> prompt_ids)
    : tok_(tokenizer), skip_special_(skip_special), has_prompt_(!prompt_ids.empty()) {
  for (int32_t id : prompt_ids) {
    if (tok_.GetTokenType(id) != TokenType::kControl) {
      first_ = false;
      break;
    }
  }
}

std::string IncrementalDetokenizer::Push(int32_t id) {
  ids_.push_back(id);
  std::string piece;
  if (first_ && tok_.GetTokenType(id) != TokenType::kControl) {
    // Decode of a single token applies the start-of-text rule (drops the space prefix).
    const int32_t one[1] = {id};
    piece = tok_.Decode(one, skip_special_);
    first_ = false;
  } else {
    piece = tok_.TokenToPiece(id, skip_special_);
  }
  pending_ += piece;
  const size_t hold = tok::IncompleteUtf8Tail(pending_);
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string IncrementalDetokenizer::Flush() {
  std::string out;
  if (!pending_.empty()) {
    tok::AppendUtf8(tok::kReplacementChar, &out);
    pending_.clear();
  }
  return out;
}

}  // namespace inferd
