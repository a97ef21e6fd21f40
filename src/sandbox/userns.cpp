// EnterUserNamespace: re-exec kiln into a new user + mount namespace, once,
// before any thread exists (docs/sandbox.md, "How it works").
#include <fcntl.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kiln/deferred.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/sandbox.h"
#include "sandbox/shared.h"

extern char** environ;

namespace kiln {
namespace {

volatile sig_atomic_t g_userns_child = 0;

// The parent outside the namespace only waits: what it receives goes to the
// child, which does the work. A signal from the terminal (SI_KERNEL: Ctrl-C,
// Ctrl-backslash, a hang-up, a resize) reached the child already, since both
// are in the terminal's process group: forwarding it would count twice (a
// second Ctrl-C makes a cancelled command exit at once, kiln/cancel.h).
void ForwardToChild(int sig, siginfo_t* info, void*) {
  pid_t child = g_userns_child;
  if (child > 0 && !(info && info->si_code == SI_KERNEL))
    ::kill(child, sig);
}

std::string FindInPath(const char* name) {
  const char* path = std::getenv("PATH");
  std::string p = path && *path ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
  p += ":/usr/bin:/usr/sbin";
  for (const std::string& dir : sandbox::SplitSearchPath(p)) {
    if (dir.empty())
      continue;
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return {};
}

Status WriteProcFile(pid_t pid, const char* name, const std::string& data) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + name;
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_WRONLY));
  if (::write(fd.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size()))
    return Error::FromErrno("write " + path);
  return Ok();
}

// Starts `bin PID 0 ID 1 <ranges>` (newuidmap/newgidmap); the caller waits
// with WaitMapHelper.
Expected<pid_t> SpawnMapHelper(const std::string& bin, pid_t pid, uint32_t id,
                               const std::vector<IdMapping>& ranges) {
  std::vector<std::string> args = {bin, std::to_string(pid), "0", std::to_string(id), "1"};
  uint32_t next = 1;
  for (const auto& r : ranges) {
    args.push_back(std::to_string(next));
    args.push_back(std::to_string(r.host_id));
    args.push_back(std::to_string(r.size));
    next += r.size;
  }
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t helper;
  int rc = ::posix_spawn(&helper, bin.c_str(), nullptr, nullptr, argv.data(), environ);
  if (rc != 0)
    return Error::FromErrno("run " + bin, rc);
  return helper;
}

