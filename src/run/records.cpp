// Container records (config.json, state.json), their paths and locks.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <memory>
#include <dirent.h>
#include <nlohmann/json.hpp>
#include <thread>

#include "kiln/deferred.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "run/internal.h"

namespace kiln::run {
namespace internal {

using nlohmann::json;

std::string ContainersRoot(const Paths& paths) { return paths.store_root + "/containers"; }
std::string ContainerDir(const Paths& paths, const std::string& id) { return ContainersRoot(paths) + "/" + id; }
std::string RunDir(const Paths& paths, const std::string& id) { return paths.run_root + "/containers/" + id; }
std::string VolumesRoot(const Paths& paths) { return ContainersRoot(paths) + "/volumes"; }
std::string VolumeDataDir(const Paths& paths, const std::string& name) {
  return VolumesRoot(paths) + "/" + name + "/_data";
}

bool MonitorAlive(const Paths& paths, const std::string& id) {
  std::string path = RunDir(paths, id) + "/monitor.lock";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd)
    return false;
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0)
    return false;
  return errno == EWOULDBLOCK;
}

std::string NowRfc3339() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  struct tm tm;
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {

// The record's names of network modes and mount types, both ways; the
// first entry is what an unknown name means.
constexpr std::pair<NetworkMode, const char*> kNetworkModes[] = {
    {NetworkMode::kPrivate, "private"}, {NetworkMode::kNone, "none"}, {NetworkMode::kHost, "host"}};
constexpr std::pair<MountRequest::Type, const char*> kMountTypes[] = {{MountRequest::Type::kBind, "bind"},
                                                                      {MountRequest::Type::kVolume, "volume"},
                                                                      {MountRequest::Type::kTmpfs, "tmpfs"}};

template <typename E, size_t N>
const char* NameOf(const std::pair<E, const char*> (&table)[N], E value) {
  for (const auto& [v, name] : table)
    if (v == value)
      return name;
  return table[0].second;
}

template <typename E, size_t N>
E ValueOf(const std::pair<E, const char*> (&table)[N], const std::string& name) {
  for (const auto& [v, n] : table)
    if (name == n)
      return v;
  return table[0].first;
}

template <typename T>
T Get(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null())
    return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    return fallback;
  }
}

}  // namespace

