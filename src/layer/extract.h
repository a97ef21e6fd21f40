// The layer extractor's parts, shared by unpack.cpp (the public calls and
// the byte sources), extract.cpp (the entries: files, links, whiteouts,
// directory fix-ups) and extract_fs.cpp (paths resolved inside the root,
// ownership, xattrs, the writer threads). Private to src/layer.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <unordered_set>
#include <vector>

#include <archive.h>
#include <archive_entry.h>

#include "kiln/fs.h"
#include "kiln/layer.h"
#include "kiln/log.h"
#include "layer/stream.h"

namespace kiln::layer::internal {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr int kMaxSymlinkHops = 40;
constexpr uint64_t kInRoot = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

// openat2(2) with O_CLOEXEC, retried on EAGAIN/EINTR; -1 and errno on failure.
int OpenAt2(int dirfd, const std::string& path, int flags, uint64_t resolve);
// The first n components joined with '/'.
std::string Join(const std::vector<std::string>& comps, size_t n);
std::string OverlayXattrPrefix(OverlayXattrs x);
bool KernelAtLeast(int want_major, int want_minor);
// Removes `name` in `parent` (never following it): unlink, or rm -rf of a
// directory through fds.
Status RemoveAt(int parent, const std::string& name, const std::string& display, int depth = 0);

struct DirFixup {
  std::string path;
  dev_t dev;
  ino_t ino;
  mode_t mode;
  struct timespec mtime;
};

// A regular file whose data was read from the stream, to be created by a
// writer thread (small files: creating a file costs ~0.3 ms of kernel time,
// the part of an unpack that several cores share). Its parent was resolved
// inside the root by the reading thread; the writer only creates `name` in
// it (O_CREAT | O_EXCL | O_NOFOLLOW), as the sequential path does.
struct FileJob {
  UniqueFd parent;
  std::string name, path, entry;  // entry: the tar name, for the error
  std::string data;
  uid_t uid = 0;
  gid_t gid = 0;
  mode_t perm = 0;
  struct timespec mtime {};
  std::vector<std::pair<std::string, std::string>> xattrs;  // allowlisted already
};

// The writer threads. The reading thread submits jobs and keeps the
// ordering rules (Extractor::Busy): an entry that touches a path a pending
// job will create, or a directory above one, waits for Drain() first.
class WriterPool {
 public:
  WriterPool(int threads, std::function<Status(FileJob&)> write) : write_(std::move(write)) {
    for (int i = 0; i < threads; ++i)
      threads_.emplace_back([this] { Loop(); });
  }
  ~WriterPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    work_.notify_all();
    for (auto& t : threads_)
      t.join();
  }

  // Queues `job` (waits while too much data is queued); false once a job
  // failed (Drain() returns the error).
  bool Submit(FileJob job);

  // Waits until every queued job is done; the first error, if any.
  Status Drain();

  // Paths whose jobs finished since the last call (the reader's
  // bookkeeping of pending paths).
  std::vector<std::string> TakeDone();

  static constexpr size_t kMaxQueuedBytes = size_t(32) << 20;
  static constexpr size_t kMaxJobs = 512;

 private:
  void Loop();

  std::function<Status(FileJob&)> write_;
  std::mutex mu_;
  std::condition_variable work_, space_, idle_;
  std::deque<FileJob> queue_;
  std::vector<std::string> done_;
  size_t queued_bytes_ = 0;
  size_t outstanding_ = 0;
  std::optional<Error> error_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// Writer threads for an unpack: UnpackOptions::threads, else
// $KILN_UNPACK_THREADS, else the number of cores; 1 = none (all on the
// calling thread).
int UnpackThreads(int requested);

class Extractor {
 public:
  Extractor(const UnpackOptions& options, UniqueFd root) : opt_(options), root_(std::move(root)) {
    xattr_prefix_ = OverlayXattrPrefix(options.overlay_xattrs);
    if (int n = UnpackThreads(options.threads); n > 1)
      pool_ = std::make_unique<WriterPool>(n, [this](FileJob& job) { return WriteJob(job); });
  }

  Status Run(archive* a, UnpackStats* stats);

 private:
  Error ArchiveError(archive* a, const std::string& what);

  // --- Writer threads: ordering. A job's path is pending from Submit until
  // a writer finished it. An entry waits for every pending job (DrainPool)
  // when it is, or lies under, a pending file, or is a directory above one
  // (it could replace or remove it); hardlinks and whiteouts always wait.
  Status DrainPool();
  void Forget(const std::string& path);

