// kiln: the command-line entry point. Parses global flags, dispatches to the
// command table (cli.h) and maps errors to exit codes (docs/cli.md).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli/commands.h"
#include "cli/compose_flags.h"
#include "kiln/cancel.h"
#include "kiln/deferred.h"
#include "kiln/isolation.h"
#include "kiln/log.h"
#include "kiln/network.h"
#include "kiln/sandbox.h"

namespace kiln::cli {

std::string Context::StoreRoot() const {
  if (!globals.root.empty())
    return globals.root;
  if (const char* env = std::getenv("KILN_ROOT"); env && *env)
    return env;
  // Real root (also inside kiln's user namespace, where the marker is "0").
  if (const char* host_uid = std::getenv(kUserNsMarkerEnv);
      ::geteuid() == 0 && (!host_uid || std::string(host_uid) == "0"))
    return "/var/lib/kiln";
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg)
    return std::string(xdg) + "/kiln";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.local/share/kiln";
}

std::string Context::RunRoot() const {
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg && ::access(xdg, W_OK) == 0)
    return std::string(xdg) + "/kiln";
  return StoreRoot() + "/run";
}

namespace {
ExitRules g_exit_rules;
}  // namespace

void SetExitRules(const ExitRules& rules) { g_exit_rules = rules; }

// cmd_kube.cpp: kube generate, generate kube|systemd (declared here, not in
// cli.h, until cli.h changes for another reason: it rebuilds every command).
void AddKubeCommands(CLI::App& app, Context& ctx);

int ReportError(const Error& error) {
  // Whatever failed after SIGINT/SIGTERM failed because of it: one line
  // saying so, exit 128+signal.
  if (kiln::Cancelled())
    return kiln::ReportCancelled();
  std::string line = "kiln: error: " + error.message() + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
  if (error.code() == Errc::kNotFound)
    return g_exit_rules.not_found;
  return ExitCodeFor(error.code());
}

namespace {

// The commands that stop at a safe point on SIGINT/SIGTERM (kiln/cancel.h).
// The others keep the default action (they hold nothing that needs
// cleaning up, or, as `logs -f`, never reach a safe point); `run` and `exec`
// pass the signals on to the container once it runs (docs/run.md).
bool Cancellable(const std::string& command) {
  for (const char* c : {"build", "pull", "push", "load", "save", "import", "prune", "rmi", "run", "create"})
    if (command == c)
      return true;
  return false;
}

// kiln's user namespace (docs/sandbox.md), or, for `build` where user
// namespaces are unavailable or with --isolation chroot, none (docs/ci.md):
// chroot isolation, with a one-line notice when it was not asked for.
// `info` goes on without one and says why (cmd_info.cpp).
Status EnterUserNamespaceOrChroot(int argc, char** argv, int join_userns_fd) {
  std::string command = CanonicalCommand(argc, argv);
  std::string requested = command == "build" ? kiln::RequestedIsolation(argc, argv) : "";
  if (requested == "chroot") {
    kiln::SetChrootIsolation("requested");
    return Ok();
  }
  Status st = kiln::EnterUserNamespace(argc, argv, join_userns_fd);
  if (st || (command != "build" && command != "info"))
    return st;
  kiln::UserNamespaceSupport probe = kiln::ProbeUserNamespaces();
  if (probe.available)
    return st;
  if (!requested.empty() && kiln::ParseIsolation(requested))
    return Error(Errc::kUnsupported, "--isolation " + requested + " needs user namespaces, which are unavailable here (" +
                                         probe.reason + "); use --isolation chroot (docs/ci.md)");
  kiln::SetChrootIsolation(probe.reason);
  // When chroot cannot build here either, cmd_build.cpp's error says both (one line).
  if (command == "build" && requested.empty() && kiln::ChrootUnavailableReason().empty())
    std::fprintf(stderr, "kiln: notice: user namespaces are unavailable (%s): building with --isolation chroot (docs/ci.md)\n",
                 probe.reason.c_str());
  return Ok();
}

void AddAllCommands(CLI::App& app, Context& ctx) {
  AddBuildCommand(app, ctx);
  AddParseCommand(app, ctx);
  AddVersionCommand(app, ctx);
  AddImagesCommand(app, ctx);
  AddTagCommand(app, ctx);
  AddRmiCommand(app, ctx);
  AddInspectCommand(app, ctx);
  AddHistoryCommand(app, ctx);
  AddSaveCommand(app, ctx);
  AddLoadCommand(app, ctx);
  AddImportCommand(app, ctx);
  AddPushCommand(app, ctx);
  AddPullCommand(app, ctx);
  AddManifestCommand(app, ctx);
  AddPruneCommand(app, ctx);
  AddLoginCommand(app, ctx);
  AddLogoutCommand(app, ctx);
  AddSigstoreKeyCommand(app, ctx);
  AddUnshareCommand(app, ctx);
  AddInfoCommand(app, ctx);
  AddRunCommand(app, ctx);
  AddCreateCommand(app, ctx);
  AddPortCommand(app, ctx);
  AddPsCommand(app, ctx);
  AddLogsCommand(app, ctx);
  AddExecCommand(app, ctx);
  AddRestartCommand(app, ctx);
  AddRenameCommand(app, ctx);
  AddTopCommand(app, ctx);
  AddAttachCommand(app, ctx);
  AddHealthcheckCommand(app, ctx);
  AddEventsCommand(app, ctx);
  AddContainerCommands(app, ctx);
  AddVolumeCommand(app, ctx);
  AddSecretCommand(app, ctx);
  AddFarmCommand(app, ctx);
  AddNetworkCommand(app, ctx);
  AddComposeCommand(app, ctx);
  AddPodCommand(app, ctx);
  AddKubeCommands(app, ctx);
  AddCommandGroups(app, ctx);
  AddDocsCommand(app, ctx);
}

}  // namespace

}  // namespace kiln::cli

