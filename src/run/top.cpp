// `kiln top` (include/kiln/run.h TopContainer): the processes of a running
// container, read from /proc as podman's psgo does, in podman's columns.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "kiln/fs.h"
#include "kiln/text.h"
#include "run/internal.h"

namespace kiln::run {

using namespace internal;

namespace {

struct Proc {
  pid_t pid = 0;     ///< host
  pid_t ppid = 0;    ///< host
  pid_t ns_pid = 0;  ///< in the container
  std::string comm, args, tty;
  long uid = -1, gid = -1;
  long long utime = 0, stime = 0, start = 0, vsize = 0, nice = 0;
};

/// "1h2m3.5s" as Go's time.Duration.String() (podman's ELAPSED and TIME).
std::string GoDuration(double secs) {
  if (secs < 1)
    return secs <= 0 ? "0s" : std::to_string(static_cast<long>(secs * 1000)) + "ms";
  long whole = static_cast<long>(secs);
  std::string out;
  if (whole >= 3600)
    out += std::to_string(whole / 3600) + "h";
  if (whole >= 60)
    out += std::to_string(whole / 60 % 60) + "m";
  char s[32];
  std::snprintf(s, sizeof s, "%.9g", secs - static_cast<double>(whole / 60 * 60));
  return out + s + "s";
}

std::optional<Proc> ReadProc(pid_t pid) {
  std::string base = "/proc/" + std::to_string(pid);
  auto stat = ReadFile(base + "/stat", 4096);
  auto status = ReadFile(base + "/status", 16384);
  if (!stat || !status)
    return std::nullopt;
  Proc p;
  p.pid = pid;
  size_t open = stat->find('('), close = stat->rfind(')');
  if (open == std::string::npos || close == std::string::npos)
    return std::nullopt;
  p.comm = stat->substr(open + 1, close - open - 1);
  std::vector<std::string> f;  // from field 3 (state) on
  size_t pos = close + 2;
  while (pos < stat->size()) {
    size_t sp = stat->find(' ', pos);
    if (sp == std::string::npos)
      sp = stat->size();
    f.push_back(stat->substr(pos, sp - pos));
    pos = sp + 1;
  }
  if (f.size() < 21)
    return std::nullopt;
  p.ppid = std::atoi(f[1].c_str());
  int tty_nr = std::atoi(f[4].c_str());
  p.utime = std::atoll(f[11].c_str());
  p.stime = std::atoll(f[12].c_str());
  p.nice = std::atoll(f[16].c_str());
  p.start = std::atoll(f[19].c_str());
  p.vsize = std::atoll(f[20].c_str());
  int major = (tty_nr >> 8) & 0xfff, minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
  p.tty = tty_nr == 0 ? "?" : major == 136 ? "pts/" + std::to_string(minor) : "tty" + std::to_string(minor);
  for (size_t at = 0; at < status->size();) {
    size_t nl = status->find('\n', at);
    if (nl == std::string::npos)
      nl = status->size();
    std::string line = status->substr(at, nl - at);
    at = nl + 1;
    if (line.rfind("Uid:", 0) == 0)
      p.uid = std::atol(line.c_str() + 4);  // the real uid
    else if (line.rfind("Gid:", 0) == 0)
      p.gid = std::atol(line.c_str() + 4);
    else if (line.rfind("NSpid:", 0) == 0)
      p.ns_pid = std::atoi(line.c_str() + line.find_last_of(" \t") + 1);  // the innermost
  }
  if (auto cmdline = ReadFile(base + "/cmdline", 65536); cmdline && !cmdline->empty()) {
    std::string a = *cmdline;
    while (!a.empty() && a.back() == '\0')
      a.pop_back();
    for (char& ch : a)
      if (ch == '\0')
        ch = ' ';
    p.args = a;
  } else {
    p.args = "[" + p.comm + "]";
  }
  return p;
}

/// An id as the reader sees it -> the container's, through /proc/INIT/{uid,gid}_map
/// (each line: inside outside count). Unmapped: the id as is.
long ToContainerId(long id, const std::string& map, bool same_namespace) {
  if (same_namespace || id < 0)
    return id;
  for (std::string_view line : SplitLines(map)) {
    long inside = 0, outside = 0, count = 0;
    if (std::sscanf(std::string(line).c_str(), "%ld %ld %ld", &inside, &outside, &count) == 3 && id >= outside &&
        id < outside + count)
      return inside + (id - outside);
  }
  return id;
}

/// NAME:...:ID:... lines of the container's /etc/passwd or /etc/group.
std::map<long, std::string> NamesById(const std::string& text) {
  std::map<long, std::string> out;
  for (std::string_view view : SplitLines(text)) {
    std::string line(view);
    size_t c1 = line.find(':'), c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string::npos)
      continue;
    long id = std::atol(line.c_str() + c2 + 1);
    out.emplace(id, line.substr(0, c1));
  }
  return out;
}

}  // namespace

