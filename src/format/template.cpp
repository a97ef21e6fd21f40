// The Go text/template engine: lexer, parser and executor over JSON values.
// Follows Go's text/template (lexer, parse and exec packages) closely enough
// that the templates podman and docker users write behave the same; what it
// leaves out (define/template/block, methods, html/js) is refused with a
// message naming the position (docs/format.md).
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "format/internal.h"
#include "kiln/format.h"

namespace kiln::format {

using internal::GoPrint;
using internal::GoSprintf;
using internal::GoTypeName;
using internal::Json;
using internal::Value;

namespace {

// ---------------------------------------------------------------- lexer

enum class Tok {
  kText, kLeft, kRight, kField, kVariable, kDot, kString, kNumber, kBool, kNil, kIdent, kKeyword,
  kPipe, kLParen, kRParen, kComma, kDeclare, kAssign, kSpace, kEof,
};

struct Token {
  Tok kind;
  size_t pos;
  std::string text;  // the source text (the value for kText, the decoded string for kString)
};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool IsAlnum(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}

const char* const kKeywords[] = {"if", "else", "end", "range", "with", "break", "continue",
                                 "define", "template", "block"};

struct SyntaxError {
  size_t pos;
  std::string message;
};

class Lexer {
 public:
  explicit Lexer(std::string_view text) : in_(text) {}

  // Tokenizes everything, or fails with the position and reason.
  bool Run(std::vector<Token>& out, SyntaxError& err) {
    size_t pos = 0;
    bool trim_next = false;
    while (pos <= in_.size()) {
      size_t l = in_.find("{{", pos);
      std::string_view text = in_.substr(pos, l == std::string_view::npos ? std::string_view::npos : l - pos);
      bool trim_left = l != std::string_view::npos && l + 3 < in_.size() + 1 && l + 2 < in_.size() &&
                       in_[l + 2] == '-' && l + 3 < in_.size() && IsSpace(in_[l + 3]);
      size_t text_pos = pos;
      if (trim_next) {
        size_t k = 0;
        while (k < text.size() && IsSpace(text[k]))
          ++k;
        text.remove_prefix(k);
        text_pos += k;
      }
      if (trim_left)
        while (!text.empty() && IsSpace(text.back()))
          text.remove_suffix(1);
      if (!text.empty())
        out.push_back({Tok::kText, text_pos, std::string(text)});
      if (l == std::string_view::npos)
        break;
      size_t p = l + 2 + (trim_left ? 2 : 0);
      // A comment: {{/* ... */}}, nothing else in the action.
      if (in_.compare(p, 2, "/*") == 0) {
        size_t end = in_.find("*/", p + 2);
        if (end == std::string_view::npos) {
          err = {l, "unclosed comment"};
          return false;
        }
        p = end + 2;
        if (in_.compare(p, 4, " -}}") == 0) {
          trim_next = true;
          pos = p + 4;
        } else if (in_.compare(p, 2, "}}") == 0) {
          trim_next = false;
          pos = p + 2;
        } else {
          err = {l, "comment ends before closing delimiter"};
          return false;
        }
        continue;
      }
      out.push_back({Tok::kLeft, l, "{{"});
      if (!Action(l, p, out, err, trim_next))
        return false;
      pos = p;
    }
    out.push_back({Tok::kEof, in_.size(), ""});
    return true;
  }

