// Cancellation: the process-wide flag set by SIGINT/SIGTERM (kiln/cancel.h).
#include "kiln/cancel.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

namespace kiln {
namespace {

std::atomic<int> g_signal{0};
std::atomic<bool> g_reported{false};
int g_fd = -1;
char g_command[64];
// When the first signal came. Written by the handler only.
int64_t g_first_ms = 0;

// Copies of one request: a process-group kill reaches kiln's user-namespace
// child directly and again through its parent, `timeout` signals its child
// and then its whole group (the kernel may give such a signal si_pid 0, so
// the sender cannot tell them apart). The same signal this soon after the
// first is the same request, unless the terminal sent it (a second Ctrl-C).
constexpr int64_t kCopyWindowMs = 250;

int64_t NowMs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Async-signal-safe: one write of a line built on the stack.
void WriteMessage(int sig) {
  char buf[160];
  size_t n = 0;
  auto add = [&](const char* s) {
    while (*s && n < sizeof buf - 1)
      buf[n++] = *s++;
  };
  add("kiln: ");
  if (g_command[0]) {
    add(g_command);
    add(" ");
  }
  add("cancelled by ");
  add(sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal");
  add("\n");
  (void)!::write(2, buf, n);
}

bool Mark(int sig) {
  int expected = 0;
  if (!g_signal.compare_exchange_strong(expected, sig))
    return false;
  if (g_fd >= 0) {
    uint64_t one = 1;
    (void)!::write(g_fd, &one, sizeof one);
  }
  return true;
}

void OnSignal(int sig, siginfo_t* info, void*) {
  int saved_errno = errno;
  int64_t now = NowMs();
  if (g_signal.load() == 0) {
    g_first_ms = now;
    Mark(sig);
    errno = saved_errno;
    return;
  }
  bool from_terminal = info && info->si_code == SI_KERNEL;
  if (!from_terminal && sig == g_signal.load() && now - g_first_ms < kCopyWindowMs) {
    errno = saved_errno;
    return;
  }
  // A second request: exit at once (locks go with the process; temporary
  // files stay for `kiln prune`).
  int first = g_signal.load();
  if (!g_reported.exchange(true))
    WriteMessage(first);
  ::_exit(128 + first);
}

}  // namespace

void InstallCancelHandlers(std::string_view command) {
  size_t n = 0;
  for (; n < command.size() && n < sizeof g_command - 1; ++n)
    g_command[n] = command[n];
  g_command[n] = '\0';
  if (g_fd < 0)
    g_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct sigaction sa = {};
  sa.sa_sigaction = OnSignal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGTERM);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

bool Cancelled() { return g_signal.load(std::memory_order_relaxed) != 0; }

int CancelSignal() { return g_signal.load(); }

int CancelFd() { return g_fd; }

void RequestCancel(int sig) {
  if (Mark(sig))
    g_first_ms = NowMs();
}

Status CheckCancelled() {
  if (Cancelled())
    return Error(Errc::kCancelled, "cancelled");
  return Ok();
}

int ReportCancelled() {
  int sig = g_signal.load();
  if (sig == 0)
    return 0;
  if (!g_reported.exchange(true))
    WriteMessage(sig);
  return 128 + sig;
}

}  // namespace kiln
