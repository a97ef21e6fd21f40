// kiln-sandbox: the single-threaded helper that sets up one sandboxed
// process (bubblewrap-style: die on the first failure).
//
// Started by RunSandbox (spawn.cpp) from a sealed memfd copy of this binary
// with fd 3 = spec pipe, fd 4 = status pipe (wire.h), 0-2 = stdio. Three
// processes:
//   H (this main): mounts the rootfs in a new mount namespace (so a
//     fuse-overlayfs daemon stays outside the sandbox's pid namespace), then
//     unshares pid/ipc/uts(/net) and forks R; forwards signals; exits with
//     R's status.
//   R (pid 1 of the new pid namespace): mounts /proc, /dev, /sys, the extra
//     mounts and the /etc files, pivots into the rootfs, forks C, reaps
//     everything, reports C's wait status, exits (which kills the namespace).
//   C: setsid, bounding set, groups/gid/uid, cwd, close fds, execve.
// Neither R nor C keeps an fd to a host directory once the rootfs is pivoted
// (docs/security.md I6 / CVE-2024-21626).
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sandbox/shared.h"
#include "sandbox/wire.h"

namespace kiln::sandbox {
namespace {

volatile sig_atomic_t g_forward_pid = 0;
// Mount stubs are reported for removal after the run; the working directory
// (created by C) is kept, as Docker does.
bool g_report_stubs = true;

void Send(char tag, const std::string& text) {
  std::string line(1, tag);
  line += text;
  for (char& c : line)
    if (c == '\n')
      c = ' ';
  line += '\n';
  // One write: the parent splits on newlines; a pipe write <= PIPE_BUF is atomic.
  if (line.size() > 4000)
    line = line.substr(0, 3999) + "\n";
  ssize_t n;
  do {
    n = ::write(kStatusFd, line.data(), line.size());
  } while (n < 0 && errno == EINTR);
}

[[noreturn]] void Die(const std::string& what) {
  Send('E', what);
  _exit(125);
}

[[noreturn]] void DieErrno(const std::string& what, int err = errno) {
  Die(what + ": " + std::strerror(err));
}

std::string FdPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

int OpenAt2(int dirfd, const std::string& path, uint64_t flags, uint64_t resolve) {
  struct open_how how = {};
  how.flags = flags | O_CLOEXEC;
  how.resolve = resolve;
  int fd;
  do {
    fd = static_cast<int>(::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how));
  } while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  return fd;
}

bool ReadFull(int fd, void* buf, size_t len) {
  char* p = static_cast<char*>(buf);
  while (len > 0) {
    ssize_t n = ::read(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

void ForwardSignal(int sig) {
  if (g_forward_pid > 0)
    ::kill(g_forward_pid, sig);
}

void InstallForwarders() {
  struct sigaction sa = {};
  sa.sa_handler = ForwardSignal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT})
    sigaction(sig, &sa, nullptr);
}

void ResetSignals() {
  struct sigaction sa = {};
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig)
    sigaction(sig, &sa, nullptr);  // SIGKILL/SIGSTOP and RT ones may fail: fine
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

bool MountAttrRdonly(int fd, bool recursive) {
  struct mount_attr attr = {};
  attr.attr_set = MOUNT_ATTR_RDONLY;
  return ::mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof attr) == 0;
}

// ---------------------------------------------------------------------------
// H: the rootfs

std::string JoinFds(const std::vector<int>& fds) {
  std::string s;
  for (int fd : fds) {
    if (!s.empty())
      s += ':';
    s += FdPath(fd);
  }
  return s;
}

bool MountFuseOverlayfs(const HelperSpec& h, std::string* err) {
  const SandboxSpec& s = h.spec;
  std::string bin = FindHostBinary("fuse-overlayfs");
  if (bin.empty()) {
    *err = "fuse-overlayfs is not installed";
    return false;
  }
  std::string lower;
  for (const auto& d : s.lower_dirs) {
    if (d.find_first_of(":,") != std::string::npos) {
      *err = "fuse-overlayfs: layer path contains ':' or ','";
      return false;
    }
    lower += (lower.empty() ? "" : ":") + d;
  }
  std::string opts = "lowerdir=" + lower;
  if (!s.upper_dir.empty())
    opts += ",upperdir=" + s.upper_dir + ",workdir=" + s.work_dir;
  pid_t pid = ::fork();
  if (pid < 0) {
    *err = std::string("fork: ") + std::strerror(errno);
    return false;
  }
  if (pid == 0) {
    int null_fd = ::open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
      ::dup2(null_fd, 0);
      ::dup2(null_fd, 1);
    }
    std::vector<char*> argv = {const_cast<char*>(bin.c_str()), const_cast<char*>("-o"),
                               const_cast<char*>(opts.c_str()), const_cast<char*>(h.new_root.c_str()),
                               nullptr};
    char* envp[] = {nullptr};
    ::execve(bin.c_str(), argv.data(), envp);
    _exit(127);
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    *err = "fuse-overlayfs failed (status " + std::to_string(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)) + ")";
    return false;
  }
  return true;
}

