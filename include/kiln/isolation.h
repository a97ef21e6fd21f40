// How `kiln build` isolates RUN steps (buildah's --isolation spelling):
// kiln's own sandbox inside its user namespace (oci, rootless), or, where
// user namespaces are unavailable (CI containers, Kubernetes pods without
// hostUsers: false), the same helper without a user namespace of its own
// (chroot). docs/ci.md says what chroot gives up.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kiln {

enum class Isolation {
  kOci,       // kiln's sandbox (mount/pid/ipc/uts/net namespaces, pivot_root) in kiln's user namespace
  kRootless,  // the same: kiln's sandbox always runs in its user namespace
  kChroot,    // no user namespace: the helper in the caller's user namespace, host network by default
};
const char* IsolationName(Isolation isolation);
/// "oci", "rootless", "chroot"; nullopt for anything else.
std::optional<Isolation> ParseIsolation(std::string_view value);

/// The isolation asked for before the command line is parsed (main() must
/// decide before any thread exists): `kiln build --isolation V` /
/// `--isolation=V`, else $KILN_ISOLATION, else $BUILDAH_ISOLATION (as
/// buildah). "" when none is set; the raw value otherwise (checked later).
std::string RequestedIsolation(int argc, char** argv);

/// Whether this process can create a user namespace (a forked child tries
/// unshare(CLONE_NEWUSER)), and why not: "max_user_namespaces=0",
/// "kernel.unprivileged_userns_clone=0", "kernel.apparmor_restrict_unprivileged_userns=1",
/// or the error of unshare (a seccomp filter, for one).
struct UserNamespaceSupport {
  bool available = false;
  std::string reason;  // "" when available
};
UserNamespaceSupport ProbeUserNamespaces();

/// "" when RUN steps can run under chroot isolation here (uid 0 with
/// CAP_SYS_ADMIN, CAP_SYS_CHROOT, CAP_SETUID, CAP_SETGID and CAP_CHOWN in the
/// effective set: the helper mounts the rootfs, /proc and /dev and gives
/// files their owners), else why not, naming the missing capability.
std::string ChrootUnavailableReason();

/// For a sandbox set-up error: when it is "mount proc: ...not permitted" and
/// this process's /proc has paths masked by a container runtime (mounts
/// under /proc, which a nested user namespace cannot mount a new /proc
/// over), " (" + what to do + ")"; else "".
std::string NestedProcHint(const std::string& setup_error);

/// main() records that the command runs without kiln's user namespace
/// (chroot isolation) and why ("requested" or the probe's reason).
void SetChrootIsolation(const std::string& why);
/// True after SetChrootIsolation(); `why` gets its reason.
bool ChrootIsolation(std::string* why = nullptr);

}  // namespace kiln
