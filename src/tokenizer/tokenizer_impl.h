// The one concrete Tokenizer: a vocabulary plus one of three encoders (byte-level BPE,
// SentencePiece-style BPE, or libsentencepiece for tokenizer.model directories).
// Internal to src/tokenizer; loaders (gguf / HF) fill it and call Finalize().
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace inferd::tok {

// SentencePiece's word-boundary marker "▁" (U+2581).
inline constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";

enum class Algo { kByteBpe, kSpm, kSentencePiece };

// The byte of a "<0xNN>" token text, or -1.
int ParseByteToken(std::string_view text);

class VocabTokenizer final : public Tokenizer {
 public:
  VocabTokenizer();
  ~VocabTokenizer() override;

  std::vector<int32_t> Encode(std::string_view text, bool add_special,
                              bool parse_special) const override;
  std::string Decode(std::span<const int32_t> ids, bool skip_special) const override;
  std::string TokenToPiece(int32_t id, bool skip_special) const override;
  const std::string& TokenText(int32_t id) const override;
  TokenType GetTokenType(int32_t id) const override;
  Status WriteHfFiles(const std::string& dir) const override;

  // --- set up by the loaders ---
  Algo algo = Algo::kByteBpe;
  Vocab vocab;
  BpeMerges merges;                         // kByteBpe
  std::unique_ptr<RegexSplitter> splitter;  // kByteBpe
  bool ignore_merges = false;               // kByteBpe
  bool add_space_prefix = false;            // kSpm / kSentencePiece: "▁" before the text
  bool space_prefix_first_only = false;     // only before the first fragment (HF Metaspace "first")
  std::unique_ptr<sentencepiece::SentencePieceProcessor> spp;  // kSentencePiece
  int32_t eot_id = -1, eom_id = -1;

  void SetIds(int32_t bos, int32_t eos, int32_t unk, int32_t pad) {
    bos_id_ = bos; eos_id_ = eos; unk_id_ = unk; pad_id_ = pad;
  }
  void SetFlags(bool add_bos, bool add_eos) { add_bos_ = add_bos; add_eos_ = add_eos; }
  void SetNames(std::string model, std::string pre) { model_ = std::move(model); pre_ = std::move(pre); }
  void SetChatTemplate(std::string t) { chat_template_ = std::move(t); }
  // Marks end-of-generation tokens (forcing them to control type, as llama.cpp does),
  // rebuilds the special-token cache and fills vocab_size_ / eog_ids_.
  void Finalize();

 private:
  void EncodeText(std::string_view text, bool space_prefix, std::vector<int32_t>* out) const;
  Status WriteSentencePieceFiles(const std::string& dir) const;
};

}  // namespace inferd::tok
