#include <cstdio>

#include "cli/cli.h"

namespace kiln::cli {

void AddVersionCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("version", "print kiln's version");
  SetAction(cmd, ctx, [] {
    std::printf("kiln version %s\n", KILN_VERSION);
    return 0;
  });
}

}  // namespace kiln::cli
