// The event log (include/kiln/events.h): JSON lines, one O_APPEND write each.
#include "kiln/events.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/text.h"

namespace kiln::events {

using nlohmann::json;

namespace {

constexpr off_t kTurnOverBytes = 1 << 20;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// "2026-12-05T01:13:18.64318707Z": UTC, nanoseconds, trailing zeros trimmed
/// (Go's RFC3339Nano, as podman's JSON).
std::string Rfc3339Nano(int64_t ns) { return FormatTimeNanos(ns, "%Y-%m-%dT%H:%M:%S") + "Z"; }

int64_t ParseRfc3339Nano(const std::string& t) {
  struct tm tm {};
  if (t.size() < 20 || !strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm))
    return 0;
  int64_t ns = static_cast<int64_t>(timegm(&tm)) * 1000000000;
  if (t.size() > 20 && t[19] == '.') {
    std::string frac;
    for (size_t i = 20; i < t.size() && isdigit(static_cast<unsigned char>(t[i])); ++i)
      frac += t[i];
    frac.resize(9, '0');
    ns += std::stoll(frac);
  }
  return ns;
}

std::vector<Event> ReadFileEvents(const std::string& path) {
  std::vector<Event> out;
  auto text = ReadFile(path, 64 << 20);
  if (!text)
    return out;
  size_t pos = 0;
  while (pos < text->size()) {
    size_t nl = text->find('\n', pos);
    if (nl == std::string::npos)
      break;  // a line being written
    if (auto e = FromJson(text->substr(pos, nl - pos)))
      out.push_back(std::move(*e));
    pos = nl + 1;
  }
  return out;
}

}  // namespace

std::string LogPath(const std::string& store_root) { return store_root + "/events/events.log"; }

void Append(const std::string& store_root, Event e) {
  if (e.time_ns == 0)
    e.time_ns = NowNs();
  std::string line = ToJson(e) + "\n";
  std::string path = LogPath(store_root);
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
  if (!fd && errno == ENOENT) {
    (void)MakeDirs(DirName(path), 0700);
    fd.reset(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
  }
  if (!fd) {
    LogDebug("event not recorded: open " + path + ": " + std::strerror(errno));
    return;
  }
  // Shared lock: writers append at once; the turn-over takes it exclusively.
  (void)::flock(fd.get(), LOCK_SH);
  if (!WriteAll(fd.get(), line))
    LogDebug("event not recorded: write " + path + ": " + std::strerror(errno));
  struct stat st;
  bool full = ::fstat(fd.get(), &st) == 0 && st.st_size > kTurnOverBytes;
  (void)::flock(fd.get(), LOCK_UN);
  if (full && ::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) {
    struct stat now;
    // Still the same full file (no other writer turned it over meanwhile).
    if (::stat(path.c_str(), &now) == 0 && now.st_ino == st.st_ino)
      (void)::rename(path.c_str(), (path + ".1").c_str());
  }
}

void Record(const std::string& store_root, const std::string& type, const std::string& status,
            const std::string& id, const std::string& name, const std::string& network) {
  Event e{type, status, id, name, "", network};
  if (type == "network" && (status == "create" || status == "remove"))
    e.attributes["driver"] = "bridge";
  Append(store_root, std::move(e));
}

/// The string fields podman leaves out when empty, in its key order.
constexpr std::pair<const char*, std::string Event::*> kNamedFields[] = {
    {"ID", &Event::id}, {"Image", &Event::image}, {"Name", &Event::name}, {"Network", &Event::network}};

std::string ToJson(const Event& e) {
  // podman's key order: ContainerExitCode, ID, Image, Name, Network, Status, Time, Type, Attributes.
  std::string out = "{";
  auto put = [&](const char* k, const json& v) {
    if (out.size() > 1)
      out += ",";
    out += json(k).dump() + ":" + v.dump(-1, ' ', false, json::error_handler_t::replace);
  };
  if (e.exit_code)
    put("ContainerExitCode", *e.exit_code);
  for (const auto& [key, field] : kNamedFields)
    if (!(e.*field).empty())
      put(key, e.*field);
  put("Status", e.status);
  put("Time", Rfc3339Nano(e.time_ns));
  put("Type", e.type);
  if (!e.health_status.empty())
    put("HealthStatus", e.health_status);
  put("Attributes", e.attributes.empty() ? json(nullptr) : json(e.attributes));
  return out + "}";
}

Expected<Event> FromJson(const std::string& line) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Error(Errc::kCorrupt, "bad event line");
  Event e;
  try {
    e.type = j.value("Type", "");
    e.status = j.value("Status", "");
    for (const auto& [key, field] : kNamedFields)
      e.*field = j.value(key, "");
    e.time_ns = ParseRfc3339Nano(j.value("Time", ""));
    if (j.contains("ContainerExitCode") && j["ContainerExitCode"].is_number_integer())
      e.exit_code = j["ContainerExitCode"].get<int>();
    e.health_status = j.value("HealthStatus", "");
    if (j.contains("Attributes") && j["Attributes"].is_object())
      e.attributes = j["Attributes"].get<std::map<std::string, std::string>>();
  } catch (const json::exception&) {
    return Error(Errc::kCorrupt, "bad event line");
  }
  return e;
}

