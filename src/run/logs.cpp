// kiln logs: ctr.log and the line times in ctr.log.ts (docs/run.md).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <chrono>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <dirent.h>
#include <nlohmann/json.hpp>
#include <thread>

#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/text.h"
#include "run/internal.h"

namespace kiln::run {

using namespace internal;

namespace {

// The container's log file `path`; with `follow`, waits for it to appear
// while the monitor runs. No fd (and no error) when there is none to read.
Expected<UniqueFd> OpenLog(const Paths& paths, const std::string& id, const std::string& path, bool follow) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd)
    return fd;
  if (errno != ENOENT)
    return Error::FromErrno("open " + path);
  while (follow && !fd && MonitorAlive(paths, id)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  }
  return fd;
}

}  // namespace

namespace {

// The raw log from the last `tail` lines (all: -1, none: 0); `caught_up`
// runs once what is there now is written; `stop` ends a follow early.
Status CopyLog(const Paths& paths, const std::string& id, bool follow, int64_t tail, int out_fd,
               const std::atomic<bool>* stop, const std::function<void()>& caught_up) {
  std::string path = ContainerDir(paths, id) + "/ctr.log";
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenLog(paths, id, path, follow));
  if (!fd)
    return Ok();
  if (tail >= 0) {
    KILN_ASSIGN_OR_RETURN(std::string all, ReadAll(fd.get(), size_t(1) << 34));
    size_t pos = all.size();
    if (pos > 0 && all[pos - 1] == '\n')
      --pos;
    int64_t lines = 0;
    while (pos > 0 && lines < tail) {
      size_t nl = all.rfind('\n', pos - 1);
      if (nl == std::string::npos) {
        pos = 0;
        lines++;
        break;
      }
      lines++;
      if (lines == tail) {
        pos = nl + 1;
        break;
      }
      pos = nl;
    }
    if (tail == 0)
      pos = all.size();
    KILN_TRY(WriteAll(out_fd, std::string_view(all).substr(pos)));
  }
  if (caught_up)
    caught_up();
  char buf[65536];
  for (;;) {
    ssize_t n = ReadRetry(fd.get(), buf, sizeof buf);
    if (n < 0)
      return Error::FromErrno("read " + path);
    if (n > 0) {
      KILN_TRY(WriteAll(out_fd, buf, static_cast<size_t>(n)));
      continue;
    }
    if (!follow || (stop && stop->load()))
      return Ok();
    if (!MonitorAlive(paths, id)) {
      // One more read: output written just before the monitor exited.
      while ((n = ::read(fd.get(), buf, sizeof buf)) > 0)
        KILN_TRY(WriteAll(out_fd, buf, static_cast<size_t>(n)));
      return Ok();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(stop ? 20 : 100));
  }
}

}  // namespace

Status WriteLogs(const Paths& paths, const std::string& id, bool follow, int64_t tail, int out_fd) {
  return CopyLog(paths, id, follow, tail, out_fd, nullptr, nullptr);
}

std::string FormatLogTime(int64_t unix_ns) {
  std::string out = FormatTimeNanos(unix_ns, "%Y-%m-%dT%H:%M:%S", /*local=*/true);
  time_t secs = static_cast<time_t>(unix_ns / 1000000000);
  struct tm tm {};
  ::localtime_r(&secs, &tm);
  long off = tm.tm_gmtoff;
  if (off == 0)
    return out + "Z";
  char zone[32];
  std::snprintf(zone, sizeof zone, "%c%02ld:%02ld", off < 0 ? '-' : '+', std::labs(off) / 3600, (std::labs(off) % 3600) / 60);
  return out + zone;
}

namespace {

/// The line-start times the monitor's logger recorded (ctr.log.ts:
/// "<offset in ctr.log> <seconds>.<nanoseconds>" lines), read on as it grows.
struct LogStamps {
  std::string path;
  off_t read = 0;
  std::string partial;
  std::map<uint64_t, int64_t> at;
  bool present = false;

