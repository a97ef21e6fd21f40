// Internal to the frontend: the compiler's state and the Compiler class,
// shared by compile.cpp (phases, driver), compile_dispatch.cpp (the
// per-instruction Dispatch), compile_run.cpp (RUN and its mounts) and
// compile_copy.cpp (COPY/ADD). Not part of include/kiln/containerfile.h.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "expand.h"
#include "instructions.h"
#include "kiln/containerfile.h"
#include "lexer.h"
#include "text_util.h"

namespace kiln::frontend::compile_internal {

using text::CleanPath;
using text::IsDigits;
using text::Upper;

inline constexpr const char* kProxyArgs[] = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                                             "FTP_PROXY",  "ftp_proxy",  "NO_PROXY",    "no_proxy",
                                             "ALL_PROXY",  "all_proxy"};

std::string Lower(std::string_view s);
std::string Join(const std::vector<std::string>& parts, std::string_view sep);
/// path.Join("/", base, p) unless p is absolute.
std::string ResolvePath(const std::string& workdir, std::string_view p);

/// "K=V" or "K" of an ARG word.
struct ArgWord {
  std::string key;
  std::optional<std::string> raw_value;
};

ArgWord SplitArgWord(const std::string& word);

// ---------------------------------------------------------------- state

/// A variable lookup that remembers which names it was asked for.
struct ArgScope {
  std::vector<std::pair<std::string, std::optional<std::string>>> vars;  // later wins
  std::optional<std::string> Get(std::string_view name) const {
    for (auto it = vars.rbegin(); it != vars.rend(); ++it)
      if (it->first == name)
        return it->second;
    return std::nullopt;
  }
  bool Declared(std::string_view name) const {
    for (const auto& v : vars)
      if (v.first == name)
        return true;
    return false;
  }
  void Set(std::string name, std::optional<std::string> value) {
    for (auto& v : vars)
      if (v.first == name) {
        v.second = std::move(value);
        return;
      }
    vars.emplace_back(std::move(name), std::move(value));
  }
};

/// The image state carried from instruction to instruction (and cloned
/// into a stage that uses this one as its base).
struct ImageState {
  Environment env;
  std::string workdir = "/";
  std::string user;
  std::vector<std::string> shell = {"/bin/sh", "-c"};
  StageConfig config;
};

struct StageInfo {
  const Instruction* from = nullptr;
  std::vector<const Instruction*> body;
  int source_index = 0;
  std::string name;          // lower-case, "" if unnamed
  std::string display;       // name or "stage-N"
  std::string base_written;  // FROM after expansion
  int base_stage = -1;       // source index
  StageBase base;
  std::optional<Platform> platform;
  /// Stage references by instruction (COPY --from, RUN mount from): the
  /// resolved source, keyed by instruction and its position among the
  /// instruction's references (0 for COPY, mount number for RUN).
  std::map<std::pair<const Instruction*, int>, CopySource> refs;
  struct Edge {
    int to;
    int line;
  };
  std::vector<Edge> edges;   // all dependencies incl. base
  bool reachable = false;
  int graph_index = -1;
  ImageState final_state;    // after dispatch
  Platform final_platform;
  bool cmd_set = false;      // CMD seen in this stage (ENTRYPOINT then keeps it)
};

class Compiler {
 public:
  Compiler(const File& file, const CompileOptions& opts) : file_(file), opts_(opts) {}
  Expected<BuildGraph> Run();

