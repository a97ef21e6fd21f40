// kiln run: from an image and the flags to a container record, then either
// run it in this process (foreground) or hand it to a detached monitor
// (`kiln __monitor`), which owns it until it exits.
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

constexpr char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = ::getrandom(raw.data() + got, bytes - got, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += static_cast<size_t>(n);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char ch : raw) {
    out += kHex[ch >> 4];
    out += kHex[ch & 15];
  }
  return out;
}

std::string RandomName() {
  static const char* kAdj[] = {"brave",  "calm",   "eager", "fancy", "gentle", "happy", "jolly",  "keen",
                               "lively", "merry",  "nifty", "proud", "quiet",  "swift", "tender", "witty"};
  static const char* kNoun[] = {"anvil", "bellows", "brick", "clay",  "ember", "flame", "forge",  "glaze",
                                "hearth", "kettle", "oven", "slag", "smelt", "spark", "tongs", "vessel"};
  std::string hex = RandomHex(3);
  unsigned v = static_cast<unsigned>(std::strtoul(hex.c_str(), nullptr, 16));
  return std::string(kAdj[v % 16]) + "_" + kNoun[(v / 16) % 16] + "_" + hex.substr(0, 4);
}

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 128 || !std::isalnum(static_cast<unsigned char>(n[0])))
    return false;
  return n.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
         std::string::npos;
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

/// Copies the image's content at `path` (if it is a directory) into a new
/// volume's _data, as podman does.
Status InitVolumeFromImage(const std::vector<std::string>& lower_dirs, const std::string& path,
                           const std::string& data_dir, const std::string& tmp_parent) {
  KILN_TRY(MakeDirs(tmp_parent, 0700));
  std::string mnt = tmp_parent + "/vol-" + RandomHex(6);
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
      posix_spawn_file_actions_t fa;
      posix_spawn_file_actions_init(&fa);
      posix_spawn_file_actions_adddup2(&fa, src->get(), 3);
      std::string from = "/proc/self/fd/3/.";
      std::vector<std::string> args = {"cp", "-a", "--", from, data_dir + "/"};
      std::vector<char*> argv;
      for (auto& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      pid_t pid;
      int rc = ::posix_spawnp(&pid, "cp", &fa, nullptr, argv.data(), environ);
      posix_spawn_file_actions_destroy(&fa);
      if (rc != 0) {
        result = Error::FromErrno("run cp", rc);
      } else {
        int st = 0;
        while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
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

/// Everything from the image and the flags, resolved into a Config (nothing
/// created but `staging`/empty for an image without layers; mounts are
/// AddMounts()'). Reads the image's content (layers, /etc/passwd): called
/// without the containers lock.
Expected<Config> MakeConfig(Store& store, const Paths& paths, const RunOptions& o, const StoredImage& image,
                            const std::string& id, const std::string& staging) {
  const ContainerConfig& ic = image.config.config;
  Config c;
  c.id = id;
  c.name = o.name.empty() ? RandomName() : o.name;
  c.image = o.image;
  c.image_id = image.id().str();
  c.created = NowRfc3339();
  c.auto_remove = o.remove;
  c.tty = o.tty;
  c.interactive = o.interactive;
  c.read_only = o.read_only;

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
  auto passwd = rootfs::ReadFileFromLayers(layer_dirs, "/etc/passwd");
  if (!passwd)
    return std::move(passwd).error().WithContext("image " + o.image);
  auto group = rootfs::ReadFileFromLayers(layer_dirs, "/etc/group");
  if (!group)
    return std::move(group).error().WithContext("image " + o.image);
  auto resolved = rootfs::ResolveUser(user, *passwd, *group);
  if (!resolved)
    return std::move(resolved).error().WithContext(user_from);
  rootfs::ResolvedUser ru = std::move(*resolved);
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
    size_t pos = 0;
    int lineno = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      pos = nl == std::string::npos ? text.size() : nl + 1;
      ++lineno;
      while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
        line.pop_back();
      size_t start = line.find_first_not_of(" \t");
      if (start == std::string::npos || line[start] == '#')
        continue;
      KILN_TRY(AddUserEnv(c.env, line.substr(start), " (" + file + ":" + std::to_string(lineno) + ")"));
    }
  }
  for (const auto& e : o.env)
    KILN_TRY(AddUserEnv(c.env, e, ""));

  // Labels: the image's, then --label-file lines, then --label (as podman);
  // --annotation. K=V, or K alone for an empty value.
  c.labels = ic.labels;
  auto add_kv = [](std::map<std::string, std::string>& to, const std::string& kv, const std::string& what) -> Status {
    size_t eq = kv.find('=');
    std::string k = kv.substr(0, eq);
    if (k.empty())
      return Error(Errc::kInvalidInput, "invalid " + what + " " + kv + ": empty key");
    to[k] = eq == std::string::npos ? "" : kv.substr(eq + 1);
    return Ok();
  };
  for (const auto& file : o.label_files) {
    KILN_ASSIGN_OR_RETURN(std::string text, ReadFile(file, 1 << 20));
    int lineno = 0;
    for (size_t pos = 0; pos < text.size();) {
      size_t nl = text.find('\n', pos);
      std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      pos = nl == std::string::npos ? text.size() : nl + 1;
      ++lineno;
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
        line.pop_back();
      size_t start = line.find_first_not_of(" \t");
      if (start == std::string::npos || line[start] == '#')
        continue;
      KILN_TRY(add_kv(c.labels, line.substr(start), "label (" + file + ":" + std::to_string(lineno) + ")"));
    }
  }
  for (const auto& l : o.labels)
    KILN_TRY(add_kv(c.labels, l, "--label"));
  for (const auto& a : o.annotations)
    KILN_TRY(add_kv(c.annotations, a, "--annotation"));
  c.init = o.init;

  // Network. -p is always served by the built-in forwarder (portfwd.h); a
  // helper, when one is usable, gives the container outbound access.
  c.network = o.network;
  if (!o.networks.empty() && !o.ports.empty())
    return Error(Errc::kUnsupported, "-p/--publish with --network " + o.networks[0] + " is not supported yet");
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
        m.source = RandomHex(32);
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

void InstallForwarders() {
  struct sigaction sa = {};
  sa.sa_handler = ForwardToContainer;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2})
    ::sigaction(sig, &sa, nullptr);
}

