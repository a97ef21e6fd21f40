// Attestations of a build (build_attest.h).
#include "engine/build_attest.h"

#include <ctime>
#include <set>

#include "engine/copy.h"
#include "kiln/attest.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/oci.h"
#include "kiln/random.h"

namespace kiln::engine {

namespace {

std::string Rfc3339Now() { return FormatRfc3339(static_cast<int64_t>(std::time(nullptr))); }

/// The digest of the build context's files as COPY . would read them (the
/// ignore file applies), with the build's stat cache.
Expected<Digest> ContextDigest(const BuildOptions& opts, const Store& store) {
  CopyRequest req;
  req.src_root = opts.context_dir;
  req.from_context = true;
  req.ignore = opts.ignore;
  req.sources = {"/"};
  req.dest = "/";
  req.what = "provenance";
  StatCache cache(static_cast<int64_t>(std::time(nullptr)) * 1000000000);
  if (auto text = store.GetStateFile("statcache-" + Digest::Of(opts.context_dir).hex()))
    cache.Load(*text);
  return HashCopySources(req, &cache);
}

attest::ProvenanceInput ProvenanceFor(const BuildJob& job, const BuildGraph& graph, const BuildOptions& opts,
                                      const StoredImage& image, const Store& store, const std::string& started) {
  const AttestOptions& a = job.attest;
  attest::ProvenanceInput in;
  in.max = a.provenance == "max";
  in.containerfile_name = a.containerfile_name;
  in.containerfile_text = a.containerfile_text;
  in.build_args = job.compile.build_args;
  in.target = job.compile.target;
  for (const Platform& p : job.platforms)
    in.platforms.push_back(p.str());
  in.build_platform = job.compile.build_platform.str();
  std::set<std::string> seen;
  for (const Stage& s : graph.stages) {
    if (s.base.kind != StageBase::Kind::kImage || s.base.digest.empty())
      continue;
    auto d = Digest::Parse(s.base.digest);
    attest::Subject base;
    base.name = s.base.image;
    base.platform = s.platform;
    std::string uri = attest::SubjectPurl(base);
    if (!d || !seen.insert(uri).second)
      continue;
    in.materials.push_back({uri, *d});
  }
  if (!opts.context_dir.empty()) {
    auto ctx = ContextDigest(opts, store);
    if (ctx)
      in.context_digest = *ctx;
    else
      LogWarn("provenance: the context digest is left out: " + ctx.error().message());
  }
  if (in.max) {
    in.build_contexts = job.compile.build_contexts;
    in.secret_ids = a.secret_ids;
    in.ssh_ids = a.ssh_ids;
    in.network = a.network;
    // What the image says it is made of: each history entry, with its layer.
    size_t layer = 0;
    for (const HistoryEntry& h : image.config.history) {
      Digest d;
      if (!h.empty_layer && layer < image.manifest.layers.size())
        d = image.manifest.layers[layer++].digest;
      in.steps.emplace_back(h.created_by, d);
    }
  }
  if (opts.timestamp) {  // SOURCE_DATE_EPOCH: the same provenance for the same build
    in.started_on = in.finished_on = FormatRfc3339(*opts.timestamp);
    in.invocation_id = Digest::Of(image.manifest_descriptor.digest.str() + "\n" + a.provenance).hex().substr(0, 26);
  } else {
    in.started_on = started;
    in.finished_on = Rfc3339Now();
    auto id = RandomHex(26);
    in.invocation_id = id ? *id : std::string();
  }
  in.tool_version = a.tool_version;
  return in;
}

}  // namespace

Status CheckAttestOptions(const BuildJob& job, size_t platforms) {
  const AttestOptions& a = job.attest;
  if (a.attach() && job.options.docker_format)
    return Error(Errc::kInvalidInput,
                 "--sbom and --provenance attach attestations to an OCI image index: not with --format docker");
  if (!a.sbom_output.empty() && platforms > 1)
    return Error(Errc::kInvalidInput, "--sbom-output " + a.sbom_output +
                                          " holds one platform's SBOM: build one --platform, or use --sbom and "
                                          "`kiln inspect --sbom --platform P`");
  return Ok();
}

Expected<std::optional<Descriptor>> AttestImage(const BuildJob& job, const BuildGraph& graph,
                                                const BuildOptions& opts, Store& store, const Descriptor& manifest,
                                                const std::string& started, Progress& progress) {
  const AttestOptions& a = job.attest;
  if (!a.any())
    return std::optional<Descriptor>();
  KILN_ASSIGN_OR_RETURN(StoredImage image, store.LoadImage(manifest));
  attest::Subject subject;
  subject.name = opts.tags.empty() ? std::string() : opts.tags.front();
  subject.manifest = manifest.digest;
  subject.platform = image.config.platform();
  subject.created = image.config.created;
  subject.tool_version = a.tool_version;
  std::vector<attest::Attestation> atts;
  if (a.sbom || !a.sbom_output.empty()) {
    KILN_ASSIGN_OR_RETURN(attest::ScanResult scan, attest::ScanImage(store, image));
    for (const auto& w : scan.warnings)
      LogWarn("sbom: " + w);
    std::string where = graph.target_platform.str();
    if (scan.packages.empty()) {
      progress.Message("SBOM (" + where + "): no package database found in the image: it lists no packages");
    } else {
      std::string dbs;
      for (const auto& d : scan.databases)
        if (dbs.size() < 200)
          dbs += (dbs.empty() ? "" : ", ") + d;
      progress.Message("SBOM (" + where + "): " + std::to_string(scan.packages.size()) + " packages from " +
                       std::to_string(scan.databases.size()) + " package database files (" + dbs + ")");
    }
    std::string doc = attest::SpdxDocument(scan, subject);
    if (!a.sbom_output.empty())
      if (auto s = WriteFileAtomic(a.sbom_output, doc); !s)
        return std::move(s).error().WithContext("--sbom-output " + a.sbom_output);
    if (a.sbom)
      atts.push_back({std::string(kPredicateSpdx), attest::InTotoStatement(kPredicateSpdx, doc, subject)});
  }
  if (!a.provenance.empty()) {
    std::string pred = attest::ProvenancePredicate(ProvenanceFor(job, graph, opts, image, store, started));
    atts.push_back({std::string(kPredicateSlsa1), attest::InTotoStatement(kPredicateSlsa1, pred, subject)});
  }
  if (atts.empty())
    return std::optional<Descriptor>();
  KILN_ASSIGN_OR_RETURN(Descriptor d, attest::WriteAttestationManifest(store, manifest, atts));
  return std::optional<Descriptor>(std::move(d));
}

Expected<Descriptor> IndexWithAttestation(Store& store, const Descriptor& manifest, const Descriptor& attestation,
                                          const std::vector<std::string>& tags) {
  KILN_ASSIGN_OR_RETURN(StoredImage image, store.LoadImage(manifest));
  Index index;
  Descriptor m = manifest;
  m.annotations.erase(std::string(kAnnotationRefName));
  m.platform = image.config.platform();
  index.manifests = {m, attestation};
  KILN_ASSIGN_OR_RETURN(Descriptor top, store.PutBlob(index.media_type, ToJson(index)));
  KILN_TRY(store.AddImage(top, tags));
  // The manifest's own entry goes when it has no name left (the index
  // keeps its blobs).
  if (auto images = store.ListImages())
    for (const ImageEntry& e : *images)
      if (e.descriptor.digest == manifest.digest && e.names.empty())
        (void)store.RemoveImage(manifest.digest);
  return top;
}

}  // namespace kiln::engine
