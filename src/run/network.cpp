// Containers on networks (docs/network.md): --network NAME[:alias=A,ip=IP],
// --ip and --network-alias parsed into the record, addresses derived from
// the records that exist (under the containers lock: no allocation file a
// crash could leave stale), and the sandbox's hook that attaches them.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>
#include <map>
#include <set>

#include "kiln/events.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/network.h"
#include "kiln/random.h"
#include "kiln/store.h"
#include "run/internal.h"

namespace kiln::run {

using namespace internal;
using nlohmann::json;

namespace {

struct Request {
  std::string name;
  std::string ip;
  std::vector<std::string> aliases;
};

/// NAME[:alias=A,ip=IP,...] (podman's --network NAME:OPTIONS).
Expected<Request> ParseRequest(const std::string& text) {
  Request r;
  size_t colon = text.find(':');
  r.name = text.substr(0, colon);
  if (colon == std::string::npos)
    return r;
  std::string opts = text.substr(colon + 1);
  size_t pos = 0;
  while (pos <= opts.size()) {
    size_t comma = opts.find(',', pos);
    std::string kv = opts.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? opts.size() + 1 : comma + 1;
    size_t eq = kv.find('=');
    std::string k = kv.substr(0, eq);
    std::string v = eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (k == "alias" && !v.empty())
      r.aliases.push_back(v);
    else if (k == "ip" && !v.empty())
      r.ip = v;
    else
      return Error(Errc::kInvalidInput, "invalid --network " + text + ": unknown option \"" + kv +
                                            "\" (kiln knows alias=NAME and ip=ADDRESS)");
  }
  return r;
}

/// The addresses in use per network: those of the containers that exist
/// and of the builds on a network (the caller holds the containers lock, so
/// no other run or build is between choosing and recording).
std::map<std::string, std::set<uint32_t>> AddressesInUse(const Paths& paths) {
  std::map<std::string, std::set<uint32_t>> in_use =
      network::BuildAddresses(network::HolderDir(paths.run_root, paths.store_root));
  if (auto list = ListContainers(paths, true)) {
    for (const auto& info : *list) {
      auto other = ReadConfig(paths, info.id);
      if (!other)
        continue;
      for (const auto& n : other->networks)
        if (auto ip = network::ParseIpv4(n.ip))
          in_use[n.name].insert(*ip);
    }
  }
  return in_use;
}

/// The record's entry for container `c` on `net` at `ip`, as interface
/// eth<index>.
ContainerNetwork MakeEntry(const Config& c, const network::Network& net, uint32_t ip, int index,
                           const std::vector<std::string>& aliases) {
  ContainerNetwork n;
  n.name = net.name;
  n.id = net.id;
  n.ip = network::Ipv4String(ip);
  n.subnet = net.subnets[0].subnet;
  n.gateway = net.subnets[0].gateway;
  n.bridge = net.interface_name;
  n.interface = "eth" + std::to_string(index);
  // <= 15 characters, unique per container and network.
  n.host_interface = "kv" + c.id.substr(0, 10) + std::to_string(index);
  n.aliases = aliases;
  n.internal = net.internal;
  n.dns = net.dns_enabled;
  return n;
}

/// What AttachContainer needs for `n`.
Expected<network::Attachment> MakeAttachment(const std::string& id, const std::string& name,
                                             const ContainerNetwork& n, bool default_route) {
  network::Attachment a;
  KILN_ASSIGN_OR_RETURN(a.ip, network::ParseIpv4(n.ip));
  a.interface = n.interface;
  a.host_interface = n.host_interface;
  a.container = id;
  if (!name.empty())
    a.names.push_back(name);
  a.names.push_back(id.substr(0, 12));
  for (const auto& alias : n.aliases)
    a.names.push_back(alias);
  for (const auto& r : n.resolvers)
    if (auto ip = network::ParseIpv4(r))
      a.resolvers.push_back(*ip);
  a.default_route = default_route;
  return a;
}

network::Network NetworkOf(const ContainerNetwork& n) {
  network::Network net;
  net.name = n.name;
  net.id = n.id;
  net.interface_name = n.bridge;
  net.subnets = {{n.subnet, n.gateway}};
  net.internal = n.internal;
  net.dns_enabled = n.dns;
  return net;
}


/// resolv.conf for a container (or build) whose resolver is the responder
/// on `gateway`: podman's search domain (when the network has DNS) before
/// the host's.
std::string ResolvConf(const std::string& gateway, bool dns) {
  std::string search = dns ? "dns.podman" : "";
  if (auto host = ReadFile("/etc/resolv.conf", 1 << 20)) {
    size_t pos = 0;
    while (pos < host->size()) {
      size_t nl = host->find('\n', pos);
      std::string line = host->substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      pos = nl == std::string::npos ? host->size() : nl + 1;
      if (line.rfind("search ", 0) == 0 || line.rfind("domain ", 0) == 0)
        search += (search.empty() ? "" : " ") + line.substr(7);
    }
  }
  return (search.empty() ? "" : "search " + search + "\n") + "nameserver " + gateway + "\n";
}

bool IsIpAddress(const std::string& text) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, text.c_str(), buf) == 1 || ::inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

/// --add-host HOST:IP, --dns IP|none: podman's checks, exit 2 on a bad value.
Status CheckNameOptions(const RunOptions& o) {
  for (const auto& h : o.add_hosts) {
    size_t sep = h.find(':');
    if (sep == std::string::npos || sep == 0 || !IsIpAddress(h.substr(sep + 1)))
      return Error(Errc::kInvalidInput, "invalid --add-host \"" + h + "\": want HOST:IP");
  }
  for (const auto& d : o.dns_servers) {
    if (d == "none" ? o.dns_servers.size() != 1 : !IsIpAddress(d))
      return Error(Errc::kInvalidInput, "invalid --dns \"" + d + "\": want an IP address (or none alone)");
    if (!o.networks.empty() && d != "none" && !network::ParseIpv4(d))
      return Error(Errc::kInvalidInput, "--dns " + d + ": a container network forwards to IPv4 servers only");
  }
  if (o.network == NetworkMode::kNone && o.networks.empty() &&
      (!o.dns_servers.empty() || !o.dns_search.empty() || !o.dns_options.empty()))
    return Error(Errc::kInvalidInput, "conflicting options: dns and the network mode: none");
  return Ok();
}

/// The host's first non-loopback IPv4 address (host.containers.internal).
std::string HostAddress() {
  struct ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0)
    return {};
  std::string found;
  for (struct ifaddrs* i = list; i && found.empty(); i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP))
      continue;
    char text[INET_ADDRSTRLEN];
    auto* sin = reinterpret_cast<struct sockaddr_in*>(i->ifa_addr);
    if (::inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text))
      found = text;
  }
  ::freeifaddrs(list);
  return found;
}