Error Cancelled() {
  return Error(Errc::kCancelled, "run cancelled by signal " + std::to_string(g_cancel_signal.load()) +
                                     " before the container started");
}

/// Runs the container in this process, which owns it (monitor.lock) until
/// it exits. stdio: the given fds (-1: /dev/null). Returns its status.
/// `fwd`: the host sockets of -p when the caller bound them already (else
/// they are bound here, before the container starts).
Expected<int> Supervise(const Paths& paths, const Config& c, int in, int out, int err, bool tty,
                        int tty_in, int tty_out, int* ready_fd, const std::string& cgroup,
                        std::unique_ptr<PortForwarder> fwd = nullptr, Sandbox* sandbox = nullptr) {
  std::string rdir = RunDir(paths, c.id);
  KILN_TRY(MakeDirs(rdir, 0700));
  auto lock = LockFile(rdir + "/monitor.lock", LOCK_EX | LOCK_NB);
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
    if (int sig = g_cancel_signal.load())
      ::kill(pid, sig);  // arrived before the container existed
    (void)UpdateState(paths, c.id, [&](State& s) {
      s.status = "running";
      s.pid = pid;
      s.monitor_pid = ::getpid();
      s.exit_code = 0;
      s.started_at = NowRfc3339();
      s.finished_at.clear();
      s.error.clear();
    });
    if (*ready_fd >= 0) {
      (void)WriteAll(*ready_fd, "R\n");
      ::close(*ready_fd);
      *ready_fd = -1;
    }
  };
  InstallForwarders();

  Expected<SandboxResult> result = SandboxOrHost(sandbox).Run(spec);
  if (relay.joinable()) {
    (void)!::write(stop_w.get(), "x", 1);
    relay.join();
  }
  raw.reset();  // the user's terminal back to normal
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

