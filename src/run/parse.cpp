// Flag syntax of `kiln run`: -p, -v, --mount.
#include <cstdlib>
#include <string>
#include <vector>

#include "kiln/run.h"

namespace kiln::run {
namespace {

bool ParsePort(const std::string& text, uint16_t* out) {
  if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != std::string::npos)
    return false;
  long v = std::strtol(text.c_str(), nullptr, 10);
  if (v < 1 || v > 65535)
    return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t i = 0;
  for (;;) {
    size_t j = s.find(sep, i);
    out.push_back(s.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos)
      return out;
    i = j + 1;
  }
}

bool AbsoluteClean(const std::string& p) {
  if (p.empty() || p[0] != '/')
    return false;
  for (const auto& c : Split(p, '/'))
    if (c == "..")
      return false;
  return true;
}

}  // namespace

namespace {

/// "N" or "N-M" (N <= M), ports 1..65535.
bool ParsePortRange(const std::string& text, uint16_t* first, uint16_t* last) {
  size_t dash = text.find('-');
  if (dash == std::string::npos) {
    if (!ParsePort(text, first))
      return false;
    *last = *first;
    return true;
  }
  return ParsePort(text.substr(0, dash), first) && ParsePort(text.substr(dash + 1), last) && *first <= *last;
}

}  // namespace

Expected<std::vector<PortMapping>> PortMapping::ParseFlag(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return Error(Errc::kInvalidInput, "invalid port mapping " + text + ": " + why);
  };
  PortMapping m;
  std::string rest = text;
  if (size_t slash = rest.rfind('/'); slash != std::string::npos) {
    std::string proto = rest.substr(slash + 1);
    if (proto == "udp")
      m.udp = true;
    else if (proto == "sctp")
      return bad("sctp is not supported (tcp or udp)");
    else if (proto != "tcp")
      return bad("protocol must be tcp or udp");
    rest = rest.substr(0, slash);
  }
  // [[IP:][HOST]:]CTR, IPv6 in brackets.
  bool have_ip = false;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      return bad("bad IPv6 address");
    m.host_ip = rest.substr(1, close - 1);
    rest = rest.substr(close + 2);
    have_ip = true;
  }
  std::vector<std::string> parts = Split(rest, ':');
  if (parts.size() == 3 && !have_ip) {
    m.host_ip = parts[0];
    parts.erase(parts.begin());
    have_ip = true;
  }
  if (have_ip && parts.size() == 1)
    parts.insert(parts.begin(), "");  // IP:CTR is not podman's; [IP]:HOST:CTR needs the HOST part
  if (parts.size() == 1)
    parts.insert(parts.begin(), "");
  if (parts.size() != 2)
    return bad("expected [[IP:][HOST]:]CONTAINER[/udp]");
  if (have_ip && (m.host_ip.empty() ||
                  m.host_ip.find_first_not_of("0123456789abcdefABCDEF.:") != std::string::npos))
    return bad("bad IP address");
  uint16_t cfirst = 0, clast = 0, hfirst = 0, hlast = 0;
  if (!ParsePortRange(parts[1], &cfirst, &clast))
    return bad("container port must be 1..65535 or a range N-M");
  if (!parts[0].empty()) {
    if (!ParsePortRange(parts[0], &hfirst, &hlast))
      return bad("host port must be 1..65535 or a range N-M");
    if (hlast - hfirst != clast - cfirst)
      return bad("host and container port ranges have different lengths: " + std::to_string(hlast - hfirst + 1) +
                 " vs " + std::to_string(clast - cfirst + 1));
  }
  std::vector<PortMapping> out;
  for (uint32_t i = 0; i <= static_cast<uint32_t>(clast - cfirst); ++i) {
    PortMapping p = m;
    p.container_port = static_cast<uint16_t>(cfirst + i);
    p.host_port = hfirst ? static_cast<uint16_t>(hfirst + i) : 0;
    out.push_back(p);
  }
  return out;
}

Expected<PortMapping> PortMapping::Parse(const std::string& text) {
  KILN_ASSIGN_OR_RETURN(std::vector<PortMapping> all, ParseFlag(text));
  if (all.size() != 1)
    return Error(Errc::kInvalidInput, "invalid port mapping " + text + ": one port expected, not a range");
  return all[0];
}

std::string PortMapping::str() const {
  std::string ip = host_ip.empty() ? "0.0.0.0" : host_ip;
  if (ip.find(':') != std::string::npos)
    ip = "[" + ip + "]";
  return ip + ":" + std::to_string(host_port) + "->" + std::to_string(container_port) + (udp ? "/udp" : "/tcp");
}

Expected<MountRequest> MountRequest::ParseVolumeFlag(const std::string& text) {
  MountRequest m;
  std::vector<std::string> parts = Split(text, ':');
  if (parts.size() == 1) {
    m.type = Type::kVolume;  // anonymous volume
    m.target = parts[0];
  } else if (parts.size() == 2 || parts.size() == 3) {
    m.source = parts[0];
    m.target = parts[1];
    if (parts.size() == 3) {
      for (const auto& opt : Split(parts[2], ',')) {
        if (opt == "ro")
          m.read_only = true;
        else if (opt == "U")
          m.chown = true;
        else if (opt == "rw" || opt == "z" || opt == "Z" || opt.empty())
          continue;
        else
          return Error(Errc::kInvalidInput, "invalid volume option " + opt + " in -v " + text);
      }
    }
    m.type = (!m.source.empty() && (m.source[0] == '/' || m.source[0] == '.')) ? Type::kBind : Type::kVolume;
  } else {
    return Error(Errc::kInvalidInput, "invalid volume specification " + text + ": expected SRC:DST[:ro|rw,U]");
  }
  if (!AbsoluteClean(m.target))
    return Error(Errc::kInvalidInput, "invalid volume destination " + m.target +
                                          ": must be an absolute path without '..'");
  if (m.source.empty() && parts.size() > 1)
    return Error(Errc::kInvalidInput, "invalid volume specification " + text + ": empty source");
  return m;
}

