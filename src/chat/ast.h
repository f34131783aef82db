// Syntax tree of a parsed template. Immutable after parsing, so one tree is shared by all
// concurrent renders.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/value.h"

namespace inferd::chat {

enum class ExprKind {
  kLiteral,   // literal
  kName,      // name
  kList,      // args: items
  kTuple,     // args: items
  kDict,      // args: key0, value0, key1, value1, ...
  kGetAttr,   // args[0].name
  kGetItem,   // args[0][args[1]]
  kSlice,     // args[0][args[1]:args[2]:args[3]]; absent parts are null
  kCall,      // args[0](args[1..], kwargs)
  kFilter,    // args[0] | name(args[1..], kwargs); args[0] null inside {% filter %}
  kTest,      // args[0] is name(args[1..]); negated: `is not`
  kUnary,     // op: "-", "+", "not"; args[0]
  kBinary,    // op: + - * / // % ** ~ and or; args[0], args[1]
  kCompare,   // args[0] ops[0] args[1] ops[1] args[2] ... (chained)
  kCondExpr,  // args[0] if args[1] else args[2] (args[2] may be null)
};

struct Expr {
  ExprKind kind;
  int line = 0;
  int depth = 1;  // height of this subtree
  Value literal;
  std::string name;  // kName, kGetAttr, kFilter, kTest; operator for kUnary / kBinary
  bool negated = false;
  std::vector<std::unique_ptr<Expr>> args;
  std::vector<std::string> ops;  // kCompare
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
};
using ExprPtr = std::unique_ptr<Expr>;

enum class NodeKind {
  kText,      // text
  kOutput,    // {{ expr }}
  kIf,        // conds[k] -> bodies[k]; else_body
  kFor,       // for targets in expr [if cond] body [else else_body]
  kSet,       // targets = expr; or ns.attr = expr; or block set (body, optional filter)
  kMacro,     // name(params=defaults) body
  kCallBlock, // {% call macro(args) %}body{% endcall %}: expr is the call, body is caller()
  kFilterBlock,  // {% filter f %}body{% endfilter %}: expr is the filter chain
  kScope,     // body rendered as-is ({% generation %})
  kBreak,
  kContinue,
};

struct Node;
using Body = std::vector<std::unique_ptr<Node>>;

struct Node {
  NodeKind kind;
  int line = 0;
  std::string text;                  // kText; kMacro name; kSet namespace attribute
  ExprPtr expr;                      // kOutput, kFor iterable, kSet value, kCallBlock, kFilterBlock
  ExprPtr cond;                      // kFor filter
  std::vector<std::string> targets;  // kFor / kSet names; kMacro params
  std::vector<ExprPtr> conds;        // kIf; kMacro defaults (null when none)
  std::vector<Body> bodies;          // kIf
  Body body;
  Body else_body;
};

struct Template {
  Body body;
};

}  // namespace inferd::chat
