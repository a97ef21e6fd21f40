// kiln attach [--no-stdin] [--sig-proxy=false] CONTAINER (docs/run.md): the
// output of a running detached container from now on, until it stops; exits
// with its exit code. Signals to kiln (Ctrl-C) go to the container unless
// --sig-proxy=false. stdin is not attached: a detached container's stdin is
// /dev/null.
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
  auto* cmd = app.add_subcommand("attach", "follow a running container's output until it stops (no stdin)");
  struct Flags {
    std::string name;
    bool no_stdin = false, sig_proxy = true;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_flag("--no-stdin", f->no_stdin, "do not attach stdin (kiln never does: accepted for podman)");
  cmd->add_option("--sig-proxy", f->sig_proxy, "pass the signals kiln gets to the container (default true)")
      ->default_str("true");
  cmd->add_option("container", f->name, "container name or ID")->required();
  SetAction(cmd, ctx, [&ctx, f] {
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
    run::LogOptions o;
    o.follow = true;
    o.tail = 0;
    if (auto st = run::WriteLogs(paths, *id, o, STDOUT_FILENO); !st)
      return ReportError(st.error());
    auto code = run::WaitContainer(paths, *id);
    if (!code)
      return ReportError(code.error());
    return *code;
  });
}

}  // namespace kiln::cli
