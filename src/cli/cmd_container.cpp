// kiln start|stop [-t SECONDS]|kill [-s SIGNAL]|wait|rm [-f] CONTAINER..., and
// `kiln container inspect|ls|...` (the same commands under `container`).
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/command.h"
#include "cli/format_util.h"
#include "kiln/deployment.h"
#include "kiln/run.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

namespace {

/// Runs `fn` for every named container; reports each failure and returns 1
/// if any failed (2/125 per the error when there is only one).
int ForEach(Context& ctx, const std::vector<std::string>& names,
            const std::function<Status(const run::Paths&, const std::string& id, const std::string& name)>& fn) {
  run::Paths paths = RunPaths(ctx);
  int rc = 0;
  for (const auto& n : names) {
    auto id = run::ResolveContainer(paths, n);
    Status st = id ? fn(paths, *id, n) : Status(id.error());
    if (!st) {
      int code = ReportError(st.error());
      rc = names.size() == 1 ? code : 1;
    }
  }
  return rc;
}

/// A verb's action: `op` on every named container (ForEach), its name
/// printed when it succeeds.
void SetVerb(Context& ctx, const NamesCommand& c, std::function<Status(const run::Paths&, const std::string& id)> op,
             ExitRules rules = {}) {
  SetAction(c.cmd, ctx, [&ctx, names = c.names, op = std::move(op)] {
    return ForEach(ctx, *names, [&op](const run::Paths& p, const std::string& id, const std::string& n) -> Status {
      KILN_TRY(op(p, id));
      std::printf("%s\n", n.c_str());
      return Ok();
    });
  }, rules);
}

void AddVerbs(CLI::App& parent, Context& ctx) {
  const std::string kNames = "container names or IDs";
  SetVerb(ctx, AddNamesCommand(parent, "start", "start stopped containers (detached)", "containers", kNames),
          [](const run::Paths& p, const std::string& id) { return run::StartContainer(p, id); });
  {
    auto stop = AddNamesCommand(parent, "stop", "stop containers: the image's StopSignal, then SIGKILL", "containers",
                                kNames);
    auto timeout = std::make_shared<int>(10);
    stop.cmd->add_option("-t,--time", *timeout, "seconds to wait before SIGKILL (default 10)");
    SetVerb(ctx, stop, [timeout](const run::Paths& p, const std::string& id) {
      return run::StopContainer(p, id, *timeout);
    });
  }
  {
    auto* cmd = parent.add_subcommand("kill", "send a signal to containers (default SIGKILL)");
    auto names = std::make_shared<std::vector<std::string>>();
    auto signal = std::make_shared<std::string>("KILL");
    cmd->add_option("-s,--signal", *signal, "signal name or number (default KILL)");
    cmd->add_option("containers", *names, "container names or IDs")->required();
    SetAction(cmd, ctx, [&ctx, names, signal] {
      auto sig = run::ParseSignal(*signal);
      if (!sig)
        return ReportError(sig.error());
      int s = *sig;
      return ForEach(ctx, *names, [s](const run::Paths& p, const std::string& id, const std::string& n) -> Status {
        KILN_TRY(run::KillContainer(p, id, s));
        std::printf("%s\n", n.c_str());
        return Ok();
      });
    });
  }
  {
    auto* cmd = parent.add_subcommand("wait", "wait for containers to stop (or reach a --condition) and print their "
                                              "exit codes");
    struct Flags {
      std::vector<std::string> names, conditions;
      std::string interval = "250ms";
      bool ignore = false;
    };
    auto f = std::make_shared<Flags>();
    cmd->add_option("--condition", f->conditions,
                    "created, running, exited, stopped, healthy or unhealthy (repeatable: the first reached; "
                    "default: stopped). Prints -1 for a condition that is not an exit");
    cmd->add_option("-i,--interval", f->interval, "how often to check a --condition (Go duration, default 250ms)");
    cmd->add_flag("--ignore", f->ignore, "a container that does not exist prints -1 instead of failing");
    cmd->add_option("containers", f->names, "container names or IDs")->required();
    SetAction(cmd, ctx, [&ctx, f] {
      auto ns = deployment::ParseDuration(f->interval);
      if (!ns || *ns <= 0)
        return ReportError(Error(Errc::kInvalidInput, "invalid --interval " + f->interval + ": want a Go duration "
                                                                                           "such as 250ms or 1s"));
      int interval_ms = static_cast<int>(std::max<int64_t>(*ns / 1000000, 1));
      run::Paths paths = RunPaths(ctx);
      std::vector<std::string> present;
      for (const auto& n : f->names) {
        auto found = run::ResolveContainer(paths, n);
        if (f->ignore && !found && found.error().code() == Errc::kNotFound) {
          std::printf("-1\n");
          continue;
        }
        present.push_back(n);
      }
      if (present.empty())
        return 0;
      return ForEach(ctx, present,
                     [f, interval_ms](const run::Paths& p, const std::string& id, const std::string&) -> Status {
                       KILN_ASSIGN_OR_RETURN(int code, run::WaitContainer(p, id, f->conditions, interval_ms));
                       std::printf("%d\n", code);
                       std::fflush(stdout);
                       return Ok();
                     });
    });
  }
  {
    auto rm = AddNamesCommand(parent, "rm", "remove containers", "containers", kNames);
    auto force = std::make_shared<bool>(false);
    rm.cmd->add_flag("-f,--force", *force, "kill running containers first");
    SetVerb(ctx, rm, [force](const run::Paths& p, const std::string& id) -> Status {
      // A pod's infra goes only with its pod (podman's words).
      if (auto info = run::InspectContainer(p, id); info && info->infra)
        return Error(Errc::kFailed, "container " + info->id + " is the infra container of pod " + info->pod +
                                        " and cannot be removed without removing the pod");
      return run::RemoveContainer(p, id, *force);
    }, kNotFoundFails);
  }
}

}  // namespace

