// RunBuildJob (build_job.h): the whole of one `kiln build` below the CLI.
#include "engine/build_job.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/build_attest.h"
#include "engine/emulation.h"
#include "engine/export.h"
#include "engine/progress_tty.h"
#include "engine/remote_cache.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/unique_fd.h"

namespace kiln::engine {

namespace {

// ------------------------------------------------------------ base images

BaseImageInfo InfoOf(const StoredImage& image) {
  BaseImageInfo info;
  info.env = image.config.config.env;
  info.working_dir = image.config.config.working_dir;
  info.user = image.config.config.user;
  info.onbuild = image.config.config.on_build;
  if (!image.config.config.shell.empty())
    info.shell = image.config.config.shell;
  // The index.json entry's digest: for a multi-platform base (an index)
  // the engine resolves it again with the stage's platform (a child
  // manifest digest is not an index.json entry).
  info.digest = image.top.digest.str();
  return info;
}

/// The compile's base-image resolver. Each (reference, platform) is
/// resolved once per build. In the first compile it only looks in the
/// store and leaves anything else (a base to pull, --pull=always/newer, an
/// error) for later with an empty config, so that the runnability check
/// comes before any pull; the second compile, needed only then, acquires
/// those bases (image::Acquire: the pull policy) and its errors name the
/// FROM line.
class BaseResolver {
 public:
  BaseResolver(Store& store, const image::AcquireOptions& acquire) : store_(store), acquire_(acquire) {}

  Expected<BaseImageInfo> Resolve(const std::string& ref, const Platform& p) {
    std::string key = ref + "|" + p.str();
    if (auto it = resolved_.find(key); it != resolved_.end())
      return it->second;
    if (first_pass_) {
      bool pull_anyway = acquire_.policy == image::PullPolicy::kAlways || acquire_.policy == image::PullPolicy::kNewer;
      auto image = pull_anyway ? Expected<StoredImage>(Error(Errc::kNotFound, "")) : image::ResolveLocal(store_, ref, p);
      if (!image) {
        deferred_ = true;
        return BaseImageInfo{};
      }
      return resolved_.emplace(key, InfoOf(*image)).first->second;
    }
    // A short name (FROM busybox) that the store has as localhost/busybox is
    // used as is (docs/cli.md "Image references and transports"), before
    // any pull of docker.io/library/busybox;
    // COPY --from=busybox follows the same rule (image::ResolveLocal).
    image::AcquireOptions ao = acquire_;
    ao.platform = p;
    KILN_ASSIGN_OR_RETURN(StoredImage image, image::Acquire(store_, ref, ao));
    return resolved_.emplace(key, InfoOf(image)).first->second;
  }

  /// true when the first compile left a base for the second.
  bool deferred() const { return deferred_; }
  void EndFirstPass() { first_pass_ = false; }

