// save/load: oci-archive (a tar of an OCI image layout) and docker-archive
// (`docker save`: manifest.json + config + uncompressed layer tars).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <set>
#include <vector>

#include <archive.h>
#include <archive_entry.h>
#include <nlohmann/json.hpp>

#include "kiln/cancel.h"
#include "kiln/cleanup.h"
#include "kiln/env.h"
#include "kiln/fs.h"
#include "kiln/reference.h"
#include "kiln/transport.h"
#include "store/ingest.h"

namespace kiln {

using store_internal::DecompressFd;
using store_internal::FoundImage;
using store_internal::ImageBlobs;
using store_internal::LayerIngester;
using store_internal::NameFromRefName;
using store_internal::CopyBlobIn;
using Json = nlohmann::json;

namespace store_internal {

std::string NameFromRefName(std::string_view ref_name) {
  if (ref_name.find_first_of("/:") == std::string_view::npos)
    return {};
  auto ref = ImageReference::Parse(ref_name);
  if (!ref)
    return {};
  return ref->str();
}

Expected<FoundImage> SelectImage(const std::vector<FoundImage>& images, const std::string& tag,
                                 const std::string& where) {
  if (tag.empty()) {
    if (images.size() == 1)
      return images[0];
    if (images.empty())
      return Error(Errc::kNotFound, where + ": no image in it");
    return Error(Errc::kInvalidInput, where + ": holds " + std::to_string(images.size()) +
                                          " images; name one with " + where + ":TAG");
  }
  std::string norm = NameFromRefName(tag);
  for (const auto& i : images) {
    if (i.ref_name == tag || i.top.digest.str() == tag)  // TAG, or the digest of an index entry
      return i;
    for (const auto& n : i.names)
      if (n == tag || (!norm.empty() && n == norm))
        return i;
  }
  return Error(Errc::kNotFound, where + ": no image named \"" + tag + "\"");
}

}  // namespace store_internal

namespace {

// ============================================================ tar writing

class TarWriter {
 public:
  static Expected<TarWriter> Open(int fd) {
    TarWriter t;
    t.a_.reset(archive_write_new());
    archive_write_set_format_pax_restricted(t.a_.get());
    archive_write_set_bytes_per_block(t.a_.get(), 10240);
    if (archive_write_open_fd(t.a_.get(), fd) != ARCHIVE_OK)
      return t.Fail("open");
    return t;
  }

  Status AddDir(const std::string& name) { return Header(name, AE_IFDIR, 0755, 0); }

  Status AddData(const std::string& name, std::string_view data) {
    KILN_TRY(Header(name, AE_IFREG, 0644, static_cast<int64_t>(data.size())));
    if (!data.empty() && archive_write_data(a_.get(), data.data(), data.size()) < 0)
      return Fail("write " + name);
    return Ok();
  }

  Status AddFd(const std::string& name, int fd, int64_t size) {
    KILN_TRY(Header(name, AE_IFREG, 0644, size));
    std::vector<char> buf(1 << 17);
    int64_t left = size;
    while (left > 0) {
      KILN_TRY(CheckCancelled());  // SIGINT/SIGTERM (kiln/cancel.h)
      ssize_t n = ::read(fd, buf.data(), static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(buf.size()))));
      if (n < 0) {
        if (errno == EINTR)
          continue;
        return Error::FromErrno("read for " + name);
      }
      if (n == 0)
        return Error(Errc::kIo, name + ": file shrank while archiving");
      if (archive_write_data(a_.get(), buf.data(), static_cast<size_t>(n)) < 0)
        return Fail("write " + name);
      left -= n;
    }
    return Ok();
  }

  Status Close() {
    if (archive_write_close(a_.get()) != ARCHIVE_OK)
      return Fail("close");
    return Ok();
  }

 private:
  TarWriter() : a_(nullptr, &archive_write_free) {}

