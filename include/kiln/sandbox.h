// The rootless sandbox: the process-wide user namespace (EnterUserNamespace)
// and the per-process sandbox (RunSandbox) that RUN steps and `kiln run` use.
//
// Model (docs/sandbox.md): kiln forks once, before any thread exists; the
// child enters a new user + mount namespace where it is root (0 -> the
// invoking user, 1..N -> its /etc/subuid and /etc/subgid ranges). Each
// sandboxed process is then started through `kiln-sandbox`, a small
// single-threaded helper executed from a sealed memfd copy (so the container
// can never write to it through /proc/<pid>/exe). The helper reads the spec
// from a pipe, creates mount/pid/ipc/uts(/net) namespaces, mounts the rootfs,
// /proc, /dev, /sys, pivots into the rootfs, drops to USER and execs argv.
#pragma once

#include <linux/capability.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kiln/env.h"  // kUserNsMarkerEnv
#include "kiln/error.h"
#include "kiln/unique_fd.h"

namespace kiln {

// ---------------------------------------------------------------------------
// User namespace

/// Re-executes /proc/self/exe (with the same argv) in a new user + mount
/// namespace and never returns in the original process: the parent waits for
/// the child, forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2/SIGWINCH
/// to it and exits with its status (re-raising its death signal). Returns Ok()
/// in the child (and immediately when kUserNsMarkerEnv is already set).
///
/// A normal user gets 0 -> uid and 1..N -> its /etc/subuid and /etc/subgid
/// ranges through newuidmap/newgidmap; without a range (or without the
/// helpers) a single mapping 0 -> uid, `setgroups` denied, and a warning.
/// Real root gets 0 -> 0 over the whole id range.
///
/// Must be called before any thread is started (it forks). The child dies
/// with the parent (PR_SET_PDEATHSIG); the parent, which only waits, passes
/// the signals it gets to the child (not the terminal's, which reach both)
/// and unblocks SIGINT/SIGTERM (main() blocks them until handled).
///
/// `join_userns_fd` >= 0: the child joins that user namespace (the network
/// holder's, whose maps are written; src/network/holder.cpp) instead of
/// making a new one, and unshares only a mount namespace.
Status EnterUserNamespace(int argc, char** argv, int join_userns_fd = -1);

/// True when this process runs inside kiln's user namespace.
bool InKilnUserNamespace();

/// The uid kiln was started as on the host (from kUserNsMarkerEnv, else
/// getuid()).
uid_t HostUid();

/// One line of /proc/<pid>/uid_map or gid_map.
struct IdMapping {
  uint32_t container_id = 0;
  uint32_t host_id = 0;
  uint32_t size = 0;
};

/// The current process's uid_map / gid_map.
Expected<std::vector<IdMapping>> ReadIdMappings(bool gid);

/// kInvalidInput naming the id when `uid`, `gid` or one of `groups` is not
/// mapped in the current user namespace (rootless: 0 -> the user, 1..N ->
/// its /etc/subuid and /etc/subgid range): setuid to it would fail.
Status CheckIdsMapped(uint32_t uid, uint32_t gid, const std::vector<uint32_t>& groups);

/// /etc/subuid (or /etc/subgid) ranges of a user, by name or numeric id.
/// Returns an empty vector when the user has none. Entries are
/// `host_id` (start) + `size`; container_id is 0.
Expected<std::vector<IdMapping>> SubordinateRanges(const std::string& file, const std::string& user,
                                                   uid_t id);

// ---------------------------------------------------------------------------
// Snapshotters and host features

/// How a sandbox rootfs is mounted.
enum class RootfsDriver {
  kOverlay,        // kernel overlayfs (userxattr option inside a user namespace)
  kFuseOverlayfs,  // the fuse-overlayfs helper
  kDirectory,      // a plain directory (the copy snapshotter), bind-mounted
};
const char* RootfsDriverName(RootfsDriver driver);

/// Actually mounts a small overlay (in a scratch directory under `scratch_dir`)
/// to find the best layered driver: kOverlay, else kFuseOverlayfs (binary and
/// /dev/fuse present and mountable), else kDirectory (copy snapshotter).
/// Needs CAP_SYS_ADMIN in the current user namespace (call it after
/// EnterUserNamespace). Leaves no mount behind.
RootfsDriver ProbeRootfsDriver(const std::string& scratch_dir);

/// The network helper RUN steps with NetworkMode::kPrivate use: "slirp4netns",
/// "pasta" (the first found in $PATH), or "" when neither is installed or
/// /dev/net/tun is not read-write for this user.
std::string NetworkHelper();
/// Its full path ("" as NetworkHelper()).
std::string NetworkHelperPath();

// ---------------------------------------------------------------------------
// The sandbox

enum class NetworkMode {
  kNone,     // new network namespace with only `lo` up
  kHost,     // share the caller's network namespace
  kPrivate,  // new network namespace + slirp4netns/pasta for outbound access
};

/// The network a sandbox really gets. kPrivate without a usable helper
/// fails closed: kNone (its own network namespace, loopback only) and
/// `*warning` says how to get outbound access. Never the host's network
/// unless asked for. Other modes are returned unchanged.
NetworkMode ResolvePrivateNetwork(NetworkMode requested, std::string* warning);

/// An extra mount inside the sandbox.
struct SandboxMount {
  enum class Type { kBind, kTmpfs };
  Type type = Type::kBind;
  /// Host path for kBind (opened before anything else happens); unused for kTmpfs.
  std::string source;
  /// Absolute path inside the rootfs; created if missing (resolved inside the
  /// rootfs, never through a symlink out of it). Stubs created for the mount
  /// are removed again after the run.
  std::string target;
  bool read_only = false;
  /// kTmpfs only: "size=64m,mode=1777" style options (tmpfs data options;
  /// "noexec" among them is MS_NOEXEC). Always nosuid,nodev.
  std::string tmpfs_options;
};

/// Everything that defines one sandboxed process. All ids are ids inside
/// kiln's user namespace (already resolved from the image's /etc/passwd).
struct SandboxSpec {
  /// Layered rootfs: read-only layer directories, top first, plus a fresh
  /// upper and work directory on the same filesystem. Used when lower_dirs is
  /// not empty.
  std::vector<std::string> lower_dirs;
  std::string upper_dir;
  std::string work_dir;
  /// Mount the overlay `volatile` (Linux >= 5.10; ignored when the kernel
  /// refuses it): its unmount does not sync the upper directory's whole
  /// file system. For uppers that are thrown away (`run --rm`) or whose
  /// content the caller makes durable itself (a build step's layer blob).
  bool volatile_upper = false;
  /// The caller removes upper_dir as soon as the sandbox ends (`run --rm`):
  /// the mount targets the helper created in it (stubs) are left there
  /// instead of being removed one by one first.
  bool discard_upper = false;
  /// Plain directory rootfs (copy snapshotter), used when lower_dirs is empty.
  /// Writes land in it directly.
  std::string rootfs_dir;
  /// Force a driver for the layered rootfs (default: overlay, then
  /// fuse-overlayfs).
  std::optional<RootfsDriver> driver;
  bool read_only_rootfs = false;

