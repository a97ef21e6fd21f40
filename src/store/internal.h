// Helpers shared by the store's source files (not a public header).
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/digest.h"
#include "kiln/error.h"
#include "kiln/oci.h"
#include "kiln/unique_fd.h"

namespace kiln {
class Store;
}

namespace kiln::store_internal {

/// Writes `data` to `path` atomically with the temp file in `tmp_dir` (same
/// file system): create O_EXCL, write, fsync, rename, fsync the parent
/// directory. Crash points between the steps carry `what` in their name.
Status AtomicWrite(const std::string& tmp_dir, const std::string& path, std::string_view data,
                   const char* what, mode_t mode = 0644);

/// A name kiln writes under a store directory (cache records, state files,
/// GC roots): 1..128 of [A-Za-z0-9_.-], not starting with '.'.
bool ValidRecordName(std::string_view name);

/// This boot's id (/proc/sys/kernel/random/boot_id; $KILN_TEST_BOOT_ID in
/// tests), empty when unknown. Unsynced layer records carry it.
std::string BootId();

/// A flock(2) held on a file until destroyed.
class FileLock {
 public:
  /// Blocks until the lock is held. `exclusive` false: LOCK_SH.
  static Expected<FileLock> Acquire(const std::string& path, bool exclusive);
  FileLock() = default;
  FileLock(FileLock&&) noexcept = default;
  FileLock& operator=(FileLock&&) noexcept = default;

 private:
  UniqueFd fd_;
};

/// Every "sha256:<64 hex>" string inside a JSON file's text (used to keep
/// the blobs that opaque records mention alive through prune).
void CollectDigests(std::string_view text, std::set<std::string>* out);

}  // namespace kiln::store_internal