 private:
  Error At(int line, std::string_view msg) const {
    return Error(Errc::kInvalidInput, file_.filename + ":" + std::to_string(line) + ": " + std::string(msg));
  }
  /// Errors in ONBUILD triggers point at the FROM line that ran them.
  Error At(const Instruction& ins, std::string_view msg) const {
    return At(onbuild_line_ ? onbuild_line_ : ins.start_line, msg);
  }
  /// Adds the location to an invalid-input error from a helper.
  Error Wrap(const Instruction& ins, const Error& e) const {
    if (e.code() != Errc::kInvalidInput)
      return e;
    return At(ins, e.message());
  }
  ExpandOptions Opts() const {
    ExpandOptions o;
    o.escape = file_.escape;
    o.budget = &budget_;
    return o;
  }
  /// Takes `bytes` copied into the graph from the budget all expansions
  /// share, so that a file of a few KB cannot make gigabytes of graph.
  Status Charge(int line, size_t bytes) {
    if (bytes > budget_)
      return At(line, "the expansion results and step environments of the file together are larger than " +
                          std::to_string(kMaxExpansionTotal >> 20) + " MiB");
    budget_ -= bytes;
    return Ok();
  }
  static size_t Bytes(const std::vector<std::string>& v) {
    size_t n = 0;
    for (const auto& s : v)
      n += s.size() + 1;
    return n;
  }
  /// Lookup in the meta args (automatic platform ARGs + global ARGs).
  EnvLookup MetaLookup() {
    return [this](std::string_view name) -> std::optional<std::string> {
      if (meta_.Declared(name))
        used_meta_.insert(std::string(name));
      return meta_.Get(name);
    };
  }
  /// Lookup inside a stage: ENV wins over ARG (Docker's documented rule).
  static EnvLookup StageLookup(const ImageState& img, const ArgScope& args) {
    return [&img, &args](std::string_view name) -> std::optional<std::string> {
      if (auto v = img.env.Get(name))
        return v;
      return args.Get(name);
    };
  }
  Expected<std::string> Expand(const Instruction& ins, std::string_view word, const EnvLookup& env) {
    auto r = ExpandWord(word, env, Opts());
    if (!r)
      return Wrap(ins, r.error());
    return std::move(*r);
  }

  Status SplitStages();
  Status ComputeMetaArgs();
  Status ResolveStages();
  Status CollectReferences(StageInfo& st, const Instruction& ins, int edge_line);
  Status CollectAllReferences();
  Status CheckCycles();
  Expected<CopySource> ResolveFrom(const Instruction& ins, const std::string& what, const std::string& raw,
                                   int self);
  /// The base image of `st` (opts_.resolve_base, once per reference and platform).
  Expected<const BaseImageInfo*> ResolveBaseImage(StageInfo& st, const Platform& platform);
  /// The stages the ONBUILD triggers of `st`'s base image refer to (COPY
  /// --from, RUN --mount from=): edges, so that they are built first.
  Status CollectImageTriggerReferences(StageInfo& st);
  Status DispatchStage(StageInfo& st, Stage& out);
  /// For a reference found only at dispatch: the stage must be built already.
  Status CheckLateReference(StageInfo& st, const CopySource& src, const std::string& what, int line);
  Status Dispatch(StageInfo& st, ImageState& img, ArgScope& args, const Instruction& ins,
                  std::vector<Step>& steps, bool from_onbuild, int location_line);
  Status DispatchRun(StageInfo& st, ImageState& img, ArgScope& args, const Instruction& ins, const Flags& flags,
                     Step& step);
  Status DispatchCopy(StageInfo& st, ImageState& img, const Instruction& ins, const Flags& flags, Step& step,
                      bool is_add, const EnvLookup& env);
  Expected<RunMount> ParseMount(StageInfo& st, const ImageState& img, const EnvLookup& env,
                                const Instruction& ins, const std::string& spec, int index, int ssh_count);

  const File& file_;
  const CompileOptions& opts_;
  mutable size_t budget_ = kMaxExpansionTotal;  // see ExpandOptions::budget
  Platform target_platform_;
  Platform build_platform_;
  std::vector<const Instruction*> global_args_;
  std::vector<StageInfo> stages_;
  ArgScope meta_;
  std::set<std::string> used_meta_;       // meta args some expansion referenced
  std::set<std::string> consumed_;        // build args some ARG declared
  std::vector<std::string> warnings_;
  int target_ = -1;
  std::map<std::string, BaseImageInfo> resolved_;  // ref|platform -> info
  std::deque<File> trigger_files_;        // parsed ONBUILD triggers of base images
  int onbuild_line_ = 0;                  // FROM line while dispatching ONBUILD triggers
  struct LateRef {                        // a stage reference to a stage further down
    int stage;
    int line;
    std::string message;
  };
  std::vector<LateRef> late_refs_;
};

}  // namespace kiln::frontend::compile_internal
