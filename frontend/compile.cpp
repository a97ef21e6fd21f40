// The compiler. Phases, as BuildKit's dockerfile2llb:
//  1. split the file into global ARGs and stages; compute the meta args
//     (automatic platform ARGs, then the global ARGs, build args override);
//  2. expand each FROM with the meta args; name, platform and base of each
//     stage (a base name matching an *earlier* stage is that stage);
//  3. resolve the target; collect every stage reference (COPY --from,
//     RUN --mount from=, a stage base's ONBUILD triggers); detect cycles;
//  4. keep the stages reachable from the target, dependencies first;
//  5. dispatch each kept stage: base image config (resolve_base), ONBUILD
//     triggers, then every instruction into a typed, expanded Step.
#include "kiln/containerfile.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <set>

#include "expand.h"
#include "instructions.h"
#include "kiln/reference.h"
#include "lexer.h"

namespace kiln::frontend {
namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const char* const kProxyArgs[] = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                                  "FTP_PROXY",  "ftp_proxy",  "NO_PROXY",    "no_proxy",
                                  "ALL_PROXY",  "all_proxy"};

bool IsProxyArg(std::string_view name) {
  for (const char* p : kProxyArgs)
    if (name == p)
      return true;
  return false;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i)
      out += sep;
    out += parts[i];
  }
  return out;
}

bool IsDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// path.Clean of an absolute or relative '/'-path.
std::string CleanPath(std::string_view p) {
  bool abs = !p.empty() && p[0] == '/';
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string_view::npos)
      j = p.size();
    std::string_view part = p.substr(i, j - i);
    if (part.empty() || part == ".") {
    } else if (part == "..") {
      if (!parts.empty() && parts.back() != "..")
        parts.pop_back();
      else if (!abs)
        parts.emplace_back("..");
    } else {
      parts.emplace_back(part);
    }
    i = j + 1;
  }
  std::string out = abs ? "/" : "";
  out += Join(parts, "/");
  if (out.empty())
    out = ".";
  return out;
}

/// path.Join("/", base, p) unless p is absolute.
std::string ResolvePath(const std::string& workdir, std::string_view p) {
  if (!p.empty() && p[0] == '/')
    return CleanPath(p);
  return CleanPath("/" + workdir + "/" + std::string(p));
}

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

// ---------------------------------------------------------------- phase 1

Status Compiler::SplitStages() {
  for (const Instruction& ins : file_.instructions) {
    if (ins.keyword == "from") {
      StageInfo st;
      st.from = &ins;
      st.source_index = static_cast<int>(stages_.size());
      stages_.push_back(std::move(st));
      continue;
    }
    if (stages_.empty()) {
      if (ins.keyword != "arg")
        return At(ins, Upper(ins.keyword) +
                           " before the first FROM: no build stage in current context (only ARG may come before FROM)");
      global_args_.push_back(&ins);
      continue;
    }
    stages_.back().body.push_back(&ins);
  }
  if (stages_.empty()) {
    int line = file_.instructions.empty() ? 1 : file_.instructions.back().start_line;
    return At(line, "no build stage in context: the file has no FROM instruction");
  }
  return Ok();
}

/// "K=V" or "K" of an ARG word.
struct ArgWord {
  std::string key;
  std::optional<std::string> raw_value;
};

ArgWord SplitArgWord(const std::string& word) {
  ArgWord w;
  size_t eq = word.find('=');
  w.key = word.substr(0, eq);
  if (eq != std::string::npos)
    w.raw_value = word.substr(eq + 1);
  return w;
}

Status Compiler::ComputeMetaArgs() {
  auto add_auto = [&](const char* name, const std::string& value) {
    auto it = opts_.build_args.find(name);
    meta_.Set(name, it != opts_.build_args.end() ? it->second : value);
    if (it != opts_.build_args.end())
      consumed_.insert(name);
  };
  add_auto("BUILDPLATFORM", build_platform_.str());
  add_auto("BUILDOS", build_platform_.os);
  add_auto("BUILDARCH", build_platform_.architecture);
  add_auto("BUILDVARIANT", build_platform_.variant);
  add_auto("TARGETPLATFORM", target_platform_.str());
  add_auto("TARGETOS", target_platform_.os);
  add_auto("TARGETARCH", target_platform_.architecture);
  add_auto("TARGETVARIANT", target_platform_.variant);
  // TARGETSTAGE: the --target name, else the last stage's name, else
  // "default" (BuildKit).
  std::string target_stage = Lower(opts_.target);
  if (target_stage.empty()) {
    const Instruction& last = *stages_.back().from;
    if (last.args.size() == 3 && Lower(last.args[1]) == "as")
      target_stage = Lower(last.args[2]);
  }
  add_auto("TARGETSTAGE", target_stage.empty() ? "default" : target_stage);

  for (const Instruction* ins : global_args_) {
    auto flags = ParseFlags("arg", ins->flags);
    if (!flags)
      return Wrap(*ins, flags.error());
    if (ins->args.empty())
      return At(*ins, "ARG requires at least one argument");
    // All values of one ARG are expanded before any is set (BuildKit).
    std::vector<std::pair<std::string, std::optional<std::string>>> defs;
    for (const std::string& word : ins->args) {
      ArgWord w = SplitArgWord(word);
      if (w.key.empty())
        return At(*ins, "ARG names can not be blank");
      std::optional<std::string> value;
      // A --build-arg value replaces the default unexpanded (BuildKit:
      // `ARG X=${Y:?}` builds when X is given).
      if (auto it = opts_.build_args.find(w.key); it != opts_.build_args.end()) {
        value = it->second;
        consumed_.insert(w.key);
      } else if (w.raw_value) {
        KILN_ASSIGN_OR_RETURN(value, Expand(*ins, *w.raw_value, MetaLookup()));
      } else if (meta_.Declared(w.key)) {
        value = meta_.Get(w.key);  // `ARG TARGETPLATFORM` keeps the automatic value
      }
      defs.emplace_back(w.key, value);
    }
    for (auto& [k, v] : defs)
      meta_.Set(k, v);
  }
  return Ok();
}

// ---------------------------------------------------------------- phase 2

bool ValidStageName(std::string_view name) {
  if (name.empty() || !(name[0] >= 'a' && name[0] <= 'z'))
    return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
      return false;
  return true;
}

/// Why a FROM-level expansion came out empty: names the variables that
/// were unset.
std::string UnsetHint(const std::vector<std::string>& unmatched) {
  if (unmatched.empty())
    return "";
  std::string names;
  for (const auto& n : unmatched)
    names += (names.empty() ? "" : ", ") + n;
  return " (not set: " + names + "; give it a value with an ARG before the first FROM or --build-arg)";
}

