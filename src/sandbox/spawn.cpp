// RunSandbox: the parent side of the sandbox. Starts the kiln-sandbox helper
// (init.cpp) from a sealed memfd with posix_spawn (safe in a multithreaded
// process), sends the spec, serves the status pipe, attaches the network
// helper, removes mount stubs afterwards and returns how the process ended.
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kiln/cancel.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/keyvalue.h"
#include "kiln/log.h"
#include "kiln/process.h"
#include "kiln/isolation.h"
#include "kiln/sandbox.h"
#include "sandbox/wire.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

extern char** environ;

namespace kiln {
namespace {

using sandbox::HelperSpec;

Expected<int> HelperMemfd() {
  static std::mutex mu;
  static int fd = -1;
  std::lock_guard<std::mutex> lock(mu);
  if (fd >= 0)
    return fd;
  KILN_ASSIGN_OR_RETURN(std::string path, SandboxHelperPath());
  KILN_ASSIGN_OR_RETURN(UniqueFd src, OpenFile(path, O_RDONLY));
  // A sealed copy: the sandboxed process can see this helper as pid 1's
  // /proc/1/exe, and must never be able to write to the binary behind it
  // (CVE-2019-5736).
  int m = ::memfd_create("kiln-sandbox", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (m < 0 && errno == EINVAL)
    m = ::memfd_create("kiln-sandbox", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (m < 0)
    return Error::FromErrno("memfd_create");
  UniqueFd owned(m);
  // Copied in the kernel (sendfile): no user-space buffer for the ~1 MB
  // binary, one of the costs of every container start.
  for (;;) {
    ssize_t n = ::sendfile(m, src.get(), nullptr, 1 << 20);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return Error::FromErrno("copy helper " + path + " to a memfd");
    if (n == 0)
      break;
  }
  if (::fchmod(m, 0555) != 0)
    return Error::FromErrno("chmod helper memfd");
  if (::fcntl(m, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
    return Error::FromErrno("seal helper memfd");
  // Keep it away from the fds the helper gets (0-4): posix_spawn execs
  // /proc/self/fd/<this> after the file actions ran.
  int high = ::fcntl(m, F_DUPFD_CLOEXEC, 10);
  if (high < 0)
    return Error::FromErrno("dup helper memfd");
  fd = high;
  return fd;
}

Status Validate(const SandboxSpec& s) {
  if (s.argv.empty())
    return Error(Errc::kInvalidInput, "sandbox: empty command");
  if (s.lower_dirs.empty() && s.rootfs_dir.empty())
    return Error(Errc::kInvalidInput, "sandbox: no rootfs (lower_dirs or rootfs_dir)");
  if (!s.lower_dirs.empty() && s.upper_dir.empty() != s.work_dir.empty())
    return Error(Errc::kInvalidInput, "sandbox: upper_dir and work_dir go together");
  auto bad_path = [](const std::string& p) {
    if (p.empty() || p[0] != '/' || p.find('\0') != std::string::npos)
      return true;
    std::vector<std::string> parts = SplitList(p, '/');
    return std::find(parts.begin(), parts.end(), "..") != parts.end();
  };
  if (bad_path(s.cwd))
    return Error(Errc::kInvalidInput, "sandbox: working directory must be an absolute path without '..': " + s.cwd);
  for (const auto& m : s.mounts) {
    if (bad_path(m.target))
      return Error(Errc::kInvalidInput, "sandbox: mount target must be an absolute path without '..': " + m.target);
    if (m.type == SandboxMount::Type::kBind && m.source.empty())
      return Error(Errc::kInvalidInput, "sandbox: bind mount of " + m.target + " without a source");
    if (m.tmpfs_options.find_first_not_of("0123456789abcdefghijklmnopqrstuvwxyz=,") != std::string::npos)
      return Error(Errc::kInvalidInput, "sandbox: invalid tmpfs options: " + m.tmpfs_options);
  }
  // docs/security.md I6: ids are 0..2^32-2.
  if (s.uid == 4294967295u || s.gid == 4294967295u)
    return Error(Errc::kInvalidInput, "sandbox: uid/gid 4294967295 is not a valid id");
  for (uint32_t g : s.supplementary_gids)
    if (g == 4294967295u)
      return Error(Errc::kInvalidInput, "sandbox: gid 4294967295 is not a valid id");
  KILN_TRY(CheckIdsMapped(s.uid, s.gid, s.supplementary_gids));
  if (s.hostname.size() > 64)
    return Error(Errc::kInvalidInput, "sandbox: hostname longer than 64 bytes");
  return Ok();
}

/// File actions that put `sources[i]` on fd `targets[i]` in the child, even
/// when a source number equals another target: first to fresh high numbers.
class FileActions {
 public:
  FileActions() { posix_spawn_file_actions_init(&fa_); }
  ~FileActions() { posix_spawn_file_actions_destroy(&fa_); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  posix_spawn_file_actions_t* get() { return &fa_; }

  /// `keep`: an fd that must survive in the child (e.g. the one exec'ed).
  void Place(const std::vector<int>& sources, int keep = -1) {
    int high = std::max(10, keep + 1);
    for (int s : sources)
      high = std::max(high, s + 1);
    for (size_t i = 0; i < sources.size(); ++i)
      posix_spawn_file_actions_adddup2(&fa_, sources[i], high + static_cast<int>(i));
    for (size_t i = 0; i < sources.size(); ++i) {
      posix_spawn_file_actions_adddup2(&fa_, high + static_cast<int>(i), static_cast<int>(i));
      posix_spawn_file_actions_addclose(&fa_, high + static_cast<int>(i));
    }
  }

 private:
  posix_spawn_file_actions_t fa_;
};

/// slirp4netns or pasta attached to the network namespace of `pid`. (Ports
/// published with `kiln run -p` go through kiln's own forwarder, src/run.)
class NetworkAttachment {
 public:
  ~NetworkAttachment() { Stop(); }

  Status Start(pid_t target) {
    std::string bin = NetworkHelperPath();
    if (bin.empty())
      return Error(Errc::kUnsupported,
                   "--network=private needs slirp4netns or pasta (Debian packages slirp4netns, passt) and "
                   "read-write access to /dev/net/tun");
    std::string helper = BaseName(bin);
    UniqueFd exit_r, ready_r, ready_w;
    KILN_TRY(MakePipe(&exit_r, &exit_w_));
    KILN_TRY(MakePipe(&ready_r, &ready_w));
    std::vector<std::string> args;
    FileActions fa;
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    UniqueFd null_owned(null_fd);
    if (helper == "slirp4netns") {
      args = {bin, "--configure", "--mtu=65520", "--disable-host-loopback", "--exit-fd=3", "--ready-fd=4",
              std::to_string(target), "tap0"};
      fa.Place({null_fd, null_fd, null_fd, exit_r.get(), ready_w.get()});
    } else {
      // pasta daemonizes once the namespace is configured and quits when the
      // namespace goes away.
      args = {bin, "--config-net", "--quiet", "--no-map-gw", std::to_string(target)};
      fa.Place({null_fd, null_fd, 2});
    }
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, bin.c_str(), fa.get(), nullptr, argv.data(), environ);
    if (rc != 0) {
      pid_ = -1;
      return Error::FromErrno("run " + bin, rc);
    }
    ready_w.reset();
    if (helper == "slirp4netns") {
      char c;
      ssize_t n;
      do {
        n = ::read(ready_r.get(), &c, 1);
      } while (n < 0 && errno == EINTR);
      if (n != 1)
        return Error(Errc::kSandbox, "slirp4netns failed to configure the network namespace");
      return Ok();
    }
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      return Error(Errc::kSandbox, "pasta failed to configure the network namespace");
    return Ok();
  }

  /// slirp4netns exits once its exit fd closes. Its exit is not waited for:
  /// closing its tap device unregisters it in the kernel (an RCU grace
  /// period, ~10 ms), the largest single cost of `kiln run --rm` with the
  /// default network. A detached thread reaps it (no zombie in a long-lived
  /// monitor or build); a kiln that exits first leaves it to init.
  void Stop() {
    exit_w_.reset();
    if (pid_ > 0) {
      pid_t pid = pid_;
      pid_ = -1;
      if (::waitpid(pid, nullptr, WNOHANG) == 0)
        std::thread([pid] {
          while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
          }
        }).detach();
    }
  }

 private:
  UniqueFd exit_w_;
  pid_t pid_ = -1;
};

Status SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return Error::FromErrno("send");
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Ok();
}

int OpenAt2(int dirfd, const std::string& path, uint64_t flags, uint64_t resolve) {
  struct open_how how = {};
  how.flags = flags | O_CLOEXEC;
  how.resolve = resolve;
  return static_cast<int>(::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how));
}

/// Removes the mount stubs the helper created (deepest first) if they are
/// still empty, resolving strictly inside `root` (docs/security.md I2: cleanup
/// checks the path again inside the root).
void RemoveStubs(const std::string& root, std::vector<std::string> stubs) {
  if (root.empty() || stubs.empty())
    return;
  UniqueFd rootfd(OpenAt2(AT_FDCWD, root, O_PATH | O_DIRECTORY, 0));
  if (!rootfd)
    return;
  std::reverse(stubs.begin(), stubs.end());
  for (const auto& rel : stubs) {
    std::string parent = ".";
    std::string base = rel;
    if (size_t slash = rel.rfind('/'); slash != std::string::npos) {
      parent = rel.substr(0, slash);
      base = rel.substr(slash + 1);
    }
    UniqueFd pfd(OpenAt2(rootfd.get(), parent, O_RDONLY | O_DIRECTORY,
                         RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV));
    if (!pfd)
      continue;
    struct stat st;
    if (::fstatat(pfd.get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      continue;
    if (S_ISDIR(st.st_mode))
      ::unlinkat(pfd.get(), base.c_str(), AT_REMOVEDIR);  // fails (ENOTEMPTY) when used: fine
    else if (S_ISREG(st.st_mode) && st.st_size == 0)
      ::unlinkat(pfd.get(), base.c_str(), 0);
  }
}

}  // namespace

Status CheckIdsMapped(uint32_t uid, uint32_t gid, const std::vector<uint32_t>& groups) {
  auto check = [](bool is_gid, uint32_t id) -> Status {
    auto maps = ReadIdMappings(is_gid);
    if (!maps)
      return Ok();  // no /proc: setuid itself will tell
    std::string ranges;
    for (const auto& m : *maps) {
      if (id >= m.container_id && id - m.container_id < m.size)
        return Ok();
      if (!ranges.empty())
        ranges += ", ";
      ranges += std::to_string(m.container_id);
      if (m.size > 1)
        ranges += "-" + std::to_string(static_cast<uint64_t>(m.container_id) + m.size - 1);
    }
    return Error(Errc::kInvalidInput,
                 std::string(is_gid ? "gid " : "uid ") + std::to_string(id) +
                     " is not mapped in kiln's user namespace (mapped: " + ranges + "; a larger range in " +
                     (is_gid ? "/etc/subgid" : "/etc/subuid") + " maps more, see docs/sandbox.md)");
  };
  KILN_TRY(check(false, uid));
  KILN_TRY(check(true, gid));
  for (uint32_t g : groups)
    KILN_TRY(check(true, g));
  return Ok();
}

const char* RootfsDriverName(RootfsDriver driver) {
  switch (driver) {
    case RootfsDriver::kOverlay:
      return "overlay";
    case RootfsDriver::kFuseOverlayfs:
      return "fuse-overlayfs";
    case RootfsDriver::kDirectory:
      return "copy";
  }
  return "?";
}

Expected<std::string> SandboxHelperPath() {
  if (const char* env = std::getenv("KILN_SANDBOX_HELPER"); env && *env)
    return std::string(env);
  std::vector<std::string> candidates;
  if (std::string self = SelfExe(); !self.empty()) {
    std::string dir = DirName(self);
    candidates.push_back(dir + "/kiln-sandbox");
    candidates.push_back(dir + "/../libexec/kiln/kiln-sandbox");
  }
#ifdef KILN_SANDBOX_LIBEXEC_HELPER
  candidates.push_back(KILN_SANDBOX_LIBEXEC_HELPER);
#endif
#ifdef KILN_SANDBOX_BUILD_HELPER
  candidates.push_back(KILN_SANDBOX_BUILD_HELPER);
#endif
  for (const auto& c : candidates)
    if (::access(c.c_str(), X_OK) == 0)
      return c;
  return Error(Errc::kSandbox, "kiln-sandbox helper not found (looked next to kiln and in libexec; set KILN_SANDBOX_HELPER)");
}

// ---------------------------------------------------------------------------
// SharedNetwork

struct SharedNetwork::State {
  pid_t holder = -1;
  UniqueFd ctl_w;  // the holder exits when this closes (or this process dies)
  NetworkAttachment net;
  std::string path;
  std::optional<Error> error;
  std::function<Status(pid_t)> attach;  // instead of slirp4netns (a kiln network)

  ~State() {
    net.Stop();  // slirp4netns first: its exit fd closes
    ctl_w.reset();
    if (holder > 0)
      while (::waitpid(holder, nullptr, 0) < 0 && errno == EINTR) {
      }
  }

  Status Start() {
    UniqueFd ctl_r, ready_r, ready_w;
    KILN_TRY(MakePipe(&ctl_r, &ctl_w));
    KILN_TRY(MakePipe(&ready_r, &ready_w));
    // fork in a multithreaded process: the child makes only system calls.
    pid_t pid = ::fork();
    if (pid < 0)
      return Error::FromErrno("fork the network namespace holder");
    if (pid == 0) {
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE})
        ::sigaction(sig, &dfl, nullptr);
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      if (::dup2(ctl_r.get(), 0) < 0 || ::dup2(ready_w.get(), 1) < 0)
        ::_exit(1);
      ::close_range(2, ~0U, 0);
      if (::unshare(CLONE_NEWNET) != 0)
        ::_exit(2);
      int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      struct ifreq ifr {};
      std::memcpy(ifr.ifr_name, "lo", 3);
      if (sock < 0 || ::ioctl(sock, SIOCGIFFLAGS, &ifr) != 0)
        ::_exit(3);
      ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
      if (::ioctl(sock, SIOCSIFFLAGS, &ifr) != 0)
        ::_exit(3);
      ::close(sock);
      char r = 'R';
      if (::write(1, &r, 1) != 1)
        ::_exit(4);
      ::close(1);
      char c;
      for (;;) {  // until the owner closes ctl_w or dies
        ssize_t n = ::read(0, &c, 1);
        if (n == 0 || (n < 0 && errno != EINTR))
          ::_exit(0);
      }
    }
    holder = pid;
    ctl_r.reset();
    ready_w.reset();
    char c = 0;
    ssize_t n;
    do {
      n = ::read(ready_r.get(), &c, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1 || c != 'R')
      return Error(Errc::kSandbox, "a network namespace could not be made (unshare CLONE_NEWNET)");
    if (attach)
      KILN_TRY(attach(pid));
    else
      KILN_TRY(net.Start(pid));
    path = "/proc/" + std::to_string(pid) + "/ns/net";
    return Ok();
  }
};

SharedNetwork::SharedNetwork(std::function<Status(pid_t)> attach) : attach_(std::move(attach)) {}
SharedNetwork::~SharedNetwork() = default;

Expected<std::string> SharedNetwork::Path() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!state_) {
    state_ = std::make_unique<State>();
    state_->attach = attach_;
    if (auto st = state_->Start(); !st)
      state_->error = std::move(st).error();
  }
  if (state_->error)
    return *state_->error;
  return state_->path;
}

/// The helper's scratch directory: the rootfs's mount point and the
/// generated /etc files. $TMPDIR when set; else a tmpfs when one is at hand
/// ($XDG_RUNTIME_DIR, /dev/shm): on this disk's ext4 each file made costs
/// 0.05-1.4 ms, five of them and their removal on every `kiln run` and RUN
/// step (docs/performance.md); else /tmp. mkdtemp: mode 0700, a new name.
namespace {

Expected<std::string> MakeScratchDir() {
  auto usable_tmpfs = [](const char* dir) {
    struct statfs sf;
    return dir && *dir && ::statfs(dir, &sf) == 0 && sf.f_type == TMPFS_MAGIC && ::access(dir, W_OK | X_OK) == 0;
  };
  std::string base = "/tmp";
  if (const char* t = std::getenv("TMPDIR"); t && *t)
    base = t;
  else if (const char* x = std::getenv("XDG_RUNTIME_DIR"); usable_tmpfs(x))
    base = x;
  else if (usable_tmpfs("/dev/shm"))
    base = "/dev/shm";
  std::string tmpl = base + "/kiln-sandbox-XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  if (!::mkdtemp(name.data()))
    return Error::FromErrno("mkdtemp " + tmpl);
  return std::string(name.data());
}

}  // namespace

Expected<SandboxResult> RunSandbox(const SandboxSpec& spec) {
  KILN_TRY(Validate(spec));
  if (std::string why; ChrootIsolation() && !(why = ChrootUnavailableReason()).empty())
    return Error(Errc::kUnsupported, "chroot isolation cannot run a process here: " + why +
                                         " (enable user namespaces, or give the job CAP_SYS_ADMIN; docs/ci.md)");
  KILN_ASSIGN_OR_RETURN(int memfd, HelperMemfd());
  KILN_ASSIGN_OR_RETURN(std::string scratch, MakeScratchDir());
  RemoveAllOnExit scratch_guard(scratch);

  HelperSpec h;
  h.spec = spec;
  h.new_root = scratch + "/root";
  if (::mkdir(h.new_root.c_str(), 0755) != 0)
    return Error::FromErrno("mkdir " + h.new_root);
  struct Generated {
    const std::optional<std::string>& content;
    const char* name;
    std::string* path;
  };
  for (Generated g : {Generated{spec.etc_hosts, "hosts", &h.hosts_file},
                      Generated{spec.etc_resolv_conf, "resolv.conf", &h.resolv_file},
                      Generated{spec.etc_hostname, "hostname", &h.hostname_file}}) {
    if (!g.content)
      continue;
    *g.path = (spec.etc_dir.empty() ? scratch : spec.etc_dir) + "/" + g.name;
    KILN_ASSIGN_OR_RETURN(UniqueFd f, OpenFile(*g.path, O_WRONLY | O_CREAT | O_NOFOLLOW |
                                                            (spec.etc_dir.empty() ? O_EXCL : O_TRUNC), 0644));
    KILN_TRY(WriteAll(f.get(), *g.content));
  }
  h.parent_pid = static_cast<int32_t>(::getpid());
  h.in_userns = InKilnUserNamespace() || ::getuid() != 0;
  if (!h.in_userns) {
    // Also true when some other tool put us in a user namespace.
    auto maps = ReadIdMappings(false);
    h.in_userns = !maps || maps->size() != 1 || (*maps)[0].size != 4294967295u;
  }

  // The spec channel is a socket so that writes to a helper that died early
  // fail with EPIPE instead of raising SIGPIPE (MSG_NOSIGNAL).
  int spec_pipe[2];
  int status_pipe[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, spec_pipe) != 0)
    return Error::FromErrno("socketpair");
  UniqueFd spec_r(spec_pipe[0]);
  UniqueFd spec_w(spec_pipe[1]);
  if (::pipe2(status_pipe, O_CLOEXEC) != 0)
    return Error::FromErrno("pipe");
  UniqueFd status_r(status_pipe[0]);
  UniqueFd status_w(status_pipe[1]);

  UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null_fd)
    return Error::FromErrno("open /dev/null");
  auto or_null = [&](int fd) { return fd >= 0 ? fd : null_fd.get(); };
  FileActions fa;
  fa.Place({or_null(spec.stdin_fd), or_null(spec.stdout_fd), or_null(spec.stderr_fd), spec_r.get(),
            status_w.get()},
           memfd);

  posix_spawnattr_t attr;
  InitSpawnAttr(&attr);
  std::string exe = "/proc/self/fd/" + std::to_string(memfd);
  char arg0[] = "kiln-sandbox";
  char* argv[] = {arg0, nullptr};
  char* envp[] = {nullptr};
  pid_t pid;
  int rc = ::posix_spawn(&pid, exe.c_str(), fa.get(), &attr, argv, envp);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return Error::FromErrno("start the sandbox helper", rc);
  spec_r.reset();
  status_w.reset();

  std::string payload = sandbox::EncodeSpec(h);
  std::string framed(4, '\0');
  for (int i = 0; i < 4; ++i)
    framed[static_cast<size_t>(i)] = static_cast<char>((payload.size() >> (8 * i)) & 0xff);
  framed += payload;
  // The helper may have died already (EPIPE): its status tells why.
  Status sent = SendAll(spec_w.get(), framed);

  SandboxResult result;
  std::string setup_error;
  std::vector<std::string> stubs;
  NetworkAttachment net;
  bool saw_wait = false;
  int wait_status = 0;
  // One status line of the helper (wire.h).
  LineReader status_lines;
  auto on_status = [&](std::string_view status_line) {
    std::string line(status_line);
    if (line.empty())
      return;
    char tag = line[0];
    std::string text = line.substr(1);
    switch (tag) {
      case 'E':
        if (setup_error.empty())
          setup_error = text;
        break;
      case 'F': {
        size_t sp = text.find(' ');
        result.message = sp == std::string::npos ? text : text.substr(sp + 1);
        break;
      }
      case 'C':
        stubs.push_back(text);
        break;
      case 'D':
        if (text.rfind("overlay", 0) == 0)
          result.driver = RootfsDriver::kOverlay;
        else if (text.rfind("fuse-overlayfs", 0) == 0)
          result.driver = RootfsDriver::kFuseOverlayfs;
        else
          result.driver = RootfsDriver::kDirectory;
        result.overlay_userxattr = text.size() > 1 && text.back() == '1';
        break;
      case 'P':  // the sandbox's init process exists (kiln run)
        if (spec.on_started)
          spec.on_started(static_cast<pid_t>(std::atoi(text.c_str())));
        break;
      case 'N': {
        Status st = spec.attach_network ? spec.attach_network(pid) : net.Start(pid);
        if (!st) {
          setup_error = st.error().message();
          ::kill(pid, SIGKILL);
          break;
        }
        if (!SendAll(spec_w.get(), "G"))
          setup_error = "network set-up: the sandbox helper went away";
        break;
      }
      case 'T': {  // kiln run -t: the terminal's master, over the spec socket
        UniqueFd master(sandbox::ReceiveFd(spec_w.get()));
        if (!master) {
          setup_error = "receive the terminal from the sandbox helper: " + std::string(std::strerror(errno));
          ::kill(pid, SIGKILL);
          break;
        }
        if (spec.on_tty)
          spec.on_tty(std::move(master));
        if (!SendAll(spec_w.get(), "S"))
          setup_error = "terminal set-up: the sandbox helper went away";
        break;
      }
      case 'W':
        saw_wait = true;
        wait_status = std::atoi(text.c_str());
        break;
      default:
        break;
    }
  };
  // Cancelled (SIGINT/SIGTERM to kiln, kiln/cancel.h): SIGTERM to the helper,
  // which passes it to the process, and SIGKILL after a grace period.
  int cancel_fd = CancelFd();
  int64_t kill_at = -1;  // ms on CLOCK_MONOTONIC once SIGTERM was sent
  auto now_ms = [] {
    struct timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
  };
  for (;;) {
    struct pollfd pfd[2] = {{status_r.get(), POLLIN, 0}, {cancel_fd, POLLIN, 0}};
    nfds_t nfds = cancel_fd >= 0 && kill_at < 0 ? 2 : 1;
    int timeout = kill_at > 0 ? static_cast<int>(std::max<int64_t>(0, kill_at - now_ms())) : -1;
    int r = ::poll(pfd, nfds, timeout);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0 && kill_at > 0) {
      ::kill(pid, SIGKILL);
      kill_at = 0;  // sent; wait for the end without a timeout
      continue;
    }
    if (nfds == 2 && (pfd[1].revents & POLLIN)) {
      ::kill(pid, SIGTERM);
      kill_at = now_ms() + kCancelGraceMs;
    }
    if (r > 0 && pfd[0].revents == 0)
      continue;
    if (status_lines.ReadOnce(status_r.get(), on_status) <= 0)
      break;
  }
  spec_w.reset();
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR)
      return Error::FromErrno("wait for the sandbox helper");
  }
  net.Stop();
  if (!(spec.discard_upper && !spec.lower_dirs.empty()))
    RemoveStubs(spec.lower_dirs.empty() ? spec.rootfs_dir : spec.upper_dir, stubs);

  // A set-up error is fatal even when pid 1 reported a wait status: the
  // process failed before execve (e.g. its working directory), and its
  // status (125) alone would say nothing.
  if (!setup_error.empty())
    return Error(Errc::kSandbox, "sandbox: " + setup_error + NestedProcHint(setup_error));
  if (!saw_wait) {
    if (!sent)
      return std::move(sent).error().WithContext("sandbox: send the spec");
    return Error(Errc::kSandbox, "sandbox: the helper exited with status " +
                                     std::to_string(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)) +
                                     " before the process ran");
  }
  if (WIFSIGNALED(wait_status)) {
    result.signal = WTERMSIG(wait_status);
  } else {
    result.exit_code = WEXITSTATUS(wait_status);
  }
  return result;
}

namespace {
class RealSandbox final : public Sandbox {
 public:
  Expected<SandboxResult> Run(const SandboxSpec& spec) override { return RunSandbox(spec); }
};
}  // namespace

Sandbox& HostSandbox() {
  static RealSandbox sandbox;
  return sandbox;
}

}  // namespace kiln
