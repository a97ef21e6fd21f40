// kiln exec [-i] [-t] [-e K=V] [-u USER] [-w DIR] CONTAINER COMMAND [ARG...]:
// runs outside kiln's user namespace and joins the container's (setns).
#include <string>
#include <vector>

#include "cli/cli.h"
#include "kiln/run.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

void AddExecCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("exec", "run a command in a running container");
  auto o = std::make_shared<run::ExecOptions>();
  cmd->prefix_command();
  cmd->fallthrough(false);  // IMAGE/CONTAINER and the command are ours, not the parent's
  cmd->footer("CONTAINER COMMAND [ARG...] follow the flags. The exit status is the command's.");
  cmd->add_flag("-i,--interactive", o->interactive, "keep stdin open");
  cmd->add_flag("-t,--tty", o->tty, "allocate a pseudo-terminal");
  cmd->add_option("-e,--env", o->env, "set an environment variable (K=V, or K to copy ours)")
      ->allow_extra_args(false);
  cmd->add_option("-u,--user", o->user, "user[:group] to run as (default: the container's)");
  cmd->add_option("-w,--workdir", o->workdir, "working directory (default: the container's)");
  SetAction(cmd, ctx, [&ctx, cmd, o] {
    std::vector<std::string> rest = cmd->remaining();
    if (!rest.empty() && !rest[0].empty() && rest[0][0] == '-')
      return ReportError(Error(Errc::kInvalidInput, "exec: unknown flag " + rest[0]));
    if (rest.size() < 2)
      return ReportError(Error(Errc::kInvalidInput, "exec: usage: kiln exec [flags] CONTAINER COMMAND [ARG...]"));
    run::Paths paths = RunPaths(ctx);
    auto id = run::ResolveContainer(paths, rest[0]);
    if (!id)
      return ReportError(id.error());
    o->command.assign(rest.begin() + 1, rest.end());
    if (!o->command.empty() && o->command[0] == "--")
      o->command.erase(o->command.begin());
    auto status = run::Exec(paths, *id, *o);
    if (!status)
      return ReportError(status.error());
    return *status;
  });
}

}  // namespace kiln::cli
