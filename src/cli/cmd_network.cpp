// kiln network create|ls|inspect|rm|exists|prune: container networks
// (docs/network.md), with podman 4.3's flags and output shapes.
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/command.h"
#include "cli/commands.h"
#include "cli/compose_flags.h"
#include "cli/format_util.h"
#include "kiln/format.h"
#include "kiln/fs.h"
#include "kiln/keyvalue.h"
#include "kiln/network.h"
#include "kiln/run.h"
#include "kiln/sandbox.h"
#include "kiln/store.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

namespace {

Expected<Store> OpenNetworkStore(const Context& ctx) { return Store::Open(ctx.StoreRoot()); }

/// The containers whose record names network `name` (config.json "networks").
std::vector<std::string> NetworkUsers(const Context& ctx, const std::string& name) {
  std::vector<std::string> out;
  auto list = run::ListContainers(RunPaths(ctx), true);
  if (!list)
    return out;
  for (const auto& c : *list) {
    auto j = nlohmann::json::parse(c.config_json, nullptr, false);
    if (j.is_object() && j.contains("networks") && j["networks"].is_object() && j["networks"].contains(name))
      out.push_back(c.id);
  }
  return out;
}

/// A row for `network ls --format`: podman's Go field names.
nlohmann::json ListRow(const network::Network& n, bool no_trunc) {
  nlohmann::json subnets = nlohmann::json::array();
  for (const auto& s : n.subnets)
    subnets.push_back({{"Subnet", s.subnet}, {"Gateway", s.gateway}});
  return {{"Name", n.name},
          {"ID", no_trunc ? n.id : n.id.substr(0, 12)},
          {"Driver", n.driver},
          {"NetworkInterface", n.interface_name},
          {"Created", n.created},
          {"Subnets", subnets},
          {"IPv6Enabled", n.ipv6_enabled},
          {"Internal", n.internal},
          {"DNSEnabled", n.dns_enabled},
          {"Labels", n.labels},
          {"Options", n.options},
          {"IPAMOptions", {{"driver", "host-local"}}}};
}


/// --filter name=, id=, driver=, label=K[=V] (podman's network ls filters).
Expected<bool> Matches(const network::Network& n, const std::vector<std::string>& filters) {
  KILN_ASSIGN_OR_RETURN(auto filter, ListFilter::Parse(filters, {"name", "id", "driver", "label"}, [](const std::string& k) {
                          return "invalid filter \"" + k + "\": kiln knows name, id, driver and label";
                        }));
  return filter.Match([&](const std::string& key, const std::string& v, size_t) {
    if (key == "name")
      return n.name.find(v) != std::string::npos;
    if (key == "id")
      return n.id.compare(0, v.size(), v) == 0;
    if (key == "driver")
      return n.driver == v;
    return LabelMatches(n.labels, v);
  });
}

/// The store and its networks that pass --filter (network ls and prune).
struct Listed {
  Store store;
  std::vector<network::Network> networks;
};
Expected<Listed> ListFiltered(const Context& ctx, const std::vector<std::string>& filters) {
  KILN_ASSIGN_OR_RETURN(Store store, OpenNetworkStore(ctx));
  KILN_ASSIGN_OR_RETURN(std::vector<network::Network> all, network::ListNetworks(store));
  Listed out{std::move(store), {}};
  for (auto& n : all) {
    KILN_ASSIGN_OR_RETURN(bool match, Matches(n, filters));
    if (match)
      out.networks.push_back(std::move(n));
  }
  return out;
}

}  // namespace

/// --network values that name no network (run/create/build keep their meaning).
bool NamesNetwork(const std::string& v) {
  for (const char* m : {"none", "host", "private", "slirp4netns", "pasta", "bridge", "default", ""})
    if (v == m)
      return false;
  return v.rfind("container:", 0) != 0 && v.rfind("ns:", 0) != 0;
}

/// `pod create|start|restart`: the infra goes on a container network.
static bool PodStarts(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::string a = argv[i]; a == "create" || a == "start" || a == "restart")
      return true;
  return false;
}

bool KubeStartsContainers(int argc, char** argv);  // cmd_kube.cpp

