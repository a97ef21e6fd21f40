#include "kiln/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>

#include "kiln/fs.h"
#include "kiln/io.h"
#include "kiln/log.h"
#include "kiln/reference.h"
#include "store/internal.h"

#ifdef KILN_STORE_HAVE_LAYER
#include "kiln/layer.h"
#endif

namespace kiln {

using store_internal::AtomicWrite;
using store_internal::BootId;
using store_internal::ValidRecordName;
using store_internal::FileLock;

// ============================================================ crash points

namespace {

struct CrashState {
  bool loaded = false;
  long target = 0;
  long count = 0;
  std::string log;
};

CrashState& Crash() {
  static CrashState state;
  return state;
}

}  // namespace

void ResetCrashPointsForTesting() {
  CrashState& s = Crash();
  s = CrashState();
}

void CrashPoint(const char* name) {
  CrashState& s = Crash();
  if (!s.loaded) {
    s.loaded = true;
    if (const char* at = std::getenv("KILN_CRASH_AT"))
      s.target = std::strtol(at, nullptr, 10);
    if (const char* log = std::getenv("KILN_CRASH_LOG"))
      s.log = log;
  }
  if (s.target <= 0 && s.log.empty())
    return;
  ++s.count;
  if (!s.log.empty()) {
    int fd = ::open(s.log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
      std::string line = std::to_string(s.count) + " " + name + "\n";
      (void)!::write(fd, line.data(), line.size());
      ::close(fd);
    }
  }
  if (s.count == s.target)
    ::kill(::getpid(), SIGKILL);
}

// ============================================================ internals

namespace store_internal {

// This boot's id (empty when the kernel does not tell): unsynced layer
// records carry it, so that a later boot can tell that they never reached a
// sync. Tests may override it with $KILN_TEST_BOOT_ID.
std::string BootId() {
  if (const char* fake = std::getenv("KILN_TEST_BOOT_ID"))
    return fake;
  static const std::string id = [] {
    auto text = ReadFile("/proc/sys/kernel/random/boot_id", 128);
    if (!text)
      return std::string();
    std::string t = *text;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' '))
      t.pop_back();
    return t;
  }();
  return id;
}

Status AtomicWrite(const std::string& tmp_dir, const std::string& path, std::string_view data,
                   const char* what, mode_t mode) {
  AtomicWriteOptions o;
  o.mode = mode;
  o.temp_dir = tmp_dir;
  o.on_step = [what](const char* step) {
    std::string point = std::string(what) + ": " + step;
    CrashPoint(point.c_str());
  };
  return WriteFileAtomic(path, data, o);
}

Expected<FileLock> FileLock::Acquire(const std::string& path, bool exclusive) {
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDWR | O_CREAT, 0644));
  int rc;
  do {
    rc = ::flock(fd.get(), exclusive ? LOCK_EX : LOCK_SH);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0)
    return Error::FromErrno("lock " + path);
  FileLock lock;
  lock.fd_ = std::move(fd);
  return lock;
}

void CollectDigests(std::string_view text, std::set<std::string>* out) {
  size_t pos = 0;
  while ((pos = text.find("sha256:", pos)) != std::string_view::npos) {
    std::string_view cand = text.substr(pos, 7 + 64);
    if (cand.size() == 71 && Digest::Parse(cand) && (pos + 71 == text.size() || !std::isxdigit(
                                                         static_cast<unsigned char>(text[pos + 71]))))
      out->insert(std::string(cand));
    pos += 7;
  }
}

bool ValidRecordName(std::string_view key) {
  if (key.empty() || key.size() > 128 || key[0] == '.')
    return false;
  for (char c : key)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-')
      return false;
  return true;
}

}  // namespace store_internal

// ============================================================ Store

namespace {

constexpr std::string_view kEmptyIndex =
    R"({"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2})";

std::string RefName(const Descriptor& d) {
  auto it = d.annotations.find(std::string(kAnnotationRefName));
  return it == d.annotations.end() ? std::string() : it->second;
}


}  // namespace

class Store::IndexLock {
 public:
  static Expected<IndexLock> Take(const Store& s) {
    KILN_ASSIGN_OR_RETURN(FileLock l, FileLock::Acquire(JoinPath(s.root(), "lock"), true));
    IndexLock il;
    il.lock_ = std::move(l);
    return il;
  }

 private:
  FileLock lock_;
};

Store::Store(std::string root) : root_(std::move(root)), lease_(NewLeaseSlot()) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