Status Compiler::ResolveStages() {
  std::map<std::string, int> by_name;
  for (StageInfo& st : stages_) {
    const Instruction& ins = *st.from;
    auto flags = ParseFlags("from", ins.flags);
    if (!flags)
      return Wrap(ins, flags.error());
    if (!(ins.args.size() == 1 || (ins.args.size() == 3 && Lower(ins.args[1]) == "as")))
      return At(ins, "FROM requires either one or three arguments (FROM image [AS name])");
    if (ins.args.size() == 3) {
      st.name = Lower(ins.args[2]);
      if (!ValidStageName(st.name))
        return At(ins, "invalid name for build stage: \"" + ins.args[2] +
                           "\", name can't start with a number or contain symbols");
      if (auto it = by_name.find(st.name); it != by_name.end())
        return At(ins, "duplicate stage name \"" + st.name + "\" (also at line " +
                           std::to_string(stages_[it->second].from->start_line) + ")");
    }
    st.display = st.name.empty() ? "stage-" + std::to_string(st.source_index) : st.name;

    auto expanded = ExpandWordWithMatches(ins.args[0], MetaLookup(), Opts());
    if (!expanded)
      return Wrap(ins, expanded.error());
    for (const auto& n : expanded->matched)
      used_meta_.insert(n);
    st.base_written = expanded->word;
    if (st.base_written.empty())
      return At(ins, "base name (" + ins.args[0] + ") should not be blank" + UnsetHint(expanded->unmatched));

    if (flags->Has("platform")) {
      std::string raw = flags->Get("platform");
      auto pv = ExpandWordWithMatches(raw, MetaLookup(), Opts());
      if (!pv)
        return Wrap(ins, pv.error());
      auto p = Platform::Parse(pv->word);
      if (!p)
        return At(ins, "FROM --platform=" + raw + ": " + p.error().message() + UnsetHint(pv->unmatched));
      st.platform = *p;
    }

    st.base.written = st.base_written;
    if (auto it = by_name.find(Lower(st.base_written)); it != by_name.end()) {
      st.base.kind = StageBase::Kind::kStage;
      st.base_stage = it->second;
    } else if (auto ctx = opts_.build_contexts.find(st.base_written); ctx != opts_.build_contexts.end()) {
      const std::string prefix = "docker-image://";
      if (ctx->second == prefix + "scratch") {  // the empty image, as BuildKit
        st.base.kind = StageBase::Kind::kScratch;
      } else if (ctx->second.rfind(prefix, 0) == 0) {
        auto ref = NormalizeImageReference(ctx->second.substr(prefix.size()));
        if (!ref)
          return At(ins, "--build-context " + ctx->first + ": " + ref.error().message());
        st.base.kind = StageBase::Kind::kImage;
        st.base.image = *ref;
      } else {
        st.base.kind = StageBase::Kind::kContext;
        st.base.context = ctx->first;
      }
    } else if (st.base_written == "scratch") {
      st.base.kind = StageBase::Kind::kScratch;
    } else {
      auto ref = NormalizeImageReference(st.base_written);
      if (!ref)
        return At(ins, "FROM " + st.base_written + ": " + ref.error().message() + UnsetHint(expanded->unmatched));
      st.base.kind = StageBase::Kind::kImage;
      st.base.image = *ref;
    }
    if (!st.name.empty())
      by_name[st.name] = st.source_index;
  }
  // A FROM naming a stage defined later means an image in Docker too; say so.
  for (const StageInfo& st : stages_) {
    if (st.base.kind != StageBase::Kind::kImage)
      continue;
    for (const StageInfo& later : stages_)
      if (later.source_index > st.source_index && !later.name.empty() && later.name == Lower(st.base_written))
        warnings_.push_back(file_.filename + ":" + std::to_string(st.from->start_line) + ": FROM " +
                            st.base_written + ": stage \"" + later.name +
                            "\" is defined later in the file; this uses the image " + st.base.image);
  }
  return Ok();
}

// ---------------------------------------------------------------- phase 3

Expected<CopySource> Compiler::ResolveFrom(const Instruction& ins, const std::string& what,
                                           const std::string& raw, int self) {
  auto expanded = ExpandWordWithMatches(raw, MetaLookup(), Opts());
  if (!expanded)
    return Wrap(ins, expanded.error());
  for (const auto& n : expanded->matched)
    used_meta_.insert(n);
  const std::string from = expanded->word;
  if (from.empty())
    return At(ins, what + "=" + raw + ": empty value" + UnsetHint(expanded->unmatched));
  CopySource src;
  if (IsDigits(from)) {
    if (from.size() > 6 || std::stoi(from) >= static_cast<int>(stages_.size()))
      return At(ins, what + "=" + from + ": invalid stage index " + from + " (the file has " +
                         std::to_string(stages_.size()) + (stages_.size() == 1 ? " stage)" : " stages)"));
    src.kind = CopySource::Kind::kStage;
    src.stage = std::stoi(from);
  } else {
    for (const StageInfo& st : stages_)
      if (!st.name.empty() && st.name == Lower(from)) {
        src.kind = CopySource::Kind::kStage;
        src.stage = st.source_index;
      }
    if (src.kind != CopySource::Kind::kStage) {
      if (auto ctx = opts_.build_contexts.find(from); ctx != opts_.build_contexts.end()) {
        const std::string prefix = "docker-image://";
        if (ctx->second.rfind(prefix, 0) == 0) {
          auto ref = NormalizeImageReference(ctx->second.substr(prefix.size()));
          if (!ref)
            return At(ins, "--build-context " + ctx->first + ": " + ref.error().message());
          src.kind = CopySource::Kind::kImage;
          src.image = *ref;
        } else {
          src.kind = CopySource::Kind::kNamedContext;
          src.name = from;
        }
        return src;
      }
      auto ref = NormalizeImageReference(from);
      if (!ref) {
        std::string names;
        for (const StageInfo& st : stages_)
          if (!st.name.empty())
            names += (names.empty() ? "" : ", ") + st.name;
        return At(ins, what + "=" + from + ": no stage named \"" + from + "\" (stages: " +
                           (names.empty() ? "none named" : names) + ") and not a valid image reference");
      }
      src.kind = CopySource::Kind::kImage;
      src.image = *ref;
      if (from.find_first_of("/:@") == std::string::npos)
        warnings_.push_back(file_.filename + ":" + std::to_string(ins.start_line) + ": " + what + "=" + from +
                            ": no stage named \"" + from + "\"; using the image " + src.image);
      return src;
    }
  }
  if (src.stage == self)
    return At(ins, "circular dependency detected on stage: " + stages_[self].display + " (" + what + "=" + from +
                       " refers to the stage itself)");
  return src;
}