 private:
  // Lexes one action from p (after the left delimiter) through its right
  // delimiter; p ends after it.
  bool Action(size_t left, size_t& p, std::vector<Token>& out, SyntaxError& err, bool& trim_next) {
    int parens = 0;
    while (true) {
      if (p >= in_.size()) {
        err = {left, "unclosed action"};  // where it begins
        return false;
      }
      char c = in_[p];
      if (IsSpace(c) && in_.compare(p + 1, 3, "-}}") == 0) {
        out.push_back({Tok::kRight, p, "}}"});
        p += 4;
        trim_next = true;
        break;
      }
      if (in_.compare(p, 2, "}}") == 0) {
        if (parens > 0) {
          err = {p, "unclosed left paren"};
          return false;
        }
        out.push_back({Tok::kRight, p, "}}"});
        p += 2;
        trim_next = false;
        break;
      }
      size_t start = p;
      if (IsSpace(c)) {
        while (p < in_.size() && IsSpace(in_[p]) && in_.compare(p + 1, 3, "-}}") != 0)
          ++p;
        if (p < in_.size() && IsSpace(in_[p]) && p == start) {
          ++p;  // a lone space before -}} was handled above
        }
        out.push_back({Tok::kSpace, start, " "});
        continue;
      }
      switch (c) {
        case '|':
          out.push_back({Tok::kPipe, p++, "|"});
          continue;
        case '(':
          ++parens;
          out.push_back({Tok::kLParen, p++, "("});
          continue;
        case ')':
          if (--parens < 0) {
            err = {p, "unexpected right paren"};
            return false;
          }
          out.push_back({Tok::kRParen, p++, ")"});
          continue;
        case ',':
          out.push_back({Tok::kComma, p++, ","});
          continue;
        case '=':
          out.push_back({Tok::kAssign, p++, "="});
          continue;
        case ':':
          if (in_.compare(p, 2, ":=") != 0) {
            err = {p, "expected :="};
            return false;
          }
          out.push_back({Tok::kDeclare, p, ":="});
          p += 2;
          continue;
        case '"':
        case '`':
          if (!Quoted(p, out, err))
            return false;
          continue;
        case '\'':
          if (!Char(p, out, err))
            return false;
          continue;
        case '$': {
          ++p;
          while (p < in_.size() && IsAlnum(in_[p]))
            ++p;
          out.push_back({Tok::kVariable, start, std::string(in_.substr(start, p - start))});
          continue;
        }
        case '.': {
          if (p + 1 < in_.size() && in_[p + 1] >= '0' && in_[p + 1] <= '9') {
            Number(p, out, err);
            if (!err.message.empty())
              return false;
            continue;
          }
          ++p;
          if (p < in_.size() && IsAlnum(in_[p])) {
            while (p < in_.size() && IsAlnum(in_[p]))
              ++p;
            out.push_back({Tok::kField, start, std::string(in_.substr(start, p - start))});
          } else {
            out.push_back({Tok::kDot, start, "."});
          }
          continue;
        }
        default:
          break;
      }
      if (c == '+' || c == '-' || (c >= '0' && c <= '9')) {
        Number(p, out, err);
        if (!err.message.empty())
          return false;
        continue;
      }
      if (IsAlnum(c)) {
        while (p < in_.size() && IsAlnum(in_[p]))
          ++p;
        std::string word(in_.substr(start, p - start));
        Tok kind = Tok::kIdent;
        if (word == "true" || word == "false")
          kind = Tok::kBool;
        else if (word == "nil")
          kind = Tok::kNil;
        else
          for (const char* k : kKeywords)
            if (word == k)
              kind = Tok::kKeyword;
        out.push_back({kind, start, word});
        continue;
      }
      std::string shown = static_cast<unsigned char>(c) < 0x20 ? "U+00" + std::string(1, "0123456789ABCDEF"[c >> 4]) +
                                                                     std::string(1, "0123456789ABCDEF"[c & 15])
                                                               : std::string(1, c);
      err = {p, "unexpected bad character " + shown + " in action"};
      return false;
    }
    return true;
  }

  void Number(size_t& p, std::vector<Token>& out, SyntaxError& err) {
    size_t start = p;
    if (in_[p] == '+' || in_[p] == '-')
      ++p;
    while (p < in_.size() && (IsAlnum(in_[p]) || in_[p] == '.' ||
                              ((in_[p] == '+' || in_[p] == '-') && (in_[p - 1] == 'e' || in_[p - 1] == 'E'))))
      ++p;
    std::string text(in_.substr(start, p - start));
    if (text == "+" || text == "-") {
      err = {start, "unexpected bad character " + text + " in action"};
      return;
    }
    out.push_back({Tok::kNumber, start, text});
  }

  bool Quoted(size_t& p, std::vector<Token>& out, SyntaxError& err) {
    size_t start = p;
    char q = in_[p++];
    std::string value;
    while (true) {
      if (p >= in_.size() || (q == '"' && in_[p] == '\n')) {
        err = {start, q == '"' ? "unterminated quoted string" : "unterminated raw quoted string"};
        return false;
      }
      char c = in_[p];
      if (c == q) {
        ++p;
        break;
      }
      if (c == '\\' && q == '"') {
        if (p + 1 >= in_.size()) {
          err = {start, "unterminated quoted string"};
          return false;
        }
        char e = in_[p + 1];
        p += 2;
        switch (e) {
          case 'n': value += '\n'; break;
          case 't': value += '\t'; break;
          case 'r': value += '\r'; break;
          case 'a': value += '\a'; break;
          case 'b': value += '\b'; break;
          case 'f': value += '\f'; break;
          case 'v': value += '\v'; break;
          case '\\': value += '\\'; break;
          case '"': value += '"'; break;
          case '\'': value += '\''; break;
          case 'x': {
            if (p + 2 > in_.size() || !std::isxdigit(static_cast<unsigned char>(in_[p])) ||
                !std::isxdigit(static_cast<unsigned char>(in_[p + 1]))) {
              err = {start, "invalid syntax in quoted string"};
              return false;
            }
            value += static_cast<char>(std::strtol(std::string(in_.substr(p, 2)).c_str(), nullptr, 16));
            p += 2;
            break;
          }
          default:
            err = {start, "invalid escape \\" + std::string(1, e) + " in quoted string"};
            return false;
        }
        continue;
      }
      value += c;
      ++p;
    }
    out.push_back({Tok::kString, start, value});
    return true;
  }

