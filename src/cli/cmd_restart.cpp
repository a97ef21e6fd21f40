// kiln restart [-t N] CONTAINER...: stop (as kiln stop), then start again
// detached (docs/run.md "Restart policies").
#include <cstdio>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/command.h"
#include "kiln/run.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

void AddRestartCommand(CLI::App& app, Context& ctx) {
  auto restart = AddNamesCommand(app, "restart", "stop containers (as kiln stop) and start them again", "containers",
                                 "container names or IDs");
  auto timeout = std::make_shared<int>(10);
  restart.cmd->add_option("-t,--time", *timeout, "seconds to wait before SIGKILL (default 10)");
  SetAction(restart.cmd, ctx, [&ctx, names = restart.names, timeout] {
    run::Paths paths = RunPaths(ctx);
    int rc = 0;
    for (const auto& n : *names) {
      auto id = run::ResolveContainer(paths, n);
      Status st = id ? run::RestartContainer(paths, *id, *timeout) : Status(id.error());
      if (!st) {
        rc = ReportError(st.error());
        continue;
      }
      std::printf("%s\n", n.c_str());
    }
    return rc;
  });
}

}  // namespace kiln::cli
