// BuildKit's shell conformance data (../shared/conformance/buildkit/shell),
// run the way upstream's lex_test.go runs it; see FORMAT.md §4 and §5.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "expand.h"
#include "support/testdata.h"

namespace kiln::frontend {
namespace {

std::string ShellDataDir() {
  std::string shared = test::SharedDir();
  if (shared.empty())
    return "";
  std::string dir = shared + "/conformance/buildkit/shell";
  return PathExists(dir + "/envVarTest") ? dir : "";
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

std::string TrimSpace(std::string_view s) {
  const char* ws = " \t\n\v\f\r";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos)
    return "";
  size_t e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t i = s.find(sep, start);
    if (i == std::string_view::npos) {
      out.emplace_back(s.substr(start));
      return out;
    }
    out.emplace_back(s.substr(start, i - start));
    start = i + 1;
  }
}

std::string Join(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i)
    out += (i ? ", \"" : "\"") + v[i] + "\"";
  return out + "]";
}

TEST(ShellConformanceTest, EnvVarTest) {
  std::string dir = ShellDataDir();
  if (dir.empty())
    GTEST_SKIP() << "conformance data absent (../shared/conformance/buildkit/shell)";
  Environment env;
  env.Set("PWD", "/home");
  env.Set("SHELL", "bash");
  env.Set("KOREAN", "한국어");
  env.Set("NULL", "");
  // Windows lines: names are case-insensitive there.
  EnvLookup upper = [&env](std::string_view name) -> std::optional<std::string> {
    for (const auto& [k, v] : env.entries()) {
      if (k.size() != name.size())
        continue;
      bool same = true;
      for (size_t i = 0; i < k.size() && same; ++i)
        same = std::toupper(static_cast<unsigned char>(k[i])) ==
               std::toupper(static_cast<unsigned char>(name[i]));
      if (same)
        return v;
    }
    return std::nullopt;
  };

  int total = 0, passed = 0, windows_total = 0, windows_passed = 0;
  std::vector<std::string> lines = ReadLines(dir + "/envVarTest");
  for (size_t n = 0; n < lines.size(); ++n) {
    std::string line = lines[n];
    if (!line.empty() && line[0] == '#')
      continue;
    line = TrimSpace(line);
    if (line.empty())
      continue;
    std::vector<std::string> fields = Split(line, '|');
    ASSERT_EQ(fields.size(), 3u) << "envVarTest:" << n + 1;
    std::string platform = TrimSpace(fields[0]);
    std::string input = TrimSpace(fields[1]);
    std::string expected = TrimSpace(fields[2]);
    ASSERT_TRUE(platform == "A" || platform == "U" || platform == "W") << "envVarTest:" << n + 1;
    bool windows = platform == "W";
    auto got = ExpandWord(input, windows ? upper : env.Lookup());
    bool ok = expected == "error" ? !got.has_value() : (got.has_value() && *got == expected);
    if (windows) {
      ++windows_total;
      windows_passed += ok;
    } else {
      ++total;
      passed += ok;
    }
    if (expected == "error")
      EXPECT_FALSE(got.has_value()) << "envVarTest:" << n + 1 << " " << input << " gave "
                                    << (got ? *got : "");
    else if (!got)
      ADD_FAILURE() << "envVarTest:" << n + 1 << " " << input << ": " << got.error().message();
    else
      EXPECT_EQ(*got, expected) << "envVarTest:" << n + 1 << " " << input;
  }
  std::printf("conformance envVarTest: %d/%d (A and U lines); W lines case-insensitive: %d/%d\n",
              passed, total, windows_passed, windows_total);
  EXPECT_EQ(total, 228);
}

TEST(ShellConformanceTest, WordsTest) {
  std::string dir = ShellDataDir();
  if (dir.empty())
    GTEST_SKIP() << "conformance data absent (../shared/conformance/buildkit/shell)";
  Environment env;
  int total = 0, passed = 0;
  std::vector<std::string> lines = ReadLines(dir + "/wordsTest");
  for (size_t n = 0; n < lines.size(); ++n) {
    std::string line = lines[n];
    if (!line.empty() && line[0] == '#')
      continue;
    if (line.rfind("ENV ", 0) == 0) {
      std::string kv = line.substr(3);
      kv.erase(0, kv.find_first_not_of(' '));
      size_t eq = kv.find('=');
      if (eq == std::string::npos)
        env.Set(kv, "");
      else
        env.Set(kv.substr(0, eq), kv.substr(eq + 1));
      continue;
    }
    std::vector<std::string> sides = Split(line, '|');
    ASSERT_EQ(sides.size(), 2u) << "wordsTest:" << n + 1 << " must have exactly one |";
    std::string input = TrimSpace(sides[0]);
    std::string right = sides[1];
    right.erase(0, right.find_first_not_of(' '));
    std::vector<std::string> expected = Split(right, ',');
    auto got = ExpandWords(input, env.Lookup());
    std::vector<std::string> words = got ? *got : std::vector<std::string>{"error"};
    ++total;
    passed += words == expected;
    EXPECT_EQ(words, expected) << "wordsTest:" << n + 1 << " " << input << " gave " << Join(words);
  }
  std::printf("conformance wordsTest: %d/%d\n", passed, total);
  EXPECT_GT(total, 20);
}

}  // namespace
}  // namespace kiln::frontend
