// Isolation modes (include/kiln/isolation.h): the user-namespace probe that
// `kiln info` and main() use, and the capability check of chroot isolation.
#include "kiln/isolation.h"

#include <linux/capability.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace kiln {
namespace {

std::string g_chroot_why;
bool g_chroot = false;

/// The first line of a /proc/sys file, "" when it cannot be read.
std::string Sysctl(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

const char* IsolationName(Isolation isolation) {
  static const char* const kNames[] = {"oci", "rootless", "chroot"};  // in the enum's order
  return kNames[static_cast<int>(isolation)];
}

std::optional<Isolation> ParseIsolation(std::string_view value) {
  if (value == "oci")
    return Isolation::kOci;
  if (value == "rootless")
    return Isolation::kRootless;
  if (value == "chroot")
    return Isolation::kChroot;
  return std::nullopt;
}

std::string RequestedIsolation(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--")
      break;
    if (a == "--isolation" && i + 1 < argc)
      return argv[i + 1];
    if (a.rfind("--isolation=", 0) == 0)
      return std::string(a.substr(12));
  }
  for (const char* name : {"KILN_ISOLATION", "BUILDAH_ISOLATION"})
    if (const char* v = std::getenv(name); v && *v)
      return v;
  return {};
}

UserNamespaceSupport ProbeUserNamespaces() {
  UserNamespaceSupport out;
  pid_t pid = ::fork();
  if (pid < 0) {
    out.reason = std::string("fork: ") + std::strerror(errno);
    return out;
  }
  if (pid == 0)
    _exit(::unshare(CLONE_NEWUSER) == 0 ? 0 : (errno & 0xff));
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
    out.available = true;
    return out;
  }
  int err = WIFEXITED(st) ? WEXITSTATUS(st) : EINVAL;
  // The usual switches, in the order the kernel checks them.
  if (Sysctl("/proc/sys/user/max_user_namespaces") == "0")
    out.reason = "max_user_namespaces=0";
  else if (Sysctl("/proc/sys/kernel/unprivileged_userns_clone") == "0" && ::geteuid() != 0)
    out.reason = "kernel.unprivileged_userns_clone=0";
  else if (Sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1")
    out.reason = "kernel.apparmor_restrict_unprivileged_userns=1";
  else if (err == ENOSPC)
    out.reason = "max_user_namespaces reached (a parent namespace's limit)";
  else if (err == EPERM)
    out.reason = "unshare(CLONE_NEWUSER): operation not permitted (a seccomp filter, or nested too deep)";
  else
    out.reason = std::string("unshare(CLONE_NEWUSER): ") + std::strerror(err);
  return out;
}

std::string ChrootUnavailableReason() {
  if (::geteuid() != 0)
    return "not root (uid " + std::to_string(::geteuid()) +
           "): without a user namespace only root can give image files their owners and mount the rootfs";
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &hdr, data) != 0)
    return std::string("capget: ") + std::strerror(errno);
  struct Need {
    int cap;
    const char* name;
  };
  for (Need n : {Need{CAP_SYS_ADMIN, "CAP_SYS_ADMIN (to mount the rootfs, /proc and /dev)"},
                 Need{CAP_SYS_CHROOT, "CAP_SYS_CHROOT"}, Need{CAP_SETUID, "CAP_SETUID"},
                 Need{CAP_SETGID, "CAP_SETGID"}, Need{CAP_CHOWN, "CAP_CHOWN"}}) {
    if (!(data[n.cap / 32].effective & (1u << (n.cap % 32))))
      return std::string("missing capability ") + n.name;
  }
  return {};
}

std::string NestedProcHint(const std::string& setup_error) {
  if (setup_error.rfind("mount proc:", 0) != 0 || setup_error.find("not permitted") == std::string::npos)
    return {};
  // Field 5 of mountinfo is the mount point; binfmt_misc sits on an empty
  // directory the kernel allows to be covered.
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::string masked;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string f[5];
    for (auto& x : f)
      fields >> x;
    if (f[4].rfind("/proc/", 0) == 0 && f[4] != "/proc/sys/fs/binfmt_misc") {
      masked = f[4];
      break;
    }
  }
  if (masked.empty())
    return {};
  return " (this kiln runs in a container whose /proc has masked paths such as " + masked +
         ": a nested sandbox cannot mount its own /proc; run the container with --privileged, or on "
         "Kubernetes with procMount: Unmasked, or build with --isolation chroot; docs/ci.md)";
}

void SetChrootIsolation(const std::string& why) {
  g_chroot = true;
  g_chroot_why = why;
}

bool ChrootIsolation(std::string* why) {
  if (why)
    *why = g_chroot_why;
  return g_chroot;
}

}  // namespace kiln
