// Store::Check (fsck) and Store::Prune (garbage collection).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "kiln/cancel.h"
#include "kiln/fs.h"
#include "kiln/io.h"
#include "kiln/log.h"
#include "kiln/reference.h"
#include "kiln/store.h"
#include "store/internal.h"

namespace kiln {

using store_internal::CollectDigests;
using store_internal::ValidRecordName;

namespace {

bool IsHex64(std::string_view s) {
  if (s.size() != 64)
    return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  return true;
}

Expected<Digest> HashFile(const std::string& path, int64_t* size) {
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
  Sha256 h;
  int64_t total = 0;
  KILN_TRY(ReadChunks(fd.get(), size_t(1) << 17, [&](std::string_view data) {
    h.Update(data.data(), data.size());
    total += static_cast<int64_t>(data.size());
    return Ok();
  }, path));
  *size = total;
  return h.Finish();
}

/// Checks that a descriptor and everything below it is present and sound.
void CheckTree(const Store& store, const Descriptor& d, const std::string& where, int depth, bool optional,
               std::set<std::string>& seen, Store::CheckReport& report) {
  if (depth > 8) {
    report.problems.push_back(where + ": nesting too deep (cycle?)");
    return;
  }
  std::string path = store.BlobPath(d.digest);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (optional)
      report.notes.push_back(where + ": " + d.digest.str() + " not in the store (other platform)");
    else
      report.problems.push_back(where + ": missing blob " + d.digest.str());
    return;
  }
  if (st.st_size != d.size)
    report.problems.push_back(where + ": blob " + d.digest.str() + " has " + std::to_string(st.st_size) +
                              " bytes, descriptor says " + std::to_string(d.size));
  if (!seen.insert(d.digest.str()).second)
    return;
  if (IsIndexMediaType(d.media_type)) {
    auto idx = store.ReadIndex(d.digest);
    if (!idx) {
      report.problems.push_back(where + ": " + idx.error().message());
      return;
    }
    for (size_t i = 0; i < idx->manifests.size(); ++i)
      CheckTree(store, idx->manifests[i], where + " > " + d.digest.str().substr(0, 19), depth + 1, true, seen,
                report);
    return;
  }
  if (!IsManifestMediaType(d.media_type))
    return;
  auto m = store.ReadManifest(d.digest);
  if (!m) {
    report.problems.push_back(where + ": " + m.error().message());
    return;
  }
  std::string mwhere = where + " > " + d.digest.str().substr(0, 19);
  CheckTree(store, m->config, mwhere + " config", depth + 1, false, seen, report);
  auto cfg = store.ReadConfig(m->config.digest);
  if (!cfg) {
    if (store.HasBlob(m->config.digest))
      report.problems.push_back(mwhere + ": " + cfg.error().message());
  } else if (cfg->diff_ids.size() != m->layers.size()) {
    report.problems.push_back(mwhere + ": " + std::to_string(m->layers.size()) + " layers but " +
                              std::to_string(cfg->diff_ids.size()) + " diff_ids");
  }
  for (size_t i = 0; i < m->layers.size(); ++i)
    CheckTree(store, m->layers[i], mwhere + " layer " + std::to_string(i), depth + 1, false, seen, report);
}

}  // namespace

