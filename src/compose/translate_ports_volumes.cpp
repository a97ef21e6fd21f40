// Compose service keys `ports` (short "[IP:]HOST:CONTAINER[/proto]" and long
// forms, ranges) and `volumes` (bind, named volume, tmpfs; short and long
// forms) -> the deployment model.
#include "compose/translator.h"

namespace kiln::compose {

// --- ports -----------------------------------------------------------------------

namespace {

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

}  // namespace

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
  KILN_ASSIGN_OR_RETURN(auto items, Items(n, path));
  for (const auto& [at, p] : items) {
    const YamlNode& item = *at;
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
        KILN_ASSIGN_OR_RETURN(m.host_ip, Str(v, vp));
      } else if (v.key == "protocol") {
        KILN_ASSIGN_OR_RETURN(std::string pr, Str(v, vp));
        if (pr != "tcp" && pr != "udp" && pr != "sctp")
          return NodeError(v, vp, "unknown protocol \"" + pr + "\" (tcp, udp, sctp)");
        m.protocol = pr;
      } else if (v.key == "mode") {
        auto md = Str(v, vp);
        if (!md)
          return std::move(md).error();
        if (*md != "host" && *md != "ingress")
          return NodeError(v, vp, "unknown mode \"" + *md + "\" (host, ingress)");
        m.mode = *md;
      } else if (v.key == "name") {
        KILN_ASSIGN_OR_RETURN(m.name, Str(v, vp));
      } else if (v.key == "app_protocol") {
        KILN_ASSIGN_OR_RETURN(m.app_protocol, Str(v, vp));
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

namespace {

bool LooksLikePath(const std::string& s) {
  return !s.empty() && (s[0] == '.' || s[0] == '/' || s[0] == '~');
}

}  // namespace

Status Translator::Volumes(const YamlNode& n, const std::string& path, Service* s) {
  KILN_ASSIGN_OR_RETURN(auto items, Items(n, path));
  for (const auto& [at, p] : items) {
    const YamlNode& item = *at;
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
        KILN_ASSIGN_OR_RETURN((v.key == "type" ? m.type : v.key == "source" ? m.source : m.target), Str(v, vp));
      } else if (v.key == "read_only") {
        KILN_ASSIGN_OR_RETURN(m.read_only, Bool(v, vp));
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
            KILN_ASSIGN_OR_RETURN(m.propagation, Str(o, op));
          } else if (v.key == "bind" && o.key == "create_host_path") {
            KILN_ASSIGN_OR_RETURN(m.create_host_path, Bool(o, op));
          } else if (v.key == "bind" && o.key == "selinux") {
            auto se = Str(o, op);
            if (!se)
              return std::move(se).error();
            if (*se != "z" && *se != "Z")
              return NodeError(o, op, "must be z or Z");
            m.selinux = *se;
          } else if (v.key == "volume" && o.key == "nocopy") {
            KILN_ASSIGN_OR_RETURN(m.nocopy, Bool(o, op));
          } else if (v.key == "volume" && o.key == "subpath") {
            KILN_ASSIGN_OR_RETURN(m.subpath, Str(o, op));
          } else if (v.key == "tmpfs" && o.key == "size") {
            KILN_ASSIGN_OR_RETURN(m.tmpfs_size, Int(o, op, 0, INT64_MAX));
          } else if (v.key == "tmpfs" && o.key == "mode") {
            KILN_ASSIGN_OR_RETURN(m.tmpfs_mode, Mode(o, op));
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

}  // namespace kiln::compose