 private:
  Store& store_;
  const image::AcquireOptions& acquire_;
  std::map<std::string, BaseImageInfo> resolved_;
  bool first_pass_ = true;
  bool deferred_ = false;
};

Expected<std::vector<BuildGraph>> CompileAll(const BuildJob& job, BaseResolver& resolver) {
  frontend::CompileOptions copts = job.compile;
  copts.resolve_base = [&resolver](const std::string& ref, const Platform& p) { return resolver.Resolve(ref, p); };
  std::vector<BuildGraph> graphs;
  for (const Platform& tp : job.platforms) {
    copts.target_platform = tp;
    KILN_ASSIGN_OR_RETURN(BuildGraph g, frontend::Compile(*job.containerfile, copts));
    graphs.push_back(std::move(g));
  }
  return graphs;
}

Status CheckRunnableOnce(const std::vector<BuildGraph>& graphs, std::vector<std::string>* checked) {
  for (const BuildGraph& g : graphs) {
    for (const Stage& stage : g.stages) {
      bool has_run = std::any_of(stage.steps.begin(), stage.steps.end(),
                                 [](const Step& s) { return s.kind == StepKind::kRun; });
      std::string p = stage.platform.Normalized().str();
      if (!has_run || std::find(checked->begin(), checked->end(), p) != checked->end())
        continue;
      checked->push_back(p);
      KILN_TRY(CheckCanRun(stage.platform));
    }
  }
  return Ok();
}

// ------------------------------------------------------------ remote cache

/// --cache-from REF...: records imported before the build; a REF the
/// registry does not have yet (the first build of a pipeline) is a warning.
Status ImportRemoteCaches(Store& store, const BuildJob& job) {
  for (const std::string& ref : job.cache_from) {
    auto n = ImportCache(store, ref, job.cache_transfer);
    if (!n) {
      if (n.error().code() != Errc::kNotFound)
        return std::move(n).error();
      LogWarn(n.error().message() + " (no cache imported)");
      continue;
    }
    if (!job.quiet)
      LogInfo("imported " + std::to_string(*n) + " cache records from " + ref);
  }
  return Ok();
}

// ------------------------------------------------------------ multi-platform

bool SameStage(const Stage& a, const Stage& b) {
  if (a.name != b.name || !(a.platform.Normalized() == b.platform.Normalized()) || a.base.kind != b.base.kind ||
      a.base.image != b.base.image || a.base.digest != b.base.digest || a.steps.size() != b.steps.size())
    return false;
  for (size_t i = 0; i < a.steps.size(); ++i)
    if (StepCacheJson(a.steps[i]) != StepCacheJson(b.steps[i]))
      return false;
  return true;
}

/// Named stages of the first platform's graph that another platform's graph
/// has too, with the same platform and steps: `FROM --platform=$BUILDPLATFORM`
/// stages (the cross-compilation pattern). Dependencies come first.
std::vector<StageIndex> SharedStages(const std::vector<BuildGraph>& graphs) {
  std::vector<StageIndex> out;
  const BuildGraph& first = graphs.front();
  for (const Stage& stage : first.stages) {
    if (stage.name.empty() || stage.index == first.target)
      continue;
    bool shared = false;
    for (size_t j = 1; j < graphs.size() && !shared; ++j)
      for (const Stage& other : graphs[j].stages)
        if (SameStage(stage, other)) {
          shared = true;
          break;
        }
    if (shared)
      out.push_back(stage.index);
  }
  return out;
}

/// Progress for one platform's build: the engine writes into a pipe and a
/// thread copies each line to stderr, prefixed "[linux/arm64] " (plain) or
/// with a "platform" member (json), so parallel builds stay readable.
class PlatformProgress {
 public:
  PlatformProgress(ProgressMode mode, std::string label, const std::shared_ptr<TtyView>& view)
      : label_(std::move(label)) {
    if (view) {  // the live view: the platform names the rows
      progress_ = std::make_unique<Progress>(view, label_);
      return;
    }
    int fds[2];
    if (mode == ProgressMode::kQuiet || ::pipe2(fds, O_CLOEXEC) != 0) {
      progress_ = std::make_unique<Progress>(mode, STDERR_FILENO);
      return;
    }
    read_fd_ = UniqueFd(fds[0]);
    write_fd_ = UniqueFd(fds[1]);
    progress_ = std::make_unique<Progress>(mode, write_fd_.get());
    bool json = mode == ProgressMode::kJson;
    relay_ = std::thread([this, json] { Relay(json); });
  }
  PlatformProgress(const PlatformProgress&) = delete;
  PlatformProgress& operator=(const PlatformProgress&) = delete;
  ~PlatformProgress() { Close(); }

  Progress& progress() { return *progress_; }

  /// Waits until every line written so far is on stderr.
  void Close() {
    write_fd_.reset();
    if (relay_.joinable())
      relay_.join();
  }

 private:
  void Relay(bool json) {
    (void)ReadLines(read_fd_.get(), [&](std::string_view line) { Emit(std::string(line), json); });
  }

  void Emit(const std::string& line, bool json) {
    std::string out;
    if (json && line.size() > 2 && line[0] == '{')
      out = "{\"platform\":" + nlohmann::json(label_).dump() + "," + line.substr(1) + "\n";
    else
      out = "[" + label_ + "] " + line + "\n";
    (void)WriteAll(STDERR_FILENO, out);
  }

