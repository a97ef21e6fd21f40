// What `kiln build` hands to RunBuild(): every parsed flag, the parsed
// Containerfile, the context directory and the ignore patterns. Filled by
// cmd_build.cpp; RunBuild() (run_build.cpp) turns it into an
// engine::BuildJob.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli/cli.h"
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

/// --output type=oci|oci-archive|docker-archive|local|tar,dest=PATH
struct BuildOutput {
  std::string type;
  std::string dest;
  std::map<std::string, std::string> attrs;  // every key=value, type and dest included
};

struct BuildRequest {
  // Inputs.
  std::string context_dir;                    // absolute
  std::string containerfile_path;             // as resolved; "-" for stdin
  std::string containerfile_name;             // for messages ("Containerfile", "<stdin>")
  std::string containerfile_text;
  frontend::File containerfile;               // parsed
  std::string ignore_file;                    // resolved path, "" when none
  std::vector<std::string> ignore_patterns;   // ReadIgnoreFile() of it

  // Flags (docs/cli.md "kiln build").
  std::vector<std::string> tags;              // -t, as given
  std::map<std::string, std::string> build_args;  // --build-arg, K alone taken from the environment
  std::string target;                         // --target
  std::vector<Platform> platforms;            // --platform, default {host}
  Platform build_platform;                    // the host
  bool no_cache = false;                      // --no-cache
  bool layers = true;                         // --layers
  std::vector<std::string> no_cache_filter;   // --no-cache-filter STAGE (name or 0-based index)
  bool explain_cache = false;                 // --explain-cache
  bool secret_cache_key = false;              // --secret-cache-key
  std::string pull = "missing";               // --pull: missing|always|never|newer
  int jobs = 0;                               // --jobs, 0 = number of CPUs
  std::vector<std::pair<std::string, std::string>> labels;       // --label K=V
  std::vector<std::pair<std::string, std::string>> annotations;  // --annotation K=V
  std::vector<BuildSecret> secrets;           // --secret
  std::vector<BuildSsh> ssh;                  // --ssh
  std::string network = "private";            // --network: private|none|host
  bool allow_network_host = false;            // --allow network.host
  std::map<std::string, std::string> build_contexts;  // --build-context NAME=DIR|docker-image://REF
  std::map<std::string, std::vector<std::string>> build_context_ignores;  // a DIR context's ignore file
  std::vector<BuildOutput> outputs;           // --output
  std::string iidfile;                        // --iidfile
  std::string format = "oci";                 // --format: oci|docker
  std::string compression = "gzip";           // --compression: gzip|zstd
  bool squash = false;                        // --squash
  bool squash_all = false;                    // --squash-all
  // RUN steps' sandbox: --cap-add/--cap-drop, --ulimit, --add-host,
  // --shm-size, --device, --security-opt (checked by FillRequest).
  std::optional<uint64_t> capabilities;       // the bounding set; unset = Docker's default
  std::vector<SandboxSpec::Rlimit> ulimits;
  std::vector<std::pair<std::string, std::string>> add_hosts;  // (host, ip)
  std::string shm_size;                       // bytes, "" = default
  std::vector<std::string> devices;           // host device paths
  bool no_new_privileges = false;
  std::string run_key;                        // what of these goes into RUN steps' cache keys
  std::optional<int64_t> timestamp;           // --timestamp, else $SOURCE_DATE_EPOCH
  std::vector<std::string> cache_from;        // --cache-from
  std::string cache_to;                       // --cache-to
  bool tls_verify = true;                     // --tls-verify
  std::string authfile;                       // --authfile
  std::string cert_dir;                       // --cert-dir (registries and ADD URL)
  bool quiet = false;                         // -q
  std::string progress;                       // --progress: auto|plain|tty|json|quiet ("": $BUILDKIT_PROGRESS, auto)
  bool print_graph = false;                   // --print-graph

  /// The compile options for one platform (no resolver: set resolve_base
  /// to a store-backed one before compiling for real).
  frontend::CompileOptions CompileOptionsFor(const Platform& platform) const {
    frontend::CompileOptions o;
    o.build_args = build_args;
    o.target = target;
    o.target_platform = platform;
    o.build_platform = build_platform;
    o.build_contexts = build_contexts;
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

/// Runs the build. Returns the process exit status (docs/cli.md "Exit status
/// and errors"); prints errors itself via ReportError.
int RunBuild(const BuildRequest& request, Context& ctx);

}  // namespace kiln::cli