  Status Header(const std::string& name, unsigned type, int perm, int64_t size) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), &archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), type);
    archive_entry_set_perm(e.get(), static_cast<mode_t>(perm));
    archive_entry_set_size(e.get(), size);
    archive_entry_set_mtime(e.get(), 0, 0);
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    if (archive_write_header(a_.get(), e.get()) != ARCHIVE_OK)
      return Fail("header " + name);
    return Ok();
  }

  Error Fail(const std::string& what) {
    const char* msg = archive_error_string(a_.get());
    return Error(Errc::kIo, "tar " + what + ": " + (msg ? msg : "error"));
  }

  std::unique_ptr<archive, decltype(&archive_write_free)> a_;
};

/// A temp file beside `path`, renamed over it by Commit().
class AtomicOutput {
 public:
  static Expected<AtomicOutput> Create(const std::string& path) {
    std::string tmpl = path + ".kiln-tmp-XXXXXX";
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    int fd = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd < 0)
      return Error::FromErrno("create " + path);
    AtomicOutput o;
    o.fd_ = UniqueFd(fd);
    o.tmp_ = name.data();
    o.path_ = path;
    ::fchmod(fd, 0644);
    return o;
  }
  AtomicOutput() = default;
  AtomicOutput(AtomicOutput&& o) noexcept
      : fd_(std::move(o.fd_)), tmp_(std::exchange(o.tmp_, std::string())), path_(std::move(o.path_)) {}
  ~AtomicOutput() {
    if (!tmp_.empty())
      ::unlink(tmp_.c_str());
  }
  int fd() const { return fd_.get(); }
  Status Commit() {
    if (::fsync(fd_.get()) != 0)
      return Error::FromErrno("fsync " + tmp_);
    fd_.reset();
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
      return Error::FromErrno("rename " + tmp_ + " to " + path_);
    tmp_.clear();
    return Ok();
  }

 private:
  UniqueFd fd_;
  std::string tmp_;
  std::string path_;
};

