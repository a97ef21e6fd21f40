// Network records (include/kiln/network.h): <store>/networks/<name>.json,
// the default network, subnets and address allocation.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "kiln/digest.h"
#include "kiln/events.h"
#include "kiln/fs.h"
#include "kiln/lock.h"
#include "kiln/random.h"
#include "kiln/network.h"
#include "kiln/store.h"

namespace kiln::network {

namespace {

constexpr size_t kMaxRecord = 1 << 20;

std::string Dir(const Store& store) { return store.root() + "/networks"; }

std::string NowNanos() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  ::gmtime_r(&ts.tv_sec, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long>(ts.tv_nsec));
  return buf;
}

std::string RandomHex32() {
  if (auto hex = RandomHex(64))
    return *hex;
  Sha256 h;
  h.Update(NowNanos());
  return h.Finish().hex();
}

Network DefaultNetwork() {
  Network n;
  n.name = kDefaultNetwork;
  Sha256 h;
  h.Update(std::string_view(kDefaultNetwork));
  n.id = h.Finish().hex();
  n.interface_name = "kiln0";
  n.created = NowNanos();
  n.subnets = {{"10.88.0.0/16", "10.88.0.1"}};
  n.dns_enabled = false;
  return n;
}

Expected<std::vector<Network>> LoadUserNetworks(const Store& store) {
  std::vector<Network> out;
  DIR* d = ::opendir(Dir(store).c_str());
  if (!d)
    return out;
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".json") == 0 && ValidNetworkName(n.substr(0, n.size() - 5)))
      names.push_back(n);
  }
  ::closedir(d);
  for (const auto& n : names) {
    std::string path = Dir(store) + "/" + n;
    auto text = ReadFile(path, kMaxRecord);
    if (!text)
      continue;  // removed meanwhile
    auto j = nlohmann::json::parse(*text, nullptr, false);
    auto net = Network::FromJson(j);
    if (!net)
      return std::move(net).error().WithContext(path);
    out.push_back(std::move(*net));
  }
  return out;
}

}  // namespace

// ------------------------------------------------------------------ addresses

Expected<uint32_t> ParseIpv4(const std::string& text) {
  struct in_addr a;
  if (text.empty() || ::inet_pton(AF_INET, text.c_str(), &a) != 1)
    return Error(Errc::kInvalidInput, "invalid IPv4 address \"" + text + "\"");
  return ntohl(a.s_addr);
}

std::string Ipv4String(uint32_t ip) {
  char buf[INET_ADDRSTRLEN];
  struct in_addr a;
  a.s_addr = htonl(ip);
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

Expected<Cidr> Cidr::Parse(const std::string& text) {
  size_t slash = text.find('/');
  if (slash == std::string::npos)
    return Error(Errc::kInvalidInput, "invalid subnet \"" + text + "\": want ADDRESS/PREFIX (10.89.0.0/24)");
  auto ip = ParseIpv4(text.substr(0, slash));
  std::string p = text.substr(slash + 1);
  if (!ip || p.empty() || p.size() > 2 || p.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(p) > 32)
    return Error(Errc::kInvalidInput, "invalid subnet \"" + text + "\": want ADDRESS/PREFIX (10.89.0.0/24)");
  Cidr c;
  c.prefix = std::stoi(p);
  c.addr = *ip & c.mask();
  if (c.addr != *ip)
    return Error(Errc::kInvalidInput, "invalid subnet \"" + text + "\": host bits are set (did you mean " +
                                          c.str() + "?)");
  return c;
}

std::string Cidr::str() const { return Ipv4String(addr) + "/" + std::to_string(prefix); }

std::vector<Cidr> HostRoutes() {
  std::vector<Cidr> out;
  auto text = ReadFile("/proc/net/route", 1 << 20);
  if (!text)
    return out;
  size_t pos = text->find('\n');  // header
  while (pos != std::string::npos && pos + 1 < text->size()) {
    size_t end = text->find('\n', pos + 1);
    std::string line = text->substr(pos + 1, end == std::string::npos ? std::string::npos : end - pos - 1);
    pos = end;
    char iface[64];
    unsigned dest = 0, gw = 0, flags = 0, refcnt = 0, use = 0, metric = 0, mask = 0;
    if (std::sscanf(line.c_str(), "%63s %x %x %x %u %u %u %x", iface, &dest, &gw, &flags, &refcnt, &use, &metric,
                    &mask) != 8)
      continue;
    uint32_t m = ntohl(mask);  // /proc prints the raw network-order value in host-order hex
    uint32_t d = ntohl(dest);
    if (m == 0)
      continue;  // the default route
    int prefix = __builtin_popcount(m);
    out.push_back(Cidr{d & m, prefix});
  }
  return out;
}

// ------------------------------------------------------------------ records

bool ValidNetworkName(const std::string& n) {
  if (n.empty() || n.size() > 128 || !std::isalnum(static_cast<unsigned char>(n[0])))
    return false;
  return n.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
         std::string::npos;
}

nlohmann::ordered_json Network::ToJson() const {
  nlohmann::json subs = nlohmann::json::array();
  for (const auto& s : subnets) {
    nlohmann::json o = {{"subnet", s.subnet}};
    if (!s.gateway.empty())
      o["gateway"] = s.gateway;
    subs.push_back(o);
  }
  // podman's field order (Go struct order).
  nlohmann::ordered_json j;
  j["name"] = name;
  j["id"] = id;
  j["driver"] = driver;
  j["network_interface"] = interface_name;
  j["created"] = created;
  j["subnets"] = nlohmann::ordered_json::parse(subs.dump());
  j["ipv6_enabled"] = ipv6_enabled;
  j["internal"] = internal;
  j["dns_enabled"] = dns_enabled;
  if (!labels.empty())
    j["labels"] = labels;
  if (!options.empty())
    j["options"] = options;
  j["ipam_options"] = {{"driver", "host-local"}};
  return j;
}

Expected<Network> Network::FromJson(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("subnets") ||
      !j["subnets"].is_array())
    return Error(Errc::kCorrupt, "not a network record");
  Network n;
  n.name = j["name"].get<std::string>();
  n.id = j.value("id", "");
  n.driver = j.value("driver", "bridge");
  n.interface_name = j.value("network_interface", "");
  n.created = j.value("created", "");
  for (const auto& s : j["subnets"])
    if (s.is_object())
      n.subnets.push_back({s.value("subnet", ""), s.value("gateway", "")});
  n.ipv6_enabled = j.value("ipv6_enabled", false);
  n.internal = j.value("internal", false);
  n.dns_enabled = j.value("dns_enabled", true);
  if (j.contains("labels") && j["labels"].is_object())
    for (const auto& [k, v] : j["labels"].items())
      if (v.is_string())
        n.labels[k] = v.get<std::string>();
  if (j.contains("options") && j["options"].is_object())
    for (const auto& [k, v] : j["options"].items())
      if (v.is_string())
        n.options[k] = v.get<std::string>();
  if (n.subnets.empty())
    return Error(Errc::kCorrupt, "network " + n.name + " has no subnet");
  return n;
}