Expected<Store::CheckReport> Store::Check() const {
  CheckReport report;
  // Blobs: every name a digest, every content matching its name.
  KILN_ASSIGN_OR_RETURN(auto algos, ListDirSorted(root_ + "/blobs"));
  for (const auto& algo : algos) {
    if (algo != "sha256") {
      report.notes.push_back("blobs/" + algo + ": not verified");
      continue;
    }
    KILN_ASSIGN_OR_RETURN(auto names, ListDirSorted(root_ + "/blobs/sha256"));
    for (const auto& n : names) {
      std::string rel = "blobs/sha256/" + n;
      if (!IsHex64(n)) {
        report.problems.push_back(rel + ": not a blob name (temp file in blobs/)");
        continue;
      }
      int64_t size = 0;
      auto got = HashFile(JoinPath(root_, rel), &size);
      if (!got) {
        report.problems.push_back(rel + ": " + got.error().message());
        continue;
      }
      ++report.blobs;
      if (got->hex() != n)
        report.problems.push_back(rel + ": content hashes to " + got->str());
    }
  }
  // The layout files.
  auto layout = ReadFile(root_ + "/oci-layout", 4096);
  if (!layout)
    report.problems.push_back("oci-layout: " + layout.error().message());
  else if (layout->find("\"imageLayoutVersion\"") == std::string::npos)
    report.problems.push_back("oci-layout: no imageLayoutVersion");
  auto json = ReadIndexJson();
  if (!json) {
    report.problems.push_back("index.json: " + json.error().message());
  } else if (auto idx = ParseIndex(*json); !idx) {
    report.problems.push_back("index.json: " + idx.error().message());
  } else {
    std::set<std::string> seen;
    std::set<std::string> images;
    for (const auto& d : idx->manifests) {
      auto it = d.annotations.find(std::string(kAnnotationRefName));
      std::string where = "index.json " + (it == d.annotations.end() ? d.digest.str().substr(0, 19) : it->second);
      images.insert(d.digest.str());
      CheckTree(*this, d, where, 0, false, seen, report);
    }
    report.images = static_cast<int64_t>(images.size());
  }
  // Unpacked layers: only complete directories have a digest name.
  KILN_ASSIGN_OR_RETURN(auto layers, ListDirSorted(root_ + "/layers"));
  for (const auto& n : layers) {
    if (!IsHex64(n))
      report.problems.push_back("layers/" + n + ": not a layer directory name");
    else
      ++report.layer_dirs;
  }
  // Cache records: every file is a complete record.
  KILN_ASSIGN_OR_RETURN(auto records, ListDirSorted(root_ + "/cache"));
  for (const auto& n : records) {
    if (n.size() < 6 || n.compare(n.size() - 5, 5, ".json") != 0 || n[0] == '.')
      report.problems.push_back("cache/" + n + ": not a cache record");
  }
  // Temp files are never reachable from the index; leftovers are harmless.
  KILN_ASSIGN_OR_RETURN(auto tmp, ListDirSorted(TmpDir()));
  for (const auto& n : tmp)
    report.notes.push_back("tmp/" + n + ": leftover temporary file (removed by kiln prune)");
  return report;
}

// ============================================================ roots and leases

namespace {

std::string RootToJson(const GcRoot& r) {
  nlohmann::json j = nlohmann::json::object();
  nlohmann::json blobs = nlohmann::json::array();
  for (const auto& d : r.blobs)
    blobs.push_back(nlohmann::json::parse(ToJson(d)));
  j["blobs"] = blobs;
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& d : r.layers)
    layers.push_back(d.str());
  j["layers"] = layers;
  nlohmann::json ids = nlohmann::json::array();
  for (const auto& d : r.image_ids)
    ids.push_back(d.str());
  j["image_ids"] = ids;
  if (!r.owner.empty())
    j["owner"] = r.owner;
  return j.dump();
}

Expected<GcRoot> RootFromJson(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Error(Errc::kCorrupt, "not a JSON object");
  GcRoot r;
  auto digests = [&](const char* key, std::vector<Digest>* out) -> Status {
    if (!j.contains(key))
      return Ok();
    if (!j[key].is_array())
      return Error(Errc::kCorrupt, std::string(key) + ": not an array");
    for (const auto& v : j[key]) {
      if (!v.is_string())
        return Error(Errc::kCorrupt, std::string(key) + ": not a string");
      auto d = Digest::Parse(v.get<std::string>());
      if (!d)
        return std::move(d).error().WithContext(key);
      out->push_back(*d);
    }
    return Ok();
  };
  KILN_TRY(digests("layers", &r.layers));
  KILN_TRY(digests("image_ids", &r.image_ids));
  if (j.contains("blobs")) {
    if (!j["blobs"].is_array())
      return Error(Errc::kCorrupt, "blobs: not an array");
    for (const auto& v : j["blobs"]) {
      auto d = ParseDescriptor(v.dump());
      if (!d)
        return std::move(d).error().WithContext("blobs");
      r.blobs.push_back(std::move(*d));
    }
  }
  if (j.contains("owner") && j["owner"].is_string())
    r.owner = j["owner"].get<std::string>();
  return r;
}

