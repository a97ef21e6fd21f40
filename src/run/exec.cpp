// kiln exec: a new process in a running container. This process (outside
// kiln's user namespace, single-threaded) joins the namespaces of the
// container's init -- user first, which gives it the capabilities there --
// then forks the process, which drops to the requested user and execs.
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "kiln/fs.h"
#include "kiln/process.h"
#include "kiln/rootfs.h"
#include "run/internal.h"

namespace kiln::run {

using namespace internal;

namespace {

std::atomic<pid_t> g_exec_child{0};

void ForwardToChild(int sig) {
  pid_t p = g_exec_child.load();
  if (p > 0)
    ::kill(p, sig);
}

[[noreturn]] void ChildFail(int status_fd, int code, const std::string& msg) {
  std::string line = std::to_string(code) + " " + msg;
  (void)!::write(status_fd, line.data(), line.size());
  _exit(code);
}

}  // namespace

Expected<int> Exec(const Paths& paths, const std::string& id, const ExecOptions& o) {
  if (o.command.empty())
    return Error(Errc::kInvalidInput, "exec: no command given");
  KILN_ASSIGN_OR_RETURN(Config c, ReadConfig(paths, id));
  State s = EffectiveState(paths, id);
  if (s.status != "running" || s.pid <= 0)
    return Error(Errc::kFailed, "container " + c.name + " is not running");

  // The user and the environment, from the container's files and record.
  uint32_t uid = c.uid;
  uint32_t gid = c.gid;
  std::vector<uint32_t> groups = c.groups;
  std::vector<std::string> layer_dirs = c.lower_dirs;
  layer_dirs.insert(layer_dirs.begin(), ContainerDir(paths, id) + "/upper");
  std::vector<std::string> env = c.env;
  KILN_TRY(ResolveSecrets(paths, c, env, nullptr));  // type=env secrets, as at start
  if (!o.user.empty()) {
    KILN_ASSIGN_OR_RETURN(rootfs::ResolvedUser ru,
                          ResolveUserInLayers(layer_dirs, o.user, "container " + c.name, "exec -u " + o.user));
    uid = ru.uid;
    gid = ru.gid;
    groups = ru.supplementary_gids;
    for (auto& e : env)
      if (e.rfind("HOME=", 0) == 0)
        e = "HOME=" + (ru.home.empty() ? std::string("/") : ru.home);
  }
  for (const auto& kv : o.env) {
    std::string item = kv;
    if (item.find('=') == std::string::npos) {
      const char* v = std::getenv(item.c_str());
      if (!v)
        continue;
      item += std::string("=") + v;
    }
    std::string key = item.substr(0, item.find('='));
    bool replaced = false;
    for (auto& e : env)
      if (e.compare(0, key.size() + 1, key + "=") == 0)
        e = item, replaced = true;
    if (!replaced)
      env.push_back(item);
  }
  if (o.tty) {
    bool has_term = false;
    for (const auto& e : env)
      has_term = has_term || e.rfind("TERM=", 0) == 0;
    if (!has_term)
      env.push_back("TERM=xterm");
  }
  std::string cwd = o.workdir.empty() ? c.cwd : o.workdir;
  if (cwd.empty() || cwd[0] != '/')
    return Error(Errc::kInvalidInput, "exec: working directory must be absolute: " + cwd);

  // Namespaces of the container's init, opened before joining any.
  std::string proc = "/proc/" + std::to_string(s.pid);
  struct Ns {
    const char* name;
    int type;
    UniqueFd fd;
  };
  std::vector<Ns> nss;
  for (auto [name, type] : std::initializer_list<std::pair<const char*, int>>{
           {"user", CLONE_NEWUSER}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
           {"net", CLONE_NEWNET},   {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS}}) {
    std::string path = proc + "/ns/" + name;
    struct stat target, self;
    if (::stat(path.c_str(), &target) != 0)
      return Error::FromErrno("exec: container namespace " + path);
    if (::stat((std::string("/proc/self/ns/") + name).c_str(), &self) == 0 && self.st_ino == target.st_ino &&
        self.st_dev == target.st_dev)
      continue;  // already there (e.g. the host network)
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd)
      return Error::FromErrno("exec: open " + path);
    nss.push_back({name, type, std::move(fd)});
  }

  for (auto& ns : nss) {
    if (::setns(ns.fd.get(), ns.type) != 0)
      return Error(Errc::kSandbox, std::string("exec: join the container's ") + ns.name +
                                       " namespace: " + std::strerror(errno));
  }
  // Now in the container's mount namespace (and root): its own devpts, so
  // that `tty` in the process names /dev/pts/N as the container sees it.
  Pty pty;
  if (o.tty) {
    auto opened = OpenPtyInRoot(0);
    if (!opened)
      return std::move(opened).error().WithContext("exec -t");
    pty = std::move(*opened);
  }

