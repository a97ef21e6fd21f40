// kiln port [-a | -l | CONTAINER] [PRIVATE_PORT[/PROTO]]: the published
// ports of containers, in podman's words (docs/run.md "Published ports").
#include <cstdio>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "kiln/run.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

namespace {

std::string HostIp(const run::PortMapping& p) { return p.host_ip.empty() ? "0.0.0.0" : p.host_ip; }

int DoPort(Context& ctx, bool all, bool latest, const std::vector<std::string>& args) {
  run::Paths paths = RunPaths(ctx);
  if (all && (latest || !args.empty()))
    return ReportError(Error(Errc::kInvalidInput, "the -a option cannot be used with -l or a container name"));
  std::vector<std::string> rest = args;
  std::vector<run::ContainerInfo> containers;
  if (all || latest) {
    auto list = run::ListContainers(paths, !all);  // -a: the running ones; -l: the newest of all
    if (!list)
      return ReportError(list.error());
    if (latest && !list->empty())
      list->resize(1);
    if (latest && list->empty())
      return ReportError(Error(Errc::kNotFound, "no containers to show the ports of"));
    containers = std::move(*list);
  } else {
    if (rest.empty())
      return ReportError(Error(Errc::kInvalidInput, "port: give a CONTAINER (or -a, -l)"));
    auto id = run::ResolveContainer(paths, rest[0]);
    if (!id)
      return ReportError(id.error());
    auto info = run::InspectContainer(paths, *id);
    if (!info)
      return ReportError(info.error());
    containers.push_back(std::move(*info));
    rest.erase(rest.begin());
  }
  if (rest.size() > 1)
    return ReportError(Error(Errc::kInvalidInput, "port: at most one PRIVATE_PORT[/PROTO]"));
  if (rest.empty()) {
    for (const auto& c : containers) {
      if (c.port_mappings.empty())
        continue;
      if (all)
        std::printf("%s\n", c.id.c_str());
      for (const auto& p : c.port_mappings)
        std::printf("%u/%s -> %s:%u\n", p.container_port, p.udp ? "udp" : "tcp", HostIp(p).c_str(), p.host_port);
    }
    return 0;
  }
  // PRIVATE_PORT[/PROTO]: the host address of that container port.
  auto want = run::PortMapping::Parse(rest[0]);
  if (!want)
    return ReportError(Error(Errc::kInvalidInput, "invalid port " + rest[0] + ": use PORT[/tcp|/udp]"));
  for (const auto& c : containers)
    for (const auto& p : c.port_mappings)
      if (p.container_port == want->container_port && p.udp == want->udp) {
        std::printf("%s:%u\n", HostIp(p).c_str(), p.host_port);
        return 0;
      }
  return ReportError(Error(Errc::kNotFound, "failed to find published port \"" + rest[0] + "\""));
}

}  // namespace

void AddPortCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("port", "list a container's published ports, or the host address of one");
  auto all = std::make_shared<bool>(false);
  auto latest = std::make_shared<bool>(false);
  auto args = std::make_shared<std::vector<std::string>>();
  cmd->add_flag("-a,--all", *all, "the ports of every running container (each after its ID)");
  cmd->add_flag("-l,--latest", *latest, "the newest container instead of CONTAINER");
  cmd->add_option("args", *args, "CONTAINER [PRIVATE_PORT[/PROTO]]");
  cmd->footer("Prints `80/tcp -> 0.0.0.0:8080` per mapping, or `0.0.0.0:8080` for PRIVATE_PORT, as podman.");
  SetAction(cmd, ctx, [&ctx, all, latest, args] { return DoPort(ctx, *all, *latest, *args); });
}

}  // namespace kiln::cli
