// What the `kiln compose` commands of cmd_compose_run.cpp share: loading the
// project (compose_session.cpp: profiles, a project known by its labels),
// the apply environment with kiln build's engine job as the build hook, the
// project's containers, and the prefixed logs (compose_logs.cpp).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/compose_flags.h"
#include "kiln/apply.h"
#include "kiln/compose.h"
#include "kiln/run.h"
#include "kiln/store.h"

namespace kiln::cli::compose_cmd {

/// The project, with the profiles of the services named on the command line
/// enabled (docker compose: naming a service with a profile enables it).
Expected<compose::LoadResult> LoadFor(const ComposeFlags& flags, const std::vector<std::string>& services);

/// LoadFor(), or for `-p NAME` where no compose file is (down, ps, logs):
/// an empty project of that name, its objects found by their labels.
Expected<compose::LoadResult> LoadOrLabels(const ComposeFlags& flags, const std::vector<std::string>& services);

/// The apply environment of a command: the store, the paths, the build hook
/// (kiln build's engine job) and docker compose's progress lines on stderr.
struct ApplyEnv {
  std::optional<Store> store;
  apply::Env env;
};

/// ReportError, or the cancelled message when the command was interrupted.
int Fail(const Error& e);

/// A command's project (LoadFor: the named services' profiles enabled) and
/// its apply environment; the translator's warnings printed.
struct Session {
  compose::LoadResult loaded;
  std::unique_ptr<ApplyEnv> apply;
  const deployment::Project& project() const { return loaded.project; }
  apply::Env& env() { return apply->env; }
};
struct SessionOptions {
  bool quiet = false;         // no progress lines
  bool no_cache = false, pull = false;  // for builds
  bool all_profiles = false;  // every service (down, ps)
  bool warn = true;
  bool no_file_ok = false;    // -p NAME without a file: the project by its labels (down, ps, logs)
};
Expected<std::unique_ptr<Session>> OpenSession(Context& ctx, const ComposeFlags& flags,
                                               const std::vector<std::string>& services, const SessionOptions& o);

/// The containers of `services` (all when empty); one-off ones only with oneoff.
Expected<std::vector<apply::ProjectContainer>> ServiceContainers(const run::Paths& paths,
                                                                 const deployment::Project& project,
                                                                 const std::vector<std::string>& services, bool all,
                                                                 bool oneoff = false);

/// docker compose's STATUS column: "Up (healthy)", "Exited (0)".
std::string StatusText(const run::ContainerInfo& c);

std::string Join(const std::vector<std::string>& v, const std::string& sep);

/// Writes the logs of `containers` to stdout, each line prefixed with the
/// container's name padded to the longest ("web-1  | "), colored on a tty.
/// With follow, until every container stops; `on_cancel` runs once when
/// SIGINT/SIGTERM arrives (up stops the project there), and the logs are
/// drained to the end afterwards; `up` (on_cancel set) says when a container
/// has exited ("app-web-1 exited with code 0"), as docker compose does.
void PrintLogs(const run::Paths& paths, const std::vector<apply::ProjectContainer>& containers,
               const run::LogOptions& options, bool prefix, const std::function<void()>& on_cancel);

}  // namespace kiln::cli::compose_cmd
