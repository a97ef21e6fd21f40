// Unit tests of the Containerfile parser (frontend/parser.cpp, lexer.cpp,
// dump.cpp), plus the golden cases under testdata/containerfiles*/.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kiln/containerfile.h"
#include "kiln/fs.h"
#include "lexer.h"
#include "quote.h"
#include "support/golden.h"
#include "support/testdata.h"

namespace kiln::frontend {
namespace {

File MustParse(std::string_view text) {
  auto file = ParseContainerfile(text);
  EXPECT_TRUE(file) << file.error().message();
  return file ? std::move(*file) : File{};
}

std::string ErrorOf(std::string_view text) {
  auto file = ParseContainerfile(text);
  EXPECT_FALSE(file) << "accepted: " << text;
  if (file)
    return {};
  EXPECT_EQ(file.error().code(), Errc::kInvalidInput);
  return file.error().message();
}

std::string Dump(std::string_view text) { return DumpAst(MustParse(text)); }

// --- GoQuote ---------------------------------------------------------------

TEST(GoQuoteTest, EscapesLikeStrconvQuote) {
  EXPECT_EQ(GoQuote(""), "\"\"");
  EXPECT_EQ(GoQuote("a \"b\" \\c"), R"("a \"b\" \\c")");
  EXPECT_EQ(GoQuote("\a\b\f\n\r\t\v"), R"("\a\b\f\n\r\t\v")");
  EXPECT_EQ(GoQuote(std::string("\0\x01\x1f\x7f", 4)), R"("\x00\x01\x1f\x7f")");
  EXPECT_EQ(GoQuote("\xe2\x99\xa5 \xe2\x98\x83"), "\"\xe2\x99\xa5 \xe2\x98\x83\"");  // ♥ ☃
  EXPECT_EQ(GoQuote("\xc2\xa0"), R"("\u00a0")");          // NBSP is not printable
  EXPECT_EQ(GoQuote("\xef\xbb\xbf"), R"("\ufeff")");      // BOM
  EXPECT_EQ(GoQuote("\xf3\xa0\x80\x81"), R"("\U000e0001")");  // language tag (Cf)
  EXPECT_EQ(GoQuote("\xff\xc3"), R"("\xff\xc3")");        // invalid UTF-8
  EXPECT_EQ(GoQuote("\xed\xa0\x80"), R"("\xed\xa0\x80")");  // encoded surrogate
  EXPECT_EQ(GoQuote("\xef\xbf\xbd"), "\"\xef\xbf\xbd\"");  // a real U+FFFD is printable
  EXPECT_EQ(GoQuote("\xf0\x9f\x98\x80"), "\"\xf0\x9f\x98\x80\"");  // emoji
  EXPECT_EQ(GoQuote("\xe2\x80\xa8"), R"("\u2028")");      // line separator
}

// --- JSON ------------------------------------------------------------------

TEST(JsonArrayTest, StrictGoSemantics) {
  std::vector<std::string> v;
  using lex::JsonArray;
  EXPECT_EQ(lex::ParseJsonStringArray("[]", &v), JsonArray::kStrings);
  EXPECT_TRUE(v.empty());
  EXPECT_EQ(lex::ParseJsonStringArray(R"( ["a", "\u00e9\/\"", "\ud83d\ude00"] )", &v),
            JsonArray::kStrings);
  EXPECT_EQ(v, (std::vector<std::string>{"a", "\xc3\xa9/\"", "\xf0\x9f\x98\x80"}));
  EXPECT_EQ(lex::ParseJsonStringArray(R"(["\ud800x"])", &v), JsonArray::kStrings);
  EXPECT_EQ(v[0], "\xef\xbf\xbdx");
  EXPECT_EQ(lex::ParseJsonStringArray("[\"\xff\"]", &v), JsonArray::kStrings);
  EXPECT_EQ(v[0], "\xef\xbf\xbd");
  EXPECT_EQ(lex::ParseJsonStringArray(R"(["a"] x)", &v), JsonArray::kNotJson);
  EXPECT_EQ(lex::ParseJsonStringArray(R"(['a'])", &v), JsonArray::kNotJson);
  EXPECT_EQ(lex::ParseJsonStringArray(R"(["a",])", &v), JsonArray::kNotJson);
  EXPECT_EQ(lex::ParseJsonStringArray("[\"a\tb\"]", &v), JsonArray::kNotJson);
  EXPECT_EQ(lex::ParseJsonStringArray(R"(["a", 01])", &v), JsonArray::kNotJson);
  EXPECT_EQ(lex::ParseJsonStringArray(R"(["a", 1])", &v), JsonArray::kNotStringArray);
  EXPECT_EQ(lex::ParseJsonStringArray(R"(["a", null])", &v), JsonArray::kNotStringArray);
  EXPECT_EQ(lex::ParseJsonStringArray(R"([{"k": [1, -2.5e3, true]}])", &v),
            JsonArray::kNotStringArray);
  EXPECT_EQ(lex::ParseJsonStringArray(R"([{"k" 1}])", &v), JsonArray::kNotJson);
  std::string deep(20000, '[');
  EXPECT_EQ(lex::ParseJsonStringArray(deep + std::string(20000, ']'), &v), JsonArray::kNotJson);
  std::string ok_deep(100, '[');
  EXPECT_EQ(lex::ParseJsonStringArray(ok_deep + std::string(100, ']'), &v),
            JsonArray::kNotStringArray);
}

// --- splitting -------------------------------------------------------------

TEST(ParserTest, InstructionsAreCaseInsensitiveAndCommentsSkipped) {
  EXPECT_EQ(Dump("# comment\nfrom alpine AS Build\n  # indented comment\nRuN echo hi\n"),
            "(from \"alpine\" \"AS\" \"Build\")\n(run \"echo hi\")\n");
}

TEST(ParserTest, ShellAndExecForms) {
  EXPECT_EQ(Dump("CMD [\"a\", \"b\"]\nCMD a b\nCMD ['a']\nENTRYPOINT []\nSHELL [\"/bin/sh\", \"-c\"]\n"),
            "(cmd \"a\" \"b\")\n(cmd \"a b\")\n(cmd \"['a']\")\n(entrypoint)\n"
            "(shell \"/bin/sh\" \"-c\")\n");
  File f = MustParse("RUN [\"a\"]\nRUN a\n");
  EXPECT_TRUE(f.instructions[0].json_form);
  EXPECT_FALSE(f.instructions[1].json_form);
}

TEST(ParserTest, FlagsKeptAsWritten) {
  File f = MustParse("COPY --from=builder --chown=\"a b\" -- src dst\n");
  ASSERT_EQ(f.instructions.size(), 1u);
  EXPECT_EQ(f.instructions[0].flags, (std::vector<std::string>{"--from=builder", "--chown=a b"}));
  EXPECT_EQ(f.instructions[0].args, (std::vector<std::string>{"src", "dst"}));
  EXPECT_EQ(Dump("RUN --mount=type=cache,target=/x\\ y echo\n"),
            "(run [\"--mount=type=cache,target=/x y\"] \"echo\")\n");
  // Flags keep non-ASCII bytes as they are (BuildKit mangles them).
  EXPECT_EQ(MustParse("COPY --chown=j\xc3\xa0 a b\n").instructions[0].flags[0], "--chown=j\xc3\xa0");
}

TEST(ParserTest, EnvLabelArgForms) {
  EXPECT_EQ(Dump("ENV a b c\nENV a=1 b=\"2 3\"\nLABEL x=y\nARG n\nARG m=1 o\nENV\n"),
            "(env \"a\" \"b c\" \"\")\n(env \"a\" \"1\" \"=\" \"b\" \"\\\"2 3\\\"\" \"=\")\n"
            "(label \"x\" \"y\" \"=\")\n(arg \"n\")\n(arg \"m=1\" \"o\")\n(env)\n");
}

TEST(ParserTest, ContinuationsCrLfAndBom) {
  std::string text = "\xef\xbb\xbf# escape=`\r\nFROM a\r\nRUN echo `\r\n\r\n  # c\r\n  b\r\n";
  File f = MustParse(text);
  EXPECT_EQ(f.escape, '`');
  EXPECT_EQ(DumpAst(f), "(from \"a\")\n(run \"echo   b\")\n");
  ASSERT_EQ(f.instructions.size(), 2u);
  EXPECT_EQ(f.instructions[1].start_line, 3);
  EXPECT_EQ(f.instructions[1].end_line, 6);
  ASSERT_EQ(f.warnings.size(), 1u);
  EXPECT_EQ(f.warnings[0].line, 3);
  EXPECT_NE(f.warnings[0].message.find("empty continuation line"), std::string::npos);
}

TEST(ParserTest, Directives) {
  File f = MustParse("# syntax=docker/dockerfile:1.7\n#CHECK = skip=all\nFROM a\n");
  EXPECT_EQ(f.syntax, "docker/dockerfile:1.7");
  EXPECT_EQ(f.check, "skip=all");
  EXPECT_TRUE(f.warnings.empty());
  File other = MustParse("# syntax=example.com/my/frontend\nFROM a\n");
  EXPECT_EQ(other.syntax, "example.com/my/frontend");
  ASSERT_EQ(other.warnings.size(), 1u);
  EXPECT_EQ(other.warnings[0].line, 1);
  EXPECT_NE(other.warnings[0].message.find("never fetches"), std::string::npos);
  // A directive after an instruction or comment is just a comment.
  File late = MustParse("# hello\n# escape=`\nFROM a\n");
  EXPECT_EQ(late.escape, '\\');
  // An unknown directive ends directive scanning.
  EXPECT_EQ(MustParse("# foo=bar\n# escape=`\nFROM a\n").escape, '\\');
}

TEST(ParserTest, Errors) {
  EXPECT_EQ(ErrorOf(""), "Containerfile:1: file with no instructions");
  EXPECT_EQ(ErrorOf("# a\n\n"), "Containerfile:2: file with no instructions");
  EXPECT_EQ(ErrorOf("FROM a\nRUNN x\n"), "Containerfile:2: unknown instruction \"RUNN\" (did you mean RUN?)");
  EXPECT_EQ(ErrorOf("FROM a\n\nENV PATH\n"), "Containerfile:3: ENV must have two arguments: \"ENV PATH\"");
  EXPECT_EQ(ErrorOf("LABEL a=b c\n"),
            "Containerfile:1: LABEL: can't find = in \"c\"; must be of the form name=value");
  EXPECT_EQ(ErrorOf("CMD [\"a\", [\"b\"]]\n"),
            "Containerfile:1: when using JSON array syntax, arrays must be comprised of strings "
            "only: \"CMD [\\\"a\\\", [\\\"b\\\"]]\"");
  EXPECT_EQ(ErrorOf("# escape=`\n# escape=\\\nFROM a\n"),
            "Containerfile:2: only one escape parser directive can be used: \"# escape=\\\\\"");
  EXPECT_EQ(ErrorOf("# escape=x\nFROM a\n"),
            "Containerfile:1: invalid escape token \"x\" in escape directive: must be ` or \\");
  EXPECT_EQ(ErrorOf("FROM a\nRUN <<EOF\nbody\n"), "Containerfile:2: unterminated heredoc \"EOF\"");
  // As in BuildKit, a line that does not lex (unterminated quote) has no
  // heredocs: this is a plain RUN.
  EXPECT_EQ(Dump("FROM a\nRUN <<'EOF\n"), "(from \"a\")\n(run \"<<'EOF\")\n");
  EXPECT_EQ(ErrorOf("ONBUILD ONBUILD RUN x\n"),
            "Containerfile:1: ONBUILD ONBUILD is not allowed: \"ONBUILD RUN x\"");
  auto named = ParseContainerfile("FOO\n", "dir/Containerfile.dev");
  ASSERT_FALSE(named);
  EXPECT_EQ(named.error().message(), "dir/Containerfile.dev:1: unknown instruction \"FOO\" (did you mean FROM?)");
}

TEST(ParserTest, LineLengthLimit) {
  std::string ok = "RUN " + std::string(65535 - 4, 'x') + "\n";
  EXPECT_TRUE(ParseContainerfile(ok));
  std::string too_long = "FROM a\nRUN " + std::string(65536 - 4, 'x') + "\n";
  EXPECT_EQ(ErrorOf(too_long), "Containerfile:2: line longer than 65535 bytes");
  std::string in_heredoc = "FROM a\nRUN <<EOF\n" + std::string(70000, 'y') + "\nEOF\n";
  EXPECT_EQ(ErrorOf(in_heredoc), "Containerfile:3: line longer than 65535 bytes");
}

// --- heredocs --------------------------------------------------------------

TEST(HeredocTest, BuildKitExamples) {
  File f = MustParse(
      "FROM a\n"
      "USER <<INVALID\n"
      "RUN <<EMPTY\nEMPTY\n"
      "RUN 3<<EMPTY2\nEMPTY2\n"
      "RUN \"<<NOHEREDOC\"\n"
      "RUN <<-UNINDENT\n\tbaz\n\tquux\n\tUNINDENT\n"
      "RUN <<-'NOEXPAND'\n\tdon't expand $NAME\nNOEXPAND\n"
      "COPY <<X <<Y /dest\nY\nX\nX\nY\n"
      "RUN [\"<<EOF\"]\n"
      "RUN <<eo'f'\neof\n"
      "RUN <<eo\\'f\neo'f\n"
      "RUN <<'e'o\\'f\neo'f\n");
  const auto& in = f.instructions;
  ASSERT_EQ(in.size(), 12u);
  EXPECT_TRUE(in[1].heredocs.empty());  // USER
  ASSERT_EQ(in[2].heredocs.size(), 1u);
  EXPECT_EQ(in[2].heredocs[0].name, "EMPTY");
  EXPECT_EQ(in[2].heredocs[0].content, "");
  EXPECT_TRUE(in[2].heredocs[0].expand);
  ASSERT_EQ(in[3].heredocs.size(), 1u);
  EXPECT_EQ(in[3].heredocs[0].file_descriptor, 3);
  EXPECT_TRUE(in[4].heredocs.empty());
  ASSERT_EQ(in[5].heredocs.size(), 1u);
  EXPECT_EQ(in[5].heredocs[0].content, "\tbaz\n\tquux\n");
  EXPECT_TRUE(in[5].heredocs[0].chomp);
  ASSERT_EQ(in[6].heredocs.size(), 1u);
  EXPECT_FALSE(in[6].heredocs[0].expand);
  EXPECT_EQ(in[6].heredocs[0].name, "NOEXPAND");
  ASSERT_EQ(in[7].heredocs.size(), 2u);
  EXPECT_EQ(in[7].heredocs[0].content, "Y\n");
  EXPECT_EQ(in[7].heredocs[1].content, "X\n");
  EXPECT_EQ(in[7].args, (std::vector<std::string>{"<<X", "<<Y", "/dest"}));
  EXPECT_TRUE(in[8].heredocs.empty());
  ASSERT_EQ(in[9].heredocs.size(), 1u);
  EXPECT_EQ(in[9].heredocs[0].name, "eof");
  EXPECT_FALSE(in[9].heredocs[0].expand);
  ASSERT_EQ(in[10].heredocs.size(), 1u);
  EXPECT_EQ(in[10].heredocs[0].name, "eo'f");
  EXPECT_TRUE(in[10].heredocs[0].expand);
  ASSERT_EQ(in[11].heredocs.size(), 1u);
  EXPECT_EQ(in[11].heredocs[0].name, "eo'f");
  EXPECT_FALSE(in[11].heredocs[0].expand);
  EXPECT_EQ(in[11].end_line, 26);
}

TEST(HeredocTest, OnbuildAndLines) {
  File f = MustParse("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\nRUN x\n");
  ASSERT_EQ(f.instructions.size(), 3u);
  const Instruction& ob = f.instructions[1];
  ASSERT_EQ(ob.sub.size(), 1u);
  ASSERT_EQ(ob.heredocs.size(), 1u);
  ASSERT_EQ(ob.sub[0].heredocs.size(), 1u);
  EXPECT_EQ(ob.sub[0].heredocs[0].content, "echo hi\n");
  EXPECT_EQ(ob.start_line, 2);
  EXPECT_EQ(ob.end_line, 4);
  EXPECT_EQ(f.instructions[2].start_line, 5);
  EXPECT_EQ(DumpAst(f), "(from \"a\")\n(onbuild (run \"<<EOF\"))\n(run \"x\")\n");
}

// --- golden cases ----------------------------------------------------------

std::vector<std::string> Cases(const std::string& dir) {
  std::vector<std::string> out;
  if (!PathExists(dir))
    return out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    // compile-* cases belong to the compiler's golden tests.
    if (entry.is_directory() && entry.path().filename().string().rfind("compile-", 0) != 0)
      out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// The golden text of a parse: the dump, then one line per heredoc and
/// warning, so that heredoc bodies and warnings are pinned too.
std::string GoldenText(const File& f) {
  std::string out = DumpAst(f);
  for (const Instruction& inst : f.instructions) {
    for (const Heredoc& h : inst.heredocs)
      out += "# heredoc line " + std::to_string(inst.start_line) + ": name=" + GoQuote(h.name) +
             " fd=" + std::to_string(h.file_descriptor) + " expand=" + (h.expand ? "1" : "0") +
             " chomp=" + (h.chomp ? "1" : "0") + " content=" + GoQuote(h.content) + "\n";
    out += "# lines " + std::to_string(inst.start_line) + "-" + std::to_string(inst.end_line) + "\n";
  }
  for (const Warning& w : f.warnings)
    out += "# warning line " + std::to_string(w.line) + ": " + w.message + "\n";
  if (f.escape != '\\')
    out += std::string("# escape ") + f.escape + "\n";
  if (!f.syntax.empty())
    out += "# syntax " + f.syntax + "\n";
  if (!f.check.empty())
    out += "# check " + f.check + "\n";
  return out;
}

/// Parses testdata/ROOT/*/Containerfile (not the compiler's compile-*
/// cases) and hands each case's directory and result to `check`.
template <typename Check>
void ParseCases(const std::string& root, Check check) {
  auto cases = Cases(test::TestdataDir() + "/" + root);
  if (cases.empty())
    GTEST_SKIP() << "no testdata/" << root;
  for (const std::string& c : cases) {
    SCOPED_TRACE(c);
    auto text = ReadFile(c + "/Containerfile");
    ASSERT_TRUE(text);
    check(c, ParseContainerfile(*text));
  }
}

TEST(GoldenTest, ValidContainerfiles) {
  ParseCases("containerfiles", [](const std::string& c, const auto& file) {
    ASSERT_TRUE(file) << file.error().message();
    test::ExpectGolden(c + "/ast.txt", GoldenText(*file));
  });
}

TEST(GoldenTest, InvalidContainerfiles) {
  ParseCases("containerfiles-invalid", [](const std::string& c, const auto& file) {
    ASSERT_FALSE(file) << "accepted";
    EXPECT_EQ(file.error().code(), Errc::kInvalidInput);
    test::ExpectGolden(c + "/error.txt", file.error().message() + "\n");
  });
}

}  // namespace
}  // namespace kiln::frontend
