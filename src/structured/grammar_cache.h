// Compiled grammars of structured-output requests (docs/structured-outputs.md), compiled once
// per distinct constraint against the model's vocabulary and kept in a bounded LRU cache.
// Thread-safe: the server's request threads compile (so that a bad constraint is a 400 before
// the request is accepted); the engine thread looks the same constraint up again.
#pragma once

#include <xgrammar/compiler.h>
#include <xgrammar/matcher.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
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

// Where a JSON text is: inside a string (and just after its backslash) or not. Completions
// of JSON grammars choose characters by it: a closing brace closes an object outside a string
// but is just one more character inside one.
struct JsonLexer {
  bool in_string = false;
  bool escaped = false;
  void Feed(char c) {
    if (!in_string) {
      in_string = c == '"';
    } else if (escaped) {
      escaped = false;
    } else if (c == '\\') {
      escaped = true;
    } else if (c == '"') {
      in_string = false;
    }
  }
  void Feed(const std::string& s) {
    for (char c : s) Feed(c);
  }
};

// One sequence's position in its grammar: the allowed-token bitmask of the next step and
// the tokens accepted so far. Not thread-safe (one sequence, one thread at a time).
//
// Finishing within max_tokens: a small model can loop inside a value the grammar leaves
// unbounded (digits of an integer, a pattern string, array items, recursion) until max_tokens
// cuts the document off. FinishWithin() keeps an estimate of the shortest completion; once the
// tokens left are about what that completion needs, the rest of the output is forced to it and
// then to a stop token, so the output is complete and valid (docs/structured-outputs.md).
class GrammarState {
 public:
  // The mask covers the grammar's vocabulary (its TokenizerInfo); logits past it are disallowed.
  // `json_text_mask` (GrammarCache::json_text_mask(); must outlive the state) is given for
  // grammars that produce JSON text: it is ANDed into every mask, and completions read where
  // the JSON strings are. Null for other grammars.
  explicit GrammarState(std::shared_ptr<const xgrammar::CompiledGrammar> grammar,
                        const std::vector<uint32_t>* json_text_mask = nullptr);
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

  // Call before each position's mask (not while NextMask runs elsewhere) with the tokens the
  // sequence may still generate, this position's included. Re-estimates the shortest
  // completion every kRecheckEvery positions, and, while the completion fits the budget, at
  // every position that changed the JSON structure once the budget comes within kCloseWindow
  // tokens of the threshold or, for JSON, within GrowthZone() (where one more item could
  // outgrow it); when `remaining` is at most the threshold, the following masks allow only
  // the completion's tokens, in order, then the stop tokens. The threshold is the
  // completion's tokens and a stop token ("need"), plus an anticipation, plus kCloseMargin.
  // The anticipation is the larger of need (at most kMaxAnticipation) and the most one more
  // token can add to need (another array item or property, a new object or array), which is
  // measured outside strings once the budget is within GrowthZone().
  void FinishWithin(int64_t remaining, const Tokenizer& tok);
  // The output is being forced to its shortest completion.
  bool closing() const { return closing_; }
  // A short string that completes the grammar from the current position (accepting it makes
  // the root rule complete), found greedily: forced text as it stands; in JSON, what closes
  // the open string, array or object first; then printable ASCII characters least recently
  // used first, so that no loop of the grammar repeats forever; nullopt if none is found
  // within max_bytes and the characters it may try (*budget, decremented, or kMaxAttempts).
  // The state is unchanged.
  std::optional<std::string> ShortestCompletion(size_t max_bytes, int* budget = nullptr);

  static constexpr int kRecheckEvery = 8;
  // Characters ShortestCompletion may try in one search (each an Earley step of about a
  // microsecond): a grammar that needs a late candidate at every position gives up instead of
  // stalling the batch. Growth's probes share one such budget, so one estimate tries at
  // most 2 * kMaxAttempts.
  static constexpr int kMaxAttempts = 20000;
  static constexpr int64_t kCloseWindow = 24;
  static constexpr int64_t kCloseMargin = 2;
  static constexpr int64_t kMaxAnticipation = 64;

 private:
  void FillMask();
  bool json() const { return json_text_mask_ != nullptr; }
  int64_t Threshold() const {
    return need_ + std::max(std::min(need_, kMaxAnticipation), growth_) + kCloseMargin;
  }
  // Budgets up to here are within reach of one more item or property: growth is measured
  // here, and structural tokens re-estimate.
  int64_t GrowthZone() const { return need_ + kMaxAnticipation + kCloseMargin + kCloseWindow; }
  // Tokens of `text` and a stop token; *ids gets the text's tokens.
  int64_t TokensOf(const std::string& text, const Tokenizer& tok, std::vector<int32_t>* ids) const;
  // How much one more token here can add to need_: another item or property, a new object or
  // array, or closing the current one and starting the next.
  int64_t Growth(size_t max_bytes, const Tokenizer& tok);

  std::shared_ptr<const xgrammar::CompiledGrammar> grammar_;
  xgrammar::GrammarMatcher matcher_;
  std::vector<uint32_t> mask_;
  const std::vector<uint32_t>* json_text_mask_;  // non-null: a JSON grammar
  bool mask_ready_ = false;  // mask_ is NextMask() of the current position
  JsonLexer lexer_;  // where the accepted JSON text is (JSON grammars only)
  // Finishing within the budget.
  bool closing_ = false;
  std::deque<int32_t> forced_;  // the completion's tokens still to come while closing_
  int64_t need_ = -1;  // tokens of the last estimated completion and a stop token; -1: none (yet)
  int64_t growth_ = 0;    // the last Growth()
  bool structural_ = true;  // a token since the last estimate changed the JSON structure
  int since_check_ = kRecheckEvery - 1;  // positions since that estimate (the first call makes one)
};

}  // namespace inferd::structured
