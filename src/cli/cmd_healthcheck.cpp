// kiln healthcheck run CONTAINER: one probe of the container's health check
// now (podman's command; the monitor runs them on its own: docs/run.md
// "Health checks"). Exit 0 when it passed; "unhealthy" and exit 1 when not.
// Runs outside kiln's user namespace and joins the container, as exec.
#include <cstdio>
#include <string>

#include "cli/cli.h"
#include "cli/command.h"
#include "kiln/run.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

void AddHealthcheckCommand(CLI::App& app, Context& ctx) {
  auto* group = app.add_subcommand("healthcheck", "run a container's health check by hand");
  group->require_subcommand(1);
  auto* cmd = group->add_subcommand("run", "run the container's health check once: exit 0 healthy, 1 unhealthy");
  auto name = std::make_shared<std::string>();
  cmd->add_option("container", *name, "container name or ID")->required();
  SetCommand(cmd, ctx, [&ctx, name]() -> Expected<int> {
    run::Paths paths = RunPaths(ctx);
    KILN_ASSIGN_OR_RETURN(std::string id, run::ResolveContainer(paths, *name));
    KILN_ASSIGN_OR_RETURN(bool healthy, run::RunHealthcheck(paths, id));
    if (healthy)
      return 0;
    std::printf("unhealthy\n");
    return 1;
  });
}

}  // namespace kiln::cli
