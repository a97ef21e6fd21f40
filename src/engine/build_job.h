// RunBuildJob(): one `kiln build` from the parsed Containerfile to the named
// image and its outputs -- the base-image resolver (image::Acquire with the
// pull policy), the compile (once per target platform), the runnability
// check, the remote cache, the multi-platform orchestration (one thread per
// platform after the shared stages, then the index) and the output writers.
// The CLI parses flags into a BuildJob, calls this and prints the result.
#pragma once

#include <string>
#include <vector>

#include "engine/build.h"
#include "engine/progress.h"
#include "kiln/acquire.h"
#include "kiln/containerfile.h"
#include "kiln/error.h"
#include "kiln/store.h"
#include "kiln/transport.h"

namespace kiln::engine {

/// --output type=oci|oci-archive|docker-archive|local|tar,dest=PATH
struct OutputSpec {
  std::string type;
  std::string dest;
};

/// --sbom, --sbom-output, --provenance (docs/supply-chain.md "SBOM and
/// provenance"): made after the build from the image itself.
struct AttestOptions {
  bool sbom = false;                     ///< attach an SPDX 2.3 SBOM
  std::string sbom_output;               ///< also write the SPDX document here ("": no)
  std::string provenance;                ///< "" (none), "min" or "max": attach SLSA v1 provenance
  std::string containerfile_name;        ///< as the provenance names it
  std::string containerfile_text;
  std::string tool_version;              ///< kiln's version
  std::vector<std::string> secret_ids;   ///< --secret ids (provenance max; never values)
  std::vector<std::string> ssh_ids;      ///< --ssh ids (provenance max)
  std::string network;                   ///< --network (provenance max)
  bool any() const { return sbom || !sbom_output.empty() || !provenance.empty(); }
  bool attach() const { return sbom || !provenance.empty(); }
};

struct BuildJob {
  const frontend::File* containerfile = nullptr;  // parsed; must outlive the call
  /// Build args, target, build platform, build contexts. target_platform
  /// and resolve_base are set here, per platform.
  frontend::CompileOptions compile;
  std::vector<Platform> platforms;                // one graph each (multiplatform.md)
  /// Tags are full references; `pull` is set here (from `acquire`).
  BuildOptions options;
  /// FROM: the pull policy and registry options (COPY --from=IMAGE pulls a
  /// missing image unless the policy is never).
  image::AcquireOptions acquire;
  std::vector<OutputSpec> outputs;
  std::vector<std::string> cache_from;            // --cache-from REF...
  std::string cache_to;                           // --cache-to REF
  TransferOptions cache_transfer;                 // their registry options
  ProgressMode progress = ProgressMode::kPlain;
  bool quiet = false;                             // no "imported N cache records" line
  AttestOptions attest;                           // off by default
};

/// `path` made absolute against the working directory (not cleaned: "."
/// is the working directory itself), as the engine keeps a context's path.
std::string AbsolutePath(const std::string& path);

/// A build context's ignore file and its patterns (path "" when none).
struct ContextIgnore {
  std::string path;
  std::vector<std::string> patterns;  // frontend::ReadIgnoreFile() of it
};

/// Finds and reads the ignore file of `context_dir` (docs/build.md):
/// `ignorefile` when not empty (kNotFound when it is not a file), else the
/// first of <containerfile>.containerignore, <containerfile>.dockerignore
/// (not for "" or "-"), .containerignore and .dockerignore in the context
/// that exists. One found in the context is opened beneath it (a symlink
/// out of it is kInvalidInput, docs/security.md H39); it must be a regular
/// file of at most 4 MiB.
Expected<ContextIgnore> LoadContextIgnore(const std::string& context_dir, const std::string& containerfile,
                                          const std::string& ignorefile = "");

/// Runs the build. Returns the image ID ("sha256:...") of a one-platform
/// build, or the digest of the stored index of a multi-platform one.
/// Warnings (unused build args...) are logged once.
Expected<std::string> RunBuildJob(const BuildJob& job, Store& store);

/// Ok when every stage with RUN steps has a platform this machine can run
/// (emulation.h); kInvalidInput naming the first that it cannot. Checks
/// each platform once.
Status CheckRunnable(const std::vector<BuildGraph>& graphs);

/// The graph of stage `index` of `graph` and the stages it needs,
/// renumbered, with it as the target (what compiling with --target=its
/// name gives): a shared stage built on its own.
BuildGraph StageSubgraph(const BuildGraph& graph, StageIndex index);

}  // namespace kiln::engine