Status Compiler::CollectReferences(StageInfo& st, const Instruction& ins, int edge_line) {
  if (ins.keyword == "copy") {
    auto flags = ParseFlags("copy", ins.flags);
    if (!flags)
      return Wrap(ins, flags.error());
    if (flags->Has("from")) {
      KILN_ASSIGN_OR_RETURN(CopySource src, ResolveFrom(ins, "COPY --from", flags->Get("from"), st.source_index));
      if (src.kind == CopySource::Kind::kStage)
        st.edges.push_back({src.stage, edge_line});
      if (src.kind == CopySource::Kind::kStage && src.stage > st.source_index)
        late_refs_.push_back({st.source_index, edge_line,
                              "COPY --from=" + flags->Get("from") + ": cannot copy from stage \"" +
                                  stages_[src.stage].display + "\", it needs to be defined before current stage \"" +
                                  st.display + "\""});
      st.refs[{&ins, 0}] = src;
    }
    return Ok();
  }
  if (ins.keyword == "run") {
    auto flags = ParseFlags("run", ins.flags);
    if (!flags)
      return Wrap(ins, flags.error());
    auto mounts = flags->GetList("mount");
    for (size_t i = 0; i < mounts.size(); ++i) {
      auto fields = SplitMountFields(mounts[i]);
      if (!fields)
        return Wrap(ins, fields.error());
      for (const MountField& f : *fields) {
        if (f.key != "from")
          continue;
        KILN_ASSIGN_OR_RETURN(CopySource src, ResolveFrom(ins, "RUN --mount from", f.value, st.source_index));
        if (src.kind == CopySource::Kind::kStage)
          st.edges.push_back({src.stage, edge_line});
        if (src.kind == CopySource::Kind::kStage && src.stage > st.source_index)
          late_refs_.push_back({st.source_index, edge_line,
                                "RUN --mount from=" + f.value + ": cannot mount from stage \"" +
                                    stages_[src.stage].display +
                                    "\", stage needs to be defined before current command"});
        st.refs[{&ins, static_cast<int>(i)}] = src;
      }
    }
  }
  return Ok();
}

Status Compiler::CollectAllReferences() {
  for (StageInfo& st : stages_) {
    if (st.base_stage >= 0) {
      st.edges.push_back({st.base_stage, st.from->start_line});
      // The base stage's own ONBUILD triggers run in this stage.
      for (const Instruction* ins : stages_[st.base_stage].body)
        if (ins->keyword == "onbuild" && !ins->sub.empty())
          KILN_TRY(CollectReferences(st, ins->sub[0], st.from->start_line));
    }
    for (const Instruction* ins : st.body)
      KILN_TRY(CollectReferences(st, *ins, ins->start_line));
  }
  return Ok();
}

Status Compiler::CheckCycles() {
  // 0 = unvisited, 1 = on the DFS stack, 2 = done.
  std::vector<int> color(stages_.size(), 0);
  std::vector<int> stack;
  std::function<Status(int)> visit = [&](int u) -> Status {
    color[u] = 1;
    stack.push_back(u);
    for (const auto& e : stages_[u].edges) {
      if (color[e.to] == 1) {
        std::string chain;
        auto it = std::find(stack.begin(), stack.end(), e.to);
        for (; it != stack.end(); ++it)
          chain += stages_[*it].display + " -> ";
        chain += stages_[e.to].display;
        return At(e.line, "circular dependency detected on stage: " + stages_[e.to].display + " (" + chain + ")");
      }
      if (color[e.to] == 0)
        KILN_TRY(visit(e.to));
    }
    stack.pop_back();
    color[u] = 2;
    return Ok();
  };
  for (size_t i = 0; i < stages_.size(); ++i)
    if (color[i] == 0)
      KILN_TRY(visit(static_cast<int>(i)));
  return Ok();
}

// ---------------------------------------------------------------- dispatch

std::string TriggerText(const Instruction& onbuild) {
  std::string_view s = onbuild.original;
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  if (s.size() >= 7 && Lower(s.substr(0, 7)) == "onbuild")
    s.remove_prefix(7);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  // The trigger's heredocs go with it, so that a build FROM the image can
  // parse it again (BuildKit keeps them too).
  std::string text(s);
  const std::vector<Heredoc>& docs = onbuild.sub.empty() ? onbuild.heredocs : onbuild.sub[0].heredocs;
  for (const Heredoc& h : docs)
    text += "\n" + h.content + h.name;
  return text;
}

Status Compiler::DispatchStage(StageInfo& st, Stage& out) {
  ImageState img;
  std::vector<const Instruction*> stage_triggers;
  std::vector<std::string> image_triggers;
  out.base = st.base;
  Platform platform = st.platform.value_or(target_platform_);

  if (st.base.kind == StageBase::Kind::kStage) {
    const StageInfo& base = stages_[st.base_stage];
    img = base.final_state;
    platform = base.final_platform;
    out.base.stage = base.graph_index;
    img.config.onbuild.clear();
    for (const Instruction* ins : base.body)
      if (ins->keyword == "onbuild" && !ins->sub.empty())
        stage_triggers.push_back(&ins->sub[0]);
  } else if (st.base.kind == StageBase::Kind::kImage && opts_.resolve_base) {
    std::string key = st.base.image + "|" + platform.str();
    auto it = resolved_.find(key);
    if (it == resolved_.end()) {
      auto info = opts_.resolve_base(st.base.image, platform);
      if (!info) {
        Error e = info.error();
        return Error(e.code(), file_.filename + ":" + std::to_string(st.from->start_line) + ": FROM " +
                                   st.base_written + ": " + e.message(), e.sys_errno());
      }
      it = resolved_.emplace(key, std::move(*info)).first;
    }
    const BaseImageInfo& info = it->second;
    for (const std::string& kv : info.env) {
      size_t eq = kv.find('=');
      img.env.Set(kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1));
    }
    if (!info.working_dir.empty())
      img.workdir = ResolvePath("/", info.working_dir);
    img.user = info.user;
    if (info.shell && !info.shell->empty())
      img.shell = *info.shell;
    if (!info.reference.empty())
      out.base.image = info.reference;
    out.base.digest = info.digest;
    image_triggers = info.onbuild;
  }
  if (!img.env.Has("PATH"))
    img.env.Set("PATH", kDefaultPath);
  st.final_platform = platform;

  ArgScope args;
  onbuild_line_ = st.from->start_line;
  for (const Instruction* trig : stage_triggers)
    KILN_TRY(Dispatch(st, img, args, *trig, out.steps, true, st.from->start_line));
  for (const std::string& text : image_triggers) {
    auto parsed = ParseContainerfile(text, file_.filename);
    if (!parsed || parsed->instructions.size() != 1)
      return At(*st.from, "FROM " + st.base_written + ": invalid ONBUILD trigger \"" + text + "\" in the base image" +
                              (parsed ? std::string(": onbuild trigger should be a single expression")
                                      : ": " + parsed.error().message()));
    trigger_files_.push_back(std::move(*parsed));
    KILN_TRY(Dispatch(st, img, args, trigger_files_.back().instructions[0], out.steps, true,
                      st.from->start_line));
  }
  onbuild_line_ = 0;
  for (const Instruction* ins : st.body)
    KILN_TRY(Dispatch(st, img, args, *ins, out.steps, false, ins->start_line));

  img.config.env = img.env.ToList();
  KILN_TRY(Charge(st.from->start_line, Bytes(img.config.env)));
  img.config.working_dir = img.workdir;
  img.config.user = img.user;
  out.config = img.config;
  out.platform = platform;
  st.final_state = std::move(img);
  return Ok();
}