namespace {

// Marks the store's tmp directory, where every layer is unpacked and every
// build step's files are made, as the top of unrelated trees for ext4's
// Orlov allocator (chattr +T, FS_TOPDIR_FL): each staging directory is then
// placed in a block group chosen by its (random) name among the groups with
// more free inodes than average, instead of beside its siblings. Without a
// journal, ext4 skips every inode freed in the last 30 s of a group, reading
// its inode each time (find_inode_bit -> recently_deleted), so creating a
// tree where another was just removed (rmi then pull, a bench's rm -rf)
// cost up to 0.5 ms per file: 5.3 s of system time for a 10,000-file layer
// against 1.5 s in a fresh group (docs/performance.md). A hint only: other
// file systems refuse the flag and nothing changes.
void MarkTopDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  int flags = 0;
  if (!fd || ::ioctl(fd.get(), FS_IOC_GETFLAGS, &flags) != 0 || (flags & FS_TOPDIR_FL))
    return;
  flags |= FS_TOPDIR_FL;
  (void)::ioctl(fd.get(), FS_IOC_SETFLAGS, &flags);
}

}  // namespace

Expected<Store> Store::Open(const std::string& root) {
  if (root.empty())
    return Error(Errc::kInvalidInput, "store root is empty");
  auto ctx = [&](Error e) { return std::move(e).WithContext("open store " + root); };
  for (const char* sub : {"blobs/sha256", "layers", "cache", "containers", "tmp", "unsynced"})
    if (auto s = MakeDirs(JoinPath(root, sub), 0755); !s)
      return ctx(std::move(s).error());
  MarkTopDir(JoinPath(root, "tmp"));
  Store store(root);
  auto gc = OpenFile(JoinPath(root, "gc.lock"), O_RDWR | O_CREAT, 0644);
  if (!gc)
    return ctx(std::move(gc).error());
  int rc;
  do {
    rc = ::flock(gc->get(), LOCK_SH);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0)
    return ctx(Error::FromErrno("lock gc.lock"));
  store.gc_lock_ = std::move(*gc);
  if (auto s = store.RecoverUnsyncedLayers(); !s)
    return ctx(std::move(s).error());

  std::string layout = JoinPath(root, "oci-layout");
  std::string index = JoinPath(root, "index.json");
  if (!PathExists(layout) || !PathExists(index)) {
    auto lock = IndexLock::Take(store);
    if (!lock)
      return ctx(std::move(lock).error());
    if (!PathExists(layout))
      if (auto s = AtomicWrite(store.TmpDir(), layout, R"({"imageLayoutVersion":"1.0.0"})", "oci-layout"); !s)
        return ctx(std::move(s).error());
    if (!PathExists(index))
      if (auto s = AtomicWrite(store.TmpDir(), index, kEmptyIndex, "index.json"); !s)
        return ctx(std::move(s).error());
  }
  return store;
}

// ------------------------------------------------------------ blobs

std::string Store::BlobPath(const Digest& digest) const {
  return root_ + "/blobs/" + digest.algorithm() + "/" + digest.hex();
}

bool Store::HasBlob(const Digest& digest) const {
  if (!digest.valid() || !PathExists(BlobPath(digest)))
    return false;
  NoteLeased(digest);  // found present: a writer may reuse it
  return true;
}

Expected<BlobWriter> Store::NewBlobWriter(std::optional<Digest> expected, int64_t expected_size) const {
  if (expected && expected->algorithm() != "sha256")
    return Error(Errc::kUnsupported, "unsupported digest algorithm " + expected->algorithm() + " (" +
                                         expected->str() + ")");
  std::string tmpl = JoinPath(TmpDir(), "blob-XXXXXX");
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int raw = ::mkostemp(name.data(), O_CLOEXEC);
  if (raw < 0)
    return Error::FromErrno("create temporary file in " + TmpDir());
  BlobWriter w;
  w.store_ = this;
  w.fd_ = UniqueFd(raw);
  w.tmp_path_ = name.data();
  w.expected_ = std::move(expected);
  w.expected_size_ = expected_size;
  if (::fchmod(raw, 0644) != 0)
    return Error::FromErrno("chmod " + w.tmp_path_);
  CrashPoint("blob: temp created");
  return w;
}

Expected<Descriptor> Store::PutBlob(std::string_view media_type, std::string_view data) const {
  Digest d = Digest::Of(data);
  if (HasBlob(d)) {
    Descriptor desc;
    desc.media_type = std::string(media_type);
    desc.digest = d;
    desc.size = static_cast<int64_t>(data.size());
    return desc;
  }
  KILN_ASSIGN_OR_RETURN(BlobWriter w, NewBlobWriter(d, static_cast<int64_t>(data.size())));
  size_t half = data.size() / 2;
  KILN_TRY(w.Write(data.substr(0, half)));
  CrashPoint("blob: half written");
  KILN_TRY(w.Write(data.substr(half)));
  return w.Commit(media_type);
}

