// kiln run: the container record from the Config (create.cpp), then either
// run it in this process (foreground, Supervise) or hand it to a detached
// monitor (monitor.cpp, `kiln __monitor`), which owns it until it exits.
#include <dirent.h>
#include <ftw.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>

#include "kiln/acquire.h"
#include "kiln/cancel.h"
#include "kiln/fs.h"
#include "kiln/process.h"
#include "kiln/log.h"
#include "kiln/oci.h"
#include "kiln/rootfs.h"
#include "kiln/run.h"
#include "kiln/store.h"
#include "kiln/transport.h"
#include "kiln/network.h"
#include "run/internal.h"
#include "run/portfwd.h"

extern char** environ;

namespace kiln::run {

using namespace internal;

namespace {

// ------------------------------------------------------------------ running

std::atomic<pid_t> g_init_pid{0};
// A signal that arrived before the container ran: the run is cancelled
// (the record is not made, or the container is stopped as soon as it
// exists) instead of kiln dying half-way through making the record.
std::atomic<int> g_cancel_signal{0};

void ForwardToContainer(int sig) {
  pid_t p = g_init_pid.load();
  if (p > 0) {
    ::kill(p, sig);
  } else {
    g_cancel_signal = sig;
    if (sig == SIGINT || sig == SIGTERM)
      kiln::RequestCancel(sig);  // main(): "kiln: run cancelled by SIGxxx", 130/143 (kiln/cancel.h)
  }
}

void InstallForwarders() { InstallSignalHandler(ForwardToContainer); }

Error Cancelled() {
  return Error(Errc::kCancelled, "run cancelled by signal " + std::to_string(g_cancel_signal.load()) +
                                     " before the container started");
}

}  // namespace

namespace internal {

PremadeNetwork::PremadeNetwork() {
  thread_ = std::thread([this] { path_.emplace(net_.Path()); });
}

PremadeNetwork::~PremadeNetwork() {
  if (thread_.joinable())
    thread_.join();
}

bool PremadeNetwork::Wanted(const Config& c, const Sandbox* sandbox) {
  return sandbox == nullptr && c.network == NetworkMode::kPrivate && c.networks.empty() &&
         c.network_container.empty();
}

Expected<std::string> PremadeNetwork::Wait() {
  if (thread_.joinable())
    thread_.join();
  return *path_;
}

/// Runs the container in this process, which owns it (monitor.lock) until
/// it exits. stdio: the given fds (-1: /dev/null). Returns its status.
/// `fwd`: the host sockets of -p when the caller bound them already (else
/// they are bound here, before the container starts).
Expected<int> Supervise(const Paths& paths, const Config& c, int in, int out, int err, bool tty,
                        int tty_in, int tty_out, int* ready_fd, const std::string& cgroup,
                        std::unique_ptr<PortForwarder> fwd, Sandbox* sandbox, bool lock_held,
                        PremadeNetwork* premade) {
  // Only a foreground `kiln run` passes a network made ahead. A monitor
  // (run -d, start, a pod's infra) lets the sandbox attach the network as
  // before: with one made at the start of Supervise, a pod's infra was once
  // seen exited right after `pod start` (session 10), not yet understood.
  if (!PremadeNetwork::Wanted(c, sandbox))
    premade = nullptr;  // made for nothing (no usable helper after all): unused
  std::string rdir = RunDir(paths, c.id);
  KILN_TRY(MakeDirs(rdir, 0700));
  Expected<UniqueFd> lock = UniqueFd();
  if (!lock_held)  // the monitor holds it across restarts (monitor.cpp)
    lock = LockFile(rdir + "/monitor.lock", LOCK_EX | LOCK_NB);
  if (!lock)
    return Error(Errc::kFailed, "container " + c.name + " is already running");
  if (!cgroup.empty()) {
    UniqueFd procs(::open((cgroup + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
    if (!procs || !WriteAll(procs.get(), std::to_string(::getpid())))
      return Error(Errc::kUnsupported, "move into cgroup " + cgroup + ": " + std::strerror(errno));
  }
  if (!fwd && !c.ports.empty()) {
    KILN_ASSIGN_OR_RETURN(fwd, PortForwarder::Bind(c.ports));
  }
  // A fresh work dir: overlay refuses one left over from a crash.
  std::string cdir = ContainerDir(paths, c.id);
  (void)RemoveAll(cdir + "/work");
  KILN_TRY(MakeDirs(cdir + "/upper", 0755));
  KILN_TRY(MakeDirs(cdir + "/work", 0700));

  SandboxSpec spec = SpecFromConfig(paths, c);
  KILN_TRY(ResolveSecrets(paths, c, spec.env, &spec.mounts));
  KILN_TRY(AddContainerEnv(paths, c, spec.mounts));
  spec.stdin_fd = tty ? -1 : in;
  spec.stdout_fd = tty ? -1 : out;
  spec.stderr_fd = tty ? -1 : err;
  spec.tty = tty;
  // -t: the helper makes the pty in the container's devpts and hands us the
  // master before the process starts; a thread relays it until we stop it.
  UniqueFd stop_r;
  UniqueFd stop_w;
  std::thread relay;
  std::optional<RawMode> raw;
  if (tty) {
    int stop[2];
    if (::pipe2(stop, O_CLOEXEC) != 0)
      return Error::FromErrno("pipe");
    stop_r.reset(stop[0]);
    stop_w.reset(stop[1]);
    spec.on_tty = [&](UniqueFd master) {
      SetWindowSize(master.get(), tty_in >= 0 ? tty_in : tty_out);
      raw.emplace(tty_in);
      relay = std::thread([&, m = std::move(master)] { RelayPty(m.get(), tty_in, tty_out, stop_r.get()); });
    };
  }
  std::thread secret_sweeper;
  HealthChecker health;
  std::string fwd_error;
  spec.on_started = [&](pid_t pid) {
    if (fwd) {
      if (Status st = fwd->Start(pid); !st) {
        fwd_error = st.error().message();
        ::kill(pid, SIGKILL);
        return;
      }
    }
    g_init_pid = pid;
    if (HasMountSecrets(c))
      secret_sweeper = std::thread([&paths, &c, pid] { RemoveSecretFilesOnceMounted(paths, c.id, pid); });
    if (int sig = g_cancel_signal.load())
      ::kill(pid, sig);  // arrived before the container existed
    bool stopped = false;
    (void)UpdateState(paths, c.id, [&](State& s) {
      s.status = "running";
      s.pid = pid;
      s.monitor_pid = ::getpid();
      s.exit_code = 0;
      s.started_at = NowRfc3339();
      s.finished_at.clear();
      s.error.clear();
      stopped = s.stopped_by_user;
    });
    if (stopped)
      ::kill(pid, SIGKILL);  // a kiln stop came while the monitor was restarting it
    EmitContainerEvent(paths, c, "start");
    health.Start(paths, c);
    if (*ready_fd >= 0) {
      (void)WriteAll(*ready_fd, "R\n");
      ::close(*ready_fd);
      *ready_fd = -1;
    }
  };
  InstallForwarders();

  std::optional<Error> network_error;
  if (premade && spec.network == NetworkMode::kPrivate && spec.join_netns.empty() && !spec.attach_network) {
    auto netns = premade->Wait();
    if (netns)
      spec.join_netns = *netns;
    else
      network_error = std::move(netns).error().WithContext("sandbox: the container's network");
  }
  Expected<SandboxResult> result =
      network_error ? Expected<SandboxResult>(std::move(*network_error)) : SandboxOrHost(sandbox).Run(spec);
  if (relay.joinable()) {
    (void)!::write(stop_w.get(), "x", 1);
    relay.join();
  }
  raw.reset();  // the user's terminal back to normal
  health.Stop();
  if (secret_sweeper.joinable())
    secret_sweeper.join();
  RemoveSecretFiles(paths, c.id);
  g_init_pid = 0;
  if (fwd)
    fwd->Stop();  // the host ports are free before the state says exited
  if (!fwd_error.empty())
    result = Error(Errc::kSandbox, fwd_error);
  if (!result) {
    (void)UpdateState(paths, c.id, [&](State& s) {
      s.status = "exited";
      s.pid = 0;
      s.exit_code = 125;
      s.finished_at = NowRfc3339();
      s.error = result.error().message();
    }, !c.auto_remove);
    if (*ready_fd >= 0) {
      (void)WriteAll(*ready_fd, "E" + result.error().message() + "\n");
      ::close(*ready_fd);
      *ready_fd = -1;
    }
    return std::move(result).error();
  }
  int status = result->status();
  (void)UpdateState(paths, c.id, [&](State& s) {
    s.status = "exited";
    s.pid = 0;
    s.exit_code = status;
    s.finished_at = NowRfc3339();
    s.error = result->message;
  }, !c.auto_remove);
  EmitContainerEvent(paths, c, "died", status);
  if (!result->message.empty()) {
    std::string line = "kiln: error: " + result->message + "\n";
    (void)!::write(err >= 0 && !tty ? err : 2, line.data(), line.size());
  }
  if (*ready_fd >= 0) {  // exited before on_started? (should not happen)
    (void)WriteAll(*ready_fd, "R\n");
    ::close(*ready_fd);
    *ready_fd = -1;
  }
  if (!cgroup.empty())
    ::rmdir(cgroup.c_str());  // fails while processes remain: fine
  return status;
}

}  // namespace internal

Expected<int> Run(Store& store, const Paths& paths, const RunOptions& o, std::string* id_out) {
  if (!o.name.empty() && !ValidName(o.name))
    return Error(Errc::kInvalidInput, "invalid container name " + o.name +
                                          ": use [a-zA-Z0-9][a-zA-Z0-9_.-]*");
  if (o.pull != "missing" && o.pull != "always" && o.pull != "never" && o.pull != "newer")
    return Error(Errc::kInvalidInput, "invalid --pull " + o.pull + ": use missing, always, never or newer");
  // --cidfile: claimed first, exclusively (podman's words when it exists);
  // removed again unless the container is made.
  struct CidFile {
    std::string path;
    UniqueFd fd;
    bool keep = false;
    ~CidFile() {
      if (fd && !keep)
        ::unlink(path.c_str());
    }
  } cidfile;
  if (!o.cidfile.empty()) {
    cidfile.path = o.cidfile;
    cidfile.fd.reset(::open(o.cidfile.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!cidfile.fd && errno == EEXIST)
      return Error(Errc::kInvalidInput, "container id file exists. Ensure another container is not using it or delete " +
                                            o.cidfile);
    if (!cidfile.fd)
      return Error::FromErrno("--cidfile " + o.cidfile);
  }
  KILN_ASSIGN_OR_RETURN(std::string id, RandomHex(64));
  std::string cgroup;
  if (o.memory || o.cpus || o.pids_limit) {
    KILN_ASSIGN_OR_RETURN(cgroup, PrepareCgroup(o, id));
  }
  // The default network's namespace and helper, made while the image is
  // read and the record written (a detached container's monitor makes its
  // own). Destroyed (the helper stopped) on every way out of Run.
  std::unique_ptr<PremadeNetwork> network;
  if (!o.detach && !o.create_only && o.sandbox == nullptr && o.network == NetworkMode::kPrivate &&
      o.networks.empty() && o.network_container.empty() && !NetworkHelper().empty())
    network = std::make_unique<PremadeNetwork>();
  KILN_ASSIGN_OR_RETURN(StoredImage image, GetImage(store, o));
  // -P: every port the image EXPOSEs that no -p publishes, on a free host
  // port ("80/tcp", "53/udp"; a bare "80" is tcp).
  std::vector<PortMapping> ports = o.ports;
  if (o.publish_all) {
    for (const auto& e : image.config.config.exposed_ports) {
      auto parsed = PortMapping::Parse(e);
      if (!parsed) {
        LogWarn("image " + o.image + ": ignoring invalid ExposedPorts entry " + e);
        continue;
      }
      bool published = false;
      for (const auto& p : ports)
        published = published || (p.container_port == parsed->container_port && p.udp == parsed->udp);
      if (!published)
        ports.push_back(*parsed);
    }
  }
  if (!ports.empty() && o.network != NetworkMode::kPrivate)
    return Error(Errc::kInvalidInput, std::string(o.ports.empty() ? "-P/--publish-all" : "-p/--publish") +
                                          " needs --network private");
  // -p: the host sockets first, so that a busy port fails before anything
  // exists. A detached container's monitor inherits them (SpawnMonitor):
  // the ports are held from here on, never free for another process. A
  // host port 0 (-p CTR, -P) is the one the system chose, recorded as such:
  // the container keeps it when started again.
  std::unique_ptr<PortForwarder> fwd;
  if (!ports.empty()) {
    KILN_ASSIGN_OR_RETURN(fwd, PortForwarder::Bind(ports));
    ports = fwd->mappings();
  }

  std::string cdir = ContainerDir(paths, id);
  // The record is made in a staging directory, flock()ed while it is, and
  // renamed into place with its config.json: containers/<id> exists only
  // complete. A kiln killed meanwhile leaves containers/.new-<id> with a
  // free lock, which `kiln prune` removes (StagingLitter()).
  std::string staging = ContainersRoot(paths) + "/" + kStagingPrefix + id;
  // From here a signal cancels the run cleanly (and is forwarded to the
  // container once it exists) rather than killing kiln half-way.
  InstallForwarders();
  struct Discard {
    std::string dir;
    ~Discard() {
      if (!dir.empty())
        (void)RemoveAll(dir);
    }
  } discard;
  UniqueFd staging_lock;
  {
    // Made and locked under the containers lock: the sweep of unheld
    // staging directories (under the same lock) never sees it unlocked.
    KILN_ASSIGN_OR_RETURN(UniqueFd lock, LockFile(ContainersRoot(paths) + "/lock", LOCK_EX));
    if (::mkdir(staging.c_str(), 0700) != 0)
      return Error::FromErrno("mkdir " + staging);
    discard.dir = staging;
    KILN_ASSIGN_OR_RETURN(staging_lock, OpenFile(staging, O_RDONLY | O_DIRECTORY));
    if (::flock(staging_lock.get(), LOCK_EX) != 0)
      return Error::FromErrno("lock " + staging);
  }
  // The image's content (its /etc/passwd may be a FIFO) is read without the
  // containers lock: a hostile image cannot hold up other runs.
  KILN_ASSIGN_OR_RETURN(Config c, MakeConfig(store, paths, o, image, id, staging));
  c.ports = ports;
  ApplyPodOptions(o, c);
  if (g_cancel_signal)
    return Cancelled();
  {
    // Names are unique: check and claim under the containers lock.
    KILN_ASSIGN_OR_RETURN(UniqueFd lock, LockFile(ContainersRoot(paths) + "/lock", LOCK_EX));
    (void)RemoveContainerLitter(paths);
    if (!o.name.empty()) {
      auto existing = ResolveContainer(paths, o.name);
      if (existing)
        return Error(Errc::kInvalidInput, "the container name " + o.name + " is already in use by " +
                                              existing->substr(0, 12) + ": remove it or choose another name");
    }
    KILN_TRY(AddMounts(paths, o, image, staging, c));
    KILN_TRY(AssignNetworks(store, paths, o, c));  // addresses: unique under this lock
    (void)RemoveAll(staging + "/tmp");
    KILN_TRY(WriteConfigAt(staging, c));
    // The container keeps its image (and the layers it runs on) through
    // prune; the root is valid once config.json is in place and goes stale
    // with it (docs/store.md).
    GcRoot root{.blobs = {}, .layers = {}, .image_ids = {image.id()}, .owner = "containers/" + id + "/config.json"};
    for (const auto& l : c.layers)
      if (auto d = Digest::Parse(l))
        root.layers.push_back(*d);
    KILN_TRY(store.PutRoot("containers", id, root));
    if (::rename(staging.c_str(), cdir.c_str()) != 0)
      return Error::FromErrno("commit container record " + cdir);
    discard.dir.clear();
    staging_lock.reset();  // RemoveRecords() locks the record itself
  }
  EmitContainerEvent(paths, c, "create");
  if (id_out)
    *id_out = id;
  if (cidfile.fd) {
    if (!WriteAll(cidfile.fd.get(), id)) {
      auto lock = LockFile(ContainersRoot(paths) + "/lock", LOCK_EX);
      (void)RemoveRecords(paths, c);
      return Error::FromErrno("write --cidfile " + o.cidfile);
    }
    cidfile.keep = true;
  }
  if (o.create_only)
    return 0;  // the host ports are free again until `kiln start`

  if (o.detach) {
    if (g_cancel_signal) {
      auto lock = LockFile(ContainersRoot(paths) + "/lock", LOCK_EX);
      (void)RemoveRecords(paths, c);
      return Cancelled();
    }
    // The monitor inherits the host sockets bound above; ours close once
    // it runs the container (or failed to).
    Status st = SpawnMonitor(paths, id, fwd ? fwd->fds() : std::vector<int>{});
    fwd.reset();
    if (!st) {
      if (o.remove)
        (void)RemoveRecords(paths, c);
      return std::move(st).error();
    }
    return 0;
  }
  bool tty = o.tty;
  int in = o.interactive ? 0 : -1;
  int no_ready = -1;
  auto status = Supervise(paths, c, in, 1, 2, tty, o.interactive ? 0 : -1, 1, &no_ready, cgroup, std::move(fwd),
                          o.sandbox, false, network.get());
  network.reset();  // the helper stopped before the record goes
  DetachNetworks(paths, c);
  if (o.remove) {
    // Gone before the caller has the status; the trees themselves are
    // removed after (RemoveRecords, kiln/deferred.h).
    auto lock = LockFile(ContainersRoot(paths) + "/lock", LOCK_EX);
    (void)RemoveRecords(paths, c, /*after_answer=*/true);
  }
  return status;

}

}  // namespace kiln::run
