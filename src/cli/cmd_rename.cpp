// kiln rename CONTAINER NEW_NAME (docs/run.md): podman's rename.
#include <string>

#include "cli/commands.h"
#include "kiln/run.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

void AddRenameCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("rename", "give a container a new name");
  auto args = std::make_shared<std::vector<std::string>>();
  cmd->add_option("names", *args, "CONTAINER (name or ID) and its NEW_NAME")->required()->expected(2);
  SetAction(cmd, ctx, [&ctx, args] {
    run::Paths paths = RunPaths(ctx);
    auto id = run::ResolveContainer(paths, (*args)[0]);
    if (!id)
      return ReportError(id.error());
    if (auto st = run::RenameContainer(paths, *id, (*args)[1]); !st)
      return ReportError(st.error());
    return 0;
  });
}

}  // namespace kiln::cli