std::string ToText(const Event& e) {
  std::string out = FormatTimeNanos(e.time_ns, "%Y-%m-%d %H:%M:%S");
  out += " +0000 UTC " + e.type + " " + e.status;
  if (e.type == "container") {
    out += " " + e.id + " (image=" + e.image + ", name=" + e.name;
    if (!e.health_status.empty())
      out += ", health_status=" + e.health_status;
    if (e.exit_code)
      out += ", containerExitCode=" + std::to_string(*e.exit_code);
    for (const auto& [k, v] : e.attributes)
      out += ", " + k + "=" + v;
    out += ")";
  } else if (e.type == "network" && (e.status == "create" || e.status == "remove")) {
    auto d = e.attributes.find("driver");
    out += " " + e.id + " (name=" + e.network + ", type=" + (d == e.attributes.end() ? "bridge" : d->second) + ")";
  } else if (e.type == "network") {
    out += " " + e.id + " (container=" + e.id + ", name=" + e.network + ")";
  } else if (e.type == "volume") {
    out += " " + e.name;
  } else if (e.type == "secret") {
    out += " " + e.id;
  } else {
    out += " " + e.id + " " + e.name;  // image: podman's "image pull ID NAME"
  }
  return out;
}

std::vector<Event> ReadAll(const std::string& store_root) {
  std::string path = LogPath(store_root);
  std::vector<Event> out = ReadFileEvents(path + ".1");
  std::vector<Event> current = ReadFileEvents(path);
  out.insert(out.end(), current.begin(), current.end());
  return out;
}

void Follow(const std::string& store_root, const std::function<bool(const Event&)>& on_event,
            const std::function<bool()>& keep_going, int poll_ms) {
  std::string path = LogPath(store_root);
  ino_t inode = 0;
  off_t offset = 0;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    inode = st.st_ino;
    offset = st.st_size;
  }
  std::string pending;
  for (;;) {
    // Turned over: the rest of the old file (now events.log.1), then the new one.
    if (::stat(path.c_str(), &st) == 0 && st.st_ino != inode) {
      struct stat old;
      if (inode != 0 && ::stat((path + ".1").c_str(), &old) == 0 && old.st_ino == inode) {
        UniqueFd fd(::open((path + ".1").c_str(), O_RDONLY | O_CLOEXEC));
        char buf[65536];
        ssize_t n;
        while (fd && (n = ::pread(fd.get(), buf, sizeof buf, offset)) > 0) {
          pending.append(buf, static_cast<size_t>(n));
          offset += n;
        }
      }
      inode = st.st_ino;
      offset = 0;
    }
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd) {
      char buf[65536];
      ssize_t n;
      while ((n = ::pread(fd.get(), buf, sizeof buf, offset)) > 0) {
        pending.append(buf, static_cast<size_t>(n));
        offset += n;
      }
    }
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      auto e = FromJson(pending.substr(0, nl));
      pending.erase(0, nl + 1);
      if (e && !on_event(*e))
        return;
    }
    if (!keep_going())
      return;
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
}

}  // namespace kiln::events