Expected<std::vector<std::vector<std::string>>> TopContainer(const Paths& paths, const std::string& id,
                                                             const std::vector<std::string>& descriptors) {
  static const std::map<std::string, std::string> kHeaders = {
      {"user", "USER"},   {"pid", "PID"},     {"ppid", "PPID"},    {"pcpu", "%CPU"},  {"etime", "ELAPSED"},
      {"tty", "TTY"},     {"time", "TIME"},   {"args", "COMMAND"}, {"comm", "COMMAND"}, {"group", "GROUP"},
      {"nice", "NI"},     {"vsz", "VSZ"},     {"uid", "UID"},      {"gid", "GID"}};
  std::vector<std::string> want = descriptors;
  if (want.empty())
    want = {"user", "pid", "ppid", "pcpu", "etime", "tty", "time", "args"};
  for (const auto& d : want)
    if (!kHeaders.count(d))
      return Error(Errc::kInvalidInput, "unknown top descriptor " + d +
                                            ": kiln knows user, pid, ppid, pcpu, etime, tty, time, args, comm, "
                                            "group, nice, vsz, uid, gid");
  KILN_ASSIGN_OR_RETURN(Config c, ReadConfig(paths, id));
  State s = EffectiveState(paths, id);
  std::string shown = c.name.empty() ? id.substr(0, 12) : c.name;
  if (s.status != "running" || s.pid <= 0)
    return Error(Errc::kFailed, "top can only be used on running containers: " + shown + " is " + s.status);
  // Every process whose ancestry reaches the container's init.
  std::map<pid_t, Proc> all;
  if (DIR* d = ::opendir("/proc")) {
    while (struct dirent* e = ::readdir(d)) {
      pid_t pid = std::atoi(e->d_name);
      if (pid > 0)
        if (auto p = ReadProc(pid))
          all.emplace(pid, std::move(*p));
    }
    ::closedir(d);
  }
  // The container's pid namespace holds them all (exec'd ones too); its
  // init's descendants, should a namespace link be unreadable.
  auto pid_ns = [](pid_t pid) {
    char buf[64] = {0};
    ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/ns/pid").c_str(), buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  };
  std::string ctr_ns = pid_ns(s.pid);
  std::vector<const Proc*> procs;
  for (const auto& [pid, p] : all) {
    if (!ctr_ns.empty() && pid_ns(pid) == ctr_ns) {
      procs.push_back(&p);
      continue;
    }
    pid_t at = pid;
    for (int depth = 0; at > 1 && at != s.pid && depth < 4096; ++depth) {
      auto it = all.find(at);
      at = it == all.end() ? 0 : it->second.ppid;
    }
    if (at == s.pid)
      procs.push_back(&p);
  }
  std::sort(procs.begin(), procs.end(), [](const Proc* a, const Proc* b) { return a->ns_pid < b->ns_pid; });
  std::set<pid_t> inside;
  for (const Proc* p : procs)
    inside.insert(p->pid);
  std::string init = "/proc/" + std::to_string(s.pid);
  char self_ns[64] = {0}, init_ns[64] = {0};
  bool same_ns = ::readlink("/proc/self/ns/user", self_ns, sizeof self_ns - 1) > 0 &&
                 ::readlink((init + "/ns/user").c_str(), init_ns, sizeof init_ns - 1) > 0 &&
                 std::string(self_ns) == init_ns;
  std::string uid_map = ReadFile(init + "/uid_map", 65536).value_or("");
  std::string gid_map = ReadFile(init + "/gid_map", 65536).value_or("");
  auto users = NamesById(ReadFile(init + "/root/etc/passwd", 1 << 20).value_or(""));
  auto groups = NamesById(ReadFile(init + "/root/etc/group", 1 << 20).value_or(""));
  double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  double uptime = std::atof(ReadFile("/proc/uptime", 256).value_or("0").c_str());

  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header;
  for (const auto& d : want)
    header.push_back(kHeaders.at(d));
  rows.push_back(header);
  for (const Proc* p : procs) {
    long uid = ToContainerId(p->uid, uid_map, same_ns), gid = ToContainerId(p->gid, gid_map, same_ns);
    double elapsed = uptime - static_cast<double>(p->start) / hz;
    double cpu = static_cast<double>(p->utime + p->stime) / hz;
    auto ppid_it = all.find(p->ppid);
    std::vector<std::string> row;
    for (const auto& d : want) {
      if (d == "user")
        row.push_back(users.count(uid) ? users[uid] : std::to_string(uid));
      else if (d == "group")
        row.push_back(groups.count(gid) ? groups[gid] : std::to_string(gid));
      else if (d == "uid")
        row.push_back(std::to_string(uid));
      else if (d == "gid")
        row.push_back(std::to_string(gid));
      else if (d == "pid")
        row.push_back(std::to_string(p->ns_pid));
      else if (d == "ppid")
        row.push_back(p->pid == s.pid || ppid_it == all.end() || !inside.count(p->ppid)
                          ? "0"
                          : std::to_string(ppid_it->second.ns_pid));
      else if (d == "pcpu") {
        char b[32];
        std::snprintf(b, sizeof b, "%.3f", elapsed > 0 ? cpu / elapsed * 100 : 0.0);
        row.push_back(b);
      } else if (d == "etime")
        row.push_back(GoDuration(elapsed));
      else if (d == "time")
        row.push_back(GoDuration(static_cast<double>(static_cast<long>(cpu))));
      else if (d == "tty")
        row.push_back(p->tty);
      else if (d == "args")
        row.push_back(p->args);
      else if (d == "comm")
        row.push_back(p->comm);
      else if (d == "nice")
        row.push_back(std::to_string(p->nice));
      else if (d == "vsz")
        row.push_back(std::to_string(p->vsize / 1024));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace kiln::run
