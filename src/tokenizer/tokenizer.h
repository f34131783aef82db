// Tokenizers: byte-level BPE (GPT-2 style, with the pre-tokenizer the model names) and
// SentencePiece style (scores, byte fallback, space prefix), built from GGUF metadata
// (tokenizer.ggml.*) or a Hugging Face directory (tokenizer.json or tokenizer.model +
// tokenizer_config.json).
//
// Contract: Encode/Decode are pure functions of the vocabulary; results match llama.cpp
// (llama-tokenize) and the vectors in shared/testdata/tokenizer.
// Thread-safety: a Tokenizer is immutable after construction; Encode/Decode are safe to
// call concurrently. IncrementalDetokenizer is per-sequence state (one thread at a time).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "inferd/status.h"

namespace inferd {

class GgufFile;

// As llama.cpp's llama_token_attr / GGUF tokenizer.ggml.token_type.
enum class TokenType : int32_t {
  kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6,
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // From GGUF keys tokenizer.ggml.{model,pre,tokens,scores,token_type,merges,
  // bos_token_id,eos_token_id,eot_token_id,eom_token_id,unknown_token_id,padding_token_id,
  // add_bos_token,add_eos_token,add_space_prefix,chat_template}.
  // Unknown tokenizer.ggml.model or pre: Unimplemented naming the supported ones.
  static StatusOr<std::unique_ptr<Tokenizer>> FromGguf(const GgufFile& gguf);
  // From a HF directory: tokenizer.json (BPE or Unigram/SPM-style BPE with byte fallback) or
  // tokenizer.model (SentencePiece via libsentencepiece), plus tokenizer_config.json
  // (added tokens, add_bos_token, chat_template, bos/eos token strings).
  static StatusOr<std::unique_ptr<Tokenizer>> FromHfDir(const std::string& dir);

  // add_special: add BOS (and EOS) when the model asks for it (add_bos / add_eos).
  // parse_special: text matching special/added tokens (e.g. "<|im_start|>") becomes those
  // tokens; otherwise it is tokenized as plain text. (llama.cpp: parse_special.)
  virtual std::vector<int32_t> Encode(std::string_view text, bool add_special,
                                      bool parse_special) const = 0;
  // Concatenated bytes of the tokens (may end in a partial UTF-8 sequence; callers that
  // stream use IncrementalDetokenizer). skip_special drops control tokens (BOS/EOS/...).
  // For SentencePiece vocabularies the leading space of the first token is removed
  // when the model adds a space prefix (as llama.cpp / HF do).
  virtual std::string Decode(std::span<const int32_t> ids, bool skip_special) const = 0;
  // The raw bytes one token contributes when decoded in the middle of a text.
  virtual std::string TokenToPiece(int32_t id, bool skip_special) const = 0;
  // The vocabulary string of a token as stored (e.g. "Ġhello", "▁the", "<0x0A>").
  virtual const std::string& TokenText(int32_t id) const = 0;
  virtual TokenType GetTokenType(int32_t id) const = 0;

  int32_t vocab_size() const { return vocab_size_; }
  int32_t bos_id() const { return bos_id_; }   // -1 when absent
  int32_t eos_id() const { return eos_id_; }
  int32_t unk_id() const { return unk_id_; }
  int32_t pad_id() const { return pad_id_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  // End-of-generation tokens: eos, eot, eom and tokens such as <|im_end|>, <|eot_id|>,
  // <|endoftext|>, <end_of_turn> present in the vocabulary as control tokens.
  bool IsEog(int32_t id) const;
  const std::vector<int32_t>& eog_ids() const { return eog_ids_; }
  bool IsSpecial(int32_t id) const;  // control or user-defined (added) token
  const std::string& chat_template() const { return chat_template_; }
  const std::string& model_name() const { return model_; }  // "gpt2" (BPE) or "llama" (SPM)
  const std::string& pre_name() const { return pre_; }      // pre-tokenizer name, e.g. "smollm"

  // Writes tokenizer.json and tokenizer_config.json equivalent to this vocabulary so that
  // FromHfDir(dir) tokenizes identically (used by `inferd export-hf`).
  virtual Status WriteHfFiles(const std::string& dir) const = 0;

 protected:
  int32_t vocab_size_ = 0;
  int32_t bos_id_ = -1, eos_id_ = -1, unk_id_ = -1, pad_id_ = -1;
  bool add_bos_ = false, add_eos_ = false;
  std::vector<int32_t> eog_ids_;
  std::string chat_template_;
  std::string model_, pre_;
};

// Turns a stream of token ids into text deltas for streaming: never emits a partial UTF-8
// character (waits for the rest), handles SentencePiece leading spaces and byte tokens, and
// skips special tokens when asked. Concatenating every Push() and the final Flush() equals
// tokenizer.Decode(all ids, skip_special) for well-formed output.
class IncrementalDetokenizer {
 public:
  // `prompt_ids` (may be empty) give the context so that the first generated token's
  // leading space is decoded as it would be mid-text.
  IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special,
                         std::span<const int32_t> prompt_ids = {});
  // Appends one token; returns the newly completed text (possibly empty).
  std::string Push(int32_t id);
  // Returns whatever is left (an incomplete UTF-8 tail is emitted as U+FFFD).
  std::string Flush();

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  bool first_ = true;
  std::vector<int32_t> ids_;
  std::string pending_;  // bytes not yet emitted (incomplete UTF-8 tail)
  bool has_prompt_ = false;
};

}  // namespace inferd
