#include "chat/parser.h"

#include <algorithm>
#include <cstdlib>
#include <initializer_list>
#include <unordered_set>
#include <utility>

#include "chat/lexer.h"

namespace inferd::chat {
namespace {

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : toks_(std::move(toks)) {}

  std::unique_ptr<Template> Run() {
    auto t = std::make_unique<Template>();
    std::string end;
    t->body = ParseBody({}, &end);
    return t;
  }

 private:
  // ---- token helpers ----
  const Token& Cur() const { return toks_[pos_]; }
  const Token& Peek(size_t k = 1) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  void Next() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  bool IsOp(const char* op) const { return Cur().type == Tok::kOp && Cur().text == op; }
  bool IsName(const char* n) const { return Cur().type == Tok::kName && Cur().text == n; }
  bool SkipOp(const char* op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(const char* n) {
    if (!IsName(n)) return false;
    Next();
    return true;
  }
  [[noreturn]] void Fail(const std::string& msg) const { FailAt(Cur(), msg); }
  [[noreturn]] static void FailAt(const Token& t, const std::string& msg) {
    throw TemplateError("line " + std::to_string(t.line) + ":" + std::to_string(t.col) + ": " + msg);
  }
  static std::string Describe(const Token& t) {
    switch (t.type) {
      case Tok::kEof: return "end of template";
      case Tok::kBlockEnd: return "'%}'";
      case Tok::kVarEnd: return "'}}'";
      case Tok::kName: return "name '" + t.text + "'";
      case Tok::kString: return "string";
      case Tok::kOp: return "'" + t.text + "'";
      default: return "token";
    }
  }
  void ExpectOp(const char* op) {
    if (!SkipOp(op)) Fail(std::string("expected '") + op + "', got " + Describe(Cur()));
  }
  std::string ExpectName() {
    if (Cur().type != Tok::kName) Fail("expected a name, got " + Describe(Cur()));
    std::string n = Cur().text;
    Next();
    return n;
  }
  void ExpectBlockEnd() {
    if (Cur().type != Tok::kBlockEnd) Fail("expected end of statement block, got " + Describe(Cur()));
    Next();
  }

  struct DepthGuard {
    explicit DepthGuard(Parser* p) : p_(p) {
      if (++p_->depth_ > kMaxParseDepth) p_->Fail("template nested too deeply");
    }
    ~DepthGuard() { --p_->depth_; }
    Parser* p_;
  };

  // Every child is attached through Push, which tracks the tree's depth: left-assoc chains
  // (`a+a+a...`, `x|f|f...`) nest without recursion in the parser, but evaluating or
  // destroying the tree recurses, so depth is capped here.
  void Push(Expr* parent, ExprPtr child) {
    if (child) parent->depth = std::max(parent->depth, child->depth + 1);
    if (parent->depth > kMaxExprDepth) Fail("expression nested too deeply");
    parent->args.push_back(std::move(child));
  }
  void PushKw(Expr* parent, const std::string& key, ExprPtr child) {
    parent->depth = std::max(parent->depth, child->depth + 1);
    if (parent->depth > kMaxExprDepth) Fail("expression nested too deeply");
    parent->kwargs.emplace_back(key, std::move(child));
  }

  ExprPtr Make(ExprKind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }

  // ---- statements ----

  // Parses nodes until a block tag whose name is in `ends` (or EOF when ends is empty).
  // Leaves the position after that tag's name; *end receives the name.
  Body ParseBody(std::initializer_list<const char*> ends, std::string* end) {
    DepthGuard g(this);
    Body body;
    while (true) {
      const Token& t = Cur();
      if (t.type == Tok::kEof) {
        if (ends.size() == 0) return body;
        std::string want;
        for (const char* e : ends) want += (want.empty() ? "'" : " or '") + std::string(e) + "'";
        Fail("unexpected end of template; expected " + want);
      }
      if (t.type == Tok::kData) {
        auto n = std::make_unique<Node>();
        n->kind = NodeKind::kText;
        n->line = t.line;
        n->text = t.text;
        body.push_back(std::move(n));
        Next();
      } else if (t.type == Tok::kVarBegin) {
        auto n = std::make_unique<Node>();
        n->kind = NodeKind::kOutput;
        n->line = t.line;
        Next();
        n->expr = ParseTuple(true, {});
        if (Cur().type != Tok::kVarEnd) Fail("expected '}}', got " + Describe(Cur()));
        Next();
        body.push_back(std::move(n));
      } else if (t.type == Tok::kBlockBegin) {
        Next();
        if (Cur().type != Tok::kName) Fail("expected a statement name, got " + Describe(Cur()));
        for (const char* e : ends) {
          if (Cur().text == e) {
            *end = e;
            Next();
            return body;
          }
        }
        body.push_back(ParseStatement());
      } else {
        Fail("unexpected " + Describe(t));
      }
    }
  }

  std::unique_ptr<Node> ParseStatement() {
    const Token& t = Cur();
    std::string kw = t.text;
    auto n = std::make_unique<Node>();
    n->line = t.line;
    Next();
    std::string end;
    if (kw == "if") {
      n->kind = NodeKind::kIf;
      while (true) {
        n->conds.push_back(ParseTuple(false, {}));
        ExpectBlockEnd();
        n->bodies.push_back(ParseBody({"elif", "else", "endif"}, &end));
        if (end != "elif") break;
      }
      if (end == "else") {
        ExpectBlockEnd();
        n->else_body = ParseBody({"endif"}, &end);
      }
      ExpectBlockEnd();
    } else if (kw == "for") {
      n->kind = NodeKind::kFor;
      n->targets = ParseTargetNames();
      if (!SkipName("in")) Fail("expected 'in' in for loop, got " + Describe(Cur()));
      n->expr = ParseTuple(false, {"recursive", "if"});
      if (SkipName("if")) n->cond = ParseExpression(true);
      if (IsName("recursive")) Fail("recursive for loops are not supported");
      ExpectBlockEnd();
      ++loop_depth_;
      n->body = ParseBody({"endfor", "else"}, &end);
      --loop_depth_;
      if (end == "else") {
        ExpectBlockEnd();
        n->else_body = ParseBody({"endfor"}, &end);
      }
      ExpectBlockEnd();
    } else if (kw == "set") {
      n->kind = NodeKind::kSet;
      if (Cur().type == Tok::kName && Peek().type == Tok::kOp && Peek().text == ".") {
        n->targets.push_back(ExpectName());
        Next();
        n->text = ExpectName();
      } else {
        n->targets = ParseTargetNames();
      }
      if (SkipOp("=")) {
        n->expr = ParseTuple(true, {});
        ExpectBlockEnd();
      } else {
        if (!n->text.empty() || n->targets.size() != 1) Fail("block set needs a single name");
        if (IsOp("|")) n->cond = ParseFilters(nullptr);
        ExpectBlockEnd();
        n->body = ParseBody({"endset"}, &end);
        ExpectBlockEnd();
      }
    } else if (kw == "macro") {
      n->kind = NodeKind::kMacro;
      n->text = ExpectName();
      ParseSignature(n.get());
      ExpectBlockEnd();
      int saved = std::exchange(loop_depth_, 0);  // a macro body is a function of its own
      n->body = ParseBody({"endmacro"}, &end);
      loop_depth_ = saved;
      if (Cur().type == Tok::kName) Next();  // {% endmacro name %}
      ExpectBlockEnd();
    } else if (kw == "call") {
      n->kind = NodeKind::kCallBlock;
      if (IsOp("(")) ParseSignature(n.get());
      n->expr = ParseExpression(true);
      if (n->expr->kind != ExprKind::kCall) Fail("expected a call in call block");
      ExpectBlockEnd();
      int saved = std::exchange(loop_depth_, 0);
      n->body = ParseBody({"endcall"}, &end);
      loop_depth_ = saved;
      ExpectBlockEnd();
    } else if (kw == "filter") {
      n->kind = NodeKind::kFilterBlock;
      n->expr = ParseFilterChainAfterName();
      ExpectBlockEnd();
      n->body = ParseBody({"endfilter"}, &end);
      ExpectBlockEnd();
    } else if (kw == "generation") {
      n->kind = NodeKind::kScope;
      ExpectBlockEnd();
      n->body = ParseBody({"endgeneration"}, &end);
      ExpectBlockEnd();
    } else if (kw == "break" || kw == "continue") {
      if (loop_depth_ == 0) FailAt(t, "'" + kw + "' outside of a loop");
      n->kind = kw == "break" ? NodeKind::kBreak : NodeKind::kContinue;
      ExpectBlockEnd();
    } else {
      FailAt(t, "encountered unknown tag '" + kw + "'");
    }
    return n;
  }

  // macro/call signature: (a, b=default, ...)
  void ParseSignature(Node* n) {
    ExpectOp("(");
    while (!IsOp(")")) {
      if (!n->targets.empty()) ExpectOp(",");
      if (IsOp(")")) break;
      n->targets.push_back(ExpectName());
      n->conds.push_back(SkipOp("=") ? ParseExpression(true) : nullptr);
    }
    ExpectOp(")");
  }

  std::vector<std::string> ParseTargetNames() {
    std::vector<std::string> names;
    bool paren = SkipOp("(");
    do {
      if (paren && IsOp(")")) break;
      names.push_back(ExpectName());
    } while (SkipOp(","));
    if (paren) ExpectOp(")");
    return names;
  }

  // `{% filter a(x)|b %}`: the first filter name comes without a leading `|`.
  ExprPtr ParseFilterChainAfterName() {
    ExprPtr e = ParseOneFilter(nullptr);
    while (SkipOp("|")) e = ParseOneFilter(std::move(e));
    return e;
  }

  ExprPtr ParseFilters(ExprPtr base) {
    while (SkipOp("|")) base = ParseOneFilter(std::move(base));
    return base;
  }

  ExprPtr ParseOneFilter(ExprPtr base) {
    auto f = Make(ExprKind::kFilter, Cur().line);
    f->name = ExpectName();
    while (IsOp(".") && Peek().type == Tok::kName) {
      Next();
      f->name += "." + ExpectName();
    }
    Push(f.get(), std::move(base));
    if (IsOp("(")) ParseCallArgs(f.get());
    return f;
  }

  // ---- expressions ----
  bool IsTupleEnd(std::initializer_list<const char*> extra) const {
    const Token& t = Cur();
    if (t.type == Tok::kVarEnd || t.type == Tok::kBlockEnd || t.type == Tok::kEof) return true;
    if (t.type == Tok::kOp && t.text == ")") return true;
    if (t.type == Tok::kName)
      for (const char* e : extra)
        if (t.text == e) return true;
    return false;
  }

  ExprPtr ParseTuple(bool with_condexpr, std::initializer_list<const char*> extra, bool explicit_parens = false) {
    int line = Cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) ExpectOp(",");
      if (IsTupleEnd(extra)) break;
      items.push_back(with_condexpr ? ParseExpression(true) : ParseOr());
      if (IsOp(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) Fail("expected an expression, got " + Describe(Cur()));
    }
    auto t = Make(ExprKind::kTuple, line);
    t->args = std::move(items);
    return t;
  }

