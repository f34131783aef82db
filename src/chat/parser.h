// Parser: tokens -> Template (ast.h), following jinja2's grammar and operator precedence
// (jinja2/parser.py): or < and < not < comparisons < + - < ~ < * / // % < ** < unary,
// with filters (`|`) and tests (`is`) binding to the unary operand.
#pragma once

#include <memory>
#include <string>

#include "chat/ast.h"

namespace inferd::chat {

// Throws TemplateError("line L:C: ...") on syntax errors. Nesting deeper than
// kMaxParseDepth (expressions or blocks) is rejected rather than overflowing the stack.
std::unique_ptr<Template> ParseTemplate(const std::string& source);

inline constexpr int kMaxParseDepth = 128;
inline constexpr int kMaxExprDepth = 512;

}  // namespace inferd::chat
