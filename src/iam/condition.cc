#include "iam/condition.h"

#include "common/time.h"

namespace moat::iam {

namespace {

constexpr std::string_view kSupported =
    "supported: request.time, resource.name, resource.type, resource.service, "
    "timestamp(\"RFC 3339\"), string literals, true, false, ==, !=, <, <=, >, >=, "
    ".startsWith(), .endsWith(), &&, ||, ! and parentheses";
constexpr int kMaxDepth = 32;

enum class Tok {
  kEnd,
  kIdent,
  kString,
  kLParen,
  kRParen,
  kDot,
  kComma,
  kNot,
  kAnd,
  kOr,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kOther,  // outside the subset; text names it
  kBad
};  // not CEL at all; text is the reason

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;  // identifier name, decoded string literal, or the raw operator text
  size_t pos = 0;
};

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }

}  // namespace

std::string_view ConditionResultName(ConditionResult r) {
  switch (r) {
    case ConditionResult::kFalse:
      return "false";
    case ConditionResult::kTrue:
      return "true";
    case ConditionResult::kError:
      return "error";
  }
  return "error";
}

// Recursive-descent parser + type checker producing CompiledCondition nodes.
class ConditionParser {
 public:
  using Node = CompiledCondition::Node;
  using Op = CompiledCondition::Op;
  using Type = CompiledCondition::Type;

  explicit ConditionParser(std::string_view expr) : expr_(expr) {}

  Result<CompiledCondition> Run() {
    Lex();
    MOAT_TRY(int32_t root, ParseOr(0));
    if (Peek().kind != Tok::kEnd) return Unexpected(Peek());
    if (out_.nodes_[root].type != Type::kBool) {
      return Invalid("the expression must evaluate to a boolean");
    }
    out_.expression_ = std::string(expr_);
    out_.root_ = root;
    return std::move(out_);
  }

 private:
  Error Unsupported(std::string_view what) {
    return InvalidArgument("condition expression `" + std::string(expr_) + "` uses `" +
                           std::string(what) + "`, which Moat does not support; " +
                           std::string(kSupported));
  }
  Error Invalid(std::string_view why) {
    return InvalidArgument("condition expression `" + std::string(expr_) +
                           "` is not valid: " + std::string(why));
  }
  Error Unexpected(const Token& t) {
    if (t.kind == Tok::kEnd) return Invalid("unexpected end of expression");
    if (t.kind == Tok::kOther) return Unsupported(t.text);
    if (t.kind == Tok::kBad) return Invalid(t.text);
    if (t.kind == Tok::kIdent && t.text == "in") return Unsupported("in");
    return Invalid("unexpected `" + t.text + "` at position " + std::to_string(t.pos + 1));
  }

