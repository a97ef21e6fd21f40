// RunBuild: the CLI side of `kiln build` -- turns the parsed flags into an
// engine::BuildJob (src/engine/build_job.h: base images, compile, the
// multi-platform orchestration, outputs, remote cache), runs it on the
// store and prints the image ID.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
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
#include "kiln/transport.h"

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

/// --manifest NAME (as podman build): the built image -- each platform's
/// manifest of a multi-platform build -- into the manifest list NAME, made
/// when there is none; an entry of the same platform is replaced.
Status AddToManifestList(Store& store, const std::string& list, const std::string& built) {
  KILN_ASSIGN_OR_RETURN(ImageReference ref, ImageReference::ParseWithDefaultDomain(list, "localhost"));
  const std::string name = ref.str();
  KILN_ASSIGN_OR_RETURN(StoredImage image, image::ResolveLocal(store, built));
  std::vector<Descriptor> entries;
  if (IsIndexMediaType(image.top.media_type)) {
    KILN_ASSIGN_OR_RETURN(Index built_index, store.ReadIndex(image.top.digest));
    entries = built_index.manifests;
  } else {
    Descriptor d = image.manifest_descriptor;
    d.annotations.clear();
    d.platform = image.config.platform();
    entries.push_back(d);
  }
  Index index;
  KILN_ASSIGN_OR_RETURN(std::vector<ImageEntry> stored, store.ListImages());
  for (const ImageEntry& e : stored) {
    if (std::find(e.names.begin(), e.names.end(), name) == e.names.end())
      continue;
    if (!IsIndexMediaType(e.descriptor.media_type))
      return Error(Errc::kInvalidInput, "--manifest " + list + ": " + name + " is an image, not a manifest list");
    KILN_ASSIGN_OR_RETURN(index, store.ReadIndex(e.descriptor.digest));
  }
  for (const Descriptor& d : entries) {
    std::erase_if(index.manifests, [&](const Descriptor& old) {
      return old.digest == d.digest || (old.platform && d.platform && old.platform->str() == d.platform->str());
    });
    index.manifests.push_back(d);
  }
  KILN_ASSIGN_OR_RETURN(Descriptor top, store.PutBlob(index.media_type, ToJson(index)));
  return store.AddImage(top, std::vector<std::string>{name});
}

/// The platforms of base image `image` for --all-platforms: its index's
/// (the store's, else its registry's), each normalised; a single-platform
/// image is an error naming it.
Expected<std::vector<Platform>> BasePlatforms(Store& store, const std::string& image, const std::string& written,
                                              const TransferOptions& to) {
  const std::string what = "--all-platforms: base image " + written;
  std::string media_type, body;
  // The store's entry by name (its top descriptor: no platform chosen, so
  // not image::ResolveLocal, whose Docker Hub rule this follows).
  std::vector<std::string> names = {image};
  if (image.rfind("docker.io/library/", 0) == 0)
    names.push_back("localhost/" + image.substr(18));
  for (const std::string& name : names) {
    auto found = store.FindImageEntries(name);
    if (!found || found->empty())
      continue;
    media_type = found->front().descriptor.media_type;
    KILN_ASSIGN_OR_RETURN(body, store.ReadBlob(found->front().descriptor.digest));
    break;
  }
  if (media_type.empty()) {  // not stored: its registry's manifest (as podman)
    KILN_ASSIGN_OR_RETURN(ImageReference ref, ImageReference::Parse(image));
    KILN_ASSIGN_OR_RETURN(auto client, registry::RegistryClient::Create(ref.domain, registry::ClientOptionsFrom(to)));
    auto mb = client->GetManifest(ref.path, ref.TagOrDigest());
    if (!mb)
      return std::move(mb).error().WithContext(what);
    media_type = mb->media_type;
    body = mb->body;
  }
  if (!IsIndexMediaType(media_type))
    return Error(Errc::kInvalidInput, what + " is a single-platform image, not a manifest list: "
                                             "give --platform instead");
  KILN_ASSIGN_OR_RETURN(Index index, ParseIndex(body));
  std::vector<Platform> out;
  for (const Descriptor& d : index.manifests) {
    if (!d.platform || d.platform->os == "unknown")  // BuildKit's attestation manifests
      continue;
    Platform p = d.platform->Normalized();
    if (std::find(out.begin(), out.end(), p) == out.end())
      out.push_back(p);
  }
  return out;
}