  void Load() {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd)
      return;
    present = true;
    if (::lseek(fd.get(), read, SEEK_SET) < 0)
      return;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) {
      read += n;
      partial.append(buf, static_cast<size_t>(n));
    }
    size_t start = 0;
    for (size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1) {
      unsigned long long off = 0;
      long long sec = 0, nsec = 0;
      if (std::sscanf(partial.c_str() + start, "%llu %lld.%lld", &off, &sec, &nsec) == 3)
        at[off] = sec * 1000000000LL + nsec;
    }
    partial.erase(0, start);
  }
  /// The time of the line that starts at `offset`; 0 when unknown.
  int64_t Find(uint64_t offset) const {
    auto it = at.find(offset);
    return it == at.end() ? 0 : it->second;
  }
};

struct LogLine {
  int64_t time;
  std::string text;  // with its newline, if it had one
};

}  // namespace

Status WriteLogs(const Paths& paths, const std::string& id, const LogOptions& o, int out_fd) {
  if (!o.timestamps && o.since_ns == 0 && o.until_ns == 0)
    return CopyLog(paths, id, o.follow, o.tail, out_fd, o.stop, o.caught_up);
  std::string path = ContainerDir(paths, id) + "/ctr.log";
  LogStamps stamps;
  stamps.path = path + ".ts";
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenLog(paths, id, path, o.follow));
  if (!fd)
    return Ok();
  uint64_t pos = 0;      // offset in ctr.log of `pending`
  std::string pending;  // read, not yet split into lines
  auto keep = [&](const LogLine& l) {
    if (l.time == 0)
      return true;  // an older kiln recorded no time: never filtered out
    if (o.since_ns != 0 && l.time < o.since_ns)
      return false;
    if (o.until_ns != 0 && l.time > o.until_ns)
      return false;
    return true;
  };
  auto render = [&](const LogLine& l) {
    return o.timestamps && l.time != 0 ? FormatLogTime(l.time) + " " + l.text : l.text;
  };
  // Complete lines of `pending` (all of it when `flush`).
  auto take_lines = [&](bool flush) {
    std::vector<LogLine> lines;
    size_t start = 0;
    for (;;) {
      size_t nl = pending.find('\n', start);
      if (nl == std::string::npos) {
        if (flush && start < pending.size()) {
          lines.push_back({stamps.Find(pos + start), pending.substr(start)});
          start = pending.size();
        }
        break;
      }
      lines.push_back({stamps.Find(pos + start), pending.substr(start, nl + 1 - start)});
      start = nl + 1;
    }
    pos += start;
    pending.erase(0, start);
    return lines;
  };
  auto read_more = [&]() -> Expected<bool> {
    char buf[65536];
    bool any = false;
    for (;;) {
      ssize_t n = ReadRetry(fd.get(), buf, sizeof buf);
      if (n < 0)
        return Error::FromErrno("read " + path);
      if (n == 0)
        return any;
      pending.append(buf, static_cast<size_t>(n));
      any = true;
    }
  };
  // What is there now: filtered, then the last `tail` lines of that.
  if (auto r = read_more(); !r)
    return r.error();
  stamps.Load();
  std::vector<LogLine> first;
  for (auto& l : take_lines(!o.follow))
    if (keep(l))
      first.push_back(std::move(l));
  size_t from = o.tail >= 0 && static_cast<size_t>(o.tail) < first.size() ? first.size() - static_cast<size_t>(o.tail) : 0;
  for (size_t i = from; i < first.size(); ++i)
    KILN_TRY(WriteAll(out_fd, render(first[i])));
  if (!o.follow)
    return Ok();
  for (;;) {
    bool alive = MonitorAlive(paths, id);
    KILN_ASSIGN_OR_RETURN(bool any, read_more());
    if (any || !alive) {
      stamps.Load();
      for (auto& l : take_lines(!alive))
        if (keep(l))
          KILN_TRY(WriteAll(out_fd, render(l)));
    }
    if (!alive)
      return Ok();
    if (o.until_ns != 0 && std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                                   .count() > o.until_ns)
      return Ok();
    if (!any)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace kiln::run
