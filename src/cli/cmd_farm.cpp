// kiln farm create|ls|rm|update|build: build farms of SSH nodes or on a
// Kubernetes cluster (docs/farm.md), podman's spelling. The farms live in $XDG_CONFIG_HOME/kiln/farms.json.
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/command.h"
#include "cli/format_util.h"
#include "kiln/farm.h"
#include "kiln/fs.h"

namespace kiln::cli {

namespace {

using farm::Config;

Expected<Config> Load() { return farm::LoadConfig(farm::ConfigPath()); }

/// Nodes from URLs, each checked, with the shared connection flags.
struct NodeFlags {
  std::string identity, kiln = "kiln";
  std::vector<std::string> ssh_options;
  void Add(CLI::App* cmd) {
    cmd->add_option("--identity", identity, "ssh private key for these nodes (ssh -i)");
    cmd->add_option("--remote-kiln", kiln, "the kiln program on these nodes (default: kiln on their PATH)");
    cmd->add_option("--ssh-option", ssh_options, "an ssh -o option for these nodes, e.g. Port=2222 (repeatable)")
        ->allow_extra_args(false);
  }
  Expected<farm::Node> Make(const std::string& url) const {
    KILN_TRY(farm::ParseNodeUrl(url));
    farm::Node n;
    n.url = url;
    n.identity = identity;
    n.kiln = kiln;
    n.ssh_options = ssh_options;
    return n;
  }
};

std::string Join(const std::vector<farm::Node>& nodes) {
  std::string out;
  for (const auto& n : nodes)
    out += (out.empty() ? "" : ",") + n.url;
  return out;
}

/// What `farm ls` shows as a Kubernetes farm's connection.
std::string KubeConnection(const farm::KubeSettings& k) {
  return "kubernetes://" + (k.context.empty() ? std::string("(current context)") : k.context) + "/" +
         (k.namespace_name.empty() ? std::string("(default namespace)") : k.namespace_name);
}

}  // namespace

void AddFarmCommand(CLI::App& app, Context& ctx) {
  auto* group = app.add_subcommand("farm", "build farms: nodes reached over SSH, or Jobs on a Kubernetes cluster, "
                                           "that build one platform each (create, ls, rm, update, build; "
                                           "docs/farm.md)");
  group->require_subcommand(1);
  {
    auto* cmd = group->add_subcommand("create", "create a farm of ssh://[USER@]HOST[:PORT] nodes, or a Kubernetes "
                                                "farm (--driver kubernetes)");
    struct Flags {
      std::string name, driver = "ssh";
      std::vector<std::string> nodes, driver_opts;
      NodeFlags node;
    };
    auto f = std::make_shared<Flags>();
    f->node.Add(cmd);
    cmd->add_option("--driver", f->driver,
                    "ssh (nodes given as URLs) or kubernetes (a Job per platform, applied with kubectl)")
        ->check(CLI::IsMember({"ssh", "kubernetes"}));
    cmd->add_option("--driver-opt", f->driver_opts,
                    "kubernetes: KEY=VALUE, repeatable: image=REF (the kiln image, required), namespace=NS, "
                    "nodeselector=LABEL=VALUE;..., kubeconfig=FILE, context=NAME, secret=NAME (registry "
                    "credentials, a kubernetes.io/dockerconfigjson Secret)")
        ->allow_extra_args(false);
    cmd->add_option("name", f->name, "the farm's name")->required();
    cmd->add_option("nodes", f->nodes, "ssh://[USER@]HOST[:PORT] of each node");
    SetCommand(cmd, ctx, [f]() -> Status {
      KILN_ASSIGN_OR_RETURN(Config config, Load());
      if (config.Find(f->name))
        return Error(Errc::kInvalidInput, "farm " + f->name + " already exists (kiln farm update, or rm it first)");
      farm::Farm fm{f->name, {}};
      fm.driver = f->driver;
      if (f->driver == "kubernetes") {
        if (!f->nodes.empty())
          return Error(Errc::kInvalidInput, "farm create --driver kubernetes: a Kubernetes farm has no nodes (" +
                                                f->nodes.front() + "); the cluster schedules its Jobs");
        for (const auto& o : f->driver_opts)
          KILN_TRY(farm::ApplyDriverOpt(fm.kube, o));
        if (fm.kube.image.empty())
          return Error(Errc::kInvalidInput, "farm create --driver kubernetes: give the kiln image "
                                            "(--driver-opt image=REGISTRY/kiln:TAG; contrib/kiln-image)");
      } else if (!f->driver_opts.empty()) {
        return Error(Errc::kInvalidInput, "farm create --driver-opt " + f->driver_opts.front() +
                                              ": only a --driver kubernetes farm takes driver options");
      }
      for (const auto& u : f->nodes) {
        KILN_ASSIGN_OR_RETURN(auto n, f->node.Make(u));
        fm.nodes.push_back(std::move(n));
      }
      config.farms.push_back(std::move(fm));
      if (config.default_farm.empty())
        config.default_farm = f->name;
      KILN_TRY(farm::SaveConfig(farm::ConfigPath(), config));
      std::printf("Farm \"%s\" created\n", f->name.c_str());
      return Ok();
    });
  }
  {
    auto* cmd = group->add_subcommand("ls", "list farms");
    cmd->alias("list");
    auto format = std::make_shared<std::string>();
    cmd->add_option("--format", *format,
                    "json, a Go template ({{.Name}} {{.Connections}} {{.Driver}}), or table TEMPLATE");
    SetCommand(cmd, ctx, [format]() -> Expected<int> {
      KILN_ASSIGN_OR_RETURN(Config config, Load());
      std::vector<nlohmann::json> json_rows, rows;
      for (const auto& fm : config.farms) {
        nlohmann::json conns = nlohmann::json::array();
        for (const auto& n : fm.nodes)
          conns.push_back(n.url);
        if (fm.driver == "kubernetes")
          conns.push_back(KubeConnection(fm.kube));
        json_rows.push_back({{"Name", fm.name}, {"Connections", conns}, {"Default", fm.name == config.default_farm},
                             {"ReadWrite", true}, {"Driver", fm.driver}});
        rows.push_back(json_rows.back());
        rows.back()["Connections"] = fm.driver == "kubernetes" ? KubeConnection(fm.kube) : Join(fm.nodes);
      }
      format::ListOptions o;
      o.default_format = "table {{.Name}}\t{{.Connections}}\t{{.Default}}\t{{.ReadWrite}}";
      return PrintList(*format, json_rows, rows, o);
    });
  }
  {
    auto* cmd = group->add_subcommand("rm", "remove farms (the nodes are not touched)");
    struct Flags {
      std::vector<std::string> names;
      bool all = false;
    };
    auto f = std::make_shared<Flags>();
    cmd->add_flag("-a,--all", f->all, "remove every farm");
    cmd->add_option("names", f->names, "farm names");
    SetCommand(cmd, ctx, [f]() -> Status {
      if (f->all == !f->names.empty())
        return Error(Errc::kInvalidInput, "farm rm: give farm names or --all");
      KILN_ASSIGN_OR_RETURN(Config config, Load());
      if (f->all) {
        config.farms.clear();
      } else {
        for (const auto& n : f->names)
          if (!config.Find(n))
            return Error(Errc::kNotFound, "farm rm: no farm named " + n);
        for (const auto& n : f->names)
          std::erase_if(config.farms, [&](const farm::Farm& fm) { return fm.name == n; });
      }
      if (!config.Find(config.default_farm))
        config.default_farm = config.farms.empty() ? "" : config.farms.front().name;
      KILN_TRY(farm::SaveConfig(farm::ConfigPath(), config));
      for (const auto& n : f->names)
        std::printf("Farm \"%s\" deleted\n", n.c_str());
      return Ok();
    });
  }
  {
    auto* cmd = group->add_subcommand("update", "add or remove nodes, or make a farm the default");
    struct Flags {
      std::string name;
      std::vector<std::string> add, remove, driver_opts;
      bool make_default = false;
      NodeFlags node;
    };
    auto f = std::make_shared<Flags>();
    f->node.Add(cmd);
    cmd->add_option("--driver-opt", f->driver_opts, "a Kubernetes farm's KEY=VALUE to change (as farm create's)")
        ->allow_extra_args(false);
    cmd->add_option("-a,--add", f->add, "nodes to add (ssh://[USER@]HOST[:PORT], comma-separated or repeated)")
        ->delimiter(',')
        ->allow_extra_args(false);
    cmd->add_option("-r,--remove", f->remove, "nodes to remove (their URLs)")->delimiter(',')->allow_extra_args(false);
    cmd->add_flag("-d,--default", f->make_default, "make it the default farm");
    cmd->add_option("name", f->name, "the farm")->required();
    SetCommand(cmd, ctx, [f]() -> Status {
      KILN_ASSIGN_OR_RETURN(Config config, Load());
      farm::Farm* fm = config.Find(f->name);
      if (!fm)
        return Error(Errc::kNotFound, "farm update: no farm named " + f->name);
      if (f->add.empty() && f->remove.empty() && !f->make_default && f->driver_opts.empty())
        return Error(Errc::kInvalidInput, "farm update: nothing to do (--add, --remove, --driver-opt or --default)");
      if (fm->driver == "kubernetes" && (!f->add.empty() || !f->remove.empty()))
        return Error(Errc::kInvalidInput, "farm update: " + f->name + " is a Kubernetes farm; it has no nodes");
      if (fm->driver != "kubernetes" && !f->driver_opts.empty())
        return Error(Errc::kInvalidInput, "farm update --driver-opt: " + f->name + " is an SSH farm");
      for (const auto& o : f->driver_opts)
        KILN_TRY(farm::ApplyDriverOpt(fm->kube, o));
      for (const auto& u : f->remove) {
        auto before = fm->nodes.size();
        std::erase_if(fm->nodes, [&](const farm::Node& n) { return n.url == u; });
        if (fm->nodes.size() == before)
          return Error(Errc::kNotFound, "farm update --remove: farm " + f->name + " has no node " + u);
      }
      for (const auto& u : f->add) {
        for (const auto& n : fm->nodes)
          if (n.url == u)
            return Error(Errc::kInvalidInput, "farm update --add: farm " + f->name + " already has " + u);
        KILN_ASSIGN_OR_RETURN(auto n, f->node.Make(u));
        fm->nodes.push_back(std::move(n));
      }
      if (f->make_default)
        config.default_farm = f->name;
      KILN_TRY(farm::SaveConfig(farm::ConfigPath(), config));
      std::printf("Farm \"%s\" updated\n", f->name.c_str());
      return Ok();
    });
  }
  {
    auto* cmd = group->add_subcommand("build", "build each platform on a farm node (or a Kubernetes Job) and push one "
                                               "index to a registry");
    // The flags parse straight into the library's request (as kiln build's do).
    struct Flags {
      std::string farm;
      farm::BuildRequest req;
      bool quiet = false;
    };
    auto f = std::make_shared<Flags>();
    cmd->add_option("--farm", f->farm, "the farm (default: the default farm)");
    cmd->add_option("--platforms", f->req.platforms,
                    "os/arch[/variant] to build, comma-separated (default: every node's native platform)")
        ->delimiter(',')
        ->allow_extra_args(false);
    cmd->add_option("-t,--tag", f->req.image, "REGISTRY/NAME[:TAG]: where the nodes push and the index goes")
        ->required();
    cmd->add_option("-f,--file", f->req.containerfile, "the Containerfile, relative to the context (default: "
                                                       "Containerfile, then Dockerfile)");
    cmd->add_option("--build-arg", f->req.build_args, "K=V build argument (repeatable)")->allow_extra_args(false);
    cmd->add_option("--cache-from", f->req.cache_from,
                    "registry repository the nodes import cache records from (repeatable)")
        ->allow_extra_args(false);
    cmd->add_option("--cache-to", f->req.cache_to, "registry repository the nodes export cache records to");
    cmd->add_option("--tls-verify", f->req.tls_verify,
                    "verify registry TLS certificates, here and on the nodes: --tls-verify=false to skip")
        ->default_str("true");
    cmd->add_option("--authfile", f->req.authfile,
                    "registry credentials for the index push (the nodes use their own)");
    cmd->add_option("--cert-dir", f->req.cert_dir, "CA certificates for the index push");
    cmd->add_option("--progress", f->req.progress, "the nodes' build output: plain or json (default: the nodes' own)")
        ->check(CLI::IsMember({"auto", "plain", "json", "quiet"}));
    cmd->add_flag("-q,--quiet", f->quiet, "print only the index digest");
    cmd->add_flag("--dry-run", f->req.dry_run,
                  "a Kubernetes farm: print its objects (a ConfigMap, a Job per platform) as YAML, apply nothing");
    cmd->add_option("context", f->req.context_dir, "the build context directory")->required();
    SetCommand(cmd, ctx, [f]() -> Expected<int> {
      KILN_ASSIGN_OR_RETURN(Config config, Load());
      std::string name = f->farm.empty() ? config.default_farm : f->farm;
      if (name.empty())
        return Error(Errc::kInvalidInput, "farm build: no farm (kiln farm create NAME ssh://USER@HOST ...)");
      const farm::Farm* fm = config.Find(name);
      if (!fm)
        return Error(Errc::kNotFound, "farm build: no farm named " + name + " (kiln farm ls)");
      farm::BuildRequest req = f->req;
      if (req.dry_run && fm->driver == "kubernetes") {
        KILN_ASSIGN_OR_RETURN(auto objects, farm::MakeKubeObjects(*fm, req));
        std::fputs(farm::KubeYaml(objects).c_str(), stdout);
        return 0;
      }
      if (!f->quiet)
        req.log = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
      KILN_ASSIGN_OR_RETURN(auto result, farm::Build(*fm, req));
      if (!f->quiet)
        for (size_t i = 0; i < result.images.size(); ++i)
          std::fprintf(stderr, "%s: %s (%s)\n", result.images[i].platform.c_str(),
                       result.images[i].digest.str().c_str(), result.nodes[i].c_str());
      std::printf("%s\n", result.index.str().c_str());
      return 0;
    });
  }
}

}  // namespace kiln::cli
