// What the `kiln compose` subcommands share (cmd_compose.cpp: the group's
// flags and config; cmd_compose_run.cpp: up, down, ps, logs, exec, run...).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "kiln/compose.h"

namespace kiln::cli {

/// The group's flags: kiln compose [-f FILE]... [-p NAME] [--profile P]...
struct ComposeFlags {
  std::vector<std::string> files;
  std::string project_name;
  std::string project_directory;
  std::vector<std::string> profiles;
  std::vector<std::string> env_files;
};

/// Loads the project the flags name (warnings not printed).
Expected<compose::LoadResult> LoadProject(const ComposeFlags& flags);

/// Registers up, down, ps, logs, exec, run, start, stop, restart, build,
/// pull, rm, kill, create, port under `group`.
void AddComposeRunCommands(CLI::App* group, Context& ctx, const std::shared_ptr<ComposeFlags>& flags);

/// The compose subcommand on the command line ("" when none): main() asks
/// which need kiln's user namespace and the network holder.
std::string ComposeSubcommand(int argc, char** argv);
/// Every compose subcommand but exec (setns from the parent namespace),
/// config, ps, logs and port runs in kiln's user namespace.
bool ComposeNeedsUserNamespace(int argc, char** argv);
/// up, run, start, restart, create: containers join the project's networks.
bool ComposeStartsContainers(int argc, char** argv);

}  // namespace kiln::cli