Expected<Descriptor> Store::PutBlobFromFd(int fd, std::string_view media_type, std::optional<Digest> expected,
                                          int64_t expected_size) const {
  KILN_ASSIGN_OR_RETURN(BlobWriter w, NewBlobWriter(expected, expected_size));
  KILN_TRY(ReadChunks(fd, size_t(1) << 17, [&](std::string_view data) { return w.Write(data.data(), data.size()); }));
  return w.Commit(media_type);
}

Expected<UniqueFd> Store::OpenBlob(const Digest& digest) const {
  if (!digest.valid())
    return Error(Errc::kInvalidInput, "invalid digest");
  auto fd = OpenFile(BlobPath(digest), O_RDONLY);
  if (!fd && fd.error().code() == Errc::kNotFound)
    return Error(Errc::kNotFound, "blob " + digest.str() + " is not in the store " + root_);
  if (fd)
    NoteLeased(digest);
  return fd;
}

Expected<std::string> Store::ReadBlob(const Digest& digest, size_t max_bytes) const {
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenBlob(digest));
  auto data = ReadAll(fd.get(), max_bytes);
  if (!data)
    return std::move(data).error().WithContext("read blob " + digest.str());
  if (digest.algorithm() == "sha256" && Digest::Of(*data) != digest)
    return Error(Errc::kCorrupt, "blob " + digest.str() + " in " + root_ + " is corrupt (digest mismatch)");
  return data;
}

namespace {

// `parse` of the blob `body` read for `digest`; a parse error names the digest.
template <typename T>
Expected<T> ParseBlob(Expected<std::string> body, const Digest& digest, Expected<T> (*parse)(std::string_view)) {
  if (!body)
    return std::move(body).error();
  auto v = parse(*body);
  if (!v)
    return std::move(v).error().WithContext(digest.str());
  return v;
}

}  // namespace

Expected<Manifest> Store::ReadManifest(const Digest& digest) const {
  return ParseBlob<Manifest>(ReadBlob(digest), digest, ParseManifest);
}

Expected<Index> Store::ReadIndex(const Digest& digest) const { return ParseBlob<Index>(ReadBlob(digest), digest, ParseIndex); }

Expected<ImageConfig> Store::ReadConfig(const Digest& digest) const {
  return ParseBlob<ImageConfig>(ReadBlob(digest), digest, ParseImageConfig);
}

Expected<Descriptor> Store::WriteImage(const ImageConfig& config, const std::vector<Descriptor>& layers,
                                       std::string_view manifest_media_type,
                                       const std::map<std::string, std::string>& annotations) const {
  bool docker = manifest_media_type == kMediaTypeDockerManifest;
  if (!docker && manifest_media_type != kMediaTypeOciManifest)
    return Error(Errc::kInvalidInput, "unsupported manifest type " + std::string(manifest_media_type));
  if (config.diff_ids.size() != layers.size())
    return Error(Errc::kInvalidInput, "image has " + std::to_string(layers.size()) + " layers but " +
                                          std::to_string(config.diff_ids.size()) + " diff_ids");
  Manifest m;
  m.media_type = std::string(manifest_media_type);
  m.annotations = annotations;
  for (const auto& l : layers) {
    if (!HasBlob(l.digest))
      return Error(Errc::kNotFound, "layer " + l.digest.str() + " is not in the store");
    Descriptor d = l;
    if (docker) {
      if (d.media_type == kMediaTypeOciLayerGzip)
        d.media_type = std::string(kMediaTypeDockerLayerGzip);
      else if (d.media_type == kMediaTypeOciLayer)
        d.media_type = std::string(kMediaTypeDockerLayer);
      else if (d.media_type == kMediaTypeOciLayerZstd)
        return Error(Errc::kUnsupported, "docker manifests cannot hold zstd layers (use the oci format)");
    }
    m.layers.push_back(std::move(d));
  }
  KILN_ASSIGN_OR_RETURN(m.config, PutBlob(docker ? kMediaTypeDockerConfig : kMediaTypeOciConfig,
                                          ToJson(config)));
  return PutBlob(manifest_media_type, ToJson(m));
}

// ------------------------------------------------------------ index.json

