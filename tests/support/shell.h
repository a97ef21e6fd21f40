// Test helpers for tests that drive the kiln binary through a shell: quoting
// an argument and running a command line, capturing its standard output.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "kiln/fs.h"

namespace kiln::testing {

/// The kiln binary meson's test environment names ($KILN_BIN), or "" when
/// it is not set or missing (the test then skips).
inline std::string KilnBinary() {
  const char* bin = std::getenv("KILN_BIN");
  return bin && PathExists(bin) ? std::string(bin) : std::string();
}

/// A fixture for tests of the kiln binary: bin_ is KilnBinary(); the test
/// is skipped when there is none.
class KilnBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bin_ = KilnBinary();
    if (bin_.empty())
      GTEST_SKIP() << "KILN_BIN not set or missing";
  }
  std::string bin_;
};

/// `s` as one single-quoted sh word.
inline std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct ShellResult {
  int exit_code = -1;  ///< -1: popen failed, or the shell did not exit
  std::string out;     ///< standard output (the command redirects 2> as it wants)
};

/// Runs `command` with sh -c and reads its standard output to the end.
inline ShellResult RunShell(const std::string& command) {
  ShellResult r;
  FILE* p = ::popen(command.c_str(), "r");
  if (!p)
    return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    r.out.append(buf, n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace kiln::testing
