// The pure half of applying a deployment model: a service's `kiln run -d`
// options, its names, its fingerprint, and the depends_on order.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "kiln/apply.h"
#include "kiln/digest.h"
#include "kiln/text.h"

namespace kiln::apply {

namespace {

Error Invalid(const deployment::Service& s, const std::string& key, const std::string& why) {
  return Error(Errc::kInvalidInput, "service " + s.name + ": " + key + ": " + why);
}

std::string PortFlag(const deployment::PortMapping& p) {
  std::string out;
  if (!p.host_ip.empty())
    out += (p.host_ip.find(':') != std::string::npos ? "[" + p.host_ip + "]" : p.host_ip) + ":";
  if (!p.published.empty() || !p.host_ip.empty())
    out += p.published + ":";
  out += std::to_string(p.target);
  if (p.protocol != "tcp")
    out += "/" + p.protocol;
  return out;
}

const deployment::Service* FindService(const deployment::Project& p, const std::string& name) {
  for (const auto& s : p.services)
    if (s.name == name)
      return &s;
  return nullptr;
}

/// The services `s` needs started first: its depends_on, and the service
/// whose network namespace it shares (network_mode: service:X), as docker
/// compose adds that one implicitly.
std::vector<std::string> Needs(const deployment::Service& s) {
  std::vector<std::string> out;
  for (const auto& d : s.depends_on)
    out.push_back(d.service);
  if (s.network_mode.rfind("service:", 0) == 0)
    out.push_back(s.network_mode.substr(8));
  return out;
}

}  // namespace

std::string ImageName(const deployment::Project& project, const deployment::Service& service) {
  return service.image.empty() ? project.name + "-" + service.name : service.image;
}

std::string ContainerName(const deployment::Project& project, const deployment::Service& service, int number) {
  if (!service.container_name.empty())
    return service.container_name;
  return project.name + "-" + service.name + "-" + std::to_string(number);
}

Expected<run::RunOptions> ServiceRunOptions(const deployment::Project& project, const deployment::Service& s,
                                            std::vector<std::string>* warnings) {
  auto warn = [&](const std::string& key, const std::string& why) {
    if (warnings)
      warnings->push_back("service " + s.name + ": " + key + ": " + why);
  };
  run::RunOptions o;
  o.image = ImageName(project, s);
  o.name = ContainerName(project, s);
  o.detach = true;
  // Command and entrypoint: a list entrypoint is one word for run's
  // --entrypoint, the rest before the command (and, as docker, an
  // entrypoint set here drops the image's Cmd).
  if (s.entrypoint) {
    if (s.entrypoint->empty()) {
      o.entrypoint = "";
    } else {
      o.entrypoint = s.entrypoint->front();
      o.command.assign(s.entrypoint->begin() + 1, s.entrypoint->end());
    }
  }
  if (s.command)
    o.command.insert(o.command.end(), s.command->begin(), s.command->end());
  for (const auto& e : s.environment)
    if (e.value)
      o.env.push_back(e.name + "=" + *e.value);
    else if (e.from)
      return Invalid(s, "environment." + e.name, "a value from " + e.from->kind + " is not supported by kiln yet");
  // env_file: the translator has merged its variables into `environment`.
  for (const auto& p : s.ports) {
    if (p.protocol == "sctp")
      return Invalid(s, "ports", "sctp is not supported by kiln (tcp, udp)");
    auto parsed = run::PortMapping::ParseFlag(PortFlag(p));
    if (!parsed)
      return Invalid(s, "ports", parsed.error().message());
    o.ports.insert(o.ports.end(), parsed->begin(), parsed->end());
  }
  for (const auto& v : s.volumes) {
    run::MountRequest m;
    m.target = v.target;
    m.read_only = v.read_only;
    if (v.type == "volume") {
      m.type = run::MountRequest::Type::kVolume;
      if (!v.source.empty()) {
        auto it = project.volumes.find(v.source);
        m.source = it != project.volumes.end() && !it->second.name.empty() ? it->second.name : v.source;
      }
      if (!v.subpath.empty())
        return Invalid(s, "volumes." + v.target, "volume.subpath is not supported by kiln yet");
    } else if (v.type == "bind") {
      m.type = run::MountRequest::Type::kBind;
      m.source = v.source;
      if (!v.propagation.empty() || !v.selinux.empty())
        warn("volumes." + v.target, "bind propagation/selinux left out");
    } else if (v.type == "tmpfs") {
      m.type = run::MountRequest::Type::kTmpfs;
      std::string opts;
      if (v.tmpfs_size > 0)
        opts = "size=" + std::to_string(v.tmpfs_size);
      if (v.tmpfs_mode) {
        char octal[16];
        std::snprintf(octal, sizeof octal, "%o", *v.tmpfs_mode);
        opts += (opts.empty() ? "" : ",") + std::string("mode=") + octal;
      }
      m.tmpfs_options = opts;
    } else {
      return Invalid(s, "volumes." + v.target, "mount type " + v.type + " is not supported by kiln");
    }
    o.mounts.push_back(std::move(m));
  }
  for (const auto& t : s.tmpfs) {
    auto m = run::MountRequest::ParseTmpfsFlag(t);
    if (!m)
      return Invalid(s, "tmpfs", m.error().message());
    o.mounts.push_back(*m);
  }
  // Networks: the service's name (and container name, aliases) answer on each.
  const std::string& mode = s.network_mode;
  if (mode == "host") {
    o.network = NetworkMode::kHost;
  } else if (mode == "none") {
    o.network = NetworkMode::kNone;
  } else if (mode.rfind("service:", 0) == 0) {
    const deployment::Service* other = FindService(project, mode.substr(8));
    if (!other)
      return Invalid(s, "network_mode", "no service " + mode.substr(8));
    o.network_container = ContainerName(project, *other);
  } else if (mode.rfind("container:", 0) == 0) {
    o.network_container = mode.substr(10);
  } else if (!mode.empty() && mode != "bridge" && mode != "default") {
    return Invalid(s, "network_mode", mode + " is not supported by kiln (host, none, service:NAME, container:NAME)");
  } else {
    for (const auto& a : s.networks) {
      auto it = project.networks.find(a.network);
      std::string real = it != project.networks.end() && !it->second.name.empty() ? it->second.name
                         : a.network == "default"                                 ? project.name + "_default"
                                                                                  : a.network;
      std::string spec = real + ":alias=" + s.name;
      for (const auto& al : a.aliases)
        spec += ",alias=" + al;
      if (!a.ipv4_address.empty())
        spec += ",ip=" + a.ipv4_address;
      if (!a.ipv6_address.empty())
        warn("networks." + a.network + ".ipv6_address", "IPv6 is not supported by kiln yet, left out");
      o.networks.push_back(spec);
    }
    if (s.networks.empty())
      o.networks.push_back(project.name + "_default:alias=" + s.name);
  }
  o.add_hosts.clear();
  for (const auto& h : s.extra_hosts)
    o.add_hosts.push_back(h.host + ":" + h.ip);
  o.dns_servers = s.dns;
  o.dns_search = s.dns_search;
  if (s.healthcheck) {
    const auto& h = *s.healthcheck;
    if (h.disable || (!h.test.empty() && h.test[0] == "NONE")) {
      o.no_healthcheck = true;
    } else {
      if (h.http_get || h.tcp_port)
        return Invalid(s, "healthcheck", "httpGet/tcpSocket probes are not supported by kiln yet");
      if (h.test.size() >= 2 && h.test[0] == "CMD-SHELL") {
        o.health_cmd = h.test[1];
      } else if (h.test.size() >= 2 && h.test[0] == "CMD") {
        std::string cmd;
        for (size_t i = 1; i < h.test.size(); ++i)
          cmd += (i > 1 ? " " : "") + ShellQuote(h.test[i]);
        o.health_cmd = cmd;
      }
      if (h.interval_ns)
        o.health_interval = deployment::FormatDuration(*h.interval_ns);
      if (h.timeout_ns)
        o.health_timeout = deployment::FormatDuration(*h.timeout_ns);
      if (h.start_period_ns)
        o.health_start_period = deployment::FormatDuration(*h.start_period_ns);
      if (h.start_interval_ns)
        o.health_start_interval = deployment::FormatDuration(*h.start_interval_ns);
      o.health_retries = h.retries;
    }
  }
  o.restart = s.restart.empty() ? "no" : s.restart;
  o.hostname = s.hostname;
  if (!s.platform.empty())
    warn("platform", "left out (the image of this host's platform runs)");
  if (!s.domainname.empty())
    warn("domainname", "not supported by kiln yet, left out");
  o.workdir = s.working_dir;
  o.user = s.user;
  for (const auto& r : s.secrets) {
    auto it = project.secrets.find(r.source);
    std::string spec = it != project.secrets.end() && !it->second.name.empty() ? it->second.name : r.source;
    spec += ",type=mount,target=" + (r.target.empty() ? "/run/secrets/" + r.source
                                      : r.target[0] == '/' ? r.target
                                                           : "/run/secrets/" + r.target);
    if (!r.uid.empty())
      spec += ",uid=" + r.uid;
    if (!r.gid.empty())
      spec += ",gid=" + r.gid;
    if (r.mode) {
      char octal[16];
      std::snprintf(octal, sizeof octal, "%o", *r.mode);
      spec += std::string(",mode=") + octal;
    }
    o.secrets.push_back(spec);
  }
  o.stop_signal = s.stop_signal;
  if (s.init)
    o.init = *s.init;
  o.read_only = s.read_only;
  o.tty = s.tty;
  if (!s.cap_add.empty() || !s.cap_drop.empty())
    warn("cap_add/cap_drop", "not supported by kiln yet, left out");
  if (s.privileged)
    warn("privileged", "not supported by kiln, left out");
  if (!s.mem_limit.empty())
    o.memory = s.mem_limit;
  if (!s.cpus.empty()) {
    try {
      o.cpus = std::stod(s.cpus);
    } catch (...) {
      return Invalid(s, "cpus", "not a number: " + s.cpus);
    }
  }
  if (s.pull_policy == "always" || s.pull_policy == "never" || s.pull_policy == "missing")
    o.pull = s.pull_policy;
  else if (s.pull_policy == "if_not_present")
    o.pull = "missing";
  else if (s.pull_policy == "build")
    o.pull = "never";
  // Labels: the service's, then compose's own (which win).
  for (const auto& [k, v] : s.labels)
    o.labels.push_back(k + "=" + v);
  for (const auto& [k, v] : s.annotations)
    o.annotations.push_back(k + "=" + v);
  o.labels.push_back(std::string(kProjectLabel) + "=" + project.name);
  o.labels.push_back(std::string(kServiceLabel) + "=" + s.name);
  o.labels.push_back(std::string(kNumberLabel) + "=1");
  o.labels.push_back(std::string(kOneoffLabel) + "=False");
  if (!project.working_dir.empty())
    o.labels.push_back(std::string(kWorkingDirLabel) + "=" + project.working_dir);
  std::string files;
  for (const auto& f : project.config_files)
    files += (files.empty() ? "" : ",") + f;
  if (!files.empty())
    o.labels.push_back(std::string(kConfigFilesLabel) + "=" + files);
  std::string deps;
  for (const auto& d : s.depends_on)
    deps += (deps.empty() ? "" : ",") + d.service + ":" + d.condition + ":" + (d.restart ? "true" : "false");
  if (!deps.empty())
    o.labels.push_back(std::string(kDependsOnLabel) + "=" + deps);
  return o;
}

std::string ConfigHash(const run::RunOptions& o) {
  std::string text;
  auto add = [&](const std::string& k, const std::string& v) { text += k + "\x1f" + v + "\x1e"; };
  auto addv = [&](const std::string& k, const std::vector<std::string>& v) {
    std::string j;
    for (const auto& x : v)
      j += x + "\x1d";
    add(k, j);
  };
  add("image", o.image);
  add("name", o.name);
  addv("command", o.command);
  add("entrypoint", o.entrypoint ? "1" + *o.entrypoint : "0");
  addv("env", o.env);
  std::vector<std::string> ports;
  for (const auto& p : o.ports)
    ports.push_back(p.str());
  addv("ports", ports);
  std::vector<std::string> mounts;
  for (const auto& m : o.mounts)
    mounts.push_back(std::to_string(static_cast<int>(m.type)) + "|" + m.source + "|" + m.target + "|" +
                     (m.read_only ? "ro" : "rw") + "|" + m.tmpfs_options);
  addv("mounts", mounts);
  add("network", std::to_string(static_cast<int>(o.network)) + "|" + o.network_container);
  addv("networks", o.networks);
  addv("add_hosts", o.add_hosts);
  addv("dns", o.dns_servers);
  addv("dns_search", o.dns_search);
  add("health", (o.health_cmd ? "1" + *o.health_cmd : "0") + "|" + o.health_interval.value_or("") + "|" +
                    o.health_timeout.value_or("") + "|" + o.health_start_period.value_or("") + "|" +
                    o.health_start_interval.value_or("") + "|" +
                    (o.health_retries ? std::to_string(*o.health_retries) : "") + "|" +
                    (o.no_healthcheck ? "none" : ""));
  add("restart", o.restart);
  add("hostname", o.hostname);
  add("workdir", o.workdir);
  add("user", o.user);
  addv("secrets", o.secrets);
  // compose's own labels are left out, as docker's hash leaves out
  // depends_on, profiles and the file names: adding an override file or a
  // dependency recreates nothing.
  std::vector<std::string> labels;
  for (const auto& l : o.labels)
    if (l.rfind("com.docker.compose.", 0) != 0)
      labels.push_back(l);
  addv("labels", labels);
  addv("annotations", o.annotations);
  add("flags", std::string(o.init ? "i" : "") + (o.read_only ? "r" : "") + (o.tty ? "t" : ""));
  add("limits", o.memory.value_or("") + "|" + (o.cpus ? std::to_string(*o.cpus) : ""));
  return Digest::Of(text).hex();
}

Expected<std::vector<std::string>> SelectServices(const deployment::Project& project,
                                                  const std::vector<std::string>& names, bool no_deps) {
  std::set<std::string> want;
  std::function<Status(const std::string&)> add = [&](const std::string& name) -> Status {
    const deployment::Service* s = FindService(project, name);
    if (!s)
      return Error(Errc::kInvalidInput, "no such service: " + name);
    if (!want.insert(name).second)
      return Ok();
    if (!no_deps)
      for (const auto& d : Needs(*s))
        if (FindService(project, d))
          if (auto st = add(d); !st)
            return st;
    return Ok();
  };
  if (names.empty()) {
    for (const auto& s : project.services)
      want.insert(s.name);
  } else {
    for (const auto& n : names)
      if (auto st = add(n); !st)
        return st.error();
  }
  std::vector<std::string> out;
  for (const auto& level : StartLevels(project, std::vector<std::string>(want.begin(), want.end())))
    out.insert(out.end(), level.begin(), level.end());
  return out;
}

std::vector<std::vector<std::string>> StartLevels(const deployment::Project& project,
                                                  const std::vector<std::string>& selected) {
  std::set<std::string> left(selected.begin(), selected.end());
  std::set<std::string> done;
  std::vector<std::vector<std::string>> levels;
  while (!left.empty()) {
    std::vector<std::string> level;
    for (const auto& name : left) {
      const deployment::Service* s = FindService(project, name);
      bool ready = true;
      if (s)
        for (const auto& d : Needs(*s))
          if (left.count(d) && !done.count(d))
            ready = false;
      if (ready)
        level.push_back(name);
    }
    if (level.empty())  // a cycle (the translator refuses them): the rest in one level
      level.assign(left.begin(), left.end());
    for (const auto& n : level) {
      left.erase(n);
      done.insert(n);
    }
    levels.push_back(std::move(level));
  }
  return levels;
}

}  // namespace kiln::apply