  std::vector<SandboxMount> mounts;

  std::vector<std::string> argv;  // argv[0] is looked up in env's PATH if it has no '/'
  std::vector<std::string> env;   // "K=V"
  std::string cwd = "/";          // created (0755, root) if missing
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> supplementary_gids;  // gid is always added (docs/security.md I6)

  std::string hostname = "kiln";
  /// Contents of /etc/hosts, /etc/resolv.conf, /etc/hostname. Each is written
  /// to a temporary file outside the rootfs and bind-mounted read-only, so it
  /// never lands in the upper dir. nullopt: leave the rootfs's file alone.
  std::optional<std::string> etc_hosts;
  std::optional<std::string> etc_resolv_conf;
  std::optional<std::string> etc_hostname;
  /// When set: those files are written to this directory (the caller keeps
  /// it for the sandbox's life) instead of a temporary one, so that they can
  /// be changed while the sandbox runs (`network connect` rewrites hosts and
  /// resolv.conf in place; the bind mounts show the same inode).
  std::string etc_dir;

  NetworkMode network = NetworkMode::kNone;

  /// stdio of the process; -1 means /dev/null. Borrowed: the caller keeps
  /// ownership (e.g. the write ends of pipes it reads to prefix output).
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;

  /// `kiln run -t`: the helper allocates a pseudo-terminal in the sandbox's
  /// own devpts (so that `tty` inside names /dev/pts/N), makes its slave the
  /// process's stdin, stdout, stderr and controlling terminal (stdin_fd..
  /// stderr_fd are not used), and hands the master to on_tty before the
  /// process starts. The caller relays the master and the window size.
  bool tty = false;

