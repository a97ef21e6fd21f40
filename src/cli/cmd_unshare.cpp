// kiln unshare [COMMAND...]: a shell or COMMAND inside kiln's user namespace
// (as `buildah unshare`). main() has already re-executed kiln into the
// namespace (NeedsUserNamespace below), so this only execs.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/compose_flags.h"
#include "kiln/sandbox.h"

namespace kiln::cli {

/// `kube play|down`, `play kube` (cmd_kube.cpp): they run and remove
/// containers (kiln's user namespace); play, not --down, starts them on a
/// container network (the holder).
bool KubeNeedsUserNamespace(int argc, char** argv);
bool KubeStartsContainers(int argc, char** argv);

bool NeedsUserNamespace(int argc, char** argv) {
  // The commands that unpack layers, mount rootfs or run sandboxes.
  // `pull` unpacks layers while it downloads (registry/transfer.cpp), and
  // `prune`/`rmi` remove layer directories owned by subordinate ids.
  // Not `exec`: it joins the container's own user namespace with setns,
  // which works only from the parent namespace (src/run/exec.cpp).
  static const std::set<std::string> kCommands = {"build", "run", "create", "start", "restart", "rm", "volume", "network", "pull",
                                                  "prune", "rmi",
                                                  "container", "pod", "__monitor", "__network-holder", "unshare", "info", "mount",
                                                  "__sandbox-test"};
  // Through the group aliases: `image build` is build, `container exec` is
  // exec (not `container`), `system prune` is prune (commands.cpp).
  std::string command = CanonicalCommand(argc, argv);
  if (command == "compose")  // all but exec, config, ps, logs, port (cmd_compose_run.cpp)
    return ComposeNeedsUserNamespace(argc, argv);
  if (command == "kube" || command == "play")  // play and down, not generate (cmd_kube.cpp)
    return KubeNeedsUserNamespace(argc, argv);
  return kCommands.count(command) != 0;
}

void AddUnshareCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("unshare", "run a shell or COMMAND inside kiln's user namespace (as buildah unshare)");
  cmd->prefix_command();
  cmd->allow_extras();
  cmd->fallthrough(false);  // COMMAND and its arguments are ours, not the parent's
  cmd->footer("Runs COMMAND [ARG...] (default: $SHELL, else /bin/sh) as root of the user namespace kiln uses "
              "for builds, with the same uid/gid mappings and a private mount namespace.");
  SetAction(cmd, ctx, [cmd] {
    std::vector<std::string> args = cmd->remaining();
    if (!args.empty() && args[0] == "--")
      args.erase(args.begin());
    if (args.empty()) {
      const char* shell = std::getenv("SHELL");
      args.push_back(shell && *shell ? shell : "/bin/sh");
    }
    if (!InKilnUserNamespace())
      return ReportError(Error(Errc::kSandbox, "unshare: not inside kiln's user namespace"));
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    int err = errno;
    ReportError(Error(Errc::kFailed, "unshare: exec " + args[0] + ": " + std::strerror(err)));
    return err == ENOENT ? 127 : 126;
  });
}

}  // namespace kiln::cli
