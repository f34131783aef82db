// Compiled grammars of structured-output requests (docs/structured-outputs.md), compiled once
// per distinct constraint against the model's vocabulary and kept in a bounded LRU cache.
// Thread-safe: the server's request threads compile (so that a bad constraint is a 400 before
// the request is accepted); the engine thread looks the same constraint up again.
#pragma once

#include <xgrammar/compiler.h>
#include <xgrammar/matcher.h>

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "inferd/sampling_params.h"
#include "inferd/status.h"
#include "tokenizer/tokenizer.h"

namespace inferd::structured {

// Sizes from requests, bounded before any compile.
constexpr size_t kMaxSpecBytes = 256 * 1024;     // a schema, regex, grammar or structural tag
constexpr size_t kMaxChoices = 4096;
constexpr size_t kMaxChoiceBytes = 64 * 1024;    // all choices together
// JSON schemas allow whitespace between tokens (as vLLM's default), in runs of at most this
// many characters (llama.cpp's JSON grammars bound it likewise): unbounded, a small model can
// emit newlines until max_tokens instead of closing the document.
constexpr int kMaxWhitespaceRun = 20;

class GrammarCache {
 public:
  // max_entries and max_bytes (XGrammar's memory size of the compiled grammars) bound the cache.
  explicit GrammarCache(const Tokenizer& tok, size_t max_entries = 256, int64_t max_bytes = 256ll << 20);

  // The compiled grammar of the request's constraint (cached by its canonical text), or
  // InvalidArgument naming the field and XGrammar's reason.
  StatusOr<std::shared_ptr<const xgrammar::CompiledGrammar>> Get(const StructuredOutputsParams& p);

  size_t size() const;

  // Bit t set when token t holds no raw control byte but CR or LF: ANDed with the masks of
  // JSON grammars, since JSON text has none outside its whitespace and XGrammar 0.2.9 lets
  // U+0001..U+001F (tab included) into strings with minLength/maxLength. (Tabs between JSON
  // tokens go too; spaces and newlines remain.)
  const std::vector<uint32_t>& json_text_mask() const { return json_text_mask_; }

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const xgrammar::CompiledGrammar> grammar;
    int64_t bytes = 0;
  };
  StatusOr<std::shared_ptr<const xgrammar::CompiledGrammar>> Compile(const StructuredOutputsParams& p);

  size_t max_entries_;
  int64_t max_bytes_;
  std::mutex compile_mu_;  // one compile at a time (XGrammar's compiler parallelises inside)
  std::unique_ptr<xgrammar::GrammarCompiler> compiler_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recent first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  int64_t bytes_ = 0;
  std::vector<uint32_t> json_text_mask_;
};

// One sequence's position in its grammar: the allowed-token bitmask of the next step and
// the tokens accepted so far. Not thread-safe (one sequence, one thread at a time).
class GrammarState {
 public:
  // The mask covers the grammar's vocabulary (its TokenizerInfo); logits past it are disallowed.
  // `and_mask` (may be null; must outlive the state) is ANDed into every mask.
  explicit GrammarState(std::shared_ptr<const xgrammar::CompiledGrammar> grammar,
                        const std::vector<uint32_t>* and_mask = nullptr);
  // Bit t of word t / 32 set: token t may come next. Computed once per position (a second
  // call before Accept returns the same mask), so it may be computed ahead on another thread.
  const std::vector<uint32_t>& NextMask();
  // The mask's storage (same address for the state's lifetime; its content is NextMask's
  // once that has run for the current position).
  const std::vector<uint32_t>& mask() const { return mask_; }
  // False when the grammar refuses the token (the sampler honoured the mask, so this means a
  // token forced from elsewhere).
  bool Accept(int32_t token);
  // A stop token was accepted at the grammar's end.
  bool terminated() const;

 private:
  std::shared_ptr<const xgrammar::CompiledGrammar> grammar_;
  xgrammar::GrammarMatcher matcher_;
  std::vector<uint32_t> mask_;
  const std::vector<uint32_t>* and_mask_;
  bool mask_ready_ = false;  // mask_ is NextMask() of the current position
};

}  // namespace inferd::structured
