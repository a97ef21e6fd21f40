// Transport dispatch and the local transports: oci:, oci-archive:,
// docker-archive:, dir:. The registry module registers "docker".
#include "kiln/transport.h"

#include <map>
#include <mutex>
#include <cstdlib>
#include <set>

#include "kiln/env.h"
#include "kiln/fs.h"
#include "kiln/reference.h"
#include "store/ingest.h"

namespace kiln {

using store_internal::CopyBlobIn;
using store_internal::CopyBlobOut;
using store_internal::FoundImage;
using store_internal::ImageBlobs;

namespace {

struct Handlers {
  PushFn push;
  PullFn pull;
};

const std::set<std::string>& LocalTransports() {
  static const std::set<std::string> k = {"oci", "oci-archive", "docker-archive", "dir"};
  return k;
}

// Transports skopeo knows that kiln does not implement: named in errors.
const std::set<std::string>& ForeignTransports() {
  static const std::set<std::string> k = {"containers-storage", "docker-daemon", "ostree", "sif", "tarball"};
  return k;
}

// ------------------------------------------------------------ oci:

Status PushOciLayout(Store& store, const StoredImage& image, const std::string&, const TransportRef& dest,
                     const TransferOptions&) {
  const std::string& dir = dest.location;
  KILN_TRY(MakeDirs(JoinPath(dir, "blobs/sha256")));
  std::string layout = JoinPath(dir, "oci-layout");
  if (!PathExists(layout))
    KILN_TRY(WriteFileAtomic(layout, R"({"imageLayoutVersion":"1.0.0"})"));
  Index idx;
  std::string index_path = JoinPath(dir, "index.json");
  if (PathExists(index_path)) {
    KILN_ASSIGN_OR_RETURN(std::string json, ReadFile(index_path, kMaxDocumentBytes));
    auto parsed = ParseIndex(json);
    if (!parsed)
      return std::move(parsed).error().WithContext(index_path);
    idx = std::move(*parsed);
  }
  KILN_ASSIGN_OR_RETURN(auto blobs, ImageBlobs(store, image.top));
  for (const auto& d : blobs)
    KILN_TRY(CopyBlobOut(store, d.digest, JoinPath(dir, "blobs/sha256/" + d.digest.hex())));
  Descriptor top = image.top;
  top.annotations.erase(std::string(kAnnotationRefName));
  std::erase_if(idx.manifests, [&](const Descriptor& d) {
    auto it = d.annotations.find(std::string(kAnnotationRefName));
    if (dest.ref.empty())
      return it == d.annotations.end() && d.digest == top.digest;
    return it != d.annotations.end() && it->second == dest.ref;
  });
  if (!dest.ref.empty())
    top.annotations[std::string(kAnnotationRefName)] = dest.ref;
  idx.manifests.push_back(top);
  return WriteFileAtomic(index_path, ToJson(idx));
}

Expected<PulledImage> PullOciLayout(Store& store, const TransportRef& src, const TransferOptions&) {
  KILN_ASSIGN_OR_RETURN(FoundImage f, store_internal::LoadLayoutImage(store, src.location, src.ref));
  return PulledImage{f.top, f.names, {}};
}

// ------------------------------------------------------------ archives

std::vector<std::string> NamesFor(const std::string& ref, const std::string& source_name) {
  std::string text = ref.empty() ? source_name : ref;
  auto r = ImageReference::Parse(text);
  if (!r || r->tag.empty() || r->digest.valid())
    return {};
  return {r->str()};
}

Status PushOciArchive(Store& store, const StoredImage& image, const std::string&, const TransportRef& dest,
                      const TransferOptions&) {
  SaveItem item{image, {}};
  if (!dest.ref.empty())
    item.names.push_back(dest.ref);
  return SaveArchive(store, {item}, dest.location, ArchiveFormat::kOciArchive);
}

Status PushDockerArchive(Store& store, const StoredImage& image, const std::string& source_name,
                         const TransportRef& dest, const TransferOptions&) {
  SaveItem item{image, NamesFor(dest.ref, source_name)};
  if (!dest.ref.empty() && item.names.empty())
    return Error(Errc::kInvalidInput, "invalid reference \"" + dest.ref + "\" for " + dest.str() +
                                          ": need NAME:TAG");
  return SaveArchive(store, {item}, dest.location, ArchiveFormat::kDockerArchive);
}

Expected<PulledImage> PullArchive(Store& store, const TransportRef& src, const TransferOptions&) {
  KILN_ASSIGN_OR_RETURN(auto found, store_internal::LoadArchiveImages(store, src.location));
  KILN_ASSIGN_OR_RETURN(FoundImage f, store_internal::SelectImage(found, src.ref, src.transport + ":" + src.location));
  return PulledImage{f.top, f.names, f.verified_layers};
}

// ------------------------------------------------------------ dir:

Status PushDir(Store& store, const StoredImage& image, const std::string&, const TransportRef& dest,
               const TransferOptions&) {
  const std::string& dir = dest.location;
  KILN_TRY(MakeDirs(dir));
  for (const auto& l : image.manifest.layers)
    KILN_TRY(CopyBlobOut(store, l.digest, JoinPath(dir, l.digest.hex())));
  KILN_TRY(CopyBlobOut(store, image.manifest.config.digest, JoinPath(dir, image.manifest.config.digest.hex())));
  KILN_ASSIGN_OR_RETURN(std::string manifest, store.ReadBlob(image.manifest_descriptor.digest));
  KILN_TRY(WriteFileAtomic(JoinPath(dir, "manifest.json"), manifest));
  return WriteFileAtomic(JoinPath(dir, "version"), "Directory Transport Version: 1.1\n");
}

Expected<PulledImage> PullDir(Store& store, const TransportRef& src, const TransferOptions& options) {
  const std::string& dir = src.location;
  auto where = [&](Error e) { return std::move(e).WithContext("dir:" + dir); };
  auto body = ReadFile(JoinPath(dir, "manifest.json"), kMaxDocumentBytes);
  if (!body)
    return where(std::move(body).error());
  auto mt = DetectManifestMediaType(*body);
  if (!mt)
    return where(std::move(mt).error());
  std::string manifest_body = *body;
  std::string manifest_type = *mt;
  if (IsIndexMediaType(*mt)) {
    auto idx = ParseIndex(*body);
    if (!idx)
      return where(std::move(idx).error());
    auto chosen = idx->SelectPlatform(options.platform.value_or(Platform::Host()));
    if (!chosen)
      return where(std::move(chosen).error());
    auto mb = ReadFile(JoinPath(dir, chosen->digest.hex()), kMaxDocumentBytes);
    if (!mb)
      return where(std::move(mb).error());
    if (Digest::Of(*mb) != chosen->digest)
      return where(Error(Errc::kCorrupt, "digest mismatch for manifest " + chosen->digest.str()));
    manifest_body = *mb;
    manifest_type = chosen->media_type;
  }
  auto m = ParseManifest(manifest_body);
  if (!m)
    return where(std::move(m).error());
  auto copy = [&](const Descriptor& d) -> Status {
    auto in = CopyBlobIn(store, JoinPath(dir, d.digest.hex()), d);
    if (!in)
      return where(std::move(in).error());
    return Ok();
  };
  KILN_TRY(copy(m->config));
  for (const auto& l : m->layers)
    KILN_TRY(copy(l));
  KILN_ASSIGN_OR_RETURN(Descriptor top, store.PutBlob(manifest_type, manifest_body));
  return PulledImage{top, {}};
}

std::mutex& RegistryMutex() {
  static std::mutex m;
  return m;
}

std::map<std::string, Handlers>& Registry() {
  static std::map<std::string, Handlers> handlers = {
      {"oci", {PushOciLayout, PullOciLayout}},
      {"oci-archive", {PushOciArchive, PullArchive}},
      {"docker-archive", {PushDockerArchive, PullArchive}},
      {"dir", {PushDir, PullDir}},
  };
  return handlers;
}

Expected<Handlers> Find(const std::string& transport) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  auto it = Registry().find(transport);
  if (it == Registry().end())
    return Error(Errc::kUnsupported, "transport \"" + transport + "\" is not available in this build");
  return it->second;
}

}  // namespace

