#include "kiln/process.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "kiln/fs.h"

extern char** environ;

namespace kiln {

void InitSpawnAttr(posix_spawnattr_t* attr, short extra_flags) {
  posix_spawnattr_init(attr);
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(attr, &none);
  posix_spawnattr_setsigdefault(attr, &all);
  posix_spawnattr_setflags(attr, static_cast<short>(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | extra_flags));
}

Expected<pid_t> SpawnArgv(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty())
    return Error(Errc::kInvalidInput, "spawn: empty argument list");
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  for (const auto& [from, to] : options.fds)
    posix_spawn_file_actions_adddup2(&fa, from, to);
  posix_spawnattr_t attr;
  InitSpawnAttr(&attr, options.flags);
  pid_t pid = -1;
  int rc = options.path.empty() ? ::posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ)
                                : ::posix_spawn(&pid, options.path.c_str(), &fa, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    return Error::FromErrno("run " + (options.path.empty() ? argv[0] : options.path), rc);
  return pid;
}

bool CapturedRun::Succeeded() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

Expected<CapturedRun> RunCaptured(const std::vector<std::string>& argv, const CaptureOptions& options) {
  UniqueFd out_r, out_w, err_r, err_w, in_r, in_w;
  KILN_TRY(MakePipe(&out_r, &out_w));
  KILN_TRY(MakePipe(&err_r, &err_w));
  if (options.stdin_fd < 0)
    KILN_TRY(MakePipe(&in_r, &in_w));
  SpawnOptions so;
  so.fds = {{options.stdin_fd >= 0 ? options.stdin_fd : in_r.get(), 0}, {out_w.get(), 1}, {err_w.get(), 2}};
  so.path = options.path;
  KILN_ASSIGN_OR_RETURN(pid_t pid, SpawnArgv(argv, so));
  if (options.pid_out)
    options.pid_out->store(pid);
  out_w.reset();
  err_w.reset();
  in_r.reset();
  if (in_w)  // a child that does not read its input must not block us
    (void)::fcntl(in_w.get(), F_SETFL, ::fcntl(in_w.get(), F_GETFL) | O_NONBLOCK);
  if (in_w && options.input.empty() && !options.hold_stdin)
    in_w.reset();
  CapturedRun result;
  LineReader err_lines;
  size_t written = 0;
  char buf[65536];
  while (out_r || err_r) {
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out_r)
      fds[out_i = n++] = {out_r.get(), POLLIN, 0};
    if (err_r)
      fds[err_i = n++] = {err_r.get(), POLLIN, 0};
    if (in_w && written < options.input.size())
      fds[in_i = n++] = {in_w.get(), POLLOUT, 0};
    if (::poll(fds, static_cast<nfds_t>(n), -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (in_i >= 0 && fds[in_i].revents) {
      // EPIPE, not SIGPIPE, when the child has stopped reading: SIGPIPE is
      // blocked in this thread around the write and a pending one consumed.
      sigset_t pipe_set, old_set;
      sigemptyset(&pipe_set);
      sigaddset(&pipe_set, SIGPIPE);
      ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
      ssize_t w = ::write(in_w.get(), options.input.data() + written, options.input.size() - written);
      if (w < 0 && errno == EPIPE) {
        const struct timespec zero = {0, 0};
        while (::sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
        }
        errno = EPIPE;
      }
      ::pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
      if (w > 0)
        written += static_cast<size_t>(w);
      if (w < 0 && errno != EAGAIN && errno != EINTR)
        written = options.input.size();  // EPIPE: the child does not read it
      if (written == options.input.size() && !options.hold_stdin)
        in_w.reset();
    }
    if (out_i >= 0 && fds[out_i].revents) {
      ssize_t r = ::read(out_r.get(), buf, sizeof buf);
      if (r > 0 && result.out.size() < options.max_out)
        result.out.append(buf, std::min(static_cast<size_t>(r), options.max_out - result.out.size()));
      if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
        out_r.reset();
    }
    if (err_i >= 0 && fds[err_i].revents) {
      ssize_t r = err_lines.ReadOnce(err_r.get(), [&](std::string_view line) {
        if (options.on_err_line)
          options.on_err_line(line);
        result.err.append(line).push_back('\n');
        if (result.err.size() > options.max_err)
          result.err.erase(0, result.err.size() - options.max_err);
      });
      if (r <= 0)
        err_r.reset();
    }
  }
  in_w.reset();
  result.status = WaitChild(pid);
  if (options.pid_out)
    options.pid_out->store(0);
  return result;
}

int WaitChild(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return -1;
  }
  return status;
}

Status MakePipe(UniqueFd* read_end, UniqueFd* write_end) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0)
    return Error::FromErrno("pipe");
  read_end->reset(p[0]);
  write_end->reset(p[1]);
  return Ok();
}

std::string SelfExe() {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    return {};
  self[n] = '\0';
  return self;
}

}  // namespace kiln
