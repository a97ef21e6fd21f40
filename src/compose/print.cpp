// `kiln compose config`: the model back as compose YAML, in docker compose
// config's canonical shape (long forms, absolute paths, sorted service keys).
#include <algorithm>

#include "compose/internal.h"

namespace kiln::compose {

namespace {

using deployment::Project;
using deployment::Service;

YamlNode S(const std::string& s) { return YamlNode::Str(s); }
YamlNode P(const std::string& s) { return YamlNode::Plain(s); }
YamlNode B(bool b) { return YamlNode::Plain(b ? "true" : "false"); }
YamlNode I(int64_t v) { return YamlNode::Plain(std::to_string(v)); }

YamlNode List(const std::vector<std::string>& v) { return deployment::StringSeqNode(v); }
YamlNode StrMap(const std::map<std::string, std::string>& m) { return deployment::StringMapNode(m); }

std::string Octal(uint32_t mode) {
  std::string out;
  do {
    out.insert(out.begin(), static_cast<char>('0' + (mode & 7)));
    mode >>= 3;
  } while (mode);
  return "0" + out;
}

YamlNode SecretRefs(const std::vector<deployment::SecretRef>& refs) {
  YamlNode n = YamlNode::Seq();
  for (const auto& r : refs) {
    YamlNode m = YamlNode::Map();
    m.Set("source", S(r.source));
    if (!r.target.empty())
      m.Set("target", S(r.target));
    if (!r.uid.empty())
      m.Set("uid", S(r.uid));
    if (!r.gid.empty())
      m.Set("gid", S(r.gid));
    if (r.mode)
      m.Set("mode", P(Octal(*r.mode)));
    n.items.push_back(m);
  }
  return n;
}

YamlNode HealthNode(const deployment::HealthCheck& h) {
  YamlNode n = YamlNode::Map();
  if (!h.test.empty())
    n.Set("test", List(h.test));
  if (h.timeout_ns)
    n.Set("timeout", S(deployment::FormatDuration(*h.timeout_ns)));
  if (h.interval_ns)
    n.Set("interval", S(deployment::FormatDuration(*h.interval_ns)));
  if (h.retries)
    n.Set("retries", I(*h.retries));
  if (h.start_period_ns)
    n.Set("start_period", S(deployment::FormatDuration(*h.start_period_ns)));
  if (h.start_interval_ns)
    n.Set("start_interval", S(deployment::FormatDuration(*h.start_interval_ns)));
  if (h.disable)
    n.Set("disable", B(true));
  return n;
}

YamlNode ServiceNode(const Service& s) {
  YamlNode n = YamlNode::Map();
  if (s.build) {
    const auto& b = *s.build;
    YamlNode m = YamlNode::Map();
    m.Set("context", S(b.context));
    if (!b.dockerfile.empty())
      m.Set("dockerfile", S(b.dockerfile));
    if (!b.dockerfile_inline.empty())
      m.Set("dockerfile_inline", S(b.dockerfile_inline));
    if (!b.args.empty()) {
      YamlNode a = YamlNode::Map();
      for (const auto& [k, v] : b.args)
        a.Set(k, v ? S(*v) : YamlNode::Null());
      m.Set("args", a);
    }
    if (!b.labels.empty())
      m.Set("labels", StrMap(b.labels));
    if (!b.cache_from.empty())
      m.Set("cache_from", List(b.cache_from));
    if (!b.network.empty())
      m.Set("network", S(b.network));
    if (!b.target.empty())
      m.Set("target", S(b.target));
    if (!b.secrets.empty())
      m.Set("secrets", SecretRefs(b.secrets));
    if (!b.tags.empty())
      m.Set("tags", List(b.tags));
    if (b.no_cache)
      m.Set("no_cache", B(true));
    if (b.pull)
      m.Set("pull", B(true));
    n.Set("build", m);
  }
  if (!s.annotations.empty())
    n.Set("annotations", StrMap(s.annotations));
  if (!s.cap_add.empty())
    n.Set("cap_add", List(s.cap_add));
  if (!s.cap_drop.empty())
    n.Set("cap_drop", List(s.cap_drop));
  if (s.command)
    n.Set("command", List(*s.command));
  if (!s.container_name.empty())
    n.Set("container_name", S(s.container_name));
  if (!s.cpus.empty())
    n.Set("cpus", P(s.cpus));
  if (!s.depends_on.empty()) {
    YamlNode m = YamlNode::Map();
    for (const auto& d : s.depends_on) {
      YamlNode e = YamlNode::Map();
      e.Set("condition", S(d.condition));
      if (d.restart)
        e.Set("restart", B(true));
      e.Set("required", B(d.required));
      m.Set(d.service, e);
    }
    n.Set("depends_on", m);
  }
  if (!s.dns.empty())
    n.Set("dns", List(s.dns));
  if (!s.dns_search.empty())
    n.Set("dns_search", List(s.dns_search));
  if (!s.domainname.empty())
    n.Set("domainname", S(s.domainname));
  if (s.entrypoint)
    n.Set("entrypoint", List(*s.entrypoint));
  if (!s.env_files.empty()) {
    YamlNode l = YamlNode::Seq();
    for (const auto& f : s.env_files) {
      YamlNode e = YamlNode::Map();
      e.Set("path", S(f.path));
      e.Set("required", B(f.required));
      l.items.push_back(e);
    }
    n.Set("env_file", l);
  }
  if (!s.environment.empty()) {
    YamlNode m = YamlNode::Map();
    for (const auto& e : s.environment)
      m.Set(e.name, e.value ? S(*e.value) : YamlNode::Null());
    n.Set("environment", m);
  }
  if (!s.expose.empty())
    n.Set("expose", List(s.expose));
  if (!s.extra_hosts.empty()) {
    YamlNode l = YamlNode::Seq();
    for (const auto& h : s.extra_hosts)
      l.items.push_back(S(h.host + "=" + h.ip));
    n.Set("extra_hosts", l);
  }
  if (s.healthcheck)
    n.Set("healthcheck", HealthNode(*s.healthcheck));
  if (!s.hostname.empty())
    n.Set("hostname", S(s.hostname));
  if (!s.image.empty())
    n.Set("image", S(s.image));
  if (s.init)
    n.Set("init", B(*s.init));
  if (!s.labels.empty())
    n.Set("labels", StrMap(s.labels));
  if (!s.mem_limit.empty())
    n.Set("mem_limit", S(s.mem_limit));
  if (!s.network_mode.empty())
    n.Set("network_mode", S(s.network_mode));
  if (!s.networks.empty()) {
    YamlNode m = YamlNode::Map();
    for (const auto& a : s.networks) {
      if (a.aliases.empty() && a.ipv4_address.empty() && a.ipv6_address.empty() && !a.priority) {
        m.Set(a.network, YamlNode::Null());
        continue;
      }
      YamlNode e = YamlNode::Map();
      if (!a.aliases.empty())
        e.Set("aliases", List(a.aliases));
      if (!a.ipv4_address.empty())
        e.Set("ipv4_address", S(a.ipv4_address));
      if (!a.ipv6_address.empty())
        e.Set("ipv6_address", S(a.ipv6_address));
      if (a.priority)
        e.Set("priority", I(*a.priority));
      m.Set(a.network, e);
    }
    n.Set("networks", m);
  }
  if (!s.platform.empty())
    n.Set("platform", S(s.platform));
  if (!s.ports.empty()) {
    YamlNode l = YamlNode::Seq();
    for (const auto& p : s.ports) {
      YamlNode e = YamlNode::Map();
      if (!p.name.empty())
        e.Set("name", S(p.name));
      if (!p.mode.empty())
        e.Set("mode", S(p.mode));
      if (!p.host_ip.empty())
        e.Set("host_ip", S(p.host_ip));
      e.Set("target", I(p.target));
      if (!p.published.empty())
        e.Set("published", S(p.published));
      e.Set("protocol", S(p.protocol));
      if (!p.app_protocol.empty())
        e.Set("app_protocol", S(p.app_protocol));
      l.items.push_back(e);
    }
    n.Set("ports", l);
  }
  if (s.privileged)
    n.Set("privileged", B(true));
  if (!s.profiles.empty())
    n.Set("profiles", List(s.profiles));
  if (!s.pull_policy.empty())
    n.Set("pull_policy", S(s.pull_policy));
  if (s.read_only)
    n.Set("read_only", B(true));
  if (!s.restart.empty())
    n.Set("restart", S(s.restart));
  if (!s.secrets.empty())
    n.Set("secrets", SecretRefs(s.secrets));
  if (s.stdin_open)
    n.Set("stdin_open", B(true));
  if (s.stop_grace_period_ns)
    n.Set("stop_grace_period", S(deployment::FormatDuration(*s.stop_grace_period_ns)));
  if (!s.stop_signal.empty())
    n.Set("stop_signal", S(s.stop_signal));
  if (!s.tmpfs.empty())
    n.Set("tmpfs", List(s.tmpfs));
  if (s.tty)
    n.Set("tty", B(true));
  if (!s.user.empty())
    n.Set("user", S(s.user));
  if (!s.volumes.empty()) {
    YamlNode l = YamlNode::Seq();
    for (const auto& v : s.volumes) {
      YamlNode e = YamlNode::Map();
      e.Set("type", S(v.type));
      if (!v.source.empty())
        e.Set("source", S(v.source));
      e.Set("target", S(v.target));
      if (v.read_only)
        e.Set("read_only", B(true));
      if (v.type == "bind") {
        YamlNode b = YamlNode::Map();
        if (!v.propagation.empty())
          b.Set("propagation", S(v.propagation));
        b.Set("create_host_path", B(v.create_host_path));
        if (!v.selinux.empty())
          b.Set("selinux", S(v.selinux));
        e.Set("bind", b);
      } else if (v.type == "volume") {
        YamlNode o = YamlNode::Map();
        if (v.nocopy)
          o.Set("nocopy", B(true));
        if (!v.subpath.empty())
          o.Set("subpath", S(v.subpath));
        e.Set("volume", o);
      } else if (v.type == "tmpfs" && (v.tmpfs_size || v.tmpfs_mode)) {
        YamlNode t = YamlNode::Map();
        if (v.tmpfs_size)
          t.Set("size", I(v.tmpfs_size));
        if (v.tmpfs_mode)
          t.Set("mode", P(Octal(*v.tmpfs_mode)));
        e.Set("tmpfs", t);
      }
      l.items.push_back(e);
    }
    n.Set("volumes", l);
  }
  if (!s.working_dir.empty())
    n.Set("working_dir", S(s.working_dir));
  return n;
}

YamlNode ProjectNode(const Project& p) {
  YamlNode root = YamlNode::Map();
  root.Set("name", S(p.name));
  YamlNode services = YamlNode::Map();
  for (const auto& s : p.services)
    services.Set(s.name, ServiceNode(s));
  root.Set("services", services);
  if (!p.networks.empty()) {
    YamlNode m = YamlNode::Map();
    for (const auto& [k, n] : p.networks) {
      YamlNode e = YamlNode::Map();
      e.Set("name", S(n.name));
      if (!n.driver.empty())
        e.Set("driver", S(n.driver));
      if (!n.driver_opts.empty())
        e.Set("driver_opts", StrMap(n.driver_opts));
      if (!n.ipam.empty()) {
        YamlNode cfg = YamlNode::Seq();
        for (const auto& pool : n.ipam) {
          YamlNode c = YamlNode::Map();
          if (!pool.subnet.empty())
            c.Set("subnet", S(pool.subnet));
          if (!pool.ip_range.empty())
            c.Set("ip_range", S(pool.ip_range));
          if (!pool.gateway.empty())
            c.Set("gateway", S(pool.gateway));
          cfg.items.push_back(c);
        }
        YamlNode ipam = YamlNode::Map();
        ipam.Set("config", cfg);
        e.Set("ipam", ipam);
      }
      if (n.external)
        e.Set("external", B(true));
      if (n.internal)
        e.Set("internal", B(true));
      if (n.attachable)
        e.Set("attachable", B(true));
      if (n.enable_ipv6)
        e.Set("enable_ipv6", B(*n.enable_ipv6));
      if (!n.labels.empty())
        e.Set("labels", StrMap(n.labels));
      m.Set(k, e);
    }
    root.Set("networks", m);
  }
  if (!p.volumes.empty()) {
    YamlNode m = YamlNode::Map();
    for (const auto& [k, v] : p.volumes) {
      YamlNode e = YamlNode::Map();
      e.Set("name", S(v.name));
      if (!v.driver.empty())
        e.Set("driver", S(v.driver));
      if (!v.driver_opts.empty())
        e.Set("driver_opts", StrMap(v.driver_opts));
      if (v.external)
        e.Set("external", B(true));
      if (!v.labels.empty())
        e.Set("labels", StrMap(v.labels));
      m.Set(k, e);
    }
    root.Set("volumes", m);
  }
  if (!p.secrets.empty()) {
    YamlNode m = YamlNode::Map();
    for (const auto& [k, s] : p.secrets) {
      YamlNode e = YamlNode::Map();
      e.Set("name", S(s.name));
      if (!s.file.empty())
        e.Set("file", S(s.file));
      if (!s.environment.empty())
        e.Set("environment", S(s.environment));
      if (s.external)
        e.Set("external", B(true));
      m.Set(k, e);
    }
    root.Set("secrets", m);
  }
  return root;
}

// A '$' left in a value would be interpolated again when the output is
// loaded: written as "$$", as docker compose config does.
void EscapeDollars(YamlNode* n) {
  auto esc = [](std::string* s) {
    for (size_t i = s->find('$'); i != std::string::npos; i = s->find('$', i + 2))
      s->insert(i, 1, '$');
  };
  esc(&n->scalar);
  esc(&n->key);
  for (auto& c : n->items)
    EscapeDollars(&c);
}

YamlNode OutputNode(const Project& p) {
  YamlNode n = ProjectNode(p);
  EscapeDollars(&n);
  return n;
}

}  // namespace

std::string ConfigYaml(const deployment::Project& project) { return EmitYaml(OutputNode(project)); }

nlohmann::json ConfigJson(const deployment::Project& project) { return ToJson(OutputNode(project)); }

}  // namespace kiln::compose