  bool Char(size_t& p, std::vector<Token>& out, SyntaxError& err) {
    size_t start = p;
    ++p;
    if (p < in_.size() && in_[p] == '\\' && p + 2 < in_.size() && in_[p + 2] == '\'') {
      char e = in_[p + 1];
      int v = e == 'n' ? '\n' : e == 't' ? '\t' : e == '\\' ? '\\' : e == '\'' ? '\'' : e == 'r' ? '\r' : -1;
      if (v < 0) {
        err = {start, "invalid character constant"};
        return false;
      }
      p += 3;
      out.push_back({Tok::kNumber, start, std::to_string(v)});
      return true;
    }
    // one UTF-8 character
    size_t q = p;
    if (q < in_.size()) {
      unsigned char c = static_cast<unsigned char>(in_[q]);
      size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
      q += len;
    }
    if (q >= in_.size() || in_[q] != '\'' || q == p) {
      err = {start, "unterminated character constant"};
      return false;
    }
    unsigned long cp = static_cast<unsigned char>(in_[p]);
    size_t len = q - p;
    if (len > 1) {
      cp &= (0x7F >> len);
      for (size_t k = 1; k < len; ++k)
        cp = (cp << 6) | (static_cast<unsigned char>(in_[p + k]) & 0x3F);
    }
    p = q + 1;
    out.push_back({Tok::kNumber, start, std::to_string(cp)});
    return true;
  }

  std::string_view in_;
};

// ---------------------------------------------------------------- parse tree

struct Pipe;

enum class ArgKind { kDot, kField, kVariable, kParen, kLiteral, kNil, kIdent };

struct Arg {
  ArgKind kind;
  size_t pos;
  std::string text;                 // source text for messages ("<.Foo>")
  std::string name;                 // variable ("$x") or function name
  std::vector<std::string> fields;  // field chain after the term
  Json literal;
  std::shared_ptr<Pipe> pipe;       // kParen
};

struct Command {
  size_t pos;
  std::vector<Arg> args;
};

struct Pipe {
  size_t pos;
  std::vector<std::string> decl;
  bool assign = false;  // = rather than :=
  std::vector<Command> cmds;
};

enum class NodeKind { kText, kAction, kIf, kRange, kWith, kBreak, kContinue };

struct Node {
  NodeKind kind;
  size_t pos;
  std::string text;
  std::shared_ptr<Pipe> pipe;
  std::vector<Node> list, else_list;
};

}  // namespace

struct Template::Impl {
  std::string text;
  Options options;
  std::vector<Node> root;
};

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

// ---------------------------------------------------------------- execution

struct ExecError {
  size_t pos;
  std::string at;  // the node's text, for "at <...>"
  std::string message;
};

enum class Flow { kNormal, kBreak, kContinue };

bool Truth(const Value& v) {
  if (v.missing())
    return false;
  const Json& j = v.j();
  switch (j.type()) {
    case Json::value_t::null: return false;
    case Json::value_t::boolean: return j.get<bool>();
    case Json::value_t::number_integer: return j.get<long long>() != 0;
    case Json::value_t::number_unsigned: return j.get<unsigned long long>() != 0;
    case Json::value_t::number_float: return j.get<double>() != 0;
    case Json::value_t::string: return !j.get_ref<const std::string&>().empty();
    case Json::value_t::array:
    case Json::value_t::object: return !j.empty();
    default: return false;
  }
}

class Exec {
 public:
  Exec(const Template::Impl& t, const std::map<std::string, std::string>* headers) : t_(t), headers_(headers) {}

  bool Run(const Value& root, std::string& out, ExecError& err) {
    out_ = &out;
    vars_ = {{"$", root}};
    Flow flow = Flow::kNormal;
    return Walk(root, t_.root, flow, err);
  }

 private:
  // Counts the work: an empty {{range 1000000000000}} prints nothing but
  // would run for hours.
  bool Step(size_t pos, ExecError& err) {
    if (++steps_ <= t_.options.max_steps)
      return true;
    err = {pos, "", "more than " + std::to_string(t_.options.max_steps) + " steps"};
    return false;
  }

  bool Emit(std::string_view s, size_t pos, ExecError& err) {
    if (out_->size() + s.size() > t_.options.max_output) {
      err = {pos, "", "output larger than " + std::to_string(t_.options.max_output) + " bytes"};
      return false;
    }
    out_->append(s);
    return true;
  }

  bool Walk(const Value& dot, const std::vector<Node>& list, Flow& flow, ExecError& err) {
    for (const Node& n : list) {
      if (!WalkNode(dot, n, flow, err))
        return false;
      if (flow != Flow::kNormal)
        return true;
    }
    return true;
  }

