// The compose translator's class, shared by its sources (private to
// src/compose): translate.cpp (a service, the checks across the project, the
// run), translate_ports_volumes.cpp, translate_service_keys.cpp (build,
// env_file, networks, depends_on, healthcheck, secrets, extra_hosts) and
// translate_top.cpp (top-level volumes, networks, secrets).
#pragma once

#include <algorithm>
#include <cctype>
#include <set>

#include "compose/internal.h"

namespace kiln::compose {

using deployment::Project;
using deployment::Service;
using deployment::ItemPath;

inline std::string Child(const std::string& path, const std::string& key) { return path + "." + key; }


class Translator {
 public:
  explicit Translator(TranslateContext& ctx) : ctx_(ctx) {}

  Expected<Project> Run(const YamlNode& root);

 private:
  TranslateContext& ctx_;

  void Warn(const YamlNode& n, const std::string& path, const std::string& what) {
    ctx_.warnings->push_back(n.mark.str() + ": " + path + ": " + what);
  }
  void WarnKey(const YamlNode& v, const std::string& path, const std::string& what) {
    ctx_.warnings->push_back(v.key_mark.str() + ": " + path + ": " + what);
  }

  // --- scalar readers ---
  Expected<std::string> Str(const YamlNode& n, const std::string& path) { return deployment::ReadString(n, path); }
  Expected<bool> Bool(const YamlNode& n, const std::string& path) {
    if (n.IsScalar()) {
      std::string s = n.scalar;
      std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
      if (s == "true" || s == "yes" || s == "on" || s == "y")
        return true;
      if (s == "false" || s == "no" || s == "off" || s == "n")
        return false;
    }
    return NodeError(n, path, "must be a boolean, not " + Describe(n));
  }
  Expected<int64_t> Int(const YamlNode& n, const std::string& path, int64_t min, int64_t max) {
    return deployment::ReadInt(n, path, min, max);
  }
  Expected<int64_t> Duration(const YamlNode& n, const std::string& path) {
    if (n.IsScalar()) {
      if (auto d = deployment::ParseDuration(n.scalar); d && *d >= 0)
        return *d;
    }
    return NodeError(n, path, "invalid duration " + Describe(n) + " (write e.g. 10s, 1m30s, 500ms)");
  }
  // A file mode: YAML 1.2 reads 0440 as decimal; docker compose reads it as octal, and so does kiln.
  Expected<uint32_t> Mode(const YamlNode& v, const std::string& vp) {
    std::string m = v.IsScalar() ? v.scalar : "";
    if (m.rfind("0o", 0) == 0)
      m = m.substr(2);
    if (m.empty() || m.size() > 5 || !std::all_of(m.begin(), m.end(), [](char c) { return c >= '0' && c <= '7'; }))
      return NodeError(v, vp, "must be an octal file mode such as 0440, not " + Describe(v));
    return static_cast<uint32_t>(std::stoul(m, nullptr, 8));
  }
  static std::string Describe(const YamlNode& n) {
    if (n.IsScalar())
      return "\"" + n.scalar + "\"";
    return "a " + KindName(n);
  }

  // A string or a list of strings.
  Expected<std::vector<std::string>> StrList(const YamlNode& n, const std::string& path, bool allow_string) {
    return deployment::ReadStringList(n, path, allow_string);
  }

  // A shell string (split into words) or a list: command, entrypoint.
  Expected<std::optional<std::vector<std::string>>> CommandList(const YamlNode& n, const std::string& path) {
    if (n.IsNull())
      return std::optional<std::vector<std::string>>();
    if (n.IsScalar()) {
      auto words = SplitShellWords(n.scalar);
      if (!words)
        return NodeError(n, path, words.error().message());
      return std::optional<std::vector<std::string>>(*words);
    }
    auto l = StrList(n, path, false);
    if (!l)
      return std::move(l).error();
    return std::optional<std::vector<std::string>>(*l);
  }