/// --add-host, --dns, --dns-search, --dns-option into the container's
/// /etc/hosts and /etc/resolv.conf (podman's layout: the added hosts first,
/// host.containers.internal last; --dns-search . clears the search list,
/// --dns none leaves no nameserver).
void ApplyNameOptions(const RunOptions& o, Config& c) {
  std::string added;
  for (const auto& h : o.add_hosts) {
    size_t sep = h.find(':');
    added += h.substr(sep + 1) + "\t" + h.substr(0, sep) + "\n";
  }
  c.etc_hosts = added + c.etc_hosts;
  if (c.network != NetworkMode::kHost && c.network != NetworkMode::kNone) {
    std::string host = HostAddress();
    if (!host.empty())
      c.etc_hosts += host + "\thost.containers.internal\n";
  }
  if (c.network == NetworkMode::kHost && o.dns_servers.empty() && o.dns_search.empty() && o.dns_options.empty())
    return;
  if (o.dns_servers.empty() && o.dns_search.empty() && o.dns_options.empty())
    return;
  std::vector<std::string> nameservers, search, options, other;
  size_t pos = 0;
  const std::string& text = c.etc_resolv_conf;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    std::istringstream ls(line);
    std::string key, word;
    ls >> key;
    if (key == "nameserver" && (ls >> word))
      nameservers.push_back(word);
    else if (key == "search" || key == "domain")
      while (ls >> word)
        search.push_back(word);
    else if (key == "options")
      while (ls >> word)
        options.push_back(word);
    else if (!line.empty())
      other.push_back(line);
  }
  if (!o.dns_servers.empty() && c.networks.empty())
    nameservers = o.dns_servers[0] == "none" ? std::vector<std::string>{} : o.dns_servers;
  if (!o.dns_search.empty()) {
    bool keep_podman = !search.empty() && search[0] == "dns.podman";
    search.clear();
    if (keep_podman)
      search.push_back("dns.podman");
    for (const auto& d : o.dns_search)
      if (d != ".")
        search.push_back(d);
  }
  if (!o.dns_options.empty())
    options = o.dns_options;
  std::string out;
  for (const auto& l : other)
    out += l + "\n";
  if (!search.empty()) {
    out += "search";
    for (const auto& d : search)
      out += " " + d;
    out += "\n";
  }
  for (const auto& n : nameservers)
    out += "nameserver " + n + "\n";
  if (!options.empty()) {
    out += "options";
    for (const auto& d : options)
      out += " " + d;
    out += "\n";
  }
  c.etc_resolv_conf = out;
}


