// The build graph: kiln's IR between the Containerfile frontend and the
// engine (BuildKit's LLB, reduced to what a Containerfile can express).
//
// Plain data. frontend::Compile() produces it with every builder-level
// expansion already done (ARG/ENV in ADD COPY ENV EXPOSE FROM LABEL
// STOPSIGNAL USER VOLUME WORKDIR), every flag parsed and validated and every
// stage reference resolved to an index. The engine executes it without
// looking at the Containerfile again. See docs/build-graph.md.
//
// Canonical JSON (GraphToJson / DumpGraph, `kiln build --print-graph`):
// objects with sorted keys; each step is {"kind", "op", "meta"} where
// "kind"+"op" is the part a cache key may hash (StepCacheJson) and "meta"
// holds what must not change a key: source location, the instruction text,
// the history line, proxy variables.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kiln/oci.h"

namespace kiln {

/// Where an instruction came from (1-based physical lines).
struct SourceLocation {
  std::string file;
  int line = 0;
  int end_line = 0;
};

using StageIndex = int;  // position in BuildGraph::stages

/// What the frontend learns about a base image from CompileOptions::resolve_base.
struct BaseImageInfo {
  std::vector<std::string> env;                     // "K=V", image config order
  std::string working_dir;
  std::string user;
  std::vector<std::string> onbuild;                 // trigger lines, e.g. "RUN make"
  std::optional<std::vector<std::string>> shell;    // Docker-format config Shell
  std::string digest;                               // pinned manifest digest, "" if unknown
  std::string reference;                            // full reference the resolver settled on, "" = as asked
};

/// Where a stage's root filesystem starts.
struct StageBase {
  enum class Kind { kScratch, kImage, kStage, kContext };
  Kind kind = Kind::kScratch;
  std::string written;        // FROM argument after expansion ("alpine:3.20")
  std::string image;          // kImage: normalized ("docker.io/library/alpine:3.20")
  std::string digest;         // kImage: pinned by resolve_base, "" if not resolved
  StageIndex stage = -1;      // kStage
  std::string context;        // kContext: named build context (--build-context)
};

/// Where COPY/ADD (or a RUN --mount) reads from.
struct CopySource {
  enum class Kind { kContext, kStage, kImage, kNamedContext };
  Kind kind = Kind::kContext;
  StageIndex stage = -1;      // kStage
  std::string image;          // kImage: normalized reference
  std::string name;           // kNamedContext: the --build-context name
};

// ---------------------------------------------------------------- RUN

enum class MountType { kBind, kCache, kTmpfs, kSecret, kSsh };
enum class CacheSharing { kShared, kPrivate, kLocked };

/// One RUN --mount, with BuildKit's defaults filled in.
struct RunMount {
  MountType type = MountType::kBind;
  std::string target;                  // absolute path in the container
  std::string source;                  // bind/cache: path in `from` ("" = root)
  std::optional<CopySource> from;      // bind/cache: nullopt = the build context (bind) / empty dir (cache)
  bool read_only = true;               // bind: default true; cache: false; tmpfs: false
  std::string id;                      // cache: default = target; secret: default = basename(target); ssh: "default"
  CacheSharing sharing = CacheSharing::kShared;  // cache only
  std::optional<uint32_t> mode;        // cache 0755, secret 0400, ssh 0600 by default
  std::optional<int64_t> uid;          // secret/ssh/cache: default 0
  std::optional<int64_t> gid;
  bool required = false;               // secret/ssh: fail if not provided
  std::string env;                     // secret: also expose as this env var
  std::optional<int64_t> size;         // tmpfs: bytes, nullopt = unlimited
};

/// A heredoc attached to RUN/COPY/ADD, content already chomped (<<-) and,
/// where the builder expands it (COPY/ADD with an unquoted delimiter),
/// expanded.
struct HeredocFile {
  std::string name;          // delimiter; for COPY/ADD also the source file name
  std::string content;
  bool expand = true;        // false when the delimiter was quoted
  int file_descriptor = 0;   // N of N<<EOF
};

struct RunStep {
  bool shell_form = false;
  std::string command;                // shell form: the script as written (not expanded)
  std::vector<std::string> argv;      // what to execve: SHELL + [script], or the JSON array
  std::vector<std::string> env;       // image ENV at this point ("K=V", ordered, incl. PATH)
  std::vector<std::string> args;      // ARG values in scope not shadowed by ENV ("K=V")
  std::string workdir;                // absolute, "/" by default
  std::string user;                   // "" = root
  std::vector<RunMount> mounts;
  std::string network = "default";    // default|none|host
  std::string security = "sandbox";   // sandbox|insecure
  std::vector<HeredocFile> heredocs;  // extra files the shell reads (kept for fd>0 / named heredocs)
  /// Files the engine must create read-only in the sandbox before exec:
  /// a heredoc with a #! line runs as /dev/pipes/<name>.
  std::vector<std::pair<std::string, std::string>> files;  // path -> content (mode 0755)
};

// ---------------------------------------------------------------- COPY/ADD

struct CopyStep {
  bool is_add = false;
  std::vector<std::string> sources;   // expanded; URLs/git for ADD kept as written
  std::vector<HeredocFile> heredoc_sources;  // COPY <<EOF /dst
  std::string dest;                   // expanded, absolute (resolved against workdir); keeps a trailing '/'
  std::string workdir;
  CopySource from;                    // kContext unless --from
  std::string chown;                  // "user[:group]" as written after expansion, "" = 0:0
  std::string chmod;                  // validated octal ("755") or symbolic ("u+x,g-w"), "" = keep
  bool link = false;
  bool parents = false;
  std::vector<std::string> excludes;
  std::string checksum;               // ADD --checksum
  bool keep_git_dir = false;          // ADD --keep-git-dir
  std::optional<bool> unpack;         // ADD --unpack; nullopt = Docker's default (local archives unpack)
};

// ---------------------------------------------------------------- config

struct EnvStep { std::vector<std::pair<std::string, std::string>> vars; };
struct LabelStep { std::vector<std::pair<std::string, std::string>> labels; };
struct ExposeStep { std::vector<std::string> ports; };  // normalized "80/tcp", "53/udp"
struct VolumeStep { std::vector<std::string> paths; };
struct UserStep { std::string user; };
/// The engine must also create the directory (as BuildKit's mkdir -p).
struct WorkdirStep { std::string path; };  // absolute
struct CommandStep {                       // CMD and ENTRYPOINT
  bool shell_form = false;
  std::vector<std::string> argv;           // shell form already wrapped in SHELL
};
struct StopSignalStep { std::string signal; };
struct HealthcheckStep {
  std::vector<std::string> test;           // {"NONE"} | {"CMD", argv...} | {"CMD-SHELL", script}
  int64_t interval_ns = 0;                 // 0 = inherit / default
  int64_t timeout_ns = 0;
  int64_t start_period_ns = 0;
  int64_t start_interval_ns = 0;
  int retries = 0;
};
struct ShellStep { std::vector<std::string> shell; };
struct OnbuildStep { std::string trigger; };  // "RUN make", stored in the image config
struct MaintainerStep { std::string author; };
struct ArgStep {
  struct Def {
    std::string name;
    std::optional<std::string> value;      // effective value (build arg > default > global)
  };
  std::vector<Def> args;
};

enum class StepKind {
  kRun, kCopy, kAdd, kEnv, kLabel, kExpose, kVolume, kUser, kWorkdir,
  kEntrypoint, kCmd, kStopSignal, kHealthcheck, kShell, kOnbuild, kMaintainer, kArg,
};

/// Lower-case instruction name ("run", "copy", ...).
const char* StepKindName(StepKind kind);

using StepOp = std::variant<RunStep, CopyStep, EnvStep, LabelStep, ExposeStep, VolumeStep, UserStep,
                            WorkdirStep, CommandStep, StopSignalStep, HealthcheckStep, ShellStep,
                            OnbuildStep, MaintainerStep, ArgStep>;

struct Step {
  StepKind kind = StepKind::kRun;
  StepOp op;
  SourceLocation location;
  std::string text;                   // the instruction as written, for progress ("RUN make")
  std::string created_by;             // image history line (BuildKit's wording)
  bool empty_layer = true;            // false for RUN, COPY, ADD
  bool from_onbuild = false;          // inserted from a base's ONBUILD trigger (location = FROM line)
  std::vector<std::string> proxy_env; // HTTP_PROXY & co from --build-arg: exec env, not history, not key
};

/// The image config a stage ends with, as far as the Containerfile
/// determines it. nullopt = not set in this stage or its stage bases
/// (keep the base image's value).
struct StageConfig {
  std::vector<std::string> env;       // complete (base image env + ENV), "K=V"
  std::string working_dir;
  std::string user;
  std::optional<std::vector<std::string>> cmd;         // {} = cleared by ENTRYPOINT
  std::optional<std::vector<std::string>> entrypoint;
  std::vector<std::pair<std::string, std::string>> labels;  // added in this stage chain
  std::vector<std::string> exposed_ports;
  std::vector<std::string> volumes;
  std::optional<std::string> stop_signal;
  std::optional<HealthcheckStep> healthcheck;
  std::optional<std::vector<std::string>> shell;
  std::vector<std::string> onbuild;   // triggers for images built FROM this one
  std::optional<std::string> author;
};

struct Stage {
  StageIndex index = 0;               // position in BuildGraph::stages
  int source_index = 0;               // position among the FROMs of the file
  std::string name;                   // lower-cased AS name, "" when unnamed
  StageBase base;
  Platform platform;                  // FROM --platform (expanded) or the target platform
  std::vector<Step> steps;
  std::vector<StageIndex> deps;       // stages this one needs (base, --from, mount from), sorted
  StageConfig config;
  SourceLocation location;            // the FROM line
};

struct BuildGraph {
  std::vector<Stage> stages;          // reachable from the target only, dependencies first
  StageIndex target = 0;              // always stages.size() - 1
  Platform target_platform;
  Platform build_platform;
  /// Global ARGs (before the first FROM) that the build used, with their values.
  std::vector<std::pair<std::string, std::string>> global_args;
  std::vector<std::string> warnings;  // e.g. build args not consumed
};

/// Canonical JSON of the whole graph (sorted keys; see top of file).
nlohmann::json GraphToJson(const BuildGraph& graph);
/// The cache-relevant part of one step: {"kind", "op"}. No locations.
nlohmann::json StepCacheJson(const Step& step);
/// GraphToJson, 2-space indented, with a final newline.
std::string DumpGraph(const BuildGraph& graph);

}  // namespace kiln
