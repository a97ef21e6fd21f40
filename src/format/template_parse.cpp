// The template parser: Go's text/template parse package, tokens to the node
// tree the executor walks (src/format/template_parse.h).
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "format/template_parse.h"

namespace kiln::format::internal {

namespace {

using FuncNames = std::vector<std::string>;
const FuncNames& Functions() {
  static const FuncNames names = {"and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "index",
                                  "slice", "printf", "print", "println", "json", "join", "lower", "upper",
                                  "title", "truncate", "pad", "split", "urlquery", "html", "js", "call"};
  return names;
}
bool IsFunction(const std::string& n) {
  const auto& f = Functions();
  return std::find(f.begin(), f.end(), n) != f.end();
}

class Parser {
 public:
  Parser(const std::vector<Token>& toks) : t_(toks) {}

  bool Run(std::vector<Node>& out, SyntaxError& err) {
    vars_ = {"$"};
    std::string stop;
    if (!List(out, stop, err))
      return false;
    if (!stop.empty()) {
      err = {stop_pos_, "unexpected {{" + stop + "}}"};
      return false;
    }
    return true;
  }

 private:
  const Token& Peek() {
    while (t_[i_].kind == Tok::kSpace)
      ++i_;
    return t_[i_];
  }
  const Token& Next() {
    const Token& t = Peek();
    if (t.kind != Tok::kEof)
      ++i_;
    return t;
  }
  bool SpaceNext() const { return t_[i_].kind == Tok::kSpace; }

  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case Tok::kEof: return "EOF";
      case Tok::kRight: return "<}}>";
      case Tok::kLeft: return "<{{>";
      case Tok::kString: return "\"" + t.text + "\"";
      default: return "<" + t.text + ">";
    }
  }

  // Parses nodes until EOF or {{end}}/{{else}}; `stop` says which ("" for EOF).
  bool List(std::vector<Node>& out, std::string& stop, SyntaxError& err) {
    while (true) {
      const Token& t = t_[i_];
      if (t.kind == Tok::kEof) {
        stop.clear();
        return true;
      }
      if (t.kind == Tok::kText) {
        out.push_back({NodeKind::kText, t.pos, t.text, nullptr, {}, {}});
        ++i_;
        continue;
      }
      // kLeft
      size_t left = t.pos;
      ++i_;
      const Token& k = Peek();
      if (k.kind == Tok::kKeyword) {
        if (k.text == "end" || k.text == "else") {
          stop = k.text;
          stop_pos_ = k.pos;
          ++i_;
          if (k.text == "end" && !ExpectRight(err, "end"))
            return false;
          return true;
        }
        if (k.text == "if" || k.text == "with" || k.text == "range") {
          ++i_;
          Node n;
          if (!Control(k.text, k.pos, n, err))
            return false;
          out.push_back(std::move(n));
          continue;
        }
        if (k.text == "break" || k.text == "continue") {
          if (range_depth_ == 0) {
            err = {k.pos, "{{" + k.text + "}} outside {{range}}"};
            return false;
          }
          Node n{k.text == "break" ? NodeKind::kBreak : NodeKind::kContinue, k.pos, "", nullptr, {}, {}};
          ++i_;
          if (!ExpectRight(err, k.text))
            return false;
          out.push_back(std::move(n));
          continue;
        }
        err = {k.pos, "{{" + k.text + "}} is not supported (one template only)"};
        return false;
      }
      auto pipe = std::make_shared<Pipe>();
      if (!ParsePipe(*pipe, true, false, err))
        return false;
      if (!ExpectRight(err, "command"))
        return false;
      (void)left;
      out.push_back({NodeKind::kAction, pipe->pos, "", pipe, {}, {}});
    }
  }

  bool ExpectRight(SyntaxError& err, const std::string& context) {
    const Token& t = Peek();
    if (t.kind != Tok::kRight) {
      err = {t.pos, "unexpected " + Describe(t) + " in " + context};
      return false;
    }
    ++i_;
    return true;
  }

