#include "tokenizer/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>

namespace inferd::tok {

struct RegexSplitter::Compiled {
  pcre2_code* code = nullptr;
};

namespace {

// Unicode White_Space, as the members of a character class.
constexpr std::string_view kWhitespaceMembers =
    "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";

// Rewrites \s and \S (outside and inside [...] classes) to explicit White_Space classes.
// PCRE2's own \s (with UCP) leaves out U+0085 and differs in a few code points.
std::string RewriteWhitespace(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char n = p[i + 1];
      if (n == 's') {
        if (in_class) {
          out.append(kWhitespaceMembers);
        } else {
          out.append("[").append(kWhitespaceMembers).append("]");
        }
        ++i;
        continue;
      }
      if (n == 'S' && !in_class) {
        out.append("[^").append(kWhitespaceMembers).append("]");
        ++i;
        continue;
      }
      out.push_back(c);
      out.push_back(n);
      ++i;
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < p.size() && p[i + 1] == '^') {
        out.push_back('^');
        ++i;
      }
      if (i + 1 < p.size() && p[i + 1] == ']') {
        out.push_back(']');
        ++i;
      }
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out.push_back(c);
  }
  return out;
}

const std::string kGpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const std::string kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const std::string kQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// DeepSeek LLM: letters of the Latin, Greek, Cyrillic, ... scripts listed explicitly.
const std::string kDeepseekLetters =
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293"
    "\u0295-\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c"
    "\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5"
    "\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77"
    "\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59"
    "\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc"
    "\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107"
    "\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139"
    "\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee"
    "\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e"
    "\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f"
    "\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2"
    "\U000118a0-\U000118df\U0001e900-\U0001e943]+";
const std::string kDeepseekPunct =
    "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+";
const std::string kCjk = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+";

struct PreEntry {
  std::vector<std::string_view> names;
  std::vector<std::string> patterns;
  bool ignore_merges = false;
  bool add_bos = false;
};

const std::vector<PreEntry>& PreTable() {
  static const std::vector<PreEntry> table = {
      {{"default"},
       {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"}},
      {{"llama-bpe", "llama3", "llama-v3", "dbrx", "smaug-bpe", "falcon3", "pixtral"},
       {kLlama3}, true, true},
      {{"deepseek-llm"},
       {"[\r\n]", kDeepseekLetters, kDeepseekPunct, "\\s+$", kCjk, "\\p{N}+"}},
      {{"deepseek-coder"},
       {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kCjk, "\\p{N}"}},
      {{"falcon"},
       {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"}},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
       {"\\p{N}", kGpt2}},
      {{"gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais", "roberta-bpe", "jina-v1-en",
        "jina-v2-es", "jina-v2-de", "jina-v2-code", "jina-es", "jina-de", "gigachat", "trillion"},
       {kGpt2}},
      {{"qwen2", "qwen2.5", "qwen-2.5", "deepseek-r1-qwen", "stablelm2", "megrez", "hunyuan"},
       {kQwen2}},
  };
  return table;
}

}  // namespace

const std::string& Gpt2Pattern() { return kGpt2; }

StatusOr<PreTokenizerSpec> LookupPreTokenizer(std::string_view name) {
  if (name.empty()) name = "default";
  for (const PreEntry& e : PreTable()) {
    if (std::find(e.names.begin(), e.names.end(), name) != e.names.end()) {
      return PreTokenizerSpec{std::string(e.names[0]), e.patterns, e.ignore_merges, e.add_bos};
    }
  }
  std::string supported;
  for (const PreEntry& e : PreTable()) {
    for (std::string_view n : e.names) {
      if (!supported.empty()) supported += ", ";
      supported += n;
    }
  }
  return Unimplemented("tokenizer: pre-tokenizer '" + std::string(name) +
                       "' is not supported; supported: " + supported);
}

std::string PreNameForPatterns(const std::vector<std::string>& patterns) {
  for (const PreEntry& e : PreTable()) {
    if (e.patterns == patterns) return std::string(e.names[0]);
  }
  // Hugging Face spells the contractions case-insensitively; same split.
  static const std::string kHfContractions = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
  static const std::string kOurContractions =
      "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
  if (patterns.size() == 1 && patterns[0].rfind(kHfContractions, 0) == 0) {
    const std::string ours = kOurContractions + patterns[0].substr(kHfContractions.size());
    if (ours == kLlama3) return "llama-bpe";
    if (ours == kQwen2) return "qwen2";
  }
  return "";
}

StatusOr<std::unique_ptr<RegexSplitter>> RegexSplitter::Create(std::vector<std::string> patterns) {
  std::unique_ptr<RegexSplitter> s(new RegexSplitter());
  s->patterns_ = std::move(patterns);
  for (const std::string& p : s->patterns_) {
    const std::string rewritten = RewriteWhitespace(p);
    int err = 0;
    PCRE2_SIZE err_off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()),
                                     rewritten.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err,
                                     &err_off, nullptr);
    if (code == nullptr) {
      std::array<PCRE2_UCHAR, 256> buf{};
      pcre2_get_error_message(err, buf.data(), buf.size());
      return InvalidArgument("tokenizer: cannot compile pre-tokenizer regex '" + p + "': " +
                             reinterpret_cast<const char*>(buf.data()) + " at offset " +
                             std::to_string(err_off));
    }
    // JIT is an optimization; the interpreter is used when it is unavailable.
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    s->compiled_.push_back(new Compiled{code});
  }
  return s;
}

RegexSplitter::~RegexSplitter() {
  for (Compiled* c : compiled_) {
    pcre2_code_free(c->code);
    delete c;
  }
}

std::vector<std::string_view> RegexSplitter::Split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  if (text.empty()) return pieces;
  pieces.push_back(text);
  std::vector<std::string_view> next;
  for (const Compiled* c : compiled_) {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(c->code, nullptr);
    next.clear();
    next.reserve(pieces.size() * 2);
    for (std::string_view piece : pieces) {
      // Each piece is its own subject: lookarounds and $ do not see its neighbours.
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t pos = 0;      // where the next search starts
      size_t emitted = 0;  // end of the last emitted piece
      while (pos < piece.size()) {
        int rc = pcre2_match(c->code, subject, piece.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
          // JIT stack exhausted on a pathological input: the interpreter keeps its
          // backtracking state on the heap.
          rc = pcre2_match(c->code, subject, piece.size(), pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                           md, nullptr);
        }
        if (rc < 0) break;  // no further match: the rest of the piece is one gap
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t ms = ov[0], me = ov[1];
        if (me == ms) {
          // Empty match: step over one character and search again.
          pos = ms + 1;
          while (pos < piece.size() && (static_cast<uint8_t>(piece[pos]) & 0xC0) == 0x80) ++pos;
          continue;
        }
        if (ms > emitted) next.push_back(piece.substr(emitted, ms - emitted));
        next.push_back(piece.substr(ms, me - ms));
        emitted = pos = me;
      }
      if (emitted < piece.size()) next.push_back(piece.substr(emitted));
    }
    pcre2_match_data_free(md);
    pieces.swap(next);
  }
  return pieces;
}

}  // namespace inferd::tok
