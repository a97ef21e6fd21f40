// ReadIgnoreFile and IgnoreMatcher: moby/patternmatcher semantics
// (FORMAT.md §7; cases modelled on patternmatcher_test.go and
// ignorefile_test.go).
#include "kiln/containerfile.h"

#include <gtest/gtest.h>

namespace kiln::frontend {
namespace {

std::shared_ptr<const IgnoreMatcher> Make(const std::vector<std::string>& patterns) {
  auto m = IgnoreMatcher::Create(patterns);
  EXPECT_TRUE(m.has_value()) << (m ? "" : m.error().message());
  return m ? *m : nullptr;
}

bool Match(const std::vector<std::string>& patterns, std::string_view path) {
  auto m = Make(patterns);
  return m && m->Matches(path);
}

TEST(ReadIgnoreFileTest, UpstreamExample) {
  std::string text =
      "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
  EXPECT_EQ(ReadIgnoreFile(text), (std::vector<std::string>{"test1", "test2", "a/file/here",
                                                             "lastfile", "!inverted/abs/path",
                                                             "!", "!"}));
}

TEST(ReadIgnoreFileTest, BomCrlfCleaningAndComments) {
  std::string text =
      "\xEF\xBB\xBF" "a//b/./c\r\n  # not a comment after spaces\r\n#comment\n"
      "x/../y\n/\n./z/\n../up\n  spaced  \n";
  EXPECT_EQ(ReadIgnoreFile(text),
            (std::vector<std::string>{"a/b/c", "# not a comment after spaces", "y", "/", "z",
                                      "../up", "spaced"}));
  EXPECT_TRUE(ReadIgnoreFile("").empty());
  EXPECT_TRUE(ReadIgnoreFile("\n\n# only\n").empty());
}

struct MatchCase {
  std::string pattern;
  std::string path;
  bool match;
};

class SinglePatternTest : public ::testing::TestWithParam<MatchCase> {};

TEST_P(SinglePatternTest, MatchesOrParentMatches) {
  const MatchCase& c = GetParam();
  EXPECT_EQ(Match({c.pattern}, c.path), c.match) << "pattern=" << c.pattern << " path=" << c.path;
}

INSTANTIATE_TEST_SUITE_P(
    Upstream, SinglePatternTest,
    ::testing::Values(
        MatchCase{"*", "fileutils.go", true}, MatchCase{"*.go", "fileutils.go", true},
        MatchCase{"**", "file", true}, MatchCase{"**", "file/", true},
        MatchCase{"**/", "file", true}, MatchCase{"**", "dir/file", true},
        MatchCase{"**/**", "dir/file", true}, MatchCase{"dir/**", "dir/file", true},
        MatchCase{"dir/**", "dir/dir2/file/", true}, MatchCase{"**/dir", "dir", true},
        MatchCase{"**/dir", "dir/file", true}, MatchCase{"**/dir2/*", "dir/dir2/file", true},
        MatchCase{"**/dir2/*", "dir/dir2/file/", true},
        MatchCase{"**/dir2/**", "dir/dir2/dir3/file", true}, MatchCase{"**file", "file", true},
        MatchCase{"**file", "dir/file", true}, MatchCase{"**/file", "dir/dir/file", true},
        MatchCase{"**/file*", "dir/dir/file.txt", true},
        MatchCase{"**/file*txt", "dir/dir/file.txt", true},
        MatchCase{"**/file*.txt*", "dir/dir/file.txt", true},
        MatchCase{"**/**/*.txt", "dir/dir/file.txt", true},
        MatchCase{"**/**/*.txt2", "dir/dir/file.txt", false},
        MatchCase{"**/*.txt", "file.txt", true}, MatchCase{"**/**/*.txt", "file.txt", true},
        MatchCase{"a**/*.txt", "a/file.txt", true}, MatchCase{"a**/*.txt", "a/dir/file.txt", true},
        MatchCase{"a**/*.txt", "a/dir/dir/file.txt", true},
        MatchCase{"a/*.txt", "a/dir/file.txt", false}, MatchCase{"a/*.txt", "a/file.txt", true},
        MatchCase{"a/*.txt**", "a/file.txt", true}, MatchCase{"a[b-d]e", "ae", false},
        MatchCase{"a[b-d]e", "ace", true}, MatchCase{"a[b-d]e", "aae", false},
        MatchCase{"a[^b-d]e", "aze", true}, MatchCase{".*", ".foo", true},
        MatchCase{".*", "foo", false}, MatchCase{"abc.def", "abcdef", false},
        MatchCase{"abc.def", "abc.def", true}, MatchCase{"abc.def", "abcZdef", false},
        MatchCase{"abc?def", "abcZdef", true}, MatchCase{"abc?def", "abcdef", false},
        MatchCase{"**/foo/bar", "foo/bar", true}, MatchCase{"**/foo/bar", "dir/dir2/foo/bar", true},
        MatchCase{"abc/**", "abc", false}, MatchCase{"abc/**", "abc/def", true},
        MatchCase{"abc/**", "abc/def/ghi", true}, MatchCase{"**/.foo", ".foo", true},
        MatchCase{"**/.foo", "bar.foo", false}, MatchCase{"a(b)c/def", "a(b)c/def", true},
        MatchCase{"a(b)c/def", "a(b)c/xyz", false},
        MatchCase{"a.|)$(}+{bc", "a.|)$(}+{bc", true},
        MatchCase{"dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true},
        MatchCase{"a\\\\", "a\\", true}, MatchCase{"a\\*b", "a*b", true},
        MatchCase{"a\\*b", "axb", false},
        // From Go's filepath.Match tests.
        MatchCase{"abc", "abc", true}, MatchCase{"*c", "abc", true}, MatchCase{"a*", "a", true},
        MatchCase{"a*", "ab/c", true},  // the parent "ab" matches
        MatchCase{"a*/b", "abc/b", true}, MatchCase{"a*/b", "a/c/b", false},
        MatchCase{"a*b*c*d*e*/f", "axbxcxdxexxx/f", true},
        MatchCase{"a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false},
        MatchCase{"a*b?c*x", "abxbbxdbxebxczzx", true},
        MatchCase{"a*b?c*x", "abxbbxdbxebxczzy", false}, MatchCase{"ab[c]", "abc", true},
        MatchCase{"ab[e-g]", "abc", false}, MatchCase{"ab[^c]", "abc", false},
        MatchCase{"ab[^e-g]", "abc", true}, MatchCase{"a?b", "a☺b", true},
        MatchCase{"a[^a]b", "a☺b", true}, MatchCase{"a???b", "a☺b", false},
        MatchCase{"[a-ζ]*", "α", true}, MatchCase{"*[a-ζ]", "A", false},
        MatchCase{"a?b", "a/b", false}, MatchCase{"a*b", "a/b", false},
        MatchCase{"[\\]a]", "]", true}, MatchCase{"[\\-]", "-", true},
        MatchCase{"[x\\-]", "-", true}, MatchCase{"[x\\-]", "z", false},
        MatchCase{"[\\-x]", "x", true}, MatchCase{"[\\-x]", "a", false},
        MatchCase{"[z-a]", "m", false}, MatchCase{"*x", "xxx", true},
        // Cleaning of patterns and paths.
        MatchCase{"docs/", "docs/README.md", true}, MatchCase{"./docs//a", "docs/a", true},
        MatchCase{"docs", "/docs/x", true}, MatchCase{"docs", "./docs", true},
        MatchCase{"*.go", ".", false}, MatchCase{"docs", "docsx", false}));

TEST(IgnoreMatcherTest, LastMatchWinsAndExceptions) {
  EXPECT_TRUE(Match({"!fileutils.go", "*.go"}, "fileutils.go"));
  EXPECT_FALSE(Match({"*.go", "!fileutils.go"}, "fileutils.go"));
  EXPECT_FALSE(Match({"docs", "!docs/README.md"}, "docs/README.md"));
  EXPECT_FALSE(Match({"docs/", "!docs/README.md"}, "docs/README.md"));
  EXPECT_FALSE(Match({"docs/*", "!docs/README.md"}, "docs/README.md"));
  EXPECT_TRUE(Match({"docs", "!docs/README.md"}, "docs/other.md"));
  EXPECT_FALSE(Match({"**", "!util/docker/web"}, "util/docker/web/foo"));
  EXPECT_TRUE(Match({"**", "!util/docker/web", "util/docker/web/foo"}, "util/docker/web/foo"));
  EXPECT_FALSE(Match({"**", "!dist/*.whl"},
                     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"));
  EXPECT_FALSE(Match({"  docs  ", "  !docs/README.md  "}, "docs/README.md"));
  EXPECT_TRUE(Match({"*", "!keep", "keep/tmp"}, "keep/tmp/x"));
  EXPECT_FALSE(Match({"*", "!keep", "keep/tmp"}, "keep/other"));
}

TEST(IgnoreMatcherTest, NoPatternsMatchNothing) {
  auto m = Make({});
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->empty());
  EXPECT_FALSE(m->Matches("any/path/there"));
  auto blank = Make({"", "   "});
  ASSERT_TRUE(blank);
  EXPECT_TRUE(blank->empty());
}

TEST(IgnoreMatcherTest, MalformedPatternsAreErrors) {
  for (std::string p : {"[", "[^", "[^bc", "a[", "[]a]", "[-]", "[x-]", "[-x]", "[a-b-c]", "\\",
                        "a\\", "!", " ! ", "ok/[", "!a["}) {
    auto m = IgnoreMatcher::Create({"fine", p});
    ASSERT_FALSE(m.has_value()) << "pattern " << p;
    EXPECT_EQ(m.error().code(), Errc::kInvalidInput);
  }
  auto m = IgnoreMatcher::Create({"a["});
  ASSERT_FALSE(m.has_value());
  EXPECT_NE(m.error().message().find("a["), std::string::npos) << m.error().message();
}

TEST(IgnoreMatcherTest, HasExceptionsUnder) {
  auto m = Make({"node_modules", "!node_modules/keep/me.js", "build", "!**/important",
                 "vendor/*", "!vendor/a*/lib", "tmp"});
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->Matches("node_modules"));
  EXPECT_TRUE(m->HasExceptionsUnder("node_modules"));
  EXPECT_TRUE(m->HasExceptionsUnder("node_modules/keep"));
  EXPECT_TRUE(m->HasExceptionsUnder("node_modules/other"));  // via "!**/important"
  EXPECT_TRUE(m->HasExceptionsUnder("build"));  // "!**/important" can be anywhere
  EXPECT_TRUE(m->HasExceptionsUnder("vendor/abc"));
  EXPECT_TRUE(m->HasExceptionsUnder("vendor/abc/lib/deep"));
  EXPECT_TRUE(m->HasExceptionsUnder("."));
  auto plain = Make({"tmp", "!keep", "!src/*.c"});
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->HasExceptionsUnder("tmp"));
  EXPECT_TRUE(plain->HasExceptionsUnder("keep"));
  EXPECT_TRUE(plain->HasExceptionsUnder("src"));
  EXPECT_FALSE(plain->HasExceptionsUnder("srcx"));
  EXPECT_FALSE(plain->HasExceptionsUnder("src/deeper"));  // "*.c" names files in src only
  EXPECT_TRUE(plain->HasExceptionsUnder("keep/deeper"));
  auto none = Make({"tmp"});
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->HasExceptionsUnder("tmp"));
  EXPECT_FALSE(none->HasExceptionsUnder("."));
}

TEST(IgnoreMatcherTest, ReadThenMatch) {
  auto patterns = ReadIgnoreFile("# build output\n/build\n*.o\n!/build/keep.o\n**/.git\n");
  auto m = Make(patterns);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->Matches("build/x"));
  EXPECT_FALSE(m->Matches("build/keep.o"));
  EXPECT_TRUE(m->Matches("main.o"));
  EXPECT_FALSE(m->Matches("src/main.o"));  // '*' does not cross '/'
  EXPECT_TRUE(m->Matches("sub/mod/.git/config"));
  EXPECT_FALSE(m->Matches("main.c"));
}

}  // namespace
}  // namespace kiln::frontend
