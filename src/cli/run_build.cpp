// RunBuild: the CLI side of `kiln build` -- turns the parsed flags into an
// engine::BuildJob (src/engine/build_job.h: base images, compile, the
// multi-platform orchestration, outputs, remote cache), runs it on the
// store and prints the image ID.
#include <unistd.h>

#include <cctype>
#include <cstdio>

#include "cli/build_request.h"
#include "cli/cli.h"
#include "engine/build_job.h"
#include "kiln/acquire.h"
#include "kiln/containerfile.h"
#include "kiln/events.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/reference.h"
#include "kiln/registry.h"
#include "kiln/run.h"
#include "kiln/store.h"

namespace kiln::cli {

namespace {

/// -q, else --progress, else $BUILDKIT_PROGRESS, else auto (the live view
/// when stderr is a terminal).
engine::ProgressMode ProgressModeFor(const BuildRequest& req) {
  engine::ProgressMode mode = engine::ProgressMode::kPlain;
  if (req.quiet || !engine::ParseProgressMode(req.progress, STDERR_FILENO, &mode))
    return req.quiet ? engine::ProgressMode::kQuiet : engine::ProgressMode::kPlain;
  return mode;
}

int Finish(const BuildRequest& req, const std::string& id) {
  if (!req.iidfile.empty()) {
    if (auto s = WriteFileAtomic(req.iidfile, id); !s)
      return ReportError(std::move(s).error().WithContext("--iidfile"));
  }
  std::printf("%s\n", id.c_str());
  return 0;
}

}  // namespace

int RunBuild(const BuildRequest& req, Context& ctx) {
  auto store = Store::Open(ctx.StoreRoot());
  if (!store)
    return ReportError(store.error());
  auto lease = store->AcquireLease("build");  // until the images are tagged
  if (!lease)
    return ReportError(lease.error());
  registry::RegisterDockerTransport();
  const engine::ProgressMode progress = ProgressModeFor(req);
  // json: no pull lines among the events.
  const bool quiet = progress == engine::ProgressMode::kQuiet || progress == engine::ProgressMode::kJson;

  engine::BuildJob job;
  job.containerfile = &req.containerfile;
  job.platforms = req.platforms.empty() ? std::vector<Platform>{Platform::Host()} : req.platforms;
  job.compile = req.CompileOptionsFor(job.platforms.front());
  auto policy = image::ParsePullPolicy(req.pull);
  if (!policy)
    return ReportError(policy.error());
  job.acquire.policy = *policy;
  job.acquire.transfer.tls_verify = req.tls_verify;
  job.acquire.transfer.authfile = req.authfile;
  job.acquire.transfer.cert_dir = req.cert_dir;
  job.acquire.transfer.quiet = quiet;
  if (!quiet)
    job.acquire.transfer.progress = [](const std::string& line) { LogInfo(line); };
  for (const auto& out : req.outputs)
    job.outputs.push_back({out.type, out.dest});
  job.cache_from = req.cache_from;
  job.cache_to = req.cache_to;
  job.cache_transfer.tls_verify = req.tls_verify;
  job.cache_transfer.authfile = req.authfile;
  job.cache_transfer.quiet = true;  // blob-by-blob lines would drown the build's own output
  job.progress = progress;
  job.quiet = quiet;

  engine::BuildOptions& opts = job.options;
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
  for (const auto& [name, patterns] : req.build_context_ignores) {
    auto m = frontend::IgnoreMatcher::Create(patterns);
    if (!m)
      return ReportError(std::move(m).error().WithContext("--build-context " + name + ": ignore file"));
    opts.named_ignores[name] = *m;
  }
  for (const auto& t : req.tags) {
    auto ref = ImageReference::ParseWithDefaultDomain(t, "localhost");
    if (!ref)
      return ReportError(std::move(ref).error().WithContext("-t " + t));
    opts.tags.push_back(ref->str());
  }
  if (!req.tags.empty())
    opts.commit_name = req.tags.front();
  opts.compression = req.compression == "zstd" ? layer::Compression::kZstd : layer::Compression::kGzip;
  opts.docker_format = req.format == "docker";
  opts.timestamp = req.timestamp;
  if (auto h = req.build_args.find("BUILDKIT_SANDBOX_HOSTNAME"); h != req.build_args.end() && !h->second.empty()) {
    // BuildKit's build arg for the hostname RUN steps see: a host name, checked as one.
    bool ok = h->second.size() <= 64;
    for (char c : h->second)
      ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.');
    if (!ok)
      return ReportError(Error(Errc::kInvalidInput, "--build-arg BUILDKIT_SANDBOX_HOSTNAME=" + h->second +
                                                        ": not a host name (letters, digits, '-' and '.', at most 64)"));
    opts.hostname = h->second;
  }
  opts.network = req.network == "none" ? NetworkMode::kNone
                 : req.network == "host" ? NetworkMode::kHost
                                         : NetworkMode::kPrivate;
  opts.allow_network_host = req.allow_network_host;
  if (NamesNetwork(req.network)) {
    // A kiln network: the build's namespace joins it (docs/network.md "Builds").
    auto net = run::PrepareBuildNetwork(*store, run::Paths{ctx.StoreRoot(), ctx.RunRoot()}, req.network);
    if (!net) {
      // A network that does not exist is a bad flag value: exit 2 as other usage errors.
      Error e = std::move(net).error().WithContext("--network");
      if (e.code() == Errc::kNotFound)
        e = Error(Errc::kInvalidInput, e.message());
      return ReportError(e);
    }
    opts.network = NetworkMode::kPrivate;
    opts.attach_network = std::move(net->attach);
    opts.network_resolv_conf = std::move(net->resolv_conf);
  }
  opts.jobs = req.jobs > 0 ? static_cast<size_t>(req.jobs) : 0;
  opts.use_cache = !req.no_cache && req.layers;
  opts.write_cache = req.layers;
  opts.no_cache_filter = req.no_cache_filter;
  opts.explain_cache = req.explain_cache;
  opts.containerfile = req.containerfile_path;
  opts.secret_cache_key = req.secret_cache_key;
  if (auto s = ResolveBuildSecrets(req, ctx.StoreRoot(), &opts.secrets, &opts.ssh); !s)
    return ReportError(s.error());
  for (const auto& [k, v] : req.labels)
    opts.labels[k] = v;
  for (const auto& [k, v] : req.annotations)
    opts.annotations[k] = v;
  opts.squash = req.squash;
  opts.squash_all = req.squash_all;
  opts.run_capabilities = req.capabilities;
  opts.run_rlimits = req.ulimits;
  opts.add_hosts = req.add_hosts;
  opts.shm_size = req.shm_size;
  opts.devices = req.devices;
  opts.no_new_privileges = req.no_new_privileges;
  opts.run_key = req.run_key;
  // ADD URL through the registry client's HTTP stack (TLS, certs.d or
  // --cert-dir, proxies from the environment, retries).
  registry::ClientOptions fetch_options;
  fetch_options.tls_verify = req.tls_verify;
  fetch_options.cert_dir = req.cert_dir;
  opts.fetch_url = [fetch_options](const std::string& url,
                                   const std::vector<std::pair<std::string, std::string>>& headers,
                                   int fd) -> Expected<engine::UrlFetchResult> {
    std::vector<registry::HttpHeader> h;
    for (const auto& [k, v] : headers)
      h.push_back({k, v});
    KILN_ASSIGN_OR_RETURN(registry::UrlFetch got, registry::FetchUrl(url, h, fd, fetch_options));
    engine::UrlFetchResult r;
    r.not_modified = got.not_modified;
    r.etag = got.etag;
    r.last_modified = got.last_modified;
    r.content_disposition = got.content_disposition;
    return r;
  };

  auto id = engine::RunBuildJob(job, *store);
  if (!id)
    return ReportError(id.error());
  events::Record(ctx.StoreRoot(), "image", "build", id->substr(id->find(':') + 1), opts.tags.empty() ? "" : opts.tags[0]);
  return Finish(req, *id);
}

}  // namespace kiln::cli
