#include "chat/lexer.h"

#include <cctype>
#include <cstring>

#include "chat/value.h"

namespace inferd::chat {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Length of a line break at s[k] as jinja2's newline_re (\r\n|\r|\n) sees it, or 0.
size_t LineBreakLen(const std::string& s, size_t k) {
  if (s[k] == '\r') return (k + 1 < s.size() && s[k + 1] == '\n') ? 2 : 1;
  return s[k] == '\n' ? 1 : 0;
}

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(src) {}

  std::vector<Token> Run() {
    bool line_starting = true;
    size_t n = src_.size();
    while (pos_ < n) {
      size_t idx = FindTagStart(pos_);
      std::string text = src_.substr(pos_, idx == std::string::npos ? std::string::npos : idx - pos_);
      if (idx == std::string::npos) {
        Emit(Tok::kData, text, pos_);
        break;
      }
      char kind = src_[idx + 1];  // '{', '%' or '#'
      char sign = idx + 2 < n ? src_[idx + 2] : '\0';
      if (sign == '-') {
        size_t e = text.size();
        while (e > 0 && IsSpace(text[e - 1])) --e;
        text.resize(e);
      } else if (kind != '{' && sign != '+') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if (l_pos > 0 || line_starting) {
          bool all_ws = l_pos < text.size();
          for (size_t k = l_pos; k < text.size(); ++k)
            if (!IsSpace(text[k])) { all_ws = false; break; }
          if (all_ws) text.resize(l_pos);
        }
      }
      if (!text.empty()) Emit(Tok::kData, text, pos_);
      pos_ = idx + 2;
      if (sign == '-' || sign == '+') ++pos_;
      if (kind == '#') {
        size_t end = src_.find("#}", pos_);
        if (end == std::string::npos) Fail(idx, "missing end of comment tag");
        bool minus = end > pos_ && src_[end - 1] == '-';
        bool plus = end > pos_ && src_[end - 1] == '+';
        pos_ = end + 2;
        line_starting = AfterTagEnd(minus, plus, true);
        continue;
      }
      if (kind == '%' && LexRaw(idx, &line_starting)) continue;
      Emit(kind == '{' ? Tok::kVarBegin : Tok::kBlockBegin, "", idx);
      bool minus = false, plus = false;
      LexTagBody(kind == '{' ? '}' : '%', &minus, &plus);
      line_starting = AfterTagEnd(minus, plus, kind == '%');
    }
    Emit(Tok::kEof, "", n);
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    for (size_t k = src_.find('{', from); k != std::string::npos; k = src_.find('{', k + 1)) {
      if (k + 1 < src_.size() && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    }
    return std::string::npos;
  }

  // Matches `[-+]?\s*NAME\s*[-+]?%}` at p; returns the position after it (or npos) and the
  // sign characters found.
  size_t MatchTag(size_t p, const char* name, char* open_sign, char* close_sign) const {
    size_t n = src_.size();
    *open_sign = *close_sign = 0;
    if (p < n && (src_[p] == '-' || src_[p] == '+')) *open_sign = src_[p++];
    while (p < n && IsSpace(src_[p])) ++p;
    size_t len = std::strlen(name);
    if (src_.compare(p, len, name) != 0) return std::string::npos;
    p += len;
    while (p < n && IsSpace(src_[p])) ++p;
    if (p < n && (src_[p] == '-' || src_[p] == '+')) *close_sign = src_[p++];
    if (src_.compare(p, 2, "%}") != 0) return std::string::npos;
    return p + 2;
  }

