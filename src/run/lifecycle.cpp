// A container's lifecycle settings in its record (docs/run.md, docs/secrets.md):
// --secret references (never values), the health check (the image's
// HEALTHCHECK and --health-*), the restart policy; and the values of the
// secrets, resolved at each start.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "kiln/events.h"
#include "kiln/fs.h"
#include "kiln/oci.h"
#include "kiln/secret.h"
#include "kiln/text.h"
#include "run/internal.h"

namespace kiln::run::internal {

using nlohmann::json;

void LifecycleToJson(const Config& c, json& j) {
  json secrets = json::array();
  for (const auto& s : c.secrets)
    secrets.push_back({{"name", s.name},
                       {"id", s.id},
                       {"type", s.env ? "env" : "mount"},
                       {"target", s.target},
                       {"uid", s.uid},
                       {"gid", s.gid},
                       {"mode", s.mode}});
  j["secrets"] = secrets;
  if (!c.health.test.empty())
    j["health"] = {{"test", c.health.test},
                   {"interval", c.health.interval},
                   {"timeout", c.health.timeout},
                   {"start_period", c.health.start_period},
                   {"start_interval", c.health.start_interval},
                   {"retries", c.health.retries},
                   {"on_failure", c.health.on_failure}};
  j["restart"] = {{"name", c.restart.name}, {"max_retries", c.restart.max_retries}};
}

void LifecycleFromJson(const json& j, Config& c) {
  try {
    if (j.contains("secrets") && j["secrets"].is_array())
      for (const auto& e : j["secrets"]) {
        SecretRef s;
        s.name = e.value("name", "");
        s.id = e.value("id", "");
        s.env = e.value("type", "mount") == "env";
        s.target = e.value("target", "");
        s.uid = e.value("uid", 0u);
        s.gid = e.value("gid", 0u);
        s.mode = e.value("mode", 0444u);
        c.secrets.push_back(std::move(s));
      }
    if (j.contains("health") && j["health"].is_object()) {
      const json& h = j["health"];
      c.health.test = h.value("test", std::vector<std::string>{});
      c.health.interval = h.value("interval", c.health.interval);
      c.health.timeout = h.value("timeout", c.health.timeout);
      c.health.start_period = h.value("start_period", c.health.start_period);
      c.health.start_interval = h.value("start_interval", c.health.start_interval);
      c.health.retries = h.value("retries", c.health.retries);
      c.health.on_failure = h.value("on_failure", c.health.on_failure);
    }
    if (j.contains("restart") && j["restart"].is_object()) {
      c.restart.name = j["restart"].value("name", "no");
      c.restart.max_retries = j["restart"].value("max_retries", 0);
    }
  } catch (const json::exception&) {
    // A record of another shape: no lifecycle settings rather than none at all.
  }
}

namespace {

Status SetDuration(const std::optional<std::string>& flag, const char* name, int64_t min_ns, int64_t& out) {
  if (!flag)
    return Ok();
  auto parsed = ParseGoDuration(*flag);
  int64_t ns = parsed ? *parsed : -1;
  if (ns < 0)
    return Error(Errc::kInvalidInput, std::string("invalid ") + name + " \"" + *flag +
                                          "\": want a duration such as 30s, 1m30s or 500ms");
  if (ns != 0 && ns < min_ns)
    return Error(Errc::kInvalidInput, std::string(name) + " " + *flag + " is too short: at least " +
                                          std::to_string(min_ns / 1000000) + "ms");
  out = ns;
  return Ok();
}

/// --secret NAME[,type=mount|env,target=T,uid=N,gid=N,mode=N] (podman's
/// rules and messages).
Expected<SecretRef> ParseSecretFlag(const Paths& paths, const std::string& text) {
  SecretRef s;
  std::vector<std::string> parts;
  for (size_t pos = 0;;) {
    size_t comma = text.find(',', pos);
    parts.push_back(text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  s.name = parts[0];
  if (s.name.empty() || s.name.find('=') != std::string::npos)
    return Error(Errc::kInvalidInput, "--secret " + text + ": want NAME[,type=mount|env,target=,uid=,gid=,mode=]");
  bool type_set = false, ids_set = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    size_t eq = parts[i].find('=');
    std::string key = parts[i].substr(0, eq);
    std::string value = eq == std::string::npos ? "" : parts[i].substr(eq + 1);
    auto number = [&](int base, uint32_t max, uint32_t& out) -> Status {
      char* end = nullptr;
      errno = 0;
      unsigned long n = value.empty() ? 0 : std::strtoul(value.c_str(), &end, base);
      if (value.empty() || *end != '\0' || errno != 0 || n > max)
        return Error(Errc::kInvalidInput, "--secret " + text + ": invalid " + key + " " + value);
      out = static_cast<uint32_t>(n);
      return Ok();
    };
    if (eq == std::string::npos) {
      return Error(Errc::kInvalidInput, "--secret " + text + ": option " + parts[i] + " invalid: parsing secret");
    } else if (key == "type") {
      if (value != "mount" && value != "env")
        return Error(Errc::kInvalidInput, "--secret " + text + ": type " + value + " is invalid: parsing secret");
      s.env = value == "env";
      type_set = true;
    } else if (key == "target") {
      s.target = value;
    } else if (key == "uid") {
      KILN_TRY(number(10, 0xfffffffeu, s.uid));
      ids_set = true;
    } else if (key == "gid") {
      KILN_TRY(number(10, 0xfffffffeu, s.gid));
      ids_set = true;
    } else if (key == "mode") {
      KILN_TRY(number(8, 07777, s.mode));
      ids_set = true;
    } else {
      return Error(Errc::kInvalidInput, "--secret " + text + ": option " + parts[i] + " invalid: parsing secret");
    }
  }
  (void)type_set;
  if (s.env && ids_set)
    return Error(Errc::kInvalidInput,
                 "--secret " + text + ": UID, GID, Mode options cannot be set with secret type env: parsing secret");
  if (s.env) {
    if (s.target.empty())
      s.target = s.name;
    if (s.target.find('=') != std::string::npos || s.target.find('\0') != std::string::npos)
      return Error(Errc::kInvalidInput, "--secret " + text + ": invalid variable name " + s.target);
  } else {
    if (s.target.empty())
      s.target = s.name;
    if (s.target[0] != '/')
      s.target = "/run/secrets/" + s.target;
    for (size_t pos = 0; pos < s.target.size();) {
      size_t slash = s.target.find('/', pos + 1);
      std::string comp = s.target.substr(pos + 1, slash == std::string::npos ? std::string::npos : slash - pos - 1);
      if (comp == "..")
        return Error(Errc::kInvalidInput, "--secret " + text + ": target " + s.target + " must not contain ..");
      pos = slash == std::string::npos ? s.target.size() : slash;
    }
  }
  auto info = secret::Inspect(paths.store_root, s.name);
  if (!info) {
    if (info.error().code() == Errc::kNotFound)
      return Error(Errc::kNotFound, "--secret " + text + ": no secret with name or id \"" + s.name +
                                        "\": no such secret (kiln secret ls lists them)");
    return std::move(info).error();
  }
  s.name = info->name;
  s.id = info->id;
  return s;
}

}  // namespace

Status ApplyLifecycleOptions(const Paths& paths, const RunOptions& o, const ContainerConfig& ic, Config& c) {
  for (const auto& text : o.secrets) {
    KILN_ASSIGN_OR_RETURN(SecretRef s, ParseSecretFlag(paths, text));
    for (const auto& other : c.secrets)
      if (other.env == s.env && other.target == s.target)
        return Error(Errc::kInvalidInput, "--secret " + text + ": " + s.target + " is already the target of secret " +
                                              other.name);
    c.secrets.push_back(std::move(s));
  }

  // Health: the image's, then the flags (Docker's defaults for what neither sets).
  Health& h = c.health;
  if (ic.healthcheck && !o.no_healthcheck) {
    const HealthConfig& ih = *ic.healthcheck;
    if (!ih.test.empty() && ih.test[0] != "NONE")
      h.test = ih.test;
    if (ih.interval > 0)
      h.interval = ih.interval;
    if (ih.timeout > 0)
      h.timeout = ih.timeout;
    if (ih.start_period > 0)
      h.start_period = ih.start_period;
    if (ih.start_interval > 0)
      h.start_interval = ih.start_interval;
    if (ih.retries > 0)
      h.retries = ih.retries;
  }
  if (o.health_cmd) {
    if (o.no_healthcheck)
      return Error(Errc::kInvalidInput, "cannot specify both --no-healthcheck and --health-cmd");
    if (*o.health_cmd == "none")
      h.test.clear();
    else if (o.health_cmd->empty())
      return Error(Errc::kInvalidInput, "--health-cmd: must not be empty (\"none\" disables the image's)");
    else
      h.test = {"CMD-SHELL", *o.health_cmd};
  }
  if (o.no_healthcheck)
    h.test.clear();
  KILN_TRY(SetDuration(o.health_interval, "--health-interval", 100'000'000, h.interval));
  if (o.health_interval && h.interval == 0)
    h.interval = 30'000'000'000;  // "0": Docker's default
  KILN_TRY(SetDuration(o.health_timeout, "--health-timeout", 100'000'000, h.timeout));
  if (o.health_timeout && h.timeout == 0)
    h.timeout = 30'000'000'000;
  KILN_TRY(SetDuration(o.health_start_period, "--health-start-period", 0, h.start_period));
  KILN_TRY(SetDuration(o.health_start_interval, "--health-start-interval", 100'000'000, h.start_interval));
  if (o.health_start_interval && h.start_interval == 0)
    h.start_interval = 5'000'000'000;
  if (o.health_retries) {
    if (*o.health_retries < 1)
      return Error(Errc::kInvalidInput, "--health-retries must be at least 1: " + std::to_string(*o.health_retries));
    h.retries = *o.health_retries;
  }
  const std::string& f = o.health_on_failure;
  if (f != "none" && f != "kill" && f != "restart" && f != "stop")
    return Error(Errc::kInvalidInput, "invalid --health-on-failure " + f + ": use none, kill, restart or stop");
  h.on_failure = f;

  // --restart
  const std::string& r = o.restart;
  size_t colon = r.find(':');
  std::string name = r.substr(0, colon);
  if (name.empty())
    name = "no";
  if (name != "no" && name != "always" && name != "on-failure" && name != "unless-stopped")
    return Error(Errc::kInvalidInput, "invalid --restart " + r + ": use no, always, on-failure[:N] or unless-stopped");
  c.restart.name = name;
  if (colon != std::string::npos) {
    std::string n = r.substr(colon + 1);
    if (name != "on-failure")
      return Error(Errc::kInvalidInput, "invalid --restart " + r + ": a retry count only goes with on-failure");
    if (n.empty() || n.size() > 6 || n.find_first_not_of("0123456789") != std::string::npos)
      return Error(Errc::kInvalidInput, "invalid --restart " + r + ": the retry count must be a number");
    c.restart.max_retries = std::stoi(n);
  }
  if (name != "no" && o.remove)
    return Error(Errc::kInvalidInput, "the --rm option conflicts with --restart, when the restartPolicy is not \"\" and \"no\"");
  return Ok();
}

Status ResolveSecrets(const Paths& paths, const Config& c, std::vector<std::string>& env,
                      std::vector<SandboxMount>* mounts) {
  if (c.secrets.empty())
    return Ok();
  std::string dir = RunDir(paths, c.id) + "/secrets";
  if (mounts) {
    (void)RemoveAll(dir);
    KILN_TRY(MakeDirs(dir, 0700));
  }
  int n = 0;
  for (const auto& s : c.secrets) {
    auto value = secret::ReadValue(paths.store_root, s.id);
    if (!value) {
      if (value.error().code() == Errc::kNotFound)
        return Error(Errc::kNotFound, "secret " + s.name + " (" + s.id.substr(0, 12) + ") used by container " +
                                          c.name + " no longer exists (removed with secret rm -f); "
                                          "create it again or remove the container");
      return std::move(value).error();
    }
    if (s.env) {
      std::string kv = s.target + "=" + *value;
      bool replaced = false;
      for (auto& e : env)
        if (e.compare(0, s.target.size() + 1, s.target + "=") == 0)
          e = kv, replaced = true;
      if (!replaced)
        env.push_back(kv);
      continue;
    }
    if (!mounts)
      continue;
    // Written by kiln with the mode and owner asked for (a bind mount of the
    // store's file could not have them), outside the container's layers.
    std::string path = dir + "/" + std::to_string(n++);
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd || !WriteAll(fd.get(), *value))
      return Error::FromErrno("write secret " + s.name + " for container " + c.name);
    if (::fchown(fd.get(), s.uid, s.gid) != 0)
      return Error::FromErrno("secret " + s.name + ": chown to " + std::to_string(s.uid) + ":" +
                              std::to_string(s.gid) + " (not mapped in kiln's user namespace?)");
    if (::fchmod(fd.get(), s.mode) != 0)
      return Error::FromErrno("secret " + s.name + ": chmod");
    SandboxMount m;
    m.type = SandboxMount::Type::kBind;
    m.source = path;
    m.target = s.target;
    m.read_only = true;
    mounts->push_back(std::move(m));
  }
  return Ok();
}

Status AddContainerEnv(const Paths& paths, const Config& c, std::vector<SandboxMount>& mounts) {
  auto q = [](const std::string& v) { return nlohmann::json(v).dump(); };  // Go's %q for plain text
  std::string image_id = c.image_id.substr(c.image_id.find(':') + 1);
  // Rootless: kiln's user namespace maps its root to another uid (as root
  // kiln maps 0 to 0, or has no namespace of its own).
  long inside = -1, outside = -1;
  auto map = ReadFile("/proc/self/uid_map", 1 << 16);
  bool rootless = !map || std::sscanf(map->c_str(), "%ld %ld", &inside, &outside) != 2 || outside != 0;
  std::string text = "engine=\"kiln\"\nname=" + q(c.name) + "\nid=" + q(c.id) + "\nimage=" + q(c.image) +
                     "\nimageid=" + q(image_id) + "\nrootless=" + (rootless ? "1" : "0") + "\n";
  std::string path = RunDir(paths, c.id) + "/containerenv";
  KILN_TRY(MakeDirs(RunDir(paths, c.id), 0700));
  // Run-time state (gone at reboot, written again at every start): no fsync,
  // readers still never see a partial file.
  KILN_TRY(WriteFileAtomic(path, text, AtomicWriteOptions{.mode = 0644, .durable = false}));
  SandboxMount m;
  m.type = SandboxMount::Type::kBind;
  m.source = path;
  m.target = "/run/.containerenv";
  m.read_only = true;
  mounts.push_back(std::move(m));
  return Ok();
}

void EmitContainerEvent(const Paths& paths, const Config& c, const std::string& status, std::optional<int> exit_code,
                        const std::string& health_status) {
  events::Event e;
  e.type = "container";
  e.status = status;
  e.id = c.id;
  e.name = c.name;
  e.image = c.image;
  e.exit_code = exit_code;
  e.health_status = health_status;
  e.attributes = c.labels;
  events::Append(paths.store_root, e);
}

void RemoveSecretFiles(const Paths& paths, const std::string& id) {
  (void)RemoveAll(RunDir(paths, id) + "/secrets");
}

bool HasMountSecrets(const Config& c) {
  for (const auto& s : c.secrets)
    if (!s.env)
      return true;
  return false;
}

void RemoveSecretFilesOnceMounted(const Paths& paths, const std::string& id, pid_t init_pid) {
  std::string children = "/proc/" + std::to_string(init_pid) + "/task/" + std::to_string(init_pid) + "/children";
  for (int i = 0; i < 2000; ++i) {  // 10 s at most
    auto text = ReadFile(children, 4096);
    if (!text || !text->empty())  // gone, or the process exists
      break;
    ::usleep(5000);
  }
  RemoveSecretFiles(paths, id);
}

}  // namespace kiln::run::internal
