// What `kiln build` (and compose build) hands to RunBuild(): the parsed
// Containerfile and the engine job the flags were parsed into, plus the few
// flags RunBuild() resolves itself. Filled by cmd_build.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli/cli.h"
#include "engine/build_job.h"
#include "kiln/containerfile.h"
#include "kiln/graph.h"
#include "kiln/oci.h"
#include "kiln/sandbox.h"

namespace kiln::cli {

/// --secret id=ID,src=FILE | id=ID,env=VAR (src= also spelled source=).
struct BuildSecret {
  std::string id;
  std::string src;  // file path, "" when env is used
  std::string env;  // environment variable name, "" when src is used
};

/// --ssh default | ID=SOCKET[,SOCKET...] ("default" alone uses $SSH_AUTH_SOCK).
struct BuildSsh {
  std::string id;
  std::vector<std::string> paths;
};

struct BuildRequest {
  // The Containerfile.
  std::string containerfile_name;             // for messages ("Containerfile", "<stdin>")
  std::string containerfile_text;
  frontend::File containerfile;               // parsed

  /// The engine's job (engine/build_job.h). Flags that need no checking are
  /// bound straight to its fields by AddBuildCommand; the others are checked
  /// into it by cmd_build.cpp. A new build flag is one field there (or here,
  /// for what the CLI resolves) plus its line in AddBuildCommand -- nothing
  /// copies flags from one struct to another. RunBuild() adds what needs the
  /// store (networks, secrets) and the registry hooks.
  engine::BuildJob job;

  // What RunBuild() resolves, and the CLI's own flags (docs/cli.md "kiln build").
  std::vector<std::string> tags;              // -t, as given (RunBuild: full references)
  std::vector<BuildSecret> secrets;           // --secret (RunBuild reads them)
  std::vector<BuildSsh> ssh;                  // --ssh
  std::string network = "private";            // --network: private|none|host|NAME
  bool network_given = false;                 // --network was given (chroot isolation's default is host)
  std::string isolation;                      // --isolation: oci|rootless|chroot ("": $KILN_ISOLATION, $BUILDAH_ISOLATION)
  std::string iidfile;                        // --iidfile
  std::string manifest;                       // --manifest: the manifest list the image joins
  bool quiet = false;                         // -q
  std::string progress;                       // --progress: auto|plain|tty|json|quiet ("": $BUILDKIT_PROGRESS, auto)
  bool print_graph = false;                   // --print-graph
  bool all_platforms = false;                 // --all-platforms: RunBuild sets job.platforms

  /// The compile options for one platform (no resolver: the engine sets a
  /// store-backed one when it compiles for real).
  frontend::CompileOptions CompileOptionsFor(const Platform& platform) const {
    frontend::CompileOptions o = job.compile;
    o.target_platform = platform;
    return o;
  }
};

/// Reads the values of --secret (file or environment variable; `id=NAME`
/// alone: a file of that name, else the variable, else the secret NAME kept
/// by `kiln secret create` in the store at `store_root`) into `secrets`
/// (id -> value) and resolves --ssh agent sockets into `ssh` (id -> absolute
/// socket path; "default" alone is $SSH_AUTH_SOCK). kInvalidInput naming the
/// flag when a file, variable or socket is missing.
Status ResolveBuildSecrets(const BuildRequest& request, const std::string& store_root,
                           std::map<std::string, std::string>* secrets, std::map<std::string, std::string>* ssh);

/// Runs the build (completing request.job). Returns the process exit status (docs/cli.md "Exit status
/// and errors"); prints errors itself via ReportError.
int RunBuild(BuildRequest& request, Context& ctx);

}  // namespace kiln::cli
