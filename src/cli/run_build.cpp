// RunBuild: the CLI side of `kiln build` -- opens the store, compiles the
// Containerfile with a store-backed base-image resolver (pulling as --pull
// says), runs the engine and writes the requested outputs.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/build_request.h"
#include "cli/emulation.h"
#include "cli/remote_cache.h"
#include "engine/build.h"
#include "engine/export.h"
#include "ignore.h"
#include "kiln/acquire.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/reference.h"
#include "kiln/registry.h"
#include "kiln/store.h"
#include "kiln/transport.h"

namespace kiln::cli {

namespace {

// ------------------------------------------------------------ remote cache

TransferOptions RemoteCacheOptions(const BuildRequest& req, bool quiet) {
  TransferOptions to;
  to.tls_verify = req.tls_verify;
  to.authfile = req.authfile;
  to.quiet = true;  // blob-by-blob lines would drown the build's own output
  (void)quiet;
  return to;
}

/// --cache-from REF...: records imported before the build; a REF the
/// registry does not have yet (the first build of a pipeline) is a warning.
Status ImportRemoteCaches(Store& store, const BuildRequest& req, bool quiet) {
  for (const std::string& ref : req.cache_from) {
    auto n = ImportCache(store, ref, RemoteCacheOptions(req, quiet));
    if (!n) {
      if (n.error().code() != Errc::kNotFound)
        return std::move(n).error();
      LogWarn(n.error().message() + " (no cache imported)");
      continue;
    }
    if (!quiet)
      LogInfo("imported " + std::to_string(*n) + " cache records from " + ref);
  }
  return Ok();
}

engine::ProgressMode ProgressModeFor(const BuildRequest& req) {
  if (req.quiet)
    return engine::ProgressMode::kQuiet;
  if (req.progress == "json")
    return engine::ProgressMode::kJson;
  return engine::ProgressMode::kPlain;  // tty: the plain view for now
}


// ------------------------------------------------------------ multi-platform

/// RUN steps of a stage whose platform this machine cannot execute fail the
/// build before it starts (exit 2, multiplatform.md).
Status CheckRunnable(const std::vector<BuildGraph>& graphs) {
  std::vector<std::string> checked;
  for (const BuildGraph& g : graphs) {
    for (const Stage& stage : g.stages) {
      bool has_run = std::any_of(stage.steps.begin(), stage.steps.end(),
                                 [](const Step& s) { return s.kind == StepKind::kRun; });
      std::string p = stage.platform.Normalized().str();
      if (!has_run || std::find(checked.begin(), checked.end(), p) != checked.end())
        continue;
      checked.push_back(p);
      KILN_TRY(CheckCanRun(stage.platform));
    }
  }
  return Ok();
}

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
std::vector<std::string> SharedStages(const std::vector<BuildGraph>& graphs) {
  std::vector<std::string> out;
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
      out.push_back(stage.name);
  }
  return out;
}

/// Progress for one platform's build: the engine writes into a pipe and a
/// thread copies each line to stderr, prefixed "[linux/arm64] " (plain) or
/// with a "platform" member (json), so parallel builds stay readable.
class PlatformProgress {
 public:
  PlatformProgress(engine::ProgressMode mode, std::string label) : label_(std::move(label)) {
    int fds[2];
    if (mode == engine::ProgressMode::kQuiet || ::pipe2(fds, O_CLOEXEC) != 0) {
      progress_ = std::make_unique<engine::Progress>(mode, STDERR_FILENO);
      return;
    }
    read_fd_ = UniqueFd(fds[0]);
    write_fd_ = UniqueFd(fds[1]);
    progress_ = std::make_unique<engine::Progress>(mode, write_fd_.get());
    bool json = mode == engine::ProgressMode::kJson;
    relay_ = std::thread([this, json] { Relay(json); });
  }
  PlatformProgress(const PlatformProgress&) = delete;
  PlatformProgress& operator=(const PlatformProgress&) = delete;
  ~PlatformProgress() { Close(); }

  engine::Progress& progress() { return *progress_; }

