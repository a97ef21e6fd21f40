// The commands that act on a container from outside: ps, inspect, stop,
// kill, wait, rm; the sweep of half-made records; signal names.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <ctime>
#include <deque>
#include <map>
#include <set>
#include <dirent.h>
#include <nlohmann/json.hpp>
#include <thread>

#include "kiln/fs.h"
#include "kiln/log.h"
#include "run/internal.h"

namespace kiln::run {

using namespace internal;

namespace {

bool IsHexId(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

Expected<int> RemoveContainerLitter(const Paths& paths) {
  std::string root = ContainersRoot(paths);
  DIR* d = ::opendir(root.c_str());
  if (!d)
    return errno == ENOENT ? 0 : Expected<int>(Error::FromErrno("open " + root));
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d))
    names.emplace_back(e->d_name);
  ::closedir(d);
  int removed = 0;
  for (const auto& n : names) {
    std::string p = root + "/" + n;
    bool staged = (n.rfind(kStagingPrefix, 0) == 0 && IsHexId(n.substr(std::strlen(kStagingPrefix)))) ||
                  (n.rfind(kRemovingPrefix, 0) == 0 && IsHexId(n.substr(std::strlen(kRemovingPrefix))));
    // An <id> directory without its config.json: left by a kiln before
    // records were committed by rename.
    bool headless = IsHexId(n) && !PathExists(p + "/config.json");
    if (!staged && !headless)
      continue;
    UniqueFd fd(::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0)
      continue;  // being made or removed right now
    if (headless && PathExists(p + "/config.json"))
      continue;
    if (n.rfind(kRemovingPrefix, 0) == 0)
      (void)RemoveAll(paths.run_root + "/containers/" + n);  // its run-time tree (RemoveRecords)
    if (Status st = RemoveAll(p); !st) {
      LogWarn("cannot remove the leftover container directory " + p + ": " + st.error().message());
      continue;
    }
    ++removed;
  }
  // A run-time tree being removed after its record was (RemoveRecords'
  // after_answer): its remover takes it first, so one without
  // containers/.rm-<id> beside it was left by a killed kiln.
  std::string run_root = paths.run_root + "/containers";
  if (DIR* rd = ::opendir(run_root.c_str())) {
    std::vector<std::string> run_names;
    while (struct dirent* e = ::readdir(rd))
      run_names.emplace_back(e->d_name);
    ::closedir(rd);
    for (const auto& n : run_names) {
      if (n.rfind(kRemovingPrefix, 0) != 0 || !IsHexId(n.substr(std::strlen(kRemovingPrefix))) ||
          PathExists(root + "/" + n))
        continue;
      if (RemoveAll(run_root + "/" + n))
        ++removed;
    }
  }
  return removed;
}

namespace {

std::vector<std::string> AllIds(const Paths& paths) {
  std::vector<std::string> ids;
  DIR* d = ::opendir(ContainersRoot(paths).c_str());
  if (!d)
    return ids;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (IsHexId(n) && PathExists(ContainersRoot(paths) + "/" + n + "/config.json"))
      ids.push_back(n);
  }
  ::closedir(d);
  return ids;
}

ContainerInfo InfoFrom(const Paths& paths, const Config& c) {
  ContainerInfo info{.id = c.id, .name = c.name, .image = c.image, .image_id = c.image_id, .command = c.argv,
                     .created = c.created};
  State s = EffectiveState(paths, c.id);
  info.status = s.status;
  info.exit_code = s.exit_code;
  info.started_at = s.started_at;
  info.finished_at = s.finished_at;
  info.pid = s.status == "running" ? s.pid : 0;
  info.monitor_pid = s.status == "running" ? s.monitor_pid : 0;
  // Consecutive mappings of a range as one, as podman's ps:
  // "0.0.0.0:8000-8002->80-82/tcp".
  for (size_t i = 0; i < c.ports.size();) {
    size_t j = i + 1;
    while (j < c.ports.size() && c.ports[j].host_ip == c.ports[i].host_ip && c.ports[j].udp == c.ports[i].udp &&
           c.ports[j].host_port == c.ports[j - 1].host_port + 1 &&
           c.ports[j].container_port == c.ports[j - 1].container_port + 1)
      ++j;
    std::string one = c.ports[i].str();
    if (j - i > 1) {
      const PortMapping& last = c.ports[j - 1];
      size_t arrow = one.find("->");
      size_t slash = one.rfind('/');
      one = one.substr(0, arrow) + "-" + std::to_string(last.host_port) + one.substr(arrow, slash - arrow) + "-" +
            std::to_string(last.container_port) + one.substr(slash);
    }
    info.ports.push_back(one);
    i = j;
  }
  info.port_mappings = c.ports;
  info.pod = c.pod;
  info.infra = c.infra;
  info.hostname = c.hostname;
  info.auto_remove = c.auto_remove;
  info.log_path = ContainerDir(paths, c.id) + "/ctr.log";
  info.config_json = c.json;
  info.restart_count = s.restart_count;
  info.restart_policy = c.restart.name == "on-failure" && c.restart.max_retries > 0
                            ? "on-failure:" + std::to_string(c.restart.max_retries)
                            : c.restart.name;
  if (!c.health.test.empty()) {
    // Docker's State.Health as the owner wrote it (health.cpp); "starting"
    // until the first probe.
    auto text = ReadFile(RunDir(paths, c.id) + "/health.json", 1 << 20);
    nlohmann::json h = text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
    if (h.is_object()) {
      info.health_json = h.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      if (info.status == "running")
        info.health_status = h.value("Status", "");
    }
  }
  return info;
}

/// The container's main process (first child of its init), else the init.
pid_t MainPid(pid_t init) {
  // Right after `run -d` or `start` the init may not have forked the main
  // process yet: a signal sent to the init then ended the container as a
  // set-up failure (kill -s KILL; wait printed 125, not 137). Wait for the
  // child while the init lives (at most 5 s), then fall back to the init.
  const std::string children = "/proc/" + std::to_string(init) + "/task/" + std::to_string(init) + "/children";
  for (int i = 0; i < 500; ++i) {
    auto text = ReadFile(children, 4096);
    if (!text)
      break;  // the init is gone
    long child = std::atol(text->c_str());
    if (child > 0)
      return static_cast<pid_t>(child);
    ::usleep(10000);
  }
  return init;
}

/// Blocks until the monitor of `id` releases its lock (or `timeout_ms` passes;
/// -1 = forever). True when it did.
bool WaitMonitor(const Paths& paths, const std::string& id, int timeout_ms) {
  std::string path = RunDir(paths, id) + "/monitor.lock";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd)
    return true;
  if (timeout_ms < 0) {
    while (::flock(fd.get(), LOCK_SH) != 0)
      if (errno != EINTR)
        return false;
    return true;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0)
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

Expected<std::string> ResolveContainer(const Paths& paths, const std::string& text) {
  if (text.empty())
    return Error(Errc::kInvalidInput, "empty container name");
  std::vector<std::string> ids = AllIds(paths);
  if (IsHexId(text) && std::find(ids.begin(), ids.end(), text) != ids.end())
    return text;
  for (const auto& id : ids) {
    auto c = ReadConfig(paths, id);
    if (c && c->name == text)
      return id;
  }
  if (text.size() >= 3 && text.find_first_not_of("0123456789abcdef") == std::string::npos) {
    std::vector<std::string> matches;
    for (const auto& id : ids)
      if (id.compare(0, text.size(), text) == 0)
        matches.push_back(id);
    if (matches.size() == 1)
      return matches[0];
    if (matches.size() > 1)
      return Error(Errc::kInvalidInput, "container id prefix " + text + " is ambiguous");
  }
  return Error(Errc::kNotFound, "no such container: " + text);
}

int64_t ContainerWritableSize(const Paths& paths, const std::string& id) {
  std::error_code ec;
  int64_t total = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(
           ContainerDir(paths, id) + "/upper", std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e2;
    if (it->is_regular_file(e2) && !it->is_symlink(e2))
      total += static_cast<int64_t>(it->file_size(e2));
  }
  return total;
}

Expected<std::vector<ContainerInfo>> ListContainers(const Paths& paths, bool all) {
  std::vector<ContainerInfo> out;
  for (const auto& id : AllIds(paths)) {
    auto c = ReadConfig(paths, id);
    if (!c)
      continue;
    ContainerInfo info = InfoFrom(paths, *c);
    if (!all && info.status != "running")
      continue;
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(), [](const ContainerInfo& a, const ContainerInfo& b) {
    return a.created != b.created ? a.created > b.created : a.id < b.id;
  });
  return out;
}

std::vector<std::string> ContainersUsingSecret(const Paths& paths, const std::string& secret_id) {
  std::vector<std::string> names;
  for (const auto& id : AllIds(paths)) {
    auto c = ReadConfig(paths, id);
    if (!c)
      continue;
    for (const auto& s : c->secrets)
      if (s.id == secret_id) {
        names.push_back(c->name);
        break;
      }
  }
  std::sort(names.begin(), names.end());
  return names;
}

Expected<ContainerInfo> InspectContainer(const Paths& paths, const std::string& id) {
  KILN_ASSIGN_OR_RETURN(Config c, ReadConfig(paths, id));
  return InfoFrom(paths, c);
}

Status KillContainer(const Paths& paths, const std::string& id, int signal) {
  State s = EffectiveState(paths, id);
  if (s.status != "running" || s.pid <= 0)
    return Error(Errc::kFailed, "container " + id.substr(0, 12) + " is not running");
  // The main process, SIGKILL included: its init then reports it killed
  // (exit 137, as podman) and exits, which kills whatever is left in the
  // container. SIGKILL to the init itself read as a set-up failure (125).
  pid_t target = MainPid(s.pid);
  if (::kill(target, signal) != 0 && errno != ESRCH)
    return Error::FromErrno("send signal " + std::to_string(signal) + " to container " + id.substr(0, 12));
  return Ok();
}

Status StopContainer(const Paths& paths, const std::string& id, int timeout_seconds) {
  KILN_ASSIGN_OR_RETURN(Config c, ReadConfig(paths, id));
  State s = EffectiveState(paths, id);
  if (s.status != "running" && s.status != "restarting")
    return Ok();
  // The restart policy never undoes a stop (the monitor reads this before
  // each restart, and once the restarted container runs).
  (void)UpdateState(paths, id, [](State& st) { st.stopped_by_user = true; });
  bool stopped = false;
  if (s.status == "running" && timeout_seconds > 0) {
    (void)KillContainer(paths, id, c.stop_signal > 0 ? c.stop_signal : SIGTERM);
    stopped = WaitMonitor(paths, id, timeout_seconds * 1000);
  }
  if (!stopped) {
    (void)KillContainer(paths, id, SIGKILL);
    if (!WaitMonitor(paths, id, 10000))
      return Error(Errc::kFailed, "container " + id.substr(0, 12) + " did not stop");
  }
  EmitContainerEvent(paths, c, "stop");
  return Ok();
}

Status RestartContainer(const Paths& paths, const std::string& id, int timeout_seconds) {
  KILN_TRY(StopContainer(paths, id, timeout_seconds));
  KILN_TRY(StartContainer(paths, id));
  if (auto c = ReadConfig(paths, id))
    EmitContainerEvent(paths, *c, "restart");
  return Ok();
}

Expected<int> WaitContainer(const Paths& paths, const std::string& id) {
  KILN_ASSIGN_OR_RETURN(Config c, ReadConfig(paths, id));
  (void)c;
  WaitMonitor(paths, id, -1);
  return EffectiveState(paths, id).exit_code;
}

Expected<int> WaitContainer(const Paths& paths, const std::string& id, const std::vector<std::string>& conditions,
                            int interval_ms) {
  KILN_ASSIGN_OR_RETURN(Config c, ReadConfig(paths, id));
  std::string shown = c.name.empty() ? id.substr(0, 12) : c.name;
  bool exit = conditions.empty();
  std::set<std::string> states;
  std::string health;  // a health condition asked for (for the error)
  for (const auto& cond : conditions) {
    if (cond == "exited" || cond == "stopped") {
      exit = true;
    } else if (cond == "healthy" || cond == "unhealthy") {
      if (c.health.test.empty())
        return Error(Errc::kInvalidInput,
                     "cannot use condition " + cond + ": container " + shown + " has no healthcheck");
      states.insert(cond);
      health = cond;
    } else if (cond == "created" || cond == "running") {
      states.insert(cond);
    } else {
      return Error(Errc::kInvalidInput, "invalid --condition " + cond +
                                            ": kiln knows created, running, exited, stopped, healthy, unhealthy");
    }
  }
  if (states.empty())
    return WaitContainer(paths, id);
  for (;;) {
    KILN_ASSIGN_OR_RETURN(ContainerInfo info, InspectContainer(paths, id));
    if (states.count(info.status) || (!info.health_status.empty() && states.count(info.health_status)))
      return -1;
    if (info.status == "exited" && exit)
      return info.exit_code;
    if (info.status == "exited" && !health.empty() && info.started_at.size() && !states.count("running") &&
        !states.count("created"))
      return Error(Errc::kFailed, "container " + shown + " exited (code " + std::to_string(info.exit_code) +
                                      ") without becoming " + health);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::max(interval_ms, 10)));
  }
}