  // {% raw %}...{% endraw %}: the content is data, untouched except for the whitespace
  // control of the two tags. pos_ is just past "{%" and its sign. Returns false if the tag at
  // `idx` is not `raw`.
  bool LexRaw(size_t idx, bool* line_starting) {
    char os, cs;
    size_t after = MatchTag(idx + 2, "raw", &os, &cs);
    if (after == std::string::npos) return false;
    size_t p = after;
    if (cs == '-')
      while (p < src_.size() && IsSpace(src_[p])) ++p;
    for (size_t k = src_.find("{%", p);; k = src_.find("{%", k + 2)) {
      if (k == std::string::npos) Fail(idx, "missing end of raw directive");
      char eos, ecs;
      size_t end = MatchTag(k + 2, "endraw", &eos, &ecs);
      if (end == std::string::npos) continue;
      std::string text = src_.substr(p, k - p);
      if (eos == '-') {
        size_t e = text.size();
        while (e > 0 && IsSpace(text[e - 1])) --e;
        text.resize(e);
      } else if (eos != '+') {
        size_t l_pos = text.rfind('\n');
        if (l_pos != std::string::npos) {
          ++l_pos;
          bool all_ws = l_pos < text.size();
          for (size_t m = l_pos; m < text.size(); ++m)
            if (!IsSpace(text[m])) { all_ws = false; break; }
          if (all_ws) text.resize(l_pos);
        }
      }
      if (!text.empty()) Emit(Tok::kData, text, p);
      pos_ = end;
      *line_starting = AfterTagEnd(ecs == '-', ecs == '+', true);
      return true;
    }
  }

  // Applies `-` (strip all whitespace) or trim_blocks (one newline) after a tag end; returns
  // whether the consumed text ended with a newline (jinja2's line_starting).
  bool AfterTagEnd(bool minus, bool plus, bool is_block) {
    bool ends_nl = false;
    if (minus) {
      while (pos_ < src_.size() && IsSpace(src_[pos_])) ends_nl = src_[pos_++] == '\n';
    } else if (is_block && !plus && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
      ends_nl = true;
    }
    return ends_nl;
  }