  UniqueFd status_r, status_w;
  KILN_TRY(MakePipe(&status_r, &status_w));
  UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));

  // Whether the parent is alive, for the child: the parent never writes to
  // this pipe, so its read end polls readable (EOF) only once the parent is
  // gone. (getppid() cannot tell: from the container's pid namespace the
  // parent has no pid, and neither has the host process it is handed to.)
  UniqueFd alive_r, alive_w;
  KILN_TRY(MakePipe(&alive_r, &alive_w));
  pid_t child = ::fork();
  if (child < 0)
    return Error::FromErrno("fork");
  if (child == 0) {
    int sfd = status_w.get();
    if (o.tty) {
      ::setsid();
      int slave = pty.slave.get();
      ::dup2(slave, 0);
      ::dup2(slave, 1);
      ::dup2(slave, 2);
      if (::ioctl(0, TIOCSCTTY, 0) != 0)
        ChildFail(sfd, 126, std::string("set the controlling terminal: ") + std::strerror(errno));
      (void)::fchown(0, uid, static_cast<gid_t>(-1));  // the user's own terminal
    } else if (!o.interactive && null_fd) {
      ::dup2(null_fd.get(), 0);
    }
    if (int cap = DropToDefaultCapabilities(); cap >= 0)  // Docker's default set, as the sandbox
      ChildFail(sfd, 126, "drop capability " + std::to_string(cap) + ": " + std::strerror(errno));
    std::vector<gid_t> gids = {gid};
    for (uint32_t g : groups)
      if (g != gid)
        gids.push_back(g);
    if (::setgroups(gids.size(), gids.data()) != 0 && !(errno == EPERM && gids.size() == 1))
      ChildFail(sfd, 126, std::string("setgroups: ") + std::strerror(errno));
    if (::setresgid(gid, gid, gid) != 0)
      ChildFail(sfd, 126, "setgid " + std::to_string(gid) + ": " + std::strerror(errno));
    if (::setresuid(uid, uid, uid) != 0)
      ChildFail(sfd, 126, "setuid " + std::to_string(uid) + ": " + std::strerror(errno));
    if (::chdir(cwd.c_str()) != 0)
      ChildFail(sfd, 126, "chdir " + cwd + ": " + std::strerror(errno));
    // Dies with `kiln exec` (set after the uid change, which clears it),
    // also when that happened before the prctl.
    alive_w.reset();
    struct pollfd parent_gone = {alive_r.get(), POLLIN, 0};
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || ::poll(&parent_gone, 1, 0) != 0)
      _exit(137);
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    std::vector<char*> argv;
    for (const auto& a : o.command)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (const auto& e : env)
      envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    environ = envp.data();
    ::execvp(argv[0], argv.data());
    int err = errno;
    int code = (err == ENOENT || err == ENOTDIR) ? 127 : 126;
    ChildFail(sfd, code, "exec " + o.command[0] + ": " +
                             (code == 127 && o.command[0].find('/') == std::string::npos
                                  ? "executable file not found in $PATH"
                                  : std::strerror(err)));
  }
  status_w.reset();
  alive_r.reset();
  g_exec_child = child;
  InstallSignalHandler(ForwardToChild);

  int st = 0;
  if (o.tty) {
    pty.slave.reset();
    // No thread: this process joined the container's pid namespace, and
    // clone(CLONE_THREAD) fails there (EINVAL). A pidfd says when the
    // process is gone.
    UniqueFd exited(static_cast<int>(::syscall(SYS_pidfd_open, child, 0)));
    if (!exited) {
      ::kill(child, SIGKILL);
      while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
      }
      return Error::FromErrno("exec: pidfd_open");
    }
    {
      RawMode raw(0);
      RelayPty(pty.master.get(), o.interactive ? 0 : -1, 1, exited.get());
    }
  }
  while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  g_exec_child = 0;
  std::string msg;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(status_r.get(), buf, sizeof buf)) > 0)
    msg.append(buf, static_cast<size_t>(n));
  if (!msg.empty()) {
    size_t sp = msg.find(' ');
    std::string line = "kiln: error: " + (sp == std::string::npos ? msg : msg.substr(sp + 1)) + "\n";
    (void)!::write(2, line.data(), line.size());
  }
  if (WIFSIGNALED(st))
    return 128 + WTERMSIG(st);
  return WEXITSTATUS(st);
}

}  // namespace kiln::run