Status Compiler::Dispatch(StageInfo& st, ImageState& img, ArgScope& args, const Instruction& ins,
                          std::vector<Step>& steps, bool from_onbuild, int location_line) {
  if (from_onbuild && (ins.keyword == "onbuild" || ins.keyword == "from" || ins.keyword == "maintainer"))
    return At(location_line, Upper(ins.keyword) + " isn't allowed as an ONBUILD trigger");
  auto flags = ParseFlags(ins.keyword, ins.flags);
  if (!flags)
    return from_onbuild ? At(location_line, "ONBUILD trigger " + Upper(ins.keyword) + ": " + flags.error().message())
                        : Wrap(ins, flags.error());
  Step step;
  step.location = {file_.filename, location_line, from_onbuild ? location_line : ins.end_line};
  step.text = ins.original;
  step.from_onbuild = from_onbuild;
  const EnvLookup env = StageLookup(img, args);
  const std::string kw = ins.keyword;
  const std::string KW = Upper(kw);

  auto need_args = [&](size_t n) -> Status {
    if (ins.args.size() < n)
      return At(ins, KW + " requires at least " + std::to_string(n) + (n == 1 ? " argument" : " arguments"));
    return Ok();
  };
  auto pairs = [&](std::vector<std::pair<std::string, std::string>>* out) -> Status {
    KILN_TRY(need_args(1));
    // The parser gives (name, value, separator) triples, as BuildKit's
    // node list: separator "=" for NAME=VALUE, "" for the legacy NAME VALUE.
    size_t stride = 3;
    for (size_t i = 2; i < ins.args.size(); i += 3)
      if (ins.args[i] != "=" && !ins.args[i].empty())
        stride = 2;
    if (ins.args.size() % stride != 0)
      stride = 2;
    if (ins.args.size() % stride != 0)
      return At(ins, KW + " requires pairs of names and values");
    for (size_t i = 0; i + 1 < ins.args.size(); i += stride) {
      KILN_ASSIGN_OR_RETURN(std::string k, Expand(ins, ins.args[i], env));
      KILN_ASSIGN_OR_RETURN(std::string v, Expand(ins, ins.args[i + 1], env));
      if (k.empty())
        return At(ins, KW + " names can not be blank");
      out->emplace_back(std::move(k), std::move(v));
    }
    return Ok();
  };
  auto kv_text = [](const std::vector<std::pair<std::string, std::string>>& kvs) {
    std::string s;
    for (const auto& [k, v] : kvs)
      s += " " + k + "=" + v;
    return s;
  };

  if (kw == "run") {
    step.kind = StepKind::kRun;
    KILN_TRY(DispatchRun(st, img, args, ins, *flags, step));
  } else if (kw == "copy" || kw == "add") {
    step.kind = kw == "add" ? StepKind::kAdd : StepKind::kCopy;
    KILN_TRY(DispatchCopy(st, img, ins, *flags, step, kw == "add", env));
  } else if (kw == "env") {
    step.kind = StepKind::kEnv;
    EnvStep e;
    KILN_TRY(pairs(&e.vars));
    for (const auto& [k, v] : e.vars)
      img.env.Set(k, v);
    step.created_by = "ENV" + kv_text(e.vars);
    step.op = std::move(e);
  } else if (kw == "label") {
    step.kind = StepKind::kLabel;
    LabelStep l;
    KILN_TRY(pairs(&l.labels));
    for (const auto& [k, v] : l.labels) {
      auto& labels = img.config.labels;
      auto it = std::find_if(labels.begin(), labels.end(), [&](const auto& p) { return p.first == k; });
      if (it != labels.end())
        it->second = v;
      else
        labels.emplace_back(k, v);
    }
    step.created_by = "LABEL" + kv_text(l.labels);
    step.op = std::move(l);
  } else if (kw == "expose") {
    step.kind = StepKind::kExpose;
    KILN_TRY(need_args(1));
    ExposeStep e;
    for (const std::string& a : ins.args) {
      auto words = ExpandWords(a, env, Opts());
      if (!words)
        return Wrap(ins, words.error());
      for (const std::string& w : *words) {
        auto ports = ParseExposePort(w);
        if (!ports)
          return Wrap(ins, ports.error());
        for (auto& p : *ports)
          if (std::find(e.ports.begin(), e.ports.end(), p) == e.ports.end())
            e.ports.push_back(p);
      }
    }
    for (const auto& p : e.ports)
      if (std::find(img.config.exposed_ports.begin(), img.config.exposed_ports.end(), p) ==
          img.config.exposed_ports.end())
        img.config.exposed_ports.push_back(p);
    step.created_by = "EXPOSE " + Join(e.ports, " ");
    step.op = std::move(e);
  } else if (kw == "volume") {
    step.kind = StepKind::kVolume;
    KILN_TRY(need_args(1));
    VolumeStep v;
    for (const std::string& a : ins.args) {
      KILN_ASSIGN_OR_RETURN(std::string p, Expand(ins, a, env));
      if (p.empty())
        return At(ins, "VOLUME specified can not be an empty string");
      v.paths.push_back(p);
      if (std::find(img.config.volumes.begin(), img.config.volumes.end(), p) == img.config.volumes.end())
        img.config.volumes.push_back(p);
    }
    step.created_by = "VOLUME [" + Join(v.paths, " ") + "]";
    step.op = std::move(v);
  } else if (kw == "user") {
    step.kind = StepKind::kUser;
    KILN_TRY(need_args(1));
    KILN_ASSIGN_OR_RETURN(std::string u, Expand(ins, Join(ins.args, " "), env));
    if (u.empty())
      return At(ins, "USER requires a user name or id");
    img.user = u;
    step.created_by = "USER " + u;
    step.op = UserStep{u};
  } else if (kw == "workdir") {
    step.kind = StepKind::kWorkdir;
    KILN_TRY(need_args(1));
    KILN_ASSIGN_OR_RETURN(std::string p, Expand(ins, Join(ins.args, " "), env));
    if (p.empty())
      return At(ins, "WORKDIR requires a path");
    img.workdir = ResolvePath(img.workdir, p);
    step.created_by = "WORKDIR " + img.workdir;
    step.op = WorkdirStep{img.workdir};
  } else if (kw == "cmd" || kw == "entrypoint") {
    step.kind = kw == "cmd" ? StepKind::kCmd : StepKind::kEntrypoint;
    CommandStep c;
    c.shell_form = !ins.json_form;
    if (ins.json_form) {
      c.argv = ins.args;
    } else {
      c.argv = img.shell;
      c.argv.push_back(Join(ins.args, " "));
    }
    if (kw == "cmd") {
      img.config.cmd = c.argv;
      st.cmd_set = true;
    } else {
      img.config.entrypoint = c.argv;
      if (!st.cmd_set)
        img.config.cmd = std::vector<std::string>{};  // Docker: ENTRYPOINT resets an inherited CMD
    }
    step.created_by = KW + " " + GoQuoteList(c.argv);
    step.op = std::move(c);
  } else if (kw == "stopsignal") {
    step.kind = StepKind::kStopSignal;
    KILN_TRY(need_args(1));
    KILN_ASSIGN_OR_RETURN(std::string sig, Expand(ins, ins.args[0], env));
    if (auto s = ValidateSignal(sig); !s)
      return Wrap(ins, s.error());
    img.config.stop_signal = sig;
    step.created_by = "STOPSIGNAL " + sig;
    step.op = StopSignalStep{sig};
  } else if (kw == "healthcheck") {
    step.kind = StepKind::kHealthcheck;
    KILN_TRY(need_args(1));
    HealthcheckStep h;
    std::string type = Upper(ins.args[0]);
    if (type == "NONE") {
      if (ins.args.size() > 1)
        return At(ins, "HEALTHCHECK NONE takes no arguments");
      if (!flags->values.empty())
        return At(ins, "HEALTHCHECK NONE takes no flags");
      h.test = {"NONE"};
    } else if (type == "CMD") {
      if (ins.args.size() < 2)
        return At(ins, "HEALTHCHECK CMD requires a command");
      if (ins.json_form) {
        h.test = {"CMD"};
        h.test.insert(h.test.end(), ins.args.begin() + 1, ins.args.end());
      } else {
        h.test = {"CMD-SHELL", Join(std::vector<std::string>(ins.args.begin() + 1, ins.args.end()), " ")};
      }
      struct D {
        const char* flag;
        int64_t* out;
      } durations[] = {{"interval", &h.interval_ns},
                       {"timeout", &h.timeout_ns},
                       {"start-period", &h.start_period_ns},
                       {"start-interval", &h.start_interval_ns}};
      for (const D& d : durations) {
        if (!flags->Has(d.flag))
          continue;
        std::string v = flags->Get(d.flag);
        auto ns = ParseGoDuration(v);
        if (!ns)
          return At(ins, "HEALTHCHECK --" + std::string(d.flag) + "=" + v + ": " + ns.error().message());
        if (*ns != 0 && *ns < 1000000)
          return At(ins, "HEALTHCHECK --" + std::string(d.flag) + "=" + v + ": cannot be less than 1ms");
        *d.out = *ns;
      }
      if (flags->Has("retries")) {
        std::string v = flags->Get("retries");
        if (!IsDigits(v) || v.size() > 9)
          return At(ins, "HEALTHCHECK --retries=" + v + ": must be a non-negative integer");
        h.retries = std::stoi(v);
      }
    } else {
      return At(ins, "HEALTHCHECK: unknown type \"" + ins.args[0] + "\" (want CMD or NONE)");
    }
    img.config.healthcheck = h;
    step.created_by = "HEALTHCHECK " + GoQuoteList(h.test);
    step.op = std::move(h);
  } else if (kw == "shell") {
    step.kind = StepKind::kShell;
    if (!ins.json_form)
      return At(ins, "SHELL requires the arguments to be in JSON form");
    if (ins.args.empty())
      return At(ins, "SHELL requires at least one argument");
    img.shell = ins.args;
    img.config.shell = ins.args;
    step.created_by = "SHELL " + GoQuoteList(ins.args);
    step.op = ShellStep{ins.args};
  } else if (kw == "onbuild") {
    step.kind = StepKind::kOnbuild;
    if (ins.sub.empty())
      return At(ins, "ONBUILD requires an instruction");
    const std::string sub = ins.sub[0].keyword;
    if (sub == "onbuild" || sub == "from" || sub == "maintainer")
      return At(ins, Upper(sub) + " isn't allowed as an ONBUILD trigger");
    std::string trigger = TriggerText(ins);
    img.config.onbuild.push_back(trigger);
    step.created_by = "ONBUILD " + trigger;
    step.op = OnbuildStep{trigger};
  } else if (kw == "maintainer") {
    step.kind = StepKind::kMaintainer;
    KILN_TRY(need_args(1));
    std::string author = Join(ins.args, " ");
    img.config.author = author;
    step.created_by = "MAINTAINER " + author;
    step.op = MaintainerStep{author};
  } else if (kw == "arg") {
    step.kind = StepKind::kArg;
    KILN_TRY(need_args(1));
    ArgStep a;
    for (const std::string& word : ins.args) {
      ArgWord w = SplitArgWord(word);
      if (w.key.empty())
        return At(ins, "ARG names can not be blank");
      ArgStep::Def def{w.key, std::nullopt};
      if (auto it = opts_.build_args.find(w.key); it != opts_.build_args.end()) {
        def.value = it->second;  // the default is not expanded (BuildKit)
        consumed_.insert(w.key);
      } else if (w.raw_value) {
        KILN_ASSIGN_OR_RETURN(def.value, Expand(ins, *w.raw_value, env));
      } else if (meta_.Declared(w.key)) {
        def.value = meta_.Get(w.key);
        used_meta_.insert(w.key);
      }
      a.args.push_back(std::move(def));
    }
    std::string text = "ARG";
    for (const auto& d : a.args) {
      args.Set(d.name, d.value);
      text += " " + d.name + (d.value ? "=" + *d.value : "");
    }
    step.created_by = text;
    step.op = std::move(a);
  } else if (kw == "from") {
    return At(ins, "FROM is not allowed here");
  } else {
    return At(ins, "unknown instruction: " + KW);
  }
  size_t bytes = step.text.size() + step.created_by.size() + Bytes(step.proxy_env);
  if (const auto* r = std::get_if<RunStep>(&step.op)) {
    bytes += Bytes(r->env) + Bytes(r->args) + Bytes(r->argv);
    for (const auto& f : r->files)
      bytes += f.second.size();
  }
  KILN_TRY(Charge(location_line, bytes));
  steps.push_back(std::move(step));
  return Ok();
}