Expected<std::string> Store::ReadIndexJson() const {
  return ReadFile(JoinPath(root_, "index.json"), kMaxDocumentBytes);
}

Status Store::WriteIndexJson(const std::string& json) const {
  return AtomicWrite(TmpDir(), JoinPath(root_, "index.json"), json, "index.json");
}

namespace {

Expected<Index> LoadIndex(const std::string& json, const std::string& root) {
  auto x = ParseIndex(json);
  if (!x)
    return Error(Errc::kCorrupt, root + "/index.json: " + x.error().message());
  return x;
}

}  // namespace

Expected<std::vector<ImageEntry>> Store::ListImages() const {
  KILN_ASSIGN_OR_RETURN(std::string json, ReadIndexJson());
  KILN_ASSIGN_OR_RETURN(Index idx, LoadIndex(json, root_));
  std::vector<ImageEntry> out;
  std::map<std::string, size_t> pos;
  for (const auto& d : idx.manifests) {
    std::string name = RefName(d);
    Descriptor plain = d;
    plain.annotations.erase(std::string(kAnnotationRefName));
    auto it = pos.find(d.digest.str());
    if (it == pos.end()) {
      it = pos.emplace(d.digest.str(), out.size()).first;
      out.push_back(ImageEntry{plain, {}});
    }
    if (!name.empty())
      out[it->second].names.push_back(name);
  }
  for (auto& e : out)
    std::sort(e.names.begin(), e.names.end());
  return out;
}

Status Store::AddImage(const Descriptor& top, std::span<const std::string> names) {
  if (!IsManifestMediaType(top.media_type) && !IsIndexMediaType(top.media_type))
    return Error(Errc::kInvalidInput, "not a manifest or index: " + top.media_type);
  if (!HasBlob(top.digest))
    return Error(Errc::kNotFound, "manifest " + top.digest.str() + " is not in the store");
  KILN_ASSIGN_OR_RETURN(IndexLock lock, IndexLock::Take(*this));
  CrashPoint("index: locked");
  KILN_ASSIGN_OR_RETURN(std::string json, ReadIndexJson());
  KILN_ASSIGN_OR_RETURN(Index idx, LoadIndex(json, root_));
  // An image that is already present under another manifest (same ID: same
  // config digest; e.g. `save --format docker-archive` then `load`) gets the
  // names only, never a second entry with the same ID (issue [2.1b] 7). The
  // complete copy stays: the existing one, unless it is damaged (a blob
  // missing), which the new one then replaces with all its names (repair).
  std::optional<Digest> absorb;
  if (IsManifestMediaType(top.media_type)) {
    if (auto mine = ReadManifest(top.digest)) {
      for (const auto& d : idx.manifests) {
        if (d.digest == top.digest || !IsManifestMediaType(d.media_type) || !HasBlob(d.digest))
          continue;
        auto other = ReadManifest(d.digest);
        if (!other || other->config.digest != mine->config.digest)
          continue;
        if (MissingBlobs(d).empty()) {
          Descriptor existing = d;
          existing.annotations.erase(std::string(kAnnotationRefName));
          return AddImageLocked(idx, existing, names);
        }
        absorb = d.digest;
        break;
      }
    }
  }
  if (absorb)
    for (auto& d : idx.manifests)
      if (d.digest == *absorb) {
        std::string n = RefName(d);
        d = top;
        d.annotations.erase(std::string(kAnnotationRefName));
        if (!n.empty())
          d.annotations[std::string(kAnnotationRefName)] = n;
      }
  return AddImageLocked(idx, top, names);
}

Status Store::AddImageLocked(Index& idx, const Descriptor& top, std::span<const std::string> names) {
  std::set<std::string> wanted(names.begin(), names.end());
  std::vector<Descriptor> kept;
  std::set<std::string> lost_name;  // images that lose a name to this one
  for (auto& d : idx.manifests) {
    std::string n = RefName(d);
    if (d.digest == top.digest && n.empty())
      continue;  // re-added below (named or not)
    if (!n.empty() && wanted.count(n)) {
      if (d.digest != top.digest)
        lost_name.insert(d.digest.str());
      continue;
    }
    kept.push_back(std::move(d));
  }
  Descriptor base = top;
  base.annotations.erase(std::string(kAnnotationRefName));
  bool has_named = false;
  for (const auto& d : kept)
    has_named = has_named || (d.digest == top.digest);
  for (const auto& n : wanted) {
    Descriptor d = base;
    d.annotations[std::string(kAnnotationRefName)] = n;
    kept.push_back(std::move(d));
    has_named = true;
  }
  if (!has_named)
    kept.push_back(base);
  // An image whose last name moved away stays, unnamed (podman's <none>).
  for (const auto& digest : lost_name) {
    bool still = std::any_of(kept.begin(), kept.end(), [&](const Descriptor& d) { return d.digest.str() == digest; });
    if (still)
      continue;
    for (const auto& d : idx.manifests)
      if (d.digest.str() == digest) {
        Descriptor u = d;
        u.annotations.erase(std::string(kAnnotationRefName));
        kept.push_back(std::move(u));
        break;
      }
  }
  idx.manifests = std::move(kept);
  return WriteIndexJson(ToJson(idx));
}

