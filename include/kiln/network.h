// Container networks (docs/network.md): the network records (`kiln network
// create|ls|inspect|rm|prune|exists`), their subnets and the addresses
// containers take from them.
//
//   <store>/networks/<name>.json   one record per user network (podman's
//                                  inspect shape), registered as the GC root
//                                  networks/<name> (owner: the record)
//   <store>/networks/.lock         flock(2): create/remove, and address
//                                  allocation (AllocateAddress callers hold it
//                                  while they compute the addresses in use and
//                                  write the container's record)
//
// The default network `podman` (10.88.0.0/16, DNS off) is never stored: it
// exists in memory only, as in podman. User networks take the first free /24
// from 10.89.0.0 upward, skipping subnets of other kiln networks and of the
// host's routes (/proc/net/route), so a container's traffic to a host-side
// address is never captured by a bridge.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/error.h"
#include "kiln/unique_fd.h"

namespace kiln {
class Store;
}

namespace kiln::network {

inline constexpr char kDefaultNetwork[] = "podman";

/// An IPv4 prefix.
struct Cidr {
  uint32_t addr = 0;  ///< host byte order, host bits cleared
  int prefix = 0;
  /// "10.89.0.0/24" (host bits set are an error, as podman). kInvalidInput.
  static Expected<Cidr> Parse(const std::string& text);
  std::string str() const;
  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  uint32_t broadcast() const { return addr | ~mask(); }
  bool Contains(uint32_t ip) const { return (ip & mask()) == addr; }
  bool Overlaps(const Cidr& o) const {
    int p = prefix < o.prefix ? prefix : o.prefix;
    uint32_t m = p == 0 ? 0 : ~uint32_t{0} << (32 - p);
    return (addr & m) == (o.addr & m);
  }
};
/// "10.89.0.2" -> host byte order. kInvalidInput naming the text.
Expected<uint32_t> ParseIpv4(const std::string& text);
std::string Ipv4String(uint32_t ip);

/// The IPv4 destinations routed on the host (/proc/net/route), without the
/// default route.
std::vector<Cidr> HostRoutes();

struct Subnet {
  std::string subnet;   ///< "10.89.0.0/24"
  std::string gateway;  ///< "10.89.0.1" (the bridge's address)
};

/// One network, with podman 4.3's field names in ToJson().
struct Network {
  std::string name;
  std::string id;  ///< 64 hex (the default network: sha256("podman"), as podman)
  std::string driver = "bridge";
  std::string interface_name;  ///< the bridge inside kiln's network namespace
  std::string created;         ///< RFC 3339, nanoseconds
  std::vector<Subnet> subnets;
  bool ipv6_enabled = false;
  bool internal = false;
  bool dns_enabled = true;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> options;