  // After {{if / {{with / {{range (or {{else if ...): pipeline, body,
  // optional else, {{end}}.
  bool Control(const std::string& what, size_t pos, Node& n, SyntaxError& err) {
    Depth depth(depth_);
    if (depth_ > kMaxDepth) {
      err = {pos, "nesting deeper than " + std::to_string(kMaxDepth)};
      return false;
    }
    n.kind = what == "if" ? NodeKind::kIf : what == "with" ? NodeKind::kWith : NodeKind::kRange;
    n.pos = pos;
    size_t scope = vars_.size();
    n.pipe = std::make_shared<Pipe>();
    if (!ParsePipe(*n.pipe, false, what == "range", err))
      return false;
    if (!ExpectRight(err, what))
      return false;
    if (n.kind == NodeKind::kRange)
      ++range_depth_;
    std::string stop;
    bool ok = List(n.list, stop, err);
    if (n.kind == NodeKind::kRange)
      --range_depth_;
    if (!ok)
      return false;
    if (stop.empty()) {
      err = {Peek().pos, "unexpected EOF: {{" + what + "}} at " + std::to_string(pos) + " has no {{end}}"};
      err.pos = pos;
      err.message = "unexpected EOF: {{" + what + "}} without {{end}}";
      return false;
    }
    if (stop == "else") {
      const Token& k = Peek();
      // {{else if ...}} / {{else with ...}}: a nested node that ends with ours
      if (k.kind == Tok::kKeyword && ((k.text == "if" && what == "if") || (k.text == "with" && what == "with"))) {
        size_t kpos = k.pos;
        ++i_;
        Node inner;
        if (!Control(k.text, kpos, inner, err))
          return false;
        n.else_list.push_back(std::move(inner));
        vars_.resize(scope);
        return true;
      }
      if (!ExpectRight(err, "else"))
        return false;
      stop.clear();
      if (!List(n.else_list, stop, err))
        return false;
      if (stop != "end") {
        err = {stop.empty() ? pos : stop_pos_,
               stop.empty() ? "unexpected EOF: {{" + what + "}} without {{end}}" : "expected end; found {{else}}"};
        return false;
      }
    }
    vars_.resize(scope);
    return true;
  }

  // pipeline: [$x[, $y] :=|=] command (| command)*
  bool ParsePipe(Pipe& p, bool allow_assign_only, bool range, SyntaxError& err) {
    (void)allow_assign_only;
    p.pos = Peek().pos;
    // declarations
    size_t save = i_;
    if (Peek().kind == Tok::kVariable) {
      std::vector<std::string> names{Next().text};
      if (range && Peek().kind == Tok::kComma) {
        ++i_;
        if (Peek().kind == Tok::kVariable)
          names.push_back(Next().text);
      }
      const Token& op = Peek();
      if (op.kind == Tok::kDeclare || op.kind == Tok::kAssign) {
        ++i_;
        p.decl = names;
        p.assign = op.kind == Tok::kAssign;
        for (const auto& nm : names) {
          if (p.assign) {
            if (std::find(vars_.begin(), vars_.end(), nm) == vars_.end()) {
              err = {op.pos, "undefined variable \"" + nm + "\""};
              return false;
            }
          } else {
            vars_.push_back(nm);
          }
        }
      } else if (names.size() > 1) {
        err = {op.pos, "unexpected " + Describe(op) + " in range: expected :="};
        return false;
      } else {
        i_ = save;
      }
    }
    while (true) {
      Command c;
      c.pos = Peek().pos;
      while (true) {
        const Token& t = Peek();
        if (t.kind == Tok::kRight || t.kind == Tok::kRParen || t.kind == Tok::kPipe || t.kind == Tok::kEof)
          break;
        Arg a;
        if (!Operand(a, err))
          return false;
        c.args.push_back(std::move(a));
      }
      if (c.args.empty()) {
        const Token& t = Peek();
        if (t.kind == Tok::kEof) {
          err = {t.pos, "unclosed action"};
          return false;
        }
        if (p.cmds.empty() && !p.decl.empty()) {
          err = {t.pos, "missing value for command"};
          return false;
        }
        err = {t.pos, p.cmds.empty() ? "missing value for command" : "missing command after |"};
        if (p.cmds.empty() && p.decl.empty() && t.kind == Tok::kRight) {
          err.message = "missing value for command";
        }
        return false;
      }
      const Arg& first = c.args.front();
      if (first.kind == ArgKind::kNil) {
        err = {first.pos, "nil is not a command"};
        return false;
      }
      if (!p.cmds.empty() && first.kind != ArgKind::kIdent && c.args.size() == 1 &&
          first.kind == ArgKind::kLiteral) {
        err = {first.pos, "non executable command in pipeline stage " + std::to_string(p.cmds.size() + 1)};
        return false;
      }
      p.cmds.push_back(std::move(c));
      if (Peek().kind != Tok::kPipe)
        break;
      ++i_;
    }
    return true;
  }