  bool Busy(const std::vector<std::string>& comps);
  void AddPending(const std::string& path);
  Status WriteJob(FileJob& job);

  // A small regular file: its data read here (the stream is sequential),
  // the file made by a writer thread.
  Status RegularAsync(archive* a, archive_entry* entry, UniqueFd parent, const std::string& name,
                      const std::string& path, const std::string& raw_name, uid_t uid, gid_t gid, mode_t perm,
                      const struct timespec& mtime);

  static constexpr la_int64_t kSmallFile = 1 << 20;
  template <typename F>
  Status ReadBlocks(archive* a, F on_block);

  // I3: split an entry name; reject NUL, `..`, over-long names.
  Expected<std::vector<std::string>> CleanPath(std::string_view raw, bool allow_empty);

  // Opens (O_PATH) the directory made of the first n components, resolved
  // inside the root (symlinks in it are followed, clamped to the root as if
  // the root were /). With create, missing directories are made.
  Expected<UniqueFd> ParentDir(const std::vector<std::string>& comps, size_t n, bool create);

  // mkdir -p inside the root, component by component, following existing
  // symlinks the way RESOLVE_IN_ROOT does (absolute targets and `..` are
  // clamped to the root) and never leaving it.
  Expected<UniqueFd> MakeDirsInRoot(const std::vector<std::string>& comps, size_t n);
  Status CheckId(int64_t id, const char* what);
  Status Chown(int fd, const char* name, int flags, const std::string& path, uid_t uid, gid_t gid);

  // Allowlisted xattrs only (H16): user.* (not user.overlay.*) and
  // security.capability. Overlay markers in a layer are never honoured.
  Status SetXattrs(int fd, archive_entry* entry, const std::string& path);
  static void ApplyXattrs(int fd, const std::vector<std::pair<std::string, std::string>>& xattrs,
                          const std::string& path);
  Status CollectXattrs(archive_entry* entry, const std::string& path,
                       std::vector<std::pair<std::string, std::string>>* out);
  static struct timespec EntryMtime(archive_entry* entry);

  // Keeps the mtime of `dirfd` across a change made in it (whiteouts must
  // not change the parent's metadata, H17).
  class KeepMtime {
   public:
    explicit KeepMtime(int dirfd) {
      fd_.reset(::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (fd_ && ::fstat(fd_.get(), &st_) != 0)
        fd_.reset();
    }
    ~KeepMtime() {
      if (!fd_)
        return;
      struct timespec ts[2] = {st_.st_atim, st_.st_mtim};
      (void)::futimens(fd_.get(), ts);
    }
    KeepMtime(const KeepMtime&) = delete;
    KeepMtime& operator=(const KeepMtime&) = delete;

   private:
    UniqueFd fd_;
    struct stat st_ {};
  };

  // Makes room for a new entry `name` in `parent`: whatever is there goes
  // (last entry wins), except a directory when a directory comes.
  Status Clear(int parent, const std::string& name, const std::string& path, bool keep_dir);
  Status Entry(archive* a, archive_entry* entry, const std::string& raw_name);
  Status Regular(archive* a, archive_entry* entry, int parent, const std::string& name, const std::string& path,
                 uid_t uid, gid_t gid, mode_t perm, const struct timespec& mtime);

  // I3: the target is resolved inside the root and must exist there; link()
  // failing is an error, never a copy (H05-H07).
  Status Hardlink(int parent, const std::string& name, const std::string& path, const char* target_raw);
  Status Whiteout(const std::vector<std::string>& comps, const std::string& path);
  Status Opaque(int parent, const std::string& parent_path);
  Status ProbeOnce();

 public:
  static WhiteoutFormat ProbeWhiteoutFormatFd(int dirfd, const std::string& prefix = "");

 private:
  Status ApplyDirFixups();

  const UnpackOptions& opt_;
  UniqueFd root_;
  std::string xattr_prefix_;
  UnpackStats* stats_ = nullptr;
  std::unordered_map<std::string, UniqueFd> cache_;
  std::unordered_set<std::string> created_;
  std::vector<DirFixup> dirs_;
  bool probed_ = false;
  WhiteoutFormat format_ = WhiteoutFormat::kNone;
  std::unordered_set<std::string> pending_files_;          // paths of queued jobs
  std::unordered_map<std::string, int> pending_dirs_;      // their parent directories, with a count
  std::unique_ptr<WriterPool> pool_;  // last: its threads stop before the rest goes
};

}  // namespace kiln::layer::internal
