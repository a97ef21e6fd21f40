// The store side of attestations (attest.h): scanning an image's layers,
// writing an attestation manifest, finding one again.
#include <nlohmann/json.hpp>

#include "kiln/attest.h"
#include "kiln/unique_fd.h"

namespace kiln::attest {

Expected<ScanResult> ScanImage(const Store& store, const StoredImage& image) {
  std::vector<UniqueFd> fds;
  std::vector<int> raw;
  for (const Descriptor& l : image.manifest.layers) {
    KILN_ASSIGN_OR_RETURN(UniqueFd fd, store.OpenBlob(l.digest));
    raw.push_back(fd.get());
    fds.push_back(std::move(fd));
  }
  auto files = layer::ReadMergedFiles(raw, PackageFileSelector());
  if (!files)
    return std::move(files).error().WithContext("scan " + image.manifest_descriptor.digest.str());
  return Scan(*files);
}

Expected<Descriptor> WriteAttestationManifest(const Store& store, const Descriptor& image,
                                              const std::vector<Attestation>& attestations) {
  ImageConfig config;
  config.architecture = "unknown";
  config.os = "unknown";
  std::vector<Descriptor> layers;
  for (const Attestation& a : attestations) {
    KILN_ASSIGN_OR_RETURN(Descriptor d, store.PutBlob(kMediaTypeInToto, a.statement));
    d.annotations[std::string(kAnnotationPredicateType)] = a.predicate_type;
    config.diff_ids.push_back(d.digest);
    layers.push_back(std::move(d));
  }
  KILN_ASSIGN_OR_RETURN(Descriptor m, store.WriteImage(config, layers, kMediaTypeOciManifest));
  m.platform = Platform{};
  m.platform->os = "unknown";
  m.platform->architecture = "unknown";
  m.annotations[std::string(kAnnotationRefType)] = std::string(kRefTypeAttestation);
  m.annotations[std::string(kAnnotationRefDigest)] = image.digest.str();
  return m;
}

Expected<std::string> FindAttestation(const Store& store, const StoredImage& image, std::string_view predicate_type) {
  const std::string what = image.names.empty() ? image.id().str() : image.names.front();
  if (!IsIndexMediaType(image.top.media_type))
    return Error(Errc::kNotFound, what + " has no attestations (it is a single manifest, not an index; build it "
                                         "with --sbom or --provenance, or pull it with --all-platforms)");
  KILN_ASSIGN_OR_RETURN(Index index, store.ReadIndex(image.top.digest));
  const std::string manifest = image.manifest_descriptor.digest.str();
  bool any = false;
  for (const Descriptor& d : index.manifests) {
    auto type = d.annotations.find(std::string(kAnnotationRefType));
    auto ref = d.annotations.find(std::string(kAnnotationRefDigest));
    if (type == d.annotations.end() || type->second != kRefTypeAttestation || ref == d.annotations.end() ||
        ref->second != manifest)
      continue;
    any = true;
    if (!store.HasBlob(d.digest))
      continue;
    KILN_ASSIGN_OR_RETURN(Manifest m, store.ReadManifest(d.digest));
    for (const Descriptor& l : m.layers) {
      auto pt = l.annotations.find(std::string(kAnnotationPredicateType));
      if (pt == l.annotations.end() || pt->second != predicate_type)
        continue;
      KILN_ASSIGN_OR_RETURN(std::string body, store.ReadBlob(l.digest));
      auto j = nlohmann::ordered_json::parse(body, nullptr, false);
      if (!j.is_object() || !j.contains("predicate"))
        return Error(Errc::kCorrupt, "attestation " + l.digest.str() + " of " + what + " is not an in-toto statement");
      return j["predicate"].dump(2) + "\n";
    }
  }
  return Error(Errc::kNotFound, what + (any ? " has no " : " has no attestation manifest, so no ") +
                                    std::string(predicate_type) + " attestation for " + manifest);
}

}  // namespace kiln::attest