  void LexTagBody(char end_char, bool* minus, bool* plus) {
    int balance = 0;
    size_t n = src_.size();
    while (true) {
      while (pos_ < n && IsSpace(src_[pos_])) ++pos_;
      if (pos_ >= n) Fail(pos_, "unexpected end of template inside a tag");
      if (balance == 0) {
        auto at = [&](const char* s) { return src_.compare(pos_, std::strlen(s), s) == 0; };
        std::string close = std::string(1, end_char) + "}";
        if (at(("-" + close).c_str()) || at(("+" + close).c_str())) {
          *minus = src_[pos_] == '-';
          *plus = src_[pos_] == '+';
          Emit(end_char == '}' ? Tok::kVarEnd : Tok::kBlockEnd, "", pos_);
          pos_ += 3;
          return;
        }
        if (at(close.c_str())) {
          Emit(end_char == '}' ? Tok::kVarEnd : Tok::kBlockEnd, "", pos_);
          pos_ += 2;
          return;
        }
      }
      char c = src_[pos_];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t s = pos_;
        while (pos_ < n && (std::isalnum(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_')) ++pos_;
        Emit(Tok::kName, src_.substr(s, pos_ - s), s);
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        LexNumber();
      } else if (c == '\'' || c == '"') {
        LexString();
      } else {
        static const char* kOps2[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (const char* o : kOps2)
          if (src_.compare(pos_, 2, o) == 0) op = o;
        if (op.empty()) {
          if (!std::strchr("+-/*%~[](){}<>=.:|,;", c)) Fail(pos_, std::string("unexpected character '") + c + "'");
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") ++balance;
        if (op == ")" || op == "]" || op == "}") {
          if (balance == 0) Fail(pos_, "unexpected '" + op + "'");
          --balance;
        }
        Emit(Tok::kOp, op, pos_);
        pos_ += op.size();
      }
    }
  }

  void LexNumber() {
    size_t s = pos_, n = src_.size();
    auto digits = [&] {
      while (pos_ < n && (std::isdigit(static_cast<unsigned char>(src_[pos_])) ||
                          (src_[pos_] == '_' && pos_ + 1 < n && std::isdigit(static_cast<unsigned char>(src_[pos_ + 1])))))
        ++pos_;
    };
    digits();
    bool is_float = false;
    bool after_dot = !tokens_.empty() && tokens_.back().type == Tok::kOp && tokens_.back().text == ".";
    if (!after_dot && pos_ + 1 < n && src_[pos_] == '.' && std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
      ++pos_;
      digits();
      is_float = true;
    }
    if (!after_dot && pos_ < n && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t save = pos_++;
      if (pos_ < n && (src_[pos_] == '+' || src_[pos_] == '-')) ++pos_;
      if (pos_ < n && std::isdigit(static_cast<unsigned char>(src_[pos_]))) {
        digits();
        is_float = true;
      } else {
        pos_ = save;
      }
    }
    std::string text;
    for (size_t k = s; k < pos_; ++k)
      if (src_[k] != '_') text.push_back(src_[k]);
    Emit(is_float ? Tok::kFloat : Tok::kInt, text, s);
  }

  void LexString() {
    char q = src_[pos_];
    size_t s = pos_++;
    std::string out;
    size_t n = src_.size();
    while (true) {
      if (pos_ >= n) Fail(s, "unterminated string literal");
      char c = src_[pos_];
      if (c == q) { ++pos_; break; }
      if (c != '\\') { out.push_back(c); ++pos_; continue; }
      if (pos_ + 1 >= n) Fail(s, "unterminated string literal");
      char e = src_[pos_ + 1];
      pos_ += 2;
      switch (e) {
        case '\n': break;
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'v': out.push_back('\v'); break;
        case 'a': out.push_back('\a'); break;
        case 'x': case 'u': case 'U': {
          int len = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
          if (pos_ + len > n) Fail(pos_, "truncated \\" + std::string(1, e) + " escape");
          char32_t cp = 0;
          for (int k = 0; k < len; ++k) {
            char h = src_[pos_ + k];
            if (!std::isxdigit(static_cast<unsigned char>(h))) Fail(pos_, "bad \\" + std::string(1, e) + " escape");
            cp = cp * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
          }
          pos_ += len;
          if (cp > 0x10ffff) Fail(pos_, "escape out of range");
          AppendUtf8(out, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = e - '0';
            for (int k = 0; k < 2 && pos_ < n && src_[pos_] >= '0' && src_[pos_] <= '7'; ++k) cp = cp * 8 + (src_[pos_++] - '0');
            AppendUtf8(out, cp);
          } else {
            out.push_back('\\');
            out.push_back(e);
          }
      }
    }
    Emit(Tok::kString, out, s);
  }

  void Emit(Tok type, std::string text, size_t at) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    LineCol(at, &t.line, &t.col);
    tokens_.push_back(std::move(t));
  }

  void LineCol(size_t at, int* line, int* col) {
    // Incremental: positions are emitted in increasing order.
    while (lc_pos_ < at && lc_pos_ < src_.size()) {
      if (src_[lc_pos_] == '\n') { ++lc_line_; lc_col_ = 1; } else { ++lc_col_; }
      ++lc_pos_;
    }
    *line = lc_line_;
    *col = lc_col_;
  }

  [[noreturn]] void Fail(size_t at, const std::string& msg) {
    int line = 1, col = 1;
    for (size_t k = 0; k < at && k < src_.size(); ++k) {
      if (src_[k] == '\n') { ++line; col = 1; } else { ++col; }
    }
    throw TemplateError("line " + std::to_string(line) + ":" + std::to_string(col) + ": " + msg);
  }

  const std::string& src_;
  size_t pos_ = 0;
  std::vector<Token> tokens_;
  size_t lc_pos_ = 0;
  int lc_line_ = 1, lc_col_ = 1;
};

}  // namespace

std::string NormalizeNewlines(const std::string& source) {
  std::string out;
  out.reserve(source.size());
  for (size_t k = 0; k < source.size();) {
    size_t len = LineBreakLen(source, k);
    if (len) {
      out.push_back('\n');
      k += len;
    } else {
      out.push_back(source[k++]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::vector<Token> Tokenize(const std::string& source) { return Lexer(source).Run(); }

}  // namespace inferd::chat
