// The detached monitor (`kiln __monitor`): started by run -d / start, it
// owns the container (Supervise, run.cpp) until it exits, with its output
// copied into ctr.log by a logger process.
#include <dirent.h>
#include <ftw.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>

#include "kiln/acquire.h"
#include "kiln/cancel.h"
#include "kiln/fs.h"
#include "kiln/process.h"
#include "kiln/log.h"
#include "kiln/oci.h"
#include "kiln/rootfs.h"
#include "kiln/run.h"
#include "kiln/store.h"
#include "kiln/transport.h"
#include "kiln/network.h"
#include "run/internal.h"
#include "run/portfwd.h"

extern char** environ;

namespace kiln::run {

using namespace internal;

namespace internal {

/// Starts `kiln __monitor` for `id`, detached (own session, stdio on
/// /dev/null), and waits until the container runs. `port_fds`: the host
/// sockets of -p, bound by the caller; the monitor inherits them (as fds 4,
/// 5, ...) and serves them, so the ports are never free in between.
Status SpawnMonitor(const Paths& paths, const std::string& id, const std::vector<int>& port_fds) {
  UniqueFd ready_r, ready_w;
  KILN_TRY(MakePipe(&ready_r, &ready_w));
  UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  SpawnOptions so;
  so.fds = {{null_fd.get(), 0}, {null_fd.get(), 1}, {null_fd.get(), 2}, {ready_w.get(), 3}};
  // Copies above the target range first, so that no dup2 overwrites a
  // socket not yet moved; dup2 clears FD_CLOEXEC on the target.
  const int first_port_fd = 4;
  std::vector<UniqueFd> port_copies;
  for (int fd : port_fds) {
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, first_port_fd + static_cast<int>(port_fds.size()));
    if (copy < 0)
      return Error::FromErrno("dup the -p host socket");
    port_copies.emplace_back(copy);
  }
  std::vector<std::string> args = {"kiln", "__monitor", "--store", paths.store_root, "--run-root",
                                   paths.run_root, "--ready-fd", "3", id};
  for (size_t i = 0; i < port_copies.size(); ++i) {
    so.fds.push_back({port_copies[i].get(), first_port_fd + static_cast<int>(i)});
    args.push_back("--port-fd");
    args.push_back(std::to_string(first_port_fd + static_cast<int>(i)));
  }
  so.flags = POSIX_SPAWN_SETSID;
  so.path = SelfExe();
  if (so.path.empty())
    return Error::FromErrno("readlink /proc/self/exe");
  auto pid = SpawnArgv(args, so);
  if (!pid)
    return std::move(pid).error().WithContext("start the container monitor");
  ready_w.reset();
  // The first line: "R" (running) or "E<why>".
  std::string reply;
  LineReader reader;
  bool got = false;
  auto first = [&](std::string_view line) {
    if (!got)
      reply = line;
    got = true;
  };
  while (!got && reader.ReadOnce(ready_r.get(), first) > 0) {
  }
  // The monitor is not our child for long: it runs on its own (the
  // grandparent outside the user namespace exits with us). Reap it if it
  // already died.
  ::waitpid(*pid, nullptr, WNOHANG);
  if (reply.empty() || reply[0] != 'R') {
    std::string why = reply.size() > 1 ? reply.substr(1) : "the monitor exited before the container started";
    while (!why.empty() && why.back() == '\n')
      why.pop_back();
    return Error(Errc::kSandbox, why);
  }
  return Ok();
}

}  // namespace internal

Status StartContainer(const Paths& paths, const std::string& id) {
  if (MonitorAlive(paths, id))
    return Ok();  // already running
  KILN_TRY(StartPodInfra(paths, id));  // a pod member: its pod's namespaces first
  return SpawnMonitor(paths, id);
}