Expected<network::HolderHandle> PrepareNetworkHolder(int argc, char** argv) {
  std::string command = CanonicalCommand(argc, argv);
  if (command == "__network-holder" || InKilnUserNamespace())
    return network::HolderHandle{};
  Context pre;
  bool wants = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--root" && i + 1 < argc)
      pre.globals.root = argv[++i];
    else if (a.rfind("--root=", 0) == 0)
      pre.globals.root = a.substr(7);
    else if ((a == "--network" || a == "--net") && i + 1 < argc)
      wants = wants || NamesNetwork(argv[++i]);
    else if (a.rfind("--network=", 0) == 0 || a.rfind("--net=", 0) == 0)
      wants = wants || NamesNetwork(a.substr(a.find('=') + 1));
    else if (a == "--pod" || a.rfind("--pod=", 0) == 0)
      wants = true;  // a pod's infra is on a container network (docs/pods.md)
  }
  // `build --network NAME`: its RUN steps join the network (docs/network.md
  // "Builds"). A `--network` after the image belongs to the container's command: at
  // worst a holder starts that nobody uses, and exits 200 ms later.
  // `start` cannot tell yet whether its container is on a network: in a
  // store that has networks (<store>/networks, made by `network create` and
  // by the first container on a network) it takes the holder too (one that
  // nobody uses exits 200 ms later).
  wants = (wants && (command == "run" || command == "create" || command == "build")) ||
          (command == "start" && PathExists(pre.StoreRoot() + "/networks")) ||
          (command == "compose" && ComposeStartsContainers(argc, argv)) ||  // the project's networks
          (command == "pod" && PodStarts(argc, argv)) || KubeStartsContainers(argc, argv);
  return network::PrepareHolder(network::HolderDir(pre.RunRoot(), pre.StoreRoot()), wants);
}