int main(int argc, char** argv) {
  using namespace kiln::cli;
  // Before anything else (no threads yet): commands that unpack or sandbox
  // re-exec into kiln's user namespace (src/sandbox, docs/sandbox.md).
  // SIGINT/SIGTERM wait (blocked) until the handlers are in place: one that
  // comes while the user-namespace child starts is still a cancellation,
  // with its message, not a silent death.
  sigset_t cancel_signals;
  sigset_t old_mask;
  sigemptyset(&cancel_signals);
  sigaddset(&cancel_signals, SIGINT);
  sigaddset(&cancel_signals, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &cancel_signals, &old_mask);
  // Containers on networks share the network holder's user namespace
  // (docs/network.md); `holder` keeps its reference for the whole command.
  kiln::network::HolderHandle holder;
  if (NeedsUserNamespace(argc, argv)) {
    auto prepared = PrepareNetworkHolder(argc, argv);
    if (!prepared)
      return ReportError(prepared.error());
    holder = std::move(*prepared);
    if (auto st = EnterUserNamespaceOrChroot(argc, argv, holder.userns ? holder.userns.get() : -1); !st)
      return ReportError(st.error());
    holder.userns.reset();
  }
  // Still the only thread: the handlers are in place before any worker.
  if (std::string command = CanonicalCommand(argc, argv);
      Cancellable(command) || (command == "compose" && ComposeNeedsUserNamespace(argc, argv)))
    kiln::InstallCancelHandlers(command);
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  Context ctx;
  CLI::App app{"kiln: a rootless OCI image builder and container runner", "kiln"};
  app.formatter(std::make_shared<KilnFormatter>());
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("-v,--version", std::string("kiln version ") + KILN_VERSION, "print kiln's version");
  app.set_help_all_flag("--help-all", "show help for every command");
  app.add_option("--root", ctx.globals.root, "store directory (default $KILN_ROOT, ~/.local/share/kiln)");
  app.add_option("--log-level", ctx.globals.log_level, "error|warn|info|debug")
      ->check(CLI::IsMember({"error", "warn", "warning", "info", "debug"}));
  app.parse_complete_callback([&ctx] {
    kiln::LogLevel level;
    if (!ctx.globals.log_level.empty() && kiln::ParseLogLevel(ctx.globals.log_level, &level))
      kiln::SetLogLevel(level);
  });

  if (!AddInvokedCommandOnly(app, ctx, argc, argv))
    AddAllCommands(app, ctx);

  if (int rc = CheckCommandLine(app, argc, argv); rc >= 0)
    return rc;

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Usage errors: one line naming the flag (podman's wording), exit 2 (docs/cli.md).
    return ReportParseError(app, e, argc, argv);
  }
  // Cancelled: a command that still finished its work exits 0; one that
  // stopped says so once and exits 128+signal (130 for SIGINT, 143 for SIGTERM).
  int code = ctx.exit_code != 0 && kiln::Cancelled() ? kiln::ReportCancelled() : ctx.exit_code;
  // Work left for after the answer (run --rm's removal): the caller has the
  // status first (kiln/deferred.h).
  return kiln::FinishDeferredWork(code);
}