/// Starts `kiln __monitor` for `id`, detached (own session, stdio on
/// /dev/null), and waits until the container runs. `port_fds`: the host
/// sockets of -p, bound by the caller; the monitor inherits them (as fds 4,
/// 5, ...) and serves them, so the ports are never free in between.
Status SpawnMonitor(const Paths& paths, const std::string& id, const std::vector<int>& port_fds = {}) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0)
    return Error::FromErrno("pipe");
  UniqueFd ready_r(pipefd[0]);
  UniqueFd ready_w(pipefd[1]);
  UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, null_fd.get(), 0);
  posix_spawn_file_actions_adddup2(&fa, null_fd.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, null_fd.get(), 2);
  posix_spawn_file_actions_adddup2(&fa, ready_w.get(), 3);
  // Copies above the target range first, so that no dup2 overwrites a
  // socket not yet moved; dup2 clears FD_CLOEXEC on the target.
  const int first_port_fd = 4;
  std::vector<UniqueFd> port_copies;
  for (int fd : port_fds) {
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, first_port_fd + static_cast<int>(port_fds.size()));
    if (copy < 0) {
      posix_spawn_file_actions_destroy(&fa);
      return Error::FromErrno("dup the -p host socket");
    }
    port_copies.emplace_back(copy);
  }
  for (size_t i = 0; i < port_copies.size(); ++i)
    posix_spawn_file_actions_adddup2(&fa, port_copies[i].get(), first_port_fd + static_cast<int>(i));
  posix_spawnattr_t attr;
  InitSpawnAttr(&attr, POSIX_SPAWN_SETSID);
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    return Error::FromErrno("readlink /proc/self/exe");
  self[n] = '\0';
  std::vector<std::string> args = {"kiln", "__monitor", "--store", paths.store_root, "--run-root",
                                   paths.run_root, "--ready-fd", "3", id};
  for (size_t i = 0; i < port_fds.size(); ++i) {
    args.push_back("--port-fd");
    args.push_back(std::to_string(first_port_fd + static_cast<int>(i)));
  }
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  int rc = ::posix_spawn(&pid, self, &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return Error::FromErrno("start the container monitor", rc);
  ready_w.reset();
  std::string reply;
  char buf[4096];
  for (;;) {
    ssize_t r = ::read(ready_r.get(), buf, sizeof buf);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    reply.append(buf, static_cast<size_t>(r));
    if (reply.find('\n') != std::string::npos)
      break;
  }
  // The monitor is not our child for long: it runs on its own (the
  // grandparent outside the user namespace exits with us). Reap it if it
  // already died.
  ::waitpid(pid, nullptr, WNOHANG);
  if (reply.empty() || reply[0] != 'R') {
    std::string why = reply.size() > 1 ? reply.substr(1) : "the monitor exited before the container started";
    while (!why.empty() && why.back() == '\n')
      why.pop_back();
    return Error(Errc::kSandbox, why);
  }
  return Ok();
}

}  // namespace

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
  std::string id = RandomHex(32);
  std::string cgroup;
  if (o.memory || o.cpus || o.pids_limit) {
    KILN_ASSIGN_OR_RETURN(cgroup, PrepareCgroup(o, id));
  }
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
                          o.sandbox);
  DetachNetworks(paths, c);
  if (o.remove) {
    auto lock = LockFile(ContainersRoot(paths) + "/lock", LOCK_EX);
    (void)RemoveRecords(paths, c);
  }
  return status;
}

Status StartContainer(const Paths& paths, const std::string& id) {
  if (MonitorAlive(paths, id))
    return Ok();  // already running
  return SpawnMonitor(paths, id);
}

namespace {

// "<offset> <seconds>.<nanoseconds>\n" without allocating (the logger is
// forked from a process that may have threads).
size_t FormatTimestampRecord(char* buf, uint64_t offset, const struct timespec& t) {
  char digits[24];
  size_t n = 0;
  auto put_number = [&](uint64_t v, int width) {
    int k = 0;
    do {
      digits[k++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v > 0 || k < width);
    while (k > 0)
      buf[n++] = digits[--k];
  };
  put_number(offset, 1);
  buf[n++] = ' ';
  put_number(static_cast<uint64_t>(t.tv_sec), 1);
  buf[n++] = '.';
  put_number(static_cast<uint64_t>(t.tv_nsec), 9);
  buf[n++] = '\n';
  return n;
}

void WriteFully(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

UniqueFd StartLogger(int log_fd, int ts_fd, pid_t* logger) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return UniqueFd();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return UniqueFd();
  }
  if (pid == 0) {
    // Only the pipe and the two files: not the monitor's ready fd (its
    // reader waits for EOF) nor the -p sockets.
    int in = fds[0];
    for (int fd = 3; fd < 65536; ++fd)
      if (fd != in && fd != log_fd && fd != ts_fd)
        ::close(fd);
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGINT, SIG_IGN);
    off_t off = ::lseek(log_fd, 0, SEEK_END);
    uint64_t offset = off > 0 ? static_cast<uint64_t>(off) : 0;
    bool at_line_start = true;
    static char buf[65536];
    char rec[64];
    for (;;) {
      ssize_t n = ::read(in, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      struct timespec now;
      ::clock_gettime(CLOCK_REALTIME, &now);
      for (ssize_t i = 0; i < n; ++i) {
        if (at_line_start)
          WriteFully(ts_fd, rec, FormatTimestampRecord(rec, offset + static_cast<uint64_t>(i), now));
        at_line_start = buf[i] == '\n';
      }
      WriteFully(log_fd, buf, static_cast<size_t>(n));
      offset += static_cast<uint64_t>(n);
    }
    ::_exit(0);
  }
  ::close(fds[0]);
  *logger = pid;
  return UniqueFd(fds[1]);
}

}  // namespace

