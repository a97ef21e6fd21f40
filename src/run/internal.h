// Internal to src/run: the on-disk records of a container (run.h has the
// layout), locks, and the pty relay.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/error.h"
#include "kiln/lock.h"
#include "kiln/random.h"
#include "kiln/rootfs.h"
#include "kiln/run.h"
#include "kiln/sandbox.h"
#include "kiln/store.h"
#include "kiln/unique_fd.h"

namespace kiln::run::internal {

/// containers/<prefix><id>: a record being made (renamed to <id> once
/// complete) or being removed (renamed from <id> first). flock()ed by the
/// process doing it; RemoveContainerLitter() removes those nobody holds.
inline constexpr char kStagingPrefix[] = ".new-";
inline constexpr char kRemovingPrefix[] = ".rm-";

std::string ContainersRoot(const Paths& paths);
std::string ContainerDir(const Paths& paths, const std::string& id);
std::string RunDir(const Paths& paths, const std::string& id);
std::string VolumesRoot(const Paths& paths);
std::string VolumeDataDir(const Paths& paths, const std::string& name);

/// True while the owner of the running container holds monitor.lock.
bool MonitorAlive(const Paths& paths, const std::string& id);

/// config.json: what to run, resolved once at creation.
/// A container's place on a network (docs/network.md): what attaching it
/// needs, kept in its record so that neither start nor the monitor reads the
/// network's record again.
struct ContainerNetwork {
  std::string name;
  std::string id;
  std::string ip;
  std::string subnet;   ///< "10.89.0.0/24"
  std::string gateway;
  std::string bridge;   ///< in the holder's namespace
  std::string interface;       ///< eth0, eth1, ... in the container
  std::string host_interface;  ///< the veth end on the bridge
  std::vector<std::string> aliases;
  bool internal = false;
  bool dns = false;  ///< the network's DNS responder answers for it
  std::vector<std::string> resolvers;  ///< --dns: where the responder forwards its queries
};

/// run --secret NAME[,type=mount|env,target=,uid=,gid=,mode=] (secrets.cpp):
/// a reference to a stored secret, resolved to its value at each start.
struct SecretRef {
  std::string name;
  std::string id;      ///< the stored secret's ID (a --replace keeps it)
  bool env = false;    ///< type=env: an environment variable named `target`
  std::string target;  ///< mount: absolute path (default /run/secrets/NAME); env: the variable
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t mode = 0444;
};

/// The health check a container runs (lifecycle.cpp, health.cpp): the
/// image's HEALTHCHECK overridden by --health-* flags. Durations in ns.
struct Health {
  std::vector<std::string> test;  ///< {"CMD-SHELL", cmd} or {"CMD", argv...}; empty: none
  int64_t interval = 30'000'000'000;
  int64_t timeout = 30'000'000'000;
  int64_t start_period = 0;
  int64_t start_interval = 5'000'000'000;
  int retries = 3;
  std::string on_failure = "none";  ///< none|kill|restart|stop
};

/// --restart no|always|on-failure[:N]|unless-stopped
struct RestartPolicy {
  std::string name = "no";
  int max_retries = 0;  ///< on-failure:N (0: unlimited)
};

struct Config {
  std::string id;
  std::string name;
  std::string image;
  std::string image_id;
  std::vector<std::string> layers;  ///< "sha256:<diff_id>" (keeps them referenced)
  std::string created;
  bool auto_remove = false;
  bool tty = false;
  bool interactive = false;
  std::vector<std::string> lower_dirs;  ///< top first
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd = "/";
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;
  std::string hostname;
  bool read_only = false;
  bool privileged = false;  // --privileged: all capabilities, no /proc masks
  NetworkMode network = NetworkMode::kPrivate;
  std::vector<MountRequest> mounts;  ///< volume sources are volume names
  std::vector<PortMapping> ports;
  std::map<std::string, std::string> labels;       ///< the image's, then --label-file, --label
  std::map<std::string, std::string> annotations;  ///< --annotation
  bool init = false;                               ///< --init (recorded; kiln's init is always pid 1)
  int stop_signal = 15;
  std::vector<std::string> anonymous_volumes;
  std::string etc_hosts;
  std::string etc_resolv_conf;
  std::string etc_hostname;
  std::vector<ContainerNetwork> networks;  ///< --network NAME (network.cpp)
  std::vector<SecretRef> secrets;          ///< --secret (never a value)
  Health health;
  RestartPolicy restart;
  std::string network_container;  ///< --network container:ID: its id (network.cpp)
  std::string pod;                   ///< pod.cpp: the pod's id
  std::string pod_infra;             ///< the infra container whose ipc/uts it joins
  std::vector<std::string> pod_share;
  bool infra = false;
  std::string pod_exit_policy;  ///< "stop": the last member to exit stops the infra
  std::string json;  ///< as read
};
std::string ConfigToJson(const Config& c);
// Container networks (network.cpp): the record's "networks" object, the
// addresses (under the containers lock), the sandbox's attach hook.
void NetworksToJson(const Config& c, nlohmann::json& j);
void NetworksFromJson(const nlohmann::json& j, Config& c);
Status AssignNetworks(const Store& store, const Paths& paths, const RunOptions& o, Config& c);
void AttachNetworksHook(const Paths& paths, const Config& c, SandboxSpec& spec);
/// After the container's end: its names leave the DNS responder.
void DetachNetworks(const Paths& paths, const Config& c);
// Pod membership (pod.cpp, docs/pods.md): the record's "pod" object, the
// infra's IPC/UTS namespaces joined at start, the infra started first.
void PodToJson(const Config& c, nlohmann::json& j);
void PodFromJson(const nlohmann::json& j, Config& c);
void ApplyPodOptions(const RunOptions& o, Config& c);
void JoinPodNamespacesHook(const Paths& paths, const Config& c, SandboxSpec& spec);
Status StartPodInfra(const Paths& paths, const std::string& id);
/// A member of a pod with --exit-policy stop has exited for good: when no
/// other member runs, the infra is stopped (the monitor calls this).
void StopPodAfterLastMember(const Paths& paths, const Config& c);
// Lifecycle parts of the record (lifecycle.cpp): "secrets", "health",
// "restart"; and the flags that set them.
void LifecycleToJson(const Config& c, nlohmann::json& j);
void LifecycleFromJson(const nlohmann::json& j, Config& c);
/// --secret, --health-*, --restart (and the image's HEALTHCHECK) into `c`.
Status ApplyLifecycleOptions(const Paths& paths, const RunOptions& o, const ContainerConfig& image_config, Config& c);
/// The values of `c`'s secrets: env ones appended to `env`; mount ones
/// written (mode, uid, gid) under <run>/containers/<id>/secrets and added to
/// `mounts` read-only. kNotFound when a secret was removed (secret rm -f).
Status ResolveSecrets(const Paths& paths, const Config& c, std::vector<std::string>& env,
                      std::vector<SandboxMount>* mounts);
/// podman's /run/.containerenv (engine, name, id, image, imageid,
/// rootless): written to <run>/containers/<id>/containerenv and added to
/// `mounts` read-only.
Status AddContainerEnv(const Paths& paths, const Config& c, std::vector<SandboxMount>& mounts);
/// Removes the files ResolveSecrets wrote.
void RemoveSecretFiles(const Paths& paths, const std::string& id);
bool HasMountSecrets(const Config& c);
/// Removes them as soon as the container's process exists (sandbox init
/// `init_pid` forks it once every mount is made; the bind mounts keep the
/// files): the values stay on disk only while the container starts.
void RemoveSecretFilesOnceMounted(const Paths& paths, const std::string& id, pid_t init_pid);
Expected<Config> ReadConfig(const Paths& paths, const std::string& id);
Status WriteConfig(const Paths& paths, const Config& c);
/// The same into `dir`/config.json (a staging directory).
Status WriteConfigAt(const std::string& dir, const Config& c);

/// state.json
struct State {
  std::string status = "created";
  pid_t pid = 0;
  pid_t monitor_pid = 0;
  int exit_code = 0;
  std::string started_at;
  std::string finished_at;
  std::string error;
  /// kiln stop (or --health-on-failure=stop): the restart policy does not
  /// undo it; cleared by start/restart.
  bool stopped_by_user = false;
  /// Restarts by the policy since the last start (inspect's RestartCount).
  int restart_count = 0;
};
/// A missing file is State{} ("created").
State ReadState(const Paths& paths, const std::string& id);
/// Replaces state.json atomically, under the container's state lock; a
/// final state is also copied next to the record (unless !persist: a --rm
/// container's record is removed right after).
Status UpdateState(const Paths& paths, const std::string& id, const std::function<void(State&)>& change,
                   bool persist = true);

/// The effective state: "running" with a dead monitor reads "exited" (-1).
State EffectiveState(const Paths& paths, const std::string& id);

std::string NowRfc3339();

/// The SandboxSpec for a container (without stdio).
SandboxSpec SpecFromConfig(const Paths& paths, const Config& c);

/// Removes every trace of a container (it must not be running). With
/// `after_answer`, the container is gone at once (its record and run-time
/// directory renamed to .rm-<id>, its anonymous volumes removed, the event
/// sent) and the trees themselves are removed after kiln's caller has its
/// answer (kiln/deferred.h); a kiln killed before that leaves .rm-<id>
/// litter, which RemoveContainerLitter() sweeps.
Status RemoveRecords(const Paths& paths, const Config& c, bool after_answer = false);

// ------------------------------------------------------------------ create (create.cpp)

/// A container name as podman accepts it: [a-zA-Z0-9][a-zA-Z0-9_.-]*.
bool ValidName(const std::string& n);
/// The image of `o`, pulled as --pull says.
Expected<StoredImage> GetImage(Store& store, const RunOptions& o);
/// --memory/--cpus/--pids-limit: a writable, delegated cgroup v2 with the
/// controllers, or a clear refusal. Returns the new cgroup directory.
Expected<std::string> PrepareCgroup(const RunOptions& o, const std::string& id);
/// Everything from the image and the flags, resolved into a Config (nothing
/// created but `staging`/empty for an image without layers; mounts are
/// AddMounts()'). Reads the image's content: called without the containers lock.
Expected<Config> MakeConfig(Store& store, const Paths& paths, const RunOptions& o, const StoredImage& image,
                            const std::string& id, const std::string& staging);
/// The mounts of `c`: the flags', then an anonymous volume for every image
/// VOLUME not covered by one. Under the containers lock.
Status AddMounts(const Paths& paths, const RunOptions& o, const StoredImage& image, const std::string& staging,
                 Config& c);

// ------------------------------------------------------------------ running (run.cpp, monitor.cpp)

class PortForwarder;

/// The default network (`--network private`) of one container, made ahead:
/// a network namespace held by a child of kiln with slirp4netns/pasta
/// attached (kiln/sandbox.h SharedNetwork), started on a thread while the
/// record is written and the sandbox helper starts, so that the helper's
/// start-up (~5-25 ms) is off the critical path; the sandbox joins it
/// (SandboxSpec::join_netns) instead of making its own. A failure fails
/// the start (never another network). Stops the helper when destroyed.
class PremadeNetwork {
 public:
  PremadeNetwork();
  ~PremadeNetwork();
  PremadeNetwork(const PremadeNetwork&) = delete;
  PremadeNetwork& operator=(const PremadeNetwork&) = delete;
  /// Whether `c` runs on the default network with a namespace of its own
  /// (not a kiln network, container:ID or a test's sandbox).
  static bool Wanted(const Config& c, const Sandbox* sandbox);
  /// The namespace's path (/proc/PID/ns/net), once made.
  Expected<std::string> Wait();

