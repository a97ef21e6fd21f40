// ExpandWord / ExpandWords / ExpandWordWithMatches: the pattern modifiers,
// matched-name reporting, options and errors (FORMAT.md §6; cases modelled
// on BuildKit's TestProcessWithMatches).
#include "expand.h"

#include <gtest/gtest.h>

#include <map>

namespace kiln::frontend {
namespace {

EnvLookup MapEnv(std::map<std::string, std::string> m) {
  return [m = std::move(m)](std::string_view name) -> std::optional<std::string> {
    auto it = m.find(std::string(name));
    if (it == m.end())
      return std::nullopt;
    return it->second;
  };
}

using Names = std::vector<std::string>;

struct Case {
  std::string input;
  std::map<std::string, std::string> env;
  std::string expected;  // ignored when error
  bool error = false;
  Names matched;
  Names unmatched;
};

class WithMatchesTest : public ::testing::TestWithParam<Case> {};

TEST_P(WithMatchesTest, Expands) {
  const Case& c = GetParam();
  auto got = ExpandWordWithMatches(c.input, MapEnv(c.env));
  if (c.error) {
    ASSERT_FALSE(got.has_value()) << c.input << " gave " << got->word;
    EXPECT_EQ(got.error().code(), Errc::kInvalidInput);
    return;
  }
  ASSERT_TRUE(got.has_value()) << c.input << ": " << got.error().message();
  EXPECT_EQ(got->word, c.expected) << c.input;
  EXPECT_EQ(got->matched, c.matched) << c.input;
  EXPECT_EQ(got->unmatched, c.unmatched) << c.input;
}

const std::map<std::string, std::string> kFooBar = {{"FOO", "xxx"}, {"BAR", ""}};

INSTANTIATE_TEST_SUITE_P(
    Upstream, WithMatchesTest,
    ::testing::Values(
        Case{"x", {{"DUMMY", "dummy"}}, "x"},
        Case{"x ${UNUSED}", {{"DUMMY", "dummy"}}, "x ", false, {}, {"UNUSED"}},
        Case{"x ${FOO}", {{"FOO", "y"}}, "x y", false, {"FOO"}},
        Case{"${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", kFooBar, "xxx  ccc", false, {"BAR", "FOO"},
             {"BAZ"}},
        Case{"${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", kFooBar, "xxx bbb ccc", false,
             {"BAR", "FOO"}, {"BAZ"}},
        Case{"${FOO:-}", kFooBar, "xxx", false, {"FOO"}},
        Case{"${FOO:-}", {}, "", false, {}, {"FOO"}},
        Case{"${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", kFooBar, "aaa bbb ", false, {"BAR", "FOO"},
             {"BAZ"}},
        Case{"${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", kFooBar, "aaa  ", false, {"BAR", "FOO"},
             {"BAZ"}},
        Case{"${FOO?aaa}", kFooBar, "xxx", false, {"FOO"}},
        Case{"${BAR?bbb}", kFooBar, "", false, {"BAR"}},
        Case{"${BAZ?ccc}", kFooBar, "", true},
        Case{"${FOO:?aaa}", kFooBar, "xxx", false, {"FOO"}},
        Case{"${BAR:?bbb}", kFooBar, "", true},
        Case{"${BAZ:?ccc}", kFooBar, "", true},
        Case{"${BAZ:?}", kFooBar, "", true},
        Case{"${FOO=aaa}", kFooBar, "", true},
        Case{"${FOO=:aaa}", kFooBar, "", true},
        Case{"${FOO=}", {}, "", true},
        Case{"${FOO:=aaa}", kFooBar, "", true},
        // Regex metacharacters are literal in patterns; '}' must be escaped.
        Case{"${FOO#()[]{\\}^$.\\*\\?|\\\\}", {{"FOO", "()[]{}^$.*?|\\x"}}, "x", false, {"FOO"}},
        Case{"${FOO%%\\**}", {{"FOO", "xx**"}}, "xx", false, {"FOO"}},
        Case{"${FOO#*x*y}", {{"FOO", "xxyy"}}, "y", false, {"FOO"}},
        Case{"${FOO#*}", {{"FOO", "xxyy"}}, "xxyy", false, {"FOO"}},
        Case{"${FOO##*}", {{"FOO", "xxyy"}}, "", false, {"FOO"}},
        Case{"${FOO#$BAR}", {{"FOO", "xxyy"}, {"BAR", "x"}}, "xyy", false, {"BAR", "FOO"}},
        Case{"${FOO#$BAR}", {{"FOO", "xxyy"}, {"BAR", ""}}, "xxyy", false, {"BAR", "FOO"}},
        Case{"${FOO#}", {{"FOO", "xxyy"}}, "xxyy", false, {"FOO"}},
        Case{"${FOO##*x}", {{"FOO", "xxyy"}}, "yy", false, {"FOO"}},
        Case{"${FOO#*x}", {{"FOO", "xxyy"}}, "xyy", false, {"FOO"}},
        Case{"${FOO##}", {{"FOO", "xxyy"}}, "xxyy", false, {"FOO"}},
        Case{"${FOO#?\\?}", {{"FOO", "???y"}}, "?y", false, {"FOO"}},
        Case{"${ABC:-.}${FOO%x}${ABC:-.}", {{"FOO", "xxyy"}}, ".xxyy.", false, {"FOO"},
             {"ABC"}},
        Case{"${FOO%y*}", {{"FOO", "xxyy"}}, "xxy", false, {"FOO"}},
        Case{"${FOO%%y*}", {{"FOO", "xxyy"}}, "xx", false, {"FOO"}},
        Case{"${FOO%%\\**\\*}", {{"FOO", "a***yy*"}}, "a", false, {"FOO"}},
        Case{"${FOO%}", {{"FOO", "xxyy"}}, "xxyy", false, {"FOO"}},
        Case{"${FOO%%$BAR}", {{"FOO", "xxyy"}, {"BAR", ""}}, "xxyy", false, {"BAR", "FOO"}},
        Case{"${FOO%.*}", {{"FOO", "archive.tar.gz"}}, "archive.tar", false, {"FOO"}},
        Case{"${FOO%%.*}", {{"FOO", "archive.tar.gz"}}, "archive", false, {"FOO"}},
        Case{"${FOO#*/}", {{"FOO", "a/b/c"}}, "b/c", false, {"FOO"}},
        Case{"${FOO##*/}", {{"FOO", "a/b/c"}}, "c", false, {"FOO"}},
        Case{"${FOO%/*}", {{"FOO", "a/b/c"}}, "a/b", false, {"FOO"}},
        Case{"${FOO#한}", {{"FOO", "한국어"}}, "국어", false, {"FOO"}},
        Case{"${FOO%?}", {{"FOO", "한국어"}}, "한국", false, {"FOO"}},
        Case{"${UNSET#x}", {}, "", false, {}, {"UNSET"}},
        // Replacement.
        Case{"${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}", {{"FOO", "/foo*/*/*.txt"}, {"NEEDLE", "\\*/"}},
             "/foo.*/*.txt - /foo..*.txt", false, {"FOO", "NEEDLE"}},
        Case{"${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}", {{"FOO", "/tmp/tmp/bar.txt"}, {"NEEDLE", "/tmp"}},
             "/tmp/bar.txt - /bar.txt", false, {"FOO", "NEEDLE"}},
        Case{"${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
             {{"FOO", "/a/foo/b/c.txt"}, {"NEEDLE", "/?/"}, {"REPLACEMENT", "/"}},
             "/foo/b/c.txt - /foo/c.txt", false, {"FOO", "NEEDLE", "REPLACEMENT"}},
        Case{"${FOO/$NEEDLE/$REPLACEMENT}",
             {{"FOO", "http://google.de"}, {"NEEDLE", "http://"}, {"REPLACEMENT", "https://"}},
             "https://google.de", false, {"FOO", "NEEDLE", "REPLACEMENT"}},
        Case{"${FOO//\\//\\/}", {{"FOO", "/tmp/foo.txt"}}, "\\/tmp\\/foo.txt", false, {"FOO"}},
        Case{"${FOO/x*/z}", {{"FOO", "axbxc"}}, "az", false, {"FOO"}},
        Case{"${FOO//x?/-}", {{"FOO", "axbxc"}}, "a--", false, {"FOO"}},
        Case{"${FOO/$BAR/ww}", {{"FOO", "xxyy"}, {"BAR", ""}}, "wwxxyy", false, {"BAR", "FOO"}},
        Case{"${FOO//ww}", {{"FOO", "xxyy"}}, "", true},
        Case{"${FOO//}", {{"FOO", "xxyy"}}, "", true},
        Case{"${FOO///}", {{"FOO", "xxyy"}}, "xxyy", false, {"FOO"}},
        Case{"${FOO///}", {}, "", false, {}, {"FOO"}},
        // Invalid pattern escapes.
        Case{"${FOO#\\x}", {{"FOO", "xx"}}, "", true},
        Case{"${FOO#$P}", {{"FOO", "xx"}, {"P", "a\\"}}, "", true},
        Case{"${FOO/\\q/r}", {{"FOO", "xx"}}, "", true},
        // ':' is only valid before - + ?.
        Case{"${FOO:#x}", {{"FOO", "xx"}}, "", true},
        Case{"${FOO:%x}", {{"FOO", "xx"}}, "", true},
        // The default word is evaluated (and its names reported) even when
        // the variable is set.
        Case{"${FOO:-$BAR}", {{"FOO", "a"}}, "a", false, {"FOO"}, {"BAR"}},
        // Positional and special parameters are never set.
        Case{"$1$@${#}", {}, "", false, {}, {"#", "1", "@"}}));

std::string Expand(std::string_view w, std::map<std::string, std::string> env = {},
                   ExpandOptions opts = {}) {
  auto r = ExpandWord(w, MapEnv(std::move(env)), opts);
  return r ? *r : "ERROR: " + r.error().message();
}

TEST(ExpandTest, MandatoryMessagesAreExpanded) {
  auto unset = ExpandWord("${VAR:?message here$ARG}", MapEnv({{"ARG", "x"}}));
  ASSERT_FALSE(unset.has_value());
  EXPECT_NE(unset.error().message().find("VAR: message herex"), std::string::npos)
      << unset.error().message();
  auto empty = ExpandWord("${VAR:?message here$ARG}", MapEnv({{"VAR", ""}, {"ARG", "x"}}));
  ASSERT_FALSE(empty.has_value());
  EXPECT_NE(empty.error().message().find("message herex"), std::string::npos);
  EXPECT_EQ(Expand("${VAR?message here$ARG}", {{"VAR", ""}, {"ARG", "x"}}), "");
  EXPECT_EQ(Expand("${VAR?message}", {{"VAR", "plain"}}), "plain");
  auto dflt = ExpandWord("${VAR?}", MapEnv({}));
  ASSERT_FALSE(dflt.has_value());
  EXPECT_NE(dflt.error().message().find("VAR: is not allowed to be unset"), std::string::npos);
  auto dflt_empty = ExpandWord("${VAR:?}", MapEnv({{"VAR", ""}}));
  ASSERT_FALSE(dflt_empty.has_value());
  EXPECT_NE(dflt_empty.error().message().find("VAR: is not allowed to be empty"),
            std::string::npos);
}

TEST(ExpandTest, ErrorsNameTheWordAndAreInvalidInput) {
  auto r = ExpandWord("he${}", MapEnv({}));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Errc::kInvalidInput);
  EXPECT_EQ(r.error().message(), "failed to process \"he${}\": syntax error: bad substitution");
  EXPECT_NE(Expand("${X").find("missing '}'"), std::string::npos);
  EXPECT_NE(Expand("'abc").find("single-quote"), std::string::npos);
  EXPECT_NE(Expand("\"abc").find("double-quote"), std::string::npos);
  EXPECT_NE(Expand("${X:=y}").find("unsupported modifier (:=)"), std::string::npos);
  EXPECT_NE(Expand("${X/a").find("missing '/'"), std::string::npos);
  EXPECT_NE(Expand("${X/a/b").find("missing '}'"), std::string::npos);
}

TEST(ExpandTest, BacktickEscapeToken) {
  ExpandOptions opts;
  opts.escape = '`';
  EXPECT_EQ(Expand("a`$HOME", {{"HOME", "/root"}}, opts), "a$HOME");
  EXPECT_EQ(Expand("C:\\path\\$D", {{"D", "x"}}, opts), "C:\\path\\x");
  EXPECT_EQ(Expand("\"q`\"q\"", {}, opts), "q\"q");
  EXPECT_EQ(Expand("\"a\\b\"", {}, opts), "a\\b");
  EXPECT_EQ(Expand("ab`", {}, opts), "ab");
  EXPECT_EQ(Expand("``", {}, opts), "`");
}

TEST(ExpandTest, RawQuotesAndEscapes) {
  ExpandOptions raw_quotes;
  raw_quotes.raw_quotes = true;
  EXPECT_EQ(Expand("'a b'\"$X\"", {{"X", "1"}}, raw_quotes), "'a b'\"1\"");
  ExpandOptions raw_escapes;
  raw_escapes.raw_escapes = true;
  EXPECT_EQ(Expand("a\\$X\\ b", {{"X", "1"}}, raw_escapes), "a\\$X\\ b");
  EXPECT_EQ(Expand("\"a\\\"b\"", {}, raw_escapes), "a\\\"b");
}

TEST(ExpandTest, SkipUnsetLeavesUnsetReferencesAsWritten) {
  ExpandOptions opts;
  opts.skip_unset = true;
  std::map<std::string, std::string> env = {{"SET", "v"}};
  EXPECT_EQ(Expand("$SET $UNSET ${UNSET} ${SET}", env, opts), "v $UNSET ${UNSET} v");
  EXPECT_EQ(Expand("${UNSET:-$SET}", env, opts), "${UNSET:-v}");
  EXPECT_EQ(Expand("${UNSET#x}", env, opts), "${UNSET#x}");
  EXPECT_EQ(Expand("${UNSET//a/b}", env, opts), "${UNSET//a/b}");
  EXPECT_EQ(Expand("${SET:+y}", env, opts), "y");
}

TEST(ExpandTest, ReplaceAllUsesGoTemplateExpansion) {
  // BuildKit passes the replacement of ${V//p/r} to Go's ReplaceAllString,
  // so "$0" is the match and "$$" a dollar; ${V/p/r} is literal.
  EXPECT_EQ(Expand("${V//b/<\\$0>}", {{"V", "abc"}}), "a<\\b>c");
  EXPECT_EQ(Expand("${V/b/<\\$0>}", {{"V", "abc"}}), "a<\\$0>c");
  EXPECT_EQ(Expand("${V//b/${D}${D}}", {{"V", "abc"}, {"D", "$"}}), "a$c");
  // An empty pattern matches between characters.
  EXPECT_EQ(Expand("${V//$E/-}", {{"V", "ab"}, {"E", ""}}), "-a-b-");
}

TEST(ExpandTest, WordsSplitOnlyUnquotedExpansionsAndLiterals) {
  auto env = MapEnv({{"A", "1 2"}, {"E", ""}});
  auto words = ExpandWords("x$A \"$A\" 'a  b' c\\ d $E \"\"", env);
  ASSERT_TRUE(words.has_value()) << words.error().message();
  EXPECT_EQ(*words, (std::vector<std::string>{"x1", "2", "1 2", "a  b", "c d"}));
  auto nested = ExpandWords("pre${U:-a b}post", env);
  ASSERT_TRUE(nested.has_value());
  EXPECT_EQ(*nested, (std::vector<std::string>{"prea", "bpost"}));
  auto unicode_space = ExpandWords("a\xC2\xA0" "b", env);  // NBSP separates like Go's IsSpace
  ASSERT_TRUE(unicode_space.has_value());
  EXPECT_EQ(*unicode_space, (std::vector<std::string>{"a", "b"}));
}

TEST(ExpandTest, NamesFollowGoRules) {
  std::map<std::string, std::string> env = {{"한국", "k"}, {"A_1", "a"}, {"A", "x"}};
  EXPECT_EQ(Expand("$한국.", env), "k.");
  EXPECT_EQ(Expand("$A_1-", env), "a-");
  EXPECT_EQ(Expand("${A_1}", env), "a");
  EXPECT_EQ(Expand("$A-b", env), "x-b");
  EXPECT_EQ(Expand("$1A", env), "A");
  EXPECT_EQ(Expand("$", env), "$");
  EXPECT_EQ(Expand("a$ b", env), "a$ b");
}

TEST(ExpandTest, LeadingByteOrderMarkIsDropped) {
  EXPECT_EQ(Expand("\xEF\xBB\xBF$A", {{"A", "1"}}), "1");
}

// Arbitrary input never crashes or hangs, and errors are always
// kInvalidInput (run under ASan in CI).
TEST(ExpandTest, RandomInputIsHandled) {
  const std::string alphabet = "${}:-+?#%/\\`'\" aXY_1*.\xC3\xA9\xFF";
  auto env = MapEnv({{"a", "x y"}, {"X", ""}, {"Y", "*"}});
  uint32_t seed = 12345;
  int errors = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string word;
    size_t len = (seed >> 8) % 24;
    for (size_t j = 0; j < len; ++j) {
      seed = seed * 1103515245u + 12345u;
      word += alphabet[(seed >> 16) % alphabet.size()];
    }
    seed = seed * 1103515245u + 12345u;
    ExpandOptions opts;
    opts.escape = (seed & 1) ? '`' : '\\';
    opts.raw_quotes = seed & 2;
    opts.raw_escapes = seed & 4;
    opts.skip_unset = seed & 8;
    auto r = ExpandWordWithMatches(word, env, opts);
    if (!r) {
      ++errors;
      EXPECT_EQ(r.error().code(), Errc::kInvalidInput);
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(ExpandTest, InvalidUtf8PassesThrough) {
  EXPECT_EQ(Expand("a\xff$A\xfe", {{"A", "\x80"}}), "a\xff\x80\xfe");
}

// docs/security.md H36: a word whose expansion is over ExpandOptions::max_word
// (1 MiB by default) is an error, found before the result is built in full.
TEST(ExpandLimitTest, ResultOverOneMiBIsAnError) {
  std::string half(kMaxExpandedWord / 2, 'x');
  auto env = MapEnv({{"H", half}, {"H1", half + "y"}});
  auto ok = ExpandWord("${H}${H}", env);
  ASSERT_TRUE(ok.has_value()) << ok.error().message();
  EXPECT_EQ(ok->size(), kMaxExpandedWord);
  auto over = ExpandWord("${H}${H1}", env);
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code(), Errc::kInvalidInput);
  EXPECT_NE(over.error().message().find("larger than 1 MiB"), std::string::npos) << over.error().message();
  // In double quotes, in a default word, and through replacement.
  EXPECT_FALSE(ExpandWord("\"$H$H1\"", env).has_value());
  EXPECT_FALSE(ExpandWord("${U:-$H$H1}", env).has_value());
  EXPECT_FALSE(ExpandWord("${H1//x/xx}", env).has_value());  // 1 MiB + 1
  EXPECT_FALSE(ExpandWord("${H1/x/$H1}", env).has_value());  // 1 MiB + 1
  EXPECT_TRUE(ExpandWord("${H//x/xx}", env).has_value());    // exactly 1 MiB
  EXPECT_FALSE(ExpandWord("${H//x/$H}", env).has_value());  // would be 2^38 bytes
  EXPECT_TRUE(ExpandWord("${H//x/y}", env).has_value());
}

TEST(ExpandLimitTest, MaxWordAndBudgetOptions) {
  ExpandOptions o;
  o.max_word = 4;
  auto env = MapEnv({{"A", "ab"}});
  EXPECT_EQ(ExpandWord("$A$A", env, o).value_or("?"), "abab");
  EXPECT_FALSE(ExpandWord("$A$A$A", env, o).has_value());
  EXPECT_FALSE(ExpandWord("abcde", env, o).has_value());  // a literal over the bound too
  size_t budget = 5;
  o.budget = &budget;
  EXPECT_TRUE(ExpandWord("$A$A", env, o).has_value());
  EXPECT_EQ(budget, 1u);
  auto e = ExpandWord("$A", env, o);
  ASSERT_FALSE(e.has_value());
  EXPECT_NE(e.error().message().find("larger than 64 MiB"), std::string::npos) << e.error().message();
}

}  // namespace
}  // namespace kiln::frontend
