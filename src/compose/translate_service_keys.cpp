// Compose service keys build, env_file, networks, depends_on, healthcheck,
// secrets and extra_hosts -> the deployment model.
#include "compose/translator.h"

namespace kiln::compose {

// --- build -----------------------------------------------------------------------

namespace {

bool IsRemoteContext(const std::string& c) {
  return c.find("://") != std::string::npos || c.rfind("git@", 0) == 0 || c.rfind("github.com/", 0) == 0;
}

}  // namespace

Status Translator::Build(const YamlNode& n, const std::string& path, Service* s) {
  deployment::BuildSpec b;
  b.context = ".";
  if (n.IsScalar()) {
    b.context = n.scalar;
  } else if (n.IsMapping()) {
    for (const auto& v : n.items) {
      std::string vp = Child(path, v.key);
      if (v.key == "context" || v.key == "dockerfile" || v.key == "dockerfile_inline" || v.key == "target" ||
          v.key == "network") {
        auto str = Str(v, vp);
        if (!str)
          return std::move(str).error();
        (v.key == "context"             ? b.context
         : v.key == "dockerfile"        ? b.dockerfile
         : v.key == "dockerfile_inline" ? b.dockerfile_inline
         : v.key == "target"            ? b.target
                                        : b.network) = *str;
      } else if (v.key == "args") {
        KILN_ASSIGN_OR_RETURN(b.args, KeyValues(v, vp));
        for (auto& [k, val] : b.args)
          if (!val)
            val = ctx_.lookup(k);  // an argument without a value comes from the environment
      } else if (v.key == "labels") {
        KILN_ASSIGN_OR_RETURN(b.labels, StringMap(v, vp));
      } else if (v.key == "cache_from" || v.key == "tags") {
        auto l = StrList(v, vp, false);
        if (!l)
          return std::move(l).error();
        (v.key == "tags" ? b.tags : b.cache_from) = *l;
      } else if (v.key == "secrets") {
        KILN_ASSIGN_OR_RETURN(b.secrets, Secrets(v, vp));
      } else if (v.key == "no_cache" || v.key == "pull") {
        auto bo = Bool(v, vp);
        if (!bo)
          return std::move(bo).error();
        (v.key == "pull" ? b.pull : b.no_cache) = *bo;
      } else if (v.key.rfind("x-", 0) != 0) {
        WarnKey(v, vp, "not supported by kiln, left out");
      }
    }
  } else {
    return NodeError(n, path, "must be a string (the context) or a mapping, not a " + KindName(n));
  }
  if (!b.dockerfile.empty() && !b.dockerfile_inline.empty())
    return NodeError(n, path, "dockerfile and dockerfile_inline are mutually exclusive");
  if (b.dockerfile.empty() && b.dockerfile_inline.empty())
    b.dockerfile = "Dockerfile";
  if (!IsRemoteContext(b.context))
    b.context = ResolvePath(b.context);
  s->build = b;
  return {};
}

// --- env_file, networks, depends_on, healthcheck, secrets, extra_hosts -------------

Status Translator::EnvFiles(const YamlNode& n, const std::string& path, Service* s) {
  std::vector<std::pair<const YamlNode*, deployment::EnvFile>> files;
  auto one = [&](const YamlNode& item, const std::string& p) -> Status {
    deployment::EnvFile f;
    if (item.IsScalar()) {
      f.path = item.scalar;
    } else if (item.IsMapping()) {
      const YamlNode* pathn = item.Find("path");
      if (!pathn)
        return NodeError(item, p, "path is required");
      KILN_ASSIGN_OR_RETURN(f.path, Str(*pathn, Child(p, "path")));
      if (const YamlNode* r = item.Find("required")) {
        KILN_ASSIGN_OR_RETURN(f.required, Bool(*r, Child(p, "required")));
      }
      for (const auto& v : item.items)
        if (v.key != "path" && v.key != "required" && v.key != "format")
          WarnKey(v, Child(p, v.key), "unknown key, left out");
    } else {
      return NodeError(item, p, "must be a string or a mapping, not a " + KindName(item));
    }
    f.path = ResolvePath(f.path);
    files.emplace_back(&item, f);
    return {};
  };
  if (n.IsSequence()) {
    for (size_t i = 0; i < n.items.size(); ++i)
      if (auto st = one(n.items[i], ItemPath(path, i)); !st)
        return st;
  } else if (auto st = one(n, path); !st) {
    return st;
  }
  // The files' variables go under `environment` (which wins over them).
  for (auto& [node, f] : files) {
    auto text = ctx_.read_file(f.path);
    if (!text) {
      if (f.required)
        return NodeError(*node, path, "env file " + f.path + " not found");
      s->env_files.push_back(f);
      continue;
    }
    auto vars = ParseDotEnv(*text, f.path, ctx_.lookup);
    if (!vars)
      return NodeError(*node, path, vars.error().message());
    for (auto& [k, v] : *vars) {
      auto it = std::find_if(s->environment.begin(), s->environment.end(),
                             [&](const deployment::EnvVar& e) { return e.name == k; });
      if (it != s->environment.end())
        it->value = v;
      else
        s->environment.push_back({k, v, std::nullopt});
    }
    s->env_files.push_back(f);
  }
  return {};
}

Status Translator::Networks(const YamlNode& n, const std::string& path, Service* s) {
  if (n.IsSequence()) {
    for (size_t i = 0; i < n.items.size(); ++i) {
      auto name = Str(n.items[i], ItemPath(path, i));
      if (!name)
        return std::move(name).error();
      s->networks.push_back({*name, {}, "", "", std::nullopt});
    }
    return {};
  }
  if (!n.IsMapping())
    return NodeError(n, path, "must be a list or a mapping, not a " + KindName(n));
  for (const auto& v : n.items) {
    std::string vp = Child(path, v.key);
    deployment::NetworkAttachment a;
    a.network = v.key;
    if (v.IsMapping()) {
      for (const auto& o : v.items) {
        std::string op = Child(vp, o.key);
        if (o.key == "aliases") {
          KILN_ASSIGN_OR_RETURN(a.aliases, StrList(o, op, false));
        } else if (o.key == "ipv4_address" || o.key == "ipv6_address") {
          auto ip = Str(o, op);
          if (!ip)
            return std::move(ip).error();
          (o.key == "ipv4_address" ? a.ipv4_address : a.ipv6_address) = *ip;
        } else if (o.key == "priority") {
          auto pr = Int(o, op, INT32_MIN, INT32_MAX);
          if (!pr)
            return std::move(pr).error();
          a.priority = static_cast<int>(*pr);
        } else {
          WarnKey(o, op, "not supported by kiln, left out");
        }
      }
    } else if (!v.IsNull()) {
      return NodeError(v, vp, "must be a mapping or empty, not a " + KindName(v));
    }
    s->networks.push_back(a);
  }
  return {};
}

Status Translator::DependsOn(const YamlNode& n, const std::string& path, Service* s) {
  if (n.IsSequence()) {
    for (size_t i = 0; i < n.items.size(); ++i) {
      auto name = Str(n.items[i], ItemPath(path, i));
      if (!name)
        return std::move(name).error();
      deployment::Dependency d;
      d.service = *name;
      s->depends_on.push_back(d);
    }
    return {};
  }
  if (!n.IsMapping())
    return NodeError(n, path, "must be a list or a mapping, not a " + KindName(n));
  for (const auto& v : n.items) {
    std::string vp = Child(path, v.key);
    deployment::Dependency d;
    d.service = v.key;
    if (v.IsMapping()) {
      for (const auto& o : v.items) {
        std::string op = Child(vp, o.key);
        if (o.key == "condition") {
          auto c = Str(o, op);
          if (!c)
            return std::move(c).error();
          if (*c != "service_started" && *c != "service_healthy" && *c != "service_completed_successfully")
            return NodeError(o, op, "unknown condition \"" + *c +
                                        "\" (service_started, service_healthy, service_completed_successfully)");
          d.condition = *c;
        } else if (o.key == "required" || o.key == "restart") {
          auto b = Bool(o, op);
          if (!b)
            return std::move(b).error();
          (o.key == "required" ? d.required : d.restart) = *b;
        } else {
          WarnKey(o, op, "unknown key, left out");
        }
      }
    } else if (!v.IsNull()) {
      return NodeError(v, vp, "must be a mapping, not a " + KindName(v));
    }
    s->depends_on.push_back(d);
  }
  return {};
}

Status Translator::HealthCheck(const YamlNode& n, const std::string& path, Service* s) {
  if (!n.IsMapping())
    return NodeError(n, path, "must be a mapping, not a " + KindName(n));
  deployment::HealthCheck h;
  for (const auto& v : n.items) {
    std::string vp = Child(path, v.key);
    if (v.key == "test") {
      if (v.IsScalar()) {
        h.test = {"CMD-SHELL", v.scalar};
      } else {
        auto l = StrList(v, vp, false);
        if (!l)
          return std::move(l).error();
        if (l->empty() || ((*l)[0] != "CMD" && (*l)[0] != "CMD-SHELL" && (*l)[0] != "NONE"))
          return NodeError(v, vp, "a list must start with CMD, CMD-SHELL or NONE");
        if ((*l)[0] == "CMD-SHELL" && l->size() != 2)
          return NodeError(v, vp, "CMD-SHELL takes exactly one string (the shell command)");
        h.test = *l;
      }
    } else if (v.key == "interval" || v.key == "timeout" || v.key == "start_period" || v.key == "start_interval") {
      auto d = Duration(v, vp);
      if (!d)
        return std::move(d).error();
      (v.key == "interval"       ? h.interval_ns
       : v.key == "timeout"      ? h.timeout_ns
       : v.key == "start_period" ? h.start_period_ns
                                 : h.start_interval_ns) = *d;
    } else if (v.key == "retries") {
      auto r = Int(v, vp, 0, INT32_MAX);
      if (!r)
        return std::move(r).error();
      h.retries = static_cast<int>(*r);
    } else if (v.key == "disable") {
      KILN_ASSIGN_OR_RETURN(h.disable, Bool(v, vp));
    } else if (v.key.rfind("x-", 0) != 0) {
      WarnKey(v, vp, "unknown key, left out");
    }
  }
  if (h.disable && !h.test.empty() && h.test[0] != "NONE")
    return NodeError(n, path, "test and disable: true are mutually exclusive");
  if (!h.test.empty() && h.test[0] == "NONE")
    h.disable = true;
  s->healthcheck = h;
  return {};
}

Expected<std::vector<deployment::SecretRef>> Translator::Secrets(const YamlNode& n, const std::string& path) {
  std::vector<deployment::SecretRef> out;
  KILN_ASSIGN_OR_RETURN(auto items, Items(n, path));
  for (const auto& [at, p] : items) {
    const YamlNode& item = *at;
    deployment::SecretRef r;
    if (item.IsScalar()) {
      r.source = item.scalar;
    } else if (item.IsMapping()) {
      for (const auto& v : item.items) {
        std::string vp = Child(p, v.key);
        if (v.key == "source" || v.key == "target" || v.key == "uid" || v.key == "gid") {
          KILN_ASSIGN_OR_RETURN((v.key == "source" ? r.source : v.key == "target" ? r.target : v.key == "uid" ? r.uid : r.gid),
                                Str(v, vp));
        } else if (v.key == "mode") {
          KILN_ASSIGN_OR_RETURN(r.mode, Mode(v, vp));
        } else {
          WarnKey(v, vp, "unknown key, left out");
        }
      }
      if (r.source.empty())
        return NodeError(item, p, "source is required");
    } else {
      return NodeError(item, p, "must be a string or a mapping, not a " + KindName(item));
    }
    out.push_back(r);
  }
  return out;
}

Status Translator::ExtraHosts(const YamlNode& n, const std::string& path, Service* s) {
  auto add = [&](const YamlNode& at, const std::string& p, const std::string& host, const std::string& ip) -> Status {
    if (host.empty() || ip.empty())
      return NodeError(at, p, "invalid extra host \"" + host + "\" (write HOST=IP or HOST:IP)");
    s->extra_hosts.push_back({host, ip});
    return {};
  };
  if (n.IsMapping()) {
    for (const auto& v : n.items) {
      if (v.IsSequence()) {
        for (size_t i = 0; i < v.items.size(); ++i) {
          auto ip = Str(v.items[i], ItemPath(Child(path, v.key), i));
          if (!ip)
            return std::move(ip).error();
          if (auto st = add(v, Child(path, v.key), v.key, *ip); !st)
            return st;
        }
        continue;
      }
      auto ip = Str(v, Child(path, v.key));
      if (!ip)
        return std::move(ip).error();
      if (auto st = add(v, Child(path, v.key), v.key, *ip); !st)
        return st;
    }
    return {};
  }
  auto l = StrList(n, path, false);
  if (!l)
    return std::move(l).error();
  for (size_t i = 0; i < l->size(); ++i) {
    const std::string& e = (*l)[i];
    size_t sep = e.find('=');
    if (sep == std::string::npos)
      sep = e.find(':');  // host:ip (the IP may hold colons: the first one separates)
    if (sep == std::string::npos)
      return NodeError(n.items[i], ItemPath(path, i), "invalid extra host \"" + e + "\" (write HOST=IP or HOST:IP)");
    std::string ip = e.substr(sep + 1);
    if (ip.size() > 2 && ip.front() == '[' && ip.back() == ']')
      ip = ip.substr(1, ip.size() - 2);
    if (auto st = add(n.items[i], ItemPath(path, i), e.substr(0, sep), ip); !st)
      return st;
  }
  return {};
}

}  // namespace kiln::compose