  bool WalkNode(const Value& dot, const Node& n, Flow& flow, ExecError& err) {
    if (!Step(n.pos, err))
      return false;
    switch (n.kind) {
      case NodeKind::kText:
        return Emit(n.text, n.pos, err);
      case NodeKind::kBreak:
        flow = Flow::kBreak;
        return true;
      case NodeKind::kContinue:
        flow = Flow::kContinue;
        return true;
      case NodeKind::kAction: {
        Value v;
        if (!EvalPipe(dot, *n.pipe, v, err)) {
          if (!headers_)
            return false;
          // A header row runs the template on the headers, as podman does;
          // where that fails (join of a header string) it shows the header
          // of the first field the action names.
          std::string h;
          if (!HeaderOf(*n.pipe, h))
            h.clear();
          v = Value::Of(h);
          if (!n.pipe->decl.empty())
            for (const std::string& name : n.pipe->decl)
              vars_.push_back({name, v});
        }
        if (n.pipe->decl.empty())
          return Emit(GoPrint(v), n.pos, err);
        return true;
      }
      case NodeKind::kIf:
      case NodeKind::kWith: {
        size_t scope = vars_.size();
        bool ok;
        Value v;
        if (!EvalPipe(dot, *n.pipe, v, err)) {
          if (!headers_)
            return false;
          ok = Walk(dot, n.list, flow, err);  // a header row: the body once
        } else if (Truth(v)) {
          ok = Walk(n.kind == NodeKind::kWith ? v : dot, n.list, flow, err);
        } else {
          ok = Walk(dot, n.else_list, flow, err);
        }
        vars_.resize(scope);
        return ok;
      }
      case NodeKind::kRange:
        return WalkRange(dot, n, flow, err);
    }
    return true;
  }

  bool WalkRange(const Value& dot, const Node& n, Flow& flow, ExecError& err) {
    size_t scope = vars_.size();
    if (headers_) {  // a header row renders the body once, over the headers
      for (const std::string& name : n.pipe->decl)
        vars_.push_back({name, dot});
      bool ok = Walk(dot, n.list, flow, err);
      flow = Flow::kNormal;
      vars_.resize(scope);
      return ok;
    }
    // Evaluate without declaring: the range variables take each element.
    Pipe p = *n.pipe;
    std::vector<std::string> decl = p.decl;
    p.decl.clear();
    Value v;
    if (!EvalPipe(dot, p, v, err))
      return false;
    auto one = [&](const Value& key, const Value& elem) -> bool {
      if (!Step(n.pos, err))
        return false;
      vars_.resize(scope);
      if (decl.size() == 1) {
        vars_.push_back({decl[0], elem});
      } else if (decl.size() == 2) {
        vars_.push_back({decl[0], key});
        vars_.push_back({decl[1], elem});
      }
      Flow f = Flow::kNormal;
      if (!Walk(elem, n.list, f, err))
        return false;
      if (f == Flow::kBreak) {
        stop_ = true;
      }
      return true;
    };
    stop_ = false;
    bool any = false;
    if (!v.missing()) {
      const Json& j = v.j();
      if (j.is_array()) {
        for (size_t i = 0; i < j.size() && !stop_; ++i) {
          any = true;
          if (!one(Value::Of(static_cast<long long>(i)), v.Child(j[i])))
            return false;
        }
      } else if (j.is_object()) {
        for (auto it = j.begin(); it != j.end() && !stop_; ++it) {
          any = true;
          if (!one(Value::Of(it.key()), v.Child(it.value())))
            return false;
        }
      } else if (j.is_number_integer()) {
        long long count = j.is_number_unsigned() ? static_cast<long long>(std::min<unsigned long long>(
                                                       j.get<unsigned long long>(), 1ULL << 62))
                                                 : j.get<long long>();
        if (decl.size() == 2) {
          err = {n.pos, "", "can't use two variables ranging over an integer"};
          return false;
        }
        for (long long i = 0; i < count && !stop_; ++i) {
          any = true;
          if (!one(Value::Of(i), Value::Of(i)))
            return false;
        }
      } else if (!j.is_null()) {
        err = {n.pos, "", "range can't iterate over " + GoPrint(v)};
        return false;
      }
    }
    stop_ = false;
    vars_.resize(scope);
    if (!any)
      return Walk(dot, n.else_list, flow, err);
    return true;
  }

  // The header an action prints in a table's header row: that of the first
  // field it names; false when it names none (then it runs as usual).
  bool HeaderOf(const Pipe& p, std::string& h) {
    if (!p.decl.empty())
      return false;
    for (const Command& c : p.cmds)
      for (const Arg& a : c.args) {
        if (!a.fields.empty()) {
          const std::string& f = a.fields.back();
          auto it = headers_->find(f);
          h = it != headers_->end() ? it->second : HeaderFor(f);
          return true;
        }
        if (a.kind == ArgKind::kParen && HeaderOf(*a.pipe, h))
          return true;
      }
    for (const Command& c : p.cmds)
      for (const Arg& a : c.args)
        if (a.kind == ArgKind::kDot) {
          h = "";
          return true;
        }
    return false;
  }

