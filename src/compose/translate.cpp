// The merged, interpolated compose tree -> deployment::Project. Every key of
// the supported subset (docs/compose.md) in its short and long forms; an
// unknown key is a warning naming it, a wrong value an error naming
// file:line:column and the key.
#include <algorithm>
#include <cctype>
#include <set>

#include "compose/internal.h"

namespace kiln::compose {

namespace {

using deployment::Project;
using deployment::Service;

std::string Child(const std::string& path, const std::string& key) { return path + "." + key; }
using deployment::ItemPath;

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

// --- ports -----------------------------------------------------------------------

struct PortRange {
  uint32_t lo = 0, hi = 0;
};

std::optional<PortRange> ParseRange(const std::string& s, bool allow_zero) {
  auto num = [&](const std::string& t) -> std::optional<uint32_t> {
    if (t.empty() || t.size() > 5 || !std::all_of(t.begin(), t.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
      return std::nullopt;
    unsigned long v = std::stoul(t);
    if (v > 65535 || (v == 0 && !allow_zero))
      return std::nullopt;
    return static_cast<uint32_t>(v);
  };
  size_t dash = s.find('-');
  auto lo = num(s.substr(0, dash));
  if (!lo)
    return std::nullopt;
  if (dash == std::string::npos)
    return PortRange{*lo, *lo};
  auto hi = num(s.substr(dash + 1));
  if (!hi || *hi < *lo)
    return std::nullopt;
  return PortRange{*lo, *hi};
}

Status Translator::ShortPort(const YamlNode& n, const std::string& path, Service* s) {
  std::string text = n.scalar;
  auto bad = [&](const std::string& why) {
    return NodeError(n, path, "invalid port \"" + n.scalar + "\": " + why +
                                  " (write [[IP:]HOST:]CONTAINER[/PROTOCOL], ranges as 8000-8010)");
  };
  std::string protocol = "tcp";
  if (size_t slash = text.rfind('/'); slash != std::string::npos) {
    protocol = text.substr(slash + 1);
    text.resize(slash);
    if (protocol != "tcp" && protocol != "udp" && protocol != "sctp")
      return bad("unknown protocol \"" + protocol + "\"");
  }
  std::string ip, host, container;
  if (!text.empty() && text[0] == '[') {  // [::1]:8080:80
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return bad("unclosed [IPv6 address]");
    ip = text.substr(1, close - 1);
    text = text.substr(close + 2);
    size_t colon = text.find(':');
    if (colon == std::string::npos)
      return bad("an address needs a host port (may be empty: IP::CONTAINER)");
    host = text.substr(0, colon);
    container = text.substr(colon + 1);
  } else {
    size_t last = text.rfind(':');
    if (last == std::string::npos) {
      container = text;
    } else {
      container = text.substr(last + 1);
      std::string rest = text.substr(0, last);
      size_t first = rest.rfind(':');
      if (first == std::string::npos) {
        host = rest;
      } else {
        ip = rest.substr(0, first);
        host = rest.substr(first + 1);
      }
    }
  }
  auto crange = ParseRange(container, false);
  if (!crange)
    return bad("container port \"" + container + "\" is not a port (1-65535) or range");
  std::optional<PortRange> hrange;
  if (!host.empty()) {
    hrange = ParseRange(host, true);
    if (!hrange)
      return bad("host port \"" + host + "\" is not a port or range");
  }
  uint32_t count = crange->hi - crange->lo + 1;
  if (hrange && hrange->hi != hrange->lo && hrange->hi - hrange->lo + 1 != count && count != 1)
    return bad("the host range and the container range differ in size");
  for (uint32_t i = 0; i < count; ++i) {
    deployment::PortMapping m;
    m.mode = "ingress";
    m.host_ip = ip;
    m.target = crange->lo + i;
    m.protocol = protocol;
    if (hrange) {
      if (count == 1 && hrange->hi != hrange->lo)
        m.published = std::to_string(hrange->lo) + "-" + std::to_string(hrange->hi);
      else
        m.published = std::to_string(hrange->hi == hrange->lo ? hrange->lo : hrange->lo + i);
    }
    s->ports.push_back(m);
  }
  return {};
}

Status Translator::Ports(const YamlNode& n, const std::string& path, Service* s) {
  if (!n.IsSequence())
    return NodeError(n, path, "must be a list, not a " + KindName(n));
  for (size_t i = 0; i < n.items.size(); ++i) {
    const YamlNode& item = n.items[i];
    std::string p = ItemPath(path, i);
    if (item.IsScalar()) {
      if (auto st = ShortPort(item, p, s); !st)
        return st;
      continue;
    }
    if (!item.IsMapping())
      return NodeError(item, p, "must be a string or a mapping, not a " + KindName(item));
    deployment::PortMapping m;
    m.mode = "ingress";
    bool has_target = false;
    for (const auto& v : item.items) {
      std::string vp = Child(p, v.key);
      if (v.key == "target") {
        auto t = Int(v, vp, 1, 65535);
        if (!t)
          return std::move(t).error();
        m.target = static_cast<uint32_t>(*t);
        has_target = true;
      } else if (v.key == "published") {
        auto pub = Str(v, vp);
        if (!pub)
          return std::move(pub).error();
        if (!ParseRange(*pub, true))
          return NodeError(v, vp, "\"" + *pub + "\" is not a port or range");
        m.published = *pub;
      } else if (v.key == "host_ip") {
        auto h = Str(v, vp);
        if (!h)
          return std::move(h).error();
        m.host_ip = *h;
      } else if (v.key == "protocol") {
        auto pr = Str(v, vp);
        if (!pr)
          return std::move(pr).error();
        if (*pr != "tcp" && *pr != "udp" && *pr != "sctp")
          return NodeError(v, vp, "unknown protocol \"" + *pr + "\" (tcp, udp, sctp)");
        m.protocol = *pr;
      } else if (v.key == "mode") {
        auto md = Str(v, vp);
        if (!md)
          return std::move(md).error();
        if (*md != "host" && *md != "ingress")
          return NodeError(v, vp, "unknown mode \"" + *md + "\" (host, ingress)");
        m.mode = *md;
      } else if (v.key == "name") {
        auto nm = Str(v, vp);
        if (!nm)
          return std::move(nm).error();
        m.name = *nm;
      } else if (v.key == "app_protocol") {
        auto ap = Str(v, vp);
        if (!ap)
          return std::move(ap).error();
        m.app_protocol = *ap;
      } else if (v.key.rfind("x-", 0) != 0) {
        WarnKey(v, vp, "unknown key, left out");
      }
    }
    if (!has_target)
      return NodeError(item, p, "target (the container port) is required");
    s->ports.push_back(m);
  }
  return {};
}

// --- volumes ---------------------------------------------------------------------

bool LooksLikePath(const std::string& s) {
  return !s.empty() && (s[0] == '.' || s[0] == '/' || s[0] == '~');
}

Status Translator::Volumes(const YamlNode& n, const std::string& path, Service* s) {
  if (!n.IsSequence())
    return NodeError(n, path, "must be a list, not a " + KindName(n));
  for (size_t i = 0; i < n.items.size(); ++i) {
    const YamlNode& item = n.items[i];
    std::string p = ItemPath(path, i);
    deployment::VolumeMount m;
    if (item.IsScalar()) {
      // [SOURCE:]TARGET[:MODE]
      std::vector<std::string> parts;
      size_t start = 0;
      const std::string& t = item.scalar;
      while (true) {
        size_t c = t.find(':', start);
        parts.push_back(t.substr(start, c == std::string::npos ? std::string::npos : c - start));
        if (c == std::string::npos)
          break;
        start = c + 1;
      }
      if (parts.size() > 3 || parts[0].empty() || (parts.size() >= 2 && parts[1].empty()))
        return NodeError(item, p, "invalid volume \"" + t + "\" (write [SOURCE:]TARGET[:ro])");
      std::string mode;
      if (parts.size() == 1) {
        m.type = "volume";
        m.target = parts[0];
      } else {
        m.target = parts[1];
        if (parts.size() == 3)
          mode = parts[2];
        if (LooksLikePath(parts[0])) {
          m.type = "bind";
          m.source = ResolvePath(parts[0]);
          m.create_host_path = true;
        } else {
          m.type = "volume";
          m.source = parts[0];
        }
      }
      size_t mstart = 0;
      while (!mode.empty() && mstart <= mode.size()) {
        size_t c = mode.find(',', mstart);
        std::string opt = mode.substr(mstart, c == std::string::npos ? std::string::npos : c - mstart);
        mstart = c == std::string::npos ? mode.size() + 1 : c + 1;
        if (opt == "ro")
          m.read_only = true;
        else if (opt == "rw")
          m.read_only = false;
        else if (opt == "z" || opt == "Z")
          m.selinux = opt;
        else if (opt == "nocopy")
          m.nocopy = true;
        else if (opt == "shared" || opt == "rshared" || opt == "slave" || opt == "rslave" || opt == "private" ||
                 opt == "rprivate")
          m.propagation = opt;
        else if (opt == "cached" || opt == "delegated" || opt == "consistent")
          continue;
        else
          return NodeError(item, p, "invalid volume mode \"" + opt + "\" in \"" + t + "\" (ro, rw, z, Z, nocopy, a propagation)");
      }
      if (m.target.empty() || m.target[0] != '/')
        return NodeError(item, p, "the target \"" + m.target + "\" must be an absolute path");
      s->volumes.push_back(m);
      continue;
    }
    if (!item.IsMapping())
      return NodeError(item, p, "must be a string or a mapping, not a " + KindName(item));
    for (const auto& v : item.items) {
      std::string vp = Child(p, v.key);
      if (v.key == "type" || v.key == "source" || v.key == "target") {
        auto str = Str(v, vp);
        if (!str)
          return std::move(str).error();
        (v.key == "type" ? m.type : v.key == "source" ? m.source : m.target) = *str;
      } else if (v.key == "read_only") {
        auto b = Bool(v, vp);
        if (!b)
          return std::move(b).error();
        m.read_only = *b;
      } else if (v.key == "consistency") {
        continue;
      } else if (v.key == "bind" || v.key == "volume" || v.key == "tmpfs") {
        if (v.IsNull())
          continue;
        if (!v.IsMapping())
          return NodeError(v, vp, "must be a mapping, not a " + KindName(v));
        for (const auto& o : v.items) {
          std::string op = Child(vp, o.key);
          if (v.key == "bind" && o.key == "propagation") {
            auto pr = Str(o, op);
            if (!pr)
              return std::move(pr).error();
            m.propagation = *pr;
          } else if (v.key == "bind" && o.key == "create_host_path") {
            auto b = Bool(o, op);
            if (!b)
              return std::move(b).error();
            m.create_host_path = *b;
          } else if (v.key == "bind" && o.key == "selinux") {
            auto se = Str(o, op);
            if (!se)
              return std::move(se).error();
            if (*se != "z" && *se != "Z")
              return NodeError(o, op, "must be z or Z");
            m.selinux = *se;
          } else if (v.key == "volume" && o.key == "nocopy") {
            auto b = Bool(o, op);
            if (!b)
              return std::move(b).error();
            m.nocopy = *b;
          } else if (v.key == "volume" && o.key == "subpath") {
            auto sp = Str(o, op);
            if (!sp)
              return std::move(sp).error();
            m.subpath = *sp;
          } else if (v.key == "tmpfs" && o.key == "size") {
            auto sz = Int(o, op, 0, INT64_MAX);
            if (!sz)
              return std::move(sz).error();
            m.tmpfs_size = *sz;
          } else if (v.key == "tmpfs" && o.key == "mode") {
            auto md = Mode(o, op);
            if (!md)
              return std::move(md).error();
            m.tmpfs_mode = *md;
          } else {
            WarnKey(o, op, "unknown key, left out");
          }
        }
      } else if (v.key.rfind("x-", 0) != 0) {
        WarnKey(v, vp, "unknown key, left out");
      }
    }
    if (m.type.empty())
      return NodeError(item, p, "type is required (volume, bind or tmpfs)");
    if (m.type != "volume" && m.type != "bind" && m.type != "tmpfs")
      return NodeError(item, p, "type \"" + m.type + "\" is not supported (volume, bind, tmpfs)");
    if (m.target.empty() || m.target[0] != '/')
      return NodeError(item, p, "target must be an absolute path");
    if (m.type == "bind") {
      if (m.source.empty())
        return NodeError(item, p, "a bind mount needs a source");
      m.source = ResolvePath(m.source);
    }
    if (m.type == "tmpfs" && !m.source.empty())
      return NodeError(item, p, "a tmpfs mount has no source");
    s->volumes.push_back(m);
  }
  return {};
}

// --- build -----------------------------------------------------------------------

bool IsRemoteContext(const std::string& c) {
  return c.find("://") != std::string::npos || c.rfind("git@", 0) == 0 || c.rfind("github.com/", 0) == 0;
}

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
        auto kv = KeyValues(v, vp);
        if (!kv)
          return std::move(kv).error();
        b.args = *kv;
        for (auto& [k, val] : b.args)
          if (!val)
            val = ctx_.lookup(k);  // an argument without a value comes from the environment
      } else if (v.key == "labels") {
        auto m = StringMap(v, vp);
        if (!m)
          return std::move(m).error();
        b.labels = *m;
      } else if (v.key == "cache_from" || v.key == "tags") {
        auto l = StrList(v, vp, false);
        if (!l)
          return std::move(l).error();
        (v.key == "tags" ? b.tags : b.cache_from) = *l;
      } else if (v.key == "secrets") {
        auto sec = Secrets(v, vp);
        if (!sec)
          return std::move(sec).error();
        b.secrets = *sec;
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
      auto ps = Str(*pathn, Child(p, "path"));
      if (!ps)
        return std::move(ps).error();
      f.path = *ps;
      if (const YamlNode* r = item.Find("required")) {
        auto b = Bool(*r, Child(p, "required"));
        if (!b)
          return std::move(b).error();
        f.required = *b;
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
          auto l = StrList(o, op, false);
          if (!l)
            return std::move(l).error();
          a.aliases = *l;
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
      auto b = Bool(v, vp);
      if (!b)
        return std::move(b).error();
      h.disable = *b;
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
  if (!n.IsSequence())
    return NodeError(n, path, "must be a list, not a " + KindName(n));
  for (size_t i = 0; i < n.items.size(); ++i) {
    const YamlNode& item = n.items[i];
    std::string p = ItemPath(path, i);
    deployment::SecretRef r;
    if (item.IsScalar()) {
      r.source = item.scalar;
    } else if (item.IsMapping()) {
      for (const auto& v : item.items) {
        std::string vp = Child(p, v.key);
        if (v.key == "source" || v.key == "target" || v.key == "uid" || v.key == "gid") {
          auto str = Str(v, vp);
          if (!str)
            return std::move(str).error();
          (v.key == "source" ? r.source : v.key == "target" ? r.target : v.key == "uid" ? r.uid : r.gid) = *str;
        } else if (v.key == "mode") {
          auto md = Mode(v, vp);
          if (!md)
            return std::move(md).error();
          r.mode = *md;
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

// --- a service ---------------------------------------------------------------------

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
      auto r = Str(v, vp);
      if (!r)
        return std::move(r).error();
      *out = *r;
      return {};
    };
    auto bool_into = [&](bool* out) -> Status {
      auto r = Bool(v, vp);
      if (!r)
        return std::move(r).error();
      *out = *r;
      return {};
    };
    auto list_into = [&](std::vector<std::string>* out, bool allow_string) -> Status {
      auto r = StrList(v, vp, allow_string);
      if (!r)
        return std::move(r).error();
      *out = *r;
      return {};
    };
    if (k.rfind("x-", 0) == 0) {
      continue;
    } else if (k == "image") {
      st = str_into(&s.image);
    } else if (k == "build") {
      st = Build(v, vp, &s);
    } else if (k == "command" || k == "entrypoint") {
      auto c = CommandList(v, vp);
      if (!c)
        return std::move(c).error();
      (k == "command" ? s.command : s.entrypoint) = *c;
    } else if (k == "environment") {
      auto kv = KeyValues(v, vp);
      if (!kv)
        return std::move(kv).error();
      for (auto& [ek, ev] : *kv) {
        if (!ev)
          ev = ctx_.lookup(ek);  // FOO alone: from the environment, else unset
        s.environment.push_back({ek, ev, std::nullopt});
      }
    } else if (k == "env_file") {
      env_file = &v;  // after environment, which wins over it
    } else if (k == "ports") {
      st = Ports(v, vp, &s);
    } else if (k == "expose") {
      st = list_into(&s.expose, false);
    } else if (k == "volumes") {
      st = Volumes(v, vp, &s);
    } else if (k == "networks") {
      st = Networks(v, vp, &s);
    } else if (k == "network_mode") {
      st = str_into(&s.network_mode);
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
    } else if (k == "container_name") {
      st = str_into(&s.container_name);
    } else if (k == "hostname") {
      st = str_into(&s.hostname);
    } else if (k == "domainname") {
      st = str_into(&s.domainname);
    } else if (k == "working_dir") {
      st = str_into(&s.working_dir);
      if (st && !s.working_dir.empty() && s.working_dir[0] != '/')
        return NodeError(v, vp, "must be an absolute path, not \"" + s.working_dir + "\"");
    } else if (k == "user") {
      st = str_into(&s.user);
    } else if (k == "labels" || k == "annotations") {
      auto m = StringMap(v, vp);
      if (!m)
        return std::move(m).error();
      (k == "labels" ? s.labels : s.annotations) = *m;
    } else if (k == "secrets") {
      auto sec = Secrets(v, vp);
      if (!sec)
        return std::move(sec).error();
      s.secrets = *sec;
    } else if (k == "stop_signal") {
      st = str_into(&s.stop_signal);
    } else if (k == "stop_grace_period") {
      auto d = Duration(v, vp);
      if (!d)
        return std::move(d).error();
      s.stop_grace_period_ns = *d;
    } else if (k == "tmpfs") {
      st = list_into(&s.tmpfs, true);
    } else if (k == "extra_hosts") {
      st = ExtraHosts(v, vp, &s);
    } else if (k == "init") {
      auto b = Bool(v, vp);
      if (!b)
        return std::move(b).error();
      s.init = *b;
    } else if (k == "privileged") {
      st = bool_into(&s.privileged);
    } else if (k == "read_only") {
      st = bool_into(&s.read_only);
    } else if (k == "tty") {
      st = bool_into(&s.tty);
    } else if (k == "stdin_open") {
      st = bool_into(&s.stdin_open);
    } else if (k == "cap_add" || k == "cap_drop" || k == "dns" || k == "dns_search") {
      st = list_into(k == "cap_add" ? &s.cap_add : k == "cap_drop" ? &s.cap_drop : k == "dns" ? &s.dns : &s.dns_search,
                     k == "dns" || k == "dns_search");
    } else if (k == "pull_policy") {
      st = str_into(&s.pull_policy);
      if (st && !s.pull_policy.empty() && s.pull_policy != "always" && s.pull_policy != "never" &&
          s.pull_policy != "missing" && s.pull_policy != "build" && s.pull_policy != "if_not_present")
        return NodeError(v, vp, "unknown pull policy \"" + s.pull_policy + "\" (always, never, missing, build)");
    } else if (k == "platform") {
      st = str_into(&s.platform);
    } else if (k == "mem_limit" || k == "cpus") {
      st = str_into(k == "cpus" ? &s.cpus : &s.mem_limit);
    } else if (k == "profiles") {
      st = list_into(&s.profiles, false);
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

// --- top level -----------------------------------------------------------------------

// The keys top-level volumes and networks share: name, driver, driver_opts,
// labels, external (also the old `external: {name: x}`). True when `o` is one.
template <typename Def>
Expected<bool> Translator::SharedTopKey(const YamlNode& o, const std::string& op, Def* d,
                                        std::string* explicit_name) {
  if (o.key == "name" || o.key == "driver") {
    KILN_ASSIGN_OR_RETURN(std::string v, Str(o, op));
    (o.key == "name" ? *explicit_name : d->driver) = v;
  } else if (o.key == "driver_opts" || o.key == "labels") {
    auto m = StringMap(o, op);
    if (!m)
      return std::move(m).error();
    (o.key == "labels" ? d->labels : d->driver_opts) = *m;
  } else if (o.key == "external") {
    if (o.IsMapping()) {
      if (const YamlNode* en = o.Find("name"); en && en->IsScalar())
        *explicit_name = en->scalar;
      d->external = true;
    } else {
      KILN_ASSIGN_OR_RETURN(bool b, Bool(o, op));
      d->external = b;
    }
  } else {
    return false;
  }
  return true;
}

// Top-level volumes and networks: a mapping of NAME: {keys} or NAME: (empty).
// The shared keys come from SharedTopKey, the kind's own from `own` (false:
// not its key); the name is NAME prefixed by the project, or `name:`, or NAME
// itself when external.
template <typename Def, typename Own>
Status Translator::TopDefs(const YamlNode& n, const std::string& kind, std::map<std::string, Def>* out, Own own) {
  if (n.IsNull())
    return {};
  if (!n.IsMapping())
    return NodeError(n, kind, "must be a mapping, not a " + KindName(n));
  for (const auto& v : n.items) {
    std::string vp = kind + "." + v.key;
    Def d;
    d.name = ctx_.project_name + "_" + v.key;
    std::string explicit_name;
    if (v.IsMapping()) {
      for (const auto& o : v.items) {
        std::string op = Child(vp, o.key);
        KILN_ASSIGN_OR_RETURN(bool shared, SharedTopKey(o, op, &d, &explicit_name));
        if (shared)
          continue;
        KILN_ASSIGN_OR_RETURN(bool known, own(o, op, &d));
        if (!known && o.key.rfind("x-", 0) != 0)
          WarnKey(o, op, "unknown key, left out");
      }
    } else if (!v.IsNull()) {
      return NodeError(v, vp, "must be a mapping or empty, not a " + KindName(v));
    }
    if (!explicit_name.empty())
      d.name = explicit_name;
    else if (d.external)
      d.name = v.key;
    (*out)[v.key] = d;
  }
  return {};
}

Status Translator::TopVolumes(const YamlNode& n, Project* p) {
  return TopDefs(n, "volumes", &p->volumes,
                 [](const YamlNode&, const std::string&, deployment::VolumeDef*) -> Expected<bool> { return false; });
}

// A top-level network's own keys: internal, attachable, enable_ipv6, ipam.
Expected<bool> Translator::NetworkKey(const YamlNode& o, const std::string& op, deployment::NetworkDef* d) {
  if (o.key == "internal" || o.key == "attachable") {
    auto b = Bool(o, op);
    if (!b)
      return std::move(b).error();
    (o.key == "internal" ? d->internal : d->attachable) = *b;
  } else if (o.key == "enable_ipv6") {
    auto b = Bool(o, op);
    if (!b)
      return std::move(b).error();
    d->enable_ipv6 = *b;
  } else if (o.key == "ipam") {
    if (!o.IsMapping())
      return NodeError(o, op, "must be a mapping, not a " + KindName(o));
    for (const auto& ik : o.items) {
      std::string ip = Child(op, ik.key);
      if (ik.key == "config") {
        if (!ik.IsSequence())
          return NodeError(ik, ip, "must be a list, not a " + KindName(ik));
        for (size_t i = 0; i < ik.items.size(); ++i) {
          const YamlNode& c = ik.items[i];
          if (!c.IsMapping())
            return NodeError(c, ItemPath(ip, i), "must be a mapping, not a " + KindName(c));
          deployment::NetworkDef::Pool pool;
          for (const auto& f : c.items) {
            if (f.key == "subnet" || f.key == "ip_range" || f.key == "gateway") {
              auto s = Str(f, Child(ItemPath(ip, i), f.key));
              if (!s)
                return std::move(s).error();
              (f.key == "subnet" ? pool.subnet : f.key == "ip_range" ? pool.ip_range : pool.gateway) = *s;
            } else {
              WarnKey(f, Child(ItemPath(ip, i), f.key), "not supported by kiln, left out");
            }
          }
          d->ipam.push_back(pool);
        }
      } else if (ik.key != "driver") {
        WarnKey(ik, ip, "not supported by kiln, left out");
      }
    }
  } else {
    return false;
  }
  return true;
}

Status Translator::TopNetworks(const YamlNode& n, Project* p) {
  return TopDefs(n, "networks", &p->networks,
                 [this](const YamlNode& o, const std::string& op, deployment::NetworkDef* d) {
                   return NetworkKey(o, op, d);
                 });
}

Status Translator::TopSecrets(const YamlNode& n, Project* p) {
  if (n.IsNull())
    return {};
  if (!n.IsMapping())
    return NodeError(n, "secrets", "must be a mapping, not a " + KindName(n));
  for (const auto& v : n.items) {
    std::string vp = "secrets." + v.key;
    if (!v.IsMapping())
      return NodeError(v, vp, "must be a mapping with file, environment or external");
    deployment::SecretDef d;
    d.name = ctx_.project_name + "_" + v.key;
    std::string explicit_name;
    for (const auto& o : v.items) {
      std::string op = Child(vp, o.key);
      if (o.key == "file" || o.key == "environment" || o.key == "name") {
        auto s = Str(o, op);
        if (!s)
          return std::move(s).error();
        (o.key == "file" ? d.file : o.key == "environment" ? d.environment : explicit_name) = *s;
      } else if (o.key == "external") {
        auto b = Bool(o, op);
        if (!b)
          return std::move(b).error();
        d.external = *b;
      } else if (o.key.rfind("x-", 0) != 0) {
        WarnKey(o, op, "not supported by kiln, left out");
      }
    }
    int sources = (!d.file.empty()) + (!d.environment.empty()) + d.external;
    if (sources != 1)
      return NodeError(v, vp, "needs exactly one of file, environment, external");
    if (!d.file.empty())
      d.file = ResolvePath(d.file);
    if (!explicit_name.empty())
      d.name = explicit_name;
    else if (d.external)
      d.name = v.key;
    p->secrets[v.key] = d;
  }
  return {};
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

}  // namespace

Expected<deployment::Project> Translate(const YamlNode& root, TranslateContext& ctx) {
  Translator t(ctx);
  return t.Run(root);
}

}  // namespace kiln::compose
