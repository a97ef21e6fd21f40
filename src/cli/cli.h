// The command table. Each command lives in its own cmd_<name>.cpp and
// registers itself with CLI11 through an Add<Name>Command function listed in
// main.cpp. A command's callback returns the process exit status.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "kiln/error.h"

namespace kiln::network {
struct HolderHandle;
}

namespace kiln::cli {

/// Global options, filled in before a command's callback runs.
struct Globals {
  std::string root;       // --root, else $KILN_ROOT, else the default store
  std::string log_level;  // --log-level
};

/// Where a command stores the exit status it wants main() to return.
struct Context {
  Globals globals;
  int exit_code = 0;
  /// Resolved store directory (--root, $KILN_ROOT, XDG default; docs/cli.md
  /// "Store and run-time directories").
  std::string StoreRoot() const;
  /// Run-time state directory: $XDG_RUNTIME_DIR/kiln, else <store>/run.
  std::string RunRoot() const;
};

/// How the errors of a command become exit codes where the command differs
/// from kiln's table (ExitCodeFor; docs/cli.md "Exit status"). Declared
/// with the command, as SetAction's last argument.
struct ExitRules {
  /// An error with Errc::kNotFound: podman exits 125 when the container,
  /// image, volume or network named does not exist ("no container with name
  /// or ID ... found").
  int not_found = 125;
};
/// podman's rm and rmi ("one of the specified ... did not exist"), and a
/// build or parse whose file or base is missing: kiln's plain failure, 1.
inline constexpr ExitRules kNotFoundFails{1};

/// Prints "kiln: error: <message>" and returns the exit code for the error
/// under the running command's ExitRules.
int ReportError(const Error& error);

/// Asks "<warning>\nAre you sure you want to continue? [y/N] " when stdin is
/// a terminal and returns whether the answer was yes; true without asking
/// otherwise (scripts pass -f anyway; docs/cli.md "Confirmation").
bool Confirm(const std::string& warning);

/// Makes `rules` the ones ReportError applies (SetAction does, before the
/// command's body runs).
void SetExitRules(const ExitRules& rules);

/// Wraps a command body so that its result lands in ctx.exit_code, and its
/// errors follow `rules`.
inline void SetAction(CLI::App* cmd, Context& ctx, std::function<int()> body, ExitRules rules = {}) {
  cmd->callback([&ctx, rules, body = std::move(body)] {
    SetExitRules(rules);
    ctx.exit_code = body();
  });
}

void AddBuildCommand(CLI::App& app, Context& ctx);
void AddParseCommand(CLI::App& app, Context& ctx);
void AddVersionCommand(CLI::App& app, Context& ctx);
void AddImagesCommand(CLI::App& app, Context& ctx);
void AddTagCommand(CLI::App& app, Context& ctx);
void AddRmiCommand(CLI::App& app, Context& ctx);
void AddInspectCommand(CLI::App& app, Context& ctx);
void AddHistoryCommand(CLI::App& app, Context& ctx);
void AddSaveCommand(CLI::App& app, Context& ctx);
void AddLoadCommand(CLI::App& app, Context& ctx);
void AddImportCommand(CLI::App& app, Context& ctx);
void AddPushCommand(CLI::App& app, Context& ctx);
void AddPullCommand(CLI::App& app, Context& ctx);
void AddPruneCommand(CLI::App& app, Context& ctx);
void AddLoginCommand(CLI::App& app, Context& ctx);
void AddLogoutCommand(CLI::App& app, Context& ctx);
void AddSigstoreKeyCommand(CLI::App& app, Context& ctx);
void AddUnshareCommand(CLI::App& app, Context& ctx);
void AddInfoCommand(CLI::App& app, Context& ctx);
void AddRunCommand(CLI::App& app, Context& ctx);
void AddCreateCommand(CLI::App& app, Context& ctx);
void AddPortCommand(CLI::App& app, Context& ctx);
void AddPsCommand(CLI::App& app, Context& ctx);
void AddLogsCommand(CLI::App& app, Context& ctx);
void AddExecCommand(CLI::App& app, Context& ctx);
void AddRestartCommand(CLI::App& app, Context& ctx);
void AddHealthcheckCommand(CLI::App& app, Context& ctx);
void AddEventsCommand(CLI::App& app, Context& ctx);
void AddContainerCommands(CLI::App& app, Context& ctx);
void AddVolumeCommand(CLI::App& app, Context& ctx);
void AddSecretCommand(CLI::App& app, Context& ctx);
void AddFarmCommand(CLI::App& app, Context& ctx);
void AddNetworkCommand(CLI::App& app, Context& ctx);
void AddComposeCommand(CLI::App& app, Context& ctx);
void AddPodCommand(CLI::App& app, Context& ctx);
void AddManifestCommand(CLI::App& app, Context& ctx);
/// `kiln inspect --type container NAME...` (cmd_container.cpp): prints the
/// JSON array, returns the exit status.
int InspectContainersCommand(Context& ctx, const std::vector<std::string>& names, const std::string& format);
/// One container's `inspect` object (podman's field names).
Expected<nlohmann::json> InspectContainerJson(Context& ctx, const std::string& name);
/// True for the commands that must run inside kiln's user namespace (main()
/// calls EnterUserNamespace for them before parsing).
bool NeedsUserNamespace(int argc, char** argv);
/// For those commands, before EnterUserNamespace (cmd_network.cpp): the
/// network holder's user namespace to join, started first for `run`/`create`
/// with --network NAME (network::PrepareHolder).
Expected<network::HolderHandle> PrepareNetworkHolder(int argc, char** argv);
/// A --network value that names a kiln network (not none|host|private|
/// slirp4netns|pasta|bridge|default|container:..|ns:..).
bool NamesNetwork(const std::string& value);

}  // namespace kiln::cli