/// An owner path must stay inside the store: relative, no "..".
bool SafeOwner(const std::string& owner) {
  if (owner.empty() || owner[0] == '/')
    return false;
  size_t pos = 0;
  while (pos <= owner.size()) {
    size_t next = owner.find('/', pos);
    if (next == std::string::npos)
      next = owner.size();
    std::string_view part(owner.data() + pos, next - pos);
    if (part.empty() || part == "." || part == "..")
      return false;
    pos = next + 1;
  }
  return true;
}

}  // namespace

struct Store::LeaseSlot {
  std::mutex mu;
  std::weak_ptr<Lease::State> state;
};

std::shared_ptr<Store::LeaseSlot> Store::NewLeaseSlot() { return std::make_shared<LeaseSlot>(); }

struct Lease::State {
  std::mutex mu;
  UniqueFd fd;  // the lease file, flock'ed exclusively while alive
  std::string path;
  std::set<std::string> noted;
  ~State() {
    if (!path.empty())
      ::unlink(path.c_str());
  }
  void Note(const Digest& d) {
    std::lock_guard<std::mutex> g(mu);
    if (!fd.valid() || !noted.insert(d.str()).second)
      return;
    std::string line = d.str() + "\n";
    (void)WriteAll(fd.get(), line.data(), line.size());
  }
};

Lease::Lease(Lease&&) noexcept = default;
Lease& Lease::operator=(Lease&&) noexcept = default;
Lease::~Lease() = default;

void Lease::Add(const Digest& digest) {
  if (state_ && digest.valid())
    state_->Note(digest);
}

void Store::NoteLeased(const Digest& digest) const {
  if (!lease_ || !digest.valid())
    return;
  std::shared_ptr<Lease::State> st;
  {
    std::lock_guard<std::mutex> g(lease_->mu);
    st = lease_->state.lock();
  }
  if (st)
    st->Note(digest);
}

