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

#include "compile_internal.h"
#include "kiln/reference.h"

namespace kiln::frontend {
namespace compile_internal {
namespace {

bool IsProxyArg(std::string_view name) {
  for (const char* p : kProxyArgs)
    if (name == p)
      return true;
  return false;
}

}  // namespace

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
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

/// path.Join("/", base, p) unless p is absolute.
std::string ResolvePath(const std::string& workdir, std::string_view p) {
  if (!p.empty() && p[0] == '/')
    return CleanPath(p);
  return CleanPath("/" + workdir + "/" + std::string(p));
}

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

namespace {

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

}  // namespace

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
    // A named context (--build-context NAME=...) replaces a stage of that
    // name (BuildKit): the stage is then not built for this reference.
    if (!opts_.build_contexts.count(from))
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

  // Reachability from the target. The ONBUILD triggers of a reachable
  // stage's base image may name further stages (ONBUILD RUN --mount from=,
  // COPY --from): the image is looked at only for reachable stages.
  std::vector<int> work = {target_};
  stages_[target_].reachable = true;
  std::set<int> triggers_seen;
  while (!work.empty()) {
    int u = work.back();
    work.pop_back();
    if (triggers_seen.insert(u).second)
      KILN_TRY(CollectImageTriggerReferences(stages_[u]));
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
  KILN_TRY(CheckCycles());  // again: ONBUILD triggers of base images added edges
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
    if (!consumed_.count(k) && !IsProxyArg(k) && k != "BUILDKIT_SANDBOX_HOSTNAME" &&  // read by the engine
        k != "SOURCE_DATE_EPOCH")  // the build's timestamp, as BuildKit (build_job, cmd_build)
      unused.push_back(k);
  if (!unused.empty())
    warnings_.push_back("one or more build args were not consumed: " + Join(unused, ", "));
  graph.warnings = std::move(warnings_);
  return graph;
}

}  // namespace compile_internal

Expected<std::string> NormalizeImageReference(std::string_view ref) {
  auto parsed = ImageReference::Parse(ref);
  if (!parsed)
    return Error(Errc::kInvalidInput, parsed.error().message());
  return parsed->str();
}

Expected<BuildGraph> Compile(const File& file, const CompileOptions& options) {
  compile_internal::Compiler compiler(file, options);
  return compiler.Run();
}

}  // namespace kiln::frontend
