// Lexer for the jinja2 template language with the settings transformers uses for chat
// templates: trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False.
//
// Whitespace control is resolved here, so the parser sees data tokens that are already
// stripped: `{%-`/`-%}` strip all whitespace on that side, a block or comment tag eats one
// newline after it (trim_blocks), and spaces/tabs between a line start and a block or
// comment tag are removed (lstrip_blocks) unless the tag opens with `+`.
#pragma once

#include <string>
#include <vector>

namespace inferd::chat {

enum class Tok {
  kData,        // literal template text
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,  // text holds the unescaped value
  kInt,
  kFloat,
  kOp,  // text holds the operator: + - * / // % ** ~ == != < > <= >= = . : | , ( ) [ ] { }
  kEof,
};

struct Token {
  Tok type;
  std::string text;
  int line = 1;
  int col = 1;
};

// Throws TemplateError("line L:C: message") on malformed input (unterminated tag or string,
// unexpected character).
std::vector<Token> Tokenize(const std::string& source);

// jinja2 normalizes \r\n, \r and \n to "\n" and drops a
// single trailing newline.
std::string NormalizeNewlines(const std::string& source);

}  // namespace inferd::chat