  bool EvalPipe(const Value& dot, const Pipe& p, Value& result, ExecError& err) {
    bool have = false;
    Value final_value;
    for (const Command& c : p.cmds) {
      Value v;
      if (!EvalCommand(dot, c, have ? &final_value : nullptr, v, err))
        return false;
      final_value = std::move(v);
      have = true;
    }
    result = final_value;
    for (const std::string& name : p.decl) {
      if (p.assign) {
        for (auto it = vars_.rbegin(); it != vars_.rend(); ++it)
          if (it->first == name) {
            it->second = result;
            break;
          }
      } else {
        vars_.push_back({name, result});
      }
    }
    return true;
  }

  bool EvalCommand(const Value& dot, const Command& c, const Value* final_value, Value& out, ExecError& err) {
    const Arg& first = c.args.front();
    if (first.kind == ArgKind::kIdent)
      return Call(dot, first, c, final_value, out, err);
    if (c.args.size() > 1 || final_value) {
      err = {first.pos, first.text, "can't give argument to non-function " + first.text};
      return false;
    }
    return EvalArg(dot, first, out, err);
  }

  bool EvalArg(const Value& dot, const Arg& a, Value& out, ExecError& err) {
    Value base;
    switch (a.kind) {
      case ArgKind::kDot:
      case ArgKind::kField:
        base = dot;
        break;
      case ArgKind::kVariable:
        base = Lookup(a.name);
        break;
      case ArgKind::kParen:
        if (!EvalPipe(dot, *a.pipe, base, err))
          return false;
        break;
      case ArgKind::kLiteral:
        out = Value::Of(a.literal);
        return true;
      case ArgKind::kNil:
        out = Value::Of(nullptr);
        return true;
      case ArgKind::kIdent: {
        Command c{a.pos, {a}};
        return Call(dot, a, c, nullptr, out, err);
      }
    }
    for (const std::string& f : a.fields)
      if (!Field(base, f, a, base, err))
        return false;
    out = base;
    return true;
  }

  Value Lookup(const std::string& name) const {
    for (auto it = vars_.rbegin(); it != vars_.rend(); ++it)
      if (it->first == name)
        return it->second;
    return Value::Missing();
  }

  bool Field(const Value& recv, const std::string& name, const Arg& a, Value& out, ExecError& err) {
    if (recv.header) {
      auto it = headers_->find(name);
      out = Value::Of(it != headers_->end() ? it->second : HeaderFor(name));
      out.header = true;
      return true;
    }
    if (recv.missing()) {
      out = Value::Missing();
      return true;
    }
    const Json& j = recv.j();
    if (j.is_null()) {
      err = {a.pos, a.text, "nil pointer evaluating interface {}." + name};
      return false;
    }
    if (!j.is_object()) {
      err = {a.pos, a.text, "can't evaluate field " + name + " in type " + GoTypeName(recv)};
      return false;
    }
    auto it = j.find(name);
    if (it == j.end()) {
      if (recv.is_map) {
        out = Value::Missing();
        return true;
      }
      err = {a.pos, a.text, "can't evaluate field " + name + " in type " + GoTypeName(recv)};
      return false;
    }
    out = recv.Child(*it);
    out.is_map = t_.options.map_fields.count(name) > 0;
    out.type = name;
    return true;
  }

  // ------------------------------------------------------------ functions