/// --network container:NAME: the record names the container; its /etc/hosts
/// and resolv.conf are copied (as podman shares them). It must be on a
/// container network: only those namespaces belong to the holder's user
/// namespace, which every kiln process joins.
Status ShareNetwork(const Paths& paths, const RunOptions& o, Config& c) {
  const std::string flag = "--network container:" + o.network_container;
  if (!o.networks.empty() || !o.ip.empty() || !o.network_aliases.empty() || !o.add_hosts.empty() ||
      !o.dns_servers.empty() || !o.dns_search.empty() || !o.dns_options.empty() || !o.ports.empty())
    return Error(Errc::kInvalidInput, "conflicting options: " + flag +
                                          " takes no other --network, --ip, --network-alias, --add-host, --dns* "
                                          "or -p (the namespace is the other container's)");
  KILN_ASSIGN_OR_RETURN(std::string id, ResolveContainer(paths, o.network_container));
  KILN_ASSIGN_OR_RETURN(Config other, ReadConfig(paths, id));
  if (!other.network_container.empty())
    id = other.network_container;  // the namespace's owner
  if (other.networks.empty() && other.network_container.empty())
    return Error(Errc::kInvalidInput, flag + ": that container is not on a container network (kiln shares the "
                                             "namespaces of containers made with --network NAME only)");
  if (!o.create_only) {
    State st = EffectiveState(paths, id);
    if (st.status != "running" || st.pid <= 0)
      return Error(Errc::kFailed, flag + ": that container is not running (its network namespace exists only while it runs)");
  }
  c.network_container = id;
  c.network = NetworkMode::kHost;  // no namespace of its own: the thread's (AttachNetworksHook)
  c.etc_hosts = other.etc_hosts;
  c.etc_resolv_conf = other.etc_resolv_conf;
  return Ok();
}

/// `network connect`/`disconnect` as podman does them: the container's
/// names on its new address appended to /etc/hosts and the network's
/// responder put first in resolv.conf (connect), or those lines taken out
/// again (disconnect); in the record (a restart keeps them) and, while it
/// runs, in the files its bind mounts show (rewritten in place: same inode).
void EditEtcFiles(Config& c, const ContainerNetwork& n, bool add) {
  auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
      out.push_back(l);
    return out;
  };
  auto join = [](const std::vector<std::string>& ls) {
    std::string out;
    for (const auto& l : ls)
      out += l + "\n";
    return out;
  };
  const std::string ns_line = "nameserver " + n.gateway;
  std::vector<std::string> hosts = lines(c.etc_hosts), resolv = lines(c.etc_resolv_conf);
  auto first_field = [](const std::string& l) { return l.substr(0, l.find_first_of(" \t")); };
  hosts.erase(std::remove_if(hosts.begin(), hosts.end(), [&](const std::string& l) { return first_field(l) == n.ip; }),
              hosts.end());
  bool gateway_kept = false;  // another of its networks has the same gateway (never, unless subnets repeat)
  for (const auto& other : c.networks)
    gateway_kept = gateway_kept || (other.name != n.name && other.gateway == n.gateway);
  if (!gateway_kept)
    resolv.erase(std::remove(resolv.begin(), resolv.end(), ns_line), resolv.end());
  if (add) {
    std::string names = c.hostname;
    if (!c.name.empty() && c.name != c.hostname)
      names += " " + c.name;
    hosts.push_back(n.ip + "\t" + names);
    auto first_ns = std::find_if(resolv.begin(), resolv.end(),
                                 [](const std::string& l) { return l.rfind("nameserver", 0) == 0; });
    resolv.insert(first_ns, ns_line);
  }
  c.etc_hosts = join(hosts);
  c.etc_resolv_conf = join(resolv);
}

