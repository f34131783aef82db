// GrammarState: one sequence's matcher, its next-token mask, and finishing within max_tokens
// (grammar_cache.h).
#include <dlpack/dlpack.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "structured/grammar_cache.h"

namespace inferd::structured {
namespace {

// Candidate characters, least recently used first once used (so that no loop of the grammar
// repeats forever), starting in this order: separators, digits, punctuation, letters, then
// what opens or closes structure. Punctuation before letters: a pattern such as [a-z]+@[a-z]+
// needs its separator more than another letter.
// The space takes its turn only where text may need it (in a JSON string, in other grammars);
// between JSON tokens it comes after everything else.
std::vector<char> Candidates(bool space) {
  std::vector<char> c = {',', ':'};
  for (char d = '0'; d <= '9'; ++d) c.push_back(d);
  for (char p : std::string("-._/@+=#%&*!?~^$|;'`<>()")) c.push_back(p);
  for (char l = 'a'; l <= 'z'; ++l) c.push_back(l);
  for (char l = 'A'; l <= 'Z'; ++l) c.push_back(l);
  if (space) c.push_back(' ');
  for (char p : std::string("\"}][{")) c.push_back(p);
  return c;
}

// Tried before the least-recently-used candidates: outside a JSON string, what closes an
// array or object, the quote (the shortest value, or a key), then the separators; inside
// one, the closing quote. For other grammars none (every character takes its turn).
const std::string& Preferred(bool json, const JsonLexer& lex) {
  static const std::string kOutside = "}]\",:", kInside = "\"", kNone;
  return !json ? kNone : lex.in_string ? kInside : kOutside;
}

// The part of a jump-forward string before its first whitespace outside a JSON string:
// XGrammar may offer optional whitespace there, which a completion has no use for.
std::string WithoutWhitespace(const std::string& s, JsonLexer lex) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (!lex.in_string && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) return s.substr(0, i);
    lex.Feed(s[i]);
  }
  return s;
}

void SetBit(std::vector<uint32_t>& mask, int32_t t) {
  if (t >= 0 && static_cast<size_t>(t) / 32 < mask.size()) mask[static_cast<size_t>(t) / 32] |= 1u << (t % 32);
}

}  // namespace

GrammarState::GrammarState(std::shared_ptr<const xgrammar::CompiledGrammar> grammar,
                           const std::vector<uint32_t>* json_text_mask)
    : grammar_(std::move(grammar)), matcher_(*grammar_),
      mask_(static_cast<size_t>((grammar_->GetTokenizerInfo().GetVocabSize() + 31) / 32)),
      json_text_mask_(json_text_mask) {}

void GrammarState::FillMask() {
  int64_t shape[1] = {static_cast<int64_t>(mask_.size())};
  DLTensor t{};
  t.data = mask_.data();
  t.device = DLDevice{kDLCPU, 0};
  t.ndim = 1;
  t.dtype = DLDataType{kDLInt, 32, 1};
  t.shape = shape;
  matcher_.FillNextTokenBitmask(&t);
  if (json_text_mask_) {
    for (size_t i = 0; i < mask_.size() && i < json_text_mask_->size(); ++i) mask_[i] &= (*json_text_mask_)[i];
  }
}

const std::vector<uint32_t>& GrammarState::NextMask() {
  if (mask_ready_) return mask_;
  mask_ready_ = true;
  if (closing_ && !forced_.empty()) {
    std::fill(mask_.begin(), mask_.end(), 0u);
    SetBit(mask_, forced_.front());
    return mask_;
  }
  FillMask();
  if (closing_ && matcher_.IsCompleted()) {  // the completion is in: only a stop token may follow
    std::vector<uint32_t> stops(mask_.size(), 0u);
    for (int t : matcher_.GetStopTokenIds()) SetBit(stops, t);
    bool any = false;
    for (size_t i = 0; i < mask_.size(); ++i) any = any || (mask_[i] & stops[i]);
    if (any) {
      for (size_t i = 0; i < mask_.size(); ++i) mask_[i] &= stops[i];
    }
  }
  return mask_;
}

bool GrammarState::Accept(int32_t token) {
  mask_ready_ = false;
  if (json()) {
    const std::vector<std::string>& vocab = grammar_->GetTokenizerInfo().GetDecodedVocab();
    if (token >= 0 && static_cast<size_t>(token) < vocab.size()) {
      const std::string& text = vocab[static_cast<size_t>(token)];
      structural_ = structural_ || text.find_first_of("\"{}[],:") != std::string::npos;
      lexer_.Feed(text);
    }
  }
  if (closing_ && !forced_.empty()) {
    if (forced_.front() == token) {
      forced_.pop_front();
    } else {  // a token from elsewhere: estimate again
      forced_.clear();
      closing_ = false;
      need_ = -1;
    }
  }
  return matcher_.AcceptToken(token);
}

bool GrammarState::terminated() const { return matcher_.IsTerminated(); }