  // Lexes everything up to the first lexeme Moat cannot handle, which becomes a kOther/kBad
  // token: the parser reports it only if nothing earlier was already wrong, so the error
  // names the leftmost problem.
  void Lex() {
    size_t i = 0;
    auto stop = [this](Tok kind, std::string text, size_t pos) {
      Token t;
      t.kind = kind;
      t.text = std::move(text);
      t.pos = pos;
      tokens_.push_back(std::move(t));
    };
    const size_t n = expr_.size();
    while (i < n) {
      char c = expr_[i];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++i;
        continue;
      }
      Token t;
      t.pos = i;
      if (IsIdentStart(c)) {
        size_t j = i;
        while (j < n && IsIdentChar(expr_[j])) ++j;
        t.kind = Tok::kIdent;
        t.text = std::string(expr_.substr(i, j - i));
        if (j < n && (expr_[j] == '"' || expr_[j] == '\'') &&
            (t.text == "r" || t.text == "R" || t.text == "b" || t.text == "B")) {
          return stop(Tok::kOther, t.text + expr_[j] + "…" + expr_[j] + " literals", i);
        }
        i = j;
      } else if (c == '"' || c == '\'') {
        if (i + 2 < n && expr_[i + 1] == c && expr_[i + 2] == c) {
          return stop(Tok::kOther, "triple-quoted strings", i);
        }
        size_t j = i + 1;
        std::string value;
        bool closed = false;
        while (j < n) {
          char d = expr_[j];
          if (d == c) {
            closed = true;
            ++j;
            break;
          }
          if (d == '\n' || d == '\r') break;
          if (d == '\\') {
            if (j + 1 >= n) break;
            char e = expr_[j + 1];
            if (e != '\\' && e != '\'' && e != '"') {
              return stop(Tok::kOther, std::string("\\") + e + " escapes", i);
            }
            value += e;
            j += 2;
            continue;
          }
          value += d;
          ++j;
        }
        if (!closed)
          return stop(Tok::kBad, "unterminated string at position " + std::to_string(i + 1), i);
        t.kind = Tok::kString;
        t.text = std::move(value);
        i = j;
      } else {
        auto two = expr_.substr(i, 2);
        struct Sym {
          std::string_view s;
          Tok k;
        };
        static constexpr Sym kSyms[] = {{"&&", Tok::kAnd},   {"||", Tok::kOr},    {"==", Tok::kEq},
                                        {"!=", Tok::kNe},    {"<=", Tok::kLe},    {">=", Tok::kGe},
                                        {"<", Tok::kLt},     {">", Tok::kGt},     {"!", Tok::kNot},
                                        {"(", Tok::kLParen}, {")", Tok::kRParen}, {".", Tok::kDot},
                                        {",", Tok::kComma}};
        bool found = false;
        for (const auto& sym : kSyms) {
          if (two.substr(0, sym.s.size()) == sym.s) {
            t.kind = sym.k;
            t.text = std::string(sym.s);
            i += sym.s.size();
            found = true;
            break;
          }
        }
        if (!found) {
          // Numbers, arithmetic, lists, maps, ternaries, `in`… — name the first such token.
          size_t j = i + 1;
          if (c >= '0' && c <= '9') {
            while (j < n && (IsIdentChar(expr_[j]) || expr_[j] == '.')) ++j;
            return stop(Tok::kOther,
                        "number literals (" + std::string(expr_.substr(i, j - i)) + ")", i);
          }
          t.kind = Tok::kOther;
          t.text = std::string(1, c);
          if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
            return stop(Tok::kBad, "unexpected character at position " + std::to_string(i + 1), i);
          }
          return stop(Tok::kOther, t.text, i);
        }
      }
      tokens_.push_back(std::move(t));
    }
    Token end;
    end.pos = n;
    tokens_.push_back(end);
  }

  const Token& Peek(size_t ahead = 0) const {
    size_t k = std::min(pos_ + ahead, tokens_.size() - 1);
    return tokens_[k];
  }
  const Token& Next() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }

  int32_t Add(Node node) {
    out_.nodes_.push_back(std::move(node));
    return static_cast<int32_t>(out_.nodes_.size() - 1);
  }
  Type TypeOf(int32_t n) const { return out_.nodes_[n].type; }
  static std::string_view TypeName(Type t) {
    switch (t) {
      case Type::kBool:
        return "a boolean";
      case Type::kString:
        return "a string";
      case Type::kTimestamp:
        return "a timestamp";
    }
    return "?";
  }

  Result<int32_t> Logical(Op op, int32_t lhs, int32_t rhs, std::string_view sym) {
    if (TypeOf(lhs) != Type::kBool || TypeOf(rhs) != Type::kBool) {
      return Invalid("`" + std::string(sym) + "` needs boolean operands");
    }
    if (++logical_ops_ > kMaxLogicalOperators) {
      return Invalid("more than " + std::to_string(kMaxLogicalOperators) +
                     " logical operators (`&&`, `||`)");
    }
    Node node{op, Type::kBool};
    node.lhs = lhs;
    node.rhs = rhs;
    return Add(std::move(node));
  }

  Result<int32_t> ParseOr(int depth) {
    if (depth > kMaxDepth) return Invalid("nesting deeper than 32");
    MOAT_TRY(int32_t lhs, ParseAnd(depth));
    while (Peek().kind == Tok::kOr) {
      Next();
      MOAT_TRY(int32_t rhs, ParseAnd(depth));
      MOAT_TRY(lhs, Logical(Op::kOr, lhs, rhs, "||"));
    }
    return lhs;
  }

  Result<int32_t> ParseAnd(int depth) {
    MOAT_TRY(int32_t lhs, ParseUnary(depth));
    while (Peek().kind == Tok::kAnd) {
      Next();
      MOAT_TRY(int32_t rhs, ParseUnary(depth));
      MOAT_TRY(lhs, Logical(Op::kAnd, lhs, rhs, "&&"));
    }
    return lhs;
  }

  Result<int32_t> ParseUnary(int depth) {
    if (Peek().kind == Tok::kNot) {
      if (depth > kMaxDepth) return Invalid("nesting deeper than 32");
      Next();
      MOAT_TRY(int32_t operand, ParseUnary(depth + 1));
      if (TypeOf(operand) != Type::kBool) return Invalid("`!` needs a boolean operand");
      Node node{Op::kNot, Type::kBool};
      node.lhs = operand;
      return Add(std::move(node));
    }
    return ParseComparison(depth);
  }

  Result<int32_t> ParseComparison(int depth) {
    MOAT_TRY(int32_t lhs, ParsePostfix(depth));
    for (;;) {
      Tok k = Peek().kind;
      Op op;
      switch (k) {
        case Tok::kEq:
          op = Op::kEq;
          break;
        case Tok::kNe:
          op = Op::kNe;
          break;
        case Tok::kLt:
          op = Op::kLt;
          break;
        case Tok::kLe:
          op = Op::kLe;
          break;
        case Tok::kGt:
          op = Op::kGt;
          break;
        case Tok::kGe:
          op = Op::kGe;
          break;
        default:
          return lhs;
      }
      std::string sym = Next().text;
      MOAT_TRY(int32_t rhs, ParsePostfix(depth));
      Type lt = TypeOf(lhs), rt = TypeOf(rhs);
      if (lt != rt) {
        return Invalid("`" + sym + "` compares " + std::string(TypeName(lt)) + " with " +
                       std::string(TypeName(rt)));
      }
      if (op != Op::kEq && op != Op::kNe && lt != Type::kTimestamp) {
        return Unsupported(sym + " on " + std::string(lt == Type::kBool ? "booleans" : "strings"));
      }
      Node node{op, Type::kBool};
      node.lhs = lhs;
      node.rhs = rhs;
      lhs = Add(std::move(node));
    }
  }

  Result<int32_t> ParsePostfix(int depth) {
    MOAT_TRY(int32_t recv, ParsePrimary(depth));
    while (Peek().kind == Tok::kDot) {
      Next();
      const Token& name = Next();
      if (name.kind != Tok::kIdent) return Unexpected(name);
      std::string method = name.text;
      if (Peek().kind != Tok::kLParen) return Unsupported("." + method);
      if (method != "startsWith" && method != "endsWith") return Unsupported("." + method + "()");
      Next();
      MOAT_TRY(int32_t arg, ParseOr(depth + 1));
      if (Peek().kind == Tok::kComma) return Invalid("`." + method + "()` takes one argument");
      if (Next().kind != Tok::kRParen)
        return Invalid("expected `)` after the argument of `." + method + "()`");
      if (TypeOf(recv) != Type::kString || TypeOf(arg) != Type::kString) {
        return Invalid("`." + method + "()` needs a string receiver and a string argument");
      }
      Node node{method == "startsWith" ? Op::kStartsWith : Op::kEndsWith, Type::kBool};
      node.lhs = recv;
      node.rhs = arg;
      recv = Add(std::move(node));
    }
    return recv;
  }

  Result<int32_t> ParsePrimary(int depth) {
    if (depth > kMaxDepth) return Invalid("nesting deeper than 32");
    const Token& t = Next();
    switch (t.kind) {
      case Tok::kLParen: {
        MOAT_TRY(int32_t inner, ParseOr(depth + 1));
        if (Next().kind != Tok::kRParen) return Invalid("missing `)`");
        return inner;
      }
      case Tok::kString: {
        Node node{Op::kString, Type::kString};
        node.string_value = t.text;
        return Add(std::move(node));
      }
      case Tok::kIdent:
        return ParseIdent(t);
      default:
        return Unexpected(t);
    }
  }

  Result<int32_t> ParseIdent(const Token& first) {
    if (first.text == "true" || first.text == "false") {
      Node node{Op::kBool, Type::kBool};
      node.bool_value = first.text == "true";
      return Add(std::move(node));
    }
    if (Peek().kind == Tok::kLParen) {
      if (first.text != "timestamp") return Unsupported(first.text + "()");
      Next();
      const Token& arg = Next();
      if (arg.kind != Tok::kString) {
        return Invalid("`timestamp()` takes one string literal in RFC 3339 format");
      }
      std::string text = arg.text;
      if (Next().kind != Tok::kRParen) return Invalid("`timestamp()` takes one argument");
      auto tp = ParseRfc3339(text);
      if (!tp) {
        return Invalid("`" + text +
                       "` is not an RFC 3339 timestamp such as "
                       "\"2030-01-01T00:00:00Z\"");
      }
      Node node{Op::kTimestamp, Type::kTimestamp};
      node.time_value = *tp;
      return Add(std::move(node));
    }
    // An attribute path: ident(.ident)* not followed by `(` (that would be a method call).
    std::string path = first.text;
    while (Peek().kind == Tok::kDot && Peek(1).kind == Tok::kIdent &&
           Peek(2).kind != Tok::kLParen) {
      Next();
      path += "." + Next().text;
    }
    Node node{Op::kRequestTime, Type::kTimestamp};
    if (path == "request.time") {
      node = Node{Op::kRequestTime, Type::kTimestamp};
    } else if (path == "resource.name") {
      node = Node{Op::kResourceName, Type::kString};
    } else if (path == "resource.type") {
      node = Node{Op::kResourceType, Type::kString};
    } else if (path == "resource.service") {
      node = Node{Op::kResourceService, Type::kString};
    } else {
      if (Peek().kind == Tok::kDot && Peek(1).kind == Tok::kIdent && Peek(2).kind == Tok::kLParen &&
          Peek(1).text != "startsWith" && Peek(1).text != "endsWith") {
        return Unsupported(path + "." + Peek(1).text + "()");
      }
      return Unsupported(path);
    }
    if (Peek().kind == Tok::kDot && Peek(1).kind == Tok::kIdent && Peek(2).kind == Tok::kLParen &&
        node.type == Type::kTimestamp) {
      return Unsupported(path + "." + Peek(1).text + "()");
    }
    return Add(std::move(node));
  }

  std::string_view expr_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int logical_ops_ = 0;
  CompiledCondition out_;
};

