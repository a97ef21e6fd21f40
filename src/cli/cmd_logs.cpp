// kiln logs [-f] [--tail N] CONTAINER: the output of a detached container.
#include <string>

#include "cli/cli.h"
#include "kiln/run.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

void AddLogsCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("logs", "print the stdout/stderr of a detached container");
  auto follow = std::make_shared<bool>(false);
  auto tail = std::make_shared<int64_t>(-1);
  auto name = std::make_shared<std::string>();
  cmd->add_flag("-f,--follow", *follow, "keep printing new output until the container stops");
  cmd->add_option("--tail", *tail, "print only the last N lines");
  cmd->add_option("container", *name, "container name or ID")->required();
  SetAction(cmd, ctx, [&ctx, follow, tail, name] {
    run::Paths paths = RunPaths(ctx);
    auto id = run::ResolveContainer(paths, *name);
    if (!id)
      return ReportError(id.error());
    if (auto st = run::WriteLogs(paths, *id, *follow, *tail, 1); !st)
      return ReportError(st.error());
    return 0;
  });
}

}  // namespace kiln::cli