Expected<Cidr> Network::Prefix() const {
  if (subnets.empty())
    return Error(Errc::kCorrupt, "network " + name + " has no subnet");
  return Cidr::Parse(subnets[0].subnet);
}

Expected<uint32_t> Network::Gateway() const {
  if (subnets.empty() || subnets[0].gateway.empty())
    return Error(Errc::kCorrupt, "network " + name + " has no gateway");
  return ParseIpv4(subnets[0].gateway);
}

Expected<UniqueFd> LockNetworks(const Store& store) { return LockFile(Dir(store) + "/.lock", LOCK_EX); }

Expected<Network> CreateNetwork(const Store& store, const CreateOptions& o) {
  if (!ValidNetworkName(o.name))
    return Error(Errc::kInvalidInput,
                 "invalid network name \"" + o.name + "\": use [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 128 characters)");
  for (const auto& [k, v] : o.options)
    if (k != "isolate" && k != "mtu")
      return Error(Errc::kInvalidInput, "unsupported network option " + k + " (kiln knows isolate and mtu)");
  KILN_ASSIGN_OR_RETURN(UniqueFd lock, LockNetworks(store));
  KILN_ASSIGN_OR_RETURN(std::vector<Network> existing, LoadUserNetworks(store));
  existing.push_back(DefaultNetwork());
  for (const auto& n : existing)
    if (n.name == o.name) {
      if (o.ignore)
        return n;
      return Error(Errc::kInvalidInput, "network name " + o.name + " already used: network already exists");
    }
  std::vector<Cidr> taken;
  for (const auto& n : existing)
    if (auto c = n.Prefix())
      taken.push_back(*c);
  Cidr subnet;
  if (!o.subnet.empty()) {
    KILN_ASSIGN_OR_RETURN(subnet, Cidr::Parse(o.subnet));
    if (subnet.prefix > 30)
      return Error(Errc::kInvalidInput, "subnet " + subnet.str() + " is too small (at most /30)");
    for (const auto& n : existing)
      if (auto c = n.Prefix(); c && c->Overlaps(subnet))
        return Error(Errc::kInvalidInput,
                     "subnet " + subnet.str() + " overlaps network " + n.name + " (" + c->str() + ")");
  } else {
    std::vector<Cidr> avoid = taken;
    for (const auto& r : HostRoutes())
      avoid.push_back(r);
    bool found = false;
    for (uint32_t a = (10u << 24) | (89u << 16); a < (11u << 24); a += 256) {
      Cidr c{a, 24};
      if (std::none_of(avoid.begin(), avoid.end(), [&](const Cidr& t) { return t.Overlaps(c); })) {
        subnet = c;
        found = true;
        break;
      }
    }
    if (!found)
      return Error(Errc::kFailed, "no free /24 subnet left in 10.89.0.0-10.255.255.0: pass --subnet");
  }
  uint32_t gateway = subnet.addr + 1;
  if (!o.gateway.empty()) {
    KILN_ASSIGN_OR_RETURN(gateway, ParseIpv4(o.gateway));
    if (!subnet.Contains(gateway) || gateway == subnet.addr || gateway == subnet.broadcast())
      return Error(Errc::kInvalidInput,
                   "gateway " + o.gateway + " is not a host address of subnet " + subnet.str());
  }
  Network n;
  n.name = o.name;
  n.id = RandomHex32();
  n.created = NowNanos();
  n.subnets = {{subnet.str(), Ipv4String(gateway)}};
  n.internal = o.internal;
  n.dns_enabled = !o.disable_dns;
  n.labels = o.labels;
  n.options = o.options;
  // The bridge's name inside kiln's network namespace: kiln1, kiln2, ...
  // (kiln0 is the default network's).
  std::set<std::string> ifaces;
  for (const auto& e : existing)
    ifaces.insert(e.interface_name);
  for (int i = 1;; ++i)
    if (!ifaces.count("kiln" + std::to_string(i))) {
      n.interface_name = "kiln" + std::to_string(i);
      break;
    }
  std::string rel = "networks/" + n.name + ".json";
  KILN_TRY(WriteFileAtomic(store.root() + "/" + rel, n.ToJson().dump(5) + "\n", 0600));
  GcRoot root;
  root.owner = rel;
  if (auto st = store.PutRoot("networks", n.name, root); !st) {
    ::unlink((store.root() + "/" + rel).c_str());
    return std::move(st).error();
  }
  events::Record(store.root(), "network", "create", n.id, "", n.name);
  return n;
}