Status Store::RemoveName(const std::string& name) {
  KILN_ASSIGN_OR_RETURN(IndexLock lock, IndexLock::Take(*this));
  KILN_ASSIGN_OR_RETURN(std::string json, ReadIndexJson());
  KILN_ASSIGN_OR_RETURN(Index idx, LoadIndex(json, root_));
  auto it = std::find_if(idx.manifests.begin(), idx.manifests.end(),
                         [&](const Descriptor& d) { return RefName(d) == name; });
  if (it == idx.manifests.end())
    return Error(Errc::kNotFound, "image not known: " + name);
  Descriptor removed = *it;
  idx.manifests.erase(it);
  bool still = std::any_of(idx.manifests.begin(), idx.manifests.end(),
                           [&](const Descriptor& d) { return d.digest == removed.digest; });
  if (!still) {
    removed.annotations.erase(std::string(kAnnotationRefName));
    idx.manifests.push_back(std::move(removed));
  }
  return WriteIndexJson(ToJson(idx));
}

Status Store::RemoveImage(const Digest& top_digest) {
  KILN_ASSIGN_OR_RETURN(IndexLock lock, IndexLock::Take(*this));
  KILN_ASSIGN_OR_RETURN(std::string json, ReadIndexJson());
  KILN_ASSIGN_OR_RETURN(Index idx, LoadIndex(json, root_));
  size_t before = idx.manifests.size();
  std::erase_if(idx.manifests, [&](const Descriptor& d) { return d.digest == top_digest; });
  if (idx.manifests.size() == before)
    return Error(Errc::kNotFound, "image not known: " + top_digest.str());
  return WriteIndexJson(ToJson(idx));
}

// ------------------------------------------------------------ resolution

Expected<StoredImage> Store::LoadImage(const Descriptor& top, const std::optional<Platform>& platform) const {
  StoredImage img;
  img.top = top;
  img.top.annotations.erase(std::string(kAnnotationRefName));
  img.manifest_descriptor = img.top;
  if (IsIndexMediaType(top.media_type)) {
    KILN_ASSIGN_OR_RETURN(Index idx, ReadIndex(top.digest));
    Platform want = platform.value_or(Platform::Host());
    // Prefer a platform whose manifest we actually have.
    Index present = idx;
    std::erase_if(present.manifests, [&](const Descriptor& d) { return !HasBlob(d.digest); });
    auto chosen = present.SelectPlatform(want);
    if (!chosen) {
      auto any = idx.SelectPlatform(want);
      if (any)
        return Error(Errc::kNotFound, "image " + top.digest.str() + ": the manifest for " + want.str() +
                                          " is not in the store");
      return std::move(chosen).error().WithContext("image " + top.digest.str());
    }
    img.manifest_descriptor = *chosen;
  } else if (!IsManifestMediaType(top.media_type)) {
    return Error(Errc::kCorrupt, "index.json entry " + top.digest.str() + " has media type " + top.media_type);
  }
  KILN_ASSIGN_OR_RETURN(img.manifest, ReadManifest(img.manifest_descriptor.digest));
  KILN_ASSIGN_OR_RETURN(img.config_json, ReadBlob(img.manifest.config.digest));
  auto cfg = ParseImageConfig(img.config_json);
  if (!cfg)
    return std::move(cfg).error().WithContext(img.manifest.config.digest.str());
  img.config = std::move(*cfg);
  if (platform && !IsIndexMediaType(top.media_type) && !platform->Matches(img.config.platform()))
    return Error(Errc::kNotFound, "image " + top.digest.str() + " is for " + img.config.platform().str() +
                                      ", not " + platform->str());
  return img;
}