// ---------------------------------------------------------------- RUN

Expected<RunMount> Compiler::ParseMount(StageInfo& st, const ImageState& img, const EnvLookup& env,
                                        const Instruction& ins, const std::string& spec, int index,
                                        int ssh_count) {
  auto fail = [&](const std::string& why) { return At(ins, "RUN --mount=" + spec + ": " + why); };
  auto fields = SplitMountFields(spec);
  if (!fields)
    return Wrap(ins, fields.error());
  RunMount m;
  std::string type = "bind";
  for (const MountField& f : *fields)
    if (f.key == "type") {  // expanded like every other value (BuildKit)
      auto v = ExpandWord(f.value, env, Opts());
      if (!v)
        return Wrap(ins, v.error());
      type = Lower(*v);
    }
  static const std::map<std::string, MountType> kTypes = {{"bind", MountType::kBind},
                                                          {"cache", MountType::kCache},
                                                          {"tmpfs", MountType::kTmpfs},
                                                          {"secret", MountType::kSecret},
                                                          {"ssh", MountType::kSsh}};
  auto t = kTypes.find(type);
  if (t == kTypes.end())
    return fail("unsupported mount type \"" + type + "\" (want bind, cache, tmpfs, secret or ssh)");
  m.type = t->second;
  static const std::map<std::string, std::set<std::string>> kAllowed = {
      {"bind", {"type", "from", "source", "target", "readonly", "readwrite"}},
      {"cache", {"type", "from", "source", "target", "readonly", "readwrite", "id", "sharing", "mode", "uid", "gid"}},
      {"tmpfs", {"type", "target", "size"}},
      {"secret", {"type", "target", "id", "mode", "uid", "gid", "required", "env"}},
      {"ssh", {"type", "target", "id", "mode", "uid", "gid", "required"}},
  };
  static const std::map<std::string, std::string> kAliases = {
      {"src", "source"}, {"dst", "target"}, {"destination", "target"}, {"ro", "readonly"}, {"rw", "readwrite"}};
  bool read_only_set = false;
  for (const MountField& f : *fields) {
    std::string key = f.key;
    if (auto a = kAliases.find(key); a != kAliases.end())
      key = a->second;
    static const std::set<std::string> kKnown = {"type", "from", "source", "target", "readonly", "readwrite", "id",
                                                 "sharing", "mode", "uid", "gid", "required", "env", "size"};
    if (!kKnown.count(key)) {
      std::string near = lex::Suggest(f.key, {"type", "from", "source", "target", "readonly", "readwrite", "id",
                                              "sharing", "mode", "uid", "gid", "required", "env", "size"});
      return fail("unexpected key '" + f.key + "'" + (near.empty() ? "" : " (did you mean " + near + "?)"));
    }
    if (!kAllowed.at(type).count(key))
      return fail("option '" + f.key + "' is not valid for a type=" + type + " mount");
    if (key == "type" || key == "from")
      continue;  // from: resolved with the stage references
    bool is_bool = key == "readonly" || key == "readwrite" || key == "required";
    if (!f.has_value && !is_bool)
      return fail("option '" + f.key + "' needs a value");
    std::string value;
    if (f.has_value) {
      auto v = ExpandWord(f.value, env, Opts());
      if (!v)
        return Wrap(ins, v.error());
      value = *v;
    }
    if (is_bool) {
      bool b = true;
      if (f.has_value && !ParseGoBool(value, &b))
        return fail("option '" + f.key + "': invalid boolean \"" + value + "\"");
      if (key == "readonly") {
        m.read_only = b;
        read_only_set = true;
      } else if (key == "readwrite") {
        m.read_only = !b;
        read_only_set = true;
      } else {
        m.required = b;
      }
    } else if (key == "source") {
      m.source = value;
    } else if (key == "target") {
      m.target = value;
    } else if (key == "id") {
      m.id = value;
    } else if (key == "env") {
      m.env = value;
    } else if (key == "sharing") {
      if (value == "shared")
        m.sharing = CacheSharing::kShared;
      else if (value == "private")
        m.sharing = CacheSharing::kPrivate;
      else if (value == "locked")
        m.sharing = CacheSharing::kLocked;
      else
        return fail("invalid sharing \"" + value + "\" (want shared, private or locked)");
    } else if (key == "mode") {
      if (value.empty() || value.size() > 5 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '7'; }))
        return fail("invalid mode \"" + value + "\" (want octal, e.g. 0755)");
      uint32_t mode = 0;
      for (char c : value)
        mode = mode * 8 + static_cast<uint32_t>(c - '0');
      if (mode > 07777)
        return fail("invalid mode \"" + value + "\"");
      m.mode = mode;
    } else if (key == "uid" || key == "gid") {
      if (!IsDigits(value) || value.size() > 10)
        return fail("invalid " + key + " \"" + value + "\"");
      (key == "uid" ? m.uid : m.gid) = std::stoll(value);
    } else if (key == "size") {
      auto size = ParseByteSize(value);
      if (!size)
        return fail(size.error().message());
      m.size = *size;
    }
  }
  if (auto it = st.refs.find({&ins, index}); it != st.refs.end()) {
    CopySource src = it->second;
    if (src.kind == CopySource::Kind::kStage)
      src.stage = stages_[src.stage].graph_index;
    m.from = src;
  } else {
    for (const MountField& f : *fields) {
      if (f.key != "from")
        continue;
      // Only triggers of a base image get here (their references were not
      // collected up front).
      KILN_ASSIGN_OR_RETURN(CopySource src, ResolveFrom(ins, "RUN --mount from", f.value, st.source_index));
      KILN_TRY(CheckLateReference(st, src, "ONBUILD RUN --mount from=" + f.value, ins.start_line));
      if (src.kind == CopySource::Kind::kStage)
        src.stage = stages_[src.stage].graph_index;
      m.from = src;
    }
  }
  if (!m.target.empty())
    m.target = ResolvePath(img.workdir, m.target);
  switch (m.type) {
    case MountType::kBind:
    case MountType::kCache:
    case MountType::kTmpfs:
      if (m.target.empty())
        return fail("a type=" + type + " mount needs a target");
      if (m.type == MountType::kBind && !read_only_set)
        m.read_only = true;
      if (m.type != MountType::kBind && !read_only_set)
        m.read_only = false;
      if (m.type == MountType::kCache) {
        if (m.id.empty())
          m.id = m.target;
        if (!m.mode)
          m.mode = 0755;
        if (!m.uid)
          m.uid = 0;
        if (!m.gid)
          m.gid = 0;
      }
      break;
    case MountType::kSecret:
      if (m.id.empty() && m.target.empty())
        return fail("a type=secret mount needs an id or a target");
      if (m.id.empty())
        m.id = m.target.substr(m.target.rfind('/') + 1);
      if (m.target.empty() && m.env.empty())
        m.target = "/run/secrets/" + m.id;
      if (!m.mode)
        m.mode = 0400;
      if (!m.uid)
        m.uid = 0;
      if (!m.gid)
        m.gid = 0;
      m.read_only = true;
      break;
    case MountType::kSsh:
      if (m.id.empty())
        m.id = "default";
      if (m.target.empty())
        m.target = "/run/buildkit/ssh_agent." + std::to_string(ssh_count);
      if (!m.mode)
        m.mode = 0600;
      if (!m.uid)
        m.uid = 0;
      if (!m.gid)
        m.gid = 0;
      m.read_only = true;
      break;
  }
  return m;
}