namespace {

// "<offset> <seconds>.<nanoseconds>\n" without allocating (the logger is
// forked from a process that may have threads).
size_t FormatTimestampRecord(char* buf, uint64_t offset, const struct timespec& t) {
  char digits[24];
  size_t n = 0;
  auto put_number = [&](uint64_t v, int width) {
    int k = 0;
    do {
      digits[k++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v > 0 || k < width);
    while (k > 0)
      buf[n++] = digits[--k];
  };
  put_number(offset, 1);
  buf[n++] = ' ';
  put_number(static_cast<uint64_t>(t.tv_sec), 1);
  buf[n++] = '.';
  put_number(static_cast<uint64_t>(t.tv_nsec), 9);
  buf[n++] = '\n';
  return n;
}

void WriteFully(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

UniqueFd StartLogger(int log_fd, int ts_fd, pid_t* logger) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return UniqueFd();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return UniqueFd();
  }
  if (pid == 0) {
    // Only the pipe and the two files: not the monitor's ready fd (its
    // reader waits for EOF) nor the -p sockets.
    int in = fds[0];
    for (int fd = 3; fd < 65536; ++fd)
      if (fd != in && fd != log_fd && fd != ts_fd)
        ::close(fd);
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGINT, SIG_IGN);
    off_t off = ::lseek(log_fd, 0, SEEK_END);
    uint64_t offset = off > 0 ? static_cast<uint64_t>(off) : 0;
    bool at_line_start = true;
    static char buf[65536];
    char rec[64];
    for (ssize_t n; (n = ReadRetry(in, buf, sizeof buf)) > 0;) {
      struct timespec now;
      ::clock_gettime(CLOCK_REALTIME, &now);
      for (ssize_t i = 0; i < n; ++i) {
        if (at_line_start)
          WriteFully(ts_fd, rec, FormatTimestampRecord(rec, offset + static_cast<uint64_t>(i), now));
        at_line_start = buf[i] == '\n';
      }
      WriteFully(log_fd, buf, static_cast<size_t>(n));
      offset += static_cast<uint64_t>(n);
    }
    ::_exit(0);
  }
  ::close(fds[0]);
  *logger = pid;
  return UniqueFd(fds[1]);
}

}  // namespace

namespace {

/// After the container exited with `status`: is it started again? Never
/// after a kiln stop; always after --health-on-failure=restart; else as
/// the policy says.
bool ShouldRestart(const Paths& paths, const Config& c, int status) {
  State s = ReadState(paths, c.id);
  if (s.stopped_by_user)
    return false;
  if (PathExists(RunDir(paths, c.id) + "/restart-requested"))
    return true;
  const std::string& p = c.restart.name;
  if (p == "always" || p == "unless-stopped")
    return true;
  if (p == "on-failure")
    return status != 0 && (c.restart.max_retries == 0 || s.restart_count < c.restart.max_retries);
  return false;
}

}  // namespace

