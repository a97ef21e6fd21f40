// kiln run [flags] IMAGE [COMMAND [ARG...]] (docs/cli.md "kiln run", docs/run.md), and
// the hidden `kiln __monitor` that owns a detached container.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "kiln/acquire.h"
#include "kiln/pod.h"
#include "kiln/registry.h"
#include "kiln/run.h"
#include "kiln/store.h"
#include "kiln/transport.h"

namespace kiln::cli {

/// The container directories of this invocation (shared by the container
/// commands: cmd_ps, cmd_logs, cmd_exec, cmd_container, cmd_volume).
run::Paths RunPaths(const Context& ctx);
run::Paths RunPaths(const Context& ctx) { return run::Paths{ctx.StoreRoot(), ctx.RunRoot()}; }

namespace {

struct RunFlags {
  run::RunOptions o;
  std::vector<std::string> volumes;
  std::vector<std::string> mounts;
  std::vector<std::string> publish;
  std::vector<std::string> tmpfs;
  std::vector<std::string> networks;  // --network (repeatable: several container networks)
  std::string entrypoint;
  bool entrypoint_set = false;
  std::string memory;
  double cpus = -1;
  int64_t pids_limit = -1;
  std::string platform;  // --platform: which manifest of an index (multiplatform.md)
  std::string pod;       // --pod NAME|new:NAME (docs/pods.md)
};

/// Parses every value of a repeatable flag, appending what `parse` gives (a
/// value or a list) to `out`; the first bad value's error.
template <typename T>
void AppendParsed(std::vector<T>& out, T value) {
  out.push_back(std::move(value));
}
template <typename T>
void AppendParsed(std::vector<T>& out, std::vector<T> values) {
  out.insert(out.end(), values.begin(), values.end());
}
template <typename Parse, typename T>
Status ParseEach(const std::vector<std::string>& flags, Parse parse, std::vector<T>& out) {
  for (const std::string& flag : flags) {
    KILN_ASSIGN_OR_RETURN(auto value, parse(flag));
    AppendParsed(out, std::move(value));
  }
  return Ok();
}

int DoRun(Context& ctx, CLI::App* cmd, RunFlags& f) {
  const std::string verb = f.o.create_only ? "create" : "run";
  std::vector<std::string> rest = cmd->remaining();
  if (rest.empty())
    return ReportError(Error(Errc::kInvalidInput, verb + ": missing IMAGE"));
  if (!rest[0].empty() && rest[0][0] == '-')
    return ReportError(Error(Errc::kInvalidInput, verb + ": unknown flag " + rest[0]));
  run::RunOptions& o = f.o;
  o.image = rest[0];
  o.command.assign(rest.begin() + 1, rest.end());
  if (!o.command.empty() && o.command[0] == "--")
    o.command.erase(o.command.begin());
  Status parsed = ParseEach(f.volumes, run::MountRequest::ParseVolumeFlag, o.mounts);
  if (parsed)
    parsed = ParseEach(f.mounts, run::MountRequest::ParseMountFlag, o.mounts);
  if (parsed)
    parsed = ParseEach(f.tmpfs, run::MountRequest::ParseTmpfsFlag, o.mounts);
  if (parsed)
    parsed = ParseEach(f.publish, run::PortMapping::ParseFlag, o.ports);
  if (!parsed)
    return ReportError(parsed.error());
  for (const auto& net : f.networks) {
    NetworkMode mode = NetworkMode::kPrivate;
    bool named = false;
    if (net == "none")
      mode = NetworkMode::kNone;
    else if (net == "host")
      mode = NetworkMode::kHost;
    else if (net == "private" || net == "slirp4netns" || net == "pasta" || net == "bridge")
      mode = NetworkMode::kPrivate;
    else if (net.rfind("container:", 0) == 0 && net.size() > 10) {
      o.network_container = net.substr(10);
      mode = NetworkMode::kNone;  // until the record names the container (run/network.cpp)
    } else if (net.rfind("ns:", 0) == 0 || net.rfind("container:", 0) == 0)
      return ReportError(Error(Errc::kUnsupported, "--network " + net + " is not supported"));
    else
      named = true;
    if (named)
      o.networks.push_back(net);  // a container network (docs/network.md)
    else
      o.network = mode;
    if (f.networks.size() > 1 && !named)
      return ReportError(Error(Errc::kInvalidInput, "--network " + net +
                                                        " cannot be combined with other --network flags (only "
                                                        "container networks can be given several times)"));
  }
  if (f.entrypoint_set)
    o.entrypoint = f.entrypoint;
  if (!f.memory.empty())
    o.memory = f.memory;
  if (f.cpus >= 0)
    o.cpus = f.cpus;
  if (f.pids_limit >= 0)
    o.pids_limit = f.pids_limit;

  registry::RegisterDockerTransport();
  auto store = Store::Open(ctx.StoreRoot());
  if (!store)
    return ReportError(store.error());
  if (!f.platform.empty()) {  // that platform's manifest, by digest (image::AcquireForPlatform)
    auto chosen = image::AcquireForPlatform(*store, o.image, f.platform, o.pull);
    if (!chosen)
      return ReportError(chosen.error());
    o.image = *chosen;
    o.pull = "never";
  }
  if (!f.pod.empty())  // the pod's namespaces; refuses what belongs to the pod
    if (auto st = pod::PrepareMember(*store, RunPaths(ctx), f.pod, o); !st)
      return ReportError(st.error());
  std::string id;
  auto status = run::Run(*store, RunPaths(ctx), o, &id);
  if (!status)
    return ReportError(status.error());
  if (o.detach || o.create_only)
    std::printf("%s\n", id.c_str());
  return *status;
}


/// The flags `run` and `create` share (podman's spelling; docs/run.md).
void AddContainerFlags(CLI::App* cmd, const std::shared_ptr<RunFlags>& f) {
  cmd->prefix_command();
  cmd->fallthrough(false);  // IMAGE/CONTAINER and the command are ours, not the parent's
  cmd->positionals_at_end(false);
  cmd->add_flag("-i,--interactive", f->o.interactive,
                "keep stdin open (pipe it into the container; with -d, for kiln attach)");
  cmd->add_flag("-t,--tty", f->o.tty, "allocate a pseudo-terminal");
  cmd->add_flag("--rm", f->o.remove, "remove the container when it exits");
  cmd->add_option("--name", f->o.name, "name of the container");
  cmd->add_option("-e,--env", f->o.env, "set an environment variable (K=V, or K to copy ours)")
      ->allow_extra_args(false);
  cmd->add_option("--env-file", f->o.env_files, "read environment variables from a file (K=V lines)")
      ->allow_extra_args(false);
  cmd->add_flag("--env-host", f->o.env_host, "start from kiln's environment (under the image's Env, -e and --env-file)");
  cmd->add_option("-v,--volume", f->volumes,
                  "bind mount or volume: SRC:DST[:ro|rw][,U] (SRC a path or volume name; U: chown it to the "
                  "container's user), or DST")
      ->allow_extra_args(false);
  cmd->add_option("--mount", f->mounts, "type=bind|volume|tmpfs,source=..,target=..[,ro][,tmpfs-size=..]")
      ->allow_extra_args(false);
  cmd->add_option("--tmpfs", f->tmpfs, "mount a tmpfs: /PATH[:rw|ro,exec|noexec,size=N,mode=MODE,uid=,gid=]")
      ->allow_extra_args(false);
  cmd->add_option("-p,--publish", f->publish,
                  "publish a port: [[IP:][HOST]:]CONTAINER[/udp]; ranges N-M; no HOST: a free port")
      ->allow_extra_args(false);
  cmd->add_flag("-P,--publish-all", f->o.publish_all, "publish every port the image EXPOSEs on a free host port");
  cmd->add_option("-u,--user", f->o.user, "user[:group] to run as (names from the image's /etc/passwd)");
  cmd->add_option("-w,--workdir", f->o.workdir, "working directory inside the container");
  cmd->add_option_function<std::string>(
      "--entrypoint",
      [f](const std::string& v) {
        f->entrypoint = v;
        f->entrypoint_set = true;
      },
      "override the image's ENTRYPOINT (\"\" clears it)");
  cmd->add_option("--network,--net", f->networks, "private (default: slirp4netns/pasta; only loopback, with a warning, when neither is usable), none, host, a network's NAME[:alias=A,ip=IP] (kiln network create; repeatable: one interface per network), or container:NAME (share a running container's network namespace)")
      ->allow_extra_args(false);
  cmd->add_option("--pod", f->pod,
                  "run in a pod: NAME or ID (its network, IPC and UTS namespaces), or new:NAME to create it first; "
                  "ports and networks belong to the pod (docs/pods.md)");
  cmd->add_option("--ip", f->o.ip, "the container's IPv4 address on its --network");
  cmd->add_option("--network-alias", f->o.network_aliases, "another name of the container on its --network (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--hostname", f->o.hostname, "container host name (default: the short ID)");
  cmd->add_option("--add-host", f->o.add_hosts, "add HOST:IP to the container's /etc/hosts (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--dns", f->o.dns_servers,
                  "nameserver IP for the container (repeatable; on a container network: where its responder "
                  "forwards; none: no nameserver)")
      ->allow_extra_args(false);
  cmd->add_option("--dns-search", f->o.dns_search, "search domain in /etc/resolv.conf (repeatable; . clears the list)")
      ->allow_extra_args(false);
  cmd->add_option("--dns-option", f->o.dns_options, "options line entry in /etc/resolv.conf (repeatable)")
      ->allow_extra_args(false);
  cmd->add_flag("--read-only", f->o.read_only, "mount the container's root filesystem read-only");
  cmd->add_flag("--privileged", f->o.privileged,
                "every capability of kiln's user namespace and no /proc masks (kiln or buildah inside; docs/ci.md)");
  cmd->add_option("--stop-signal", f->o.stop_signal,
                  "signal `stop` sends first (default: the image's STOPSIGNAL, else SIGTERM)");
  cmd->add_flag("--init", f->o.init, "run an init as pid 1 that reaps zombies and forwards signals (kiln always does)");
  cmd->add_option("-l,--label", f->o.labels, "set a container label K=V (over the image's labels)")
      ->allow_extra_args(false);
  cmd->add_option("--label-file", f->o.label_files, "read container labels from a file (K=V lines)")
      ->allow_extra_args(false);
  cmd->add_option("--annotation", f->o.annotations, "set an annotation K=V")->allow_extra_args(false);
  cmd->add_option("--cidfile", f->o.cidfile, "write the container ID to FILE (which must not exist)");
  cmd->add_option("--pull", f->o.pull, "pull the image: missing (default), always, never or newer")
      ->check(CLI::IsMember({"missing", "always", "never", "newer"}));
  cmd->add_option("--platform", f->platform,
                  "os/arch[/variant]: run that platform's image of a multi-platform image (default: this host)");
  cmd->add_option("-m,--memory", f->memory, "memory limit (e.g. 512m), needs a delegated cgroup v2");
  cmd->add_option("--cpus", f->cpus, "CPU limit (e.g. 1.5), needs a delegated cgroup v2");
  cmd->add_option("--pids-limit", f->pids_limit, "process limit, needs a delegated cgroup v2");
  // Lifecycle (docs/run.md "Health checks", "Restart policies"; docs/secrets.md).
  cmd->add_option("--secret", f->o.secrets,
                  "give the container a stored secret: NAME[,type=mount|env,target=PATH|VAR,uid=,gid=,mode=] "
                  "(mount: /run/secrets/NAME, mode 0444)")
      ->allow_extra_args(false);
  auto opt = [&](const char* name, std::optional<std::string> run::RunOptions::*field, const char* help) {
    cmd->add_option_function<std::string>(name, [f, field](const std::string& v) { f->o.*field = v; }, help);
  };
  opt("--health-cmd", &run::RunOptions::health_cmd,
      "health check command, run with /bin/sh -c in the container (\"none\" disables the image's HEALTHCHECK)");
  opt("--health-interval", &run::RunOptions::health_interval, "time between health checks (default 30s)");
  opt("--health-timeout", &run::RunOptions::health_timeout, "a check taking longer fails (default 30s)");
  opt("--health-start-period", &run::RunOptions::health_start_period,
      "failures in this time after start do not count (default 0s)");
  opt("--health-start-interval", &run::RunOptions::health_start_interval,
      "time between checks during the start period (default 5s)");
  cmd->add_option_function<int>("--health-retries", [f](int v) { f->o.health_retries = v; },
                                "consecutive failures that make the container unhealthy (default 3)");
  cmd->add_flag("--no-healthcheck", f->o.no_healthcheck, "disable the image's HEALTHCHECK");
  cmd->add_option("--health-on-failure", f->o.health_on_failure,
                  "when the container becomes unhealthy: none (default), kill, restart or stop");
  cmd->add_option("--restart", f->o.restart,
                  "restart policy: no (default), always, on-failure[:N] or unless-stopped (kiln stop is never undone)");
}

}  // namespace

void AddCreateCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("create", "create a container from an image without starting it");
  auto f = std::make_shared<RunFlags>();
  f->o.create_only = true;
  cmd->footer("IMAGE [COMMAND [ARG...]] follow the flags. Prints the container ID; `kiln start` runs it "
              "(detached). Free host ports (-p CTR, -P) are chosen now and kept. See docs/run.md.");
  AddContainerFlags(cmd, f);
  SetAction(cmd, ctx, [&ctx, cmd, f] { return DoRun(ctx, cmd, *f); });
}

void AddRunCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("run", "run a command in a new container from an image");
  auto f = std::make_shared<RunFlags>();
  cmd->footer("IMAGE [COMMAND [ARG...]] follow the flags. The exit status is the container's "
              "(126: command not executable, 127: not found). See docs/run.md.");
  cmd->add_flag("-d,--detach", f->o.detach, "run in the background and print the container ID");
  AddContainerFlags(cmd, f);
  SetAction(cmd, ctx, [&ctx, cmd, f] { return DoRun(ctx, cmd, *f); });

  // Internal: the detached container's monitor (started by run -d / start).
  auto* mon = app.add_subcommand("__monitor", "");
  mon->group("");
  auto store = std::make_shared<std::string>();
  auto run_root = std::make_shared<std::string>();
  auto ready = std::make_shared<int>(-1);
  auto id = std::make_shared<std::string>();
  mon->add_option("--store", *store, "store")->required();
  mon->add_option("--run-root", *run_root, "run-time directory")->required();
  mon->add_option("--ready-fd", *ready, "fd for the ready message");
  auto port_fds = std::make_shared<std::vector<int>>();
  mon->add_option("--port-fd", *port_fds, "inherited -p host socket (repeated, in -p order)");
  mon->add_option("id", *id, "container id")->required();
  SetAction(mon, ctx, [store, run_root, ready, id, port_fds] {
    return run::MonitorMain(run::Paths{*store, *run_root}, *id, *ready, *port_fds);
  });
}

}  // namespace kiln::cli