/// The running container's files (RunDir/hosts, RunDir/resolv.conf, made by
/// the sandbox for containers on networks) get the record's text.
void RewriteLiveEtcFiles(const Paths& paths, const Config& c) {
  for (auto [name, text] : {std::pair<const char*, const std::string*>{"hosts", &c.etc_hosts},
                            {"resolv.conf", &c.etc_resolv_conf}}) {
    std::string path = RunDir(paths, c.id) + "/" + name;
    auto fd = OpenFile(path, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
    if (!fd)
      continue;  // started before kiln kept them there: names still resolve through the responder
    if (auto st = WriteAll(fd->get(), *text); !st)
      LogWarn("network connect: " + path + ": " + st.error().message());
  }
}

}  // namespace

namespace internal {

void NetworksToJson(const Config& c, json& j) {
  if (!c.network_container.empty())
    j["network_container"] = c.network_container;
  if (c.networks.empty())
    return;
  json nets = json::object();
  for (const auto& n : c.networks)
    nets[n.name] = {{"id", n.id},           {"ip", n.ip},
                    {"subnet", n.subnet},   {"gateway", n.gateway},
                    {"bridge", n.bridge},   {"interface", n.interface},
                    {"host_interface", n.host_interface}, {"aliases", n.aliases},
                    {"internal", n.internal}, {"dns", n.dns}, {"resolvers", n.resolvers}};
  j["networks"] = nets;
}

void NetworksFromJson(const json& j, Config& c) {
  if (auto nc = j.find("network_container"); nc != j.end() && nc->is_string())
    c.network_container = nc->get<std::string>();
  auto it = j.find("networks");
  if (it == j.end() || !it->is_object())
    return;
  for (const auto& [name, v] : it->items()) {
    if (!v.is_object())
      continue;
    ContainerNetwork n;
    n.name = name;
    n.id = v.value("id", "");
    n.ip = v.value("ip", "");
    n.subnet = v.value("subnet", "");
    n.gateway = v.value("gateway", "");
    n.bridge = v.value("bridge", "");
    n.interface = v.value("interface", "eth0");
    n.host_interface = v.value("host_interface", "");
    if (v.contains("aliases") && v["aliases"].is_array())
      for (const auto& a : v["aliases"])
        if (a.is_string())
          n.aliases.push_back(a.get<std::string>());
    n.internal = v.value("internal", false);
    n.dns = v.value("dns", false);
    if (v.contains("resolvers") && v["resolvers"].is_array())
      for (const auto& r : v["resolvers"])
        if (r.is_string())
          n.resolvers.push_back(r.get<std::string>());
    c.networks.push_back(std::move(n));
  }
  // The record's object is sorted by name; the interfaces keep their order.
  std::sort(c.networks.begin(), c.networks.end(),
            [](const ContainerNetwork& a, const ContainerNetwork& b) { return a.interface < b.interface; });
}

Status AssignNetworks(const Store& store, const Paths& paths, const RunOptions& o, Config& c) {
  if (!o.network_container.empty())
    return ShareNetwork(paths, o, c);
  KILN_TRY(CheckNameOptions(o));
  if (o.networks.empty()) {
    if (!o.ip.empty() || !o.network_aliases.empty())
      return Error(Errc::kInvalidInput, std::string(o.ip.empty() ? "--network-alias" : "--ip") +
                                            " needs --network NAME (a container network)");
    ApplyNameOptions(o, c);
    return Ok();
  }
  KILN_TRY(MakeDirs(store.root() + "/networks", 0700));  // `kiln start` looks for it
  std::vector<Request> requests;
  for (const auto& text : o.networks) {
    KILN_ASSIGN_OR_RETURN(Request r, ParseRequest(text));
    for (const auto& seen : requests)
      if (seen.name == r.name)
        return Error(Errc::kInvalidInput, "--network " + r.name + " is given twice");
    requests.push_back(std::move(r));
  }
  if (!o.ip.empty() || !o.network_aliases.empty()) {
    if (requests.size() != 1)
      return Error(Errc::kInvalidInput, "--ip and --network-alias need exactly one --network (use NAME:ip=..,alias=..)");
    if (!o.ip.empty())
      requests[0].ip = o.ip;
    for (const auto& a : o.network_aliases)
      requests[0].aliases.push_back(a);
  }
  std::map<std::string, std::set<uint32_t>> in_use = AddressesInUse(paths);
  int index = 0;
  for (const auto& r : requests) {
    KILN_ASSIGN_OR_RETURN(network::Network net, network::FindNetwork(store, r.name));
    std::optional<uint32_t> want;
    if (!r.ip.empty()) {
      KILN_ASSIGN_OR_RETURN(uint32_t ip, network::ParseIpv4(r.ip));
      want = ip;
    }
    KILN_ASSIGN_OR_RETURN(uint32_t ip, network::AllocateAddress(net, in_use[net.name], want));
    in_use[net.name].insert(ip);
    for (const auto& a : r.aliases)
      if (!network::ValidNetworkName(a))
        return Error(Errc::kInvalidInput, "invalid network alias \"" + a + "\"");
    for (const auto& seen : c.networks)
      if (seen.name == net.name)
        return Error(Errc::kInvalidInput, "--network " + net.name + " is given twice");
    c.networks.push_back(MakeEntry(c, net, ip, index, r.aliases));
    ++index;
  }
  // /etc/hosts names the container on its first network, as podman.
  std::string names = c.hostname;
  if (!c.name.empty() && c.name != c.hostname)
    names += " " + c.name;
  c.etc_hosts += c.networks[0].ip + "\t" + names + "\n";
  // Names: the responder on the first DNS-enabled network's gateway, with
  // podman's search domain before the host's. On networks without DNS (the
  // default `podman`, --disable-dns) the responder only forwards: the
  // holder's namespace has no other way to the host's resolvers.
  const ContainerNetwork* resolver = &c.networks[0];
  for (const auto& n : c.networks)
    if (n.dns) {
      resolver = &n;
      break;
    }
  c.etc_resolv_conf = ResolvConf(resolver->gateway, resolver->dns);
  // --dns on a container network: the responder forwards this container's
  // other names there (the gateway stays its only nameserver).
  for (auto& n : c.networks)
    for (const auto& d : o.dns_servers)
      if (d != "none" && network::ParseIpv4(d))
        n.resolvers.push_back(d);
  ApplyNameOptions(o, c);
  return Ok();
}

void AttachNetworksHook(const Paths& paths, const Config& c, SandboxSpec& spec) {
  if (!c.network_container.empty()) {
    // --network container:ID: the sandbox makes no network namespace
    // (kHost) and is spawned by this thread (Supervise -> Run), so it starts
    // in the namespace this thread enters now. Fails closed: without the
    // other container's namespace the container gets none (a new one with
    // loopback only), never the host's.
    spec.network = NetworkMode::kNone;
    State s = EffectiveState(paths, c.network_container);
    if (s.status != "running" || s.pid <= 0) {
      LogWarn("--network container:" + c.network_container.substr(0, 12) +
              ": that container is not running: this one gets loopback only");
      return;
    }
    UniqueFd ns(::open(("/proc/" + std::to_string(s.pid) + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns || ::setns(ns.get(), CLONE_NEWNET) != 0) {
      LogWarn("--network container:" + c.network_container.substr(0, 12) + ": cannot join its network namespace (" +
              std::strerror(errno) + "): this one gets loopback only");
      return;
    }
    spec.network = NetworkMode::kHost;
    return;
  }
  if (c.networks.empty())
    return;
  spec.network = NetworkMode::kPrivate;  // its own namespace; attach_network instead of slirp4netns
  // hosts and resolv.conf where `network connect` finds them (EditEtcFiles).
  if (MakeDirs(RunDir(paths, c.id), 0700))
    spec.etc_dir = RunDir(paths, c.id);
  std::string run_root = network::HolderDir(paths.run_root, paths.store_root);
  std::vector<ContainerNetwork> nets = c.networks;
  std::string name = c.name;
  std::string id = c.id;
  spec.attach_network = [run_root, nets, name, id](pid_t pid) -> Status {
    bool route = true;
    for (const auto& n : nets) {
      bool default_route = route && !n.internal;
      if (default_route)
        route = false;
      KILN_ASSIGN_OR_RETURN(network::Attachment a, MakeAttachment(id, name, n, default_route));
      KILN_TRY(network::AttachContainer(run_root, NetworkOf(n), a, pid));
    }
    return Ok();
  };
}

void DetachNetworks(const Paths& paths, const Config& c) {
  std::string dir = network::HolderDir(paths.run_root, paths.store_root);
  for (const auto& n : c.networks)
    network::UnpublishNames(dir, n.host_interface);
  // Networks connected while it ran (network connect) are in the record.
  if (auto now = ReadConfig(paths, c.id))
    for (const auto& n : now->networks)
      network::UnpublishNames(dir, n.host_interface);
}

}  // namespace internal

Status ConnectNetwork(const Store& store, const Paths& paths, const std::string& id, const std::string& network_name,
                      const std::vector<std::string>& aliases, const std::string& ip_text) {
  KILN_ASSIGN_OR_RETURN(network::Network net, network::FindNetwork(store, network_name));
  for (const auto& a : aliases)
    if (!network::ValidNetworkName(a))
      return Error(Errc::kInvalidInput, "invalid network alias \"" + a + "\"");
  std::optional<uint32_t> want;
  if (!ip_text.empty()) {
    KILN_ASSIGN_OR_RETURN(uint32_t ip, network::ParseIpv4(ip_text));
    want = ip;
  }
  KILN_ASSIGN_OR_RETURN(UniqueFd lock, LockFile(ContainersRoot(paths) + "/lock", LOCK_EX));
  KILN_ASSIGN_OR_RETURN(Config c, ReadConfig(paths, id));
  std::string shown = c.name.empty() ? id.substr(0, 12) : c.name;
  if (c.networks.empty())
    return Error(Errc::kInvalidInput, "container " + shown +
                                          " is not on a container network (it uses --network " +
                                          (c.network == NetworkMode::kHost   ? "host"
                                           : c.network == NetworkMode::kNone ? "none"
                                                                             : "private") +
                                          "): network connect needs a container made with --network NAME");
  for (const auto& n : c.networks)
    if (n.name == net.name)
      return Error(Errc::kInvalidInput, "container " + shown + " is already connected to network " + net.name);
  auto in_use = AddressesInUse(paths);
  KILN_ASSIGN_OR_RETURN(uint32_t ip, network::AllocateAddress(net, in_use[net.name], want));
  std::set<std::string> taken;
  for (const auto& n : c.networks)
    taken.insert(n.interface);
  int index = 0;
  while (taken.count("eth" + std::to_string(index)))
    ++index;
  ContainerNetwork entry = MakeEntry(c, net, ip, index, aliases);
  bool has_route = std::any_of(c.networks.begin(), c.networks.end(), [](const ContainerNetwork& n) { return !n.internal; });
  Config updated = c;
  updated.networks.push_back(entry);
  std::sort(updated.networks.begin(), updated.networks.end(),
            [](const ContainerNetwork& a, const ContainerNetwork& b) { return a.interface < b.interface; });
  EditEtcFiles(updated, entry, true);
  KILN_TRY(WriteConfig(paths, updated));
  events::Record(paths.store_root, "network", "connect", c.id, c.name, net.name);
  // A running container gets its interface now; a stopped one when it starts.
  State s = EffectiveState(paths, id);
  if (s.status != "running" || s.pid <= 0)
    return Ok();
  KILN_ASSIGN_OR_RETURN(network::Attachment a, MakeAttachment(c.id, c.name, entry, !has_route && !entry.internal));
  Status st = network::AttachContainer(network::HolderDir(paths.run_root, paths.store_root), net, a, s.pid);
  if (!st) {
    (void)network::DetachContainer(network::HolderDir(paths.run_root, paths.store_root), entry.host_interface);
    (void)WriteConfig(paths, c);
    return std::move(st).error().WithContext("network connect " + net.name + " " + shown);
  }
  RewriteLiveEtcFiles(paths, updated);
  return Ok();
}

Status DisconnectNetwork(const Store& store, const Paths& paths, const std::string& id,
                         const std::string& network_name) {
  KILN_ASSIGN_OR_RETURN(network::Network net, network::FindNetwork(store, network_name));
  KILN_ASSIGN_OR_RETURN(UniqueFd lock, LockFile(ContainersRoot(paths) + "/lock", LOCK_EX));
  KILN_ASSIGN_OR_RETURN(Config c, ReadConfig(paths, id));
  std::string shown = c.name.empty() ? id.substr(0, 12) : c.name;
  auto it = std::find_if(c.networks.begin(), c.networks.end(),
                         [&](const ContainerNetwork& n) { return n.name == net.name; });
  if (it == c.networks.end())
    return Error(Errc::kInvalidInput, "container " + shown + " is not connected to network " + net.name);
  ContainerNetwork entry = *it;
  c.networks.erase(it);
  EditEtcFiles(c, entry, false);
  KILN_TRY(WriteConfig(paths, c));
  events::Record(paths.store_root, "network", "disconnect", c.id, c.name, net.name);
  State s = EffectiveState(paths, id);
  if (s.status != "running" || s.pid <= 0) {
    network::UnpublishNames(network::HolderDir(paths.run_root, paths.store_root), entry.host_interface);
    return Ok();
  }
  RewriteLiveEtcFiles(paths, c);
  return network::DetachContainer(network::HolderDir(paths.run_root, paths.store_root), entry.host_interface);
}

}  // namespace kiln::run

namespace kiln::run {

Expected<BuildNetwork> PrepareBuildNetwork(const Store& store, const Paths& paths, const std::string& network_name) {
  KILN_ASSIGN_OR_RETURN(network::Network net, network::FindNetwork(store, network_name));
  BuildNetwork b;
  b.resolv_conf = ResolvConf(net.subnets.at(0).gateway, net.dns_enabled);
  b.attach = [paths, net](pid_t pid) -> Status {
    KILN_ASSIGN_OR_RETURN(std::string tag, RandomHex(12));
    network::Attachment a;
    a.interface = "eth0";
    a.host_interface = network::kBuildInterfacePrefix + tag;
    a.container = "build-" + tag;
    // Under the containers lock until the entry (the lease) is written: a
    // `run` choosing meanwhile sees it (AddressesInUse).
    KILN_TRY(MakeDirs(ContainersRoot(paths), 0700));
    KILN_ASSIGN_OR_RETURN(UniqueFd lock, LockFile(ContainersRoot(paths) + "/lock", LOCK_EX));
    auto in_use = AddressesInUse(paths);
    KILN_ASSIGN_OR_RETURN(a.ip, network::AllocateAddress(net, in_use[net.name]));
    if (auto st = network::AttachContainer(network::HolderDir(paths.run_root, paths.store_root), net, a, pid); !st)
      return std::move(st).error().WithContext("kiln build --network " + net.name);
    return Ok();
  };
  return b;
}

}  // namespace kiln::run