Status WriteOciArchive(Store& store, const std::vector<SaveItem>& items, TarWriter& tar) {
  Index index;
  std::vector<Descriptor> blobs;
  std::set<std::string> seen;
  for (const auto& item : items) {
    KILN_ASSIGN_OR_RETURN(auto list, ImageBlobs(store, item.image.top));
    for (auto& d : list)
      if (seen.insert(d.digest.str()).second)
        blobs.push_back(d);
    Descriptor top = item.image.top;
    top.annotations.erase(std::string(kAnnotationRefName));
    if (item.names.empty())
      index.manifests.push_back(top);
    for (const auto& n : item.names) {
      Descriptor named = top;
      named.annotations[std::string(kAnnotationRefName)] = n;
      index.manifests.push_back(std::move(named));
    }
  }
  KILN_TRY(tar.AddData("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  KILN_TRY(tar.AddData("index.json", ToJson(index)));
  KILN_TRY(tar.AddDir("blobs/"));
  KILN_TRY(tar.AddDir("blobs/sha256/"));
  for (const auto& d : blobs) {
    KILN_ASSIGN_OR_RETURN(UniqueFd fd, store.OpenBlob(d.digest));
    struct stat st;
    if (::fstat(fd.get(), &st) != 0)
      return Error::FromErrno("stat blob " + d.digest.str());
    KILN_TRY(tar.AddFd("blobs/sha256/" + d.digest.hex(), fd.get(), st.st_size));
  }
  return Ok();
}

Status WriteDockerArchive(Store& store, const std::vector<SaveItem>& items, TarWriter& tar) {
  Json manifest = Json::array();
  std::set<std::string> written;
  for (const auto& item : items) {
    const StoredImage& img = item.image;
    if (img.config.diff_ids.size() != img.manifest.layers.size())
      return Error(Errc::kCorrupt, "image " + img.id().str() + ": layers and diff_ids differ in number");
    std::string config_name = img.id().hex() + ".json";
    if (written.insert(config_name).second)
      KILN_TRY(tar.AddData(config_name, img.config_json));
    Json layers = Json::array();
    for (size_t i = 0; i < img.manifest.layers.size(); ++i) {
      const Descriptor& l = img.manifest.layers[i];
      const Digest& diff_id = img.config.diff_ids[i];
      std::string name = diff_id.hex() + ".tar";
      layers.push_back(name);
      if (!written.insert(name).second)
        continue;
      // docker-archive layers are uncompressed tars; their size must be known
      // before the header, so decompress into a temp file first.
      KILN_ASSIGN_OR_RETURN(UniqueFd blob, store.OpenBlob(l.digest));
      KILN_ASSIGN_OR_RETURN(std::string tmpdir, store.MakeTempDir("save-"));
      RemoveAllOnExit cleanup(tmpdir);
      std::string tmp = JoinPath(tmpdir, "layer.tar");
      KILN_ASSIGN_OR_RETURN(UniqueFd out, OpenFile(tmp, O_RDWR | O_CREAT | O_TRUNC, 0600));
      Sha256 h;
      int64_t size = 0;
      KILN_TRY(DecompressFd(blob.get(), [&](std::string_view data) -> Status {
        h.Update(data);
        size += static_cast<int64_t>(data.size());
        return WriteAll(out.get(), data);
      }));
      Digest got = h.Finish();
      if (got != diff_id)
        return Error(Errc::kCorrupt, "layer " + l.digest.str() + " decompresses to " + got.str() +
                                         ", but the config says " + diff_id.str());
      if (::lseek(out.get(), 0, SEEK_SET) != 0)
        return Error::FromErrno("seek " + tmp);
      KILN_TRY(tar.AddFd(name, out.get(), size));
    }
    Json entry = Json::object();
    entry["Config"] = config_name;
    Json tags = Json::array();
    for (const auto& n : item.names) {
      auto ref = ImageReference::Parse(n);
      if (ref && !ref->tag.empty() && !ref->digest.valid())
        tags.push_back(ref->Name() + ":" + ref->tag);
    }
    entry["RepoTags"] = tags.empty() ? Json(nullptr) : tags;
    entry["Layers"] = std::move(layers);
    manifest.push_back(std::move(entry));
  }
  return tar.AddData("manifest.json", manifest.dump());
}

// ============================================================ tar reading

struct Member {
  unsigned type = 0;
  int64_t size = 0;
  std::string link;  // symlink / hardlink target (normalised member name)
};

std::string CleanMemberName(std::string name) {
  while (name.rfind("./", 0) == 0)
    name.erase(0, 2);
  while (!name.empty() && name.front() == '/')
    name.erase(0, 1);
  while (name.size() > 1 && name.back() == '/')
    name.pop_back();
  return name;
}

/// Resolves "a/b/../c" against the directory of `from`.
std::string ResolveLink(const std::string& from, const std::string& target) {
  std::vector<std::string> parts;
  std::string base = target.rfind('/', 0) == 0 ? std::string() : DirName(from);
  std::string all = (base == "." || base.empty() ? std::string() : base + "/") + target;
  for (std::string& p : PathComponents(all)) {
    if (p != "..")
      parts.push_back(std::move(p));
    else if (!parts.empty())
      parts.pop_back();
  }
  std::string out;
  for (const auto& p : parts)
    out += (out.empty() ? "" : "/") + p;
  return out;
}

using ArchiveReader = std::unique_ptr<archive, decltype(&archive_read_free)>;

Expected<ArchiveReader> OpenTar(const std::string& path) {
  ArchiveReader a(archive_read_new(), &archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK)
    return Error(archive_errno(a.get()) == ENOENT ? Errc::kNotFound : Errc::kInvalidInput,
                 path + ": " + (archive_error_string(a.get()) ? archive_error_string(a.get()) : "cannot open"));
  return a;
}

Error ReadError(archive* a, const std::string& path) {
  const char* msg = archive_error_string(a);
  return Error(Errc::kCorrupt, path + ": " + (msg ? msg : "invalid tar archive"));
}

/// Moves to the next member of `a` (false at the end of the archive),
/// cancelled by SIGINT/SIGTERM (kiln/cancel.h) between members.
Expected<bool> NextMember(archive* a, archive_entry** entry, const std::string& path) {
  KILN_TRY(CheckCancelled());
  int rc = archive_read_next_header(a, entry);
  if (rc == ARCHIVE_EOF)
    return false;
  if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
    return ReadError(a, path);
  return true;
}

Expected<std::string> ReadMemberData(archive* a, const std::string& path, const std::string& name, int64_t size) {
  if (size > static_cast<int64_t>(kMaxDocumentBytes))
    return Error(Errc::kCorrupt, path + ": " + name + " is larger than " + std::to_string(kMaxDocumentBytes) + " bytes");
  std::string data;
  data.resize(static_cast<size_t>(size));
  size_t got = 0;
  while (got < data.size()) {
    la_ssize_t n = archive_read_data(a, data.data() + got, data.size() - got);
    if (n < 0)
      return ReadError(a, path);
    if (n == 0)
      break;
    got += static_cast<size_t>(n);
  }
  data.resize(got);
  return data;
}

Status StreamMember(archive* a, const std::string& path, const std::function<Status(std::string_view)>& sink) {
  std::vector<char> buf(1 << 17);
  for (;;) {
    la_ssize_t n = archive_read_data(a, buf.data(), buf.size());
    if (n < 0)
      return ReadError(a, path);
    if (n == 0)
      return Ok();
    KILN_TRY(sink(std::string_view(buf.data(), static_cast<size_t>(n))));
  }
}

bool IsHex64(std::string_view s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

/// An image of an OCI layout's index.json: its descriptor (without the name
/// annotation) and the names its annotations give.
FoundImage FoundFromIndexEntry(const Descriptor& d) {
  FoundImage f;
  f.top = d;
  f.top.annotations.erase(std::string(kAnnotationRefName));
  auto rn = d.annotations.find(std::string(kAnnotationRefName));
  if (rn != d.annotations.end())
    f.ref_name = rn->second;
  // containerd / docker >= 25 put the full name here.
  auto full = d.annotations.find("io.containerd.image.name");
  std::string name = NameFromRefName(full != d.annotations.end() ? full->second : f.ref_name);
  if (!name.empty())
    f.names.push_back(name);
  return f;
}

/// The images an OCI index.json names; each must be complete in the store.
Expected<std::vector<FoundImage>> ImagesOfLayoutIndex(Store& store, const std::string& index_json,
                                                      const std::string& where) {
  auto idx = ParseIndex(index_json);
  if (!idx)
    return std::move(idx).error().WithContext(where + "/index.json");
  std::vector<FoundImage> out;
  for (const auto& d : idx->manifests) {
    if (!IsManifestMediaType(d.media_type) && !IsIndexMediaType(d.media_type))
      continue;
    FoundImage f = FoundFromIndexEntry(d);
    if (!store.HasBlob(d.digest))
      return Error(Errc::kCorrupt, where + ": index.json names " + d.digest.str() + ", which it does not contain");
    auto blobs = ImageBlobs(store, f.top);
    if (!blobs)
      return std::move(blobs).error().WithContext(where);
    out.push_back(std::move(f));
  }
  return out;
}

Expected<std::vector<FoundImage>> LoadDockerArchive(Store& store, const std::string& path,
                                                    const std::string& manifest_json,
                                                    const std::map<std::string, Member>& members) {
  KILN_ASSIGN_OR_RETURN(Json manifest, [&]() -> Expected<Json> {
    try {
      return Json::parse(manifest_json);
    } catch (const Json::exception& e) {
      return Error(Errc::kCorrupt, path + ": manifest.json: invalid JSON");
    }
  }());
  if (!manifest.is_array() || manifest.empty())
    return Error(Errc::kCorrupt, path + ": manifest.json: expected a non-empty array");
  auto resolve = [&](std::string name) -> Expected<std::string> {
    name = CleanMemberName(name);
    for (int hops = 0; hops < 8; ++hops) {
      auto it = members.find(name);
      if (it == members.end())
        return Error(Errc::kCorrupt, path + ": manifest.json names " + name + ", which is not in the archive");
      if (it->second.link.empty())
        return name;
      name = it->second.link;
    }
    return Error(Errc::kCorrupt, path + ": too many links at " + name);
  };
  struct Wanted {
    std::string config;
    std::vector<std::string> layers;
    std::vector<std::string> tags;
  };
  std::vector<Wanted> wanted;
  std::set<std::string> needed;
  for (const auto& e : manifest) {
    if (!e.is_object() || !e.contains("Config") || !e["Config"].is_string() || !e.contains("Layers") ||
        !e["Layers"].is_array())
      return Error(Errc::kCorrupt, path + ": manifest.json: entry without Config/Layers");
    Wanted w;
    KILN_ASSIGN_OR_RETURN(w.config, resolve(e["Config"].get<std::string>()));
    needed.insert(w.config);
    for (const auto& l : e["Layers"]) {
      if (!l.is_string())
        return Error(Errc::kCorrupt, path + ": manifest.json: Layers must be strings");
      KILN_ASSIGN_OR_RETURN(std::string m, resolve(l.get<std::string>()));
      w.layers.push_back(m);
      needed.insert(m);
    }
    if (e.contains("RepoTags") && e["RepoTags"].is_array())
      for (const auto& t : e["RepoTags"])
        if (t.is_string())
          w.tags.push_back(t.get<std::string>());
    wanted.push_back(std::move(w));
  }
  // Pass 2: configs into memory, layers into the store.
  std::map<std::string, std::string> configs;
  std::map<std::string, store_internal::IngestedLayer> layers;
  KILN_ASSIGN_OR_RETURN(ArchiveReader a, OpenTar(path));
  struct archive_entry* entry;
  for (;;) {
    KILN_ASSIGN_OR_RETURN(bool more, NextMember(a.get(), &entry, path));
    if (!more)
      break;
    std::string name = CleanMemberName(archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "");
    if (!needed.count(name) || archive_entry_filetype(entry) != AE_IFREG)
      continue;
    bool is_config = false;
    for (const auto& w : wanted)
      is_config = is_config || w.config == name;
    if (is_config) {
      KILN_ASSIGN_OR_RETURN(configs[name], ReadMemberData(a.get(), path, name, archive_entry_size(entry)));
      continue;
    }
    KILN_ASSIGN_OR_RETURN(auto ing, LayerIngester::Create(store));
    KILN_TRY(StreamMember(a.get(), path, [&](std::string_view d) { return ing->Write(d); }));
    auto layer = ing->Finish();
    if (!layer)
      return std::move(layer).error().WithContext(path + ": " + name);
    layers[name] = *layer;
  }
  std::vector<FoundImage> out;
  for (const auto& w : wanted) {
    auto cit = configs.find(w.config);
    if (cit == configs.end())
      return Error(Errc::kCorrupt, path + ": config " + w.config + " is missing");
    auto cfg = ParseImageConfig(cit->second);
    if (!cfg)
      return std::move(cfg).error().WithContext(path + ": " + w.config);
    if (cfg->diff_ids.size() != w.layers.size())
      return Error(Errc::kCorrupt, path + ": " + w.config + " lists " + std::to_string(cfg->diff_ids.size()) +
                                       " diff_ids for " + std::to_string(w.layers.size()) + " layers");
    Manifest m;
    std::vector<VerifiedLayer> verified;
    for (size_t i = 0; i < w.layers.size(); ++i) {
      auto lit = layers.find(w.layers[i]);
      if (lit == layers.end())
        return Error(Errc::kCorrupt, path + ": layer " + w.layers[i] + " is missing");
      if (lit->second.diff_id != cfg->diff_ids[i])
        return Error(Errc::kCorrupt, path + ": layer " + w.layers[i] + " has diff_id " + lit->second.diff_id.str() +
                                         ", but the config says " + cfg->diff_ids[i].str());
      m.layers.push_back(lit->second.blob);
      verified.push_back(VerifiedLayer{lit->second.blob.digest, lit->second.diff_id});
    }
    KILN_ASSIGN_OR_RETURN(m.config, store.PutBlob(kMediaTypeOciConfig, cit->second));
    KILN_ASSIGN_OR_RETURN(Descriptor top, store.PutBlob(kMediaTypeOciManifest, ToJson(m)));
    FoundImage f;
    f.top = top;
    f.verified_layers = std::move(verified);
    if (!w.tags.empty())
      f.ref_name = w.tags[0];
    for (const auto& t : w.tags) {
      auto ref = ImageReference::Parse(t);
      if (ref)
        f.names.push_back(ref->str());
    }
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace

namespace store_internal {

Expected<std::vector<FoundImage>> LoadArchiveImages(Store& store, const std::string& path) {
  KILN_ASSIGN_OR_RETURN(ArchiveReader a, OpenTar(path));
  std::map<std::string, Member> members;
  std::string index_json, manifest_json;
  bool has_layout = false;
  struct archive_entry* entry;
  int64_t count = 0;
  for (;;) {
    KILN_ASSIGN_OR_RETURN(bool more, NextMember(a.get(), &entry, path));
    if (!more)
      break;
    if (++count > 1'000'000)
      return Error(Errc::kCorrupt, path + ": too many members");
    const char* raw = archive_entry_pathname(entry);
    std::string name = CleanMemberName(raw ? raw : "");
    Member m;
    m.type = archive_entry_filetype(entry);
    m.size = archive_entry_size(entry);
    if (m.type == AE_IFLNK && archive_entry_symlink(entry))
      m.link = ResolveLink(name, archive_entry_symlink(entry));
    else if (archive_entry_hardlink(entry))
      m.link = CleanMemberName(archive_entry_hardlink(entry));
    members[name] = m;
    if (m.type != AE_IFREG || !m.link.empty())
      continue;
    if (name == "index.json") {
      KILN_ASSIGN_OR_RETURN(index_json, ReadMemberData(a.get(), path, name, m.size));
    } else if (name == "manifest.json") {
      KILN_ASSIGN_OR_RETURN(manifest_json, ReadMemberData(a.get(), path, name, m.size));
    } else if (name == "oci-layout") {
      has_layout = true;
    } else if (name.rfind("blobs/sha256/", 0) == 0 && IsHex64(name.substr(13))) {
      // Blobs stream straight into the store, verified against their name.
      auto digest = Digest::Parse("sha256:" + name.substr(13));
      if (store.HasBlob(*digest))
        continue;
      KILN_ASSIGN_OR_RETURN(BlobWriter w, store.NewBlobWriter(*digest, m.size));
      KILN_TRY(StreamMember(a.get(), path, [&](std::string_view d) { return w.Write(d); }));
      auto c = w.Commit();
      if (!c)
        return std::move(c).error().WithContext(path + ": " + name);
    }
  }
  if (!index_json.empty() && (has_layout || manifest_json.empty()))
    return ImagesOfLayoutIndex(store, index_json, path);
  if (!manifest_json.empty())
    return LoadDockerArchive(store, path, manifest_json, members);
  return Error(Errc::kInvalidInput, path + ": neither an oci-archive nor a docker-archive "
                                           "(no index.json or manifest.json)");
}

Expected<FoundImage> LoadLayoutImage(Store& store, const std::string& dir, const std::string& tag) {
  auto index_json = ReadFile(JoinPath(dir, "index.json"), kMaxDocumentBytes);
  if (!index_json)
    return std::move(index_json).error().WithContext("oci:" + dir);
  auto idx = ParseIndex(*index_json);
  if (!idx)
    return std::move(idx).error().WithContext("oci:" + dir + "/index.json");
  std::vector<FoundImage> found;
  for (const auto& d : idx->manifests) {
    found.push_back(FoundFromIndexEntry(d));
  }
  KILN_ASSIGN_OR_RETURN(FoundImage chosen, SelectImage(found, tag, "oci:" + dir));
  // Copy the closure: top, then what it references (verified on the way).
  std::function<Status(const Descriptor&, int)> copy = [&](const Descriptor& d, int depth) -> Status {
    if (depth > 8)
      return Error(Errc::kCorrupt, "oci:" + dir + ": image nesting deeper than 8 levels at " + d.digest.str());
    std::string src = JoinPath(dir, "blobs/" + d.digest.algorithm() + "/" + d.digest.hex());
    if (IsIndexMediaType(d.media_type) && depth > 0 && !PathExists(src))
      return Ok();
    auto in = CopyBlobIn(store, src, d);
    if (!in)
      return std::move(in).error().WithContext("oci:" + dir);
    if (IsIndexMediaType(d.media_type)) {
      KILN_ASSIGN_OR_RETURN(Index x, store.ReadIndex(d.digest));
      for (const auto& m : x.manifests) {
        std::string p = JoinPath(dir, "blobs/" + m.digest.algorithm() + "/" + m.digest.hex());
        if (!PathExists(p))
          continue;  // platforms the layout does not hold
        KILN_TRY(copy(m, depth + 1));
      }
    } else if (IsManifestMediaType(d.media_type)) {
      KILN_ASSIGN_OR_RETURN(Manifest m, store.ReadManifest(d.digest));
      KILN_TRY(copy(m.config, depth + 1));
      for (const auto& l : m.layers)
        KILN_TRY(copy(l, depth + 1));
    }
    return Ok();
  };
  KILN_TRY(copy(chosen.top, 0));
  return chosen;
}

}  // namespace store_internal

// ============================================================ public API

Status SaveArchive(Store& store, const std::vector<SaveItem>& items, const std::string& path,
                   ArchiveFormat format) {
  if (items.empty())
    return Error(Errc::kInvalidInput, "nothing to save");
  KILN_ASSIGN_OR_RETURN(AtomicOutput out, AtomicOutput::Create(path));
  KILN_ASSIGN_OR_RETURN(TarWriter tar, TarWriter::Open(out.fd()));
  if (format == ArchiveFormat::kOciArchive)
    KILN_TRY(WriteOciArchive(store, items, tar));
  else
    KILN_TRY(WriteDockerArchive(store, items, tar));
  KILN_TRY(tar.Close());
  return out.Commit();
}

Expected<std::vector<PulledImage>> LoadArchive(Store& store, const std::string& path) {
  KILN_ASSIGN_OR_RETURN(auto found, store_internal::LoadArchiveImages(store, path));
  std::vector<PulledImage> out;
  // Every image verified before the caller names any of them.
  for (auto& f : found) {
    if (auto s = VerifyImageClosure(store, f.top, f.verified_layers); !s)
      return std::move(s).error().WithContext(path);
    out.push_back(PulledImage{f.top, f.names, f.verified_layers});
  }
  return out;
}

Expected<PulledImage> LoadOciLayout(Store& store, const std::string& dir, const std::string& tag,
                                    const TransferOptions& options) {
  KILN_ASSIGN_OR_RETURN(FoundImage f, store_internal::LoadLayoutImage(store, dir, tag));
  bool unpack = options.unpack_layers && std::getenv(kUserNsMarkerEnv) != nullptr;
  if (auto s = VerifyImageClosure(store, f.top, {}, unpack); !s)
    return std::move(s).error().WithContext("oci:" + dir);
  return PulledImage{f.top, f.names, {}};
}

}  // namespace kiln
