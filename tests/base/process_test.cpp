#include "kiln/process.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "kiln/fs.h"

namespace kiln {
namespace {

TEST(ProcessTest, SpawnArgvMapsFdsAndWaitChildGivesTheStatus) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  SpawnOptions o;
  o.fds = {{w.get(), 1}};
  auto pid = SpawnArgv({"sh", "-c", "echo \"$0 $1\"; exit 3", "a b", "c"}, o);
  ASSERT_TRUE(pid);
  w.reset();
  auto out = ReadAll(r.get());
  ASSERT_TRUE(out);
  EXPECT_EQ(*out, "a b c\n");
  int st = WaitChild(*pid);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 3);
}

TEST(ProcessTest, SpawnArgvOfAMissingProgramNamesIt) {
  auto pid = SpawnArgv({"kiln-no-such-program-xyz"});
  ASSERT_FALSE(pid);
  EXPECT_EQ(pid.error().code(), Errc::kNotFound);
  EXPECT_NE(pid.error().message().find("run kiln-no-such-program-xyz"), std::string::npos);
  EXPECT_FALSE(SpawnArgv({}));
}

}  // namespace
}  // namespace kiln