  /// podman's `network inspect` object, in podman's field order.
  nlohmann::ordered_json ToJson() const;
  static Expected<Network> FromJson(const nlohmann::json& j);
  /// The first subnet, parsed.
  Expected<Cidr> Prefix() const;
  Expected<uint32_t> Gateway() const;
};

struct CreateOptions {
  std::string name;
  std::string subnet;   ///< "" = the first free /24 from 10.89.0.0
  std::string gateway;  ///< "" = the subnet's first address
  bool internal = false;
  bool disable_dns = false;
  bool ignore = false;  ///< --ignore: an existing network is returned as is
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> options;  ///< -o K=V (isolate, mtu)
};

/// [a-zA-Z0-9][a-zA-Z0-9_.-]* (podman's rule).
bool ValidNetworkName(const std::string& name);

/// `kiln network create`. kInvalidInput for a bad name, subnet or gateway,
/// a subnet that overlaps another network's, or an existing name.
Expected<Network> CreateNetwork(const Store& store, const CreateOptions& options);
/// Every network, the default one included, sorted by name (as podman).
Expected<std::vector<Network>> ListNetworks(const Store& store);
/// By name, full id or unique id prefix. kNotFound "unable to find network
/// with name or ID X: network not found" (podman's wording).
Expected<Network> FindNetwork(const Store& store, const std::string& name_or_id);
/// Removes a user network's record (the caller has checked that no container
/// uses it, or removed those). kInvalidInput for the default network.
Status RemoveNetwork(const Store& store, const std::string& name);

/// Holds <store>/networks/.lock exclusively while it lives.
Expected<UniqueFd> LockNetworks(const Store& store);

/// An address for a container on `net`: `requested` when set (must be inside
/// the subnet, not the network/broadcast/gateway address and not in
/// `in_use`), else the lowest free one. The caller holds LockNetworks() and
/// derives `in_use` from the container records that exist (no allocation
/// file that a crash could leave stale). kInvalidInput / kFailed with a
/// message naming the address and the network.
Expected<uint32_t> AllocateAddress(const Network& net, const std::set<uint32_t>& in_use,
                                   std::optional<uint32_t> requested = std::nullopt);

// ------------------------------------------------------------------ data path
// (src/network/holder.cpp, docs/network.md "Data path")

/// What PrepareHolder gives main(): a reference that keeps the holder alive
/// while it is open, and the holder's user namespace to join (empty when no
/// holder runs and none was asked for).
struct HolderHandle {
  UniqueFd refs;
  UniqueFd userns;
};

/// The holder's state directory for a store: <run_root>/network-<12 hex of
/// sha256(store_root)> (holder.pid, holder.log, refs, start.lock). All the
/// functions below take it as `state_dir`.
std::string HolderDir(const std::string& run_root, const std::string& store_root);

/// Called by main() on the host side, before EnterUserNamespace and before
/// any thread exists. `start`: the command runs a container on a network:
/// take a reference and start the holder of `state_dir` if none runs.
/// Otherwise only the user namespace of a live holder (to join it, so that a
/// later command still reaches the containers' namespaces).
Expected<HolderHandle> PrepareHolder(const std::string& state_dir, bool start);

/// A reference held by a detached container's monitor for its life.
Expected<UniqueFd> TakeHolderReference(const std::string& state_dir);

/// The hidden `kiln __network-holder --state-dir DIR`: inside its (new) user
/// namespace, makes the network namespace, writes holder.pid, writes 'R' to
/// `ready_fd`, and exits once nobody holds a reference. `outbound_fd` (>= 0:
/// the starter will attach slirp4netns, whose exit-fd it is): NAT and
/// forwarding rules for the bridges of non-internal networks. Returns the
/// exit status.
int HolderMain(const std::string& state_dir, int ready_fd, int outbound_fd = -1);

/// One container's place on one network.
struct Attachment {
  uint32_t ip = 0;
  std::string interface = "eth0";  ///< in the container
  std::string host_interface;      ///< the bridge end, in the holder's namespace (<= 15 chars)
  bool default_route = true;
  /// The container's id: the responder answers a container's queries with
  /// the names of every DNS-enabled network it is on (aardvark-dns's rule).
  std::string container;
  /// --dns: where the responder forwards this container's other queries
  /// (empty: the host's nameservers).
  std::vector<uint32_t> resolvers;
  /// What the network's DNS responder answers for `ip` (name, short id,
  /// aliases), when the network has DNS on.
  std::vector<std::string> names;
};

/// Connects the network namespace of `pid` (a process of the container) to
/// `net`: the network's bridge in the holder's namespace (made on first
/// use), a veth pair, the address and the default route. Runs in the
/// holder's user namespace (root there).
Status AttachContainer(const std::string& state_dir, const Network& net, const Attachment& a, pid_t pid);

/// `kiln network disconnect` of a running container: removes the veth pair
/// (the bridge end `host_interface`, in the holder's namespace) and the
/// names. Nothing to do when no holder runs (the container's namespace is
/// gone with it).
Status DetachContainer(const std::string& state_dir, const std::string& host_interface);

/// The build veth ends' prefix (`kb` + 12 hex): kiln build --network NAME.
inline constexpr char kBuildInterfacePrefix[] = "kb";
/// The addresses build namespaces hold, per network: DIR/dns/kb* entries
/// whose veth end still exists in the holder's namespace (a crashed build's
/// entry stops counting once its namespace is gone; nothing to clean up).
std::map<std::string, std::set<uint32_t>> BuildAddresses(const std::string& state_dir);

/// The container's names leave the responder (its veth end is gone soon
/// after anyway; this makes it immediate).
void UnpublishNames(const std::string& state_dir, const std::string& host_interface);

}  // namespace kiln::network
