// COPY and ADD with Docker/BuildKit semantics: sources relative to a source
// root (the build context, or another stage's root filesystem), wildcards,
// directory-contents copies, trailing-slash rules, --chown/--chmod/
// --exclude/--parents, ADD's unpacking of local archives; and the content
// digest of a COPY's inputs for the cache key. Every destination path is
// resolved inside the container root (openat2 RESOLVE_IN_ROOT).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <sys/stat.h>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/containerfile.h"
#include "kiln/digest.h"
#include "kiln/error.h"

namespace kiln::engine {

struct CopyRequest {
  std::string src_root;               // host path of the build context or a stage's rootfs
  bool from_context = true;           // context: ignore file applies, owner defaults to 0:0
  std::shared_ptr<const frontend::IgnoreMatcher> ignore;  // context only; may be null
  std::vector<std::string> sources;   // as written (relative to src_root; "/" = src_root)
  std::vector<std::pair<std::string, std::string>> inline_files;  // heredoc name -> content
  std::string dest;                   // absolute path in the container; a trailing '/' = directory
  std::optional<uint32_t> uid;        // --chown, resolved
  std::optional<uint32_t> gid;
  std::string chmod;                  // octal or symbolic, "" = keep
  std::vector<std::string> excludes;  // --exclude patterns
  bool parents = false;               // --parents
  bool unpack_archives = false;       // ADD: local tar archives are extracted
  std::string what = "COPY";          // for messages
};

/// Copies the request's sources into the root filesystem open at
/// `dest_root_fd` (host path `dest_root_path`, used only for ADD's
/// extraction). kNotFound naming the source when one does not exist.
Status CopyIntoRoot(const CopyRequest& request, int dest_root_fd, const std::string& dest_root_path);

/// Content digests of the files of one source root (a build context), like
/// git's index: (relative path, size, mtime ns, inode, ctime ns, mode) ->
/// sha256 of the content, so that an unchanged file is not read again
/// (docs/cache.md "Stat cache"). Racy-git rule: an entry whose mtime is not
/// older than the time the cache was taken (`stamp_ns`, the start of the
/// build that wrote it) is not trusted and the file is re-hashed.
/// Thread-safe.
class StatCache {
 public:
  /// An empty cache whose entries will be stamped with `now_ns`.
  explicit StatCache(int64_t now_ns) : now_ns_(now_ns) {}
  /// Loads a Serialize()d cache; garbage or another version loads nothing.
  void Load(std::string_view data);
  /// The text to persist: header (version, stamp) and one line per entry.
  std::string Serialize() const;
  /// The cached digest of `rel` when `st` matches its entry and the entry
  /// is not racy.
  std::optional<Digest> Lookup(const std::string& rel, const struct stat& st);
  void Put(const std::string& rel, const struct stat& st, const Digest& digest);
  bool dirty() const;
  int64_t hits() const;
  int64_t misses() const;

 private:
  struct Entry {
    int64_t size = 0, mtime_ns = 0, ctime_ns = 0;
    uint64_t ino = 0;
    uint32_t mode = 0;
    Digest digest;
  };
  mutable std::mutex mu_;
  int64_t now_ns_ = 0;
  int64_t loaded_stamp_ns_ = 0;  // entries with mtime >= this are racy
  std::unordered_map<std::string, Entry> entries_;
  bool dirty_ = false;
  int64_t hits_ = 0, misses_ = 0;
};

/// One entry of a HashCopySources() listing: the relative path and
/// "mode uid:gid sha256:..." (regular file), "mode uid:gid -> target"
/// (symlink) or "mode uid:gid" (directory, device).
using SourceListing = std::vector<std::pair<std::string, std::string>>;

/// The digest of everything CopyIntoRoot would read: for each matched
/// entry its relative path, type, mode, owner, size, content digest and
/// link target, in a fixed order. The ignore file and --exclude apply, so
/// a change to an ignored file does not change it. Only the matched files
/// are read; content digests come from `stat_cache` when it has them
/// (null: every file is read); files are hashed in parallel (oneTBB) when
/// there are many. `listing`, when not null, receives every entry.
Expected<Digest> HashCopySources(const CopyRequest& request, StatCache* stat_cache = nullptr,
                                 SourceListing* listing = nullptr);

/// Applies a --chmod value to a mode: octal ("755") replaces the permission
/// bits, symbolic ("u+x,g-w") edits them. kInvalidInput when malformed.
Expected<uint32_t> ApplyChmod(const std::string& spec, uint32_t mode, bool is_dir);

}  // namespace kiln::engine