Expected<StoredImage> Store::ResolveImage(std::string_view text,
                                          const std::optional<Platform>& platform) const {
  if (text.empty())
    return Error(Errc::kInvalidInput, "empty image name");
  KILN_ASSIGN_OR_RETURN(std::vector<ImageEntry> images, ListImages());
  auto with_names = [&](const ImageEntry& e) -> Expected<StoredImage> {
    KILN_ASSIGN_OR_RETURN(StoredImage img, LoadImage(e.descriptor, platform));
    img.names = e.names;
    return img;
  };

  // 1. A name (short names: localhost/NAME, then docker.io/library/NAME).
  auto ref = ImageReference::Parse(text);
  std::vector<std::string> candidates;
  if (ref) {
    if (ref->implicit_domain) {
      auto local = ImageReference::ParseWithDefaultDomain(text, "localhost");
      if (local)
        candidates.push_back(local->str());
    }
    candidates.push_back(ref->str());
    for (const auto& cand : candidates) {
      for (const auto& e : images) {
        if (std::find(e.names.begin(), e.names.end(), cand) != e.names.end())
          return with_names(e);
      }
    }
    // name@digest: the digest decides (the name may be any of its names).
    if (ref->digest.valid()) {
      for (const auto& e : images)
        if (e.descriptor.digest == ref->digest)
          return with_names(e);
    }
  }

  // 2. An image ID (config digest) or its prefix; 3. a manifest digest.
  if (LooksLikeIdPrefix(text)) {
    std::string_view hex = text.substr(0, 7) == "sha256:" ? text.substr(7) : text;
    const ImageEntry* found = nullptr;
    std::string found_id;
    for (const auto& e : images) {
      if (e.descriptor.digest.hex().compare(0, hex.size(), hex) == 0 && hex.size() == 64) {
        return with_names(e);  // full manifest digest
      }
      auto img = LoadImage(e.descriptor, platform);
      if (!img)
        continue;
      const std::string& id = img->id().hex();
      if (id.compare(0, hex.size(), hex) != 0)
        continue;
      if (found && found_id != id)
        return Error(Errc::kInvalidInput, "image ID prefix \"" + std::string(text) +
                                              "\" is ambiguous: it matches " + found_id.substr(0, 12) +
                                              " and " + id.substr(0, 12));
      if (!found) {
        found = &e;
        found_id = id;
      }
    }
    if (found)
      return with_names(*found);
    // 4. The full digest of a manifest inside a stored index (one platform
    //    of a multi-platform image: FROM pins it, kiln run --platform).
    if (hex.size() == 64) {
      for (const auto& e : images) {
        if (!IsIndexMediaType(e.descriptor.media_type))
          continue;
        auto idx = ReadIndex(e.descriptor.digest);
        if (!idx)
          continue;
        for (const auto& d : idx->manifests)
          if (d.digest.hex() == hex && IsManifestMediaType(d.media_type) && HasBlob(d.digest))
            return LoadImage(d, platform);
      }
    }
  }
  if (!ref && !LooksLikeIdPrefix(text))
    return std::move(ref).error();
  return Error(Errc::kNotFound, "image not known: " + std::string(text));
}

// ------------------------------------------------------------ layers

std::string Store::LayerDir(const Digest& key) const { return root_ + "/layers/" + key.hex(); }

std::string Store::UnsyncedRecordPath(const Digest& key) const { return root_ + "/unsynced/" + key.hex(); }