Status Compiler::CheckLateReference(StageInfo& st, const CopySource& src, const std::string& what, int line) {
  if (src.kind != CopySource::Kind::kStage)
    return Ok();
  if (stages_[src.stage].graph_index < 0)
    return At(line, what + ": stage \"" + stages_[src.stage].display +
                        "\" is not built before this one (a base image's ONBUILD may only use earlier stages)");
  st.edges.push_back({src.stage, line});
  return Ok();
}

Status Compiler::DispatchRun(StageInfo& st, ImageState& img, ArgScope& args, const Instruction& ins,
                             const Flags& flags, Step& step) {
  RunStep r;
  const EnvLookup env = StageLookup(img, args);
  if (flags.Has("network")) {
    r.network = flags.Get("network");
    if (r.network != "default" && r.network != "none" && r.network != "host")
      return At(ins, "RUN --network=" + r.network + ": must be default, none or host");
  }
  if (flags.Has("security")) {
    r.security = flags.Get("security");
    if (r.security != "sandbox" && r.security != "insecure")
      return At(ins, "RUN --security=" + r.security + ": must be sandbox or insecure");
  }
  auto mounts = flags.GetList("mount");
  int ssh_count = 0;
  for (size_t i = 0; i < mounts.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(RunMount m, ParseMount(st, img, env, ins, mounts[i], static_cast<int>(i), ssh_count));
    if (m.type == MountType::kSsh)
      ++ssh_count;
    r.mounts.push_back(std::move(m));
  }
  if (ins.args.empty() && ins.heredocs.empty())
    return At(ins, "RUN requires at least one argument");
  if (ins.json_form) {
    r.argv = ins.args;
    r.command = Join(ins.args, " ");
  } else {
    r.shell_form = true;
    r.command = Join(ins.args, " ");
    std::string_view trimmed = r.command;
    while (!trimmed.empty() && (trimmed.front() == ' ' || trimmed.front() == '\t'))
      trimmed.remove_prefix(1);
    while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\t'))
      trimmed.remove_suffix(1);
    r.argv = img.shell;
    if (ins.heredocs.empty()) {
      r.argv.push_back(r.command);
    } else if (ins.heredocs.size() == 1 && trimmed.find(' ') == std::string_view::npos &&
               HeredocMarkerName(trimmed) == ins.heredocs[0].name) {
      // RUN <<EOF: the heredoc is the script; with a #! line it is run as a
      // file (BuildKit writes it to /dev/pipes/<name>).
      const Heredoc& h = ins.heredocs[0];
      std::string data = h.chomp ? ChompHeredoc(h.content) : h.content;
      if (data.rfind("#!", 0) == 0) {
        std::string path = "/dev/pipes/" + h.name;
        r.files.emplace_back(path, data);
        r.argv = {path};
      } else {
        r.argv.push_back(data);
      }
    } else {
      // The whole command line with the heredocs appended goes to the shell.
      std::string script = r.command;
      for (const Heredoc& h : ins.heredocs)
        script += "\n" + h.content + h.name;
      r.argv.push_back(script);
    }
    for (const Heredoc& h : ins.heredocs)
      r.heredocs.push_back({h.name, h.content, h.expand, h.file_descriptor});
  }
  r.env = img.env.ToList();
  std::vector<std::string> history_args;
  for (const auto& [k, v] : args.vars) {
    if (!v)
      continue;
    history_args.push_back(k + "=" + *v);
    if (!img.env.Has(k))
      r.args.push_back(k + "=" + *v);
  }
  // A proxy --build-arg, in any letter case, reaches RUN in both spellings
  // (BuildKit: HTTP_PROXY and http_proxy, ...; of several spellings given,
  // the last in sorted order wins). A name the step already has as ENV or
  // declared ARG keeps that value.
  for (size_t i = 0; i + 1 < std::size(kProxyArgs); i += 2) {
    const std::string upper = kProxyArgs[i], lower = kProxyArgs[i + 1];
    std::optional<std::string> value;
    for (const auto& [name, v] : opts_.build_args)  // sorted, as BuildKit
      if (Lower(name) == lower) {
        value = v;
        consumed_.insert(name);
      }
    if (!value || value->empty())
      continue;
    for (const std::string& name : {upper, lower})
      if (!args.Declared(name) && !img.env.Has(name))
        step.proxy_env.push_back(name + "=" + *value);
  }
  r.workdir = img.workdir;
  r.user = img.user;
  std::string created = "RUN ";
  if (!history_args.empty())
    created += "|" + std::to_string(history_args.size()) + " " + Join(history_args, " ") + " ";
  created += Join(r.argv, " ") + " # buildkit";
  step.created_by = created;
  step.empty_layer = false;
  step.op = std::move(r);
  return Ok();
}