  /// Drop the capability bounding set to Docker's default 14 capabilities
  /// (true, as Docker/BuildKit RUN) or keep every capability of the user
  /// namespace (false).
  bool default_capabilities = true;
  /// `kiln build --cap-add/--cap-drop`: when set, the bounding set to keep
  /// (bit N = capability N) instead of the one default_capabilities picks.
  std::optional<uint64_t> capabilities;
  /// `--ulimit NAME=SOFT[:HARD]`: set before the process starts. Inside
  /// kiln's user namespace a hard limit can only be lowered (raising needs
  /// CAP_SYS_RESOURCE on the host): the set-up fails naming the limit.
  struct Rlimit {
    int resource = 0;
    uint64_t soft = 0;
    uint64_t hard = 0;
  };
  std::vector<Rlimit> rlimits;
  /// `--security-opt no-new-privileges`: PR_SET_NO_NEW_PRIVS before exec.
  bool no_new_privileges = false;
  /// `--shm-size`: the size= option of the /dev/shm tmpfs ("" = 65536k).
  std::string shm_size;
  /// Mask /proc's sensitive paths (kcore, keys, ... and read-only /proc/sys,
  /// docs/sandbox.md). `kiln run --privileged` turns it off, as podman: a
  /// nested sandbox (kiln in a kiln container) cannot mount its own /proc
  /// over masked, locked paths.
  bool mask_proc = true;

  // --- For `kiln run` (src/run); parent side only, not sent to the helper.
  /// Called (on the thread running RunSandbox) once the sandbox's init
  /// process exists, with its pid in the caller's pid namespace: pid 1 of the
  /// sandbox, whose /proc/<pid>/ns/* `kiln exec` joins and to which stop/kill
  /// signals go (it forwards SIGTERM/INT/HUP/QUIT/USR1/USR2/WINCH/CONT to the
  /// process; its first child in /proc/<pid>/task/<pid>/children is the
  /// process itself).
  std::function<void(pid_t)> on_started;
  /// With `tty`: called (on the thread running RunSandbox) with the
  /// terminal's master side before the process starts; the process waits
  /// until it returns (set the window size, start relaying).
  std::function<void(UniqueFd master)> on_tty;
  /// With NetworkMode::kPrivate: called (on the thread running RunSandbox)
  /// with the pid of a process in the sandbox's new network namespace,
  /// instead of attaching slirp4netns/pasta (container networks,
  /// src/network); the process waits until it returns. An error stops the
  /// sandbox with its message.
  std::function<Status(pid_t)> attach_network;
  /// With NetworkMode::kPrivate: join this network namespace (a
  /// /proc/PID/ns/net path from SharedNetwork::Path, sent to the helper)
  /// instead of making one and attaching slirp4netns/pasta to it.
  std::string join_netns;
  /// Pods (src/pod): join these IPC and UTS namespaces (/proc/PID/ns/ipc,
  /// /proc/PID/ns/uts of the pod's infra container) instead of making new
  /// ones. With join_uts the hostname is the other namespace's (not set).
  std::string join_ipc;
  std::string join_uts;
  /// Pods sharing pid (--share pid): join this PID namespace
  /// (/proc/PID/ns/pid of the infra) instead of making one; the container's
  /// init is then not pid 1 (the infra's init reaps orphans).
  std::string join_pid;
};

/// One network namespace with slirp4netns (or pasta) attached, shared by
/// many sandboxes: the RUN steps of one build start no network helper of
/// their own (25-50 ms each). A holder process (a child of this one) keeps
/// the namespace; it and the network helper go when this object is
/// destroyed or this process dies. Thread-safe.
class SharedNetwork {
 public:
  /// `attach` (kiln build --network NAME): called with the holder's pid
  /// instead of attaching slirp4netns/pasta (it puts the namespace on a kiln
  /// network); an error fails every step that needs the network.
  explicit SharedNetwork(std::function<Status(pid_t)> attach = nullptr);
  ~SharedNetwork();
  SharedNetwork(const SharedNetwork&) = delete;
  SharedNetwork& operator=(const SharedNetwork&) = delete;
  /// The namespace's path (/proc/PID/ns/net), made on the first call. A
  /// failure is returned again by later calls (no retry per step).
  Expected<std::string> Path();

