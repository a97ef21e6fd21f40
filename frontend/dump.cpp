// DumpAst (BuildKit's Node.Dump()) and GoQuote (Go's strconv.Quote); see
// shared/conformance/buildkit/FORMAT.md §1.1-1.2.
#include <string>
#include <string_view>

#include "kiln/containerfile.h"
#include "lexer.h"
#include "quote.h"
#include "kiln/text.h"

namespace kiln::frontend {
namespace {

void AppendHex(std::string& out, unsigned long value, int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4)
    out += kHex[(value >> shift) & 0xF];
}

std::string DumpInstruction(const Instruction& inst) {
  std::string out = inst.keyword;
  if (!inst.flags.empty()) {
    out += " [";
    for (size_t i = 0; i < inst.flags.size(); ++i) {
      if (i > 0)
        out += ' ';
      out += GoQuote(inst.flags[i]);
    }
    out += ']';
  }
  if (inst.keyword == "onbuild") {
    for (const Instruction& sub : inst.sub)
      out += " (" + DumpInstruction(sub) + ")";
  } else {
    for (const std::string& arg : inst.args)
      out += " " + GoQuote(arg);
  }
  return std::string(lex::TrimSpace(out));
}

}  // namespace

std::string GoQuote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (size_t i = 0; i < s.size();) {
    lex::Rune r = lex::DecodeRune(s, i);
    if (r.width == 1 && r.value == 0xFFFD) {
      out += "\\x";
      AppendHex(out, static_cast<unsigned char>(s[i]), 2);
      ++i;
      continue;
    }
    char32_t c = r.value;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (lex::IsPrint(c)) {
      out.append(s.substr(i, r.width));
    } else {
      if (const char* e = EscapeControl(c)) {
        out += e;
      } else if (c < ' ' || c == 0x7F) {
        out += "\\x";
        AppendHex(out, c, 2);
      } else if (c < 0x10000) {
        out += "\\u";
        AppendHex(out, c, 4);
      } else {
        out += "\\U";
        AppendHex(out, c, 8);
      }
    }
    i += r.width;
  }
  out += '"';
  return out;
}

std::string DumpAst(const File& file) {
  std::string out;
  for (const Instruction& inst : file.instructions)
    out += "(" + DumpInstruction(inst) + ")\n";
  return out;
}

}  // namespace kiln::frontend
