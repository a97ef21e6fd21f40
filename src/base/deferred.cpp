#include "kiln/deferred.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <vector>

namespace kiln {

namespace {

std::mutex g_mu;
std::vector<std::function<void()>> g_work;
int g_answer_fd = -1;

}  // namespace

void DeferAfterAnswer(std::function<void()> work) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_answer_fd >= 0) {
      g_work.push_back(std::move(work));
      return;
    }
  }
  // Nobody waits for an answer ahead of this process's end (kiln as a
  // library, in its unit tests, or already inside its user namespace): the
  // work is done now, as the caller would have done it itself.
  work();
}

void SetCallerAnswerFd(int fd) { g_answer_fd = fd; }

int FinishDeferredWork(int exit_code) {
  std::vector<std::function<void()>> work;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    work.swap(g_work);
  }
  if (!work.empty() && g_answer_fd >= 0) {
    std::fflush(nullptr);
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd >= 0) {
      for (int fd = 0; fd <= 2; ++fd)
        (void)::dup2(null_fd, fd);
      ::close(null_fd);
    }
    (void)::setsid();
    // The parent exits now: this process must not die with it (the child
    // of EnterUserNamespace has PR_SET_PDEATHSIG).
    (void)::prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
    unsigned char status = static_cast<unsigned char>(exit_code & 0xff);
    (void)!::write(g_answer_fd, &status, 1);
    ::close(g_answer_fd);
    g_answer_fd = -1;
  }
  for (auto& w : work)
    w();
  return exit_code;
}

}  // namespace kiln