 private:
  struct State;
  std::mutex mu_;
  std::unique_ptr<State> state_;
  std::function<Status(pid_t)> attach_;
};

/// How the process ended.
struct SandboxResult {
  /// Exit status when the process exited normally (126/127 when execve
  /// failed, with `message` set, as docker).
  int exit_code = 0;
  /// The signal that killed it, or 0.
  int signal = 0;
  /// execve failure ("exec foo: no such file or directory"), else empty.
  std::string message;
  /// The driver that mounted the rootfs (for the layer differ: overlay
  /// whiteouts and opaque-dir xattrs differ between drivers).
  RootfsDriver driver = RootfsDriver::kDirectory;
  /// True when kernel overlayfs was mounted with `userxattr` (opaque dirs
  /// are marked with user.overlay.opaque instead of trusted.overlay.opaque).
  bool overlay_userxattr = false;
  /// Shell-style status: exit_code, or 128 + signal.
  int status() const { return signal ? 128 + signal : exit_code; }
};

/// Runs spec.argv in a fresh sandbox and waits for it. Safe to call from
/// several threads at once (the helper is started with posix_spawn). Errors:
/// kSandbox when the sandbox could not be set up (with the helper's message),
/// kUnsupported for a feature the host lacks, kInvalidInput for a bad spec.
/// A process that runs and fails is not an error: see SandboxResult.
Expected<SandboxResult> RunSandbox(const SandboxSpec& spec);

/// The seam between the sandbox and the modules that start processes in it
/// (the build engine's RUN steps, `kiln run`): they call Run() on the
/// Sandbox they were given (engine::BuildOptions::sandbox,
/// run::RunOptions::sandbox), the real one unless a test passes a fake
/// (tests/support/fake_sandbox.h).
class Sandbox {
 public:
  virtual ~Sandbox() = default;
  /// Runs spec.argv and waits for it; the contract of RunSandbox() (errors,
  /// on_started/on_tty called before the process runs, SandboxResult).
  virtual Expected<SandboxResult> Run(const SandboxSpec& spec) = 0;
};

/// The real sandbox (RunSandbox()); one process-wide object.
Sandbox& HostSandbox();

/// `sandbox` when it is set, else HostSandbox(): what callers whose
/// options hold a `Sandbox*` (null = the real one) run through.
inline Sandbox& SandboxOrHost(Sandbox* sandbox) { return sandbox ? *sandbox : HostSandbox(); }

/// Docker's default capability set: what a sandboxed process (with
/// SandboxSpec::default_capabilities) and a `kiln exec` process keep in
/// their bounding set. The one definition (docs/security.md).
inline constexpr int kDefaultCapabilities[] = {
    CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FSETID,          CAP_FOWNER,     CAP_MKNOD, CAP_NET_RAW,  CAP_SETGID,
    CAP_SETUID,  CAP_SETFCAP,      CAP_SETPCAP,         CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_KILL,
    CAP_AUDIT_WRITE};

/// Drops every capability not in kDefaultCapabilities from the calling
/// thread's bounding set (capabilities the kernel does not know are
/// skipped). Async-signal-safe, allocates nothing. Returns -1 when done,
/// else the capability whose drop failed (errno set): the caller must not
/// go on to exec.
int DropToDefaultCapabilities();

/// kDefaultCapabilities as a bit mask (bit N = capability N).
uint64_t DefaultCapabilityMask();

/// As DropToDefaultCapabilities(), keeping the capabilities of `keep`.
int DropToCapabilities(uint64_t keep);

/// The number of a capability by name ("NET_ADMIN", "CAP_NET_ADMIN",
/// any case), or -1 when there is none of that name. "ALL" is -2.
int CapabilityByName(const std::string& name);

/// A resource limit by podman's --ulimit name ("nofile", "nproc", "core",
/// ...; RLIMIT_NOFILE ...), or -1; and back ("?" for an unknown number).
int RlimitByName(const std::string& name);
const char* RlimitName(int resource);

/// Path of the kiln-sandbox helper: $KILN_SANDBOX_HELPER, else next to the
/// running executable, else <libexecdir>/kiln/kiln-sandbox, else the build
/// tree.
Expected<std::string> SandboxHelperPath();

}  // namespace kiln