  bool Call(const Value& dot, const Arg& fn, const Command& c, const Value* final_value, Value& out,
            ExecError& err) {
    const std::string& name = fn.name;
    auto fail = [&](const std::string& msg) {
      err = {fn.pos, fn.text, "error calling " + name + ": " + msg};
      return false;
    };
    // and/or evaluate their arguments lazily, as Go does since 1.18
    size_t nargs = c.args.size() - 1 + (final_value ? 1 : 0);
    auto arg_at = [&](size_t i, Value& v) -> bool {
      if (i + 1 < c.args.size())
        return EvalArg(dot, c.args[i + 1], v, err);
      v = *final_value;
      return true;
    };
    if (name == "and" || name == "or") {
      if (nargs < 1) {
        err = {fn.pos, fn.text, "wrong number of args for " + name + ": want at least 1 got 0"};
        return false;
      }
      for (size_t i = 0; i < nargs; ++i) {
        if (!arg_at(i, out))
          return false;
        if (Truth(out) == (name == "or"))
          return true;
      }
      return true;
    }
    std::vector<Value> args(nargs);
    for (size_t i = 0; i < nargs; ++i)
      if (!arg_at(i, args[i]))
        return false;
    auto want = [&](size_t n) {
      if (args.size() != n) {
        err = {fn.pos, fn.text,
               "wrong number of args for " + name + ": want " + std::to_string(n) + " got " +
                   std::to_string(args.size())};
        return false;
      }
      return true;
    };
    auto str = [&](size_t i, std::string& s) {
      if (args[i].missing() || !args[i].j().is_string()) {
        err = {fn.pos, fn.text,
               "wrong type for value; expected string; got " + GoTypeName(args[i])};
        return false;
      }
      s = args[i].j().get<std::string>();
      return true;
    };
    auto integer = [&](size_t i, long long& n) {
      if (args[i].missing() || !args[i].j().is_number_integer()) {
        err = {fn.pos, fn.text, "wrong type for value; expected int; got " + GoTypeName(args[i])};
        return false;
      }
      n = args[i].j().is_number_unsigned()
              ? static_cast<long long>(std::min<unsigned long long>(args[i].j().get<unsigned long long>(),
                                                                    1ULL << 62))
              : args[i].j().get<long long>();
      return true;
    };

    if (name == "not") {
      if (!want(1))
        return false;
      out = Value::Of(!Truth(args[0]));
      return true;
    }
    if (name == "eq" || name == "ne" || name == "lt" || name == "le" || name == "gt" || name == "ge") {
      bool eq = name == "eq";
      if (eq ? args.size() < 2 : !want(2)) {
        if (eq)
          err = {fn.pos, fn.text, "wrong number of args for eq: want at least 2 got " + std::to_string(args.size())};
        return false;
      }
      if (name == "eq" || name == "ne") {
        bool any = false;
        for (size_t i = 1; i < args.size(); ++i) {
          int cmp = 0;
          if (!Compare(args[0], args[i], true, cmp, fail))
            return false;
          any = any || cmp == 0;
        }
        out = Value::Of(name == "eq" ? any : !any);
        return true;
      }
      int cmp = 0;
      if (!Compare(args[0], args[1], false, cmp, fail))
        return false;
      bool r = name == "lt" ? cmp < 0 : name == "le" ? cmp <= 0 : name == "gt" ? cmp > 0 : cmp >= 0;
      out = Value::Of(r);
      return true;
    }
    if (name == "len") {
      if (!want(1))
        return false;
      if (args[0].missing())
        return fail("len of nil pointer");
      const Json& j = args[0].j();
      if (j.is_string())
        out = Value::Of(static_cast<long long>(j.get_ref<const std::string&>().size()));
      else if (j.is_array() || j.is_object())
        out = Value::Of(static_cast<long long>(j.size()));
      else
        return fail("len of type " + GoTypeName(args[0]));
      return true;
    }
    if (name == "index") {
      if (args.empty())
        return want(1);
      Value cur = args[0];
      for (size_t i = 1; i < args.size(); ++i) {
        if (cur.missing() || cur.j().is_null())
          return fail("index of untyped nil");
        const Json& j = cur.j();
        const Json& k = args[i].missing() ? Json() : args[i].j();
        if (j.is_array() || j.is_string()) {
          if (!k.is_number_integer())
            return fail("cannot index slice/array with type " + GoTypeName(args[i]));
          long long idx = k.is_number_unsigned() ? -1 : k.get<long long>();
          size_t size = j.is_array() ? j.size() : j.get_ref<const std::string&>().size();
          if (idx < 0 || static_cast<size_t>(idx) >= size)
            return fail("index out of range: " + GoPrint(args[i]));
          if (j.is_array())
            cur = cur.Child(j[static_cast<size_t>(idx)]);
          else
            cur = Value::Of(static_cast<long long>(
                static_cast<unsigned char>(j.get_ref<const std::string&>()[static_cast<size_t>(idx)])));
        } else if (j.is_object()) {
          if (!k.is_string())
            return fail("value has type " + GoTypeName(args[i]) + "; should be string");
          auto it = j.find(k.get<std::string>());
          cur = it == j.end() ? Value::Of("") : cur.Child(*it);  // the zero value, as for map[string]string
        } else {
          return fail("can't index item of type " + GoTypeName(cur));
        }
      }
      out = cur;
      return true;
    }
    if (name == "slice") {
      if (args.empty())
        return want(1);
      if (args.size() > 3)
        return fail("too many slice indexes: " + std::to_string(args.size() - 1));
      if (args[0].missing())
        return fail("slice of untyped nil");
      const Json& j = args[0].j();
      if (!j.is_string() && !j.is_array())
        return fail("can't slice item of type " + GoTypeName(args[0]));
      long long size = static_cast<long long>(j.is_string() ? j.get_ref<const std::string&>().size() : j.size());
      long long lo = 0, hi = size;
      if (args.size() > 1 && !integer(1, lo))
        return false;
      if (args.size() > 2 && !integer(2, hi))
        return false;
      if (lo < 0 || hi > size || lo > hi)
        return fail("invalid slice index: " + std::to_string(lo) + " > " + std::to_string(hi));
      if (j.is_string()) {
        out = Value::Of(j.get_ref<const std::string&>().substr(static_cast<size_t>(lo), static_cast<size_t>(hi - lo)));
      } else {
        Json a = Json::array();
        for (long long i = lo; i < hi; ++i)
          a.push_back(j[static_cast<size_t>(i)]);
        out = Value::Of(std::move(a));
      }
      return true;
    }
    if (name == "printf") {
      std::string f;
      if (args.empty())
        return want(1);
      if (!str(0, f))
        return false;
      std::vector<Value> rest(args.begin() + 1, args.end());
      out = Value::Of(GoSprintf(f, rest));
      return true;
    }
    if (name == "print" || name == "println") {
      std::string s;
      for (size_t i = 0; i < args.size(); ++i) {
        bool is_str = !args[i].missing() && args[i].j().is_string();
        bool prev_str = i > 0 && !args[i - 1].missing() && args[i - 1].j().is_string();
        if (i > 0 && (name == "println" || (!is_str && !prev_str)))
          s += ' ';
        s += args[i].missing() ? "<nil>" : GoPrint(args[i]);
      }
      if (name == "println")
        s += '\n';
      out = Value::Of(s);
      return true;
    }
    if (name == "json") {
      if (!want(1))
        return false;
      out = Value::Of(args[0].missing() ? std::string("null")
                                        : args[0].j().dump(-1, ' ', false, Json::error_handler_t::replace));
      return true;
    }
    if (name == "join") {
      if (!want(2))
        return false;
      std::string sep;
      // A string joins to itself: podman's ps and docker's .Names is one
      // string, and `join .Names ","` is what users type.
      for (const Value& a : args)
        if (a.header) {  // a header row: the column's header
          out = a;
          return true;
        }
      if (!args[0].missing() && args[0].j().is_string()) {
        if (!str(1, sep))
          return false;
        out = args[0];
        return true;
      }
      if (args[0].missing() || !(args[0].j().is_array() || args[0].j().is_null()))
        return fail("wrong type for value; expected []string; got " + GoTypeName(args[0]));
      if (!str(1, sep))
        return false;
      std::string s;
      bool first = true;
      if (args[0].j().is_array())
        for (const auto& e : args[0].j()) {
          if (!e.is_string())
            return fail("wrong type for value; expected []string; got " + GoTypeName(args[0]));
          if (!first)
            s += sep;
          first = false;
          s += e.get<std::string>();
        }
      out = Value::Of(s);
      return true;
    }
    if (name == "lower" || name == "upper" || name == "title") {
      std::string s;
      if (!want(1) || !str(0, s))
        return false;
      if (name == "title") {
        bool sep = true;
        for (char& ch : s) {
          unsigned char u = static_cast<unsigned char>(ch);
          if (sep && u < 0x80)
            ch = static_cast<char>(std::toupper(u));
          sep = u < 0x80 && !std::isalnum(u) && u != '_';
        }
      } else {
        for (char& ch : s)
          if (static_cast<unsigned char>(ch) < 0x80)
            ch = static_cast<char>(name == "lower" ? std::tolower(static_cast<unsigned char>(ch))
                                                   : std::toupper(static_cast<unsigned char>(ch)));
      }
      out = Value::Of(s);
      return true;
    }
    if (name == "truncate") {
      std::string s;
      long long n = 0;
      if (!want(2) || !str(0, s) || !integer(1, n))
        return false;
      if (n < 0)
        return fail("negative length " + std::to_string(n));
      if (static_cast<size_t>(n) < s.size())
        s.resize(static_cast<size_t>(n));
      out = Value::Of(s);
      return true;
    }
    if (name == "pad") {
      std::string s;
      long long pre = 0, post = 0;
      if (!want(3) || !str(0, s) || !integer(1, pre) || !integer(2, post))
        return false;
      if (pre < 0 || post < 0 || pre + post > static_cast<long long>(t_.options.max_output))
        return fail("bad padding " + std::to_string(pre) + ", " + std::to_string(post));
      out = Value::Of(std::string(static_cast<size_t>(pre), ' ') + s + std::string(static_cast<size_t>(post), ' '));
      return true;
    }
    if (name == "split") {
      std::string s, sep;
      if (!want(2) || !str(0, s) || !str(1, sep))
        return false;
      Json a = Json::array();
      if (sep.empty()) {
        for (size_t i = 0; i < s.size();) {
          unsigned char u = static_cast<unsigned char>(s[i]);
          size_t len = u < 0x80 ? 1 : (u & 0xE0) == 0xC0 ? 2 : (u & 0xF0) == 0xE0 ? 3 : 4;
          len = std::min(len, s.size() - i);
          a.push_back(s.substr(i, len));
          i += len;
        }
      } else {
        size_t p = 0;
        while (true) {
          size_t q = s.find(sep, p);
          a.push_back(s.substr(p, q == std::string::npos ? std::string::npos : q - p));
          if (q == std::string::npos)
            break;
          p = q + sep.size();
        }
      }
      out = Value::Of(std::move(a));
      return true;
    }
    if (name == "urlquery") {
      std::string s, r;
      for (size_t i = 0; i < args.size(); ++i)
        s += (i && !(args[i].j().is_string() || args[i - 1].j().is_string()) ? " " : "") +
             (args[i].missing() ? std::string("<nil>") : GoPrint(args[i]));
      for (unsigned char ch : s) {
        if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
          r += static_cast<char>(ch);
        } else if (ch == ' ') {
          r += '+';
        } else {
          char buf[4];
          std::snprintf(buf, sizeof buf, "%%%02X", ch);
          r += buf;
        }
      }
      out = Value::Of(r);
      return true;
    }
    return fail("not supported");
  }

