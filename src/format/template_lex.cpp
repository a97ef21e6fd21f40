// The template lexer: Go's text/template lex package, over the whole text
// at once (src/format/template_parse.h).
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "format/template_parse.h"
#include "kiln/text.h"

namespace kiln::format::internal {

namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool IsAlnum(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}

const char* const kKeywords[] = {"if", "else", "end", "range", "with", "break", "continue",
                                 "define", "template", "block"};

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
        if (char u = UnescapeChar(e)) {
          value += u;
          continue;
        }
        switch (e) {
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

}  // namespace

bool Lex(std::string_view text, std::vector<Token>& out, SyntaxError& err) {
  Lexer lexer(text);
  return lexer.Run(out, err);
}

}  // namespace kiln::format::internal