Status WaitMapHelper(const std::string& bin, pid_t helper, pid_t pid) {
  int st = 0;
  while (::waitpid(helper, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return Error(Errc::kSandbox, bin + " " + std::to_string(pid) + " failed (check /etc/subuid and /etc/subgid)");
  return Ok();
}

// Writes the uid/gid maps of `pid` (a child that just unshared its user
// namespace). newuidmap must run from the parent: the child cannot map ranges
// it does not own (user_namespaces(7)).
Status MapIds(pid_t pid) {
  uid_t uid = ::getuid();
  gid_t gid = ::getgid();
  if (uid == 0) {
    // Root maps every id it has: all of them on a host; inside a container
    // (a user namespace of its own, e.g. kiln in a kiln container, or a
    // Kubernetes pod with hostUsers: false) only the ranges of its own map.
    for (bool gid_map : {false, true}) {
      KILN_ASSIGN_OR_RETURN(auto own, ReadIdMappings(gid_map));
      std::string lines;
      for (const IdMapping& m : own)
        lines += std::to_string(m.container_id) + " " + std::to_string(m.container_id) + " " +
                 std::to_string(m.size) + "\n";
      KILN_TRY(WriteProcFile(pid, gid_map ? "gid_map" : "uid_map", lines));
    }
    return Ok();
  }
  std::string name;
  if (struct passwd* pw = ::getpwuid(uid))
    name = pw->pw_name;
  KILN_ASSIGN_OR_RETURN(auto subuid, SubordinateRanges("/etc/subuid", name, uid));
  KILN_ASSIGN_OR_RETURN(auto subgid, SubordinateRanges("/etc/subgid", name, gid));
  std::string newuidmap = FindInPath("newuidmap");
  std::string newgidmap = FindInPath("newgidmap");
  if (!subuid.empty() && !subgid.empty() && !newuidmap.empty() && !newgidmap.empty()) {
    // The two setuid helpers are independent (one writes uid_map, the other
    // gid_map): run them at the same time, it halves their share of a
    // container's start-up.
    KILN_ASSIGN_OR_RETURN(pid_t uid_helper, SpawnMapHelper(newuidmap, pid, uid, subuid));
    Expected<pid_t> gid_helper = SpawnMapHelper(newgidmap, pid, gid, subgid);
    Status uid_status = WaitMapHelper(newuidmap, uid_helper, pid);
    if (!gid_helper)
      return std::move(gid_helper).error();
    KILN_TRY(uid_status);
    return WaitMapHelper(newgidmap, *gid_helper, pid);
  }
  std::string why = subuid.empty() || subgid.empty()
                        ? "no range for user " + (name.empty() ? std::to_string(uid) : name) +
                              " in /etc/subuid and /etc/subgid"
                        : "newuidmap/newgidmap not found (install the uidmap package)";
  LogWarn(why + ": using a single id mapping; files owned by other users in images will fail to unpack "
                "or appear as root");
  // setgroups must be denied before an unprivileged gid_map write
  // (CVE-2018-7169 semantics are kept).
  KILN_TRY(WriteProcFile(pid, "setgroups", "deny\n"));
  KILN_TRY(WriteProcFile(pid, "uid_map", "0 " + std::to_string(uid) + " 1\n"));
  return WriteProcFile(pid, "gid_map", "0 " + std::to_string(gid) + " 1\n");
}

bool ReadByte(int fd, char* c) {
  for (;;) {
    ssize_t n = ::read(fd, c, 1);
    if (n < 0 && errno == EINTR)
      continue;
    return n == 1;
  }
}

[[noreturn]] void WaitAndForward(pid_t child, int answer_fd) {
  g_userns_child = child;
  struct sigaction sa = {};
  sa.sa_sigaction = ForwardToChild;
  sa.sa_flags = SA_RESTART | SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT})
    ::sigaction(sig, &sa, nullptr);
  // main() blocked SIGINT/SIGTERM until someone handles them (the child
  // unblocks them once its handlers are in place): pass on what came.
  sigset_t cancel_signals;
  sigemptyset(&cancel_signals);
  sigaddset(&cancel_signals, SIGINT);
  sigaddset(&cancel_signals, SIGTERM);
  ::sigprocmask(SIG_UNBLOCK, &cancel_signals, nullptr);
  // The child's exit status, written before it goes on with work that need
  // not keep the caller waiting (kiln/deferred.h: a --rm container's
  // removal): exit with it now. End of file: the child exited (or died)
  // without one; its wait status says how.
  for (;;) {
    unsigned char status = 0;
    ssize_t n = ::read(answer_fd, &status, 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n == 1) {
      std::fflush(nullptr);
      _exit(status);
    }
    break;
  }
  ::close(answer_fd);
  int st = 0;
  while (::waitpid(child, &st, 0) < 0) {
    if (errno != EINTR)
      _exit(125);
  }
  std::fflush(nullptr);
  if (WIFEXITED(st))
    _exit(WEXITSTATUS(st));
  // Die of the same signal, without a core dump of our own.
  int sig = WTERMSIG(st);
  struct rlimit no_core = {0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  ::signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
  ::kill(::getpid(), sig);
  _exit(128 + sig);
}

}  // namespace

bool InKilnUserNamespace() { return std::getenv(kUserNsMarkerEnv) != nullptr; }

uid_t HostUid() {
  const char* v = std::getenv(kUserNsMarkerEnv);
  if (v && *v) {
    char* end = nullptr;
    unsigned long id = std::strtoul(v, &end, 10);
    if (end && *end == '\0' && id < 4294967295ul)
      return static_cast<uid_t>(id);
  }
  return ::getuid();
}

Expected<std::vector<IdMapping>> ReadIdMappings(bool gid) {
  KILN_ASSIGN_OR_RETURN(std::string text, ReadFile(gid ? "/proc/self/gid_map" : "/proc/self/uid_map", 1 << 20));
  std::vector<IdMapping> out;
  for (const std::string& line : sandbox::SplitOn(text, '\n')) {
    unsigned long a, b, c;
    if (std::sscanf(line.c_str(), "%lu %lu %lu", &a, &b, &c) == 3)
      out.push_back(IdMapping{static_cast<uint32_t>(a), static_cast<uint32_t>(b), static_cast<uint32_t>(c)});
  }
  return out;
}

Expected<std::vector<IdMapping>> SubordinateRanges(const std::string& file, const std::string& user, uid_t id) {
  std::vector<IdMapping> out;
  auto text = ReadFile(file, 4 << 20);
  if (!text) {
    if (text.error().code() == Errc::kNotFound)
      return out;
    return std::move(text).error();
  }
  const std::string ids = std::to_string(id);
  for (const std::string& line : sandbox::SplitOn(*text, '\n')) {
    size_t c1 = line.find(':');
    size_t c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string::npos)
      continue;
    std::string who = line.substr(0, c1);
    if (who != ids && (user.empty() || who != user))
      continue;
    char* end = nullptr;
    std::string start_s = line.substr(c1 + 1, c2 - c1 - 1);
    std::string count_s = line.substr(c2 + 1);
    unsigned long start = std::strtoul(start_s.c_str(), &end, 10);
    if (start_s.empty() || *end)
      continue;
    unsigned long count = std::strtoul(count_s.c_str(), &end, 10);
    if (count_s.empty() || *end || count == 0 || start + count > 4294967295ul)
      continue;
    out.push_back(IdMapping{0, static_cast<uint32_t>(start), static_cast<uint32_t>(count)});
  }
  return out;
}

