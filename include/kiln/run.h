// Running images as containers, without a daemon (docs/run.md).
//
// A container is a record in the store plus run-time state:
//
//   <store>/containers/<id>/config.json   what to run (resolved from the image
//                                         and the flags; names the image's
//                                         config digest, which keeps its blobs
//                                         alive through Prune())
//   <store>/containers/<id>/upper/, work/ the container's writable overlay layer
//   <store>/containers/<id>/ctr.log       stdout+stderr of a detached container
//   <store>/containers/lock               flock: creation, names, removal
//   <store>/volumes/<name>/{volume.json,_data/}  named volumes
//   <run>/containers/<id>/state.json      status, pids, exit code, times
//   <run>/containers/<id>/monitor.lock    flock held by whoever owns the
//                                         running container (the foreground
//                                         `kiln run` or the detached monitor)
//
// <run> is the run-time directory ($XDG_RUNTIME_DIR/kiln, else <store>/run;
// docs/cli.md "Store and run-time directories"). A container whose state
// says "running" but whose monitor.lock is free has lost its monitor
// (killed, or the machine rebooted): it is reported as exited (code -1) and
// can be removed.
//
// Ownership: the process that owns a running container holds monitor.lock
// for its whole life; the container's processes die with it (the sandbox
// helper has PDEATHSIG). Every change of state.json happens under
// <run>/containers/<id>/lock.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/error.h"
#include "kiln/sandbox.h"

namespace kiln {
class Store;
}

