// kiln/text.h's ShellQuote and kiln/fs.h's UserConfigDir.
#include <stdio.h>
#include <stdlib.h>

#include <string>

#include <gtest/gtest.h>

#include "kiln/fs.h"
#include "kiln/text.h"

namespace kiln {
namespace {

TEST(ShellQuoteTest, PlainWordsStayOthersAreSingleQuoted) {
  EXPECT_EQ(ShellQuote("kiln"), "kiln");
  EXPECT_EQ(ShellQuote("docker://127.0.0.1:5000/a/b@x"), "docker://127.0.0.1:5000/a/b@x");
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_EQ(ShellQuote("two words"), "'two words'");
  EXPECT_EQ(ShellQuote("$HOME;rm -rf /"), "'$HOME;rm -rf /'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
}

TEST(ShellQuoteTest, ARealShellReadsBackTheSameWord) {
  for (std::string w : {"it's \"$(x)\" `y` \\z", "a\nb", "*?[", "-e", ""}) {
    std::string cmd = "printf %s " + ShellQuote(w);
    FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string got;
    char buf[256];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
      got.append(buf, n);
    ::pclose(p);
    EXPECT_EQ(got, w) << cmd;
  }
}

TEST(UserConfigDirTest, XdgThenHome) {
  std::string xdg = getenv("XDG_CONFIG_HOME") ? getenv("XDG_CONFIG_HOME") : "";
  std::string home = getenv("HOME") ? getenv("HOME") : "";
  setenv("XDG_CONFIG_HOME", "/x/conf", 1);
  EXPECT_EQ(UserConfigDir(), "/x/conf");
  setenv("XDG_CONFIG_HOME", "", 1);
  setenv("HOME", "/home/u", 1);
  EXPECT_EQ(UserConfigDir(), "/home/u/.config");
  unsetenv("HOME");
  EXPECT_FALSE(UserConfigDir().empty());
  xdg.empty() ? unsetenv("XDG_CONFIG_HOME") : setenv("XDG_CONFIG_HOME", xdg.c_str(), 1);
  home.empty() ? unsetenv("HOME") : setenv("HOME", home.c_str(), 1);
}

}  // namespace
}  // namespace kiln