  // Go's eq/lt: basic kinds only; integers and floats compare by value.
  template <typename Fail>
  static bool Compare(const Value& a, const Value& b, bool equality, int& cmp, Fail& fail) {
    auto kind = [](const Value& v) -> int {
      if (v.missing() || v.j().is_null())
        return 0;
      const Json& j = v.j();
      if (j.is_boolean()) return 1;
      if (j.is_number()) return 2;
      if (j.is_string()) return 3;
      return 4;
    };
    int ka = kind(a), kb = kind(b);
    if (ka == 4 || kb == 4)
      return fail(std::string("invalid type for comparison"));
    if (ka == 0 || kb == 0) {
      if (!equality)
        return fail(std::string("invalid type for comparison"));
      cmp = ka == kb ? 0 : 1;
      return true;
    }
    if (ka != kb)
      return fail(std::string("incompatible types for comparison"));
    const Json& x = a.j();
    const Json& y = b.j();
    if (ka == 1) {
      if (!equality)
        return fail(std::string("invalid type for comparison"));
      cmp = x.get<bool>() == y.get<bool>() ? 0 : 1;
    } else if (ka == 3) {
      const auto& s = x.get_ref<const std::string&>();
      const auto& t = y.get_ref<const std::string&>();
      cmp = s < t ? -1 : s > t ? 1 : 0;
    } else if (x.is_number_integer() && y.is_number_integer()) {
      if (x.is_number_unsigned() || y.is_number_unsigned()) {
        // compare as signed unless a value does not fit
        bool xn = !x.is_number_unsigned() && x.get<long long>() < 0;
        bool yn = !y.is_number_unsigned() && y.get<long long>() < 0;
        if (xn != yn) {
          cmp = xn ? -1 : 1;
        } else {
          unsigned long long u = x.get<unsigned long long>(), v = y.get<unsigned long long>();
          cmp = u < v ? -1 : u > v ? 1 : 0;
        }
      } else {
        long long u = x.get<long long>(), v = y.get<long long>();
        cmp = u < v ? -1 : u > v ? 1 : 0;
      }
    } else {
      double u = x.get<double>(), v = y.get<double>();
      cmp = u < v ? -1 : u > v ? 1 : 0;
    }
    return true;
  }