Result<CompiledCondition> CompiledCondition::Compile(std::string_view expression) {
  if (expression.size() > kMaxExpressionBytes) {
    return InvalidArgument("condition expression is longer than " +
                           std::to_string(kMaxExpressionBytes) + " bytes");
  }
  bool blank = true;
  for (char c : expression) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') blank = false;
  }
  if (blank) return InvalidArgument("condition expression is empty");
  return ConditionParser(expression).Run();
}

struct CompiledCondition::Value {
  bool error = false;
  bool b = false;
  std::string_view s;
  TimePoint t{};
};

CompiledCondition::Value CompiledCondition::Eval(int32_t index, const ConditionContext& ctx) const {
  const Node& n = nodes_[index];
  Value v;
  auto attr = [&v](std::string_view s) {
    if (s.empty()) v.error = true;  // absent attribute
    v.s = s;
  };
  switch (n.op) {
    case Op::kBool:
      v.b = n.bool_value;
      break;
    case Op::kString:
      v.s = n.string_value;
      break;
    case Op::kTimestamp:
      v.t = n.time_value;
      break;
    case Op::kRequestTime:
      v.t = ctx.request_time;
      break;
    case Op::kResourceName:
      attr(ctx.resource_name);
      break;
    case Op::kResourceType:
      attr(ctx.resource_type);
      break;
    case Op::kResourceService:
      attr(ctx.resource_service);
      break;
    case Op::kNot: {
      Value a = Eval(n.lhs, ctx);
      v.error = a.error;
      v.b = !a.b;
      break;
    }
    case Op::kAnd: {
      // CEL: false absorbs errors on either side.
      Value a = Eval(n.lhs, ctx);
      if (!a.error && !a.b) break;
      Value b = Eval(n.rhs, ctx);
      if (!b.error && !b.b) break;
      v.error = a.error || b.error;
      v.b = !v.error;
      break;
    }
    case Op::kOr: {
      Value a = Eval(n.lhs, ctx);
      if (!a.error && a.b) {
        v.b = true;
        break;
      }
      Value b = Eval(n.rhs, ctx);
      if (!b.error && b.b) {
        v.b = true;
        break;
      }
      v.error = a.error || b.error;
      break;
    }
    case Op::kEq:
    case Op::kNe:
    case Op::kLt:
    case Op::kLe:
    case Op::kGt:
    case Op::kGe: {
      Value a = Eval(n.lhs, ctx);
      Value b = Eval(n.rhs, ctx);
      if (a.error || b.error) {
        v.error = true;
        break;
      }
      int cmp = 0;
      switch (nodes_[n.lhs].type) {
        case Type::kBool:
          cmp = int(a.b) - int(b.b);
          break;
        case Type::kString:
          cmp = a.s.compare(b.s);
          break;
        case Type::kTimestamp:
          cmp = a.t < b.t ? -1 : (b.t < a.t ? 1 : 0);
          break;
      }
      switch (n.op) {
        case Op::kEq:
          v.b = cmp == 0;
          break;
        case Op::kNe:
          v.b = cmp != 0;
          break;
        case Op::kLt:
          v.b = cmp < 0;
          break;
        case Op::kLe:
          v.b = cmp <= 0;
          break;
        case Op::kGt:
          v.b = cmp > 0;
          break;
        default:
          v.b = cmp >= 0;
          break;
      }
      break;
    }
    case Op::kStartsWith:
    case Op::kEndsWith: {
      Value a = Eval(n.lhs, ctx);
      Value b = Eval(n.rhs, ctx);
      if (a.error || b.error) {
        v.error = true;
        break;
      }
      v.b = n.op == Op::kStartsWith ? a.s.starts_with(b.s) : a.s.ends_with(b.s);
      break;
    }
  }
  return v;
}

ConditionResult CompiledCondition::Evaluate(const ConditionContext& ctx) const {
  if (root_ < 0) return ConditionResult::kError;
  Value v = Eval(root_, ctx);
  if (v.error) return ConditionResult::kError;
  return v.b ? ConditionResult::kTrue : ConditionResult::kFalse;
}

}  // namespace moat::iam