  /// Waits until every line written so far is on stderr.
  void Close() {
    write_fd_.reset();
    if (relay_.joinable())
      relay_.join();
  }

 private:
  void Relay(bool json) {
    std::string buf;
    char chunk[8192];
    for (;;) {
      ssize_t n = ::read(read_fd_.get(), chunk, sizeof chunk);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      buf.append(chunk, static_cast<size_t>(n));
      size_t nl;
      while ((nl = buf.find('\n')) != std::string::npos) {
        Emit(buf.substr(0, nl), json);
        buf.erase(0, nl + 1);
      }
    }
    if (!buf.empty())
      Emit(buf, json);
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
  std::unique_ptr<engine::Progress> progress_;
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

/// "linux_arm64_v8": a directory name for one platform.
std::string PlatformDirName(const Platform& p) {
  std::string s = p.os + "_" + p.architecture;
  if (!p.variant.empty())
    s += "_" + p.variant;
  return s;
}

Status WriteOutputs(Store& store, const StoredImage& image, const BuildRequest& req,
                    const std::vector<std::string>& tags, bool multi) {
  for (const auto& out : req.outputs) {
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
        s = engine::ExportRootfsDir(store, *child, JoinPath(out.dest, PlatformDirName(child->config.platform())));
        if (!s)
          break;
      }
    } else if (out.type == "local") {
      s = engine::ExportRootfsDir(store, image, out.dest);
    } else if (out.type == "tar") {
      s = engine::ExportRootfsTar(store, image, out.dest);
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

int Finish(const BuildRequest& req, const std::string& id) {
  if (!req.iidfile.empty()) {
    if (auto s = WriteFileAtomic(req.iidfile, id); !s)
      return ReportError(std::move(s).error().WithContext("--iidfile"));
  }
  std::printf("%s\n", id.c_str());
  return 0;
}

/// Builds every platform's graph at once (one thread each, all on the
/// shared oneTBB scheduler), after the shared BUILDPLATFORM stages, then
/// stores an index of the per-platform manifests named by -t.
int RunMultiPlatform(const BuildRequest& req, const frontend::CompileOptions& copts,
                     const std::vector<BuildGraph>& graphs, const engine::BuildOptions& base_opts, Store& store) {
  engine::BuildOptions opts = base_opts;
  opts.tags.clear();  // the index gets the names
  engine::ProgressMode mode = ProgressModeFor(req);
  std::vector<std::string> step_keys;  // every platform's, for --cache-to

  // 1. Stages every platform shares (FROM --platform=$BUILDPLATFORM) run
  //    once, first; the platforms' builds then find them in the cache.
  //    Without the cache (--no-cache) each platform runs them itself.
  if (opts.use_cache) {
    for (const std::string& name : SharedStages(graphs)) {
      frontend::CompileOptions so = copts;
      so.target_platform = graphs.front().target_platform;
      so.target = name;
      auto g = frontend::Compile(req.containerfile, so);
      if (!g)
        return ReportError(g.error());
      PlatformProgress pp(mode, "shared:" + name);
      auto r = engine::Build(*g, store, opts, pp.progress());
      for (std::string& k : pp.progress().StepKeys())
        step_keys.push_back(std::move(k));
      pp.Close();
      if (!r)
        return ReportError(std::move(r).error().WithContext("stage " + name));
      DropUnnamed(store, r->manifest);
    }
  }

  // 2. Every platform in parallel.
  size_t n = graphs.size();
  std::vector<std::optional<Expected<engine::BuildResult>>> results(n);
  {
    std::vector<std::unique_ptr<PlatformProgress>> progress;
    for (size_t i = 0; i < n; ++i)
      progress.push_back(std::make_unique<PlatformProgress>(mode, graphs[i].target_platform.str()));
    std::vector<std::thread> threads;
    for (size_t i = 0; i < n; ++i)
      threads.emplace_back([&, i] { results[i] = engine::Build(graphs[i], store, opts, progress[i]->progress()); });
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
      return ReportError(std::move(*results[i]).error().WithContext(graphs[i].target_platform.str()));

  // 3. The index (or Docker manifest list), each entry with its platform.
  Index index;
  index.media_type = std::string(opts.docker_format ? kMediaTypeDockerManifestList : kMediaTypeOciIndex);
  for (size_t i = 0; i < n; ++i) {
    const engine::BuildResult& r = **results[i];
    auto image = store.LoadImage(r.manifest);
    if (!image)
      return ReportError(image.error());
    Descriptor d;
    d.media_type = r.manifest.media_type;
    d.digest = r.manifest.digest;
    d.size = r.manifest.size;
    d.platform = image->config.platform();
    index.manifests.push_back(d);
  }
  auto top = store.PutBlob(index.media_type, ToJson(index));
  if (!top)
    return ReportError(top.error());
  if (auto s = store.AddImage(*top, base_opts.tags); !s)
    return ReportError(s.error());
  for (const Descriptor& d : index.manifests)
    DropUnnamed(store, d);
  auto image = store.LoadImage(*top);
  if (!image)
    return ReportError(image.error());
  if (auto s = WriteOutputs(store, *image, req, base_opts.tags, true); !s)
    return ReportError(s.error());
  if (!req.cache_to.empty())
    if (auto s = ExportCache(store, step_keys, req.cache_to, RemoteCacheOptions(req, true)); !s)
      return ReportError(s.error());
  return Finish(req, top->digest.str());
}

}  // namespace

int RunBuild(const BuildRequest& req, Context& ctx) {
  // Fail fast (multiplatform.md): the CLI's graphs (no base images resolved
  // yet) already say which platforms have RUN steps; check them before any
  // base image is pulled.
  if (auto s = CheckRunnable(req.graphs); !s)
    return ReportError(s.error());
  auto store = Store::Open(ctx.StoreRoot());
  if (!store)
    return ReportError(store.error());
  auto lease = store->AcquireLease("build");  // until the images are tagged
  if (!lease)
    return ReportError(lease.error());
  registry::RegisterDockerTransport();
  const Platform platform = req.platforms.empty() ? Platform::Host() : req.platforms[0];
  bool quiet = req.quiet || req.progress == "json";
  if (auto s = ImportRemoteCaches(*store, req, quiet); !s)
    return ReportError(s.error());

  // Base images: the store first; pulled when missing (--pull=missing), every
  // time (always) or never.
  auto policy = image::ParsePullPolicy(req.pull);
  if (!policy)
    return ReportError(policy.error());
  image::AcquireOptions acquire;
  acquire.policy = *policy;
  acquire.transfer.tls_verify = req.tls_verify;
  acquire.transfer.authfile = req.authfile;
  acquire.transfer.quiet = quiet;
  if (!quiet)
    acquire.transfer.progress = [](const std::string& line) { LogInfo(line); };
  frontend::CompileOptions copts = req.CompileOptionsFor(platform);
  copts.resolve_base = [&](const std::string& ref, const Platform& p) -> Expected<BaseImageInfo> {
    // A short name (FROM busybox) that the store has as localhost/busybox is
    // used as is (CLI.md), before any pull of docker.io/library/busybox;
    // COPY --from=busybox follows the same rule (image::ResolveLocal).
    image::AcquireOptions ao = acquire;
    ao.platform = p;
    auto image = image::Acquire(*store, ref, ao);
    if (!image)
      return std::move(image).error();
    BaseImageInfo info;
    info.env = image->config.config.env;
    info.working_dir = image->config.config.working_dir;
    info.user = image->config.config.user;
    info.onbuild = image->config.config.on_build;
    if (!image->config.config.shell.empty())
      info.shell = image->config.config.shell;
    // The index.json entry's digest: for a multi-platform base (an index)
    // the engine resolves it again with the stage's platform (a child
    // manifest digest is not an index.json entry).
    info.digest = image->top.digest.str();
    return info;
  };
  // One graph per target platform (multiplatform.md); a platform whose RUN
  // steps this machine cannot execute fails here, before anything runs.
  std::vector<BuildGraph> graphs;
  for (const Platform& tp : req.platforms) {
    frontend::CompileOptions po = copts;
    po.target_platform = tp;
    auto g = frontend::Compile(req.containerfile, po);
    if (!g)
      return ReportError(g.error());
    if (graphs.empty())
      for (const auto& w : g->warnings)
        LogWarn(w);
    graphs.push_back(std::move(*g));
  }
  if (auto s = CheckRunnable(graphs); !s)
    return ReportError(s.error());
  if (graphs.size() > 1)
    for (const auto& out : req.outputs)
      if (out.type == "docker-archive" || out.type == "tar")
        return ReportError(Error(Errc::kInvalidInput, "--output type=" + out.type +
                                                          " holds one platform: use type=oci-archive, oci or "
                                                          "local for a multi-platform build"));
  const BuildGraph* graph = &graphs.front();

  engine::BuildOptions opts;
  opts.context_dir = req.context_dir;
  if (!req.ignore_patterns.empty()) {
    auto m = frontend::IgnoreMatcher::Create(req.ignore_patterns);
    if (!m)
      return ReportError(std::move(m).error().WithContext(req.ignore_file));
    opts.ignore = *m;
  }
  for (const auto& [name, value] : req.build_contexts)
    if (value.rfind("docker-image://", 0) != 0)
      opts.named_contexts[name] = value;
  for (const auto& t : req.tags) {
    auto ref = ImageReference::ParseWithDefaultDomain(t, "localhost");
    if (!ref)
      return ReportError(std::move(ref).error().WithContext("-t " + t));
    opts.tags.push_back(ref->str());
  }
  opts.compression = req.compression == "zstd" ? layer::Compression::kZstd : layer::Compression::kGzip;
  opts.docker_format = req.format == "docker";
  opts.timestamp = req.timestamp;
  opts.network = req.network == "none" ? NetworkMode::kNone
                 : req.network == "host" ? NetworkMode::kHost
                                         : NetworkMode::kPrivate;
  opts.jobs = req.jobs > 0 ? static_cast<size_t>(req.jobs) : 0;
  opts.use_cache = !req.no_cache && req.layers;
  opts.write_cache = req.layers;
  opts.no_cache_filter = req.no_cache_filter;
  opts.explain_cache = req.explain_cache;
  opts.containerfile = req.containerfile_path;
  opts.secret_cache_key = req.secret_cache_key;
  if (auto s = ResolveBuildSecrets(req, &opts.secrets, &opts.ssh); !s)
    return ReportError(s.error());
  for (const auto& [k, v] : req.labels)
    opts.labels[k] = v;
  for (const auto& [k, v] : req.annotations)
    opts.annotations[k] = v;
  opts.squash = req.squash;
  opts.pull = [&](const std::string& ref, const Platform& p) {
    if (req.pull == "never")
      return Status(Error(Errc::kNotFound, "image not known: " + ref + " (--pull=never)"));
    image::AcquireOptions ao = acquire;
    ao.platform = p;
    auto pulled = image::Pull(*store, ref, ao);
    return pulled ? Ok() : Status(std::move(pulled).error().WithContext("pull " + ref));
  };

  if (graphs.size() > 1)
    return RunMultiPlatform(req, copts, graphs, opts, *store);

  engine::Progress progress(ProgressModeFor(req), STDERR_FILENO);
  auto result = engine::Build(*graph, *store, opts, progress);
  if (!result)
    return ReportError(result.error());

  auto image = store->LoadImage(result->manifest);
  if (!image)
    return ReportError(image.error());
  if (auto s = WriteOutputs(*store, *image, req, opts.tags, false); !s)
    return ReportError(s.error());
  if (!req.cache_to.empty())
    if (auto s = ExportCache(*store, progress.StepKeys(), req.cache_to, RemoteCacheOptions(req, quiet)); !s)
      return ReportError(s.error());
  return Finish(req, result->image_id.str());
}

}  // namespace kiln::cli