Status Store::RecoverUnsyncedLayers() {
  const std::string boot = BootId();
  std::string dir = root_ + "/unsynced";
  KILN_ASSIGN_OR_RETURN(auto names, ListDirSorted(dir));
  if (names.empty() || boot.empty())
    return Ok();
  struct timespec now;
  ::clock_gettime(CLOCK_REALTIME, &now);
  // A record of this boot can go once a syncfs ran after its layer was
  // renamed into place (the rename sets the directory's ctime); a minute
  // later the kernel has written the layer back, and the syncfs is cheap.
  auto settled = [&](const std::string& n) {
    struct stat st;
    return ::stat((root_ + "/layers/" + n).c_str(), &st) == 0 && now.tv_sec - st.st_ctim.tv_sec > 60;
  };
  auto is_own = [&](const std::string& n) {
    auto text = ReadFile(dir + "/" + n, 256);
    return text && *text == boot;  // unreadable or empty (torn by a crash): not ours
  };
  std::vector<std::string> foreign;
  std::vector<std::string> settled_own;
  for (const auto& n : names) {
    if (!is_own(n))
      foreign.push_back(n);
    else if (settled(n))
      settled_own.push_back(n);
  }
  if (!foreign.empty()) {
    // Layers written in another boot that never reached a sync: the machine
    // went down with them in the page cache. Each is moved out of the way
    // (rename is atomic: of several processes doing this at once, one
    // moves it) and removed by prune from tmp/; its next use makes it
    // again. Every Open does this before any use of a layer, so nobody of
    // this boot can be using one.
    for (const auto& n : foreign) {
      std::string layer = root_ + "/layers/" + n;
      std::string discard = TmpDir() + "/discarded-layer-" + n + "-" + std::to_string(::getpid());
      if (::rename(layer.c_str(), discard.c_str()) != 0 && errno != ENOENT)
        return Error::FromErrno("discard unsynced layer " + layer);
      LogDebug("store: discarded layers/" + n + " (unpacked in an earlier boot, never synced)");
    }
    KILN_TRY(FsyncDir(root_ + "/layers"));
    // Records go after the renames are durable. A record rewritten meanwhile
    // by this boot (the layer made again) is kept.
    for (const auto& n : foreign)
      if (!is_own(n) && ::unlink((dir + "/" + n).c_str()) != 0 && errno != ENOENT)
        return Error::FromErrno("remove " + dir + "/" + n);
  }
  if (!settled_own.empty()) {
    // One syncfs makes the settled layers durable; their records go (only
    // those listed before the syncfs).
    auto fd = OpenFile(dir, O_RDONLY | O_DIRECTORY);
    if (fd && ::syncfs(fd->get()) == 0)
      for (const auto& n : settled_own)
        (void)::unlink((dir + "/" + n).c_str());
  }
  return Ok();
}

Expected<std::string> Store::GetOrCreateLayerDir(const Digest& key,
                                                 const std::function<Status(const std::string&)>& fill) {
  if (!key.valid())
    return Error(Errc::kInvalidInput, "invalid layer key");
  std::string final_dir = LayerDir(key);
  NoteLeased(key);
  if (PathExists(final_dir))
    return final_dir;
  // Deferred durability (docs/store.md): a layer directory is a cache of its
  // blob, which is durable already. Instead of waiting for the whole tree to
  // reach the disk (a syncfs cost a pull 0.1-0.4 s), a small record naming
  // the layer and this boot is made durable *before* any of the layer is
  // written; a store opened in a later boot discards every layer whose
  // record is still there (RecoverUnsyncedLayers), and the layer is unpacked
  // again from its blob. Without a boot id, the tree is synced as before.
  const std::string boot = BootId();
  const bool deferred = !boot.empty();
  if (deferred) {
    CrashPoint("layer: before record");
    KILN_TRY(AtomicWrite(TmpDir(), UnsyncedRecordPath(key), boot, "layer record"));
  }
  KILN_ASSIGN_OR_RETURN(std::string staging, MakeTempDir("layer-"));
  auto cleanup = [&] { (void)RemoveAll(staging); };
  CrashPoint("layer: staging created");
  if (auto s = fill(staging); !s) {
    cleanup();
    return std::move(s).error();
  }
  if (!deferred) {
    CrashPoint("layer: filled, before sync");
    auto fd = OpenFile(staging, O_RDONLY | O_DIRECTORY);
    if (fd && ::syncfs(fd->get()) != 0) {
      int err = errno;
      cleanup();
      return Error::FromErrno("syncfs " + staging, err);
    }
  }
  CrashPoint("layer: filled, before rename");
  if (::rename(staging.c_str(), final_dir.c_str()) != 0) {
    int err = errno;
    cleanup();
    if (err == ENOTEMPTY || err == EEXIST)
      return final_dir;  // another process won the race
    return Error::FromErrno("rename " + staging + " to " + final_dir, err);
  }
  if (!deferred) {
    CrashPoint("layer: renamed, before directory fsync");
    KILN_TRY(FsyncDir(JoinPath(root_, "layers")));
  }
  return final_dir;
}

Expected<std::string> Store::UnpackedLayer(const Descriptor& layer, const Digest& diff_id) {
  NoteLeased(diff_id);
  if (PathExists(LayerDir(diff_id)))
    return LayerDir(diff_id);
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenBlob(layer.digest));
  return UnpackedLayerFromStream(fd.get(), layer, diff_id);
}