Expected<nlohmann::json> InspectContainerJson(Context& ctx, const std::string& n) {
  run::Paths paths = RunPaths(ctx);
  KILN_ASSIGN_OR_RETURN(std::string id, run::ResolveContainer(paths, n));
  KILN_ASSIGN_OR_RETURN(run::ContainerInfo info, run::InspectContainer(paths, id));
  nlohmann::json config = nlohmann::json::parse(info.config_json, nullptr, false);
  // podman's names for run --label/--annotation: {{.Config.Labels.k}}.
  if (config.is_object()) {
    config["Labels"] = config.value("labels", nlohmann::json::object());
    config["Annotations"] = config.value("annotations", nlohmann::json::object());
  }
  // podman's NetworkSettings.Networks for containers on networks (docs/network.md).
  nlohmann::json networks = nlohmann::json::object();
  if (config.is_object() && config.contains("networks") && config["networks"].is_object())
    for (const auto& [net_name, net] : config["networks"].items()) {
      std::string subnet = net.value("subnet", "");
      size_t slash = subnet.find('/');
      networks[net_name] = {{"NetworkID", net.value("id", "")},
                            {"IPAddress", net.value("ip", "")},
                            {"Gateway", net.value("gateway", "")},
                            {"IPPrefixLen", slash == std::string::npos ? 0 : std::atoi(subnet.c_str() + slash + 1)},
                            {"Aliases", net.value("aliases", nlohmann::json::array())}};
    }
  nlohmann::json state = {{"Status", info.status},
                         {"Running", info.status == "running"},
                         {"Restarting", info.status == "restarting"},
                         {"Pid", info.pid},
                         {"MonitorPid", info.monitor_pid},
                         {"ExitCode", info.exit_code},
                         {"StartedAt", info.started_at},
                         {"FinishedAt", info.finished_at}};
  if (!info.health_json.empty())  // Docker's State.Health (docs/run.md "Health checks")
    state["Health"] = nlohmann::json::parse(info.health_json, nullptr, false);
  std::string policy = info.restart_policy;
  size_t colon = policy.find(':');
  // podman's HostConfig.NetworkMode: bridge (kiln networks), container:ID,
  // none, host; kiln's own default keeps its name (private).
  std::string net_mode = config.is_object() ? config.value("network", "private") : "private";
  if (config.is_object() && config.value("network_container", "") != "") {
    net_mode = "container:" + config.value("network_container", "");
    config["network"] = net_mode;  // the record says host: no namespace of its own
  } else if (!networks.empty()) {
    net_mode = "bridge";
  }
  nlohmann::json host_config = {
      {"NetworkMode", net_mode},
      {"RestartPolicy",
       {{"Name", policy.substr(0, colon)},
        {"MaximumRetryCount", colon == std::string::npos ? 0 : std::atoi(policy.c_str() + colon + 1)}}}};
  return nlohmann::json{{"Id", info.id},
                        {"Name", info.name},
                        {"Image", info.image_id},
                        {"ImageName", info.image},
                        {"Created", info.created},
                        {"Path", info.command.empty() ? "" : info.command[0]},
                        {"Args", info.command.size() > 1
                                     ? std::vector<std::string>(info.command.begin() + 1, info.command.end())
                                     : std::vector<std::string>()},
                        {"State", state},
                        {"RestartCount", info.restart_count},
                        {"HostConfig", host_config},
                        {"LogPath", info.log_path},
                        {"Ports", info.ports},
                        {"AutoRemove", info.auto_remove},
                        {"NetworkSettings", {{"Networks", networks}}},
                        {"Config", config.is_discarded() ? nlohmann::json() : config}};
}