  ExprPtr ParseExpression(bool with_condexpr) {
    DepthGuard g(this);
    if (!with_condexpr) return ParseOr();
    ExprPtr e = ParseOr();
    while (IsName("if")) {
      int line = Cur().line;
      Next();
      auto c = Make(ExprKind::kCondExpr, line);
      ExprPtr cond = ParseOr();
      ExprPtr other = SkipName("else") ? ParseExpression(true) : nullptr;
      Push(c.get(), std::move(e));
      Push(c.get(), std::move(cond));
      Push(c.get(), std::move(other));
      e = std::move(c);
    }
    return e;
  }

  ExprPtr Binary(const std::string& op, ExprPtr a, ExprPtr b, int line) {
    auto e = Make(ExprKind::kBinary, line);
    e->name = op;
    Push(e.get(), std::move(a));
    Push(e.get(), std::move(b));
    return e;
  }

  ExprPtr ParseOr() {
    ExprPtr e = ParseAnd();
    while (IsName("or")) {
      int line = Cur().line;
      Next();
      e = Binary("or", std::move(e), ParseAnd(), line);
    }
    return e;
  }

  ExprPtr ParseAnd() {
    ExprPtr e = ParseNot();
    while (IsName("and")) {
      int line = Cur().line;
      Next();
      e = Binary("and", std::move(e), ParseNot(), line);
    }
    return e;
  }

