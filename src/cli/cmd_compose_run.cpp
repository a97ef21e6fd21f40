// kiln compose up/down/ps/logs/exec/run/start/stop/restart/build/pull/rm/
// kill/create/port (docs/compose.md): the project is loaded by the compose
// translator and applied by the apply module (kiln/apply.h); this file only
// parses flags and prints (the project loading, the build hook and the logs:
// compose_session.cpp, compose_logs.cpp).
#include <fcntl.h>
#include <sys/stat.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/compose_flags.h"
#include "cli/compose_session.h"
#include "cli/image_util.h"
#include "kiln/acquire.h"
#include "kiln/apply.h"
#include "kiln/cancel.h"
#include "kiln/containerfile.h"
#include "kiln/fs.h"
#include "kiln/random.h"
#include "kiln/registry.h"
#include "kiln/run.h"
#include "kiln/store.h"
#include "kiln/transport.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

using namespace compose_cmd;  // NOLINT: the commands' shared helpers (compose_session.h)

namespace {

// The compose group's options that take a value (ComposeSubcommand skips them).
const std::set<std::string> kGroupValueOptions = {"-f", "--file", "-p", "--project-name", "--project-directory",
                                                  "--profile", "--env-file"};

}  // namespace

std::string ComposeSubcommand(int argc, char** argv) {
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--root" || a == "--log-level") {
      ++i;
      continue;
    }
    if (a == "compose")
      break;
    if (a.empty() || a[0] != '-')
      return "";
  }
  for (++i; i < argc; ++i) {
    std::string a = argv[i];
    if (kGroupValueOptions.count(a)) {
      ++i;
      continue;
    }
    if (!a.empty() && a[0] == '-')
      continue;
    return a;
  }
  return "";
}

bool ComposeNeedsUserNamespace(int argc, char** argv) {
  static const std::set<std::string> kOutside = {"", "exec", "config", "convert", "ps", "logs", "port"};
  return kOutside.count(ComposeSubcommand(argc, argv)) == 0;
}

bool ComposeStartsContainers(int argc, char** argv) {
  static const std::set<std::string> kStart = {"up", "run", "start", "restart", "create"};
  return kStart.count(ComposeSubcommand(argc, argv)) != 0;
}