Expected<std::string> Store::UnpackedLayerFromStream(int in_fd, const Descriptor& layer, const Digest& diff_id,
                                                     const std::function<Status()>& raw_verified) {
#ifdef KILN_STORE_HAVE_LAYER
  return GetOrCreateLayerDir(diff_id, [&](const std::string& dir) -> Status {
    layer::UnpackOptions opts;
    opts.whiteouts = layer::WhiteoutMode::kOverlay;
    opts.expect_diff_id = diff_id;
    // Only when GetOrCreateLayerDir syncs the tree (no boot id): with
    // deferred durability, early writeback would make the next journal
    // commit (any fsync) wait for these files.
    opts.start_writeback = BootId().empty();
    if (raw_verified)
      opts.raw_verified = raw_verified;
    else
      opts.expect_digest = layer.digest;
    auto stats = layer::UnpackLayer(in_fd, dir, opts);
    if (!stats)
      return std::move(stats).error().WithContext("unpack layer " + layer.digest.str());
    return Ok();
  });
#else
  (void)in_fd;
  (void)layer;
  (void)diff_id;
  (void)raw_verified;
  // TODO(integrator): build src/layer before src/store so that layer_dep
  // exists; then this unpacks with layer::UnpackLayer.
  return Error(Errc::kUnsupported, "kiln was built without the layer module: cannot unpack layers");
#endif
}

// ------------------------------------------------------------ cache records

Status Store::PutCacheRecord(std::string_view key, std::string_view json, const GcRoot& keep) const {
  if (!ValidRecordName(key))
    return Error(Errc::kInvalidInput, "invalid cache key \"" + std::string(key) + "\"");
  // The root first (owned by the record, so a crash before the record
  // leaves a stale root the collector drops), then the record.
  GcRoot root = keep;
  root.owner = "cache/" + std::string(key) + ".json";
  KILN_TRY(PutRoot("cache", key, root));
  return AtomicWrite(TmpDir(), root_ + "/cache/" + std::string(key) + ".json", json, "cache record");
}

Expected<std::string> Store::GetCacheRecord(std::string_view key) const {
  if (!ValidRecordName(key))
    return Error(Errc::kInvalidInput, "invalid cache key \"" + std::string(key) + "\"");
  auto data = ReadFile(root_ + "/cache/" + std::string(key) + ".json", kMaxDocumentBytes);
  if (!data && data.error().code() == Errc::kNotFound)
    return Error(Errc::kNotFound, "no cache record " + std::string(key));
  return data;
}

Status Store::DeleteCacheRecord(std::string_view key) const {
  if (!ValidRecordName(key))
    return Error(Errc::kInvalidInput, "invalid cache key \"" + std::string(key) + "\"");
  std::string path = root_ + "/cache/" + std::string(key) + ".json";
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return Error::FromErrno("remove " + path);
  return DeleteRoot("cache", key);
}

// ------------------------------------------------------------ state files

Status Store::PutStateFile(std::string_view name, std::string_view data, uint32_t mode) const {
  if (!ValidRecordName(name))
    return Error(Errc::kInvalidInput, "invalid state file name \"" + std::string(name) + "\"");
  KILN_TRY(MakeDirs(root_ + "/state"));
  return AtomicWrite(TmpDir(), root_ + "/state/" + std::string(name), data, "state file", static_cast<mode_t>(mode));
}

Status Store::CreateStateFile(std::string_view name, std::string_view data, uint32_t mode) const {
  if (!ValidRecordName(name))
    return Error(Errc::kInvalidInput, "invalid state file name \"" + std::string(name) + "\"");
  KILN_TRY(MakeDirs(root_ + "/state"));
  KILN_ASSIGN_OR_RETURN(std::string dir, MakeTempDir("state-"));
  std::string tmp = dir + "/f";
  Status s = AtomicWrite(dir, tmp, data, "state file", static_cast<mode_t>(mode));
  std::string path = root_ + "/state/" + std::string(name);
  if (s && ::link(tmp.c_str(), path.c_str()) != 0)
    s = errno == EEXIST ? Status(Error(Errc::kFailed, path + ": exists")) : Status(Error::FromErrno("link " + path));
  (void)RemoveAll(dir);
  return s;
}

Expected<std::string> Store::GetStateFile(std::string_view name, size_t max_bytes) const {
  if (!ValidRecordName(name))
    return Error(Errc::kInvalidInput, "invalid state file name \"" + std::string(name) + "\"");
  return ReadFile(root_ + "/state/" + std::string(name), max_bytes);
}

// ------------------------------------------------------------ directories

std::string Store::ContainersDir() const { return root_ + "/containers"; }
std::string Store::TmpDir() const { return root_ + "/tmp"; }

Expected<std::string> Store::MakeTempDir(std::string_view prefix) const {
  std::string tmpl = JoinPath(TmpDir(), std::string(prefix) + "XXXXXX");
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  if (!::mkdtemp(name.data()))
    return Error::FromErrno("mkdtemp " + tmpl);
  return std::string(name.data());
}

}  // namespace kiln