Expected<std::vector<Network>> ListNetworks(const Store& store) {
  KILN_ASSIGN_OR_RETURN(std::vector<Network> out, LoadUserNetworks(store));
  out.push_back(DefaultNetwork());
  std::sort(out.begin(), out.end(), [](const Network& a, const Network& b) { return a.name < b.name; });
  return out;
}

Expected<Network> FindNetwork(const Store& store, const std::string& text) {
  if (text == kDefaultNetwork)
    return DefaultNetwork();
  if (ValidNetworkName(text)) {
    auto record = ReadFile(Dir(store) + "/" + text + ".json", kMaxRecord);
    if (record) {
      auto j = nlohmann::json::parse(*record, nullptr, false);
      return Network::FromJson(j);
    }
  }
  KILN_ASSIGN_OR_RETURN(std::vector<Network> all, ListNetworks(store));
  const Network* match = nullptr;
  if (!text.empty() && text.size() <= 64 && text.find_first_not_of("0123456789abcdef") == std::string::npos)
    for (const auto& n : all)
      if (n.id.compare(0, text.size(), text) == 0) {
        if (match)
          return Error(Errc::kInvalidInput, "network ID " + text + " is ambiguous: more than one network matches");
        match = &n;
      }
  if (!match)
    return Error(Errc::kNotFound, "unable to find network with name or ID " + text + ": network not found");
  return *match;
}

Status RemoveNetwork(const Store& store, const std::string& name) {
  if (name == kDefaultNetwork)
    return Error(Errc::kInvalidInput, "default network podman cannot be removed");
  KILN_ASSIGN_OR_RETURN(UniqueFd lock, LockNetworks(store));
  std::string path = Dir(store) + "/" + name + ".json";
  if (!ValidNetworkName(name) || !PathExists(path))
    return Error(Errc::kNotFound, "unable to find network with name or ID " + name + ": network not found");
  auto gone = FindNetwork(store, name);  // its ID, for the event
  if (::unlink(path.c_str()) != 0)
    return Error::FromErrno("remove " + path);
  events::Record(store.root(), "network", "remove", gone ? gone->id : "", "", name);
  return store.DeleteRoot("networks", name);
}

Expected<uint32_t> AllocateAddress(const Network& net, const std::set<uint32_t>& in_use,
                                   std::optional<uint32_t> requested) {
  KILN_ASSIGN_OR_RETURN(Cidr c, net.Prefix());
  KILN_ASSIGN_OR_RETURN(uint32_t gw, net.Gateway());
  if (requested) {
    uint32_t ip = *requested;
    if (!c.Contains(ip) || ip == c.addr || ip == c.broadcast())
      return Error(Errc::kInvalidInput, "requested IP address " + Ipv4String(ip) + " is not in subnet " +
                                            c.str() + " of network " + net.name);
    if (ip == gw)
      return Error(Errc::kInvalidInput,
                   "requested IP address " + Ipv4String(ip) + " is the gateway of network " + net.name);
    if (in_use.count(ip))
      return Error(Errc::kFailed, "requested IP address " + Ipv4String(ip) +
                                      " is already allocated to a container on network " + net.name);
    return ip;
  }
  for (uint32_t ip = c.addr + 1; ip < c.broadcast(); ++ip)
    if (ip != gw && !in_use.count(ip))
      return ip;
  return Error(Errc::kFailed, "no free address left in subnet " + c.str() + " of network " + net.name);
}

}  // namespace kiln::network
