// kiln attach [--no-stdin] [--detach-keys KEYS] [--sig-proxy=false] CONTAINER
// (docs/run.md): the output of a running detached container from now on,
// until it stops; exits with its exit code. stdin goes to a container
// created with -i (src/run/attach.cpp); the detach keys leave it running (exit
// 0). Signals to kiln (Ctrl-C) go to the container unless --sig-proxy=false.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <thread>

#include "cli/commands.h"
#include "kiln/run.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

void AddAttachCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "attach", "attach to a running container: its output until it stops, stdin to a container created with -i");
  struct Flags {
    std::string name;
    std::string detach_keys = "ctrl-p,ctrl-q";
    bool no_stdin = false, sig_proxy = true;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("--detach-keys", f->detach_keys,
                  "keys that detach, leaving the container running (default ctrl-p,ctrl-q; \"\" disables)");
  cmd->add_flag("--no-stdin", f->no_stdin, "do not attach stdin (the container's stdin stays open)");
  cmd->add_option("--sig-proxy", f->sig_proxy, "pass the signals kiln gets to the container (default true)")
      ->default_str("true");
  cmd->add_option("container", f->name, "container name or ID")->required();
  SetAction(cmd, ctx, [&ctx, f] {
    auto keys = run::ParseDetachKeys(f->detach_keys);
    if (!keys)
      return ReportError(keys.error());
    run::Paths paths = RunPaths(ctx);
    auto id = run::ResolveContainer(paths, f->name);
    if (!id)
      return ReportError(id.error());
    auto info = run::InspectContainer(paths, *id);
    if (!info)
      return ReportError(info.error());
    if (info->status != "running" && info->status != "restarting") {
      (void)ReportError(Error(Errc::kFailed, "you can only attach to running containers: " + f->name + " is " +
                                                 info->status));
      return 125;  // podman's
    }
    if (f->sig_proxy) {
      // A thread takes SIGINT/SIGTERM/SIGHUP/SIGQUIT and passes each on.
      sigset_t set;
      sigemptyset(&set);
      for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT})
        sigaddset(&set, s);
      pthread_sigmask(SIG_BLOCK, &set, nullptr);
      std::thread([paths, cid = *id, set] {
        for (;;) {
          int sig = 0;
          if (sigwait(&set, &sig) == 0)
            (void)run::KillContainer(paths, cid, sig);
        }
      }).detach();
    }
    run::AttachOptions o;
    o.stdin = !f->no_stdin;
    o.detach_keys = *keys;
    auto code = run::Attach(paths, *id, o, STDIN_FILENO, STDOUT_FILENO);
    if (!code)
      return ReportError(code.error());
    return *code < 0 ? 0 : *code;  // detached: the container runs on
  });
}

}  // namespace kiln::cli