Expected<TransportRef> TransportRef::Parse(std::string_view text) {
  TransportRef r;
  if (text.rfind("docker://", 0) == 0) {
    r.transport = "docker";
    r.location = std::string(text.substr(9));
    if (r.location.empty())
      return Error(Errc::kInvalidInput, "invalid reference \"" + std::string(text) + "\": empty image name");
    return r;
  }
  auto colon = text.find(':');
  std::string prefix = colon == std::string_view::npos ? std::string() : std::string(text.substr(0, colon));
  if (!LocalTransports().count(prefix)) {
    if (ForeignTransports().count(prefix))
      return Error(Errc::kInvalidInput, "invalid reference \"" + std::string(text) + "\": transport \"" + prefix +
                                            "\" is not supported (use oci:, oci-archive:, docker-archive:, dir: "
                                            "or docker://)");
    r.transport = "docker";
    r.location = std::string(text);
    return r;
  }
  r.transport = prefix;
  std::string_view rest = text.substr(colon + 1);
  if (r.transport == "dir") {
    r.location = std::string(rest);
  } else {
    // containers/image splits PATH and REF at the first ':' after the
    // transport (so a REF may itself hold ':').
    auto c2 = rest.find(':');
    r.location = std::string(rest.substr(0, c2));
    if (c2 != std::string_view::npos)
      r.ref = std::string(rest.substr(c2 + 1));
  }
  if (r.location.empty())
    return Error(Errc::kInvalidInput, "invalid reference \"" + std::string(text) + "\": empty path");
  return r;
}