Status EnterUserNamespace(int /*argc*/, char** argv, int join_userns_fd) {
  if (InKilnUserNamespace())
    return Ok();
  int to_child[2];
  int to_parent[2];
  int answer[2];  // the child's exit status, ahead of its exit (kiln/deferred.h)
  if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(to_parent, O_CLOEXEC) != 0 || ::pipe2(answer, O_CLOEXEC) != 0)
    return Error::FromErrno("pipe");
  const uid_t uid = ::getuid();
  const pid_t parent = ::getpid();
  std::fflush(nullptr);
  // Forked from the only thread (main() has started none yet): the child's
  // PDEATHSIG below fires when this process dies, not when some thread ends.
  pid_t pid = ::fork();
  if (pid < 0)
    return Error::FromErrno("fork");
  if (pid == 0) {
    ::close(to_child[1]);
    ::close(to_parent[0]);
    ::close(answer[0]);
    SetCallerAnswerFd(answer[1]);
    char ok = 'U';
    // Joining the network holder's user namespace (src/network/holder.cpp):
    // the owner of a user namespace has every capability in it, so setns
    // works for the unprivileged user too; its id maps are already written.
    if (join_userns_fd >= 0) {
      if (::setns(join_userns_fd, CLONE_NEWUSER) != 0 || ::unshare(CLONE_NEWNS) != 0)
        ok = static_cast<char>(errno);
    } else if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
      ok = static_cast<char>(errno);
    }
    if (::write(to_parent[1], &ok, 1) != 1 || ok != 'U')
      _exit(125);
    char go = 0;
    if (!ReadByte(to_child[0], &go) || go != 'G')
      _exit(125);
    ::close(to_child[0]);
    ::close(to_parent[1]);
    if (::setresgid(0, 0, 0) != 0 || ::setresuid(0, 0, 0) != 0) {
      std::perror("kiln: error: become root in the user namespace");
      _exit(125);
    }
    // The child dies with the parent (kill -9 of kiln, or of the CI job):
    // nothing it started may go on writing to the store after the shell
    // moved on. Set after the uid change, which clears it (prctl(2)); the
    // parent may have died before: then the child was reparented.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || ::getppid() != parent)
      _exit(125);
    // Our mounts never propagate back to the host.
    ::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr);
    ::setenv(kUserNsMarkerEnv, std::to_string(uid).c_str(), 1);
    // The uid change cleared the dumpable flag; an exec would have set it
    // again. Without it /proc/self belongs to the host's root and the
    // sandbox cannot set up nested namespaces.
    ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    if (std::getenv("KILN_USERNS_REEXEC") != nullptr) {  // the old way, for comparison
      ::execv("/proc/self/exe", argv);
      std::perror("kiln: error: re-exec /proc/self/exe");
      _exit(125);
    }
    // No re-exec: this child simply goes on with main() inside the user
    // namespace (no thread exists yet, EnterUserNamespace runs first), which
    // saves a second process start (~20 ms: dynamic linking, static init).
    return Ok();
  }
  ::close(to_child[0]);
  ::close(to_parent[1]);
  ::close(answer[1]);
  UniqueFd answer_fd(answer[0]);
  UniqueFd go_fd(to_child[1]);
  UniqueFd ready_fd(to_parent[0]);
  char ok = 0;
  if (!ReadByte(ready_fd.get(), &ok) || ok != 'U') {
    int err = ok == 0 ? EIO : static_cast<unsigned char>(ok);
    ::waitpid(pid, nullptr, 0);
    return Error(Errc::kUnsupported,
                 std::string("cannot create a user namespace: ") + std::strerror(err) +
                     " (are unprivileged user namespaces enabled? see docs/sandbox.md)");
  }
  if (auto st = join_userns_fd >= 0 ? Status(Ok()) : MapIds(pid); !st) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return std::move(st).error().WithContext("set up the user namespace");
  }
  char go = 'G';
  if (::write(go_fd.get(), &go, 1) != 1)
    return Error::FromErrno("start the user namespace child");
  go_fd.reset();
  ready_fd.reset();
  WaitAndForward(pid, answer_fd.release());
}

}  // namespace kiln