  // A list of "K=V"/"K" or a mapping K: V (V may be null): environment, labels, args.
  Expected<std::vector<std::pair<std::string, std::optional<std::string>>>> KeyValues(const YamlNode& n,
                                                                                      const std::string& path) {
    std::vector<std::pair<std::string, std::optional<std::string>>> out;
    std::set<std::string> seen;
    auto add = [&](const YamlNode& at, const std::string& p, std::string k,
                   std::optional<std::string> v) -> Status {
      if (k.empty())
        return NodeError(at, p, "empty name");
      if (!seen.insert(k).second) {
        auto it = std::find_if(out.begin(), out.end(), [&](const auto& e) { return e.first == k; });
        it->second = std::move(v);  // a later list entry wins, as docker
        return {};
      }
      out.emplace_back(std::move(k), std::move(v));
      return {};
    };
    if (n.IsSequence()) {
      for (size_t i = 0; i < n.items.size(); ++i) {
        const YamlNode& item = n.items[i];
        if (!item.IsScalar())
          return NodeError(item, ItemPath(path, i), "must be a string KEY=VALUE, not a " + KindName(item));
        size_t eq = item.scalar.find('=');
        if (auto st = eq == std::string::npos
                          ? add(item, ItemPath(path, i), item.scalar, std::nullopt)
                          : add(item, ItemPath(path, i), item.scalar.substr(0, eq), item.scalar.substr(eq + 1));
            !st)
          return std::move(st).error();
      }
    } else if (n.IsMapping()) {
      for (const auto& v : n.items) {
        if (v.IsMapping() || v.IsSequence())
          return NodeError(v, Child(path, v.key), "must be a string, number or boolean, not a " + KindName(v));
        std::optional<std::string> value;
        if (v.IsScalar())
          value = v.scalar;
        if (auto st = add(v, Child(path, v.key), v.key, value); !st)
          return std::move(st).error();
      }
    } else if (!n.IsNull()) {
      return NodeError(n, path, "must be a mapping or a list of KEY=VALUE, not a " + KindName(n));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    return out;
  }

  Expected<std::map<std::string, std::string>> StringMap(const YamlNode& n, const std::string& path) {
    auto kv = KeyValues(n, path);
    if (!kv)
      return std::move(kv).error();
    std::map<std::string, std::string> out;
    for (auto& [k, v] : *kv)
      out[k] = v.value_or("");
    return out;
  }

  /// The items of the list `n`, each with its path ("services.web.ports[0]");
  /// kInvalidInput naming `path` when `n` is not a list.
  Expected<std::vector<std::pair<const YamlNode*, std::string>>> Items(const YamlNode& n, const std::string& path) {
    if (!n.IsSequence())
      return NodeError(n, path, "must be a list, not a " + KindName(n));
    std::vector<std::pair<const YamlNode*, std::string>> out;
    for (size_t i = 0; i < n.items.size(); ++i)
      out.emplace_back(&n.items[i], ItemPath(path, i));
    return out;
  }

  std::string ResolvePath(const std::string& p) {
    if (p == "~" || p.rfind("~/", 0) == 0)
      return CleanPath(ctx_.home + p.substr(1));
    return JoinPath(ctx_.project_dir, p);
  }

  // --- service keys ---
  Status Build(const YamlNode& n, const std::string& path, Service* s);
  Status Ports(const YamlNode& n, const std::string& path, Service* s);
  Status ShortPort(const YamlNode& n, const std::string& path, Service* s);
  Status Volumes(const YamlNode& n, const std::string& path, Service* s);
  Status EnvFiles(const YamlNode& n, const std::string& path, Service* s);
  Status Networks(const YamlNode& n, const std::string& path, Service* s);
  Status DependsOn(const YamlNode& n, const std::string& path, Service* s);
  Status HealthCheck(const YamlNode& n, const std::string& path, Service* s);
  Status ExtraHosts(const YamlNode& n, const std::string& path, Service* s);
  Expected<std::vector<deployment::SecretRef>> Secrets(const YamlNode& n, const std::string& path);
  Expected<Service> ServiceOf(const std::string& name, const YamlNode& n);

  Status TopVolumes(const YamlNode& n, Project* p);
  Status TopNetworks(const YamlNode& n, Project* p);
  template <typename Def, typename Own>
  Status TopDefs(const YamlNode& n, const std::string& kind, std::map<std::string, Def>* out, Own own);
  Expected<bool> NetworkKey(const YamlNode& o, const std::string& op, deployment::NetworkDef* d);
  template <typename Def>
  Expected<bool> SharedTopKey(const YamlNode& o, const std::string& op, Def* d, std::string* explicit_name);
  Status TopSecrets(const YamlNode& n, Project* p);
  Status Check(const YamlNode& root, Project* p, const std::map<std::string, const YamlNode*>& nodes,
               const std::set<std::string>& disabled);
};

}  // namespace kiln::compose