 private:
  SharedNetwork net_;
  std::thread thread_;
  std::optional<Expected<std::string>> path_;
};

/// Runs the container in this process, which owns it (monitor.lock) until
/// it exits. stdio: the given fds (-1: /dev/null). Returns its status.
/// `fwd`: the host sockets of -p when the caller bound them already (else
/// they are bound here, before the container starts).
Expected<int> Supervise(const Paths& paths, const Config& c, int in, int out, int err, bool tty,
                        int tty_in, int tty_out, int* ready_fd, const std::string& cgroup,
                        std::unique_ptr<PortForwarder> fwd = nullptr, Sandbox* sandbox = nullptr,
                        bool lock_held = false, PremadeNetwork* premade = nullptr);
/// The health checks of a running container (health.cpp): a thread that
/// probes at the intervals, records State.Health, emits health_status
/// events and acts on --health-on-failure. `paths` and `c` must outlive it.
class HealthChecker {
 public:
  HealthChecker() = default;
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;
  /// Resets the health to "starting" and starts probing (nothing without a test).
  void Start(const Paths& paths, const Config& c);
  /// Stops probing (kills a probe in flight) and joins the thread.
  void Stop();

 private:
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<pid_t> probe_pid_{0};
};

/// USER `user` by the /etc/passwd and /etc/group of `layer_dirs` (top
/// first, docs/security.md I6). A read error names `whose` ("image X",
/// "container Y"), a resolve error `user_from` (the flag or the image's
/// User).
Expected<rootfs::ResolvedUser> ResolveUserInLayers(const std::vector<std::string>& layer_dirs, const std::string& user,
                                                   const std::string& whose, const std::string& user_from);

/// Forwards the signals a user sends to kiln (INT, TERM, HUP, QUIT, USR1,
/// USR2) to `handler`, SA_RESTART.
void InstallSignalHandler(void (*handler)(int));

/// An event about container `c` (create, start, died, stop, remove,
/// restart, health_status with `health_status`).
void EmitContainerEvent(const Paths& paths, const Config& c, const std::string& status,
                        std::optional<int> exit_code = std::nullopt, const std::string& health_status = "");

/// Starts `kiln __monitor` for `id`, detached (own session, stdio on
/// /dev/null), and waits until the container runs. `port_fds`: the host
/// sockets of -p, bound by the caller; the monitor inherits them (as fds 4,
/// 5, ...) and serves them, so the ports are never free in between.
Status SpawnMonitor(const Paths& paths, const std::string& id, const std::vector<int>& port_fds = {});

// ------------------------------------------------------------------ attach (attach.cpp)

/// The monitor's side of `kiln attach` for a container created with -i: the
/// pipe the container's stdin reads (kept open while nobody is attached, as
/// podman's conmon does) and the socket <run dir>/attach.sock through which
/// attach clients write into it. Lives as long as the monitor.
class StdinServer {  // not copyable: owns fds and a thread
 public:
  ~StdinServer();
  /// Makes the pipe and the socket and starts serving. On failure the
  /// container's stdin is /dev/null (read_fd() -1), as before.
  Status Start(const Paths& paths, const std::string& id);
  /// The container's stdin; -1 when not started.
  int read_fd() const { return read_.get(); }