int MonitorMain(const Paths& paths, const std::string& id, int ready_fd, const std::vector<int>& port_fds) {
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  auto fail = [&](const Error& e) {
    if (ready_fd >= 0)
      (void)WriteAll(ready_fd, "E" + e.message() + "\n");
    return 125;
  };
  auto c = ReadConfig(paths, id);
  // -p: the host sockets `kiln run -d` bound (none after `kiln start`:
  // Supervise binds them).
  std::unique_ptr<PortForwarder> fwd;
  if (!port_fds.empty()) {
    auto adopted = PortForwarder::Adopt(c ? c->ports : std::vector<PortMapping>{}, port_fds);
    if (!adopted)
      return fail(c ? adopted.error() : c.error());
    fwd = std::move(*adopted);
  }
  if (!c)
    return fail(c.error());
  std::string log_path = ContainerDir(paths, id) + "/ctr.log";
  auto log = OpenFile(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (!log)
    return fail(log.error());
  // The container writes into a pipe; a logger process copies it into
  // ctr.log unchanged and records when each line started in ctr.log.ts
  // (`logs -t/--since/--until`, docs/run.md). Without the pipe (it could not
  // be made) the container writes to ctr.log directly, as before.
  UniqueFd log_pipe;
  pid_t logger = -1;
  auto ts = OpenFile(log_path + ".ts", O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (ts)
    log_pipe = StartLogger(log->get(), ts->get(), &logger);
  int log_fd = log_pipe ? log_pipe.get() : log->get();
  Expected<int> status = Error(Errc::kFailed, "not run");
  // A container on a network keeps the network holder alive (docs/network.md).
  UniqueFd holder_ref;
  if (!c->networks.empty()) {
    auto ref = network::TakeHolderReference(network::HolderDir(paths.run_root, paths.store_root));
    if (ref)
      holder_ref = std::move(*ref);
    else
      status = std::move(ref).error();
  }
  if (!holder_ref && !c->networks.empty()) {
    // status holds the error
  } else if (c->tty) {
    // -d -t: the terminal's output goes to the log.
    status = Supervise(paths, *c, -1, log_fd, log_fd, true, -1, log_fd, &ready_fd, "", std::move(fwd));
  } else {
    status = Supervise(paths, *c, -1, log_fd, log_fd, false, -1, -1, &ready_fd, "", std::move(fwd));
  }
  DetachNetworks(paths, *c);  // its names go at once (network.cpp)
  if (!status) {
    std::string line = "kiln: error: " + status.error().message() + "\n";
    (void)WriteAll(log_fd, line);
    if (ready_fd >= 0)
      (void)WriteAll(ready_fd, "E" + status.error().message() + "\n");
  }
  // The logger has copied everything once the container's output ends
  // (logs -f stops when the monitor is gone: nothing may come after).
  log_pipe.reset();
  for (int i = 0; logger > 0 && i < 200; ++i) {
    if (::waitpid(logger, nullptr, WNOHANG) != 0)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (c->auto_remove) {
    auto lock = LockFile(ContainersRoot(paths) + "/lock", LOCK_EX);
    (void)RemoveRecords(paths, *c);
  }
  return status ? *status : 125;
}

}  // namespace kiln::run