/// --all-platforms (as podman build): every platform that all the base
/// images (FROM an image; scratch, stages and contexts are not looked at)
/// have in their indexes, sorted.
Expected<std::vector<Platform>> AllPlatforms(Store& store, const BuildRequest& req, const TransferOptions& to) {
  KILN_ASSIGN_OR_RETURN(BuildGraph graph, frontend::Compile(req.containerfile, req.CompileOptionsFor(Platform::Host())));
  std::optional<std::vector<Platform>> common;
  std::vector<std::string> seen, written;
  for (const Stage& stage : graph.stages) {
    if (stage.base.kind != StageBase::Kind::kImage)
      continue;
    if (std::find(seen.begin(), seen.end(), stage.base.image) != seen.end())
      continue;
    seen.push_back(stage.base.image);
    written.push_back(stage.base.written);
    KILN_ASSIGN_OR_RETURN(std::vector<Platform> ps, BasePlatforms(store, stage.base.image, stage.base.written, to));
    if (!common) {
      common = ps;
    } else {
      std::erase_if(*common, [&](const Platform& p) { return std::find(ps.begin(), ps.end(), p) == ps.end(); });
    }
  }
  if (!common)
    return Error(Errc::kInvalidInput, "--all-platforms: no stage starts from an image (scratch and stages have "
                                      "no platforms to look at): give --platform");
  if (common->empty()) {
    std::string names;
    for (const auto& n : written)
      names += (names.empty() ? "" : ", ") + n;
    return Error(Errc::kInvalidInput, "--all-platforms: the base images " + names + " have no platform in common");
  }
  std::sort(common->begin(), common->end(), [](const Platform& a, const Platform& b) { return a.str() < b.str(); });
  return *common;
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

int RunBuild(BuildRequest& req, Context& ctx) {
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

  engine::BuildJob& job = req.job;
  job.containerfile = &req.containerfile;
  if (req.all_platforms) {
    auto all = AllPlatforms(*store, req, job.acquire.transfer);
    if (!all)
      return ReportError(all.error());
    job.platforms = *all;
    if (!quiet) {
      std::string list;
      for (const Platform& p : *all)
        list += (list.empty() ? "" : ",") + p.str();
      std::fprintf(stderr, "--all-platforms: building for %s\n", list.c_str());
    }
  }
  if (job.platforms.empty())
    job.platforms = {Platform::Host()};
  job.compile.target_platform = job.platforms.front();
  job.acquire.transfer.quiet = quiet;
  if (!quiet)
    job.acquire.transfer.progress = [](const std::string& line) { LogInfo(line); };
  job.cache_transfer.tls_verify = job.acquire.transfer.tls_verify;
  job.cache_transfer.authfile = job.acquire.transfer.authfile;
  job.cache_transfer.quiet = true;  // blob-by-blob lines would drown the build's own output
  job.progress = progress;
  job.quiet = quiet;
  // What the provenance says of the build (engine/build_job.h AttestOptions).
  // The Containerfile as the context names it (BuildKit: its path in the
  // context), not the host's path.
  job.attest.containerfile_name = req.containerfile_name;
  if (const std::string& cf = job.options.containerfile, &dir = job.options.context_dir;
      !dir.empty() && cf.rfind(dir + "/", 0) == 0)
    job.attest.containerfile_name = cf.substr(dir.size() + 1);
  else if (cf != "-")
    job.attest.containerfile_name = BaseName(cf);
  job.attest.containerfile_text = req.containerfile_text;
  job.attest.tool_version = KILN_VERSION;
  for (const auto& s : req.secrets)
    job.attest.secret_ids.push_back(s.id);
  for (const auto& s : req.ssh)
    job.attest.ssh_ids.push_back(s.id);
  job.attest.network = req.network;

  engine::BuildOptions& opts = job.options;
  for (const auto& t : req.tags) {
    auto ref = ImageReference::ParseWithDefaultDomain(t, "localhost");
    if (!ref)
      return ReportError(std::move(ref).error().WithContext("-t " + t));
    opts.tags.push_back(ref->str());
  }
  if (!req.tags.empty())
    opts.commit_name = req.tags.front();
  const auto& build_args = job.compile.build_args;
  if (auto h = build_args.find("BUILDKIT_SANDBOX_HOSTNAME"); h != build_args.end() && !h->second.empty()) {
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
  // --build-context NAME=oci-layout://PATH[:TAG|@DIGEST]: the layout's image
  // copied into the store unnamed (the build's lease keeps it) and used as
  // docker-image://localhost/oci-layout@DIGEST (a name@digest resolves by the digest).
  for (auto& [name, value] : job.compile.build_contexts) {
    if (value.rfind("oci-layout://", 0) != 0)
      continue;
    std::string rest = value.substr(13);
    size_t cut = rest.find('@');
    if (cut == std::string::npos)
      cut = rest.find(':');
    TransportRef src;
    src.transport = "oci";
    src.location = rest.substr(0, cut);
    if (cut != std::string::npos)
      src.ref = rest.substr(cut + 1);
    auto pulled = PullImage(*store, src, job.acquire.transfer);
    if (!pulled)
      return ReportError(std::move(pulled).error().WithContext("--build-context " + name));
    if (auto s = store->AddImage(pulled->top); !s)
      return ReportError(s.error());
    value = "docker-image://localhost/oci-layout@" + pulled->top.digest.str();  // name@digest: by digest
  }
  if (auto s = ResolveBuildSecrets(req, ctx.StoreRoot(), &opts.secrets, &opts.ssh); !s)
    return ReportError(s.error());
  // ADD URL through the registry client's HTTP stack (TLS, certs.d or
  // --cert-dir, proxies from the environment, retries).
  registry::ClientOptions fetch_options;
  fetch_options.tls_verify = job.acquire.transfer.tls_verify;
  fetch_options.cert_dir = job.acquire.transfer.cert_dir;
  if (job.acquire.transfer.retries)  // --retry, --retry-delay
    fetch_options.max_attempts = *job.acquire.transfer.retries + 1;
  if (job.acquire.transfer.retry_delay)
    fetch_options.retry_base = *job.acquire.transfer.retry_delay;
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

  // --build-context NAME=http(s)://…tar[.gz]: downloaded (retries, TLS as
  // ADD URL) and imported as a one-layer image, used as an image context.
  for (auto& [name, value] : job.compile.build_contexts) {
    if (value.rfind("https://", 0) != 0 && value.rfind("http://", 0) != 0)
      continue;
    std::string what = "--build-context " + name + "=" + value;
    char tmpl[] = "/tmp/kiln-context-XXXXXX";
    UniqueFd tar(::mkstemp(tmpl));
    if (!tar)
      return ReportError(Error::FromErrno(what + ": temporary file"));
    ::unlink(tmpl);
    if (auto got = registry::FetchUrl(value, {}, tar.get(), fetch_options); !got)
      return ReportError(std::move(got).error().WithContext(what));
    if (::lseek(tar.get(), 0, SEEK_SET) != 0)
      return ReportError(Error::FromErrno(what));
    auto top = ImportRootfsTar(*store, tar.get(), ImportOptions{});
    if (!top)
      return ReportError(std::move(top).error().WithContext(what));
    if (auto s = store->AddImage(*top); !s)
      return ReportError(s.error());
    value = "docker-image://localhost/url-context@" + top->digest.str();
  }
  auto id = engine::RunBuildJob(job, *store);
  if (!id)
    return ReportError(id.error());
  events::Record(ctx.StoreRoot(), "image", "build", id->substr(id->find(':') + 1), opts.tags.empty() ? "" : opts.tags[0]);
  if (!req.manifest.empty())
    if (auto s = AddToManifestList(*store, req.manifest, *id); !s)
      return ReportError(s.error());
  return Finish(req, *id);
}

}  // namespace kiln::cli
