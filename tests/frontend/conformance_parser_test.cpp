// BuildKit parser conformance (shared/conformance/buildkit/FORMAT.md §1-3):
// every testfiles/<case>/Dockerfile dumps byte-identical to `result`, every
// testfiles-negative case is rejected, testfile-line has the upstream line
// numbers.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kiln/containerfile.h"
#include "kiln/fs.h"
#include "support/testdata.h"

namespace kiln::frontend {
namespace {

std::string ParserDataDir() {
  std::string shared = test::SharedDir();
  if (shared.empty())
    return {};
  std::string dir = shared + "/conformance/buildkit/parser";
  return PathExists(dir) ? dir : std::string();
}

std::vector<std::string> CaseDirs(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.is_directory())
      out.push_back(entry.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// The cases of BuildKit's parser tests (shared/conformance/buildkit/parser);
// skipped where they are not there.
class ConformanceParserTest : public ::testing::Test {
 protected:
  std::string dir_ = ParserDataDir();
  void SetUp() override {
    if (dir_.empty())
      GTEST_SKIP() << "shared/conformance/buildkit/parser not found (KILN_SHARED)";
  }
};

TEST_F(ConformanceParserTest, PositiveCasesDumpLikeBuildKit) {
  std::vector<std::string> cases = CaseDirs(dir_ + "/testfiles");
  int passed = 0;
  for (const std::string& c : cases) {
    auto text = ReadFile(c + "/Dockerfile");
    auto expected = ReadFile(c + "/result");
    ASSERT_TRUE(text && expected) << c;
    auto file = ParseContainerfile(*text, "Dockerfile");
    if (!file) {
      ADD_FAILURE() << c << ": " << file.error().message();
      continue;
    }
    std::string dump = DumpAst(*file);
    EXPECT_EQ(dump, *expected) << c;
    if (dump == *expected)
      ++passed;
  }
  std::cout << "conformance parser: " << passed << "/" << cases.size() << " positive\n";
  EXPECT_EQ(cases.size(), 33u);
}

TEST_F(ConformanceParserTest, NegativeCasesAreRejected) {
  int rejected = 0;
  int total = 0;
  for (const std::string& c : CaseDirs(dir_ + "/testfiles-negative")) {
    ++total;
    auto text = ReadFile(c + "/Dockerfile");
    ASSERT_TRUE(text) << c;
    auto file = ParseContainerfile(*text, "Dockerfile");
    EXPECT_FALSE(file) << c << " was accepted";
    if (!file) {
      ++rejected;
      EXPECT_EQ(file.error().code(), Errc::kInvalidInput);
      EXPECT_EQ(file.error().message().rfind("Dockerfile:", 0), 0u) << file.error().message();
    }
  }
  std::cout << "conformance parser: " << rejected << "/" << total << " negative\n";
  EXPECT_EQ(total, 4);
}

TEST_F(ConformanceParserTest, LineNumbersMatchBuildKit) {
  auto text = ReadFile(dir_ + "/testfile-line/Dockerfile");
  ASSERT_TRUE(text);
  auto file = ParseContainerfile(*text);
  ASSERT_TRUE(file) << file.error().message();
  EXPECT_EQ(file->start_line, 5);
  EXPECT_EQ(file->end_line, 31);
  ASSERT_EQ(file->instructions.size(), 3u);
  const std::pair<int, int> want[] = {{5, 5}, {11, 12}, {17, 31}};
  bool all = true;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(file->instructions[i].start_line, want[i].first) << i;
    EXPECT_EQ(file->instructions[i].end_line, want[i].second) << i;
    all = all && file->instructions[i].start_line == want[i].first &&
          file->instructions[i].end_line == want[i].second;
  }
  std::cout << "conformance parser: testfile-line " << (all ? "1/1" : "0/1") << "\n";
}

}  // namespace
}  // namespace kiln::frontend