void MountRootfs(const HelperSpec& h) {
  const SandboxSpec& s = h.spec;
  if (s.lower_dirs.empty()) {
    int fd = OpenAt2(AT_FDCWD, s.rootfs_dir, O_PATH | O_DIRECTORY, 0);
    if (fd < 0)
      DieErrno("open rootfs " + s.rootfs_dir);
    if (::mount(FdPath(fd).c_str(), h.new_root.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
      DieErrno("bind-mount rootfs " + s.rootfs_dir);
    ::close(fd);
    Send('D', "directory 0");
    return;
  }
  // Mount only what we opened (docs/security.md I2): the kernel gets /proc/self/fd
  // paths, which also keeps the option string short with many layers.
  std::vector<int> lower;
  for (const auto& d : s.lower_dirs) {
    int fd = OpenAt2(AT_FDCWD, d, O_PATH | O_DIRECTORY, 0);
    if (fd < 0)
      DieErrno("open layer " + d);
    lower.push_back(fd);
  }
  std::string opts = "lowerdir=" + JoinFds(lower);
  int upper = -1;
  int work = -1;
  if (!s.upper_dir.empty()) {
    upper = OpenAt2(AT_FDCWD, s.upper_dir, O_PATH | O_DIRECTORY, 0);
    if (upper < 0)
      DieErrno("open upper dir " + s.upper_dir);
    work = OpenAt2(AT_FDCWD, s.work_dir, O_PATH | O_DIRECTORY, 0);
    if (work < 0)
      DieErrno("open work dir " + s.work_dir);
    opts += ",upperdir=" + FdPath(upper) + ",workdir=" + FdPath(work);
  }
  auto close_layers = [&] {
    for (int fd : lower)
      ::close(fd);
    if (upper >= 0)
      ::close(upper);
    if (work >= 0)
      ::close(work);
  };
  std::string overlay_err;
  if (!s.driver || *s.driver == RootfsDriver::kOverlay) {
    const bool order[2] = {h.in_userns, !h.in_userns};
    // volatile first when asked: without it the last unmount syncs the
    // upper file system (ovl_sync_fs), which waited ~0.2 s for a pull's
    // not yet written-back layers at the first `run --rm` after it.
    const bool volatile_tries[2] = {s.volatile_upper && upper >= 0, false};
    for (bool vol : volatile_tries) {
      for (bool userxattr : order) {
        std::string o = opts + (userxattr ? ",userxattr" : "") + (vol ? ",volatile" : "");
        if (::mount("overlay", h.new_root.c_str(), "overlay", 0, o.c_str()) == 0) {
          Send('D', std::string("overlay ") + (userxattr ? "1" : "0"));
          overlay_err.clear();
          break;
        }
        overlay_err = std::string("mount overlay: ") + std::strerror(errno);
      }
      if (overlay_err.empty() || !vol)
        break;
    }
    if (overlay_err.empty()) {
      close_layers();
      return;
    }
    if (s.driver)
      Die(overlay_err);
  }
  close_layers();
  std::string fuse_err;
  if (MountFuseOverlayfs(h, &fuse_err)) {
    Send('D', "fuse-overlayfs 0");
    return;
  }
  Die((overlay_err.empty() ? "" : overlay_err + "; ") + fuse_err +
      " (no layered rootfs: use the copy snapshotter, see docs/sandbox.md)");
}

// ---------------------------------------------------------------------------
// R: mount targets inside the rootfs

constexpr uint64_t kInRoot = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

std::string CleanRelative(const std::string& abs) {
  // "/a//b/./c/" -> "a/b/c"; ".." is refused by the caller's validation.
  std::string out;
  for (const std::string& comp : SplitOn(abs, '/')) {
    if (!comp.empty() && comp != ".")
      out += (out.empty() ? "" : "/") + comp;
  }
  return out;
}

// Opens (O_PATH) the mount target `rel` inside the rootfs, creating it and
// its missing parents (directories, or an empty file for the last component
// when !want_dir). Every component is resolved inside the root, so a symlink
// in the image can never point a mount outside it (docs/security.md I1/I2).
// Returns -1 with errno set; EEXIST means a dangling symlink.
int PrepareTarget(int rootfd, const std::string& rel, bool want_dir) {
  if (rel.empty())
    return ::dup(rootfd);
  int fd = OpenAt2(rootfd, rel, O_PATH, kInRoot);
  if (fd >= 0 || errno != ENOENT)
    return fd;
  std::string parent;
  std::string base = rel;
  if (size_t slash = rel.rfind('/'); slash != std::string::npos) {
    parent = rel.substr(0, slash);
    base = rel.substr(slash + 1);
  }
  int pfd = PrepareTarget(rootfd, parent, true);
  if (pfd < 0)
    return -1;
  // Reopen the parent for real (O_PATH cannot create).
  int dfd = OpenAt2(pfd, ".", O_RDONLY | O_DIRECTORY, 0);
  ::close(pfd);
  if (dfd < 0)
    return -1;
  int rc;
  if (want_dir) {
    rc = ::mkdirat(dfd, base.c_str(), 0755);
  } else {
    rc = ::openat(dfd, base.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (rc >= 0)
      ::close(rc);
  }
  int err = errno;
  ::close(dfd);
  if (rc < 0) {
    errno = err;
    return -1;
  }
  if (g_report_stubs)
    Send('C', rel);
  return OpenAt2(rootfd, rel, O_PATH, kInRoot);
}

int TargetOrDie(int rootfd, const std::string& abs, bool want_dir) {
  std::string rel = CleanRelative(abs);
  int fd = PrepareTarget(rootfd, rel, want_dir);
  if (fd < 0) {
    if (errno == EEXIST)
      Die("mount target " + abs + ": dangling symlink in the rootfs");
    DieErrno("mount target " + abs);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0)
    DieErrno("stat " + abs);
  if (want_dir && !S_ISDIR(st.st_mode))
    Die(abs + " must be mounted on ordinary directory");
  if (!want_dir && S_ISDIR(st.st_mode))
    Die("mount target " + abs + " is a directory");
  return fd;
}

// Opens a path in the kernel-provided special directories (/proc, /sys, /dev
// in the rootfs) which must be real directories, not symlinks (H43).
int SpecialDirOrDie(int rootfd, const char* abs) {
  std::string rel = CleanRelative(abs);
  int fd = OpenAt2(rootfd, rel, O_PATH | O_NOFOLLOW, kInRoot | RESOLVE_NO_SYMLINKS);
  struct stat st;
  if ((fd < 0 && errno == ELOOP) || (fd >= 0 && ::fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)))
    Die(std::string(abs) + " must be mounted on ordinary directory");
  if (fd >= 0)
    ::close(fd);
  return TargetOrDie(rootfd, abs, true);
}

// Bind-mounts host `src_path` (opened here, before the pivot) onto `abs` in
// the rootfs.
void BindHostPath(int rootfd, const std::string& src_path, const std::string& abs, bool read_only,
                  bool rec) {
  int src = OpenAt2(AT_FDCWD, src_path, O_PATH, 0);
  if (src < 0)
    DieErrno("open " + src_path);
  struct stat st;
  if (::fstat(src, &st) != 0)
    DieErrno("stat " + src_path);
  int dst = TargetOrDie(rootfd, abs, S_ISDIR(st.st_mode));
  if (::mount(FdPath(src).c_str(), FdPath(dst).c_str(), nullptr, MS_BIND | (rec ? MS_REC : 0), nullptr) != 0)
    DieErrno("bind-mount " + src_path + " on " + abs);
  ::close(dst);
  ::close(src);
  if (read_only) {
    // Reopen the target: the fd above points below the new mount.
    int mfd = OpenAt2(rootfd, CleanRelative(abs), O_PATH, kInRoot);
    if (mfd < 0)
      DieErrno("reopen " + abs);
    if (!MountAttrRdonly(mfd, rec))
      DieErrno("make " + abs + " read-only");
    ::close(mfd);
  }
}

void MountDev(int rootfd, const std::string& shm_size) {
  int target = SpecialDirOrDie(rootfd, "/dev");
  if (::mount("tmpfs", FdPath(target).c_str(), "tmpfs", MS_NOSUID | MS_NOEXEC | MS_STRICTATIME,
              "mode=755,size=65536k") != 0)
    DieErrno("mount tmpfs on /dev");
  ::close(target);
  // A fresh tmpfs: nothing in it can be a symlink planted by the image.
  int dev = OpenAt2(rootfd, "dev", O_RDONLY | O_DIRECTORY, kInRoot | RESOLVE_NO_SYMLINKS);
  if (dev < 0)
    DieErrno("open /dev");
  for (const char* name : {"null", "zero", "full", "random", "urandom", "tty"}) {
    std::string host = std::string("/dev/") + name;
    int src = ::open(host.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (src < 0)
      DieErrno("open " + host);
    struct stat st;
    if (::fstat(src, &st) != 0 || !S_ISCHR(st.st_mode))
      Die(host + " on the host is not a character device");
    int f = ::openat(dev, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (f < 0)
      DieErrno("create /dev/" + std::string(name));
    ::close(f);
    int dst = ::openat(dev, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (::mount(FdPath(src).c_str(), FdPath(dst).c_str(), nullptr, MS_BIND, nullptr) != 0)
      DieErrno("bind-mount " + host);
    ::close(dst);
    ::close(src);
  }
  if (::mkdirat(dev, "pts", 0755) != 0 || ::mkdirat(dev, "shm", 01777) != 0 ||
      ::mkdirat(dev, "mqueue", 0755) != 0)
    DieErrno("mkdir in /dev");
  int pts = ::openat(dev, "pts", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (::mount("devpts", FdPath(pts).c_str(), "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=620,gid=5") != 0 &&
      ::mount("devpts", FdPath(pts).c_str(), "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=620") != 0)
    DieErrno("mount devpts on /dev/pts");
  ::close(pts);
  int shm = ::openat(dev, "shm", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  std::string shm_opts = "mode=1777,size=" + (shm_size.empty() ? std::string("65536k") : shm_size);
  if (::mount("shm", FdPath(shm).c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, shm_opts.c_str()) != 0)
    DieErrno("mount tmpfs on /dev/shm");
  ::close(shm);
  int mq = ::openat(dev, "mqueue", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (::mount("mqueue", FdPath(mq).c_str(), "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    ::unlinkat(dev, "mqueue", AT_REMOVEDIR);  // optional
  ::close(mq);
  struct Link {
    const char* target;
    const char* name;
  };
  for (Link l : {Link{"pts/ptmx", "ptmx"}, Link{"/proc/self/fd", "fd"}, Link{"/proc/self/fd/0", "stdin"},
                 Link{"/proc/self/fd/1", "stdout"}, Link{"/proc/self/fd/2", "stderr"},
                 Link{"/proc/kcore", "core"}}) {
    if (::symlinkat(l.target, dev, l.name) != 0)
      DieErrno(std::string("symlink /dev/") + l.name);
  }
  ::close(dev);
}

void MountProcAndSys(int rootfd, bool own_netns) {
  int proc = SpecialDirOrDie(rootfd, "/proc");
  if (::mount("proc", FdPath(proc).c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    DieErrno("mount proc");
  ::close(proc);
  int sys = SpecialDirOrDie(rootfd, "/sys");
  // sysfs may be mounted only by the owner of the network namespace; with the
  // host network fall back to a read-only recursive bind of the host's /sys.
  bool mounted = own_netns && ::mount("sysfs", FdPath(sys).c_str(), "sysfs",
                                      MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0;
  ::close(sys);
  if (!mounted)
    BindHostPath(rootfd, "/sys", "/sys", true, true);
}

// Docker's masked and read-only /proc paths: files hidden behind /dev/null,
// directories behind an empty read-only tmpfs, kernel knobs read-only.
void MaskProc(int rootfd) {
  int null_src = ::open("/dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (null_src < 0)
    DieErrno("open /dev/null");
  constexpr uint64_t kStrict = kInRoot | RESOLVE_NO_SYMLINKS;
  for (const char* path : {"proc/kcore", "proc/keys", "proc/latency_stats", "proc/timer_list",
                           "proc/timer_stats", "proc/sched_debug", "proc/acpi", "proc/scsi"}) {
    int fd = OpenAt2(rootfd, path, O_PATH | O_NOFOLLOW, kStrict);
    if (fd < 0)
      continue;  // absent on this kernel
    struct stat st;
    if (::fstat(fd, &st) != 0)
      DieErrno(std::string("stat /") + path);
    int rc = S_ISDIR(st.st_mode)
                 ? ::mount("tmpfs", FdPath(fd).c_str(), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                           "size=0")
                 : ::mount(FdPath(null_src).c_str(), FdPath(fd).c_str(), nullptr, MS_BIND, nullptr);
    if (rc != 0)
      DieErrno(std::string("mask /") + path);
    ::close(fd);
  }
  ::close(null_src);
  for (const char* path : {"proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger"}) {
    int fd = OpenAt2(rootfd, path, O_PATH | O_NOFOLLOW, kStrict);
    if (fd < 0)
      continue;
    if (::mount(FdPath(fd).c_str(), FdPath(fd).c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
      DieErrno(std::string("bind /") + path);
    ::close(fd);
    int mfd = OpenAt2(rootfd, path, O_PATH | O_NOFOLLOW, kStrict);
    if (mfd < 0 || !MountAttrRdonly(mfd, true))
      DieErrno(std::string("make /") + path + " read-only");
    ::close(mfd);
  }
}

void LoopbackUp() {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    DieErrno("socket");
  struct ifreq ifr = {};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
    DieErrno("get flags of lo");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
    DieErrno("bring lo up");
  ::close(s);
}

// ---------------------------------------------------------------------------
// C: the process

std::string EnvValue(const std::vector<std::string>& env, const std::string& key) {
  for (auto it = env.rbegin(); it != env.rend(); ++it)
    if (it->size() > key.size() && it->compare(0, key.size(), key) == 0 && (*it)[key.size()] == '=')
      return it->substr(key.size() + 1);
  return {};
}

void ClearInheritable() {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &hdr, data) != 0)
    DieErrno("capget");
  data[0].inheritable = data[1].inheritable = 0;
  if (::syscall(SYS_capset, &hdr, data) != 0)
    DieErrno("capset");
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

// Opens (O_PATH) the working directory, creating it and its parents as
// root when missing. Resolved inside the root without magic links: never a
// directory of the host (CVE-2024-21626). The caller fchdir()s to this fd,
// so the path is not resolved a second time.
int OpenWorkdirAsRoot(const std::string& abs) {
  std::string rel = CleanRelative(abs);
  int rootfd = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    DieErrno("open /");
  int fd = PrepareTarget(rootfd, rel, true);
  if (fd < 0 && errno == ELOOP)
    Die("working directory " + abs +
        ": resolves through a /proc magic link or a symlink loop, not to a directory inside the container "
        "(CVE-2024-21626)");
  if (fd < 0 && errno == EEXIST)
    Die("working directory " + abs + ": a dangling symlink in the container");
  if (fd < 0)
    DieErrno("working directory " + abs);
  struct stat st;
  if (::fstat(fd, &st) != 0)
    DieErrno("stat working directory " + abs);
  if (!S_ISDIR(st.st_mode))
    Die("working directory " + abs + ": not a directory");
  ::close(rootfd);
  return fd;
}

[[noreturn]] void ExecCommand(const SandboxSpec& s, int tty_slave) {
  ResetSignals();
  g_report_stubs = false;
  if (::setsid() < 0)
    DieErrno("setsid");
  if (tty_slave >= 0) {
    // kiln run -t: the pty of the container's own devpts is stdio and the
    // controlling terminal, so `tty` names /dev/pts/N as the container sees it.
    for (int fd = 0; fd <= 2; ++fd)
      if (::dup2(tty_slave, fd) < 0)
        DieErrno("dup the terminal");
    if (tty_slave > 2)
      ::close(tty_slave);
    if (::ioctl(0, TIOCSCTTY, 0) != 0)
      DieErrno("make the terminal the controlling terminal");
    (void)::fchown(0, s.uid, static_cast<gid_t>(-1));  // the user's own terminal, as runc
  }
  int cwd_fd = OpenWorkdirAsRoot(s.cwd);
  for (const auto& l : s.rlimits) {
    struct rlimit rl = {static_cast<rlim_t>(l.soft), static_cast<rlim_t>(l.hard)};
    if (::setrlimit(l.resource, &rl) != 0) {
      struct rlimit cur = {};
      ::getrlimit(l.resource, &cur);
      DieErrno(std::string("ulimit ") + RlimitName(l.resource) + "=" + std::to_string(l.soft) + ":" + std::to_string(l.hard) +
               " (the hard limit here is " + std::to_string(cur.rlim_max) +
               "; raising it needs CAP_SYS_RESOURCE on the host)");
    }
  }
  if (s.capabilities) {
    if (int cap = DropToCapabilities(*s.capabilities); cap >= 0)
      DieErrno("drop capability " + std::to_string(cap));
  } else if (s.default_capabilities) {
    if (int cap = DropToDefaultCapabilities(); cap >= 0)
      DieErrno("drop capability " + std::to_string(cap));
  }
  std::vector<gid_t> groups = {s.gid};
  for (uint32_t g : s.supplementary_gids)
    if (g != s.gid)
      groups.push_back(g);
  if (::setgroups(groups.size(), groups.data()) != 0) {
    // With a single-id mapping, setgroups is denied (CVE-2018-7169); only the
    // primary group can be in effect then, which is all that was asked for.
    if (!(errno == EPERM && groups.size() == 1))
      DieErrno("setgroups");
  }
  if (::setresgid(s.gid, s.gid, s.gid) != 0)
    DieErrno("setgid " + std::to_string(s.gid));
  if (::setresuid(s.uid, s.uid, s.uid) != 0)
    DieErrno("setuid " + std::to_string(s.uid));
  ClearInheritable();
  if (::fchdir(cwd_fd) != 0)
    DieErrno("working directory " + s.cwd);
  ::close(cwd_fd);
  char cwd[4096];
  if (!::getcwd(cwd, sizeof cwd) || cwd[0] != '/')
    Die("working directory " + s.cwd + " is outside the container's root filesystem (CVE-2024-21626)");

  std::vector<char*> argv;
  for (const auto& a : s.argv)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : s.env)
    envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  if (s.no_new_privileges && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    DieErrno("no-new-privileges");
  // In a pod's shared PID namespace our init is not pid 1: the command must
  // die with it (set after setuid, which clears it).
  if (!s.join_pid.empty())
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  // Only 0, 1, 2 survive execve; the status fd is close-on-exec.
  ::close_range(kSpecFd, kSpecFd, 0);
  ::close_range(kStatusFd + 1, ~0U, 0);

  const std::string& file = s.argv[0];
  int err = ENOENT;
  if (file.find('/') != std::string::npos) {
    ::execve(file.c_str(), argv.data(), envp.data());
    err = errno;
  } else {
    std::string path = EnvValue(s.env, "PATH");
    if (path.empty())
      path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    bool saw_eacces = false;
    for (const std::string& dir : SplitSearchPath(path)) {
      std::string candidate = (dir.empty() ? "." : dir) + "/" + file;
      ::execve(candidate.c_str(), argv.data(), envp.data());
      if (errno == EACCES)
        saw_eacces = true;
      else if (errno != ENOENT && errno != ENOTDIR)
        err = errno;
    }
    if (err == ENOENT && saw_eacces)
      err = EACCES;
  }
  int code = (err == ENOENT || err == ENOTDIR) ? 127 : 126;
  std::string msg = "exec " + file + ": " +
                    (code == 127 && file.find('/') == std::string::npos ? "executable file not found in $PATH"
                                                                           : std::strerror(err));
  Send('F', std::to_string(code) + " " + msg);
  _exit(code);
}

// ---------------------------------------------------------------------------
// R: pid 1

// kiln run -t: a pseudo-terminal of the sandbox's own devpts (mounted by
// MountDev, nothing of the container has run yet). The master goes to the
// parent over the spec socket (SCM_RIGHTS), which relays it; the slave is
// returned for C. Waits for the parent's 'S' (window size set, relay
// running) so that the process starts with its terminal ready.
int AllocateTerminal() {
  int master = OpenAt2(AT_FDCWD, "/dev/pts/ptmx", O_RDWR | O_NOCTTY,
                       RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
  if (master < 0)
    DieErrno("open /dev/pts/ptmx");
  int unlock = 0;
  if (::ioctl(master, TIOCSPTLCK, &unlock) != 0)
    DieErrno("unlock the pseudo-terminal");
  int slave = ::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0)
    DieErrno("open the pseudo-terminal's slave");
  if (!SendFd(kSpecFd, master))
    DieErrno("send the terminal to kiln");
  ::close(master);
  Send('T', "");
  char go = 0;
  if (!ReadFull(kSpecFd, &go, 1) || go != 'S')
    Die("terminal set-up was cancelled");
  return slave;
}

[[noreturn]] void RunInit(const HelperSpec& h) {
  const SandboxSpec& s = h.spec;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  // A mount namespace of our own, so that pivot_root below moves only this
  // process tree, not a fuse-overlayfs daemon started by H.
  if (::unshare(CLONE_NEWNS) != 0)
    DieErrno("unshare mount namespace");
  int rootfd = ::open(h.new_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    DieErrno("open new root");
  const bool own_netns = s.network != NetworkMode::kHost;
  MountProcAndSys(rootfd, own_netns);
  if (s.mask_proc)
    MaskProc(rootfd);
  MountDev(rootfd, s.shm_size);
  for (const auto& m : s.mounts) {
    if (m.type == SandboxMount::Type::kBind) {
      BindHostPath(rootfd, m.source, m.target, m.read_only, true);
      continue;
    }
    int dst = TargetOrDie(rootfd, m.target, true);
    // "noexec" in the options is a mount flag, not tmpfs data (kiln run --tmpfs).
    std::string opts;
    unsigned long flags = MS_NOSUID | MS_NODEV | (m.read_only ? MS_RDONLY : 0);
    for (size_t pos = 0; pos <= m.tmpfs_options.size();) {
      size_t comma = m.tmpfs_options.find(',', pos);
      if (comma == std::string::npos)
        comma = m.tmpfs_options.size();
      std::string opt = m.tmpfs_options.substr(pos, comma - pos);
      if (opt == "noexec")
        flags |= MS_NOEXEC;
      else if (!opt.empty())
        opts += (opts.empty() ? "" : ",") + opt;
      pos = comma + 1;
    }
    if (opts.empty())
      opts = "mode=755";
    if (::mount("tmpfs", FdPath(dst).c_str(), "tmpfs", flags, opts.c_str()) != 0)
      DieErrno("mount tmpfs on " + m.target);
    ::close(dst);
  }
  struct EtcFile {
    const std::string& host;
    const char* target;
  };
  for (EtcFile f : {EtcFile{h.hosts_file, "/etc/hosts"}, EtcFile{h.resolv_file, "/etc/resolv.conf"},
                    EtcFile{h.hostname_file, "/etc/hostname"}}) {
    if (f.host.empty())
      continue;
    std::string rel = CleanRelative(f.target);
    int probe = PrepareTarget(rootfd, rel, false);
    if (probe < 0 && errno == EEXIST)
      continue;  // dangling symlink (e.g. resolv.conf -> ../run/...): leave it (docs/sandbox.md)
    if (probe < 0)
      DieErrno(std::string("mount target ") + f.target);
    ::close(probe);
    BindHostPath(rootfd, f.host, f.target, true, false);
  }
  if (s.join_uts.empty() && !s.hostname.empty() && ::sethostname(s.hostname.data(), s.hostname.size()) != 0)
    DieErrno("sethostname");
  if (own_netns)
    LoopbackUp();
  if (s.read_only_rootfs) {
    if (!MountAttrRdonly(rootfd, false))
      DieErrno("make the rootfs read-only");
  }
  ::close(rootfd);

  // pivot_root(".", "."): the old root ends up on top of the new one and is
  // detached right away; no host path remains reachable.
  if (::chdir(h.new_root.c_str()) != 0)
    DieErrno("chdir new root");
  if (::syscall(SYS_pivot_root, ".", ".") != 0)
    DieErrno("pivot_root");
  if (::umount2(".", MNT_DETACH) != 0)
    DieErrno("detach old root");
  if (::chdir("/") != 0)
    DieErrno("chdir /");

  // Not dumpable: the sandboxed process cannot ptrace or open /proc/1/* of
  // this process unless it is root in the namespace.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

  if (s.network == NetworkMode::kPrivate && s.join_netns.empty()) {
    char go = 0;
    if (!ReadFull(kSpecFd, &go, 1) || go != 'G')
      Die("network set-up was cancelled");
  }

  int tty_slave = s.tty ? AllocateTerminal() : -1;

  InstallForwarders();
  pid_t child = ::fork();
  if (child < 0)
    DieErrno("fork");
  if (child == 0)
    ExecCommand(s, tty_slave);
  g_forward_pid = child;
  // pid 1 keeps only the status fd: the process's stdio pipes must reach EOF
  // when it and its children are gone.
  ::close_range(0, kStatusFd - 1, 0);
  ::close_range(kStatusFd + 1, ~0U, 0);
  for (;;) {
    int st = 0;
    pid_t p = ::waitpid(-1, &st, 0);
    if (p < 0) {
      if (errno == EINTR)
        continue;
      Die(std::string("wait: ") + std::strerror(errno));
    }
    if (p != child)
      continue;  // reaped an orphan
    Send('W', std::to_string(st));
    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  }
}

}  // namespace
}  // namespace kiln::sandbox

// `catatonit -P`: the pause process of a pod's infra container (src/pod).
// This binary is bind-mounted read-only into the infra's empty rootfs (it is
// static): it sleeps until SIGTERM/SIGINT/SIGHUP and exits 0, holding the
// pod's namespaces meanwhile. Nothing of the helper's set-up runs.
static void Quit(int) { _exit(0); }
[[noreturn]] static void PauseMain() {
  struct sigaction sa = {};
  sa.sa_handler = Quit;
  for (int sig : {SIGTERM, SIGINT, SIGHUP})
    ::sigaction(sig, &sa, nullptr);
  for (;;)
    ::pause();
}

int main(int argc, char** argv) {
  using namespace kiln;
  using namespace kiln::sandbox;
  if (argc == 2 && std::strcmp(argv[1], "-P") == 0)
    PauseMain();
  ::close_range(kStatusFd + 1, ~0U, 0);
  ::fcntl(kSpecFd, F_SETFD, FD_CLOEXEC);
  ::fcntl(kStatusFd, F_SETFD, FD_CLOEXEC);

  uint32_t len_le = 0;
  unsigned char lenbuf[4];
  if (!ReadFull(kSpecFd, lenbuf, 4))
    Die("read spec: short read");
  for (int i = 0; i < 4; ++i)
    len_le |= static_cast<uint32_t>(lenbuf[i]) << (8 * i);
  if (len_le > (64u << 20))
    Die("spec too large");
  std::string data(len_le, '\0');
  if (!ReadFull(kSpecFd, data.data(), len_le))
    Die("read spec: short read");
  HelperSpec h;
  if (!DecodeSpec(data, &h))
    Die("malformed spec");
  const SandboxSpec& s = h.spec;

  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (h.parent_pid > 0 && ::getppid() != h.parent_pid)
    _exit(125);  // the parent is already gone

  if (::unshare(CLONE_NEWNS) != 0)
    DieErrno("unshare mount namespace");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    DieErrno("make / private");
  MountRootfs(h);

  // A shared network namespace (SharedNetwork: the build's, slirp4netns
  // already attached) is joined instead of a new one; it must be a network
  // namespace this user namespace owns, else setns fails and so does the
  // step (never the host's network).
  const bool join_net = s.network == NetworkMode::kPrivate && !s.join_netns.empty();
  if (join_net) {
    int nfd = ::open(s.join_netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (nfd < 0)
      DieErrno("open network namespace " + s.join_netns);
    if (::setns(nfd, CLONE_NEWNET) != 0)
      DieErrno("join network namespace " + s.join_netns);
    ::close(nfd);
  }
  // A pod member joins its infra container's IPC and UTS namespaces, and
  // with --share pid its PID namespace (the infra's init is pid 1 there and
  // the forked init below is one more process in it; these namespaces are
  // owned by this user namespace too, else setns fails and so does the start).
  int flags = 0;
  for (const auto& [path, type] : {std::pair<const std::string&, int>{s.join_ipc, CLONE_NEWIPC},
                                   std::pair<const std::string&, int>{s.join_uts, CLONE_NEWUTS},
                                   std::pair<const std::string&, int>{s.join_pid, CLONE_NEWPID}}) {
    if (path.empty()) {
      flags |= type;
      continue;
    }
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      DieErrno("open namespace " + path);
    if (::setns(fd, type) != 0)
      DieErrno("join namespace " + path);
    ::close(fd);
  }
  if (s.network != NetworkMode::kHost && !join_net)
    flags |= CLONE_NEWNET;
  if (::unshare(flags) != 0)
    DieErrno("unshare pid/ipc/uts/net namespaces");
  // The parent attaches slirp4netns/pasta to this network namespace while
  // pid 1 sets up the mounts; pid 1 waits for its 'G' only before starting
  // the command (the helper's start-up overlaps the mounts: ~25 ms).
  if (s.network == NetworkMode::kPrivate && !join_net)
    Send('N', "");

  InstallForwarders();
  pid_t init = ::fork();
  if (init < 0)
    DieErrno("fork");
  if (init == 0)
    RunInit(h);
  g_forward_pid = init;
  Send('P', std::to_string(init));  // kiln run: the pid stop/kill/exec use
  ::close(kSpecFd);
  ::close(kStatusFd);
  ::close_range(0, 2, 0);
  int st = 0;
  while (::waitpid(init, &st, 0) < 0) {
    if (errno != EINTR)
      _exit(125);
  }
  _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}
