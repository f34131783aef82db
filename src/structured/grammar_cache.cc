#include "structured/grammar_cache.h"

#include <fmt/format.h>

#include <exception>

#include "structured/grammar_vocab.h"
#include "structured/json_schema_prep.h"

namespace inferd::structured {
namespace {

// The EBNF of "exactly one of these strings" (as vLLM builds choice grammars).
std::string ChoiceGrammar(const std::vector<std::string>& choices) {
  std::string g = "root ::= ";
  for (size_t i = 0; i < choices.size(); ++i) {
    if (i) g += " | ";
    g += '"';
    for (unsigned char c : choices[i]) {
      if (c == '"' || c == '\\') {
        g += '\\';
        g += static_cast<char>(c);
      } else if (c < 0x20 || c == 0x7f) {
        g += fmt::format("\\x{:02x}", c);
      } else {
        g += static_cast<char>(c);
      }
    }
    g += '"';
  }
  return g;
}

// XGrammar's error text without its log prefix ("[hh:mm:ss] /path/file.cc:123: ") and the
// trailing newline.
std::string CleanError(std::string m) {
  if (!m.empty() && m.front() == '[') {
    const size_t close = m.find("] ");
    if (close != std::string::npos) m.erase(0, close + 2);
  }
  const size_t cc = m.find(".cc:");
  if (cc != std::string::npos && m.find(": ", cc) != std::string::npos && m.find(' ') > cc) {
    m.erase(0, m.find(": ", cc) + 2);
  }
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

// The cache key: the constraint's kind, options and text.
std::string Key(const StructuredOutputsParams& p) {
  std::string k;
  auto add = [&](const char* kind, const std::string& text) {
    k = kind;
    k += p.disable_any_whitespace ? "\x01" : "\x00";
    k.push_back('\0');
    k += text;
  };
  if (p.json) add("json", *p.json);
  if (p.regex) add("regex", *p.regex);
  if (p.grammar) add("grammar", *p.grammar);
  if (p.structural_tag) add("structural_tag", *p.structural_tag);
  if (p.json_object) add("json_object", "");
  if (p.choice) {
    std::string all;
    for (const std::string& c : *p.choice) {
      all += std::to_string(c.size());
      all += ':';
      all += c;
    }
    add("choice", all);
  }
  return k;
}

Status CheckSizes(const StructuredOutputsParams& p) {
  auto check = [](const std::optional<std::string>& s, const char* field) -> Status {
    if (s && s->size() > kMaxSpecBytes) {
      return InvalidArgument(fmt::format("structured_outputs.{} is {} bytes; the limit is {}", field, s->size(),
                                         kMaxSpecBytes));
    }
    return Status::OK();
  };
  INFERD_RETURN_IF_ERROR(check(p.json, "json"));
  INFERD_RETURN_IF_ERROR(check(p.regex, "regex"));
  INFERD_RETURN_IF_ERROR(check(p.grammar, "grammar"));
  INFERD_RETURN_IF_ERROR(check(p.structural_tag, "structural_tag"));
  if (p.choice) {
    if (p.choice->size() > kMaxChoices) {
      return InvalidArgument(
          fmt::format("structured_outputs.choice has {} entries; the limit is {}", p.choice->size(), kMaxChoices));
    }
    size_t bytes = 0;
    for (const std::string& c : *p.choice) bytes += c.size();
    if (bytes > kMaxChoiceBytes) {
      return InvalidArgument(
          fmt::format("structured_outputs.choice totals {} bytes; the limit is {}", bytes, kMaxChoiceBytes));
    }
  }
  return Status::OK();
}

}  // namespace

GrammarCache::GrammarCache(const Tokenizer& tok, size_t max_entries, int64_t max_bytes)
    : max_entries_(max_entries), max_bytes_(max_bytes) {
  xgrammar::TokenizerInfo vocab = MakeGrammarVocab(tok);
  // Each token's raw bytes, as MakeGrammarVocab gave them to XGrammar (special tokens empty;
  // ids past them, padding, have none).
  const std::vector<std::string>& pieces = vocab.GetDecodedVocab();
  const size_t n = static_cast<size_t>(vocab.GetVocabSize());
  json_text_mask_.assign((n + 31) / 32, 0u);
  for (size_t t = 0; t < n; ++t) {
    bool ok = true;
    if (t < pieces.size()) {
      for (unsigned char c : pieces[t]) ok = ok && (c >= 0x20 || c == '\n' || c == '\r');
    }
    if (ok) json_text_mask_[t / 32] |= 1u << (t % 32);
  }
  compiler_ = std::make_unique<xgrammar::GrammarCompiler>(std::move(vocab), /*max_threads=*/2,
                                                          /*cache_enabled=*/false);
}

size_t GrammarCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lru_.size();
}

StatusOr<std::shared_ptr<const xgrammar::CompiledGrammar>> GrammarCache::Compile(const StructuredOutputsParams& p) {
  const char* field = p.json ? "json" : p.regex ? "regex" : p.grammar ? "grammar" : p.structural_tag ? "structural_tag"
                      : p.choice ? "choice" : "json_object";
  std::optional<std::string> schema;
  if (p.json) {
    auto prepared = PrepareJsonSchema(*p.json);
    if (!prepared.ok()) return InvalidArgument(fmt::format("structured_outputs.json: {}", prepared.status().message()));
    schema = std::move(*prepared);
  }
  std::lock_guard<std::mutex> lock(compile_mu_);
  try {
    const bool any_ws = !p.disable_any_whitespace;
    xgrammar::CompiledGrammar g =
        p.json ? compiler_->CompileJSONSchema(*schema, any_ws, std::nullopt, std::nullopt, /*strict_mode=*/true,
                                              any_ws ? std::optional<int>(kMaxWhitespaceRun) : std::nullopt)
        : p.regex        ? compiler_->CompileRegex(*p.regex)
        : p.grammar      ? compiler_->CompileGrammar(*p.grammar, "root")
        : p.structural_tag ? compiler_->CompileStructuralTag(*p.structural_tag)
        : p.choice       ? compiler_->CompileGrammar(ChoiceGrammar(*p.choice), "root")
                         : compiler_->CompileBuiltinJSONGrammar();
    return std::make_shared<const xgrammar::CompiledGrammar>(std::move(g));
  } catch (const std::exception& e) {
    return InvalidArgument(fmt::format("structured_outputs.{} cannot be compiled: {}", field, CleanError(e.what())));
  }
}

StatusOr<std::shared_ptr<const xgrammar::CompiledGrammar>> GrammarCache::Get(const StructuredOutputsParams& p) {
  if (p.num_constraints() != 1) return InvalidArgument("structured_outputs needs exactly one constraint");
  INFERD_RETURN_IF_ERROR(CheckSizes(p));
  const std::string key = Key(p);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->grammar;
    }
  }
  auto compiled = Compile(p);
  if (!compiled.ok()) return compiled.status();
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = index_.find(key); it != index_.end()) return it->second->grammar;  // compiled twice
  const int64_t bytes = static_cast<int64_t>((*compiled)->MemorySizeBytes());
  lru_.push_front(Entry{key, *compiled, bytes});
  index_[key] = lru_.begin();
  bytes_ += bytes;
  while (lru_.size() > 1 && (lru_.size() > max_entries_ || bytes_ > max_bytes_)) {
    bytes_ -= lru_.back().bytes;
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  return *compiled;
}

}  // namespace inferd::structured
