// kiln inspect [--type image|container] [--format json|TEMPLATE] NAME...
// kiln inspect --sbom|--provenance [--platform P] IMAGE...
#include <algorithm>
#include <cstdio>

#include "cli/format_util.h"
#include "cli/image_util.h"
#include "kiln/acquire.h"
#include "kiln/attest.h"
#include "kiln/reference.h"

namespace kiln::cli {

// Provided by the run module (cmd_container.cpp) when it is linked in.
int InspectContainersCommand(Context& ctx, const std::vector<std::string>& names, const std::string& format)
    __attribute__((weak));
Expected<nlohmann::json> InspectContainerJson(Context& ctx, const std::string& name) __attribute__((weak));

namespace {

/// A manifest list named `text` that lacks this host's platform: its first
/// platform present in the store (the store resolves an index to the
/// host's manifest only).
Expected<StoredImage> ResolveListWithoutHost(Store& store, const std::string& text) {
  KILN_ASSIGN_OR_RETURN(std::vector<ImageEntry> images, store.ListImages());
  std::vector<std::string> candidates = CandidateNames(text);
  for (const auto& e : images) {
    if (!IsIndexMediaType(e.descriptor.media_type))
      continue;
    bool named = e.descriptor.digest.str() == text;
    for (const auto& c : candidates)
      named = named || std::find(e.names.begin(), e.names.end(), c) != e.names.end();
    if (!named)
      continue;
    KILN_ASSIGN_OR_RETURN(Index idx, store.ReadIndex(e.descriptor.digest));
    for (const Descriptor& d : idx.manifests)
      if (d.platform && store.HasBlob(d.digest)) {
        KILN_ASSIGN_OR_RETURN(StoredImage img, store.LoadImage(e.descriptor, d.platform));
        img.names = e.names;
        return img;
      }
  }
  return Error(Errc::kNotFound, "image not known: " + text);
}

/// --sbom / --provenance: the predicate of that attestation of each image
/// (the SPDX document, the SLSA provenance) as JSON; several images: an
/// array.
int InspectAttestations(Context& ctx, std::string_view predicate_type, const std::string& platform,
                        const std::vector<std::string>& names) {
  std::optional<Platform> want;
  if (!platform.empty()) {
    auto p = Platform::Parse(platform);
    if (!p)
      return ReportError(std::move(p).error().WithContext("--platform"));
    want = *p;
  }
  auto store = OpenImageStore(ctx);
  if (!store)
    return ReportError(store.error());
  auto attestation = [&](const std::string& n) -> Expected<std::string> {
    KILN_ASSIGN_OR_RETURN(StoredImage img, image::ResolveLocal(*store, n, want));
    if (img.names.empty())
      img.names = {n};
    return attest::FindAttestation(*store, img, predicate_type);
  };
  std::vector<std::string> docs;
  int status = 0;
  for (const auto& n : names) {
    if (auto doc = attestation(n))
      docs.push_back(std::move(*doc));
    else
      status = ReportError(doc.error());
  }
  if (docs.size() == 1 && names.size() == 1) {
    std::fputs(docs[0].c_str(), stdout);
  } else if (!docs.empty()) {
    std::string out = "[\n";
    for (size_t i = 0; i < docs.size(); ++i)
      out += docs[i] + (i + 1 < docs.size() ? ",\n" : "");
    std::fputs((out + "]\n").c_str(), stdout);
  }
  return status;
}

int InspectCommand(Context& ctx, const std::string& type, const std::string& format,
                   const std::vector<std::string>& names) {
  if (type == "container") {
    if (!InspectContainersCommand)
      return ReportError(Error(Errc::kUnsupported, "inspect --type container: containers are not supported by "
                                                   "this build"));
    return InspectContainersCommand(ctx, names, format);
  }
  auto store = OpenImageStore(ctx);
  if (!store)
    return ReportError(store.error());
  std::vector<nlohmann::json> out;
  int status = 0;
  for (const auto& n : names) {
    auto img = image::ResolveLocal(*store, n);
    if (!img && img.error().code() == Errc::kNotFound)
      if (auto list = ResolveListWithoutHost(*store, n))
        img = std::move(list);
    if (!img) {
      // podman: without --type, a name that is no image may be a container.
      if (type.empty() && img.error().code() == Errc::kNotFound && InspectContainerJson) {
        if (auto c = InspectContainerJson(ctx, n)) {
          out.push_back(std::move(*c));
          continue;
        }
      }
      status = ReportError(img.error());
      continue;
    }
    nlohmann::json j = InspectImageJson(*img);
    if (IsIndexMediaType(img->top.media_type)) {
      // A multi-platform image: the host's (or first) image as above, plus
      // the index itself.
      if (auto idx = store->ReadIndex(img->top.digest)) {
        j["MediaType"] = img->top.media_type;
        j["IsManifestList"] = true;
        nlohmann::json ms = nlohmann::json::array();
        for (const Descriptor& d : idx->manifests)
          ms.push_back(nlohmann::json::parse(ToJson(d), nullptr, false));
        j["Manifests"] = ms;
      }
    }
    out.push_back(j);
  }
  if ((format.empty() || format::IsJsonFormat(format)) && out.empty() && status != 0)
    return status;
  format::Options o;
  o.name = "inspect";
  o.type_name = "inspect.ImageData";
  int rc = PrintObjects(format, out, o, 4);
  return rc != 0 ? rc : status;
}

}  // namespace

void AddInspectCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("inspect", "show the configuration of images (or containers) as JSON");
  struct Flags {
    std::string type, format, platform;
    bool sbom = false, provenance = false;
    std::vector<std::string> names;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("-t,--type", f->type, "image or container (default: image, then container)")
      ->check(CLI::IsMember({"image", "container"}));
  cmd->add_option("-f,--format", f->format,
                  "json, or a Go template such as {{.Id}}, {{json .Config}}, {{.State.Status}} (docs/format.md)");
  cmd->add_flag("--sbom", f->sbom,
                "print the image's SPDX SBOM attestation (made by kiln build --sbom; docs/supply-chain.md)");
  cmd->add_flag("--provenance", f->provenance,
                "print the image's SLSA provenance attestation (made by kiln build --provenance)");
  cmd->add_option("--platform", f->platform, "with --sbom/--provenance: the platform's image of a multi-platform one "
                                             "(default: this host's)");
  cmd->add_option("names", f->names, "image names, IDs or digests")->required();
  SetAction(cmd, ctx, [&ctx, f] {
    if (f->sbom && f->provenance)
      return ReportError(Error(Errc::kInvalidInput, "--sbom and --provenance: one attestation at a time"));
    if ((f->sbom || f->provenance) && (f->type == "container" || !f->format.empty()))
      return ReportError(Error(Errc::kInvalidInput, "--sbom and --provenance print an image's attestation as JSON: "
                                                    "not with --type container or --format"));
    if (!f->platform.empty() && !f->sbom && !f->provenance)
      return ReportError(Error(Errc::kInvalidInput, "--platform goes with --sbom or --provenance"));
    if (f->sbom || f->provenance)
      return InspectAttestations(ctx, f->sbom ? kPredicateSpdx : kPredicateSlsa1, f->platform,
                                 f->names);
    return InspectCommand(ctx, f->type, f->format, f->names);
  });
}

}  // namespace kiln::cli