  const Template::Impl& t_;
  const std::map<std::string, std::string>* headers_;
  std::string* out_ = nullptr;
  std::vector<std::pair<std::string, Value>> vars_;
  bool stop_ = false;
  size_t steps_ = 0;
};

// "template: [name:]LINE:COL: "
std::string Where(const Template::Impl& t, size_t pos) {
  pos = std::min(pos, t.text.size());
  size_t line = 1 + static_cast<size_t>(std::count(t.text.begin(), t.text.begin() + static_cast<long>(pos), '\n'));
  size_t nl = pos == 0 ? std::string::npos : t.text.rfind('\n', pos - 1);
  size_t col = nl == std::string::npos ? pos : pos - nl - 1;
  std::string s = "template: ";
  if (!t.options.name.empty())
    s += t.options.name + ":";
  return s + std::to_string(line) + ":" + std::to_string(col) + ": ";
}

Expected<std::string> Run(const std::shared_ptr<const Template::Impl>& impl, const Json& data,
                          const std::map<std::string, std::string>* headers) {
  Exec exec(*impl, headers);
  std::string out;
  ExecError err;
  Value root = headers ? Value::Of("") : Value::Ref(data);
  root.type = impl->options.type_name;
  root.header = headers != nullptr;
  if (!exec.Run(root, out, err)) {
    std::string msg = Where(*impl, err.pos) + "executing";
    if (!impl->options.name.empty())
      msg += " \"" + impl->options.name + "\"";
    if (!err.at.empty())
      msg += " at <" + err.at + ">";
    return Error(Errc::kInvalidInput, msg + ": " + err.message);
  }
  return out;
}

}  // namespace

Expected<Template> Template::Parse(std::string_view text, Options options) {
  auto impl = std::make_shared<Impl>();
  impl->text = std::string(text);
  impl->options = std::move(options);
  std::vector<Token> toks;
  SyntaxError err;
  Lexer lexer(impl->text);
  if (!lexer.Run(toks, err))
    return Error(Errc::kInvalidInput, Where(*impl, err.pos) + err.message);
  Parser parser(toks);
  if (!parser.Run(impl->root, err))
    return Error(Errc::kInvalidInput, Where(*impl, err.pos) + err.message);
  Template t;
  t.impl_ = std::move(impl);
  return t;
}

Expected<std::string> Template::Execute(const nlohmann::json& data) const { return Run(impl_, data, nullptr); }

Expected<std::string> Template::ExecuteHeaders(const std::map<std::string, std::string>& overrides) const {
  return Run(impl_, Json::object(), &overrides);
}

}  // namespace kiln::format