Expected<MountRequest> MountRequest::ParseMountFlag(const std::string& text) {
  MountRequest m;
  std::string type;
  std::string size;
  std::string mode;
  for (const auto& kv : Split(text, ',')) {
    size_t eq = kv.find('=');
    std::string k = kv.substr(0, eq);
    std::string v = eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (k == "type")
      type = v;
    else if (k == "source" || k == "src")
      m.source = v;
    else if (k == "target" || k == "destination" || k == "dst")
      m.target = v;
    else if (k == "ro" || k == "readonly")
      m.read_only = v.empty() || v == "true" || v == "1";
    else if (k == "rw")
      m.read_only = !(v.empty() || v == "true" || v == "1");
    else if (k == "tmpfs-size")
      size = v;
    else if (k == "tmpfs-mode")
      mode = v;
    else if (k == "bind-propagation" || k == "z" || k == "Z" || k == "relabel")
      continue;  // accepted, no effect (no SELinux, mounts are private)
    else
      return Error(Errc::kInvalidInput, "invalid --mount option " + kv + " in " + text);
  }
  if (type == "bind") {
    m.type = Type::kBind;
    if (m.source.empty())
      return Error(Errc::kInvalidInput, "--mount type=bind needs source=: " + text);
  } else if (type == "volume") {
    m.type = Type::kVolume;
  } else if (type == "tmpfs") {
    m.type = Type::kTmpfs;
    if (!m.source.empty())
      return Error(Errc::kInvalidInput, "--mount type=tmpfs takes no source: " + text);
    if (!size.empty() && size.find_first_not_of("0123456789kmgKMG%") != std::string::npos)
      return Error(Errc::kInvalidInput, "invalid tmpfs-size " + size);
    if (!mode.empty() && mode.find_first_not_of("01234567") != std::string::npos)
      return Error(Errc::kInvalidInput, "invalid tmpfs-mode " + mode);
    std::string lower_size = size;
    for (char& ch : lower_size)
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    m.tmpfs_options = "mode=" + (mode.empty() ? std::string("1777") : mode);
    if (!lower_size.empty())
      m.tmpfs_options += ",size=" + lower_size;
  } else {
    return Error(Errc::kInvalidInput, "--mount needs type=bind, type=volume or type=tmpfs: " + text);
  }
  if (!AbsoluteClean(m.target))
    return Error(Errc::kInvalidInput, "invalid --mount target " + m.target +
                                          ": must be an absolute path without '..'");
  return m;
}

Expected<MountRequest> MountRequest::ParseTmpfsFlag(const std::string& text) {
  MountRequest m;
  m.type = Type::kTmpfs;
  size_t colon = text.find(':');
  m.target = text.substr(0, colon);
  if (!AbsoluteClean(m.target))
    return Error(Errc::kInvalidInput, "invalid --tmpfs " + text + ": the path must be absolute, without '..'");
  // podman 4.3 mounts `--tmpfs /t` rw,nosuid,nodev (its manual says noexec
  // too, the mount has not; checked against podman 4.3.1, docs/run.md).
  bool noexec = false;
  std::string data;
  std::string mode = "1777";
  if (colon != std::string::npos) {
    for (const auto& opt : Split(text.substr(colon + 1), ',')) {
      size_t eq = opt.find('=');
      std::string k = opt.substr(0, eq);
      std::string v = eq == std::string::npos ? "" : opt.substr(eq + 1);
      auto number = [&](const char* chars) {
        return !v.empty() && v.find_first_not_of(chars) == std::string::npos;
      };
      if (opt.empty() || opt == "rw" || opt == "nosuid" || opt == "nodev" || opt == "notmpcopyup") {
        continue;
      } else if (opt == "ro") {
        m.read_only = true;
      } else if (opt == "exec") {
        noexec = false;
      } else if (opt == "noexec") {
        noexec = true;
      } else if (opt == "suid" || opt == "dev") {
        return Error(Errc::kInvalidInput, "invalid --tmpfs " + text + ": kiln mounts every tmpfs nosuid,nodev (" +
                                              opt + " refused)");
      } else if (opt == "tmpcopyup") {
        return Error(Errc::kInvalidInput, "invalid --tmpfs " + text +
                                              ": tmpcopyup is not supported (a kiln tmpfs starts empty, docs/run.md)");
      } else if (k == "size" && number("0123456789kmgKMG%")) {
        std::string lower = v;
        for (char& ch : lower)
          ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        data += ",size=" + lower;
      } else if (k == "mode" && number("01234567") && v.size() <= 4) {
        mode = v;
      } else if ((k == "uid" || k == "gid" || k == "nr_inodes" || k == "nr_blocks") && number("0123456789kmgKMG")) {
        data += "," + k + "=" + v;
      } else {
        return Error(Errc::kInvalidInput, "invalid --tmpfs option " + opt + " in " + text +
                                              " (use rw, ro, exec, noexec, size=, mode=, uid=, gid=, nr_inodes=)");
      }
    }
  }
  m.tmpfs_options = "mode=" + mode + data + (noexec ? ",noexec" : "");
  return m;
}

}  // namespace kiln::run