  std::string label_;
  UniqueFd read_fd_;
  UniqueFd write_fd_;
  std::unique_ptr<Progress> progress_;
  std::thread relay_;
};

/// Removes the index.json entry the engine made for a per-platform image
/// when it has no name (the index keeps its blobs alive).
void DropUnnamed(Store& store, const Descriptor& manifest) {
  auto images = store.ListImages();
  if (!images)
    return;
  for (const ImageEntry& e : *images)
    if (e.descriptor.digest == manifest.digest && e.names.empty())
      (void)store.RemoveImage(manifest.digest);
}

// ------------------------------------------------------------ outputs

/// "linux_arm64_v8": a directory name for one platform.
std::string PlatformDirName(const Platform& p) {
  std::string s = p.os + "_" + p.architecture;
  if (!p.variant.empty())
    s += "_" + p.variant;
  return s;
}

Status WriteOutputs(Store& store, const StoredImage& image, const std::vector<OutputSpec>& outputs,
                    const std::vector<std::string>& tags, bool multi) {
  for (const auto& out : outputs) {
    Status s;
    if (out.type == "local" && multi) {
      // One directory per platform (BuildKit's layout).
      auto idx = store.ReadIndex(image.top.digest);
      if (!idx)
        return std::move(idx).error();
      for (const Descriptor& d : idx->manifests) {
        auto child = store.LoadImage(d);
        if (!child)
          return std::move(child).error();
        s = ExportRootfsDir(store, *child, JoinPath(out.dest, PlatformDirName(child->config.platform())));
        if (!s)
          break;
      }
    } else if (out.type == "local") {
      s = ExportRootfsDir(store, image, out.dest);
    } else if (out.type == "tar") {
      s = ExportRootfsTar(store, image, out.dest);
    } else if (out.type == "oci-archive" || out.type == "docker-archive") {
      SaveItem item{image, tags};
      s = SaveArchive(store, {item}, out.dest,
                      out.type == "oci-archive" ? ArchiveFormat::kOciArchive : ArchiveFormat::kDockerArchive);
    } else if (out.type == "oci") {
      auto dest = TransportRef::Parse("oci:" + out.dest);
      s = dest ? PushImage(store, image, tags.empty() ? "" : tags[0], *dest, TransferOptions{})
               : Status(std::move(dest).error());
    } else {
      s = Error(Errc::kInvalidInput, "--output: unknown type \"" + out.type + "\"");
    }
    if (!s)
      return std::move(s).error().WithContext("--output type=" + out.type + ",dest=" + out.dest);
  }
  return Ok();
}

/// Builds every platform's graph at once (one thread each, all on the
/// shared oneTBB scheduler), after the shared BUILDPLATFORM stages, then
/// stores an index of the per-platform manifests named by the tags.
Expected<std::string> BuildMultiPlatform(const BuildJob& job, const std::vector<BuildGraph>& graphs,
                                         const BuildOptions& base_opts, Store& store, const std::string& started) {
  BuildOptions opts = base_opts;
  opts.tags.clear();  // the index gets the names
  opts.commit_name.clear();
  std::vector<std::string> step_keys;  // every platform's, for --cache-to
  // One live view for every platform's build (plain and json: a prefix or
  // a "platform" member per line, PlatformProgress).
  std::shared_ptr<TtyView> view;
  if (job.progress == ProgressMode::kTty)
    view = std::make_shared<TtyView>(STDERR_FILENO);
  std::unique_ptr<Progress> progress_top =
      view ? std::make_unique<Progress>(view, "") : std::make_unique<Progress>(job.progress, STDERR_FILENO);

  // 1. Stages every platform shares (FROM --platform=$BUILDPLATFORM) run
  //    once, first; the platforms' builds then find them in the cache.
  //    Without the cache (--no-cache) each platform runs them itself.
  if (opts.use_cache) {
    for (StageIndex index : SharedStages(graphs)) {
      const std::string& name = graphs.front().stages[static_cast<size_t>(index)].name;
      BuildGraph g = StageSubgraph(graphs.front(), index);
      PlatformProgress pp(job.progress, "shared:" + name, view);
      auto r = Build(g, store, opts, pp.progress());
      for (std::string& k : pp.progress().StepKeys())
        step_keys.push_back(std::move(k));
      pp.Close();
      if (!r)
        return std::move(r).error().WithContext("stage " + name);
      DropUnnamed(store, r->manifest);
    }
  }

  // 2. Every platform in parallel.
  size_t n = graphs.size();
  std::vector<std::optional<Expected<BuildResult>>> results(n);
  {
    std::vector<std::unique_ptr<PlatformProgress>> progress;
    for (size_t i = 0; i < n; ++i)
      progress.push_back(std::make_unique<PlatformProgress>(job.progress, graphs[i].target_platform.str(), view));
    std::vector<std::thread> threads;
    for (size_t i = 0; i < n; ++i)
      threads.emplace_back([&, i] { results[i] = Build(graphs[i], store, opts, progress[i]->progress()); });
    for (auto& t : threads)
      t.join();
    for (auto& p : progress) {
      for (std::string& k : p->progress().StepKeys())
        step_keys.push_back(std::move(k));
      p->Close();
    }
  }
  for (size_t i = 0; i < n; ++i)
    if (!*results[i])
      return std::move(*results[i]).error().WithContext(graphs[i].target_platform.str());

  // 3. The index (or Docker manifest list), each entry with its platform.
  Index index;
  index.media_type = std::string(opts.docker_format ? kMediaTypeDockerManifestList : kMediaTypeOciIndex);
  std::vector<Descriptor> attestations;  // --sbom/--provenance: after the images, as BuildKit
  for (size_t i = 0; i < n; ++i) {
    const BuildResult& r = **results[i];
    KILN_ASSIGN_OR_RETURN(StoredImage image, store.LoadImage(r.manifest));
    Descriptor d;
    d.media_type = r.manifest.media_type;
    d.digest = r.manifest.digest;
    d.size = r.manifest.size;
    d.platform = image.config.platform();
    index.manifests.push_back(d);
    KILN_ASSIGN_OR_RETURN(auto att, AttestImage(job, graphs[i], base_opts, store, d, started, *progress_top));
    if (att)
      attestations.push_back(std::move(*att));
  }
  index.manifests.insert(index.manifests.end(), attestations.begin(), attestations.end());
  KILN_ASSIGN_OR_RETURN(Descriptor top, store.PutBlob(index.media_type, ToJson(index)));
  KILN_TRY(store.AddImage(top, base_opts.tags));
  for (const Descriptor& d : index.manifests)
    DropUnnamed(store, d);
  for (const auto& tag : base_opts.tags)
    progress_top->Tagged(tag);
  KILN_ASSIGN_OR_RETURN(StoredImage image, store.LoadImage(top));
  KILN_TRY(WriteOutputs(store, image, job.outputs, base_opts.tags, true));
  if (!job.cache_to.empty())
    KILN_TRY(ExportCache(store, step_keys, job.cache_to, job.cache_transfer));
  progress_top->Succeeded();
  return top.digest.str();
}

}  // namespace

Status CheckRunnable(const std::vector<BuildGraph>& graphs) {
  std::vector<std::string> checked;
  return CheckRunnableOnce(graphs, &checked);
}

BuildGraph StageSubgraph(const BuildGraph& graph, StageIndex index) {
  std::vector<bool> keep(graph.stages.size(), false);
  std::vector<StageIndex> todo = {index};
  while (!todo.empty()) {
    StageIndex s = todo.back();
    todo.pop_back();
    if (s < 0 || static_cast<size_t>(s) >= keep.size() || keep[static_cast<size_t>(s)])
      continue;
    keep[static_cast<size_t>(s)] = true;
    for (StageIndex d : graph.stages[static_cast<size_t>(s)].deps)
      todo.push_back(d);
  }
  std::vector<StageIndex> renum(graph.stages.size(), -1);
  StageIndex n = 0;
  for (size_t i = 0; i < keep.size(); ++i)
    if (keep[i])
      renum[i] = n++;
  auto map = [&](StageIndex s) { return s >= 0 && static_cast<size_t>(s) < renum.size() ? renum[static_cast<size_t>(s)] : s; };
  auto map_source = [&](CopySource& c) {
    if (c.kind == CopySource::Kind::kStage)
      c.stage = map(c.stage);
  };
  BuildGraph out;
  out.target_platform = graph.target_platform;
  out.build_platform = graph.build_platform;
  out.global_args = graph.global_args;
  for (size_t i = 0; i < graph.stages.size(); ++i) {
    if (!keep[i])
      continue;
    Stage s = graph.stages[i];
    s.index = renum[i];
    for (StageIndex& d : s.deps)
      d = map(d);
    if (s.base.kind == StageBase::Kind::kStage)
      s.base.stage = map(s.base.stage);
    for (Step& step : s.steps) {
      if (auto* copy = std::get_if<CopyStep>(&step.op))
        map_source(copy->from);
      if (auto* run = std::get_if<RunStep>(&step.op))
        for (RunMount& m : run->mounts)
          if (m.from)
            map_source(*m.from);
    }
    out.stages.push_back(std::move(s));
  }
  out.target = n - 1;
  return out;
}

Expected<std::string> RunBuildJob(const BuildJob& job, Store& store) {
  if (job.containerfile == nullptr || job.platforms.empty())
    return Error(Errc::kInvalidInput, "build: no Containerfile or no platform");
  KILN_TRY(CheckAttestOptions(job, job.platforms.size()));
  const std::string started = FormatRfc3339(static_cast<int64_t>(std::time(nullptr)));
  // 1. Compile once per platform with what the store has. RUN steps of a
  //    stage whose platform this machine cannot execute fail the build
  //    here, before anything is pulled (exit 2, multiplatform.md).
  BaseResolver resolver(store, job.acquire);
  KILN_ASSIGN_OR_RETURN(std::vector<BuildGraph> graphs, CompileAll(job, resolver));
  for (const auto& w : graphs.front().warnings)
    LogWarn(w);
  std::vector<std::string> checked;
  KILN_TRY(CheckRunnableOnce(graphs, &checked));
  if (graphs.size() > 1)
    for (const auto& out : job.outputs)
      if (out.type == "docker-archive" || out.type == "tar")
        return Error(Errc::kInvalidInput, "--output type=" + out.type +
                                              " holds one platform: use type=oci-archive, oci or "
                                              "local for a multi-platform build");
  KILN_TRY(ImportRemoteCaches(store, job));
  // 2. Bases to pull (or --pull=always/newer): pulled now, by the pull
  //    policy, and the graphs compiled again with their configs.
  if (resolver.deferred()) {
    resolver.EndFirstPass();
    KILN_ASSIGN_OR_RETURN(graphs, CompileAll(job, resolver));
    KILN_TRY(CheckRunnableOnce(graphs, &checked));  // ONBUILD of a pulled base may add RUN steps
  }

  BuildOptions opts = job.options;
  // A global `ARG SOURCE_DATE_EPOCH=N` is the timestamp when neither --timestamp,
  // --build-arg SOURCE_DATE_EPOCH nor $SOURCE_DATE_EPOCH gave one (BuildKit).
  if (!opts.timestamp)
    for (const auto& [name, value] : graphs.front().global_args) {
      if (name != "SOURCE_DATE_EPOCH" || value.empty())
        continue;
      char* end = nullptr;
      errno = 0;
      long long v = std::strtoll(value.c_str(), &end, 10);
      if (errno != 0 || *end != '\0' || v < 0)
        return Error(Errc::kInvalidInput, job.containerfile->filename + ": invalid SOURCE_DATE_EPOCH: " + value +
                                              " (ARG default: seconds since the epoch)");
      opts.timestamp = v;
    }
  opts.pull = [&store, &job](const std::string& ref, const Platform& p) {
    if (job.acquire.policy == image::PullPolicy::kNever)
      return Status(Error(Errc::kNotFound, "image not known: " + ref + " (--pull=never)"));
    image::AcquireOptions ao = job.acquire;
    ao.platform = p;
    auto pulled = image::Pull(store, ref, ao);
    return pulled ? Ok() : Status(std::move(pulled).error().WithContext("pull " + ref));
  };
  if (graphs.size() > 1)
    return BuildMultiPlatform(job, graphs, opts, store, started);

  Progress progress(job.progress, STDERR_FILENO);
  KILN_ASSIGN_OR_RETURN(BuildResult result, Build(graphs.front(), store, opts, progress));
  Descriptor top = result.manifest;
  if (job.attest.any()) {
    // The image and its attestation manifest in an index (BuildKit's form),
    // which takes the image's names; the image ID stays the config's.
    KILN_ASSIGN_OR_RETURN(auto att, AttestImage(job, graphs.front(), opts, store, result.manifest, started, progress));
    if (att) {
      KILN_ASSIGN_OR_RETURN(top, IndexWithAttestation(store, result.manifest, *att, opts.tags));
    }
  }
  KILN_ASSIGN_OR_RETURN(StoredImage image, store.LoadImage(top));
  KILN_TRY(WriteOutputs(store, image, job.outputs, opts.tags, false));
  if (!job.cache_to.empty())
    KILN_TRY(ExportCache(store, progress.StepKeys(), job.cache_to, job.cache_transfer));
  progress.Succeeded();
  return result.image_id.str();
}

}  // namespace kiln::engine
