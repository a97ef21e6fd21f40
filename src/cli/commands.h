// The command table around the commands (commands.cpp, gen_docs.cpp): help
// formatting, podman's groups and aliases, usage-error messages, and the
// generator of man pages and shell completion.
#pragma once

#include <string>

#include "cli/cli.h"

namespace kiln::cli {

/// --help with usage lines that name the positionals (from the command
/// table in commands.cpp) and an Examples section. Set on the root app before
/// the commands are added (subcommands copy their parent's formatter).
class KilnFormatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App* app, std::string name) const override;
  std::string make_footer(const CLI::App* app) const override;
};
/// podman's groups and aliases: `image ls|rm|pull|...`, `container ls|run|
/// logs|exec`, `system info|prune`, `buildx build` (commands.cpp). Called
/// after every Add*Command.
void AddCommandGroups(CLI::App& app, Context& ctx);
/// Registers only the command the command line invokes when it names one of
/// the single commands podman's groups re-register (run, create, exec, ps,
/// build, ...; `__monitor` with run) as its first word: building all ~150
/// commands' flags costs ~20 M instructions (~5 ms) per kiln process, more
/// than the rest of `run --rm IMG true`'s own code. Returns false (nothing
/// added) for anything else: a group, help, an unknown word, no command.
bool AddInvokedCommandOnly(CLI::App& app, Context& ctx, int argc, char** argv);
/// Checks the command words (and flags before them) before CLI11 parses:
/// an unknown command gets podman's "unrecognized command" with the closest
/// match, a podman command kiln lacks says so, a bare group prints its help.
/// Returns the exit status to end with, or -1 to go on parsing.
int CheckCommandLine(CLI::App& app, int argc, char** argv);
/// Prints a CLI11 parse error as one clear line (podman's wording: "unknown
/// flag: --x", "flag needs an argument: --tail") and returns 2.
int ReportParseError(CLI::App& app, const CLI::ParseError& e, int argc, char** argv);
/// The command a command line runs, through the group aliases (`image rm`
/// -> "rmi", `buildx build` -> "build"); else the first command word.
std::string CanonicalCommand(int argc, char** argv);
/// kiln rename, top, attach (cmd_rename.cpp, cmd_top.cpp, cmd_attach.cpp).
void AddRenameCommand(CLI::App& app, Context& ctx);
void AddTopCommand(CLI::App& app, Context& ctx);
void AddAttachCommand(CLI::App& app, Context& ctx);
/// Hidden `kiln __docs man DIR|bash|zsh|fish|commands` (gen_docs.cpp): man
/// pages and shell completion from the command table, at build time.
void AddDocsCommand(CLI::App& app, Context& ctx);
/// "kiln run [OPTIONS] IMAGE [COMMAND [ARG...]]" and the examples of a command.
std::string CommandUsage(const CLI::App* app);
std::string CommandExamples(const CLI::App* app);

}  // namespace kiln::cli