  ExprPtr ParseNot() {
    if (IsName("not")) {
      DepthGuard g(this);
      auto e = Make(ExprKind::kUnary, Cur().line);
      Next();
      e->name = "not";
      Push(e.get(), ParseNot());
      return e;
    }
    return ParseCompare();
  }

  ExprPtr ParseCompare() {
    int line = Cur().line;
    ExprPtr first = ParseMath1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (Cur().type == Tok::kOp &&
          (Cur().text == "==" || Cur().text == "!=" || Cur().text == "<" || Cur().text == ">" ||
           Cur().text == "<=" || Cur().text == ">=")) {
        op = Cur().text;
        Next();
      } else if (IsName("in")) {
        op = "in";
        Next();
      } else if (IsName("not") && Peek().type == Tok::kName && Peek().text == "in") {
        op = "notin";
        Next();
        Next();
      } else {
        break;
      }
      if (!cmp) {
        cmp = Make(ExprKind::kCompare, line);
        Push(cmp.get(), std::move(first));
      }
      cmp->ops.push_back(op);
      Push(cmp.get(), ParseMath1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  ExprPtr ParseMath1() {
    ExprPtr e = ParseConcat();
    while (IsOp("+") || IsOp("-")) {
      std::string op = Cur().text;
      int line = Cur().line;
      Next();
      e = Binary(op, std::move(e), ParseConcat(), line);
    }
    return e;
  }

  ExprPtr ParseConcat() {
    ExprPtr e = ParseMath2();
    while (IsOp("~")) {
      int line = Cur().line;
      Next();
      e = Binary("~", std::move(e), ParseMath2(), line);
    }
    return e;
  }

  ExprPtr ParseMath2() {
    ExprPtr e = ParsePow();
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      std::string op = Cur().text;
      int line = Cur().line;
      Next();
      e = Binary(op, std::move(e), ParsePow(), line);
    }
    return e;
  }

  ExprPtr ParsePow() {
    ExprPtr e = ParseUnary(true);
    while (IsOp("**")) {
      int line = Cur().line;
      Next();
      e = Binary("**", std::move(e), ParseUnary(true), line);
    }
    return e;
  }

  ExprPtr ParseUnary(bool with_filter) {
    DepthGuard g(this);
    ExprPtr e;
    if (IsOp("-") || IsOp("+")) {
      e = Make(ExprKind::kUnary, Cur().line);
      e->name = Cur().text;
      Next();
      Push(e.get(), ParseUnary(false));
    } else {
      e = ParsePrimary();
    }
    e = ParsePostfix(std::move(e));
    if (with_filter) e = ParseFilterExpr(std::move(e));
    return e;
  }

  ExprPtr ParsePrimary() {
    const Token& t = Cur();
    int line = t.line;
    switch (t.type) {
      case Tok::kName: {
        auto e = Make(ExprKind::kLiteral, line);
        if (t.text == "true" || t.text == "True") e->literal = Value::Bool(true);
        else if (t.text == "false" || t.text == "False") e->literal = Value::Bool(false);
        else if (t.text == "none" || t.text == "None") e->literal = Value::None();
        else {
          e->kind = ExprKind::kName;
          e->name = t.text;
        }
        Next();
        return e;
      }
      case Tok::kString: {
        std::string s;
        while (Cur().type == Tok::kString) {
          s += Cur().text;
          Next();
        }
        auto e = Make(ExprKind::kLiteral, line);
        e->literal = Value::Str(std::move(s));
        return e;
      }
      case Tok::kInt: {
        auto e = Make(ExprKind::kLiteral, line);
        errno = 0;
        long long v = std::strtoll(t.text.c_str(), nullptr, 10);
        if (errno == ERANGE) e->literal = Value::Float(std::strtod(t.text.c_str(), nullptr));
        else e->literal = Value::Int(v);
        Next();
        return e;
      }
      case Tok::kFloat: {
        auto e = Make(ExprKind::kLiteral, line);
        e->literal = Value::Float(std::strtod(t.text.c_str(), nullptr));
        Next();
        return e;
      }
      case Tok::kOp:
        if (t.text == "(") {
          Next();
          ExprPtr e = ParseTuple(true, {}, true);
          ExpectOp(")");
          return e;
        }
        if (t.text == "[") {
          Next();
          auto e = Make(ExprKind::kList, line);
          while (!IsOp("]")) {
            if (!e->args.empty()) ExpectOp(",");
            if (IsOp("]")) break;
            Push(e.get(), ParseExpression(true));
          }
          ExpectOp("]");
          return e;
        }
        if (t.text == "{") {
          Next();
          auto e = Make(ExprKind::kDict, line);
          while (!IsOp("}")) {
            if (!e->args.empty()) ExpectOp(",");
            if (IsOp("}")) break;
            Push(e.get(), ParseExpression(true));
            ExpectOp(":");
            Push(e.get(), ParseExpression(true));
          }
          ExpectOp("}");
          return e;
        }
        break;
      default: break;
    }
    Fail("unexpected " + Describe(t));
  }

  ExprPtr ParsePostfix(ExprPtr e) {
    while (true) {
      if (IsOp(".") || IsOp("[")) e = ParseSubscript(std::move(e));
      else if (IsOp("(")) e = ParseCall(std::move(e));
      else return e;
    }
  }

  ExprPtr ParseFilterExpr(ExprPtr e) {
    while (true) {
      if (IsOp("|")) {
        Next();
        e = ParseOneFilter(std::move(e));
      } else if (IsName("is")) {
        e = ParseTest(std::move(e));
      } else if (IsOp("(")) {
        e = ParseCall(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr ParseSubscript(ExprPtr base) {
    int line = Cur().line;
    if (SkipOp(".")) {
      if (Cur().type == Tok::kInt) {
        auto e = Make(ExprKind::kGetItem, line);
        Push(e.get(), std::move(base));
        auto idx = Make(ExprKind::kLiteral, line);
        idx->literal = Value::Int(std::strtoll(Cur().text.c_str(), nullptr, 10));
        Next();
        Push(e.get(), std::move(idx));
        return e;
      }
      auto e = Make(ExprKind::kGetAttr, line);
      e->name = ExpectName();
      Push(e.get(), std::move(base));
      return e;
    }
    ExpectOp("[");
    ExprPtr start, stop, step;
    bool is_slice = false;
    if (!IsOp(":")) start = ParseExpression(true);
    if (SkipOp(":")) {
      is_slice = true;
      if (!IsOp("]") && !IsOp(":")) stop = ParseExpression(true);
      if (SkipOp(":") && !IsOp("]")) step = ParseExpression(true);
    }
    ExpectOp("]");
    auto e = Make(is_slice ? ExprKind::kSlice : ExprKind::kGetItem, line);
    Push(e.get(), std::move(base));
    Push(e.get(), std::move(start));
    if (is_slice) {
      Push(e.get(), std::move(stop));
      Push(e.get(), std::move(step));
    }
    return e;
  }

  void ParseCallArgs(Expr* call) {
    ExpectOp("(");
    bool first = true;
    while (!IsOp(")")) {
      if (!first) ExpectOp(",");
      first = false;
      if (IsOp(")")) break;
      if (IsOp("*") || IsOp("**")) Fail("*args / **kwargs in calls are not supported");
      if (Cur().type == Tok::kName && Peek().type == Tok::kOp && Peek().text == "=") {
        std::string key = ExpectName();
        Next();
        PushKw(call, key, ParseExpression(true));
      } else {
        if (!call->kwargs.empty()) Fail("positional argument follows keyword argument");
        Push(call, ParseExpression(true));
      }
    }
    ExpectOp(")");
  }

  ExprPtr ParseCall(ExprPtr callee) {
    auto e = Make(ExprKind::kCall, Cur().line);
    Push(e.get(), std::move(callee));
    ParseCallArgs(e.get());
    return e;
  }

  ExprPtr ParseTest(ExprPtr base) {
    auto e = Make(ExprKind::kTest, Cur().line);
    Next();  // 'is'
    if (SkipName("not")) e->negated = true;
    e->name = ExpectName();
    while (IsOp(".") && Peek().type == Tok::kName) {
      Next();
      e->name += "." + ExpectName();
    }
    Push(e.get(), std::move(base));
    const Token& t = Cur();
    if (IsOp("(")) {
      ParseCallArgs(e.get());
    } else if ((t.type == Tok::kName || t.type == Tok::kString || t.type == Tok::kInt || t.type == Tok::kFloat ||
                IsOp("[") || IsOp("{")) &&
               !(IsName("else") || IsName("or") || IsName("and"))) {
      if (IsName("is")) Fail("you cannot chain multiple tests with is");
      Push(e.get(), ParsePostfix(ParsePrimary()));
    }
    return e;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;  // enclosing for-loop bodies within the current macro / template
};

// jinja2 resolves filter and test names at compile time: an unknown name is a syntax
// error, unless it sits directly in an `if` statement or conditional expression (a "soft"
// frame), where it fails only when evaluated. Loop, macro, call, filter-block and block-set
// bodies open a new frame, which is not soft. The name lists are jinja2's builtins, so that
// what fails to compile here is exactly what fails to compile there.
class NameChecker {
 public:
  void CheckBody(const Body& body, bool soft) {
    for (const auto& n : body) CheckNode(*n, soft);
  }

 private:
  void CheckNode(const Node& n, bool soft) {
    switch (n.kind) {
      case NodeKind::kIf:
        for (const auto& c : n.conds) CheckExpr(c.get(), true);
        for (const auto& b : n.bodies) CheckBody(b, true);
        CheckBody(n.else_body, true);
        return;
      case NodeKind::kFor:
        CheckExpr(n.expr.get(), soft);
        CheckExpr(n.cond.get(), false);
        CheckBody(n.body, false);
        CheckBody(n.else_body, false);
        return;
      case NodeKind::kSet:
        CheckExpr(n.expr.get(), soft);
        CheckExpr(n.cond.get(), false);
        CheckBody(n.body, false);
        return;
      case NodeKind::kMacro:
        for (const auto& d : n.conds) CheckExpr(d.get(), false);
        CheckBody(n.body, false);
        return;
      case NodeKind::kCallBlock:
      case NodeKind::kFilterBlock:
        CheckExpr(n.expr.get(), soft);
        CheckBody(n.body, false);
        return;
      case NodeKind::kScope: CheckBody(n.body, soft); return;
      case NodeKind::kOutput: CheckExpr(n.expr.get(), soft); return;
      default: return;
    }
  }

  void CheckExpr(const Expr* e, bool soft) {
    if (!e) return;
    if (e->kind == ExprKind::kCondExpr) soft = true;
    if (!soft && e->kind == ExprKind::kFilter && !kFilters.count(e->name))
      throw TemplateError("line " + std::to_string(e->line) + ": no filter named '" + e->name + "'");
    if (!soft && e->kind == ExprKind::kTest && !kTests.count(e->name))
      throw TemplateError("line " + std::to_string(e->line) + ": no test named '" + e->name + "'");
    for (const auto& a : e->args) CheckExpr(a.get(), soft);
    for (const auto& kw : e->kwargs) CheckExpr(kw.second.get(), soft);
  }

  inline static const std::unordered_set<std::string> kFilters = {
      "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
      "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "items", "join",
      "last", "length", "list", "lower", "map", "max", "min", "pprint", "random", "reject", "rejectattr",
      "replace", "reverse", "round", "safe", "select", "selectattr", "slice", "sort", "string", "striptags",
      "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "urlencode", "urlize", "wordcount",
      "wordwrap", "xmlattr"};
  inline static const std::unordered_set<std::string> kTests = {
      "!=", "<", "<=", "==", ">", ">=", "boolean", "callable", "defined", "divisibleby", "eq", "equalto",
      "escaped", "even", "false", "filter", "float", "ge", "greaterthan", "gt", "in", "integer", "iterable",
      "le", "lessthan", "lower", "lt", "mapping", "ne", "none", "number", "odd", "sameas", "sequence",
      "string", "test", "true", "undefined", "upper"};
};

}  // namespace

std::unique_ptr<Template> ParseTemplate(const std::string& source) {
  std::unique_ptr<Template> t = Parser(Tokenize(NormalizeNewlines(source))).Run();
  NameChecker().CheckBody(t->body, false);
  return t;
}

}  // namespace inferd::chat