  bool Operand(Arg& a, SyntaxError& err) {
    const Token& t = Next();
    a.pos = t.pos;
    a.text = t.text;
    switch (t.kind) {
      case Tok::kDot:
        a.kind = ArgKind::kDot;
        if (!SpaceNext() && t_[i_].kind == Tok::kField) {
          err = {t_[i_].pos, "unexpected " + Describe(t_[i_]) + " in operand"};
          return false;
        }
        return true;
      case Tok::kField: {
        a.kind = ArgKind::kField;
        size_t p = 1;
        std::string f = t.text;
        while (p < f.size()) {
          size_t d = f.find('.', p);
          a.fields.push_back(f.substr(p, d == std::string::npos ? std::string::npos : d - p));
          p = d == std::string::npos ? f.size() : d + 1;
        }
        break;
      }
      case Tok::kVariable:
        if (std::find(vars_.begin(), vars_.end(), t.text) == vars_.end()) {
          err = {t.pos, "undefined variable \"" + t.text + "\""};
          return false;
        }
        a.kind = ArgKind::kVariable;
        a.name = t.text;
        break;
      case Tok::kString:
        a.kind = ArgKind::kLiteral;
        a.literal = t.text;
        a.text = internal::GoQuote(t.text);
        break;
      case Tok::kBool:
        a.kind = ArgKind::kLiteral;
        a.literal = t.text == "true";
        break;
      case Tok::kNil:
        a.kind = ArgKind::kNil;
        break;
      case Tok::kNumber: {
        a.kind = ArgKind::kLiteral;
        if (!ParseNumber(t.text, a.literal)) {
          err = {t.pos, "bad number syntax: \"" + t.text + "\""};
          return false;
        }
        break;
      }
      case Tok::kIdent:
        if (!IsFunction(t.text)) {
          err = {t.pos, "function \"" + t.text + "\" not defined"};
          return false;
        }
        if (t.text == "call" || t.text == "html" || t.text == "js") {
          err = {t.pos, "function \"" + t.text + "\" is not supported"};
          return false;
        }
        a.kind = ArgKind::kIdent;
        a.name = t.text;
        return true;
      case Tok::kLParen: {
        Depth depth(depth_);
        if (depth_ > kMaxDepth) {
          err = {t.pos, "nesting deeper than " + std::to_string(kMaxDepth)};
          return false;
        }
        a.kind = ArgKind::kParen;
        a.pipe = std::make_shared<Pipe>();
        if (!ParsePipe(*a.pipe, false, false, err))
          return false;
        const Token& r = Peek();
        if (r.kind != Tok::kRParen) {
          err = {r.pos, "unclosed left paren"};
          return false;
        }
        ++i_;
        a.text = "(...)";
        break;
      }
      case Tok::kKeyword:
        err = {t.pos, "unexpected <" + t.text + "> in operand"};
        return false;
      default:
        err = {t.pos, "unexpected " + Describe(t) + " in operand"};
        return false;
    }
    // a field chain right after the term: $x.A.B, (pipe).A
    while (!SpaceNext() && t_[i_].kind == Tok::kField) {
      if (a.kind == ArgKind::kLiteral || a.kind == ArgKind::kNil) {
        err = {t_[i_].pos, "unexpected " + Describe(t_[i_]) + " in operand"};
        return false;
      }
      const std::string& f = t_[i_].text;
      size_t p = 1;
      while (p < f.size()) {
        size_t d = f.find('.', p);
        a.fields.push_back(f.substr(p, d == std::string::npos ? std::string::npos : d - p));
        p = d == std::string::npos ? f.size() : d + 1;
      }
      a.text += f;
      ++i_;
    }
    return true;
  }

  static bool ParseNumber(const std::string& s, Json& out) {
    if (s.empty())
      return false;
    const char* b = s.c_str();
    char* end = nullptr;
    bool is_float = s.find_first_of(".eE") != std::string::npos && s.find("0x") == std::string::npos &&
                    s.find("0X") == std::string::npos;
    errno = 0;
    if (!is_float) {
      long long v = std::strtoll(b, &end, 0);
      if (*end == '\0' && errno == 0) {
        out = v;
        return true;
      }
      errno = 0;
      unsigned long long u = std::strtoull(b, &end, 0);
      if (*end == '\0' && errno == 0 && s[0] != '-') {
        out = u;
        return true;
      }
      return false;
    }
    double d = std::strtod(b, &end);
    if (*end != '\0' || errno != 0)
      return false;
    if (d == static_cast<double>(static_cast<long long>(d)) && std::abs(d) < 9e18)
      out = static_cast<long long>(d);  // Go: 1.0 is an untyped constant usable as an int
    else
      out = d;
    return true;
  }

  // The parser and the executor recurse: a bound keeps a hostile format
  // from exhausting the stack.
  static constexpr int kMaxDepth = 200;
  struct Depth {
    explicit Depth(int& d) : d_(d) { ++d_; }
    ~Depth() { --d_; }
    int& d_;
  };

  const std::vector<Token>& t_;
  int depth_ = 0;
  size_t i_ = 0;
  size_t stop_pos_ = 0;
  int range_depth_ = 0;
  std::vector<std::string> vars_;
};

}  // namespace

bool ParseTokens(const std::vector<Token>& tokens, std::vector<Node>& out, SyntaxError& err) {
  Parser parser(tokens);
  return parser.Run(out, err);
}

}  // namespace kiln::format::internal