namespace kiln::run {

/// Where containers live.
struct Paths {
  std::string store_root;  ///< the store (--root)
  std::string run_root;    ///< run-time state (cli Context::RunRoot())
};

/// -p [[IP:][HOST]:]CTR[/udp]
struct PortMapping {
  std::string host_ip;  ///< "" = all addresses
  uint16_t host_port = 0;  ///< 0: a free port chosen when the container is created
  uint16_t container_port = 0;
  bool udp = false;
  /// Parses one -p mapping without ranges. kInvalidInput naming the text.
  static Expected<PortMapping> Parse(const std::string& text);
  /// Parses a -p flag as podman: `[[IP:][HOST]:]CTR[/tcp|/udp]` where HOST
  /// and CTR may be ranges of the same length (`8000-8010:8000-8010`; a CTR
  /// range alone or with an empty HOST gets free host ports); one mapping
  /// per port. kInvalidInput naming the text.
  static Expected<std::vector<PortMapping>> ParseFlag(const std::string& text);
  std::string str() const;
};

/// One -v / --mount request, parsed.
struct MountRequest {
  enum class Type { kBind, kVolume, kTmpfs };
  Type type = Type::kBind;
  std::string source;  ///< host path (bind), volume name (volume; "" = anonymous)
  std::string target;  ///< absolute path in the container
  bool read_only = false;
  /// -v ...:U: chown the source (recursively, not following symlinks) to
  /// the container's user and group when the container is created, as podman.
  bool chown = false;
  std::string tmpfs_options;  ///< "size=64m,mode=1777[,noexec]"
  /// -v SRC:DST[:ro|rw] (SRC starting with '/' or '.' is a host path, else a
  /// volume name) and DST alone (anonymous volume).
  static Expected<MountRequest> ParseVolumeFlag(const std::string& text);
  /// --mount type=bind|volume|tmpfs,source=...,target=...,ro[,tmpfs-size=..][,tmpfs-mode=..]
  static Expected<MountRequest> ParseMountFlag(const std::string& text);
  /// --tmpfs /path[:OPTIONS] as podman: OPTIONS a comma list of rw|ro,
  /// exec|noexec, size=, mode=, uid=, gid=, nr_inodes=, notmpcopyup
  /// (default rw,exec,nosuid,nodev as podman 4.3 mounts it; always nosuid,nodev).
  static Expected<MountRequest> ParseTmpfsFlag(const std::string& text);
};

/// Everything `kiln run` takes (docs/cli.md "kiln run").
struct RunOptions {
  std::string image;
  std::vector<std::string> command;  ///< overrides the image's Cmd
  std::optional<std::string> entrypoint;  ///< "" clears the image's Entrypoint
  std::string name;
  bool detach = false;
  bool interactive = false;
  bool tty = false;
  bool remove = false;  ///< --rm
  std::vector<std::string> env;        ///< -e K=V or K (taken from our environment)
  std::vector<std::string> env_files;  ///< --env-file
  std::string user;                    ///< -u USER[:GROUP]
  std::string workdir;                 ///< -w
  std::string hostname;
  bool read_only = false;
  /// --privileged: every capability of kiln's user namespace and no /proc
  /// masks (kiln or buildah nested in the container; docs/ci.md).
  bool privileged = false;
  /// --stop-signal: what `stop` sends first ("" = the image's StopSignal, else SIGTERM).
  std::string stop_signal;
  std::vector<MountRequest> mounts;
  std::vector<PortMapping> ports;
  NetworkMode network = NetworkMode::kPrivate;
  /// --network NAME[:alias=A,ip=IP] (repeatable), --ip, --network-alias:
  /// container networks (docs/network.md); network stays kPrivate.
  std::vector<std::string> networks;
  std::string ip;
  std::vector<std::string> network_aliases;
  /// --network container:NAME: share that running container's network
  /// namespace (one on a container network; src/run/network.cpp).
  std::string network_container;
  /// --add-host HOST:IP, --dns IP, --dns-search DOMAIN, --dns-option OPT:
  /// the container's /etc/hosts and /etc/resolv.conf (src/run/network.cpp).
  std::vector<std::string> add_hosts;
  std::vector<std::string> dns_servers;
  std::vector<std::string> dns_search;
  std::vector<std::string> dns_options;
  std::string pull = "missing";  ///< missing|always|never|newer
  /// -P: publish every port the image EXPOSEs on a free host port (those a
  /// -p already publishes for the same container port and protocol excepted).
  bool publish_all = false;
  /// --env-host: kiln's environment (without kiln's own KILN_* variables)
  /// under the image's Env, as podman.
  bool env_host = false;
  /// --init: accepted for podman compatibility; the sandbox always runs
  /// kiln's init as pid 1 (reaps zombies, forwards signals; docs/run.md).
  bool init = false;
  std::vector<std::string> labels;       ///< --label K=V (K alone: empty value)
  std::vector<std::string> label_files;  ///< --label-file (K=V lines)
  std::vector<std::string> annotations;  ///< --annotation K=V
  /// --cidfile: created exclusively before anything else (an existing file
  /// is refused, as podman), the container ID written once the record
  /// exists; removed again when the container could not be created.
  std::string cidfile;
  /// `kiln create`: make the record (ports chosen, volumes made, :U done)
  /// and return without starting it; `kiln start` runs it.
  bool create_only = false;
  std::optional<std::string> memory;  ///< --memory 512m
  std::optional<double> cpus;         ///< --cpus 1.5
  std::optional<int64_t> pids_limit;  ///< --pids-limit
  /// --secret NAME[,type=mount|env,target=,uid=,gid=,mode=] (docs/secrets.md):
  /// the stored secret's value at each start, never in the record.
  std::vector<std::string> secrets;
  /// --health-cmd CMD (a shell command; "none" disables the image's),
  /// --health-interval/-timeout/-start-period/-start-interval (Go durations),
  /// --health-retries, --no-healthcheck, --health-on-failure=none|kill|restart|stop.
  std::optional<std::string> health_cmd;
  std::optional<std::string> health_interval;
  std::optional<std::string> health_timeout;
  std::optional<std::string> health_start_period;
  std::optional<std::string> health_start_interval;
  std::optional<int> health_retries;
  bool no_healthcheck = false;
  std::string health_on_failure = "none";
  /// --restart no|always|on-failure[:N]|unless-stopped (docs/run.md).
  std::string restart = "no";
  /// A pod member (src/pod, docs/pods.md; set by pod::PrepareMember, which
  /// refuses what belongs to the pod): the pod's id, its infra container's
  /// id and the namespaces shared with it ("ipc", "uts"; "net" comes as
  /// network_container = the infra). `infra`: this is the pod's infra.
  std::string pod;
  std::string pod_infra;
  std::vector<std::string> pod_share;
  bool infra = false;
  /// The pod's --exit-policy: "stop" stops the infra when the last member
  /// exits (its monitor does, run/pod.cpp); "" or "continue" leaves it.
  std::string pod_exit_policy;
  /// Where the container runs in the foreground (null: the real sandbox,
  /// HostSandbox(); tests pass a fake). A detached container's monitor
  /// always uses the real one.
  Sandbox* sandbox = nullptr;
};

/// What a container is doing.
struct ContainerInfo {
  std::string id;       ///< 64 hex
  std::string name;
  std::string image;    ///< as the user named it
  std::string image_id; ///< config digest "sha256:..."
  std::vector<std::string> command;  ///< argv
  std::string created;  ///< RFC 3339
  std::string status;   ///< "created", "running", "exited"
  int exit_code = 0;
  std::string started_at;
  std::string finished_at;
  pid_t pid = 0;            ///< host pid of the container's init, when running
  pid_t monitor_pid = 0;
  /// "" (no health check), "starting", "healthy", "unhealthy"
  std::string health_status;
  /// Docker's State.Health object as JSON ("" without a health check).
  std::string health_json;
  int restart_count = 0;
  std::string restart_policy;  ///< "no", "always", "on-failure:3", ...
  std::vector<std::string> ports;  ///< PortMapping::str()
  std::vector<PortMapping> port_mappings;  ///< the same, parsed (`kiln port`)
  bool auto_remove = false;
  std::string log_path;
  std::string pod;  ///< the pod's id, "" when in none (docs/pods.md)
  bool infra = false;  ///< the pod's infra container
  std::string hostname;
  /// The full config.json (for inspect).
  std::string config_json;
};

/// `kiln run`: creates the container and runs it. In the foreground returns
/// the container's status (126/127 when the command cannot be executed;
/// 128+N for a signal); with detach prints nothing and returns 0 after
/// writing the id to *id_out. kInvalidInput for bad flags, kNotFound for a
/// missing image (with --pull=never), kSandbox when the container could not
/// be started.
Expected<int> Run(Store& store, const Paths& paths, const RunOptions& options, std::string* id_out);

/// The hidden `kiln __monitor ID` command: owns a detached container until
/// it exits. `ready_fd` (or -1) receives one byte once the container runs,
/// or an error line. `port_fds`: the host sockets of the container's -p
/// mappings, in their order, when `kiln run -d` bound them (inherited).
int MonitorMain(const Paths& paths, const std::string& id, int ready_fd, const std::vector<int>& port_fds = {});

/// Finds a container by full id, unique id prefix (>= 3 chars) or name.
Expected<std::string> ResolveContainer(const Paths& paths, const std::string& text);
/// Every container (with all=false only the running ones), newest first.
Expected<std::vector<ContainerInfo>> ListContainers(const Paths& paths, bool all);
Expected<ContainerInfo> InspectContainer(const Paths& paths, const std::string& id);
/// The bytes of the regular files in container `id`'s writable layer (its
/// upper directory): podman's RwSize, `ps --size`.
int64_t ContainerWritableSize(const Paths& paths, const std::string& id);

/// Sends the image's StopSignal (else SIGTERM), waits `timeout_seconds`,
/// then SIGKILL. A stopped container is fine.
Status StopContainer(const Paths& paths, const std::string& id, int timeout_seconds);
/// Sends `signal` to the container's main process. kFailed when not running.
Status KillContainer(const Paths& paths, const std::string& id, int signal);
/// Starts an existing, stopped container detached (a new monitor).
Status StartContainer(const Paths& paths, const std::string& id);
/// Waits for the container to stop; returns its exit code.
Expected<int> WaitContainer(const Paths& paths, const std::string& id);
/// `kiln wait --condition` (podman's): "exited"/"stopped" wait for the exit
/// and return its code; "created", "running", "healthy", "unhealthy" poll
/// every `interval_ms` until the container is in one of them and return -1
/// (as podman prints). Several conditions: whichever comes first. A health
/// condition on a container without a check is kInvalidInput; one that the
/// container can no longer reach (it exited for good) is kFailed naming the
/// exit code (podman waits forever). No conditions: WaitContainer().
Expected<int> WaitContainer(const Paths& paths, const std::string& id, const std::vector<std::string>& conditions,
                            int interval_ms = 250);
/// `kiln attach` (docs/run.md): the container's output from now on until it
/// stops, and, for a container created with -i, `in_fd` sent to its stdin
/// through its monitor (an end of input closes the container's stdin, as
/// podman). `detach_keys` (ParseDetachKeys; empty: none) typed on `in_fd`
/// end the attach and leave the container running. With a -t container and
/// a terminal on `in_fd`, that terminal is raw while attached. Returns the
/// container's exit code, or -1 after a detach.
struct AttachOptions {
  bool stdin = true;         ///< false: --no-stdin
  std::string detach_keys;   ///< the byte sequence
};
Expected<int> Attach(const Paths& paths, const std::string& id, const AttachOptions& options, int in_fd, int out_fd);
/// podman's --detach-keys: comma-separated "ctrl-X" (X one of a-z @ [ \\ ] ^ _)
/// or single characters, e.g. "ctrl-p,ctrl-q"; "" disables. kInvalidInput
/// names what is wrong.
Expected<std::string> ParseDetachKeys(const std::string& spec);
/// Matches a detach sequence in a byte stream: Feed() returns the bytes to
/// pass on (held-back prefix bytes come out once they stop matching) and
/// sets `detached` when the whole sequence was typed.
class DetachMatcher {
 public:
  explicit DetachMatcher(std::string keys) : keys_(std::move(keys)) {}
  std::string Feed(std::string_view data, bool* detached);

