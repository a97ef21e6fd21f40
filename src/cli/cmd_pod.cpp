// kiln pod create|ps|inspect|start|stop|restart|kill|rm|logs|top|exists|prune
// (docs/pods.md): podman's spelling and output shapes over src/pod.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/format_util.h"
#include "kiln/fs.h"
#include "kiln/pod.h"
#include "kiln/run.h"
#include "kiln/store.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);
std::string Ago(const std::string& when);  // cmd_ps.cpp

namespace {

/// "Less than a second ago", "3 minutes ago" (podman's CREATED).
std::string CreatedAgo(const std::string& when) {
  std::string ago = Ago(when);
  return ago.empty() ? "" : ago + " ago";
}

/// Runs `op(id)` for each pod named, printing the pod's full ID when it
/// succeeds (podman); a failure is reported and the others go on.
int ForEachPod(Context& ctx, const std::vector<std::string>& names,
               const std::function<Status(const std::string& id)>& op) {
  int rc = 0;
  for (const auto& name : names) {
    auto id = pod::ResolvePod(RunPaths(ctx), name);
    if (!id) {
      rc = ReportError(id.error());
      continue;
    }
    if (auto st = op(*id); !st) {
      rc = ReportError(st.error());
      continue;
    }
    std::printf("%s\n", id->c_str());
  }
  return rc;
}

/// A pod by name or ID, with its containers.
Expected<pod::PodInfo> FindPod(Context& ctx, const std::string& name) {
  KILN_ASSIGN_OR_RETURN(std::string id, pod::ResolvePod(RunPaths(ctx), name));
  return pod::InspectPod(RunPaths(ctx), id);
}

/// The pods to act on: the names given, or every pod with --all.
std::vector<std::string> Targets(Context& ctx, const std::vector<std::string>& names, bool all) {
  if (!all)
    return names;
  std::vector<std::string> ids;
  if (auto pods = pod::ListPods(RunPaths(ctx)))
    for (const auto& p : *pods)
      ids.push_back(p.pod.id);
  return ids;
}

nlohmann::ordered_json InspectJson(const pod::PodInfo& info) {
  const pod::Pod& p = info.pod;
  nlohmann::ordered_json containers = nlohmann::ordered_json::array();
  for (const auto& c : info.containers)
    containers.push_back({{"Id", c.id}, {"Name", c.name}, {"State", c.status}});
  nlohmann::ordered_json ports = nlohmann::ordered_json::object();
  for (const auto& c : info.containers)
    if (c.id == p.infra_id)
      for (const auto& m : c.port_mappings)
        ports[std::to_string(m.container_port) + (m.udp ? "/udp" : "/tcp")].push_back(
            {{"HostIp", m.host_ip}, {"HostPort", std::to_string(m.host_port)}});
  return nlohmann::ordered_json{
      {"Id", p.id},
      {"Name", p.name},
      {"Created", p.created},
      {"ExitPolicy", p.exit_policy},
      {"State", info.status},
      {"Hostname", p.hostname},
      {"Labels", p.labels},
      {"CreateInfra", true},
      {"InfraContainerID", p.infra_id},
      {"InfraConfig",
       {{"PortBindings", ports}, {"HostNetwork", false}, {"Networks", p.networks}, {"InfraImage", p.infra_image}}},
      {"SharedNamespaces", p.share},
      {"NumContainers", info.containers.size()},
      {"Containers", containers}};
}

/// One process of `pod top`: podman's default columns.
struct Proc {
  std::string user, pid, ppid, elapsed, tty, time, args;
};

/// The processes of the pid namespace whose init is host pid `init`.
std::vector<Proc> Processes(pid_t init) {
  std::vector<Proc> out;
  std::vector<pid_t> todo = {init};
  long hz = ::sysconf(_SC_CLK_TCK);
  double uptime = 0;
  if (auto up = ReadFile("/proc/uptime", 4096))
    uptime = std::atof(up->c_str());
  while (!todo.empty()) {
    pid_t pid = todo.back();
    todo.pop_back();
    std::string base = "/proc/" + std::to_string(pid);
    auto status = ReadFile(base + "/status", 1 << 16);
    auto stat = ReadFile(base + "/stat", 1 << 16);
    auto cmdline = ReadFile(base + "/cmdline", 1 << 16);
    if (!status || !stat)
      continue;
    Proc p;
    auto field = [&](const std::string& key) {
      size_t at = status->find("\n" + key + ":");
      if (at == std::string::npos)
        return std::string();
      size_t end = status->find('\n', at + 1);
      return status->substr(at + key.size() + 2, end - at - key.size() - 2);
    };
    auto last_word = [](const std::string& s) {
      size_t e = s.find_last_not_of(" \t");
      if (e == std::string::npos)
        return std::string();
      size_t b = s.find_last_of(" \t", e);
      return s.substr(b == std::string::npos ? 0 : b + 1, e - (b == std::string::npos ? 0 : b + 1) + 1);
    };
    std::string uid = field("Uid");
    uid = uid.substr(uid.find_first_not_of(" \t"));
    uid = uid.substr(0, uid.find_first_of(" \t"));
    p.user = uid == "0" ? "root" : uid;
    p.pid = last_word(field("NSpid"));
    // stat: pid (comm) state ppid ... utime(14) stime(15) ... starttime(22)
    size_t rp = stat->rfind(')');
    std::vector<std::string> f;
    for (size_t i = rp + 2; i < stat->size();) {
      size_t sp = stat->find(' ', i);
      f.push_back(stat->substr(i, sp == std::string::npos ? std::string::npos : sp - i));
      if (sp == std::string::npos)
        break;
      i = sp + 1;
    }
    if (f.size() < 20)
      continue;
    pid_t ppid = std::atoi(f[1].c_str());
    p.ppid = "0";
    if (pid != init)
      if (auto ps = ReadFile("/proc/" + std::to_string(ppid) + "/status", 1 << 16)) {
        size_t at = ps->find("\nNSpid:");
        if (at != std::string::npos)
          p.ppid = last_word(ps->substr(at + 7, ps->find('\n', at + 1) - at - 7));
      }
    auto dur = [](long secs) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%ldh%02ldm%02lds", secs / 3600, secs / 60 % 60, secs % 60);
      return std::string(buf);
    };
    long cpu = (std::atol(f[11].c_str()) + std::atol(f[12].c_str())) / hz;
    long elapsed = static_cast<long>(uptime - std::atof(f[19].c_str()) / static_cast<double>(hz));
    p.elapsed = dur(elapsed < 0 ? 0 : elapsed);
    p.time = dur(cpu);
    p.tty = f[4] == "0" ? "?" : "pts/" + std::to_string(std::atoi(f[4].c_str()) & 0xff);
    if (cmdline)
      for (char ch : *cmdline)
        p.args += ch ? ch : ' ';
    while (!p.args.empty() && p.args.back() == ' ')
      p.args.pop_back();
    out.push_back(std::move(p));
    if (auto kids = ReadFile(base + "/task/" + std::to_string(pid) + "/children", 1 << 16)) {
      size_t i = 0;
      while (i < kids->size()) {
        size_t sp = kids->find(' ', i);
        std::string k = kids->substr(i, sp == std::string::npos ? std::string::npos : sp - i);
        if (!k.empty())
          todo.push_back(std::atoi(k.c_str()));
        if (sp == std::string::npos)
          break;
        i = sp + 1;
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const Proc& a, const Proc& b) { return std::atoi(a.pid.c_str()) < std::atoi(b.pid.c_str()); });
  return out;
}

void AddCreate(CLI::App* group, Context& ctx) {
  auto* cmd = group->add_subcommand("create", "create a pod (its infra container holds the shared namespaces)");
  auto f = std::make_shared<pod::PodOptions>();
  auto positional = std::make_shared<std::string>();
  cmd->add_option("name_arg", *positional, "the pod's name (as --name)");
  cmd->add_option("-n,--name", f->name, "the pod's name (default: pod_ and 8 hex digits)");
  cmd->add_option("-p,--publish", f->ports, "publish a port of the pod: [[IP:][HOST]:]CONTAINER[/udp] (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--network,--net", f->networks, "the pod's container network NAME (repeatable; default podman)")
      ->allow_extra_args(false);
  cmd->add_option("--share", f->share, "namespaces its containers share: ipc,net,pid,uts (default ipc,net,uts; +pid adds, none: no sharing)");
  cmd->add_option("--infra-image", f->infra_image, "image of the infra container (default: kiln's own pause, no image pull)");
  cmd->add_option("--hostname", f->hostname, "the pod's host name (default: its name)");
  cmd->add_option("-l,--label", f->labels, "set a pod label K=V")->allow_extra_args(false);
  cmd->add_option("--exit-policy", f->exit_policy, "when the last member exits: continue (default) or stop the pod");
  SetCommand(cmd, ctx, [&ctx, f, positional]() -> Status {
    pod::PodOptions o = *f;
    if (!positional->empty()) {
      if (!o.name.empty() && o.name != *positional)
        return Error(Errc::kInvalidInput, "cannot specify a pod name both with --name and as an argument");
      o.name = *positional;
    }
    KILN_ASSIGN_OR_RETURN(auto store, Store::Open(ctx.StoreRoot()));
    KILN_ASSIGN_OR_RETURN(pod::Pod p, pod::CreatePod(store, RunPaths(ctx), o));
    std::printf("%s\n", p.id.c_str());
    return Ok();
  });
}

void AddList(CLI::App* group, Context& ctx) {
  auto* cmd = group->add_subcommand("ps", "list pods");
  cmd->alias("ls");
  cmd->alias("list");
  struct Flags {
    bool quiet = false, no_trunc = false, no_heading = false, ctr_names = false;
    std::string format;
    std::vector<std::string> filters;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_flag("-q,--quiet", f->quiet, "print only the pod IDs");
  cmd->add_flag("--no-trunc", f->no_trunc, "do not truncate pod IDs");
  cmd->add_flag("--noheading", f->no_heading, "leave out the header row of a table");
  cmd->add_flag("--ctr-names", f->ctr_names, "show the names of the containers of each pod");
  cmd->add_option("-f,--filter", f->filters, "name=, id=, status=, label=K[=V] (repeatable)")->allow_extra_args(false);
  cmd->add_option("--format", f->format,
                  "json, or a Go template ({{.ID}} {{.Name}} {{.Status}} {{.InfraID}} {{.NumberOfContainers}})");
  SetAction(cmd, ctx, [&ctx, f] {
    auto filter = ListFilter::Parse(f->filters, {"name", "id", "status", "label"}, [](const std::string& key) {
      return key + " is an invalid filter (pod ps --filter takes name, id, status, label)";
    });
    if (!filter)
      return ReportFormatError(filter.error());
    auto pods = pod::ListPods(RunPaths(ctx));
    if (!pods)
      return ReportError(pods.error());
    std::vector<nlohmann::json> json_rows, rows;
    for (const auto& info : *pods) {
      const pod::Pod& p = info.pod;
      bool match = filter->Match([&](const std::string& key, const std::string& v, size_t) {
        if (key == "name")
          return p.name.find(v) != std::string::npos;
        if (key == "id")
          return p.id.rfind(v, 0) == 0;
        if (key == "status") {
          std::string lower = info.status;
          std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
          return lower == v;
        }
        return LabelMatches(p.labels, v);
      });
      if (!match)
        continue;
      if (f->quiet) {
        std::printf("%s\n", f->no_trunc ? p.id.c_str() : p.id.substr(0, 12).c_str());
        continue;
      }
      nlohmann::json ctrs = nlohmann::json::array();
      std::string names;
      for (const auto& c : info.containers) {
        ctrs.push_back({{"Id", c.id}, {"Names", c.name}, {"Status", c.status}});
        names += (names.empty() ? "" : ",") + c.name;
      }
      json_rows.push_back({{"Cgroup", ""},
                           {"Containers", ctrs},
                           {"Created", p.created},
                           {"Id", p.id},
                           {"InfraId", p.infra_id},
                           {"Name", p.name},
                           {"Namespace", ""},
                           {"Networks", p.networks},
                           {"Status", info.status},
                           {"Labels", p.labels}});
      rows.push_back({{"ID", f->no_trunc ? p.id : p.id.substr(0, 12)},
                      {"Name", p.name},
                      {"Status", info.status},
                      {"Created", CreatedAgo(p.created)},
                      {"InfraID", f->no_trunc ? p.infra_id : p.infra_id.substr(0, 12)},
                      {"NumberOfContainers", info.containers.size()},
                      {"ContainerNames", names},
                      {"Networks", p.networks},
                      {"Labels", p.labels}});
    }
    if (f->quiet)
      return 0;
    format::ListOptions lo;
    lo.default_format = std::string("table {{.ID}}\t{{.Name}}\t{{.Status}}\t{{.Created}}\t{{.InfraID}}\t") +
                        (f->ctr_names ? "{{.ContainerNames}}" : "{{.NumberOfContainers}}");
    lo.headers = {{"ID", "POD ID"}, {"InfraID", "INFRA ID"}, {"NumberOfContainers", "# OF CONTAINERS"},
                  {"ContainerNames", "NAMES"}};
    lo.no_heading = f->no_heading;
    lo.template_options.name = "pod ps";
    return PrintList(f->format, json_rows, rows, lo, 4);
  });
}

void AddInspect(CLI::App* group, Context& ctx) {
  AddInspectCommand(*group, ctx, "show pods as JSON", "names", "pod names or IDs",
                    "json, or a Go template over the object ({{.Name}}, {{.State}})",
                    TemplateOptions("pod inspect", "define.InspectPodData"), 4,
                    [&ctx](const std::string& name) -> Expected<nlohmann::json> {
                      KILN_ASSIGN_OR_RETURN(pod::PodInfo info, FindPod(ctx, name));
                      return nlohmann::json::parse(InspectJson(info).dump());
                    });
}

void AddActions(CLI::App* group, Context& ctx) {
  struct Flags {
    std::vector<std::string> names;
    bool all = false, force = false;
    int timeout = 10;
    std::string signal = "KILL";
  };
  auto simple = [&](const char* name, const char* help) {
    auto* cmd = group->add_subcommand(name, help);
    auto f = std::make_shared<Flags>();
    cmd->add_option("names", f->names, "pod names or IDs");
    cmd->add_flag("-a,--all", f->all, "every pod");
    return std::make_pair(cmd, f);
  };
  {
    auto [cmd, f] = simple("start", "start pods: the infra container, then the members");
    SetAction(cmd, ctx, [&ctx, f = f] {
      return ForEachPod(ctx, Targets(ctx, f->names, f->all), [&](const std::string& id) { return pod::StartPod(RunPaths(ctx), id); });
    });
  }
  {
    auto [cmd, f] = simple("stop", "stop pods: the members (all at once), then the infra container");
    cmd->add_option("-t,--time", f->timeout, "seconds to wait before SIGKILL (default 10)");
    SetAction(cmd, ctx, [&ctx, f = f] {
      return ForEachPod(ctx, Targets(ctx, f->names, f->all),
                        [&](const std::string& id) { return pod::StopPod(RunPaths(ctx), id, f->timeout); });
    });
  }
  {
    auto [cmd, f] = simple("restart", "stop and start pods");
    cmd->add_option("-t,--time", f->timeout, "seconds to wait before SIGKILL (default 10)");
    SetAction(cmd, ctx, [&ctx, f = f] {
      return ForEachPod(ctx, Targets(ctx, f->names, f->all),
                        [&](const std::string& id) { return pod::RestartPod(RunPaths(ctx), id, f->timeout); });
    });
  }
  {
    auto [cmd, f] = simple("kill", "send a signal to every running container of pods (infra included)");
    cmd->add_option("-s,--signal", f->signal, "signal name or number (default KILL)");
    SetCommand(cmd, ctx, [&ctx, f = f]() -> Expected<int> {
      KILN_ASSIGN_OR_RETURN(int sig, run::ParseSignal(f->signal));
      return ForEachPod(ctx, Targets(ctx, f->names, f->all),
                        [&](const std::string& id) { return pod::KillPod(RunPaths(ctx), id, sig); });
    });
  }
  {
    auto [cmd, f] = simple("rm", "remove pods with their containers");
    cmd->alias("remove");
    cmd->add_flag("-f,--force", f->force, "stop running containers first (they are killed)");
    auto ignore = std::make_shared<bool>(false);
    cmd->add_flag("-i,--ignore", *ignore, "no error for a pod that does not exist");
    SetCommand(cmd, ctx, [&ctx, f = f, ignore]() -> Expected<int> {
      KILN_ASSIGN_OR_RETURN(auto store, Store::Open(ctx.StoreRoot()));
      std::vector<std::string> names;
      for (const auto& n : Targets(ctx, f->names, f->all))
        if (!*ignore || pod::ResolvePod(RunPaths(ctx), n))
          names.push_back(n);
      return ForEachPod(ctx, names,
                        [&](const std::string& id) { return pod::RemovePod(store, RunPaths(ctx), id, f->force); });
    }, kNotFoundFails);
  }
}

void AddMisc(CLI::App* group, Context& ctx) {
  {
    auto* cmd = group->add_subcommand("exists", "exit 0 when the pod exists, 1 when not");
    auto name = std::make_shared<std::string>();
    cmd->add_option("name", *name, "pod name or ID")->required();
    SetAction(cmd, ctx, [&ctx, name] { return pod::ResolvePod(RunPaths(ctx), *name) ? 0 : 1; });
  }
  AddPruneCommand(
      *group, ctx, "remove every pod none of whose containers runs", "do not ask for confirmation",
      [] { return Expected<std::string>("WARNING! This will remove all stopped/exited pods.."); },
      [&ctx] {
        return ExitCode([&]() -> Status {
          KILN_ASSIGN_OR_RETURN(auto store, Store::Open(ctx.StoreRoot()));
          KILN_ASSIGN_OR_RETURN(auto removed, pod::PrunePods(store, RunPaths(ctx)));
          for (const auto& id : removed)
            std::printf("%s\n", id.c_str());
          return Ok();
        }());
      });
  {
    auto* cmd = group->add_subcommand("logs", "print the logs of a pod's containers");
    struct Flags {
      std::string name, container;
      bool follow = false, timestamps = false, names = false;
      int64_t tail = -1;
    };
    auto f = std::make_shared<Flags>();
    cmd->add_option("name", f->name, "pod name or ID")->required();
    cmd->add_option("-c,--container", f->container, "only this container of the pod");
    cmd->add_flag("-f,--follow", f->follow, "keep printing until the containers stop");
    cmd->add_flag("-t,--timestamps", f->timestamps, "prefix each line with its time");
    cmd->add_flag("--names", f->names, "prefix each line with its container's name");
    cmd->add_option("--tail", f->tail, "only the last N lines of each container");
    SetCommand(cmd, ctx, [&ctx, f]() -> Status {
      run::Paths paths = RunPaths(ctx);
      KILN_ASSIGN_OR_RETURN(pod::PodInfo info, FindPod(ctx, f->name));
      std::vector<run::ContainerInfo> members;
      for (const auto& c : info.containers)
        if (c.id != info.pod.infra_id &&
            (f->container.empty() || c.name == f->container || (f->container.size() >= 3 && c.id.rfind(f->container, 0) == 0)))
          members.push_back(c);
      if (!f->container.empty() && members.empty())
        return Error(Errc::kNotFound, "no container " + f->container + " in pod " + info.pod.name);
      run::LogOptions lo;
      lo.follow = f->follow;
      lo.tail = f->tail;
      lo.timestamps = f->timestamps;
      std::mutex out_mu;
      auto one = [&](const run::ContainerInfo& c) -> Status {
        if (!f->names && !f->follow)
          return run::WriteLogs(paths, c.id, lo, 1);
        // Line by line through a pipe: a prefix per line, whole lines only.
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0)
          return Error::FromErrno("pipe");
        UniqueFd r(p[0]);
        std::thread writer([&, w = p[1]] {
          (void)run::WriteLogs(paths, c.id, lo, w);
          ::close(w);
        });
        std::string pending;
        char buf[8192];
        ssize_t n;
        while ((n = ::read(r.get(), buf, sizeof buf)) > 0) {
          pending.append(buf, static_cast<size_t>(n));
          size_t nl;
          while ((nl = pending.find('\n')) != std::string::npos) {
            std::string line = (f->names ? c.name + " " : "") + pending.substr(0, nl + 1);
            pending.erase(0, nl + 1);
            std::lock_guard<std::mutex> g(out_mu);
            std::fwrite(line.data(), 1, line.size(), stdout);
            std::fflush(stdout);
          }
        }
        writer.join();
        if (!pending.empty()) {
          std::lock_guard<std::mutex> g(out_mu);
          std::string line = (f->names ? c.name + " " : "") + pending + "\n";
          std::fwrite(line.data(), 1, line.size(), stdout);
        }
        return Ok();
      };
      std::vector<std::thread> threads;
      std::vector<Status> results(members.size(), Ok());
      for (size_t i = 0; i < members.size(); ++i) {
        if (f->follow)
          threads.emplace_back([&, i] { results[i] = one(members[i]); });
        else
          results[i] = one(members[i]);
      }
      for (auto& t : threads)
        t.join();
      for (auto& r : results)
        KILN_TRY(r);
      return Ok();
    });
  }
  {
    auto* cmd = group->add_subcommand("top", "show the processes of a pod's running containers");
    auto name = std::make_shared<std::string>();
    cmd->add_option("name", *name, "pod name or ID")->required();
    SetCommand(cmd, ctx, [&ctx, name]() -> Expected<int> {
      KILN_ASSIGN_OR_RETURN(pod::PodInfo info, FindPod(ctx, *name));
      std::vector<nlohmann::json> rows;
      for (const auto& c : info.containers) {
        if (c.status != "running" || c.pid <= 0)
          continue;
        for (const auto& p : Processes(c.pid))
          rows.push_back({{"User", p.user}, {"PID", p.pid}, {"PPID", p.ppid}, {"CPU", "0.000"},
                          {"Elapsed", p.elapsed}, {"TTY", p.tty}, {"Time", p.time}, {"Command", p.args},
                          {"Name", c.name}});
      }
      if (rows.empty())
        return Error(Errc::kFailed, "pod " + info.pod.name + " has no running containers");
      format::ListOptions lo;
      lo.default_format = "table {{.User}}\t{{.PID}}\t{{.PPID}}\t{{.CPU}}\t{{.Elapsed}}\t{{.TTY}}\t{{.Time}}\t{{.Command}}\t{{.Name}}";
      lo.headers = {{"User", "USER"}, {"CPU", "%CPU"}, {"Command", "COMMAND"}, {"Name", "NAME"}};
      lo.template_options.name = "pod top";
      return PrintList("", {}, rows, lo, 4);
    });
  }
}

}  // namespace

void AddPodCommand(CLI::App& app, Context& ctx) {
  auto* group = app.add_subcommand("pod", "manage pods (containers sharing network, IPC and UTS namespaces)");
  group->require_subcommand(1);
  AddCreate(group, ctx);
  AddList(group, ctx);
  AddInspect(group, ctx);
  AddActions(group, ctx);
  AddMisc(group, ctx);
}

}  // namespace kiln::cli