Status RemoveContainer(const Paths& paths, const std::string& id, bool force) {
  KILN_ASSIGN_OR_RETURN(Config c, ReadConfig(paths, id));
  std::string status = EffectiveState(paths, id).status;
  if (status == "running" || status == "restarting") {
    if (!force)
      return Error(Errc::kFailed, "container " + id.substr(0, 12) +
                                      " is " + status + ": stop it first or use rm -f");
    (void)UpdateState(paths, id, [](State& st) { st.stopped_by_user = true; });
    (void)KillContainer(paths, id, SIGKILL);
    if (!WaitMonitor(paths, id, 10000))
      return Error(Errc::kFailed, "container " + id.substr(0, 12) + " did not stop");
  }
  KILN_ASSIGN_OR_RETURN(UniqueFd lock, LockFile(ContainersRoot(paths) + "/lock", LOCK_EX));
  return RemoveRecords(paths, c);
}

Status RenameContainer(const Paths& paths, const std::string& id, const std::string& new_name) {
  if (!ValidName(new_name))
    return Error(Errc::kInvalidInput, "invalid container name \"" + new_name +
                                          "\": names must match [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 128 characters)");
  KILN_ASSIGN_OR_RETURN(UniqueFd lock, LockFile(ContainersRoot(paths) + "/lock", LOCK_EX));
  KILN_ASSIGN_OR_RETURN(Config c, ReadConfig(paths, id));
  if (c.name == new_name)
    return Ok();
  for (const auto& other : AllIds(paths))
    if (auto o = ReadConfig(paths, other); o && o->name == new_name)
      return Error(Errc::kInvalidInput, "the container name " + new_name + " is already in use by " +
                                            other.substr(0, 12) + ": remove it or choose another name");
  c.name = new_name;
  KILN_TRY(WriteConfig(paths, c));
  EmitContainerEvent(paths, c, "rename");
  return Ok();
}

Expected<int> ParseSignal(const std::string& text) {
  std::string t = text;
  for (char& ch : t)
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (t.rfind("SIG", 0) == 0)
    t = t.substr(3);
  if (!t.empty() && t.find_first_not_of("0123456789") == std::string::npos) {
    int n = std::atoi(t.c_str());
    if (n > 0 && n < NSIG)
      return n;
    return Error(Errc::kInvalidInput, "invalid signal: " + text);
  }
  static const struct {
    const char* name;
    int sig;
  } kSignals[] = {{"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"ILL", SIGILL},
                  {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},   {"BUS", SIGBUS},   {"FPE", SIGFPE},
                  {"KILL", SIGKILL}, {"USR1", SIGUSR1},   {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
                  {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},   {"TERM", SIGTERM}, {"CHLD", SIGCHLD},
                  {"CONT", SIGCONT}, {"STOP", SIGSTOP},   {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},
                  {"TTOU", SIGTTOU}, {"URG", SIGURG},     {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
                  {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
                  {"PWR", SIGPWR},   {"SYS", SIGSYS}};
  for (const auto& s : kSignals)
    if (t == s.name)
      return s.sig;
  return Error(Errc::kInvalidInput, "invalid signal: " + text);
}

}  // namespace kiln::run