void AddComposeRunCommands(CLI::App* group, Context& ctx, const std::shared_ptr<ComposeFlags>& f) {
  // ------------------------------------------------------------------ up / create
  for (bool create : {false, true}) {
    auto* cmd = group->add_subcommand(create ? "create" : "up",
                                      create ? "create the services' containers without starting them"
                                             : "create and start the services' containers (in depends_on order)");
    struct Flags {
      apply::UpOptions o;
      bool detach = false, quiet = false, remove_orphans = false;
      std::vector<std::string> services;
      int timeout = -1;
    };
    auto u = std::make_shared<Flags>();
    if (!create) {
      cmd->add_flag("-d,--detach", u->detach, "start in the background (default: attach to the logs; Ctrl-C stops)");
      cmd->add_flag("--wait", u->o.wait, "wait until every service runs (healthy when it has a health check); implies -d");
      cmd->add_flag("--no-start", u->o.no_start, "create the containers, do not start them");
      cmd->add_option("-t,--timeout", u->timeout, "seconds to wait for a container to stop (Ctrl-C, recreate)");
    }
    cmd->add_flag("--build", u->o.build, "build the images before starting, even when they exist");
    cmd->add_flag("--no-build", u->o.no_build, "do not build images, even missing ones");
    cmd->add_flag("--force-recreate", u->o.force_recreate, "recreate the containers even when unchanged");
    cmd->add_flag("--no-recreate", u->o.no_recreate, "leave existing containers as they are, even when changed");
    cmd->add_flag("--no-deps", u->o.no_deps, "do not start the services the named ones depend on");
    cmd->add_option("--pull", u->o.pull, "pull images: always, missing, never (default: each service's pull_policy)")
        ->check(CLI::IsMember({"always", "missing", "never", "newer"}));
    cmd->add_flag("--remove-orphans", u->remove_orphans, "remove containers of services not in the file");
    cmd->add_flag("--quiet-pull", u->quiet, "print no progress lines");
    cmd->add_option("services", u->services, "the services (default: all; their dependencies too)");
    cmd->footer("An unchanged running container is left alone, a changed one is recreated. "
                "Services wait for their depends_on conditions (service_healthy, service_completed_successfully).");
    SetAction(cmd, ctx, [&ctx, f, u, create] {
      auto session = OpenSession(ctx, *f, u->services, {.quiet = u->quiet});
      if (!session)
        return ReportError(session.error());
      const deployment::Project& p = (*session)->project();
      apply::Env& env = (*session)->env();
      apply::UpOptions o = u->o;
      o.services = u->services;
      if (create)
        o.no_start = true;
      if (u->remove_orphans) {
        // Only the orphans: containers whose service is not in the file.
        auto found = apply::FindContainers(env.paths, p.name, true);
        if (found)
          for (const auto& c : *found)
            if (std::none_of(p.services.begin(), p.services.end(),
                             [&](const deployment::Service& s) { return s.name == c.service; })) {
              (void)run::StopContainer(env.paths, c.info.id, 10);
              (void)run::RemoveContainer(env.paths, c.info.id, true);
              env.progress ? env.progress("Container " + c.info.name + "  Removed") : void();
            }
      }
      auto started = apply::Up(env, p, o);
      if (!started) {
        // Attached up cancelled while it started the project: stop what runs.
        if (started.error().code() == Errc::kCancelled && !u->detach && !o.wait && !o.no_start) {
          std::fprintf(stderr, "Gracefully stopping... (press Ctrl+C again to force)\n");
          (void)apply::Stop(env, p, u->services, u->timeout);
        }
        return Fail(started.error());
      }
      if (u->detach || o.wait || o.no_start)
        return 0;
      // Attached: the services' logs, prefixed, until they all stop; Ctrl-C
      // stops the project (docker compose: "Gracefully stopping...").
      auto containers = ServiceContainers(env.paths, p, u->services, true);
      if (!containers)
        return ReportError(containers.error());
      std::erase_if(*containers, [&](const apply::ProjectContainer& c) {
        return std::none_of(started->begin(), started->end(), [&](const apply::Started& s) { return s.id == c.info.id; });
      });
      run::LogOptions lo;
      lo.follow = true;  // each log from its start: the first lines come before we attach
      std::vector<std::string> names;
      for (const auto& c : *containers)
        names.push_back(c.info.name);
      std::printf("Attaching to %s\n", Join(names, ", ").c_str());
      std::fflush(stdout);
      bool stopped = false;
      int timeout = u->timeout;
      PrintLogs(env.paths, *containers, lo, true, [&] {
        std::fprintf(stderr, "Gracefully stopping... (press Ctrl+C again to force)\n");
        stopped = true;
        if (auto st = apply::Stop(env, p, u->services, timeout); !st)
          ReportError(st.error());
      });
      if (stopped)
        return 130;
      return 0;
    });
  }

  // ------------------------------------------------------------------ down
  {
    auto* cmd = group->add_subcommand("down", "stop and remove the project's containers and networks");
    struct Flags {
      apply::DownOptions o;
    };
    auto d = std::make_shared<Flags>();
    cmd->add_flag("-v,--volumes", d->o.volumes, "also remove the named volumes declared in the file (and anonymous ones)");
    cmd->add_flag("--remove-orphans", d->o.remove_orphans, "also remove containers of services not in the file");
    cmd->add_option("-t,--timeout", d->o.timeout, "seconds to wait for a container to stop before killing it");
    SetAction(cmd, ctx, [&ctx, f, d] {
      // down removes the containers of every profile's services
      auto session = OpenSession(ctx, *f, {}, {.all_profiles = true, .warn = false, .no_file_ok = true});
      if (!session)
        return ReportError(session.error());
      if (auto st = apply::Down((*session)->env(), (*session)->project(), d->o); !st)
        return ReportError(st.error());
      return 0;
    });
  }

  // ------------------------------------------------------------------ ps
  {
    auto* cmd = group->add_subcommand("ps", "list the project's containers");
    struct Flags {
      bool all = false, quiet = false, services = false;
      std::string format = "table";
      std::vector<std::string> only;
    };
    auto q = std::make_shared<Flags>();
    cmd->add_flag("-a,--all", q->all, "also stopped containers (and those of one-off runs)");
    cmd->add_flag("-q,--quiet", q->quiet, "only the IDs");
    cmd->add_flag("--services", q->services, "only the service names");
    cmd->add_option("--format", q->format, "table or json")->check(CLI::IsMember({"table", "json"}));
    cmd->add_option("services", q->only, "only these services");
    SetAction(cmd, ctx, [&ctx, f, q] {
      ComposeFlags all = *f;
      all.profiles = {"*"};
      auto loaded = LoadOrLabels(all, {});
      if (!loaded)
        return ReportError(loaded.error());
      auto list = ServiceContainers(RunPaths(ctx), loaded->project, q->only, q->all, q->all);
      if (!list)
        return ReportError(list.error());
      std::string out;
      if (q->quiet) {
        for (const auto& c : *list)
          out += c.info.id + "\n";
      } else if (q->services) {
        std::set<std::string> seen;
        for (const auto& c : *list)
          if (seen.insert(c.service).second)
            out += c.service + "\n";
      } else if (q->format == "json") {
        nlohmann::json arr = nlohmann::json::array();
        for (const auto& c : *list)
          arr.push_back({{"ID", c.info.id},
                         {"Name", c.info.name},
                         {"Image", c.info.image},
                         {"Command", Join(c.info.command, " ")},
                         {"Project", loaded->project.name},
                         {"Service", c.service},
                         {"State", c.info.status},
                         {"Health", c.info.health_status},
                         {"ExitCode", c.info.exit_code},
                         {"Status", StatusText(c.info)},
                         {"Created", c.info.created},
                         {"Ports", Join(c.info.ports, ", ")},
                         {"Labels", c.labels}});
        out = arr.dump() + "\n";
      } else {
        std::vector<std::vector<std::string>> rows = {{"NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"}};
        for (const auto& c : *list) {
          std::string command = Join(c.info.command, " ");
          if (command.size() > 20)
            command = command.substr(0, 17) + "...";
          rows.push_back({c.info.name, c.info.image, "\"" + command + "\"", c.service, c.info.created,
                          StatusText(c.info), Join(c.info.ports, ", ")});
        }
        std::vector<size_t> width(rows[0].size(), 0);
        for (const auto& r : rows)
          for (size_t i = 0; i < r.size(); ++i)
            width[i] = std::max(width[i], r[i].size());
        for (const auto& r : rows) {
          std::string line;
          for (size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size())
              line += std::string(width[i] - r[i].size() + 3, ' ');
          }
          while (!line.empty() && line.back() == ' ')
            line.pop_back();
          out += line + "\n";
        }
      }
      std::fwrite(out.data(), 1, out.size(), stdout);
      return 0;
    });
  }

  // ------------------------------------------------------------------ logs
  {
    auto* cmd = group->add_subcommand("logs", "print the services' logs, each line prefixed with its container");
    struct Flags {
      bool follow = false, timestamps = false, no_prefix = false;
      int64_t tail = -1;
      std::vector<std::string> services;
    };
    auto l = std::make_shared<Flags>();
    cmd->add_flag("-f,--follow", l->follow, "keep printing until the containers stop");
    cmd->add_flag("-t,--timestamps", l->timestamps, "prefix each line with the time it was written");
    cmd->add_option("-n,--tail", l->tail, "only the last N lines of each container");
    cmd->add_flag("--no-log-prefix", l->no_prefix, "do not prefix the lines with the container's name");
    cmd->add_option("services", l->services, "only these services");
    SetAction(cmd, ctx, [&ctx, f, l] {
      auto loaded = LoadOrLabels(*f, l->services);
      if (!loaded)
        return ReportError(loaded.error());
      auto list = ServiceContainers(RunPaths(ctx), loaded->project, l->services, true);
      if (!list)
        return ReportError(list.error());
      run::LogOptions o;
      o.follow = l->follow;
      o.tail = l->tail;
      o.timestamps = l->timestamps;
      PrintLogs(RunPaths(ctx), *list, o, !l->no_prefix, nullptr);
      return 0;
    });
  }

  // ------------------------------------------------------------------ exec
  {
    auto* cmd = group->add_subcommand("exec", "run a command in a service's running container");
    struct Flags {
      run::ExecOptions o;
      bool no_tty = false, detach = false;
      int index = 1;
    };
    auto x = std::make_shared<Flags>();
    cmd->prefix_command();
    cmd->fallthrough(false);
    cmd->footer("SERVICE COMMAND [ARG...] follow the flags. The exit status is the command's.");
    cmd->add_flag("-T,--no-TTY", x->no_tty, "no pseudo-terminal (default: one when stdin and stdout are terminals)");
    cmd->add_option("-e,--env", x->o.env, "set an environment variable (K=V)")->allow_extra_args(false);
    cmd->add_option("-u,--user", x->o.user, "user[:group] to run as");
    cmd->add_option("-w,--workdir", x->o.workdir, "working directory");
    cmd->add_option("--index", x->index, "the container of the service (only 1: kiln runs one per service)");
    SetAction(cmd, ctx, [&ctx, f, cmd, x] {
      std::vector<std::string> rest = cmd->remaining();
      if (!rest.empty() && !rest[0].empty() && rest[0][0] == '-')
        return ReportError(Error(Errc::kInvalidInput, "compose exec: unknown flag " + rest[0]));
      if (rest.size() < 2)
        return ReportError(Error(Errc::kInvalidInput, "compose exec: usage: kiln compose exec [flags] SERVICE COMMAND [ARG...]"));
      auto loaded = LoadFor(*f, {rest[0]});
      if (!loaded)
        return ReportError(loaded.error());
      auto list = ServiceContainers(RunPaths(ctx), loaded->project, {rest[0]}, false);
      if (!list)
        return ReportError(list.error());
      const apply::ProjectContainer* c = nullptr;
      for (const auto& pc : *list)
        if (pc.number == x->index)
          c = &pc;
      if (!c)
        return ReportError(Error(Errc::kNotFound, "service \"" + rest[0] + "\" is not running"));
      x->o.command.assign(rest.begin() + 1, rest.end());
      if (!x->o.command.empty() && x->o.command[0] == "--")
        x->o.command.erase(x->o.command.begin());
      x->o.tty = !x->no_tty && ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
      x->o.interactive = ::isatty(STDIN_FILENO);
      auto status = run::Exec(RunPaths(ctx), c->info.id, x->o);
      if (!status)
        return ReportError(status.error());
      return *status;
    });
  }

  // ------------------------------------------------------------------ run
  {
    auto* cmd = group->add_subcommand("run", "run a one-off command in a new container of a service");
    struct Flags {
      bool remove = false, detach = false, no_deps = false, no_tty = false, service_ports = false, build = false;
      std::vector<std::string> env, publish, volumes;
      std::string entrypoint, user, workdir, name;
      bool entrypoint_set = false;
    };
    auto r = std::make_shared<Flags>();
    cmd->prefix_command();
    cmd->fallthrough(false);
    cmd->footer("SERVICE [COMMAND [ARG...]] follow the flags. The service's dependencies are started first; "
                "the exit status is the command's.");
    cmd->add_flag("--rm", r->remove, "remove the container when it exits");
    cmd->add_flag("-d,--detach", r->detach, "run in the background, print the container ID");
    cmd->add_flag("--no-deps", r->no_deps, "do not start the services it depends on");
    cmd->add_flag("-T,--no-TTY", r->no_tty, "no pseudo-terminal");
    cmd->add_flag("--service-ports", r->service_ports, "publish the service's ports (default: none)");
    cmd->add_flag("--build", r->build, "build the image first");
    cmd->add_option("-e,--env", r->env, "set an environment variable (K=V)")->allow_extra_args(false);
    cmd->add_option("-p,--publish", r->publish, "publish a port ([[IP:][HOST]:]CONTAINER)")->allow_extra_args(false);
    cmd->add_option("-v,--volume", r->volumes, "bind mount or volume SRC:DST[:ro]")->allow_extra_args(false);
    cmd->add_option_function<std::string>(
        "--entrypoint",
        [r](const std::string& v) {
          r->entrypoint = v;
          r->entrypoint_set = true;
        },
        "override the entrypoint");
    cmd->add_option("-u,--user", r->user, "user[:group] to run as");
    cmd->add_option("-w,--workdir", r->workdir, "working directory");
    cmd->add_option("--name", r->name, "the container's name (default: <project>-<service>-run-<id>)");
    SetAction(cmd, ctx, [&ctx, f, cmd, r] {
      std::vector<std::string> rest = cmd->remaining();
      if (!rest.empty() && !rest[0].empty() && rest[0][0] == '-')
        return ReportError(Error(Errc::kInvalidInput, "compose run: unknown flag " + rest[0]));
      if (rest.empty())
        return ReportError(Error(Errc::kInvalidInput, "compose run: usage: kiln compose run [flags] SERVICE [COMMAND [ARG...]]"));
      const std::string service = rest[0];
      auto session = OpenSession(ctx, *f, {service}, {});
      if (!session)
        return ReportError(session.error());
      const deployment::Project& p = (*session)->project();
      const deployment::Service* s = nullptr;
      for (const auto& x : p.services)
        if (x.name == service)
          s = &x;
      if (!s)
        return ReportError(Error(Errc::kInvalidInput, "no such service: " + service));
      apply::Env& env = (*session)->env();
      std::vector<std::string> deps;
      if (!r->no_deps)
        for (const auto& d : s->depends_on)
          deps.push_back(d.service);
      if (!deps.empty()) {
        apply::UpOptions o;
        o.services = deps;
        auto started = apply::Up(env, p, o);
        if (!started)
          return Fail(started.error());
        for (const auto& d : s->depends_on)
          for (const auto& st : *started)
            if (st.service == d.service)
              if (Status w = apply::WaitCondition(env, d.service, st.id, d.condition); !w && d.required)
                return Fail(w.error());
      } else if (auto st = apply::EnsureResources(env, p); !st) {
        return ReportError(st.error());
      }
      if (auto st = apply::EnsureImages(env, p, {service}, r->build, false, ""); !st)
        return ReportError(st.error());
      std::vector<std::string> warnings;
      auto o = apply::ServiceRunOptions(p, *s, &warnings);
      if (!o)
        return ReportError(o.error());
      for (const auto& w : warnings)
        std::fprintf(stderr, "kiln: warning: %s\n", w.c_str());
      auto hex = RandomHex(12);
      o->name = !r->name.empty() ? r->name : p.name + "-" + service + "-run-" + (hex ? *hex : std::string("0"));
      for (auto& l : o->labels)
        if (l.rfind(std::string(apply::kOneoffLabel) + "=", 0) == 0)
          l = std::string(apply::kOneoffLabel) + "=True";
      o->restart = "no";
      if (!r->service_ports)
        o->ports.clear();
      for (const auto& pub : r->publish) {
        auto m = run::PortMapping::ParseFlag(pub);
        if (!m)
          return ReportError(m.error());
        o->ports.insert(o->ports.end(), m->begin(), m->end());
      }
      for (const auto& v : r->volumes) {
        auto m = run::MountRequest::ParseVolumeFlag(v);
        if (!m)
          return ReportError(m.error());
        o->mounts.push_back(*m);
      }
      if (rest.size() > 1) {
        o->command.assign(rest.begin() + 1, rest.end());
        if (!o->command.empty() && o->command[0] == "--")
          o->command.erase(o->command.begin());
        if (s->entrypoint && s->entrypoint->size() > 1)  // the entrypoint's own arguments stay
          o->command.insert(o->command.begin(), s->entrypoint->begin() + 1, s->entrypoint->end());
      }
      if (r->entrypoint_set) {
        o->entrypoint = r->entrypoint;
        if (rest.size() <= 1)
          o->command.clear();
      }
      for (const auto& kv : r->env)
        o->env.push_back(kv);
      if (!r->user.empty())
        o->user = r->user;
      if (!r->workdir.empty())
        o->workdir = r->workdir;
      o->detach = r->detach;
      o->remove = r->remove;
      o->interactive = !r->detach && ::isatty(STDIN_FILENO);
      o->tty = !r->no_tty && !r->detach && ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
      std::string id;
      auto status = run::Run(*env.store, env.paths, *o, &id);
      if (!status)
        return ReportError(status.error());
      if (r->detach)
        std::printf("%s\n", id.c_str());
      return *status;
    });
  }

  // ------------------------------------------------------------------ start / stop / restart
  for (const char* verb : {"start", "stop", "restart"}) {
    std::string v = verb;
    auto* cmd = group->add_subcommand(v, v == "start"   ? "start the services' existing containers"
                                         : v == "stop" ? "stop the services' containers (dependents first)"
                                                       : "restart the services' containers");
    auto services = std::make_shared<std::vector<std::string>>();
    auto timeout = std::make_shared<int>(-1);
    if (v != "start")
      cmd->add_option("-t,--timeout", *timeout, "seconds to wait for a container to stop before killing it");
    cmd->add_option("services", *services, "the services (default: all)");
    SetAction(cmd, ctx, [&ctx, f, v, services, timeout] {
      auto session = OpenSession(ctx, *f, *services, {.warn = false});
      if (!session)
        return ReportError(session.error());
      const apply::Env& env = (*session)->env();
      const deployment::Project& p = (*session)->project();
      Status st = v == "start" ? apply::Start(env, p, *services)
                  : v == "stop" ? apply::Stop(env, p, *services, *timeout)
                                : apply::Restart(env, p, *services, *timeout);
      if (!st)
        return Fail(st.error());
      return 0;
    });
  }

  // ------------------------------------------------------------------ build / pull
  {
    auto* cmd = group->add_subcommand("build", "build the images of the services that have build:");
    struct Flags {
      bool no_cache = false, pull = false, quiet = false;
      std::vector<std::string> services;
    };
    auto b = std::make_shared<Flags>();
    cmd->add_flag("--no-cache", b->no_cache, "do not use the build cache");
    cmd->add_flag("--pull", b->pull, "pull the base images every time");
    cmd->add_flag("-q,--quiet", b->quiet, "print no progress lines");
    cmd->add_option("services", b->services, "the services (default: all with build:)");
    SetAction(cmd, ctx, [&ctx, f, b] {
      auto session = OpenSession(ctx, *f, b->services, {.quiet = b->quiet, .no_cache = b->no_cache, .pull = b->pull});
      if (!session)
        return ReportError(session.error());
      const deployment::Project& p = (*session)->project();
      std::vector<std::string> names;
      for (const auto& s : p.services)
        if (s.build && (b->services.empty() ||
                        std::find(b->services.begin(), b->services.end(), s.name) != b->services.end()))
          names.push_back(s.name);
      if (auto st = apply::EnsureImages((*session)->env(), p, names, true, false, ""); !st)
        return Fail(st.error());
      return 0;
    });
  }
  {
    auto* cmd = group->add_subcommand("pull", "pull the images of the services that have image: (and no build:)");
    struct Flags {
      bool ignore_failures = false, quiet = false;
      std::vector<std::string> services;
    };
    auto pl = std::make_shared<Flags>();
    cmd->add_flag("--ignore-pull-failures", pl->ignore_failures, "go on when an image cannot be pulled");
    cmd->add_flag("-q,--quiet", pl->quiet, "print no progress lines");
    cmd->add_option("services", pl->services, "the services (default: all)");
    SetAction(cmd, ctx, [&ctx, f, pl] {
      auto session = OpenSession(ctx, *f, pl->services, {.quiet = pl->quiet});
      if (!session)
        return ReportError(session.error());
      const deployment::Project& p = (*session)->project();
      const apply::Env& env = (*session)->env();
      int rc = 0;
      for (const auto& s : p.services) {
        if (s.build || s.image.empty() ||
            (!pl->services.empty() && std::find(pl->services.begin(), pl->services.end(), s.name) == pl->services.end()))
          continue;
        if (env.progress)
          env.progress("Image " + s.image + "  Pulling");
        image::AcquireOptions o;
        o.policy = image::PullPolicy::kAlways;
        if (auto img = image::Acquire(*env.store, s.image, o); !img) {
          if (!pl->ignore_failures)
            return Fail(std::move(img).error().WithContext("service " + s.name));
          std::fprintf(stderr, "kiln: warning: service %s: %s\n", s.name.c_str(), img.error().message().c_str());
          rc = 0;
          continue;
        }
        if (env.progress)
          env.progress("Image " + s.image + "  Pulled");
      }
      return rc;
    });
  }

  {
    auto* cmd = group->add_subcommand("push", "push the images of the services that have image: and build: to their registry");
    struct Flags {
      RegistryFlags registry;
      bool ignore_failures = false, quiet = false;
      std::vector<std::string> services;
    };
    auto ps = std::make_shared<Flags>();
    ps->registry.Add(cmd);
    cmd->add_flag("--ignore-push-failures", ps->ignore_failures, "go on when an image cannot be pushed");
    cmd->add_flag("-q,--quiet", ps->quiet, "print no progress lines");
    cmd->add_option("services", ps->services, "the services (default: all)");
    SetAction(cmd, ctx, [&ctx, f, ps] {
      auto session = OpenSession(ctx, *f, ps->services, {.quiet = ps->quiet});
      if (!session)
        return ReportError(session.error());
      const apply::Env& env = (*session)->env();
      for (const auto& s : (*session)->project().services) {
        // As docker compose: the services that name their image (a built
        // image without `image:` has no registry to go to).
        if (s.image.empty() || !s.build ||
            (!ps->services.empty() && std::find(ps->services.begin(), ps->services.end(), s.name) == ps->services.end()))
          continue;
        auto pushed = [&]() -> Status {
          auto img = image::ResolveLocal(*env.store, s.image);
          if (!img)
            return std::move(img).error().WithContext("service " + s.name + " (run kiln compose build first)");
          std::string source_name = MatchedName(*img, s.image);
          auto dest = ParseImageTransport("docker://" + (source_name.empty() ? s.image : source_name));
          if (!dest)
            return dest.error();
          if (env.progress)
            env.progress("Image " + s.image + "  Pushing");
          if (auto st = PushImage(*env.store, *img, source_name, *dest, ps->registry.Options(true)); !st)
            return std::move(st).error().WithContext("service " + s.name + ": push " + s.image);
          if (env.progress)
            env.progress("Image " + s.image + "  Pushed");
          return Ok();
        }();
        if (!pushed) {
          if (!ps->ignore_failures)
            return Fail(pushed.error());
          std::fprintf(stderr, "kiln: warning: %s\n", pushed.error().message().c_str());
        }
      }
      return 0;
    });
  }

  {
    auto* cmd = group->add_subcommand("top", "show the processes of the services' running containers");
    auto services = std::make_shared<std::vector<std::string>>();
    cmd->add_option("services", *services, "the services (default: all)");
    SetAction(cmd, ctx, [&ctx, f, services] {
      auto loaded = LoadOrLabels(*f, *services);
      if (!loaded)
        return ReportError(loaded.error());
      auto list = ServiceContainers(RunPaths(ctx), loaded->project, *services, false);
      if (!list)
        return ReportError(list.error());
      // Every process's parent, from /proc: a container's processes are its
      // init's descendants (host pids, as docker compose top prints them).
      std::map<pid_t, std::vector<pid_t>> children;
      if (auto pids = ListDirSorted("/proc"))
        for (const auto& d : *pids) {
          if (d.empty() || !std::isdigit(static_cast<unsigned char>(d[0])))
            continue;
          auto stat = ReadFile("/proc/" + d + "/stat", 4096);
          if (!stat)
            continue;
          size_t close = stat->rfind(')');
          if (close == std::string::npos)
            continue;
          int ppid = 0;
          char state = 0;
          if (std::sscanf(stat->c_str() + close + 1, " %c %d", &state, &ppid) == 2)
            children[ppid].push_back(std::atoi(d.c_str()));
        }
      std::string out;
      for (const auto& c : *list) {
        if (c.info.pid <= 0)
          continue;
        out += c.info.name + "\nUID    PID    PPID   CMD\n";
        std::vector<std::pair<pid_t, pid_t>> todo = {{c.info.pid, 0}};
        while (!todo.empty()) {
          auto [pid, parent] = todo.front();
          todo.erase(todo.begin());
          std::string cmdline;
          if (auto raw = ReadFile("/proc/" + std::to_string(pid) + "/cmdline", 4096)) {
            for (char ch : *raw)
              cmdline += ch == '\0' ? ' ' : ch;
            while (!cmdline.empty() && cmdline.back() == ' ')
              cmdline.pop_back();
          }
          struct stat st;
          std::string uid = ::stat(("/proc/" + std::to_string(pid)).c_str(), &st) == 0 ? std::to_string(st.st_uid) : "?";
          char line[64];
          std::snprintf(line, sizeof line, "%-6s %-6d %-6d ", uid.c_str(), static_cast<int>(pid), static_cast<int>(parent));
          out += line + cmdline + "\n";
          for (pid_t child : children[pid])
            todo.push_back({child, pid});
        }
        out += "\n";
      }
      std::fwrite(out.data(), 1, out.size(), stdout);
      return 0;
    });
  }

  // ------------------------------------------------------------------ rm / kill / port
  {
    auto* cmd = group->add_subcommand("rm", "remove the services' stopped containers");
    struct Flags {
      bool force = false, stop = false, volumes = false;
      std::vector<std::string> services;
    };
    auto m = std::make_shared<Flags>();
    cmd->add_flag("-f,--force", m->force, "do not ask (kiln never asks)");
    cmd->add_flag("-s,--stop", m->stop, "stop running containers first");
    cmd->add_flag("-v,--volumes", m->volumes, "remove their anonymous volumes (kiln always does)");
    cmd->add_option("services", m->services, "the services (default: all)");
    SetAction(cmd, ctx, [&ctx, f, m] {
      auto session = OpenSession(ctx, *f, m->services, {.warn = false});
      if (!session)
        return ReportError(session.error());
      const apply::Env& env = (*session)->env();
      if (m->stop)
        if (auto st = apply::Stop(env, (*session)->project(), m->services, -1); !st)
          return Fail(st.error());
      auto list = ServiceContainers(env.paths, (*session)->project(), m->services, true);
      if (!list)
        return ReportError(list.error());
      for (const auto& c : *list) {
        auto info = run::InspectContainer(env.paths, c.info.id);
        if (!info || info->status == "running")
          continue;
        if (auto st = run::RemoveContainer(env.paths, c.info.id, false); !st)
          return ReportError(st.error());
        env.progress("Container " + c.info.name + "  Removed");
      }
      return 0;
    });
  }
  {
    auto* cmd = group->add_subcommand("kill", "send a signal to the services' containers");
    auto signal = std::make_shared<std::string>("SIGKILL");
    auto services = std::make_shared<std::vector<std::string>>();
    cmd->add_option("-s,--signal", *signal, "the signal (default SIGKILL)");
    cmd->add_option("services", *services, "the services (default: all)");
    SetAction(cmd, ctx, [&ctx, f, signal, services] {
      auto loaded = LoadFor(*f, *services);
      if (!loaded)
        return ReportError(loaded.error());
      auto sig = run::ParseSignal(*signal);
      if (!sig)
        return ReportError(sig.error());
      auto list = ServiceContainers(RunPaths(ctx), loaded->project, *services, false);
      if (!list)
        return ReportError(list.error());
      for (const auto& c : *list)
        if (auto st = run::KillContainer(RunPaths(ctx), c.info.id, *sig); !st)
          return ReportError(st.error());
      return 0;
    });
  }
  {
    auto* cmd = group->add_subcommand("port", "print the host address a service's port is published on");
    auto args = std::make_shared<std::vector<std::string>>();
    auto protocol = std::make_shared<std::string>("tcp");
    cmd->add_option("--protocol", *protocol, "tcp or udp")->check(CLI::IsMember({"tcp", "udp"}));
    cmd->add_option("args", *args, "SERVICE PRIVATE_PORT")->expected(2);
    SetAction(cmd, ctx, [&ctx, f, args, protocol] {
      auto loaded = LoadFor(*f, {(*args)[0]});
      if (!loaded)
        return ReportError(loaded.error());
      auto list = ServiceContainers(RunPaths(ctx), loaded->project, {(*args)[0]}, false);
      if (!list)
        return ReportError(list.error());
      int want = std::atoi((*args)[1].c_str());
      for (const auto& c : *list)
        for (const auto& pm : c.info.port_mappings)
          if (pm.container_port == want && pm.udp == (*protocol == "udp")) {
            std::printf("%s:%u\n", pm.host_ip.empty() ? "0.0.0.0" : pm.host_ip.c_str(), static_cast<unsigned>(pm.host_port));
            return 0;
          }
      return ReportError(Error(Errc::kNotFound, "no port " + (*args)[1] + "/" + *protocol + " published for service " +
                                                    (*args)[0]));
    });
  }
}

}  // namespace kiln::cli
