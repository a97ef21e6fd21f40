// kiln run/create, first half: from an image and the flags to a container's
// Config (MakeConfig) and its mounts (AddMounts); the cgroup of
// --memory/--cpus/--pids-limit. run.cpp makes the record from these.
#include <dirent.h>
#include <ftw.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
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
#include "kiln/keyvalue.h"
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

namespace kiln::run::internal {

namespace {

constexpr char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

}  // namespace

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 128 || !std::isalnum(static_cast<unsigned char>(n[0])))
    return false;
  return n.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
         std::string::npos;
}

Expected<StoredImage> GetImage(Store& store, const RunOptions& o) {
  KILN_ASSIGN_OR_RETURN(image::PullPolicy policy, image::ParsePullPolicy(o.pull));
  image::AcquireOptions ao;
  ao.policy = policy;
  ao.transfer.progress = [](const std::string& line) {
    std::string l = line + "\n";
    (void)!::write(2, l.data(), l.size());
  };
  return image::Acquire(store, o.image, ao);
}

/// --memory/--cpus/--pids-limit: a writable, delegated cgroup v2 with the
/// controllers, or a clear refusal. Returns the new cgroup directory.
Expected<std::string> PrepareCgroup(const RunOptions& o, const std::string& id) {
  struct statfs sf;
  auto refuse = [](const std::string& why) {
    return Error(Errc::kUnsupported,
                 "--memory, --cpus and --pids-limit need a delegated cgroup v2 (see docs/run.md): " + why);
  };
  if (::statfs("/sys/fs/cgroup", &sf) != 0 || sf.f_type != 0x63677270 /* CGROUP2_SUPER_MAGIC */)
    return refuse("/sys/fs/cgroup is not a cgroup2 (unified) hierarchy on this host");
  auto self = ReadFile("/proc/self/cgroup", 1 << 16);
  if (!self)
    return refuse("cannot read /proc/self/cgroup");
  std::string rel;
  for (size_t pos = 0; pos < self->size();) {
    size_t nl = self->find('\n', pos);
    std::string line = self->substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (line.rfind("0::", 0) == 0)
      rel = line.substr(3);
    pos = nl == std::string::npos ? self->size() : nl + 1;
  }
  std::string parent = "/sys/fs/cgroup" + rel;
  if (::access((parent + "/cgroup.subtree_control").c_str(), W_OK) != 0)
    return refuse("the current cgroup " + parent + " is not writable (not delegated)");
  auto controllers = ReadFile(parent + "/cgroup.controllers", 4096);
  std::vector<std::pair<bool, const char*>> need = {{o.memory.has_value(), "memory"},
                                                    {o.cpus.has_value(), "cpu"},
                                                    {o.pids_limit.has_value(), "pids"}};
  for (auto [wanted, name] : need)
    if (wanted && (!controllers || controllers->find(name) == std::string::npos))
      return refuse(std::string("the ") + name + " controller is not delegated to " + parent);
  std::string dir = parent + "/kiln-" + id.substr(0, 12);
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return refuse("mkdir " + dir + ": " + std::strerror(errno));
  auto write = [&](const std::string& file, const std::string& value) -> Status {
    UniqueFd fd(::open((dir + "/" + file).c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd || !WriteAll(fd.get(), value))
      return refuse("write " + dir + "/" + file + ": " + std::strerror(errno));
    return Ok();
  };
  if (o.memory) {
    std::string m = *o.memory;
    int64_t mult = 1;
    char suffix = m.empty() ? 0 : static_cast<char>(std::tolower(static_cast<unsigned char>(m.back())));
    if (suffix == 'b')
      m.pop_back(), suffix = m.empty() ? 0 : static_cast<char>(std::tolower(static_cast<unsigned char>(m.back())));
    if (suffix == 'k' || suffix == 'm' || suffix == 'g') {
      mult = suffix == 'k' ? 1024 : suffix == 'm' ? 1024 * 1024 : 1024 * 1024 * 1024;
      m.pop_back();
    }
    if (m.empty() || m.find_first_not_of("0123456789") != std::string::npos)
      return Error(Errc::kInvalidInput, "invalid --memory " + *o.memory);
    KILN_TRY(write("memory.max", std::to_string(std::stoll(m) * mult)));
  }
  if (o.cpus)
    KILN_TRY(write("cpu.max", std::to_string(static_cast<int64_t>(*o.cpus * 100000)) + " 100000"));
  if (o.pids_limit)
    KILN_TRY(write("pids.max", std::to_string(*o.pids_limit)));
  return dir;
}

namespace {

Expected<std::string> RandomName() {
  static const char* kAdj[] = {"brave",  "calm",   "eager", "fancy", "gentle", "happy", "jolly",  "keen",
                               "lively", "merry",  "nifty", "proud", "quiet",  "swift", "tender", "witty"};
  static const char* kNoun[] = {"anvil", "bellows", "brick", "clay",  "ember", "flame", "forge",  "glaze",
                                "hearth", "kettle", "oven", "slag", "smelt", "spark", "tongs", "vessel"};
  KILN_ASSIGN_OR_RETURN(std::string hex, RandomHex(6));
  unsigned v = static_cast<unsigned>(std::strtoul(hex.c_str(), nullptr, 16));
  return std::string(kAdj[v % 16]) + "_" + kNoun[(v / 16) % 16] + "_" + hex.substr(0, 4);
}

/// Sets K=V in `env`, replacing an earlier K in place.
void SetEnv(std::vector<std::string>& env, const std::string& kv) {
  size_t eq = kv.find('=');
  std::string key = kv.substr(0, eq);
  for (auto& e : env) {
    if (e.compare(0, key.size() + 1, key + "=") == 0) {
      e = kv;
      return;
    }
  }
  env.push_back(kv);
}

bool HasEnv(const std::vector<std::string>& env, const std::string& key) {
  for (const auto& e : env)
    if (e.compare(0, key.size() + 1, key + "=") == 0)
      return true;
  return false;
}

/// -e K=V, or K (copied from our environment when set).
Status AddUserEnv(std::vector<std::string>& env, const std::string& item, const std::string& where) {
  if (item.empty() || item[0] == '=')
    return Error(Errc::kInvalidInput, "invalid environment variable " + item + where);
  if (item.find('=') != std::string::npos) {
    SetEnv(env, item);
    return Ok();
  }
  if (const char* v = std::getenv(item.c_str()))
    SetEnv(env, item + "=" + v);
  return Ok();
}

/// Copies the image's content at `path` (if it is a directory) into a new
/// volume's _data, as podman does.
Status InitVolumeFromImage(const std::vector<std::string>& lower_dirs, const std::string& path,
                           const std::string& data_dir, const std::string& tmp_parent) {
  KILN_TRY(MakeDirs(tmp_parent, 0700));
  KILN_ASSIGN_OR_RETURN(std::string suffix, RandomHex(12));
  std::string mnt = tmp_parent + "/vol-" + suffix;
  if (::mkdir(mnt.c_str(), 0700) != 0)
    return Error::FromErrno("mkdir " + mnt);
  Status result = Ok();
  {
    auto mounted = rootfs::Mount::ReadOnly(lower_dirs, mnt);
    if (!mounted) {
      ::rmdir(mnt.c_str());
      return std::move(mounted).error().WithContext("initialise volume from the image");
    }
    auto root = OpenFile(mnt, O_RDONLY | O_DIRECTORY);
    if (!root)
      return std::move(root).error();
    // Resolved inside the image's root: an image symlink cannot point the
    // copy at a host directory.
    auto src = rootfs::OpenInRoot(root->get(), path, O_RDONLY | O_DIRECTORY);
    if (src) {
      SpawnOptions so;
      so.fds = {{src->get(), 3}};
      auto pid = SpawnArgv({"cp", "-a", "--", "/proc/self/fd/3/.", data_dir + "/"}, so);
      if (!pid) {
        result = std::move(pid).error();
      } else {
        int st = WaitChild(*pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
          result = Error(Errc::kIo, "copy the image's " + path + " into volume " + data_dir + " failed");
      }
    }
    (void)mounted->Unmount();
  }
  ::rmdir(mnt.c_str());
  return result;
}

// -v ...:U: the tree at `root` to the container's user and group (in kiln's
// user namespace: rootless, the ids of the user's subordinate range), never
// following a symlink. nftw() takes no state: these hold it (kiln run is
// single-threaded here).
uid_t g_chown_uid = 0;
gid_t g_chown_gid = 0;
std::string g_chown_failed;
int g_chown_errno = 0;

int ChownEntry(const char* path, const struct stat*, int, struct FTW*) {
  if (::lchown(path, g_chown_uid, g_chown_gid) != 0) {
    g_chown_failed = path;
    g_chown_errno = errno;
    return 1;
  }
  return 0;
}

Status ChownTree(const std::string& root, uid_t uid, gid_t gid, const std::string& flag) {
  g_chown_uid = uid;
  g_chown_gid = gid;
  g_chown_failed.clear();
  g_chown_errno = 0;
  int rc = ::nftw(root.c_str(), ChownEntry, 64, FTW_PHYS);
  if (rc == 0)
    return Ok();
  if (g_chown_failed.empty())
    return Error::FromErrno(flag + ": walk " + root);
  std::string why = std::strerror(g_chown_errno);
  if (g_chown_errno == EPERM)
    why += " (its owner or group is not mapped in kiln's user namespace: rootless, only your own ids and your "
           "/etc/subuid, /etc/subgid ranges are)";
  return Error(Errc::kFailed, flag + ": chown " + g_chown_failed + " to " + std::to_string(uid) + ":" +
                                  std::to_string(gid) + ": " + why);
}

bool IsEmptyDir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d)
    return false;
  bool empty = true;
  while (struct dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  ::closedir(d);
  return empty;
}

}  // namespace

/// Everything from the image and the flags, resolved into a Config (nothing
/// created but `staging`/empty for an image without layers; mounts are
/// AddMounts()'). Reads the image's content (layers, /etc/passwd): called
/// without the containers lock.
Expected<Config> MakeConfig(Store& store, const Paths& paths, const RunOptions& o, const StoredImage& image,
                            const std::string& id, const std::string& staging) {
  const ContainerConfig& ic = image.config.config;
  Config c;
  c.id = id;
  c.name = o.name;
  if (c.name.empty()) {
    KILN_ASSIGN_OR_RETURN(c.name, RandomName());
  }
  c.image = o.image;
  c.image_id = image.id().str();
  c.created = NowRfc3339();
  c.auto_remove = o.remove;
  c.tty = o.tty;
  c.interactive = o.interactive;
  c.read_only = o.read_only;
  c.privileged = o.privileged;

  // Rootfs: the stored layers, unpacked once, top first. Nothing is copied.
  const auto& layers = image.manifest.layers;
  if (layers.size() != image.config.diff_ids.size())
    return Error(Errc::kCorrupt, "image " + o.image + ": manifest and config disagree on the number of layers");
  for (size_t i = 0; i < layers.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(std::string dir, store.UnpackedLayer(layers[i], image.config.diff_ids[i]));
    // The same layer twice (two steps that changed nothing share the empty
    // layer's diff_id): overlayfs refuses a repeated lowerdir (EINVAL), and
    // the topmost copy alone shows the same tree.
    std::erase(c.lower_dirs, dir);
    c.lower_dirs.insert(c.lower_dirs.begin(), dir);
    c.layers.push_back(image.config.diff_ids[i].str());
  }
  std::string cdir = ContainerDir(paths, id);
  if (c.lower_dirs.empty()) {  // FROM scratch with no layer
    KILN_TRY(MakeDirs(staging + "/empty", 0755));
    c.lower_dirs.push_back(cdir + "/empty");  // where it is once committed
  }

  // Command: --entrypoint replaces the image's (and drops its Cmd, as
  // docker/podman); COMMAND replaces Cmd.
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  if (o.entrypoint) {
    if (!o.entrypoint->empty())
      entrypoint = {*o.entrypoint};
  } else if (ic.entrypoint) {
    entrypoint = *ic.entrypoint;
  }
  if (!o.command.empty())
    cmd = o.command;
  else if (!o.entrypoint && ic.cmd)
    cmd = *ic.cmd;
  c.argv = entrypoint;
  c.argv.insert(c.argv.end(), cmd.begin(), cmd.end());
  if (c.argv.empty())
    return Error(Errc::kInvalidInput, "no command specified: image " + o.image +
                                          " has no Entrypoint or Cmd; give a COMMAND");

  // USER from the image's /etc/passwd and /etc/group (docs/security.md I6).
  std::string user = !o.user.empty() ? o.user : ic.user.empty() ? "0" : ic.user;
  std::string user_from = !o.user.empty() ? "-u " + o.user : "image " + o.image + ": User " + ic.user;
  std::vector<std::string> layer_dirs = c.lower_dirs;
  if (layer_dirs.size() == 1 && layer_dirs[0] == cdir + "/empty")
    layer_dirs[0] = staging + "/empty";
  KILN_ASSIGN_OR_RETURN(rootfs::ResolvedUser ru, ResolveUserInLayers(layer_dirs, user, "image " + o.image, user_from));
  if (Status st = CheckIdsMapped(ru.uid, ru.gid, ru.supplementary_gids); !st)
    return std::move(st).error().WithContext(user_from);
  c.uid = ru.uid;
  c.gid = ru.gid;
  c.groups = ru.supplementary_gids;

  c.cwd = !o.workdir.empty() ? o.workdir : ic.working_dir.empty() ? "/" : ic.working_dir;
  if (c.cwd[0] != '/')
    return Error(Errc::kInvalidInput, "working directory " + c.cwd + " must be absolute");
  c.hostname = !o.hostname.empty() ? o.hostname : id.substr(0, 12);

  // Environment: --env-host (kiln's own, without its KILN_* variables), a
  // PATH default, the image's, then ours.
  if (o.env_host)
    for (char** e = environ; *e; ++e)
      if (std::strncmp(*e, "KILN_", 5) != 0 && std::strchr(*e, '=') && **e != '=')
        SetEnv(c.env, *e);
  if (!ic.GetEnv("PATH") && !HasEnv(c.env, "PATH"))
    c.env.push_back(std::string("PATH=") + kDefaultPath);
  for (const auto& e : ic.env)
    SetEnv(c.env, e);
  SetEnv(c.env, "HOSTNAME=" + c.hostname);
  if (!HasEnv(c.env, "HOME"))
    SetEnv(c.env, "HOME=" + (ru.home.empty() ? std::string("/") : ru.home));
  if (o.tty && !HasEnv(c.env, "TERM"))
    SetEnv(c.env, "TERM=xterm");
  for (const auto& file : o.env_files) {
    KILN_ASSIGN_OR_RETURN(std::string text, ReadFile(file, 1 << 20));
    KILN_TRY(ForEachSettingLine(text, [&](std::string_view line, int lineno) {
      return AddUserEnv(c.env, std::string(line), " (" + file + ":" + std::to_string(lineno) + ")");
    }));
  }
  for (const auto& e : o.env)
    KILN_TRY(AddUserEnv(c.env, e, ""));

  // Labels: the image's, then --label-file lines, then --label (as podman);
  // --annotation. K=V, or K alone for an empty value.
  c.labels = ic.labels;
  for (const auto& file : o.label_files) {
    KILN_ASSIGN_OR_RETURN(std::string text, ReadFile(file, 1 << 20));
    KILN_TRY(ForEachSettingLine(text, [&](std::string_view line, int lineno) {
      return ParseKeyValues({std::string(line)}, "label (" + file + ":" + std::to_string(lineno) + ")", &c.labels);
    }));
  }
  KILN_TRY(ParseKeyValues(o.labels, "--label", &c.labels));
  KILN_TRY(ParseKeyValues(o.annotations, "--annotation", &c.annotations));
  c.init = o.init;

  // Network. -p is always served by the built-in forwarder (portfwd.h); a
  // helper, when one is usable, gives the container outbound access.
  c.network = o.network;
  if (!o.ports.empty() && c.network != NetworkMode::kPrivate)
    return Error(Errc::kInvalidInput, "-p/--publish needs --network private");
  std::string helper;
  if (c.network == NetworkMode::kPrivate && o.networks.empty()) {
    // No usable helper: fail closed (own network namespace, loopback only),
    // never the host's network unless --network host asks for it.
    std::string warning;
    c.network = ResolvePrivateNetwork(c.network, &warning);
    if (c.network == NetworkMode::kPrivate)
      helper = NetworkHelper();
    else
      LogWarn(warning + (o.ports.empty() ? "" : " (published ports still work)"));
  }
  c.ports = o.ports;
  c.etc_hostname = c.hostname + "\n";
  if (c.network == NetworkMode::kHost) {
    auto host = ReadFile("/etc/hosts", 1 << 20);
    c.etc_hosts = (host ? *host : std::string("127.0.0.1\tlocalhost\n")) + "127.0.1.1\t" + c.hostname + "\n";
    auto resolv = ReadFile("/etc/resolv.conf", 1 << 20);
    c.etc_resolv_conf = resolv ? *resolv : "";
  } else {
    c.etc_hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + c.hostname + "\n";
    if (c.network == NetworkMode::kNone) {
      c.etc_resolv_conf = "";
    } else if (helper == "slirp4netns") {
      c.etc_resolv_conf = "nameserver 10.0.2.3\n";
    } else {
      auto resolv = ReadFile("/etc/resolv.conf", 1 << 20);
      c.etc_resolv_conf = resolv ? *resolv : "";
    }
  }

  // Stop signal.
  c.stop_signal = SIGTERM;
  if (!ic.stop_signal.empty()) {
    auto sig = ParseSignal(ic.stop_signal);
    if (sig)
      c.stop_signal = *sig;
    else
      LogWarn("image " + o.image + ": ignoring invalid StopSignal " + ic.stop_signal);
  }
  if (!o.stop_signal.empty()) {
    auto sig = ParseSignal(o.stop_signal);
    if (!sig)
      return Error(Errc::kInvalidInput, "--stop-signal " + o.stop_signal + ": not a signal (use a name such as "
                                        "SIGQUIT or QUIT, or a number)");
    c.stop_signal = *sig;
  }

  KILN_TRY(ApplyLifecycleOptions(paths, o, ic, c));
  return c;
}

/// The mounts of `c`: the flags', then an anonymous volume for every image
/// VOLUME not covered by one (volumes created, and initialised from the
/// image through `staging`/tmp). Under the containers lock.
Status AddMounts(const Paths& paths, const RunOptions& o, const StoredImage& image, const std::string& staging,
                 Config& c) {
  const ContainerConfig& ic = image.config.config;
  // Mounts: flags, then an anonymous volume for every image VOLUME not
  // covered by one.
  std::vector<MountRequest> mounts = o.mounts;
  for (const auto& v : ic.volumes) {
    bool covered = false;
    for (const auto& m : mounts)
      covered = covered || m.target == v;
    if (!covered && !v.empty() && v[0] == '/' && v.find("/../") == std::string::npos &&
        v.find("/..", v.size() >= 3 ? v.size() - 3 : 0) == std::string::npos) {
      MountRequest m;
      m.type = MountRequest::Type::kVolume;
      m.target = v;
      mounts.push_back(m);
    }
  }
  for (auto& m : mounts) {
    if (m.type == MountRequest::Type::kBind) {
      char real[PATH_MAX];
      if (!::realpath(m.source.c_str(), real))
        return Error(Errc::kInvalidInput, "bind mount source " + m.source + ": " + std::strerror(errno));
      m.source = real;
    } else if (m.type == MountRequest::Type::kVolume) {
      bool anonymous = m.source.empty();
      if (anonymous) {
        KILN_ASSIGN_OR_RETURN(m.source, RandomHex(64));
        c.anonymous_volumes.push_back(m.source);
      }
      KILN_ASSIGN_OR_RETURN(VolumeInfo vol, CreateVolume(paths, m.source, true));
      if (IsEmptyDir(vol.mountpoint)) {
        std::vector<std::string> lowers = c.lower_dirs;
        if (lowers.size() == 1 && lowers[0] == ContainerDir(paths, c.id) + "/empty")
          lowers[0] = staging + "/empty";
        KILN_TRY(InitVolumeFromImage(lowers, m.target, vol.mountpoint, staging + "/tmp"));
      }
    }
    if (m.chown && m.type != MountRequest::Type::kTmpfs) {
      std::string root = m.type == MountRequest::Type::kBind ? m.source : VolumeDataDir(paths, m.source);
      KILN_TRY(ChownTree(root, c.uid, c.gid, "-v " + (m.source.empty() ? "" : m.source + ":") + m.target + ":U"));
    }
    c.mounts.push_back(m);
  }
  return Ok();
}

Expected<rootfs::ResolvedUser> ResolveUserInLayers(const std::vector<std::string>& layer_dirs, const std::string& user,
                                                   const std::string& whose, const std::string& user_from) {
  auto passwd = rootfs::ReadFileFromLayers(layer_dirs, "/etc/passwd");
  if (!passwd)
    return std::move(passwd).error().WithContext(whose);
  auto group = rootfs::ReadFileFromLayers(layer_dirs, "/etc/group");
  if (!group)
    return std::move(group).error().WithContext(whose);
  auto resolved = rootfs::ResolveUser(user, *passwd, *group);
  if (!resolved)
    return std::move(resolved).error().WithContext(user_from);
  return resolved;
}

void InstallSignalHandler(void (*handler)(int)) {
  struct sigaction sa = {};
  sa.sa_handler = handler;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2})
    ::sigaction(sig, &sa, nullptr);
}

}  // namespace kiln::run::internal
