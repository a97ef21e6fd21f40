// kiln/cancel.h: the SIGINT/SIGTERM flag, its fd, the one-line message and
// the second-signal exit. Each case runs in a child process (the flag is
// process-wide and cannot be reset).
#include "kiln/cancel.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>

#include <gtest/gtest.h>

namespace kiln {
namespace {

// Runs `body` in a child whose stderr goes to a pipe; returns its wait
// status and what it wrote.
template <typename F>
int InChild(F body, std::string* err, const std::function<void(pid_t)>& parent_side = nullptr) {
  int p[2];
  EXPECT_EQ(::pipe(p), 0);
  int ready[2];
  EXPECT_EQ(::pipe(ready), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(p[1], 2);
    ::close(p[0]);
    ::close(ready[0]);
    InstallCancelHandlers("test");
    (void)!::write(ready[1], "r", 1);
    ::_exit(body());
  }
  ::close(p[1]);
  ::close(ready[1]);
  char c;
  EXPECT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  if (parent_side)
    parent_side(pid);
  int st = 0;
  ::waitpid(pid, &st, 0);
  char buf[512];
  ssize_t n;
  while ((n = ::read(p[0], buf, sizeof buf)) > 0)
    err->append(buf, static_cast<size_t>(n));
  ::close(p[0]);
  return st;
}

bool Readable(int fd) {
  struct pollfd pfd = {fd, POLLIN, 0};
  return ::poll(&pfd, 1, 0) == 1;
}

TEST(Cancel, FirstSignalSetsTheFlagAndTheFd) {
  std::string err;
  int st = InChild(
      [] {
        if (Cancelled() || !CheckCancelled() || Readable(CancelFd()))
          return 10;
        ::raise(SIGTERM);
        if (!Cancelled() || CancelSignal() != SIGTERM || !Readable(CancelFd()))
          return 11;
        Status s = CheckCancelled();
        if (s || s.error().code() != Errc::kCancelled)
          return 12;
        return ReportCancelled() == 143 && ReportCancelled() == 143 ? 0 : 13;
      },
      &err);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
  EXPECT_EQ(err, "kiln: test cancelled by SIGTERM\n");  // once
}

TEST(Cancel, SecondSignalExitsAtOnce) {
  std::string err;
  int st = InChild(
      [] {
        ::raise(SIGINT);
        ::raise(SIGINT);  // a copy (the same signal within 250 ms)
        if (!Cancelled())
          return 1;
        ::usleep(300000);
        ::raise(SIGINT);
        return 0;  // not reached
      },
      &err);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 130);
  EXPECT_EQ(err, "kiln: test cancelled by SIGINT\n");
}

// A process-group kill reaches kiln's user-namespace child directly and
// through its parent: copies within 250 ms are one request; a signal after
// that is a second request.
TEST(Cancel, ForwardedCopyCountsOnce) {
  std::string err;
  int st = InChild(
      [] {
        for (int i = 0; i < 200 && !Cancelled(); ++i)
          ::usleep(10000);
        ::sleep(1);  // the parent sends the copy, then waits; the third comes after 1.5 s
        return Cancelled() ? 42 : 1;
      },
      &err, [](pid_t child) {
        ::kill(child, SIGTERM);
        ::kill(child, SIGTERM);
      });
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 42) << err;
  EXPECT_EQ(err, "");

  err.clear();
  st = InChild(
      [] {
        for (int i = 0; i < 300; ++i)
          ::usleep(10000);
        return 1;
      },
      &err, [](pid_t child) {
        ::kill(child, SIGTERM);
        ::kill(child, SIGTERM);
        ::kill(child, SIGTERM);  // `timeout`: to its child, then to its group
        ::usleep(400000);
        ::kill(child, SIGTERM);  // a real second signal
      });
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 143);
  EXPECT_EQ(err, "kiln: test cancelled by SIGTERM\n");
}

}  // namespace
}  // namespace kiln
