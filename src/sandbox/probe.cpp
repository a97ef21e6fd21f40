// Host feature probes for `kiln info` and the engine: which rootfs driver
// works here (by mounting one), which network helper is installed.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "kiln/fs.h"
#include "kiln/sandbox.h"
#include "sandbox/shared.h"

namespace kiln {
namespace {

bool Visible(const std::string& merged) { return ::access((merged + "/probe").c_str(), F_OK) == 0; }

bool TryKernelOverlay(const std::string& dir) {
  std::string opts = "lowerdir=" + dir + "/l,upperdir=" + dir + "/u,workdir=" + dir + "/w";
  std::string merged = dir + "/m";
  for (const char* extra : {",userxattr", ""}) {
    if (::mount("overlay", merged.c_str(), "overlay", 0, (opts + extra).c_str()) != 0)
      continue;
    bool ok = Visible(merged);
    ::umount2(merged.c_str(), MNT_DETACH);
    if (ok)
      return true;
  }
  return false;
}

bool TryFuseOverlayfs(const std::string& dir) {
  std::string bin = sandbox::FindHostBinary("fuse-overlayfs");
  if (bin.empty() || ::access("/dev/fuse", R_OK | W_OK) != 0)
    return false;
  std::string opts = "lowerdir=" + dir + "/l,upperdir=" + dir + "/u,workdir=" + dir + "/w2";
  std::string merged = dir + "/m";
  pid_t pid = ::fork();  // only called from single-threaded CLI code paths
  if (pid < 0)
    return false;
  if (pid == 0) {
    int null_fd = ::open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
      ::dup2(null_fd, 1);
      ::dup2(null_fd, 2);
    }
    ::execl(bin.c_str(), bin.c_str(), "-o", opts.c_str(), merged.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return false;
  bool ok = Visible(merged);
  ::umount2(merged.c_str(), MNT_DETACH);
  return ok;
}

}  // namespace

RootfsDriver ProbeRootfsDriver(const std::string& scratch_dir) {
  if (!scratch_dir.empty() && !MakeDirs(scratch_dir, 0700))
    return RootfsDriver::kDirectory;
  if (!scratch_dir.empty())
    ::setenv("TMPDIR", scratch_dir.c_str(), 0);
  auto tmp = TempDir::Create("kiln-probe-");
  if (!tmp)
    return RootfsDriver::kDirectory;
  const std::string& dir = tmp->path();
  for (const char* sub : {"/l", "/u", "/w", "/w2", "/m"})
    if (::mkdir((dir + sub).c_str(), 0755) != 0)
      return RootfsDriver::kDirectory;
  int fd = ::open((dir + "/l/probe").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return RootfsDriver::kDirectory;
  ::close(fd);
  if (TryKernelOverlay(dir))
    return RootfsDriver::kOverlay;
  if (TryFuseOverlayfs(dir))
    return RootfsDriver::kFuseOverlayfs;
  return RootfsDriver::kDirectory;
}

std::string NetworkHelperPath() {
  // Both helpers create a tap device: without access to /dev/net/tun (mode
  // 0600 on some hosts) they cannot work for this user.
  if (::access("/dev/net/tun", R_OK | W_OK) != 0)
    return {};
  // Looked up in $PATH, as podman does (without PATH: the usual places).
  const char* env = std::getenv("PATH");
  std::string path = env ? env : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
  for (const char* name : {"slirp4netns", "pasta"}) {
    for (const std::string& dir : sandbox::SplitSearchPath(path)) {
      if (dir.empty() || dir[0] != '/')
        continue;  // never relative to the current directory
      std::string p = dir + "/" + name;
      struct stat st;
      if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0)
        return p;
    }
  }
  return {};
}

std::string NetworkHelper() {
  std::string p = NetworkHelperPath();
  return p.empty() ? p : BaseName(p);
}

NetworkMode ResolvePrivateNetwork(NetworkMode requested, std::string* warning) {
  if (requested != NetworkMode::kPrivate || !NetworkHelper().empty())
    return requested;
  if (warning)
    *warning =
        "no usable network helper (slirp4netns or pasta in $PATH, with read-write access to /dev/net/tun): "
        "running with a private network namespace that has only loopback (no outbound access); install "
        "slirp4netns or pasta and give access to /dev/net/tun, or use --network host to share the host network";
  return NetworkMode::kNone;
}

}  // namespace kiln