// ---------------------------------------------------------------- COPY/ADD

bool IsUrl(std::string_view s) { return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0; }

bool IsGitSource(std::string_view s) {
  return s.rfind("git@", 0) == 0 || s.rfind("git://", 0) == 0 ||
         ((IsUrl(s) || s.rfind("ssh://", 0) == 0) && s.find(".git") != std::string_view::npos);
}

Status Compiler::DispatchCopy(StageInfo& st, ImageState& img, const Instruction& ins, const Flags& flags,
                              Step& step, bool is_add, const EnvLookup& env) {
  const std::string KW = is_add ? "ADD" : "COPY";
  CopyStep c;
  c.is_add = is_add;
  if (ins.args.size() < 2)
    return At(ins, KW + " requires at least two arguments, but only " + std::to_string(ins.args.size()) +
                       " was provided: the destination could not be determined");
  if (!ins.json_form && !ins.heredocs.empty()) {
    std::string name = HeredocMarkerName(ins.args.back());
    for (const Heredoc& hd : ins.heredocs)
      if (!name.empty() && hd.name == name)
        return At(ins, KW + " cannot accept a heredoc as a destination");
  }
  std::vector<std::string> written;
  for (size_t i = 0; i + 1 < ins.args.size(); ++i) {
    const std::string& raw = ins.args[i];
    if (!ins.json_form && !ins.heredocs.empty()) {
      std::string name = HeredocMarkerName(raw);
      auto h = std::find_if(ins.heredocs.begin(), ins.heredocs.end(),
                            [&](const Heredoc& hd) { return !name.empty() && hd.name == name; });
      if (h != ins.heredocs.end()) {
        HeredocFile f{h->name, h->chomp ? ChompHeredoc(h->content) : h->content, h->expand, h->file_descriptor};
        if (f.expand) {
          // As BuildKit: quotes are plain text (${X} expands inside them)
          // and the escape token is always the backslash.
          ExpandOptions o = Opts();
          o.skip_quotes = true;
          o.escape = '\\';
          auto v = ExpandWord(f.content, env, o);
          if (!v)
            return Wrap(ins, v.error());
          f.content = *v;
        }
        c.heredoc_sources.push_back(std::move(f));
        written.push_back(raw);
        continue;
      }
    }
    KILN_ASSIGN_OR_RETURN(std::string src, Expand(ins, raw, env));
    if (src.empty())
      return At(ins, KW + " source " + raw + " is empty after expansion");
    if (!is_add && IsUrl(src))
      return At(ins, "COPY " + src + ": source can't be a URL for COPY (use ADD)");
    c.sources.push_back(src);
    written.push_back(src);
  }
  KILN_ASSIGN_OR_RETURN(const std::string dest_written, Expand(ins, ins.args.back(), env));
  // BuildKit: an empty destination is the working directory.
  const std::string dest = dest_written.empty() ? "./" : dest_written;
  bool dir = dest == "." || dest.back() == '/' || (dest.size() >= 2 && dest.substr(dest.size() - 2) == "/.");
  c.dest = ResolvePath(img.workdir, dest);
  if (dir && c.dest != "/")
    c.dest += "/";
  c.workdir = img.workdir;

  if (flags.Has("from")) {
    auto it = st.refs.find({&ins, 0});
    CopySource src;
    if (it != st.refs.end()) {
      src = it->second;
    } else {
      // A trigger from a base image's ONBUILD: resolved only now.
      KILN_ASSIGN_OR_RETURN(src, ResolveFrom(ins, "COPY --from", flags.Get("from"), st.source_index));
      KILN_TRY(CheckLateReference(st, src, "ONBUILD COPY --from=" + flags.Get("from"), step.location.line));
    }
    if (src.kind == CopySource::Kind::kStage)
      src.stage = stages_[src.stage].graph_index;
    c.from = src;
  }
  if (flags.Has("chown")) {
    KILN_ASSIGN_OR_RETURN(c.chown, Expand(ins, flags.Get("chown"), env));
  }
  if (flags.Has("chmod")) {
    KILN_ASSIGN_OR_RETURN(c.chmod, Expand(ins, flags.Get("chmod"), env));
    if (auto s = ValidateChmod(c.chmod); !s)
      return At(ins, KW + " " + s.error().message());
  }
  c.link = flags.GetBool("link");
  c.parents = flags.GetBool("parents");
  for (const std::string& e : flags.GetList("exclude")) {
    KILN_ASSIGN_OR_RETURN(std::string x, Expand(ins, e, env));
    c.excludes.push_back(x);
  }
  if (flags.Has("checksum")) {
    KILN_ASSIGN_OR_RETURN(c.checksum, Expand(ins, flags.Get("checksum"), env));
    for (const auto& s : c.sources)
      if (!IsUrl(s) && !IsGitSource(s))
        return At(ins, "ADD --checksum: only valid for http(s) and git sources, not " + s);
  }
  c.keep_git_dir = flags.GetBool("keep-git-dir");
  if (flags.Has("unpack"))
    c.unpack = flags.GetBool("unpack");
  step.created_by = KW + " " + Join(written, " ") + " " + dest_written + " # buildkit";
  step.empty_layer = false;
  step.op = std::move(c);
  return Ok();
}

