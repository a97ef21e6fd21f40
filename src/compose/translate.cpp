// The merged, interpolated compose tree -> deployment::Project. Every key of
// the supported subset (docs/compose.md) in its short and long forms; an
// unknown key is a warning naming it, a wrong value an error naming
// file:line:column and the key.
#include "compose/translator.h"

namespace kiln::compose {

// --- a service ---------------------------------------------------------------------

namespace {

// Keys of the compose specification kiln does not support yet: a warning
// saying so (different from an unknown key, which may be a typo).
const std::set<std::string>& UnsupportedServiceKeys() {
  static const std::set<std::string> k = {
      "annotations_file", "attach", "blkio_config", "cgroup", "cgroup_parent", "configs", "cpu_count",
      "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpuset",
      "credential_spec", "deploy", "develop", "device_cgroup_rules", "devices", "dns_opt", "env_from",
      "external_links", "gpus", "group_add", "ipc", "isolation", "label_file", "links", "logging",
      "mac_address", "mem_reservation", "mem_swappiness", "memswap_limit", "models", "oom_kill_disable",
      "oom_score_adj", "pid", "pids_limit", "post_start", "pre_stop", "provider", "runtime", "scale",
      "security_opt", "shm_size", "storage_opt", "sysctls", "ulimits", "use_api_socket", "userns_mode", "uts",
      "volumes_from"};
  return k;
}

// The service keys that are a plain string, a boolean, or a list of strings
// (with `true`: a single string is taken as a list of one), each into its
// field; the other keys are translated one by one below.
const std::map<std::string, std::string Service::*>& StringKeys() {
  static const std::map<std::string, std::string Service::*> k = {
      {"image", &Service::image},         {"network_mode", &Service::network_mode},
      {"container_name", &Service::container_name}, {"hostname", &Service::hostname},
      {"domainname", &Service::domainname}, {"user", &Service::user},
      {"stop_signal", &Service::stop_signal}, {"platform", &Service::platform},
      {"mem_limit", &Service::mem_limit},  {"cpus", &Service::cpus}};
  return k;
}
const std::map<std::string, bool Service::*>& BoolKeys() {
  static const std::map<std::string, bool Service::*> k = {{"privileged", &Service::privileged},
                                                           {"read_only", &Service::read_only},
                                                           {"tty", &Service::tty},
                                                           {"stdin_open", &Service::stdin_open}};
  return k;
}
const std::map<std::string, std::pair<std::vector<std::string> Service::*, bool>>& ListKeys() {
  static const std::map<std::string, std::pair<std::vector<std::string> Service::*, bool>> k = {
      {"expose", {&Service::expose, false}},  {"tmpfs", {&Service::tmpfs, true}},
      {"cap_add", {&Service::cap_add, false}}, {"cap_drop", {&Service::cap_drop, false}},
      {"dns", {&Service::dns, true}},          {"dns_search", {&Service::dns_search, true}},
      {"profiles", {&Service::profiles, false}}};
  return k;
}

}  // namespace

Expected<Service> Translator::ServiceOf(const std::string& name, const YamlNode& n) {
  Service s;
  s.name = name;
  std::string path = "services." + name;
  if (n.IsNull())
    return NodeError(n, path, "service has neither an image nor a build context specified");
  if (!n.IsMapping())
    return NodeError(n, path, "a service is a mapping, not a " + KindName(n));
  const YamlNode* env_file = nullptr;
  for (const auto& v : n.items) {
    std::string vp = Child(path, v.key);
    const std::string& k = v.key;
    Status st;
    auto str_into = [&](std::string* out) -> Status {
      if (v.IsNull())
        return {};
      KILN_ASSIGN_OR_RETURN(*out, Str(v, vp));
      return {};
    };
    auto bool_into = [&](bool* out) -> Status {
      KILN_ASSIGN_OR_RETURN(*out, Bool(v, vp));
      return {};
    };
    auto list_into = [&](std::vector<std::string>* out, bool allow_string) -> Status {
      KILN_ASSIGN_OR_RETURN(*out, StrList(v, vp, allow_string));
      return {};
    };
    if (k.rfind("x-", 0) == 0) {
      continue;
    } else if (auto str = StringKeys().find(k); str != StringKeys().end()) {
      st = str_into(&(s.*str->second));
    } else if (auto b = BoolKeys().find(k); b != BoolKeys().end()) {
      st = bool_into(&(s.*b->second));
    } else if (auto list = ListKeys().find(k); list != ListKeys().end()) {
      st = list_into(&(s.*list->second.first), list->second.second);
    } else if (k == "build") {
      st = Build(v, vp, &s);
    } else if (k == "command" || k == "entrypoint") {
      KILN_ASSIGN_OR_RETURN((k == "command" ? s.command : s.entrypoint), CommandList(v, vp));
    } else if (k == "environment") {
      KILN_ASSIGN_OR_RETURN(auto kv, KeyValues(v, vp));
      for (auto& [ek, ev] : kv) {
        if (!ev)
          ev = ctx_.lookup(ek);  // FOO alone: from the environment, else unset
        s.environment.push_back({ek, ev, std::nullopt});
      }
    } else if (k == "env_file") {
      env_file = &v;  // after environment, which wins over it
    } else if (k == "ports") {
      st = Ports(v, vp, &s);
    } else if (k == "volumes") {
      st = Volumes(v, vp, &s);
    } else if (k == "networks") {
      st = Networks(v, vp, &s);
    } else if (k == "depends_on") {
      st = DependsOn(v, vp, &s);
    } else if (k == "healthcheck") {
      st = HealthCheck(v, vp, &s);
    } else if (k == "restart") {
      st = str_into(&s.restart);
      if (st) {
        const std::string& r = s.restart;
        bool ok = r == "no" || r == "always" || r == "unless-stopped" || r == "on-failure";
        if (r.rfind("on-failure:", 0) == 0) {
          std::string count = r.substr(11);
          ok = !count.empty() && std::all_of(count.begin(), count.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
        }
        if (!ok)
          return NodeError(v, vp, "unknown restart policy \"" + r + "\" (no, always, on-failure[:N], unless-stopped)");
      }
    } else if (k == "working_dir") {
      st = str_into(&s.working_dir);
      if (st && !s.working_dir.empty() && s.working_dir[0] != '/')
        return NodeError(v, vp, "must be an absolute path, not \"" + s.working_dir + "\"");
    } else if (k == "labels" || k == "annotations") {
      KILN_ASSIGN_OR_RETURN((k == "labels" ? s.labels : s.annotations), StringMap(v, vp));
    } else if (k == "secrets") {
      KILN_ASSIGN_OR_RETURN(s.secrets, Secrets(v, vp));
    } else if (k == "stop_grace_period") {
      KILN_ASSIGN_OR_RETURN(s.stop_grace_period_ns, Duration(v, vp));
    } else if (k == "extra_hosts") {
      st = ExtraHosts(v, vp, &s);
    } else if (k == "init") {
      KILN_ASSIGN_OR_RETURN(s.init, Bool(v, vp));
    } else if (k == "pull_policy") {
      st = str_into(&s.pull_policy);
      if (st && !s.pull_policy.empty() && s.pull_policy != "always" && s.pull_policy != "never" &&
          s.pull_policy != "missing" && s.pull_policy != "build" && s.pull_policy != "if_not_present")
        return NodeError(v, vp, "unknown pull policy \"" + s.pull_policy + "\" (always, never, missing, build)");
    } else if (k == "extends") {
      WarnKey(v, vp, "extends is not supported yet: left out, the service is used without what it extends");
    } else if (UnsupportedServiceKeys().count(k)) {
      WarnKey(v, vp, "not supported by kiln yet, left out");
    } else {
      WarnKey(v, vp, "unknown key, left out");
    }
    if (!st)
      return std::move(st).error();
  }
  std::sort(s.environment.begin(), s.environment.end(),
            [](const deployment::EnvVar& a, const deployment::EnvVar& b) { return a.name < b.name; });
  if (env_file) {
    std::vector<deployment::EnvVar> explicit_env = s.environment;
    s.environment.clear();
    if (auto st = EnvFiles(*env_file, Child(path, "env_file"), &s); !st)
      return std::move(st).error();
    for (const auto& e : explicit_env) {
      auto it = std::find_if(s.environment.begin(), s.environment.end(),
                             [&](const deployment::EnvVar& x) { return x.name == e.name; });
      if (it != s.environment.end())
        *it = e;
      else
        s.environment.push_back(e);
    }
    std::sort(s.environment.begin(), s.environment.end(),
              [](const deployment::EnvVar& a, const deployment::EnvVar& b) { return a.name < b.name; });
  }
  if (s.image.empty() && !s.build)
    return NodeError(n, path, "service has neither an image nor a build context specified");
  if (!s.network_mode.empty() && !s.networks.empty())
    return NodeError(n, path, "network_mode and networks cannot be combined");
  if (s.network_mode.empty() && s.networks.empty())
    s.networks.push_back({"default", {}, "", "", std::nullopt});
  return s;
}

Status Translator::Check(const YamlNode& root, Project* p, const std::map<std::string, const YamlNode*>& nodes,
                         const std::set<std::string>& disabled) {
  std::set<std::string> names;
  for (const auto& s : p->services)
    names.insert(s.name);
  bool uses_default = false;
  for (auto& s : p->services) {
    YamlNode at = *nodes.at(s.name);
    at.mark = at.key_mark;  // errors about the whole service point at its name
    std::string path = "services." + s.name;
    std::vector<deployment::Dependency> kept;
    for (const auto& d : s.depends_on) {
      if (names.count(d.service)) {
        kept.push_back(d);
        continue;
      }
      if (!disabled.count(d.service))
        return NodeError(at, path + ".depends_on", "service \"" + s.name + "\" depends on undefined service \"" +
                                                       d.service + "\"");
      if (d.required)
        return NodeError(at, path + ".depends_on",
                         "service \"" + s.name + "\" depends on service \"" + d.service +
                             "\", which no active profile enables (add --profile for it, or required: false)");
      Warn(at, path + ".depends_on", "service \"" + d.service + "\" is not enabled by a profile: dependency left out");
    }
    s.depends_on = kept;
    for (const auto& n : s.networks) {
      if (n.network == "default") {
        uses_default = true;
        continue;
      }
      if (!p->networks.count(n.network))
        return NodeError(at, path + ".networks", "service \"" + s.name + "\" refers to undefined network \"" +
                                                     n.network + "\"");
    }
    for (const auto& v : s.volumes)
      if (v.type == "volume" && !v.source.empty() && !p->volumes.count(v.source))
        return NodeError(at, path + ".volumes", "service \"" + s.name + "\" refers to undefined volume \"" + v.source +
                                                    "\" (declare it under the top-level volumes:)");
    auto check_secrets = [&](const std::vector<deployment::SecretRef>& refs, const std::string& where) -> Status {
      for (const auto& r : refs)
        if (!p->secrets.count(r.source))
          return NodeError(at, where, "service \"" + s.name + "\" refers to undefined secret \"" + r.source + "\"");
      return {};
    };
    if (auto st = check_secrets(s.secrets, path + ".secrets"); !st)
      return st;
    if (s.build)
      if (auto st = check_secrets(s.build->secrets, path + ".build.secrets"); !st)
        return st;
    if (s.network_mode.rfind("service:", 0) == 0 && !names.count(s.network_mode.substr(8)))
      return NodeError(at, path + ".network_mode", "service \"" + s.network_mode.substr(8) + "\" is not defined");
  }
  if (uses_default && !p->networks.count("default"))
    p->networks["default"] = {ctx_.project_name + "_default", "", {}, {}, false, false, false, std::nullopt, {}};
  // A dependency cycle cannot be started.
  std::map<std::string, int> state;  // 0 new, 1 on the stack, 2 done
  std::function<Status(const Service&, std::vector<std::string>&)> visit = [&](const Service& s,
                                                                                std::vector<std::string>& stack) -> Status {
    state[s.name] = 1;
    stack.push_back(s.name);
    for (const auto& d : s.depends_on) {
      if (state[d.service] == 1) {
        std::string cycle;
        for (auto it = std::find(stack.begin(), stack.end(), d.service); it != stack.end(); ++it)
          cycle += *it + " -> ";
        YamlNode at = *nodes.at(s.name);
        at.mark = at.key_mark;
        return NodeError(at, "services." + s.name + ".depends_on",
                         "dependency cycle: " + cycle + d.service);
      }
      if (state[d.service] == 0) {
        auto it = std::find_if(p->services.begin(), p->services.end(),
                               [&](const Service& x) { return x.name == d.service; });
        if (auto st = visit(*it, stack); !st)
          return st;
      }
    }
    stack.pop_back();
    state[s.name] = 2;
    return {};
  };
  for (const auto& s : p->services) {
    std::vector<std::string> stack;
    if (state[s.name] == 0)
      if (auto st = visit(s, stack); !st)
        return st;
  }
  (void)root;
  return {};
}

Expected<Project> Translator::Run(const YamlNode& root) {
  Project p;
  p.name = ctx_.project_name;
  p.working_dir = ctx_.project_dir;
  const YamlNode* services = root.Find("services");
  std::map<std::string, const YamlNode*> nodes;
  std::set<std::string> disabled;
  for (const auto& v : root.items) {
    const std::string& k = v.key;
    if (k == "services") {
      if (!v.IsMapping())
        continue;  // reported below
      for (const auto& sv : v.items) {
        auto s = ServiceOf(sv.key, sv);
        if (!s)
          return std::move(s).error();
        bool enabled = s->profiles.empty() ||
                       std::any_of(s->profiles.begin(), s->profiles.end(), [&](const std::string& pr) {
                         return std::find(ctx_.profiles.begin(), ctx_.profiles.end(), pr) != ctx_.profiles.end();
                       }) ||
                       std::find(ctx_.profiles.begin(), ctx_.profiles.end(), "*") != ctx_.profiles.end();
        if (!enabled) {
          disabled.insert(sv.key);
          continue;
        }
        nodes[sv.key] = &sv;
        p.services.push_back(std::move(*s));
      }
    } else if (k == "version") {
      WarnKey(v, "version", "the attribute `version` is obsolete, it will be ignored");
    } else if (k == "name") {
      continue;  // read by Load
    } else if (k == "volumes") {
      if (auto st = TopVolumes(v, &p); !st)
        return std::move(st).error();
    } else if (k == "networks") {
      if (auto st = TopNetworks(v, &p); !st)
        return std::move(st).error();
    } else if (k == "secrets") {
      if (auto st = TopSecrets(v, &p); !st)
        return std::move(st).error();
    } else if (k == "include") {
      WarnKey(v, "include", "include is not supported yet: the files it names are left out");
    } else if (k == "configs" || k == "models") {
      WarnKey(v, k, "not supported by kiln yet, left out");
    } else if (k.rfind("x-", 0) != 0) {
      WarnKey(v, k, "unknown key, left out");
    }
  }
  if (!services || services->IsNull() || (services->IsMapping() && services->items.empty())) {
    if (root.Find("include"))
      return NodeError(*root.Find("include"), "include", "no service defined: include is not supported yet");
    return Error(Errc::kInvalidInput, root.mark.file + ": no service defined (services: is empty or missing)");
  }
  if (!services->IsMapping())
    return NodeError(*services, "services", "must be a mapping of service names, not a " + KindName(*services));
  std::sort(p.services.begin(), p.services.end(), [](const Service& a, const Service& b) { return a.name < b.name; });
  if (auto st = Check(root, &p, nodes, disabled); !st)
    return std::move(st).error();
  return p;
}

Expected<deployment::Project> Translate(const YamlNode& root, TranslateContext& ctx) {
  Translator t(ctx);
  return t.Run(root);
}

}  // namespace kiln::compose