Expected<Lease> Store::AcquireLease(std::string_view purpose) const {
  Lease lease;
  if (!lease_)
    return Error(Errc::kFailed, "store is not open");
  std::lock_guard<std::mutex> g(lease_->mu);
  if (auto st = lease_->state.lock()) {
    lease.state_ = std::move(st);
    return lease;
  }
  KILN_TRY(MakeDirs(root_ + "/leases", 0755));
  // Made in tmp/ and locked there, then renamed into leases/: a collector
  // never sees it unlocked while its holder lives.
  std::string tmpl = JoinPath(TmpDir(), "lease-XXXXXX");
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int raw = ::mkostemp(name.data(), O_CLOEXEC | O_APPEND);
  if (raw < 0)
    return Error::FromErrno("create lease in " + TmpDir());
  auto st = std::make_shared<Lease::State>();
  st->fd = UniqueFd(raw);
  std::string tmp = name.data();
  if (::flock(raw, LOCK_EX) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Error::FromErrno("lock " + tmp, err);
  }
  std::string header = "# " + std::string(purpose) + " (pid " + std::to_string(::getpid()) + ")\n";
  (void)WriteAll(raw, header.data(), header.size());
  std::string dest = root_ + "/leases/" + BaseName(tmp).substr(6) + "-" + std::to_string(::getpid());
  if (::rename(tmp.c_str(), dest.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Error::FromErrno("rename " + tmp + " to " + dest, err);
  }
  st->path = dest;
  lease_->state = st;
  lease.state_ = std::move(st);
  return lease;
}

Status Store::PutRoot(std::string_view module, std::string_view name, const GcRoot& root) const {
  if (!ValidRecordName(module) || !ValidRecordName(name))
    return Error(Errc::kInvalidInput, "invalid root name \"" + std::string(module) + "/" + std::string(name) + "\"");
  if (!root.owner.empty() && !SafeOwner(root.owner))
    return Error(Errc::kInvalidInput, "invalid root owner \"" + root.owner + "\"");
  std::string dir = root_ + "/roots/" + std::string(module);
  KILN_TRY(MakeDirs(dir, 0755));
  AtomicWriteOptions o;
  o.temp_dir = TmpDir();
  o.durable = false;
  return WriteFileAtomic(dir + "/" + std::string(name) + ".json", RootToJson(root), o);
}

Status Store::DeleteRoot(std::string_view module, std::string_view name) const {
  if (!ValidRecordName(module) || !ValidRecordName(name))
    return Error(Errc::kInvalidInput, "invalid root name \"" + std::string(module) + "/" + std::string(name) + "\"");
  std::string path = root_ + "/roots/" + std::string(module) + "/" + std::string(name) + ".json";
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return Error::FromErrno("remove " + path);
  return Ok();
}

Expected<std::map<std::string, GcRoot>> Store::ListRoots(std::string_view module) const {
  std::map<std::string, GcRoot> out;
  std::vector<std::string> modules;
  if (module.empty()) {
    KILN_ASSIGN_OR_RETURN(modules, ListDirSorted(root_ + "/roots"));
  } else {
    modules.emplace_back(module);
  }
  for (const auto& m : modules) {
    if (!ValidRecordName(m))
      continue;
    KILN_ASSIGN_OR_RETURN(auto names, ListDirSorted(root_ + "/roots/" + m));
    for (const auto& n : names) {
      if (n.size() < 6 || n.compare(n.size() - 5, 5, ".json") != 0)
        continue;
      auto text = ReadFile(root_ + "/roots/" + m + "/" + n, kMaxDocumentBytes);
      if (!text)
        continue;  // removed meanwhile
      auto r = RootFromJson(*text);
      if (!r) {
        LogWarn("store: roots/" + m + "/" + n + ": " + r.error().message() + " (ignored)");
        continue;
      }
      if (!r->owner.empty() && (!SafeOwner(r->owner) || !PathExists(JoinPath(root_, r->owner))))
        continue;  // stale
      out.emplace(m + "/" + n.substr(0, n.size() - 5), std::move(*r));
    }
  }
  return out;
}

// ============================================================ damage

std::vector<std::string> Store::MissingBlobs(const Descriptor& top) const {
  std::vector<std::string> missing;
  auto manifest = [&](const Descriptor& d, const std::string& what) {
    if (!HasBlob(d.digest)) {
      missing.push_back(what + d.digest.str());
      return;
    }
    auto m = ReadManifest(d.digest);
    if (!m) {
      missing.push_back(what + d.digest.str() + " (" + m.error().message() + ")");
      return;
    }
    if (!HasBlob(m->config.digest))
      missing.push_back("config " + m->config.digest.str());
    for (size_t i = 0; i < m->layers.size(); ++i)
      if (!HasBlob(m->layers[i].digest))
        missing.push_back("layer " + std::to_string(i) + " " + m->layers[i].digest.str());
  };
  if (!IsIndexMediaType(top.media_type)) {
    manifest(top, "manifest ");
    return missing;
  }
  if (!HasBlob(top.digest)) {
    missing.push_back("index " + top.digest.str());
    return missing;
  }
  auto idx = ReadIndex(top.digest);
  if (!idx) {
    missing.push_back("index " + top.digest.str() + " (" + idx.error().message() + ")");
    return missing;
  }
  bool any = false;
  for (const auto& d : idx->manifests) {
    if (!HasBlob(d.digest))
      continue;  // another platform, never pulled
    any = true;
    if (IsManifestMediaType(d.media_type))
      manifest(d, "manifest ");
  }
  if (!any && !idx->manifests.empty())
    missing.push_back("manifest " + idx->manifests.front().digest.str());
  return missing;
}

Expected<std::vector<ImageEntry>> Store::FindImageEntries(std::string_view text) const {
  if (text.empty())
    return Error(Errc::kInvalidInput, "empty image name");
  KILN_ASSIGN_OR_RETURN(std::vector<ImageEntry> images, ListImages());
  std::vector<ImageEntry> found;
  auto ref = ImageReference::Parse(text);
  if (ref) {
    std::vector<std::string> candidates;
    if (ref->implicit_domain)
      if (auto local = ImageReference::ParseWithDefaultDomain(text, "localhost"))
        candidates.push_back(local->str());
    candidates.push_back(ref->str());
    for (const auto& cand : candidates)
      for (const auto& e : images)
        if (std::find(e.names.begin(), e.names.end(), cand) != e.names.end())
          return std::vector<ImageEntry>{e};
    if (ref->digest.valid())
      for (const auto& e : images)
        if (e.descriptor.digest == ref->digest)
          return std::vector<ImageEntry>{e};
  }
  std::string_view hex = text.substr(0, 7) == "sha256:" ? text.substr(7) : text;
  bool hexish = hex.size() >= 3 && hex.size() <= 64 &&
                hex.find_first_not_of("0123456789abcdef") == std::string_view::npos;
  if (hexish) {
    for (const auto& e : images)
      if (hex.size() == 64 && e.descriptor.digest.hex() == hex)
        return std::vector<ImageEntry>{e};
    for (const auto& e : images) {
      std::set<std::string> ids;
      if (IsManifestMediaType(e.descriptor.media_type)) {
        if (auto m = ReadManifest(e.descriptor.digest))
          ids.insert(m->config.digest.hex());
      } else if (auto idx = ReadIndex(e.descriptor.digest)) {
        for (const auto& d : idx->manifests)
          if (IsManifestMediaType(d.media_type))
            if (auto m = ReadManifest(d.digest))
              ids.insert(m->config.digest.hex());
      }
      for (const auto& id : ids)
        if (id.compare(0, hex.size(), hex) == 0) {
          found.push_back(e);
          break;
        }
    }
  }
  if (found.empty()) {
    if (!ref && !hexish)
      return std::move(ref).error();
    return Error(Errc::kNotFound, "image not known: " + std::string(text));
  }
  return found;
}

// ============================================================ garbage collection

namespace {

/// The mark phase: a live set and, separate from it, the set of tops whose
/// closure was walked (a digest may be live without its children having
/// been marked yet, e.g. a manifest that a lease names).
struct Marker {
  const Store& store;
  std::set<std::string> live;         // blobs ("sha256:<hex>")
  std::set<std::string> live_layers;  // layer directory names (hex)
  std::set<std::string> walked;       // tops whose closure was marked
  std::set<std::string> ids;          // config digests of what was walked

  /// Marks `d` and everything below it; with `layers`, also the layer
  /// directories (diff_ids, chain ids) the images below need.
  void Walk(const Descriptor& d, bool layers, int depth = 0) {
    if (depth > 8 || !d.digest.valid())
      return;
    live.insert(d.digest.str());
    if (!walked.insert(d.digest.str() + (layers ? "+l" : "")).second)
      return;
    if (!store.HasBlob(d.digest))
      return;  // damaged: what is there of it is kept by its siblings' marks
    if (IsIndexMediaType(d.media_type)) {
      auto idx = store.ReadIndex(d.digest);
      if (!idx)
        return;
      for (const auto& m : idx->manifests)
        Walk(m, layers, depth + 1);
      return;
    }
    if (!IsManifestMediaType(d.media_type))
      return;
    auto m = store.ReadManifest(d.digest);
    if (!m)
      return;
    live.insert(m->config.digest.str());
    ids.insert(m->config.digest.str());
    for (const auto& l : m->layers)
      live.insert(l.digest.str());
    if (m->subject)
      live.insert(m->subject->digest.str());
    if (layers && IsConfigMediaType(m->config.media_type)) {
      if (auto c = store.ReadConfig(m->config.digest)) {
        for (const auto& x : c->diff_ids)
          live_layers.insert(x.hex());
        for (size_t n = 1; n <= c->diff_ids.size(); ++n)
          live_layers.insert(ChainId(std::span<const Digest>(c->diff_ids.data(), n)).hex());
      }
    }
  }

  /// A bare digest (a lease, a legacy record): the blob, and when it is a
  /// manifest or an index, its closure.
  void MarkDigest(const std::string& d, bool layers) {
    live.insert(d);
    live_layers.insert(d.size() > 7 ? d.substr(7) : d);
    auto parsed = kiln::Digest::Parse(d);
    if (!parsed)
      return;
    // Only JSON documents can have a closure: a layer is not read.
    struct stat st;
    if (::stat(store.BlobPath(*parsed).c_str(), &st) != 0 || st.st_size > int64_t(kMaxDocumentBytes))
      return;
    {
      auto fd = store.OpenBlob(*parsed);
      char c = 0;
      if (!fd || ::pread(fd->get(), &c, 1, 0) != 1 || c != '{')
        return;
    }
    auto text = store.ReadBlob(*parsed);
    if (!text)
      return;
    Descriptor desc;
    desc.digest = *parsed;
    desc.size = static_cast<int64_t>(text->size());
    if (auto m = ParseManifest(*text); m && m->config.digest.valid())
      desc.media_type = std::string(kMediaTypeOciManifest);
    else if (ParseIndex(*text))
      desc.media_type = std::string(kMediaTypeOciIndex);
    else
      return;
    Walk(desc, layers);
  }
};

/// The image IDs (config digests) of an index.json entry.
std::set<std::string> EntryIds(const Store& store, const Descriptor& top) {
  Marker m{store};
  m.Walk(top, false);
  return m.ids;
}

}  // namespace

Expected<Store::PruneReport> Store::Prune(const PruneOptions& options, int wait_seconds) {
  // Exclusive gc lock: no other kiln process is between writing a blob and
  // naming it (each holds the shared lock while it has the store open).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_seconds);
  bool told = false;
  for (;;) {
    if (::flock(gc_lock_.get(), LOCK_EX | LOCK_NB) == 0)
      break;
    if (errno != EWOULDBLOCK && errno != EINTR)
      return Error::FromErrno("lock " + root_ + "/gc.lock");
    if (std::chrono::steady_clock::now() >= deadline) {
      (void)::flock(gc_lock_.get(), LOCK_SH);
      return Error(Errc::kFailed, "store " + root_ + " is in use by another kiln process; try again later");
    }
    if (!told) {
      LogInfo("waiting for other kiln processes to release the store");
      told = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  struct Relock {
    int fd;
    ~Relock() { (void)::flock(fd, LOCK_SH); }
  } relock{gc_lock_.get()};

  PruneReport report;
  Marker mark{*this};
  // Digests named by the records of older kiln versions (no root).
  std::set<std::string> legacy_container_digests;

  // --cache: the build cache goes first (its roots then go stale).
  KILN_ASSIGN_OR_RETURN(auto records, ListDirSorted(root_ + "/cache"));
  std::set<std::string> removed_records;
  for (const auto& n : records) {
    std::string path = root_ + "/cache/" + n;
    if (options.cache) {
      ++report.cache_records_removed;
      removed_records.insert(n);
      if (!options.dry_run && ::unlink(path.c_str()) != 0 && errno != ENOENT)
        return Error::FromErrno("remove " + path);
    }
  }

  // Roots 1: registered roots (stale ones are removed).
  std::set<std::string> in_use_ids;  // images that containers (or others) keep whole
  KILN_ASSIGN_OR_RETURN(auto modules, ListDirSorted(root_ + "/roots"));
  for (const auto& m : modules) {
    KILN_ASSIGN_OR_RETURN(auto names, ListDirSorted(root_ + "/roots/" + m));
    for (const auto& n : names) {
      std::string path = root_ + "/roots/" + m + "/" + n;
      auto text = ReadFile(path, kMaxDocumentBytes);
      auto r = text ? RootFromJson(*text) : Expected<GcRoot>(std::move(text).error());
      bool stale = !r;
      if (r && !r->owner.empty()) {
        std::string owner = r->owner;
        stale = !SafeOwner(owner) || !PathExists(JoinPath(root_, owner)) ||
                (m == "cache" && removed_records.count(BaseName(owner)));
      }
      if (stale) {
        ++report.roots_removed;
        if (!options.dry_run && ::unlink(path.c_str()) != 0 && errno != ENOENT)
          return Error::FromErrno("remove " + path);
        continue;
      }
      for (const auto& d : r->blobs)
        mark.Walk(d, false);
      for (const auto& l : r->layers)
        mark.live_layers.insert(l.hex());
      for (const auto& id : r->image_ids)
        in_use_ids.insert(id.str());
    }
  }

  // Roots 2: leases of in-flight builds, pulls and loads. A lease whose
  // file is not locked belongs to a dead process: removed.
  KILN_ASSIGN_OR_RETURN(auto leases, ListDirSorted(root_ + "/leases"));
  for (const auto& n : leases) {
    std::string path = root_ + "/leases/" + n;
    auto fd = OpenFile(path, O_RDONLY);
    if (!fd)
      continue;
    if (::flock(fd->get(), LOCK_EX | LOCK_NB) == 0) {
      ++report.roots_removed;
      if (!options.dry_run)
        ::unlink(path.c_str());
      continue;
    }
    auto text = ReadAll(fd->get(), kMaxDocumentBytes * 4);
    if (!text)
      continue;
    std::set<std::string> digests;
    CollectDigests(*text, &digests);
    for (const auto& d : digests)
      mark.MarkDigest(d, true);
  }

  // Roots 3 (compatibility): cache records and container records written
  // by an older kiln have no root; every "sha256:<hex>" in them is kept,
  // as before, and a container's image ID keeps its image whole.
  KILN_ASSIGN_OR_RETURN(auto cache_roots, ListDirSorted(root_ + "/roots/cache"));
  std::set<std::string> has_root(cache_roots.begin(), cache_roots.end());
  for (const auto& n : records) {
    if (removed_records.count(n) || has_root.count(n))
      continue;
    if (auto text = ReadFile(root_ + "/cache/" + n, kMaxDocumentBytes)) {
      std::set<std::string> digests;
      CollectDigests(*text, &digests);
      for (const auto& d : digests) {
        mark.live.insert(d);
        mark.live_layers.insert(d.substr(7));
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(auto ctr_roots, ListDirSorted(root_ + "/roots/containers"));
  std::set<std::string> ctr_has_root(ctr_roots.begin(), ctr_roots.end());
  std::function<void(const std::string&, int)> scan_containers = [&](const std::string& dir, int depth) {
    if (depth > 4)
      return;
    auto names = ListDirSorted(dir);
    if (!names)
      return;
    for (const auto& n : *names) {
      if (depth == 0 && ctr_has_root.count(n + ".json"))
        continue;  // registered: its root says what it needs
      // containers/.rm-<id>: a record already taken out of sight and being
      // removed after its `run --rm` answered (docs/run.md); it keeps
      // nothing, as podman's image prune right after `run --rm` expects.
      if (depth == 0 && n.rfind(".rm-", 0) == 0)
        continue;
      std::string p = JoinPath(dir, n);
      struct stat st;
      if (::lstat(p.c_str(), &st) != 0)
        continue;
      if (S_ISDIR(st.st_mode)) {
        scan_containers(p, depth + 1);
      } else if (S_ISREG(st.st_mode) && n.size() > 5 && n.compare(n.size() - 5, 5, ".json") == 0) {
        if (auto text = ReadFile(p, kMaxDocumentBytes))
          CollectDigests(*text, &legacy_container_digests);
      }
    }
  };
  scan_containers(ContainersDir(), 0);
  for (const auto& d : legacy_container_digests) {
    mark.live.insert(d);
    mark.live_layers.insert(d.substr(7));
    in_use_ids.insert(d);
  }

  // Roots 4: the images of index.json. --all first removes the unnamed
  // ones that no container uses.
  KILN_ASSIGN_OR_RETURN(auto images, ListImages());
  std::vector<ImageEntry> kept;
  for (auto& e : images) {
    if (options.all && e.names.empty()) {
      std::set<std::string> ids = EntryIds(*this, e.descriptor);
      bool used = std::any_of(ids.begin(), ids.end(), [&](const std::string& id) { return in_use_ids.count(id); });
      if (!used) {
        KILN_TRY(CheckCancelled());  // safe points: between removals (kiln/cancel.h)
        ++report.images_removed;
        if (!options.dry_run)
          KILN_TRY(RemoveImage(e.descriptor.digest));
        continue;
      }
    }
    kept.push_back(std::move(e));
  }
  // Layer directories are caches of their blobs: --all drops every one that
  // no container, cache record or lease needs; otherwise every image keeps
  // the ones it needs.
  for (const auto& e : kept)
    mark.Walk(e.descriptor, !options.all);

  // Sweep 1: unmarked blobs.
  KILN_ASSIGN_OR_RETURN(auto blobs, ListDirSorted(root_ + "/blobs/sha256"));
  for (const auto& n : blobs) {
    if (mark.live.count("sha256:" + n))
      continue;
    KILN_TRY(CheckCancelled());
    std::string p = root_ + "/blobs/sha256/" + n;
    struct stat st;
    if (::lstat(p.c_str(), &st) == 0)
      report.bytes_freed += st.st_size;
    ++report.blobs_removed;
    if (!options.dry_run && ::unlink(p.c_str()) != 0 && errno != ENOENT)
      return Error::FromErrno("remove " + p);
  }
  // Sweep 2: unmarked unpacked layers.
  KILN_ASSIGN_OR_RETURN(auto layers, ListDirSorted(root_ + "/layers"));
  for (const auto& n : layers) {
    if (mark.live_layers.count(n))
      continue;
    KILN_TRY(CheckCancelled());
    if (!options.dry_run) {
      // Out of layers/ first (one rename), then removed: a prune killed
      // half-way leaves no half-empty layer directory for a later pull to
      // reuse, only a leftover in tmp/.
      std::string doomed = JoinPath(TmpDir(), "prune-layer-" + n);
      std::string from = root_ + "/layers/" + n;
      if (::rename(from.c_str(), doomed.c_str()) != 0)
        doomed = from;
      // Rootless: files of other mapped uids can only be removed from inside
      // kiln's user namespace; report and go on with the rest.
      if (auto s = RemoveAll(doomed); !s) {
        LogWarn("prune: cannot remove layers/" + n + ": " + s.error().message());
        continue;
      }
    }
    ++report.layer_dirs_removed;
  }
  // Sweep 3: tmp/. Nobody else has the store open, so everything there is stale.
  KILN_ASSIGN_OR_RETURN(auto tmp, ListDirSorted(TmpDir()));
  for (const auto& n : tmp) {
    if (!options.dry_run) {
      if (auto s = RemoveAll(JoinPath(TmpDir(), n)); !s) {
        LogWarn("prune: cannot remove tmp/" + n + ": " + s.error().message());
        continue;
      }
    }
    ++report.tmp_removed;
  }
  return report;
}

}  // namespace kiln
