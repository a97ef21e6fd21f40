// Containers on networks (docs/network.md): --network NAME[:alias=A,ip=IP],
// --ip and --network-alias parsed into the record, addresses derived from
// the records that exist (under the containers lock: no allocation file a
// crash could leave stale), and the sandbox's hook that attaches them.
#include <algorithm>
#include <map>
#include <set>

#include "kiln/fs.h"
#include "kiln/network.h"
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

}  // namespace

namespace internal {

void NetworksToJson(const Config& c, json& j) {
  if (c.networks.empty())
    return;
  json nets = json::object();
  for (const auto& n : c.networks)
    nets[n.name] = {{"id", n.id},           {"ip", n.ip},
                    {"subnet", n.subnet},   {"gateway", n.gateway},
                    {"bridge", n.bridge},   {"interface", n.interface},
                    {"host_interface", n.host_interface}, {"aliases", n.aliases},
                    {"internal", n.internal}, {"dns", n.dns}};
  j["networks"] = nets;
}

void NetworksFromJson(const json& j, Config& c) {
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
    c.networks.push_back(std::move(n));
  }
  // The record's object is sorted by name; the interfaces keep their order.
  std::sort(c.networks.begin(), c.networks.end(),
            [](const ContainerNetwork& a, const ContainerNetwork& b) { return a.interface < b.interface; });
}

Status AssignNetworks(const Store& store, const Paths& paths, const RunOptions& o, Config& c) {
  if (o.networks.empty()) {
    if (!o.ip.empty() || !o.network_aliases.empty())
      return Error(Errc::kInvalidInput, std::string(o.ip.empty() ? "--network-alias" : "--ip") +
                                            " needs --network NAME (a container network)");
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
  // The addresses in use: those of the containers that exist (we hold the
  // containers lock, so no other run is between choosing and recording).
  std::map<std::string, std::set<uint32_t>> in_use;
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
    n.aliases = r.aliases;
    n.internal = net.internal;
    n.dns = net.dns_enabled;
    c.networks.push_back(std::move(n));
    ++index;
  }
  // /etc/hosts names the container on its first network, as podman.
  std::string names = c.hostname;
  if (!c.name.empty() && c.name != c.hostname)
    names += " " + c.name;
  c.etc_hosts += c.networks[0].ip + "\t" + names + "\n";
  // Names: the responder on the first DNS-enabled network's gateway, with
  // podman's search domain before the host's.
  for (const auto& n : c.networks) {
    if (!n.dns)
      continue;
    std::string search = "dns.podman";
    std::string options;
    if (auto host = ReadFile("/etc/resolv.conf", 1 << 20)) {
      size_t pos = 0;
      while (pos < host->size()) {
        size_t nl = host->find('\n', pos);
        std::string line = host->substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        pos = nl == std::string::npos ? host->size() : nl + 1;
        if (line.rfind("search ", 0) == 0 || line.rfind("domain ", 0) == 0)
          search += " " + line.substr(7);
      }
    }
    c.etc_resolv_conf = "search " + search + "\nnameserver " + n.gateway + "\n";
    break;
  }
  return Ok();
}

void AttachNetworksHook(const Paths& paths, const Config& c, SandboxSpec& spec) {
  if (c.networks.empty())
    return;
  spec.network = NetworkMode::kPrivate;  // its own namespace; attach_network instead of slirp4netns
  std::string run_root = network::HolderDir(paths.run_root, paths.store_root);
  std::vector<ContainerNetwork> nets = c.networks;
  std::string name = c.name;
  std::string id = c.id;
  spec.attach_network = [run_root, nets, name, id](pid_t pid) -> Status {
    bool route = true;
    for (const auto& n : nets) {
      network::Network net;
      net.name = n.name;
      net.interface_name = n.bridge;
      net.subnets = {{n.subnet, n.gateway}};
      net.dns_enabled = n.dns;
      network::Attachment a;
      KILN_ASSIGN_OR_RETURN(a.ip, network::ParseIpv4(n.ip));
      a.interface = n.interface;
      a.host_interface = n.host_interface;
      if (n.dns) {
        if (!name.empty())
          a.names.push_back(name);
        a.names.push_back(id.substr(0, 12));
        for (const auto& alias : n.aliases)
          a.names.push_back(alias);
      }
      a.default_route = route && !n.internal;
      if (a.default_route)
        route = false;
      KILN_TRY(network::AttachContainer(run_root, net, a, pid));
    }
    return Ok();
  };
}

void DetachNetworks(const Paths& paths, const Config& c) {
  for (const auto& n : c.networks)
    network::UnpublishNames(network::HolderDir(paths.run_root, paths.store_root), n.host_interface);
}

}  // namespace internal

}  // namespace kiln::run