 private:
  void Serve();
  UniqueFd read_;
  std::shared_ptr<UniqueFd> write_;  // closed at an attach client's end of input
  UniqueFd listen_;
  std::string socket_path_;
  std::thread thread_;
  UniqueFd stop_r_, stop_w_;
};

// ------------------------------------------------------------------ tty

/// A pseudo-terminal pair (master, slave), the slave sized like `size_from`
/// when that is a terminal.
struct Pty {
  UniqueFd master;
  UniqueFd slave;
};
Expected<Pty> OpenPty(int size_from);
/// `kiln exec -t`: a pseudo-terminal of the devpts at /dev/pts of the
/// current root (after joining the container's mount namespace), opened
/// without following links the container could have planted; the slave via
/// TIOCGPTPEER. Sized like `size_from` when that is a terminal.
Expected<Pty> OpenPtyInRoot(int size_from);
/// Copies the window size of `from` (a terminal) to `master`, else 24x80.
void SetWindowSize(int master, int from);

/// Puts the terminal on `fd` in raw mode until destroyed (nothing when `fd`
/// is not a terminal).
class RawMode {
 public:
  explicit RawMode(int fd);
  ~RawMode();
  RawMode(const RawMode&) = delete;
  RawMode& operator=(const RawMode&) = delete;

 private:
  int fd_ = -1;
  bool active_ = false;
  unsigned char saved_[256];
};

/// Relays in <-> master and master -> out until `stop_fd` becomes readable
/// and the master has no more output; copies the window size of `in` on
/// SIGWINCH (the caller blocks nothing: a self-pipe is used).
void RelayPty(int master, int in, int out, int stop_fd);

}  // namespace kiln::run::internal
