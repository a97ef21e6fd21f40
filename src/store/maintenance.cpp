// Store::Check (fsck) and Store::Prune (garbage collection).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>

#include "kiln/cancel.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/store.h"
#include "store/internal.h"

namespace kiln {

using store_internal::CollectClosure;
using store_internal::CollectDigests;
using store_internal::ListDir;

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
  std::vector<char> buf(1 << 17);
  int64_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return Error::FromErrno("read " + path);
    }
    if (n == 0)
      break;
    h.Update(buf.data(), static_cast<size_t>(n));
    total += n;
  }
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
  KILN_ASSIGN_OR_RETURN(auto algos, ListDir(root_ + "/blobs"));
  for (const auto& algo : algos) {
    if (algo != "sha256") {
      report.notes.push_back("blobs/" + algo + ": not verified");
      continue;
    }
    KILN_ASSIGN_OR_RETURN(auto names, ListDir(root_ + "/blobs/sha256"));
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
  KILN_ASSIGN_OR_RETURN(auto layers, ListDir(root_ + "/layers"));
  for (const auto& n : layers) {
    if (!IsHex64(n))
      report.problems.push_back("layers/" + n + ": not a layer directory name");
    else
      ++report.layer_dirs;
  }
  // Cache records: every file is a complete record.
  KILN_ASSIGN_OR_RETURN(auto records, ListDir(root_ + "/cache"));
  for (const auto& n : records) {
    if (n.size() < 6 || n.compare(n.size() - 5, 5, ".json") != 0 || n[0] == '.')
      report.problems.push_back("cache/" + n + ": not a cache record");
  }
  // Temp files are never reachable from the index; leftovers are harmless.
  KILN_ASSIGN_OR_RETURN(auto tmp, ListDir(TmpDir()));
  for (const auto& n : tmp)
    report.notes.push_back("tmp/" + n + ": leftover temporary file (removed by kiln prune)");
  return report;
}

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
  // 1. Unnamed images (--all).
  if (options.all) {
    KILN_ASSIGN_OR_RETURN(auto images, ListImages());
    for (const auto& e : images) {
      if (!e.names.empty())
        continue;
      KILN_TRY(CheckCancelled());  // safe points: between removals (kiln/cancel.h)
      ++report.images_removed;
      if (!options.dry_run)
        KILN_TRY(RemoveImage(e.descriptor.digest));
    }
  }
  // 2. Cache records (--cache).
  KILN_ASSIGN_OR_RETURN(auto records, ListDir(root_ + "/cache"));
  std::set<std::string> live;
  std::set<std::string> live_layers;
  for (const auto& n : records) {
    std::string path = root_ + "/cache/" + n;
    if (options.cache) {
      ++report.cache_records_removed;
      if (!options.dry_run && ::unlink(path.c_str()) != 0 && errno != ENOENT)
        return Error::FromErrno("remove " + path);
      continue;
    }
    if (auto text = ReadFile(path, kMaxDocumentBytes)) {
      CollectDigests(*text, &live);
      CollectDigests(*text, &live_layers);
    }
  }
  // 3. Roots: index.json (after step 1), containers' records.
  KILN_ASSIGN_OR_RETURN(auto images, ListImages());
  if (options.dry_run && options.all)
    std::erase_if(images, [](const ImageEntry& e) { return e.names.empty(); });
  std::set<std::string> diff_ids;
  std::set<std::string> visited;
  for (const auto& e : images)
    CollectClosure(*this, e.descriptor, &live, &diff_ids, &visited);
  std::function<void(const std::string&, int)> scan_containers = [&](const std::string& dir, int depth) {
    if (depth > 4)
      return;
    auto names = ListDir(dir);
    if (!names)
      return;
    for (const auto& n : *names) {
      std::string p = JoinPath(dir, n);
      struct stat st;
      if (::lstat(p.c_str(), &st) != 0)
        continue;
      if (S_ISDIR(st.st_mode)) {
        scan_containers(p, depth + 1);
      } else if (S_ISREG(st.st_mode) && n.size() > 5 && n.compare(n.size() - 5, 5, ".json") == 0) {
        if (auto text = ReadFile(p, kMaxDocumentBytes)) {
          CollectDigests(*text, &live);
          CollectDigests(*text, &live_layers);
        }
      }
    }
  };
  scan_containers(ContainersDir(), 0);

  // 4. Unreferenced blobs.
  KILN_ASSIGN_OR_RETURN(auto blobs, ListDir(root_ + "/blobs/sha256"));
  for (const auto& n : blobs) {
    if (live.count("sha256:" + n))
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
  // 5. Unpacked layers no image (or container/cache record) uses; --all: every one
  //    not used by a container or cache record.
  KILN_ASSIGN_OR_RETURN(auto layers, ListDir(root_ + "/layers"));
  for (const auto& n : layers) {
    bool used = live_layers.count("sha256:" + n) > 0 || (!options.all && diff_ids.count(n) > 0);
    if (used)
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
  // 6. tmp/: nobody else has the store open, so everything there is stale.
  KILN_ASSIGN_OR_RETURN(auto tmp, ListDir(TmpDir()));
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
