// `kiln parse` end to end ($KILN_BIN): exit 0 with the dump, exit 2 with
// "kiln: error: FILE:LINE: ...", standard input, and the same run as the
// unprivileged $KILN_TEST_USER when we are root.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "kiln/fs.h"
#include "support/shell.h"
#include "support/testdata.h"

namespace kiln {
namespace {

using RunResult = testing::ShellResult;
using testing::RunShell;
using testing::ShellQuote;

using ParseCliTest = testing::KilnBinaryTest;

TEST_F(ParseCliTest, ValidFileExitsZeroSilently) {
  std::string file = test::TestdataDir() + "/containerfiles/heredoc-basic/Containerfile";
  RunResult r = RunShell(ShellQuote(bin_) + " parse " + ShellQuote(file) + " 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "");
}

TEST_F(ParseCliTest, DumpPrintsTheAst) {
  std::string file = test::TestdataDir() + "/containerfiles/onbuild/Containerfile";
  RunResult r = RunShell(ShellQuote(bin_) + " parse --dump " + ShellQuote(file) + " 2>/dev/null");
  EXPECT_EQ(r.exit_code, 0);
  auto want = ReadFile(test::TestdataDir() + "/containerfiles/onbuild/ast.txt");
  ASSERT_TRUE(want);
  // ast.txt is the dump followed by "# ..." detail lines.
  EXPECT_EQ(r.out, want->substr(0, want->find("\n#") + 1));
}

TEST_F(ParseCliTest, StdinAndWarnings) {
  RunResult r = RunShell("printf '# syntax=example.com/x\\nFROM a\\n' | " + ShellQuote(bin_) +
                         " parse --dump - 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("kiln: warning: <stdin>:1: syntax directive"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(from \"a\")\n"), std::string::npos) << r.out;
}

TEST_F(ParseCliTest, InvalidFileExitsTwoWithLocation) {
  std::string dir = test::TestdataDir() + "/containerfiles-invalid/unknown-instruction";
  RunResult r = RunShell("cd " + ShellQuote(dir) + " && " + ShellQuote(bin_) + " parse Containerfile 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "kiln: error: Containerfile:2: unknown instruction \"RUNN\" (did you mean RUN?)\n");
}

TEST_F(ParseCliTest, MissingFileAndUsage) {
  RunResult r = RunShell(ShellQuote(bin_) + " parse /nonexistent/Containerfile 2>&1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("kiln: error: reading /nonexistent/Containerfile"), std::string::npos) << r.out;
  RunResult usage = RunShell(ShellQuote(bin_) + " parse 2>&1");
  EXPECT_EQ(usage.exit_code, 2) << usage.out;
}

TEST_F(ParseCliTest, UnprivilegedUser) {
  const char* user = std::getenv("KILN_TEST_USER");
  if (::geteuid() != 0 || !user || !*user)
    GTEST_SKIP() << "needs root and KILN_TEST_USER";
  std::string file = test::TestdataDir() + "/containerfiles-invalid/env-no-value/Containerfile";
  RunResult r = RunShell("cat " + ShellQuote(file) + " | runuser -u " + ShellQuote(user) + " -- " +
                         ShellQuote(bin_) + " parse - 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_EQ(r.out, "kiln: error: <stdin>:3: ENV must have two arguments: \"ENV PATH\"\n");
}

}  // namespace
}  // namespace kiln
