// Pseudo-terminals for `kiln run -t` and `kiln exec -t`: the pair, raw mode
// of the user's terminal, and the relay loop (with window-size changes).
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "kiln/fs.h"
#include "run/internal.h"

namespace kiln::run::internal {
namespace {

int g_winch_pipe = -1;

void OnWinch(int) {
  if (g_winch_pipe >= 0) {
    int saved = errno;
    (void)!::write(g_winch_pipe, "w", 1);
    errno = saved;
  }
}

void CopyWindowSize(int from, int to) {
  struct winsize ws;
  if (from >= 0 && ::ioctl(from, TIOCGWINSZ, &ws) == 0)
    ::ioctl(to, TIOCSWINSZ, &ws);
}

}  // namespace

Expected<Pty> OpenPty(int size_from) {
  int m = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0)
    return Error::FromErrno("open /dev/ptmx");
  Pty pty;
  pty.master.reset(m);
  if (::grantpt(m) != 0 || ::unlockpt(m) != 0)
    return Error::FromErrno("unlock pseudo-terminal");
  char name[256];
  if (::ptsname_r(m, name, sizeof name) != 0)
    return Error::FromErrno("ptsname");
  int s = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (s < 0)
    return Error::FromErrno(std::string("open ") + name);
  pty.slave.reset(s);
  if (size_from >= 0 && ::isatty(size_from)) {
    CopyWindowSize(size_from, m);
  } else {
    struct winsize ws = {};
    ws.ws_row = 24;
    ws.ws_col = 80;
    ::ioctl(m, TIOCSWINSZ, &ws);
  }
  return pty;
}

void SetWindowSize(int master, int from) {
  if (from >= 0 && ::isatty(from)) {
    CopyWindowSize(from, master);
    return;
  }
  struct winsize ws = {};
  ws.ws_row = 24;
  ws.ws_col = 80;
  ::ioctl(master, TIOCSWINSZ, &ws);
}

Expected<Pty> OpenPtyInRoot(int size_from) {
  // The container's root may have replaced anything under /dev: no symlink
  // is followed, and the result must be the ptmx of a devpts.
  struct open_how how = {};
  how.flags = O_RDWR | O_NOCTTY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  UniqueFd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root)
    return Error::FromErrno("open /");
  long m;
  do {
    m = ::syscall(SYS_openat2, root.get(), "dev/pts/ptmx", &how, sizeof how);
  } while (m < 0 && (errno == EINTR || errno == EAGAIN));
  if (m < 0)
    return Error::FromErrno("open the container's /dev/pts/ptmx");
  Pty pty;
  pty.master.reset(static_cast<int>(m));
  struct statfs sf;
  struct stat st;
  if (::fstatfs(pty.master.get(), &sf) != 0 || sf.f_type != 0x1cd1 /* DEVPTS_SUPER_MAGIC */ ||
      ::fstat(pty.master.get(), &st) != 0 || !S_ISCHR(st.st_mode))
    return Error(Errc::kSandbox, "the container's /dev/pts/ptmx is not a devpts terminal multiplexer");
  int unlock = 0;
  if (::ioctl(pty.master.get(), TIOCSPTLCK, &unlock) != 0)
    return Error::FromErrno("unlock the pseudo-terminal");
  int slave = ::ioctl(pty.master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0)
    return Error::FromErrno("open the pseudo-terminal's slave");
  pty.slave.reset(slave);
  SetWindowSize(pty.master.get(), size_from);
  return pty;
}

RawMode::RawMode(int fd) {
  static_assert(sizeof(struct termios) <= sizeof saved_);
  if (fd < 0 || !::isatty(fd))
    return;
  struct termios t;
  if (::tcgetattr(fd, &t) != 0)
    return;
  std::memcpy(saved_, &t, sizeof t);
  ::cfmakeraw(&t);
  if (::tcsetattr(fd, TCSANOW, &t) != 0)
    return;
  fd_ = fd;
  active_ = true;
}

RawMode::~RawMode() {
  if (!active_)
    return;
  struct termios t;
  std::memcpy(&t, saved_, sizeof t);
  ::tcsetattr(fd_, TCSANOW, &t);
}

void RelayPty(int master, int in, int out, int stop_fd) {
  int winch[2] = {-1, -1};
  if (in >= 0 && ::isatty(in) && ::pipe2(winch, O_CLOEXEC | O_NONBLOCK) == 0) {
    g_winch_pipe = winch[1];
    struct sigaction sa = {};
    sa.sa_handler = OnWinch;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGWINCH, &sa, nullptr);
  }
  bool in_open = in >= 0;
  bool stopping = false;
  char buf[16384];
  for (;;) {
    struct pollfd fds[4];
    int n = 0;
    fds[n++] = {master, POLLIN, 0};
    int in_idx = -1, stop_idx = -1, winch_idx = -1;
    if (in_open) {
      in_idx = n;
      fds[n++] = {in, POLLIN, 0};
    }
    if (!stopping) {
      stop_idx = n;
      fds[n++] = {stop_fd, POLLIN, 0};
    }
    if (winch[0] >= 0) {
      winch_idx = n;
      fds[n++] = {winch[0], POLLIN, 0};
    }
    // Once the process is gone, drain what is left without blocking.
    int rc = ::poll(fds, static_cast<nfds_t>(n), stopping ? 0 : -1);
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc < 0)
      break;
    if (rc == 0 && stopping)
      break;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = ::read(master, buf, sizeof buf);
      if (r > 0) {
        if (out >= 0)
          (void)WriteAll(out, buf, static_cast<size_t>(r));
      } else if (r < 0 && errno == EINTR) {
        continue;
      } else if (stopping || r == 0 || errno == EIO) {
        // EIO: every slave fd is closed (the process is gone).
        if (stopping)
          break;
        // Wait for the stop signal without spinning on the master.
        struct pollfd sf = {stop_fd, POLLIN, 0};
        while (::poll(&sf, 1, -1) < 0 && errno == EINTR) {
        }
        break;
      }
    }
    if (in_idx >= 0 && (fds[in_idx].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t r = ::read(in, buf, sizeof buf);
      if (r > 0)
        (void)WriteAll(master, buf, static_cast<size_t>(r));
      else if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
        in_open = false;
        const char eot = 4;  // ^D: end of input for the program on the terminal
        (void)WriteAll(master, &eot, 1);
      }
    }
    if (stop_idx >= 0 && (fds[stop_idx].revents & (POLLIN | POLLHUP)))
      stopping = true;
    if (winch_idx >= 0 && (fds[winch_idx].revents & POLLIN)) {
      char tmp[64];
      while (::read(winch[0], tmp, sizeof tmp) > 0) {
      }
      CopyWindowSize(in, master);
    }
  }
  if (winch[0] >= 0) {
    ::signal(SIGWINCH, SIG_DFL);
    g_winch_pipe = -1;
    ::close(winch[0]);
    ::close(winch[1]);
  }
}

}  // namespace kiln::run::internal