namespace {

// Records are JSON, which holds UTF-8 only; a command, an env value or a path
// may hold other bytes (Docker passes them on). Such a field is written twice:
// under its name with U+FFFD replacement (a display, and what an older kiln
// reads), and byte-exact as base64 under name + "_b64", which the reader
// prefers.
bool ValidUtf8(const std::string& s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n)
      return false;
    for (size_t k = 1; k < len; ++k) {
      unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string B64Encode(const std::string& in) {
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size())
      v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += i + 1 < in.size() ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool B64Decode(const std::string& in, std::string& out) {
  out.clear();
  uint32_t v = 0;
  int bits = 0;
  for (char ch : in) {
    if (ch == '=')
      break;
    const char* p = std::strchr(kB64, ch);
    if (ch == '\0' || p == nullptr)
      return false;
    v = (v << 6) | uint32_t(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((v >> bits) & 0xFF);
    }
  }
  return true;
}

void PutBytes(json& j, const char* key, const std::string& value) {
  j[key] = value;
  if (!ValidUtf8(value))
    j[std::string(key) + "_b64"] = B64Encode(value);
}

void PutBytes(json& j, const char* key, const std::vector<std::string>& values) {
  j[key] = values;
  if (std::all_of(values.begin(), values.end(), ValidUtf8))
    return;
  json enc = json::array();
  for (const auto& v : values)
    enc.push_back(B64Encode(v));
  j[std::string(key) + "_b64"] = enc;
}

bool GetBytes(const json& j, const char* key, std::string& out) {
  auto it = j.find(std::string(key) + "_b64");
  if (it == j.end() || !it->is_string())
    return false;
  return B64Decode(it->get<std::string>(), out);
}

bool GetBytes(const json& j, const char* key, std::vector<std::string>& out) {
  auto it = j.find(std::string(key) + "_b64");
  if (it == j.end() || !it->is_array())
    return false;
  std::vector<std::string> values;
  for (const auto& e : *it) {
    std::string v;
    if (!e.is_string() || !B64Decode(e.get<std::string>(), v))
      return false;
    values.push_back(std::move(v));
  }
  out = std::move(values);
  return true;
}

template <typename T>
T GetExact(const json& j, const char* key, T fallback) {
  T out;
  if (GetBytes(j, key, out))
    return out;
  return Get<T>(j, key, std::move(fallback));
}

/// A container record's fields that are stored as they are, each written
/// once for both directions: `f(key, field)` (ConfigToJson writes the field;
/// ReadConfig reads it, the type's empty value when absent). `bytes`: the
/// fields that may hold any bytes (PutBytes/GetExact: base64 beside them
/// when they are not UTF-8).
template <typename C, typename F, typename B>
void RecordFields(C& c, F&& f, B&& bytes) {
  f("name", c.name);
  f("image", c.image);
  f("image_id", c.image_id);
  f("layers", c.layers);
  f("created", c.created);
  f("auto_remove", c.auto_remove);
  f("tty", c.tty);
  f("interactive", c.interactive);
  f("lower_dirs", c.lower_dirs);
  bytes("argv", c.argv);
  bytes("env", c.env);
  f("uid", c.uid);
  f("gid", c.gid);
  f("groups", c.groups);
  bytes("hostname", c.hostname);
  f("read_only", c.read_only);
  f("privileged", c.privileged);
  f("labels", c.labels);
  f("annotations", c.annotations);
  f("init", c.init);
  f("anonymous_volumes", c.anonymous_volumes);
  f("etc_hosts", c.etc_hosts);
  f("etc_resolv_conf", c.etc_resolv_conf);
  f("etc_hostname", c.etc_hostname);
}

}  // namespace

std::string ConfigToJson(const Config& c) {
  json j;
  j["id"] = c.id;
  RecordFields(
      c, [&j](const char* key, const auto& field) { j[key] = field; },
      [&j](const char* key, const auto& field) { PutBytes(j, key, field); });
  PutBytes(j, "cwd", c.cwd);
  j["network"] = NameOf(kNetworkModes, c.network);
  json mounts = json::array();
  for (const auto& m : c.mounts) {
    json e = {{"type", NameOf(kMountTypes, m.type)}, {"read_only", m.read_only}, {"options", m.tmpfs_options}};
    PutBytes(e, "source", m.source);
    PutBytes(e, "target", m.target);
    mounts.push_back(std::move(e));
  }
  j["mounts"] = mounts;
  json ports = json::array();
  for (const auto& p : c.ports)
    ports.push_back({{"host_ip", p.host_ip},
                     {"host_port", p.host_port},
                     {"container_port", p.container_port},
                     {"protocol", p.udp ? "udp" : "tcp"}});
  j["ports"] = ports;
  j["stop_signal"] = c.stop_signal;
  NetworksToJson(c, j);
  LifecycleToJson(c, j);
  PodToJson(c, j);
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Expected<Config> ReadConfig(const Paths& paths, const std::string& id) {
  std::string path = ContainerDir(paths, id) + "/config.json";
  KILN_ASSIGN_OR_RETURN(std::string text, ReadFile(path, 16 << 20));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Error(Errc::kCorrupt, "container record " + path + ": bad JSON");
  Config c;
  c.json = text;
  c.id = Get<std::string>(j, "id", id);
  RecordFields(
      c,
      [&j](const char* key, auto& field) { field = Get<std::decay_t<decltype(field)>>(j, key, {}); },
      [&j](const char* key, auto& field) { field = GetExact<std::decay_t<decltype(field)>>(j, key, {}); });
  c.cwd = GetExact<std::string>(j, "cwd", "/");
  std::string net = Get<std::string>(j, "network", "private");
  c.network = ValueOf(kNetworkModes, net);
  if (auto it = j.find("mounts"); it != j.end() && it->is_array()) {
    for (const auto& m : *it) {
      MountRequest r;
      r.type = ValueOf(kMountTypes, Get<std::string>(m, "type", "bind"));
      r.source = GetExact<std::string>(m, "source", "");
      r.target = GetExact<std::string>(m, "target", "");
      r.read_only = Get<bool>(m, "read_only", false);
      r.tmpfs_options = Get<std::string>(m, "options", "");
      c.mounts.push_back(std::move(r));
    }
  }
  if (auto it = j.find("ports"); it != j.end() && it->is_array()) {
    for (const auto& p : *it) {
      PortMapping m;
      m.host_ip = Get<std::string>(p, "host_ip", "");
      m.host_port = Get<uint16_t>(p, "host_port", 0);
      m.container_port = Get<uint16_t>(p, "container_port", 0);
      m.udp = Get<std::string>(p, "protocol", "tcp") == "udp";
      c.ports.push_back(m);
    }
  }
  c.stop_signal = Get<int>(j, "stop_signal", SIGTERM);
  NetworksFromJson(j, c);
  LifecycleFromJson(j, c);
  PodFromJson(j, c);
  return c;
}

namespace {

/// Replaces `path` atomically without fsync: for records that need not
/// survive a power loss (run-time state, the record of a --rm container).
/// Readers never see a partial file.
Status ReplaceFileVolatile(const std::string& path, std::string_view data, mode_t mode) {
  AtomicWriteOptions o;
  o.mode = mode;
  o.durable = false;
  return WriteFileAtomic(path, data, o);
}

}  // namespace

Status WriteConfigAt(const std::string& dir, const Config& c) {
  std::string path = dir + "/config.json";
  // A --rm container's record goes away with it: no fsync on the hot path.
  if (c.auto_remove)
    return ReplaceFileVolatile(path, ConfigToJson(c), 0600);
  return WriteFileAtomic(path, ConfigToJson(c), 0600);
}

Status WriteConfig(const Paths& paths, const Config& c) { return WriteConfigAt(ContainerDir(paths, c.id), c); }

State ReadState(const Paths& paths, const std::string& id) {
  State s;
  auto text = ReadFile(RunDir(paths, id) + "/state.json", 1 << 20);
  json j = text ? json::parse(*text, nullptr, false) : json();
  if (!text || j.is_discarded() || !j.is_object()) {
    // No run-time state (never started, or the run-time directory was
    // cleared by a reboot or left empty by a power loss): the copy kept with
    // the record, if any.
    text = ReadFile(ContainerDir(paths, id) + "/state.json", 1 << 20);
    if (!text)
      return s;
    j = json::parse(*text, nullptr, false);
  }
  if (j.is_discarded() || !j.is_object())
    return s;
  s.status = Get<std::string>(j, "status", "created");
  s.pid = Get<pid_t>(j, "pid", 0);
  s.monitor_pid = Get<pid_t>(j, "monitor_pid", 0);
  s.exit_code = Get<int>(j, "exit_code", 0);
  s.started_at = Get<std::string>(j, "started_at", "");
  s.finished_at = Get<std::string>(j, "finished_at", "");
  s.error = Get<std::string>(j, "error", "");
  s.stopped_by_user = Get<bool>(j, "stopped_by_user", false);
  s.restart_count = Get<int>(j, "restart_count", 0);
  return s;
}

Status UpdateState(const Paths& paths, const std::string& id, const std::function<void(State&)>& change,
                   bool persist) {
  std::string dir = RunDir(paths, id);
  KILN_ASSIGN_OR_RETURN(UniqueFd lock, LockFile(dir + "/lock", LOCK_EX));
  State s = ReadState(paths, id);
  change(s);
  json j = {{"status", s.status},         {"pid", s.pid},
            {"monitor_pid", s.monitor_pid}, {"exit_code", s.exit_code},
            {"started_at", s.started_at}, {"finished_at", s.finished_at},
            {"error", s.error},           {"stopped_by_user", s.stopped_by_user},
            {"restart_count", s.restart_count}};
  std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  // The run-time directory does not outlive a reboot: no fsync there.
  KILN_TRY(ReplaceFileVolatile(dir + "/state.json", text, 0600));
  // A copy with the record survives a reboot (not for --rm records, removed
  // right after).
  if (persist && PathExists(ContainerDir(paths, id)) && s.status != "running")
    (void)WriteFileAtomic(ContainerDir(paths, id) + "/state.json", text, 0600);
  return Ok();
}

State EffectiveState(const Paths& paths, const std::string& id) {
  State s = ReadState(paths, id);
  if ((s.status == "running" || s.status == "restarting") && !MonitorAlive(paths, id)) {
    s.status = "exited";
    if (s.finished_at.empty())
      s.exit_code = -1;  // the monitor died without recording the status
    s.pid = 0;
  }
  return s;
}

SandboxSpec SpecFromConfig(const Paths& paths, const Config& c) {
  // A --rm container's upper dies with it: no sync at unmount (volatile).
  // Kept containers keep the default (a volatile upper is unusable after a
  // crash).
  std::string dir = ContainerDir(paths, c.id);
  SandboxSpec spec{.lower_dirs = c.lower_dirs, .upper_dir = dir + "/upper", .work_dir = dir + "/work",
                   .volatile_upper = c.auto_remove, .discard_upper = c.auto_remove, .read_only_rootfs = c.read_only, .argv = c.argv,
                   .env = c.env, .cwd = c.cwd, .uid = c.uid, .gid = c.gid, .supplementary_gids = c.groups,
                   .hostname = c.hostname, .etc_hosts = c.etc_hosts, .etc_hostname = c.etc_hostname,
                   .network = c.network};
  spec.default_capabilities = !c.privileged;
  spec.mask_proc = !c.privileged;
  for (const auto& m : c.mounts) {
    SandboxMount sm;
    sm.target = m.target;
    sm.read_only = m.read_only;
    switch (m.type) {
      case MountRequest::Type::kBind:
        sm.type = SandboxMount::Type::kBind;
        sm.source = m.source;
        break;
      case MountRequest::Type::kVolume:
        sm.type = SandboxMount::Type::kBind;
        sm.source = VolumeDataDir(paths, m.source);
        break;
      case MountRequest::Type::kTmpfs:
        sm.type = SandboxMount::Type::kTmpfs;
        sm.tmpfs_options = m.tmpfs_options;
        break;
    }
    spec.mounts.push_back(std::move(sm));
  }
  if (c.network != NetworkMode::kHost || !c.etc_resolv_conf.empty())
    spec.etc_resolv_conf = c.etc_resolv_conf;
  AttachNetworksHook(paths, c, spec);
  JoinPodNamespacesHook(paths, c, spec);
  spec.tty = c.tty;
  // -p is not the sandbox's business: the container's owner forwards the
  // ports itself (portfwd.h).
  return spec;
}

Status RemoveRecords(const Paths& paths, const Config& c, bool after_answer) {
  // Uncommitted first (one rename), then removed under a lock: a kiln
  // killed half-way leaves containers/.rm-<id>, never a half record.
  std::string dir = ContainerDir(paths, c.id);
  std::string doomed = ContainersRoot(paths) + "/" + kRemovingPrefix + c.id;
  auto held = std::make_shared<UniqueFd>(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  bool renamed = false;
  if (*held) {
    (void)::flock(held->get(), LOCK_EX);
    if (::rename(dir.c_str(), doomed.c_str()) != 0)
      return Error::FromErrno("remove container record " + dir);
    renamed = true;
    if (!after_answer)
      KILN_TRY(RemoveAll(doomed));
  } else if (errno != ENOENT) {
    return Error::FromErrno("open " + dir);
  }
  std::string run_dir = RunDir(paths, c.id);
  if (after_answer) {
    // Out of sight now (a run-time directory without its record is litter
    // too); the trees go once the caller has its answer. The record's
    // lock stays held until then: the litter sweep leaves it alone.
    std::string run_doomed = paths.run_root + "/containers/" + kRemovingPrefix + c.id;
    if (::rename(run_dir.c_str(), run_doomed.c_str()) != 0)
      run_doomed = run_dir;
    // The run-time tree first: while containers/.rm-<id> exists (locked),
    // the sweep leaves run/containers/.rm-<id> alone too.
    DeferAfterAnswer([held, doomed = renamed ? doomed : std::string(), run_doomed] {
      (void)RemoveAll(run_doomed);
      if (!doomed.empty())
        (void)RemoveAll(doomed);
    });
  } else {
    (void)RemoveAll(run_dir);
  }
  for (const auto& v : c.anonymous_volumes)
    (void)RemoveAll(VolumesRoot(paths) + "/" + v);
  EmitContainerEvent(paths, c, "remove");
  return Ok();
}

}  // namespace internal

}  // namespace kiln::run