std::string TransportRef::str() const {
  if (transport == "docker")
    return "docker://" + location;
  return transport + ":" + location + (ref.empty() ? "" : ":" + ref);
}

void RegisterTransport(const std::string& name, PushFn push, PullFn pull) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  Registry()[name] = Handlers{std::move(push), std::move(pull)};
}

Status PushImage(Store& store, const StoredImage& image, const std::string& source_name, const TransportRef& dest,
                 const TransferOptions& options) {
  KILN_ASSIGN_OR_RETURN(Handlers h, Find(dest.transport));
  if (!h.push)
    return Error(Errc::kUnsupported, "transport \"" + dest.transport + "\" cannot be written");
  auto s = h.push(store, image, source_name, dest, options);
  if (!s)
    return std::move(s).error().WithContext("push " + dest.str());
  return Ok();
}

Expected<PulledImage> PullImage(Store& store, const TransportRef& src, const TransferOptions& options) {
  KILN_ASSIGN_OR_RETURN(Handlers h, Find(src.transport));
  if (!h.pull)
    return Error(Errc::kUnsupported, "transport \"" + src.transport + "\" cannot be read");
  auto r = h.pull(store, src, options);
  if (!r)
    return std::move(r).error().WithContext("pull " + src.str());
  // Verify before anyone names it. Inside kiln's user namespace (pull,
  // build, run) a layer whose diff_id is still unknown is checked by
  // unpacking it into the layer directory a run will use.
  bool unpack = options.unpack_layers && std::getenv(kUserNsMarkerEnv) != nullptr;
  if (auto s = VerifyImageClosure(store, r->top, r->verified_layers, unpack); !s)
    return std::move(s).error().WithContext("pull " + src.str());
  // ... and it must resolve to a runnable image for the platform asked for
  // (pull prints its ID right after naming it).
  if (auto img = store.LoadImage(r->top, options.platform); !img)
    return std::move(img).error().WithContext("pull " + src.str());
  return r;
}

}  // namespace kiln