int InspectContainersCommand(Context& ctx, const std::vector<std::string>& names, const std::string& format) {
  std::vector<nlohmann::json> out;
  int rc = 0;
  for (const auto& n : names) {
    auto j = InspectContainerJson(ctx, n);
    if (!j) {
      rc = ReportError(j.error());
      continue;
    }
    out.push_back(std::move(*j));
  }
  format::Options o;
  o.name = "inspect";
  o.type_name = "define.InspectContainerData";
  int prc = PrintObjects(format, out, o, 2);
  return prc != 0 ? prc : rc;
}

namespace {

/// podman container prune: every container that is not running; prints the
/// removed IDs.
int PruneContainers(Context& ctx) {
  run::Paths paths = RunPaths(ctx);
  auto all = run::ListContainers(paths, /*all=*/true);
  if (!all)
    return ReportError(all.error());
  int rc = 0;
  for (const auto& c : *all) {
    if (c.status == "running")
      continue;
    if (auto st = run::RemoveContainer(paths, c.id, /*force=*/false); !st) {
      // Started or removed by another command since the listing.
      if (st.error().code() == Errc::kNotFound)
        continue;
      rc = ReportError(st.error());
      continue;
    }
    std::printf("%s\n", c.id.c_str());
  }
  return rc;
}

}  // namespace

void AddContainerCommands(CLI::App& app, Context& ctx) {
  AddVerbs(app, ctx);
  auto* group = app.add_subcommand("container", "manage containers (start, stop, kill, wait, rm, inspect, ls, prune)");
  group->require_subcommand(1);
  AddVerbs(*group, ctx);
  auto* inspect = group->add_subcommand("inspect", "show a container's configuration and state as JSON");
  auto names = std::make_shared<std::vector<std::string>>();
  auto format = std::make_shared<std::string>();
  inspect->add_option("-f,--format", *format,
                      "json, or a Go template such as {{.State.Status}} (docs/format.md)");
  inspect->add_option("containers", *names, "container names or IDs")->required();
  SetAction(inspect, ctx, [&ctx, names, format] { return InspectContainersCommand(ctx, *names, *format); });

  AddPruneCommand(*group, ctx, "remove every container that is not running",
                  "do not ask for confirmation (kiln asks only when stdin is a terminal)",
                  [] { return Expected<std::string>("WARNING! This will remove all non running containers."); },
                  [&ctx] { return PruneContainers(ctx); });
}

}  // namespace kiln::cli
