// RunBuild: the CLI side of `kiln build` -- opens the store, compiles the
// Containerfile with a store-backed base-image resolver (pulling as --pull
// says), runs the engine and writes the requested outputs.
#include <unistd.h>

#include <cstdio>

#include "cli/build_request.h"
#include "engine/build.h"
#include "engine/export.h"
#include "ignore.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/reference.h"
#include "kiln/registry.h"
#include "kiln/store.h"
#include "kiln/transport.h"

namespace kiln::cli {

namespace {

Status PullInto(Store& store, const std::string& reference, const Platform& platform, const BuildRequest& req,
                bool quiet) {
  KILN_ASSIGN_OR_RETURN(TransportRef src, TransportRef::Parse(reference));
  TransferOptions to;
  to.platform = platform;
  to.tls_verify = req.tls_verify;
  to.authfile = req.authfile;
  to.quiet = quiet;
  if (!quiet)
    to.progress = [](const std::string& line) { LogInfo(line); };
  auto pulled = PullImage(store, src, to);
  if (!pulled)
    return std::move(pulled).error().WithContext("pull " + reference);
  std::vector<std::string> names = pulled->names;
  if (src.transport == "docker") {
    auto ref = ImageReference::Parse(src.location);
    if (ref)
      names.push_back(ref->str());
  }
  return store.AddImage(pulled->top, names);
}

engine::ProgressMode ProgressModeFor(const BuildRequest& req) {
  if (req.quiet)
    return engine::ProgressMode::kQuiet;
  if (req.progress == "json")
    return engine::ProgressMode::kJson;
  return engine::ProgressMode::kPlain;  // tty: the plain view for now
}

}  // namespace

int RunBuild(const BuildRequest& req, Context& ctx) {
  if (req.platforms.size() > 1)
    return ReportError(Error(Errc::kUnsupported, "building for several platforms at once is not supported yet"));
  auto store = Store::Open(ctx.StoreRoot());
  if (!store)
    return ReportError(store.error());
  registry::RegisterDockerTransport();
  const Platform platform = req.platforms.empty() ? Platform::Host() : req.platforms[0];
  bool quiet = req.quiet || req.progress == "json";

  // Base images: the store first; pulled when missing (--pull=missing), every
  // time (always) or never.
  frontend::CompileOptions copts = req.CompileOptionsFor(platform);
  copts.resolve_base = [&](const std::string& ref, const Platform& p) -> Expected<BaseImageInfo> {
    if (req.pull == "always" || req.pull == "newer") {
      if (auto s = PullInto(*store, ref, p, req, quiet); !s) {
        if (req.pull == "always")
          return std::move(s).error();
        LogWarn(s.error().message());
      }
    }
    auto image = store->ResolveImage(ref, p);
    // A short name (FROM busybox) that the store has as localhost/busybox is
    // used as is (CLI.md), before any pull of docker.io/library/busybox.
    if (!image && ref.rfind("docker.io/library/", 0) == 0) {
      auto local = store->ResolveImage("localhost/" + ref.substr(18), p);
      if (local)
        image = std::move(local);
    }
    if (!image && image.error().code() == Errc::kNotFound && req.pull != "never" && req.pull != "always") {
      KILN_TRY(PullInto(*store, ref, p, req, quiet));
      image = store->ResolveImage(ref, p);
    }
    if (!image)
      return std::move(image).error();
    BaseImageInfo info;
    info.env = image->config.config.env;
    info.working_dir = image->config.config.working_dir;
    info.user = image->config.config.user;
    info.onbuild = image->config.config.on_build;
    if (!image->config.config.shell.empty())
      info.shell = image->config.config.shell;
    info.digest = image->manifest_descriptor.digest.str();
    return info;
  };
  auto graph = frontend::Compile(req.containerfile, copts);
  if (!graph)
    return ReportError(graph.error());
  for (const auto& w : graph->warnings)
    LogWarn(w);

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
  for (const auto& [k, v] : req.labels)
    opts.labels[k] = v;
  for (const auto& [k, v] : req.annotations)
    opts.annotations[k] = v;
  opts.squash = req.squash;
  opts.pull = [&](const std::string& ref, const Platform& p) {
    if (req.pull == "never")
      return Status(Error(Errc::kNotFound, "image not known: " + ref + " (--pull=never)"));
    return PullInto(*store, ref, p, req, quiet);
  };

  engine::Progress progress(ProgressModeFor(req), STDERR_FILENO);
  auto result = engine::Build(*graph, *store, opts, progress);
  if (!result)
    return ReportError(result.error());

  auto image = store->LoadImage(result->manifest);
  if (!image)
    return ReportError(image.error());
  for (const auto& out : req.outputs) {
    Status s;
    if (out.type == "local") {
      s = engine::ExportRootfsDir(*store, *image, out.dest);
    } else if (out.type == "tar") {
      s = engine::ExportRootfsTar(*store, *image, out.dest);
    } else if (out.type == "oci-archive" || out.type == "docker-archive") {
      SaveItem item{*image, opts.tags};
      s = SaveArchive(*store, {item}, out.dest,
                      out.type == "oci-archive" ? ArchiveFormat::kOciArchive : ArchiveFormat::kDockerArchive);
    } else if (out.type == "oci") {
      auto dest = TransportRef::Parse("oci:" + out.dest);
      s = dest ? PushImage(*store, *image, opts.tags.empty() ? "" : opts.tags[0], *dest, TransferOptions{})
               : Status(std::move(dest).error());
    } else {
      s = Error(Errc::kInvalidInput, "--output: unknown type \"" + out.type + "\"");
    }
    if (!s)
      return ReportError(std::move(s).error().WithContext("--output type=" + out.type + ",dest=" + out.dest));
  }
  std::string id = result->image_id.str();
  if (!req.iidfile.empty()) {
    if (auto s = WriteFileAtomic(req.iidfile, id); !s)
      return ReportError(std::move(s).error().WithContext("--iidfile"));
  }
  std::printf("%s\n", id.c_str());
  return 0;
}

}  // namespace kiln::cli
