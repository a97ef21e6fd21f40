#include "kiln/process.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

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

TEST(ProcessTest, RunCapturedFeedsInputAndReadsBothStreamsTogether) {
  // 1 MiB in, 1 MiB on stdout and 200 KiB on stderr, interleaved: more than
  // any pipe holds, so reading one stream after the other would hang.
  std::string input(1 << 20, 'x');
  CaptureOptions o;
  o.input = input;
  std::vector<std::string> lines;
  o.on_err_line = [&](std::string_view l) { lines.emplace_back(l); };
  o.max_err = 100;
  auto r = RunCaptured({"sh", "-c",
                        "{ head -c 204800 /dev/zero | tr '\\0' e | fold -w 99; echo; } >&2 & cat; wait; echo last >&2; exit 4"},
                       o);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->out, input);
  ASSERT_TRUE(WIFEXITED(r->status));
  EXPECT_EQ(WEXITSTATUS(r->status), 4);
  EXPECT_FALSE(r->Succeeded());
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back(), "last");
  EXPECT_EQ(lines.size(), 204800 / 99 + 2);
  EXPECT_LE(r->err.size(), 100u);  // only the end is kept
  EXPECT_EQ(r->err.substr(r->err.size() - 5), "last\n");
}

TEST(ProcessTest, RunCapturedLimitsOutputAndSurvivesAChildThatIgnoresInput) {
  CaptureOptions o;
  o.input = std::string(4 << 20, 'y');  // never read: must not block
  o.max_out = 10;
  auto r = RunCaptured({"sh", "-c", "echo 0123456789abcdef"}, o);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->Succeeded());
  EXPECT_EQ(r->out, "0123456789");
  auto missing = RunCaptured({"kiln-no-such-program-xyz"});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::kNotFound);
}

TEST(ProcessTest, RunCapturedHoldsStdinOpenUntilTheChildEnds) {
  // With hold_stdin the child sees no end of input while it runs: `read`
  // times out instead of returning at EOF.
  CaptureOptions o;
  o.hold_stdin = true;
  std::atomic<pid_t> pid{0};
  o.pid_out = &pid;
  auto r = RunCaptured({"bash", "-c", "if read -t 1 x; then echo data; else [ $? -gt 128 ] && echo timeout || echo eof; fi"}, o);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->out, "timeout\n");
  EXPECT_EQ(pid.load(), 0);
  o.hold_stdin = false;
  auto eof = RunCaptured({"bash", "-c", "if read -t 1 x; then echo data; else [ $? -gt 128 ] && echo timeout || echo eof; fi"}, o);
  ASSERT_TRUE(eof);
  EXPECT_EQ(eof->out, "eof\n");
}

}  // namespace
}  // namespace kiln