// ---------------------------------------------------------------- driver

Expected<BuildGraph> Compiler::Run() {
  target_platform_ = opts_.target_platform;
  if (target_platform_.os.empty() && target_platform_.architecture.empty())
    target_platform_ = opts_.build_platform.architecture.empty() ? Platform{"linux", "amd64"} : opts_.build_platform;
  build_platform_ = opts_.build_platform.architecture.empty() ? target_platform_ : opts_.build_platform;

  KILN_TRY(SplitStages());
  KILN_TRY(ComputeMetaArgs());
  KILN_TRY(ResolveStages());

  if (opts_.target.empty()) {
    target_ = static_cast<int>(stages_.size()) - 1;
  } else {
    for (const StageInfo& st : stages_)
      if (!st.name.empty() && st.name == Lower(opts_.target))
        target_ = st.source_index;
    if (target_ < 0) {
      std::string names;
      for (const StageInfo& st : stages_)
        if (!st.name.empty())
          names += (names.empty() ? "" : ", ") + st.name;
      return Error(Errc::kInvalidInput, file_.filename + ": target stage \"" + opts_.target +
                                            "\" could not be found (" +
                                            (names.empty() ? "the file has no named stages" : "stages: " + names) +
                                            ")");
    }
  }

  KILN_TRY(CollectAllReferences());
  KILN_TRY(CheckCycles());

  // Reachability from the target.
  std::vector<int> work = {target_};
  stages_[target_].reachable = true;
  while (!work.empty()) {
    int u = work.back();
    work.pop_back();
    for (const auto& e : stages_[u].edges)
      if (!stages_[e.to].reachable) {
        stages_[e.to].reachable = true;
        work.push_back(e.to);
      }
  }
  // BuildKit builds the reachable stages in file order: a reference to a
  // stage further down is an error there, not a reordering.
  for (const LateRef& r : late_refs_)
    if (stages_[r.stage].reachable)
      return At(r.line, r.message);
  // Dependencies first; among ready stages, file order (Kahn).
  std::vector<int> order;
  std::vector<bool> placed(stages_.size(), false);
  while (true) {
    int next = -1;
    for (const StageInfo& st : stages_) {
      if (!st.reachable || placed[st.source_index])
        continue;
      bool ready = std::all_of(st.edges.begin(), st.edges.end(), [&](const auto& e) { return placed[e.to]; });
      if (ready) {
        next = st.source_index;
        break;
      }
    }
    if (next < 0)
      break;
    placed[next] = true;
    order.push_back(next);
  }

  BuildGraph graph;
  graph.target_platform = target_platform_;
  graph.build_platform = build_platform_;
  for (int idx : order) {
    StageInfo& st = stages_[idx];
    st.graph_index = static_cast<int>(graph.stages.size());
    Stage out;
    out.index = st.graph_index;
    out.source_index = st.source_index;
    out.name = st.name;
    out.location = {file_.filename, st.from->start_line, st.from->end_line};
    KILN_TRY(DispatchStage(st, out));
    std::set<int> deps;
    for (const auto& e : st.edges)
      deps.insert(stages_[e.to].graph_index);
    out.deps.assign(deps.begin(), deps.end());
    graph.stages.push_back(std::move(out));
  }
  graph.target = stages_[target_].graph_index;

  for (const auto& [name, value] : meta_.vars)
    if ((used_meta_.count(name) || name == "SOURCE_DATE_EPOCH") && value)  // the build's timestamp (build_job)
      graph.global_args.emplace_back(name, *value);
  // Global ARG declarations consume build args even when unused (Docker).
  for (const Instruction* ins : global_args_)
    for (const std::string& w : ins->args)
      if (opts_.build_args.count(SplitArgWord(w).key))
        consumed_.insert(SplitArgWord(w).key);
  std::vector<std::string> unused;
  for (const auto& [k, v] : opts_.build_args)
    if (!consumed_.count(k) && !IsProxyArg(k) && k != "BUILDKIT_SANDBOX_HOSTNAME")  // read by the engine
      unused.push_back(k);
  if (!unused.empty())
    warnings_.push_back("one or more build args were not consumed: " + Join(unused, ", "));
  graph.warnings = std::move(warnings_);
  return graph;
}

}  // namespace

Expected<std::string> NormalizeImageReference(std::string_view ref) {
  auto parsed = ImageReference::Parse(ref);
  if (!parsed)
    return Error(Errc::kInvalidInput, parsed.error().message());
  return parsed->str();
}

Expected<BuildGraph> Compile(const File& file, const CompileOptions& options) {
  Compiler compiler(file, options);
  return compiler.Run();
}

}  // namespace kiln::frontend