void AddNetworkCommand(CLI::App& app, Context& ctx) {
  {
    // Internal: the namespace holder (src/network/holder.cpp).
    auto* holder = app.add_subcommand("__network-holder", "");
    holder->group("");
    auto run_root = std::make_shared<std::string>();
    auto ready = std::make_shared<int>(-1);
    holder->add_option("--state-dir", *run_root, "the holder's directory (network::HolderDir)")->required();
    auto outbound = std::make_shared<int>(-1);
    holder->add_option("--ready-fd", *ready, "fd for the ready byte");
    holder->add_option("--outbound-fd", *outbound, "slirp4netns's exit fd (outbound access)");
    SetAction(holder, ctx, [run_root, ready, outbound] { return network::HolderMain(*run_root, *ready, *outbound); });
  }
  auto* group = app.add_subcommand("network", "manage container networks");
  group->require_subcommand(1);
  {
    auto* cmd = group->add_subcommand("create", "create a network (a bridge in kiln's network namespace)");
    struct Flags {
      std::string name, subnet, gateway, driver = "bridge";
      bool internal = false, disable_dns = false, ignore = false, ipv6 = false;
      std::vector<std::string> labels, opts;
    };
    auto f = std::make_shared<Flags>();
    cmd->add_option("name", f->name, "network name")->required();
    cmd->add_option("--subnet", f->subnet, "IPv4 subnet in CIDR form (default: the first free /24 from 10.89.0.0)");
    cmd->add_option("--gateway", f->gateway, "the bridge's address (default: the subnet's first address)");
    cmd->add_option("-d,--driver", f->driver, "network driver (only bridge)");
    cmd->add_flag("--internal", f->internal, "no route out of the network (containers reach only each other)");
    cmd->add_flag("--disable-dns", f->disable_dns, "no name resolution of containers on this network");
    cmd->add_flag("--ignore", f->ignore, "do nothing (and succeed) when the network exists");
    cmd->add_flag("--ipv6", f->ipv6, "IPv6 (not supported yet)");
    cmd->add_option("--label", f->labels, "metadata K=V (repeatable)");
    cmd->add_option("-o,--opt", f->opts, "driver option K=V: isolate, mtu (repeatable)");
    SetCommand(cmd, ctx, [&ctx, f]() -> Status {
      if (f->driver != "bridge")
        return Error(Errc::kUnsupported, "unsupported network driver " + f->driver + " (kiln has bridge)");
      if (f->ipv6)
        return Error(Errc::kUnsupported, "--ipv6 is not supported yet (IPv4 networks only)");
      network::CreateOptions o;
      o.name = f->name;
      o.subnet = f->subnet;
      o.gateway = f->gateway;
      o.internal = f->internal;
      o.disable_dns = f->disable_dns;
      o.ignore = f->ignore;
      KILN_TRY(ParseKeyValues(f->labels, "label", &o.labels));
      KILN_TRY(ParseKeyValues(f->opts, "option", &o.options));
      KILN_ASSIGN_OR_RETURN(auto store, OpenNetworkStore(ctx));
      KILN_ASSIGN_OR_RETURN(auto n, network::CreateNetwork(store, o));
      std::printf("%s\n", n.name.c_str());
      return Ok();
    });
  }
  {
    auto* cmd = group->add_subcommand("ls", "list networks");
    cmd->alias("list");
    auto quiet = std::make_shared<bool>(false);
    auto no_trunc = std::make_shared<bool>(false);
    auto format = std::make_shared<std::string>();
    auto filters = std::make_shared<std::vector<std::string>>();
    cmd->add_flag("-q,--quiet", *quiet, "print only the names");
    cmd->add_flag("--no-trunc", *no_trunc, "print full network IDs");
    cmd->add_option("--format", *format, "json, or a Go template ({{.Name}}, {{.ID}}, {{.Driver}}, ...)");
    cmd->add_option("-f,--filter", *filters, "name=, id=, driver=, label=K[=V] (repeatable)");
    SetAction(cmd, ctx, [&ctx, quiet, no_trunc, format, filters] {
      auto listed = ListFiltered(ctx, *filters);
      if (!listed)
        return ReportError(listed.error());
      const std::vector<network::Network>& shown = listed->networks;
      if (*quiet) {
        for (const auto& n : shown)
          std::printf("%s\n", n.name.c_str());
        return 0;
      }
      if (format::IsJsonFormat(*format)) {
        nlohmann::ordered_json out = nlohmann::ordered_json::array();
        for (const auto& n : shown)
          out.push_back(n.ToJson());
        std::printf("%s\n", out.dump(2).c_str());
        return 0;
      }
      std::vector<nlohmann::json> rows;
      for (const auto& n : shown)
        rows.push_back(ListRow(n, *no_trunc));
      format::ListOptions lo;
      lo.default_format = "table {{.ID}}\t{{.Name}}\t{{.Driver}}";
      lo.headers = {{"ID", "NETWORK ID"}};
      lo.template_options.name = "network ls";
      auto text = format::RenderList(*format, rows, lo);
      if (!text)
        return ReportError(text.error());
      std::fwrite(text->data(), 1, text->size(), stdout);
      return 0;
    });
  }
  {
    auto* cmd = group->add_subcommand("inspect", "show networks as JSON");
    auto names = std::make_shared<std::vector<std::string>>();
    auto format = std::make_shared<std::string>();
    cmd->add_option("names", *names, "network names or IDs")->required();
    cmd->add_option("-f,--format", *format, "json, or a Go template over the object ({{.name}}, {{.subnets}})");
    SetAction(cmd, ctx, [&ctx, names, format] {
      auto store = OpenNetworkStore(ctx);
      if (!store)
        return ReportError(store.error());
      nlohmann::ordered_json out = nlohmann::ordered_json::array();
      int rc = 0;
      std::string text;
      for (const auto& n : *names) {
        auto net = network::FindNetwork(*store, n);
        if (!net) {
          rc = ReportError(net.error());
          continue;
        }
        if (!format->empty() && !format::IsJsonFormat(*format)) {
          format::Options fo;
          fo.name = "network inspect";
          fo.map_fields.insert({"labels", "options", "ipam_options"});
          auto one = format::RenderOne(*format, nlohmann::json::parse(net->ToJson().dump()), fo);
          if (!one)
            return ReportError(one.error());
          text += *one;
          continue;
        }
        out.push_back(net->ToJson());
      }
      if (!format->empty() && !format::IsJsonFormat(*format))
        std::fwrite(text.data(), 1, text.size(), stdout);
      else
        std::printf("%s\n", out.dump(5).c_str());
      return rc;
    });
  }
  {
    auto* cmd = group->add_subcommand("rm", "remove networks");
    cmd->alias("remove");
    auto names = std::make_shared<std::vector<std::string>>();
    auto force = std::make_shared<bool>(false);
    cmd->add_flag("-f,--force", *force, "remove the containers that use the network too");
    cmd->add_option("names", *names, "network names or IDs")->required();
    SetAction(cmd, ctx, [&ctx, names, force] {
      auto store = OpenNetworkStore(ctx);
      if (!store)
        return ReportError(store.error());
      int rc = 0;
      for (const auto& text : *names) {
        auto net = network::FindNetwork(*store, text);
        if (!net) {
          rc = ReportError(net.error());
          continue;
        }
        if (net->name == network::kDefaultNetwork) {
          rc = ReportError(Error(Errc::kInvalidInput, "default network podman cannot be removed"));
          continue;
        }
        auto users = NetworkUsers(ctx, net->name);
        if (!users.empty() && !*force) {
          rc = ReportError(Error(Errc::kFailed, "network " + net->name + " is being used by container " +
                                                    users[0].substr(0, 12) + " (rm -f removes it)"));
          continue;
        }
        bool failed = false;
        for (const auto& id : users)
          if (auto st = run::RemoveContainer(RunPaths(ctx), id, true); !st) {
            rc = ReportError(st.error());
            failed = true;
          }
        if (failed)
          continue;
        if (auto st = network::RemoveNetwork(*store, net->name); !st) {
          rc = ReportError(st.error());
          continue;
        }
        std::printf("%s\n", net->name.c_str());
      }
      return rc;
    }, kNotFoundFails);
  }
  {
    auto* cmd = group->add_subcommand("connect", "connect a container to a network (a running one at once)");
    auto args = std::make_shared<std::vector<std::string>>();
    auto aliases = std::make_shared<std::vector<std::string>>();
    auto ip = std::make_shared<std::string>();
    cmd->add_option("--alias", *aliases, "another name of the container on the network (repeatable)");
    cmd->add_option("--ip", *ip, "the container's IPv4 address on the network");
    cmd->add_option("args", *args, "NETWORK CONTAINER")->required()->expected(2);
    SetCommand(cmd, ctx, [&ctx, args, aliases, ip]() -> Status {
      KILN_ASSIGN_OR_RETURN(auto store, OpenNetworkStore(ctx));
      KILN_ASSIGN_OR_RETURN(std::string id, run::ResolveContainer(RunPaths(ctx), (*args)[1]));
      return run::ConnectNetwork(store, RunPaths(ctx), id, (*args)[0], *aliases, *ip);
    });
  }
  {
    auto* cmd = group->add_subcommand("disconnect", "disconnect a container from a network (a running one at once)");
    auto args = std::make_shared<std::vector<std::string>>();
    auto force = std::make_shared<bool>(false);
    cmd->add_flag("-f,--force", *force, "accepted for podman compatibility");
    cmd->add_option("args", *args, "NETWORK CONTAINER")->required()->expected(2);
    // `force` is captured so CLI11's pointer to it stays valid (an uncaptured
    // flag was written after free: network prune -f crashed under MALLOC_PERTURB_).
    SetCommand(cmd, ctx, [&ctx, args, force]() -> Status {
      KILN_ASSIGN_OR_RETURN(auto store, OpenNetworkStore(ctx));
      KILN_ASSIGN_OR_RETURN(std::string id, run::ResolveContainer(RunPaths(ctx), (*args)[1]));
      return run::DisconnectNetwork(store, RunPaths(ctx), id, (*args)[0]);
    });
  }
  {
    auto* cmd = group->add_subcommand("exists", "exit 0 if the network exists, 1 if not");
    auto name = std::make_shared<std::string>();
    cmd->add_option("name", *name, "network name or ID")->required();
    SetAction(cmd, ctx, [&ctx, name] {
      auto store = OpenNetworkStore(ctx);
      if (!store)
        return ReportError(store.error());
      auto net = network::FindNetwork(*store, *name);
      if (net)
        return 0;
      if (net.error().code() == Errc::kNotFound)
        return 1;
      return ReportError(net.error());
    });
  }
  {
    auto* cmd = group->add_subcommand("prune", "remove every network no container uses");
    auto force = std::make_shared<bool>(false);
    auto filters = std::make_shared<std::vector<std::string>>();
    cmd->add_flag("-f,--force", *force, "do not ask (kiln never asks; accepted for podman compatibility)");
    cmd->add_option("--filter", *filters, "label=K[=V] (repeatable)");
    SetAction(cmd, ctx, [&ctx, filters, force] {
      auto listed = ListFiltered(ctx, *filters);
      if (!listed)
        return ReportError(listed.error());
      int rc = 0;
      for (const auto& n : listed->networks) {
        if (n.name == network::kDefaultNetwork || !NetworkUsers(ctx, n.name).empty())
          continue;
        if (auto st = network::RemoveNetwork(listed->store, n.name); !st) {
          rc = ReportError(st.error());
          continue;
        }
        std::printf("%s\n", n.name.c_str());
      }
      return rc;
    });
  }
}

}  // namespace kiln::cli