std::optional<std::string> GrammarState::ShortestCompletion(size_t max_bytes, int* budget) {
  if (matcher_.IsTerminated()) return std::nullopt;
  JsonLexer lex = lexer_;
  // Least recently used first; one order inside JSON strings (and for other grammars), one
  // outside (a character used in a string says nothing about its use between values).
  static const std::vector<char> kInText = Candidates(true), kBetweenTokens = Candidates(false);
  std::vector<char> orders[2] = {kInText, kBetweenTokens};
  std::string out;
  int steps = 0;  // accepted strings, rolled back at the end
  int own_budget = kMaxAttempts;
  int& left = budget ? *budget : own_budget;
  auto accept = [&](const std::string& s) {
    if (s.empty() || left <= 0) return false;
    --left;
    if (!matcher_.AcceptString(s)) return false;  // each step adds a byte
    ++steps;
    out += s;
    lex.Feed(s);
    return true;
  };
  bool found = matcher_.IsCompleted();
  while (!found && out.size() < max_bytes) {
    const std::string jump = matcher_.FindJumpForwardString();
    bool progressed = false;
    const std::string forced = json() ? WithoutWhitespace(jump, lex) : jump;
    if (!forced.empty()) progressed = accept(forced);
    for (char c : Preferred(json(), lex)) {
      if (progressed) break;
      progressed = accept(std::string(1, c));
    }
    std::vector<char>& order = orders[json() && !lex.in_string ? 1 : 0];
    for (size_t i = 0; !progressed && i < order.size(); ++i) {
      if (accept(std::string(1, order[i]))) {
        progressed = true;
        std::rotate(order.begin() + static_cast<std::ptrdiff_t>(i), order.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                    order.end());
      }
    }
    // Between JSON tokens a space only when nothing else goes (fixed separators have one).
    if (!progressed && json() && !lex.in_string) progressed = accept(" ");
    // Inside a UTF-8 sequence (a token may end there): a continuation byte.
    for (int b = 0x80; !progressed && b < 0xC0; ++b) progressed = accept(std::string(1, static_cast<char>(b)));
    if (!progressed) break;  // the grammar wants a character outside the candidates
    found = matcher_.IsCompleted();
  }
  if (steps > 0) matcher_.Rollback(steps);
  if (!found) return std::nullopt;
  return out;
}

int64_t GrammarState::TokensOf(const std::string& text, const Tokenizer& tok, std::vector<int32_t>* ids) const {
  *ids = text.empty() ? std::vector<int32_t>{} : tok.Encode(text, false, false);
  return static_cast<int64_t>(ids->size()) + 1;
}

int64_t GrammarState::Growth(size_t max_bytes, const Tokenizer& tok) {
  int64_t most = 0;
  std::vector<int32_t> ids;
  int budget = kMaxAttempts;  // shared by the probes
  // What one token can do: add an item or property, open an object or array, or close the
  // current one and start the next (a token such as "},{" or "},\n").
  for (const char* open : {",", "{", "[", "[{", "},", "},{", "],", "],["}) {
    if (!matcher_.AcceptString(open)) continue;
    if (std::optional<std::string> more = ShortestCompletion(max_bytes, &budget)) {
      most = std::max(most, static_cast<int64_t>(std::strlen(open)) + TokensOf(*more, tok, &ids) - need_);
    }
    matcher_.Rollback(1);
  }
  return most;
}

void GrammarState::FinishWithin(int64_t remaining, const Tokenizer& tok) {
  if (closing_ || remaining <= 0 || matcher_.IsTerminated()) return;
  ++since_check_;
  // Between checks the estimate stands while the output stays inside a value (a string, a
  // number): the completion hardly changes there. A completion longer than the budget cannot
  // be forced: then only the periodic check.
  const bool fits = need_ >= 0 && need_ <= remaining;
  // Near: within the window before the threshold, or (JSON) where growth is measured. In the
  // latter a growth measured inside a string or before the value's end is stale: a few tokens
  // can close the value and open another array item or property, so every structural token
  // there re-measures it.
  const bool near = fits && (remaining <= Threshold() + kCloseWindow || (json() && remaining <= GrowthZone()));
  const bool due = since_check_ >= kRecheckEvery || (near && structural_) || (fits && remaining <= Threshold());
  if (!due) return;
  since_check_ = 0;
  structural_ = !json();
  mask_ready_ = false;
  // Bytes are at least tokens, so a completion longer than 8 bytes per remaining token is of
  // no use; 4096 bounds the search.
  const size_t max_bytes = static_cast<size_t>(std::min<int64_t>(4096, 8 * remaining + 64));
  std::optional<std::string> text = ShortestCompletion(max_bytes);
  if (!text) {
    need_ = -1;  // none within reach: look again after kRecheckEvery positions
    return;
  }
  std::vector<int32_t> ids;
  need_ = TokensOf(*text, tok, &ids);
  // Growth is measured only near the end (its probes cost up to kMaxAttempts): within the
  // largest threshold that need alone gives, and the window in front of it.
  if (json() && !lexer_.in_string && remaining <= GrowthZone()) {
    growth_ = Growth(max_bytes, tok);
  }
  if (remaining > Threshold() || need_ > remaining) return;
  // The tokens must spell the completion exactly (a tokenizer that adds a space prefix does
  // not): check them against the grammar before forcing them.
  int accepted = 0;
  for (int32_t id : ids) {
    if (!matcher_.AcceptToken(id)) break;
    ++accepted;
  }
  const bool complete = accepted == static_cast<int>(ids.size()) && matcher_.IsCompleted();
  if (accepted > 0) matcher_.Rollback(accepted);
  if (!complete) return;
  closing_ = true;
  forced_.assign(ids.begin(), ids.end());
}

}  // namespace inferd::structured