int MonitorMain(const Paths& paths, const std::string& id, int ready_fd, const std::vector<int>& port_fds) {
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  auto fail = [&](const Error& e) {
    if (ready_fd >= 0)
      (void)WriteAll(ready_fd, "E" + e.message() + "\n");
    return 125;
  };
  auto c = ReadConfig(paths, id);
  // -p: the host sockets `kiln run -d` bound (none after `kiln start`:
  // Supervise binds them).
  std::unique_ptr<PortForwarder> fwd;
  if (!port_fds.empty()) {
    auto adopted = PortForwarder::Adopt(c ? c->ports : std::vector<PortMapping>{}, port_fds);
    if (!adopted)
      return fail(c ? adopted.error() : c.error());
    fwd = std::move(*adopted);
  }
  if (!c)
    return fail(c.error());
  std::string log_path = ContainerDir(paths, id) + "/ctr.log";
  auto log = OpenFile(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (!log)
    return fail(log.error());
  // The container writes into a pipe; a logger process copies it into
  // ctr.log unchanged and records when each line started in ctr.log.ts
  // (`logs -t/--since/--until`, docs/run.md). Without the pipe (it could not
  // be made) the container writes to ctr.log directly, as before.
  UniqueFd log_pipe;
  pid_t logger = -1;
  auto ts = OpenFile(log_path + ".ts", O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (ts)
    log_pipe = StartLogger(log->get(), ts->get(), &logger);
  int log_fd = log_pipe ? log_pipe.get() : log->get();
  Expected<int> status = Error(Errc::kFailed, "not run");
  // A container on a network keeps the network holder alive (docs/network.md).
  UniqueFd holder_ref;
  if (!c->networks.empty()) {
    auto ref = network::TakeHolderReference(network::HolderDir(paths.run_root, paths.store_root));
    if (ref)
      holder_ref = std::move(*ref);
    else
      status = std::move(ref).error();
  }
  // The monitor owns the container across restarts (--restart,
  // --health-on-failure=restart): monitor.lock is held for the whole loop.
  std::string rdir = RunDir(paths, id);
  (void)MakeDirs(rdir, 0700);
  auto owner = LockFile(rdir + "/monitor.lock", LOCK_EX | LOCK_NB);
  if (!owner)
    status = Error(Errc::kFailed, "container " + c->name + " is already running");
  else
    (void)UpdateState(paths, id, [](State& s) {
      s.stopped_by_user = false;  // a start undoes a stop
      s.restart_count = 0;
    });
  // -i: a pipe as the container's stdin, fed by `kiln attach` (attach.cpp).
  StdinServer stdin_server;
  if (owner && c->interactive) {
    if (Status st = stdin_server.Start(paths, id); !st)
      LogWarn("container " + c->name + ": no stdin for attach: " + st.error().message());
  }
  const int in_fd = stdin_server.read_fd();
  int64_t delay_ms = 100;
  while (owner && (holder_ref || c->networks.empty())) {
    (void)::unlink((rdir + "/restart-requested").c_str());
    auto began = std::chrono::steady_clock::now();
    // -d -t: the terminal's output goes to the log.
    status = Supervise(paths, *c, c->tty ? -1 : in_fd, log_fd, log_fd, c->tty, c->tty ? in_fd : -1,
                       c->tty ? log_fd : -1, &ready_fd, "",
                       std::move(fwd), nullptr, /*lock_held=*/true);
    fwd.reset();  // later rounds bind the -p ports again (Supervise)
    DetachNetworks(paths, *c);  // its names go at once (network.cpp)
    if (!status)
      break;  // could not run it: a restart would fail the same way
    if (!ShouldRestart(paths, *c, *status))
      break;
    // Docker's back-off: 100 ms, doubling up to 1 min, back to 100 ms
    // after a run of 10 s or more. A kiln stop meanwhile ends the loop.
    if (std::chrono::steady_clock::now() - began >= std::chrono::seconds(10))
      delay_ms = 100;
    (void)UpdateState(paths, id, [](State& s) { s.status = "restarting"; });
    bool stopped = false;
    for (int64_t waited = 0; waited < delay_ms && !stopped; waited += 20) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(20, delay_ms - waited)));
      stopped = ReadState(paths, id).stopped_by_user;
    }
    if (stopped) {
      (void)UpdateState(paths, id, [](State& s) { s.status = "exited"; });
      break;
    }
    delay_ms = std::min<int64_t>(delay_ms * 2, 60000);
    (void)UpdateState(paths, id, [](State& s) { ++s.restart_count; });
    EmitContainerEvent(paths, *c, "restart");
  }
  if (!status) {
    std::string line = "kiln: error: " + status.error().message() + "\n";
    (void)WriteAll(log_fd, line);
    if (ready_fd >= 0)
      (void)WriteAll(ready_fd, "E" + status.error().message() + "\n");
  }
  // The logger has copied everything once the container's output ends
  // (logs -f stops when the monitor is gone: nothing may come after).
  log_pipe.reset();
  for (int i = 0; logger > 0 && i < 200; ++i) {
    if (::waitpid(logger, nullptr, WNOHANG) != 0)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  StopPodAfterLastMember(paths, *c);  // --exit-policy stop (pod.cpp)
  if (c->auto_remove) {
    auto lock = LockFile(ContainersRoot(paths) + "/lock", LOCK_EX);
    (void)RemoveRecords(paths, *c);
  }
  return status ? *status : 125;
}

}  // namespace kiln::run