 private:
  std::string keys_;
  size_t matched_ = 0;
};

/// `kiln rename`: gives the container (running or not) a new, unused name,
/// under the containers lock; a `rename` event. kInvalidInput for a bad or
/// taken name. On a kiln network the new name resolves from its next start.
Status RenameContainer(const Paths& paths, const std::string& id, const std::string& new_name);
/// `kiln top`: the container's processes (its pid namespace, init included),
/// one row per process, the first row the headers, for podman's AIX
/// descriptors `descriptors` (default: user pid ppid pcpu etime tty time
/// args). kFailed when it is not running; kInvalidInput for an unknown
/// descriptor.
Expected<std::vector<std::vector<std::string>>> TopContainer(const Paths& paths, const std::string& id,
                                                             const std::vector<std::string>& descriptors);
/// Removes a stopped container (force: kills a running one first).
Status RemoveContainer(const Paths& paths, const std::string& id, bool force);
/// `kiln network connect|disconnect` (src/run/network.cpp, docs/network.md):
/// the record changes under the containers lock; a running container gets
/// (or loses) its interface and names at once, without a restart.
Status ConnectNetwork(const Store& store, const Paths& paths, const std::string& id, const std::string& network,
                      const std::vector<std::string>& aliases, const std::string& ip);
Status DisconnectNetwork(const Store& store, const Paths& paths, const std::string& id, const std::string& network);
/// `kiln build --network NAME` (docs/network.md "Builds"): what the engine
/// needs to put the build's network namespace on network NAME.
struct BuildNetwork {
  /// Attaches the namespace of `pid` (SharedNetwork's holder) to the
  /// network: an address no container and no other build uses (chosen under
  /// the containers lock; the build's entry in the holder's directory counts
  /// while its veth lives), a veth pair, the route and the DNS entry that
  /// lets its RUN steps resolve the network's containers.
  std::function<Status(pid_t)> attach;
  /// Its RUN steps' /etc/resolv.conf (the network's responder).
  std::string resolv_conf;
};
/// kNotFound for an unknown network (podman's wording).
Expected<BuildNetwork> PrepareBuildNetwork(const Store& store, const Paths& paths, const std::string& network);
/// Writes the container's log to `out_fd` (the last `tail` lines when >= 0);
/// with follow, keeps writing until the container stops.
Status WriteLogs(const Paths& paths, const std::string& id, bool follow, int64_t tail, int out_fd);
/// `kiln logs` options beyond follow/tail: -t prefixes each line with the
/// time it was written (RFC 3339, nanoseconds, as podman), --since/--until
/// keep the lines written in that window (Unix nanoseconds; 0: no bound).
/// The times come from ctr.log.ts, which the monitor writes since kiln 0.5;
/// the lines of an older container's log have none (printed without a time,
/// never filtered out).
struct LogOptions {
  bool follow = false;
  int64_t tail = -1;
  bool timestamps = false;
  int64_t since_ns = 0;
  int64_t until_ns = 0;
  /// Without -t/--since/--until only: set, it ends a follow (within 20 ms).
  const std::atomic<bool>* stop = nullptr;
  /// Without -t/--since/--until only: runs once the output there is now
  /// has been written (`attach` starts sending stdin then).
  std::function<void()> caught_up;
};
Status WriteLogs(const Paths& paths, const std::string& id, const LogOptions& options, int out_fd);
/// "2026-12-05T02:30:00.123456789Z": RFC 3339 with nanoseconds, trailing
/// zeros trimmed, local time (as Go's time.RFC3339Nano, which podman uses).
std::string FormatLogTime(int64_t unix_ns);

/// `kiln exec`: runs a process in a running container's namespaces (setns).
/// Must be called OUTSIDE kiln's user namespace, single-threaded. Returns
/// the process's status (126/127 as run).
struct ExecOptions {
  std::vector<std::string> command;
  std::vector<std::string> env;
  std::string user;
  std::string workdir;
  bool interactive = false;
  bool tty = false;
};
Expected<int> Exec(const Paths& paths, const std::string& id, const ExecOptions& options);

/// `kiln healthcheck run`: one probe of the container's health check now,
/// recorded as the monitor's are (and --health-on-failure applied). True
/// when the probe passed. kNotFound: no health check, or not running
/// (podman's messages, exit 125).
Expected<bool> RunHealthcheck(const Paths& paths, const std::string& id);
/// `kiln restart`: stops the container (timeout as stop) and starts it again.
Status RestartContainer(const Paths& paths, const std::string& id, int timeout_seconds);

/// Removes what a kiln killed while creating or removing a container left
/// behind: containers/.new-<id> and .rm-<id> directories nobody holds, and
/// <id> directories without a config.json. `kiln run` calls it; `kiln
/// prune` should too. Returns how many it removed.
Expected<int> RemoveContainerLitter(const Paths& paths);

/// The names of the containers whose record refers to the stored secret
/// `secret_id` (run --secret): `secret rm` refuses to remove it without -f.
std::vector<std::string> ContainersUsingSecret(const Paths& paths, const std::string& secret_id);

/// Parses a signal name or number ("TERM", "SIGTERM", "15"). kInvalidInput.
Expected<int> ParseSignal(const std::string& text);

// ------------------------------------------------------------------ volumes

struct VolumeInfo {
  std::string name;
  std::string mountpoint;  ///< <store>/volumes/<name>/_data
  std::string created;
  std::vector<std::string> used_by;  ///< container ids
};
/// Names: [A-Za-z0-9][A-Za-z0-9_.-]*, at most 128. Existing: kInvalidInput
/// unless ignore_existing.
Expected<VolumeInfo> CreateVolume(const Paths& paths, const std::string& name, bool ignore_existing);
Expected<std::vector<VolumeInfo>> ListVolumes(const Paths& paths);
Expected<VolumeInfo> InspectVolume(const Paths& paths, const std::string& name);
/// kFailed when a container uses it (unless force).
Status RemoveVolume(const Paths& paths, const std::string& name, bool force);
/// Removes every volume no container uses; returns their names.
Expected<std::vector<std::string>> PruneVolumes(const Paths& paths);

}  // namespace kiln::run
