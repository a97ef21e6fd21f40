// UnpackLayer: safe extraction of untrusted layers (docs/security.md I1, I3, I5).
//
// libarchive only parses the tar stream; every write to disk is done here,
// relative to directory fds that were resolved inside the root with
// openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV). The
// final component of a path is never followed (O_NOFOLLOW, O_EXCL,
// AT_SYMLINK_NOFOLLOW, unlinkat/linkat without AT_SYMLINK_FOLLOW).
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

namespace kiln::layer {

namespace {

using internal::ByteSource;

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr int kMaxSymlinkHops = 40;

int OpenAt2(int dirfd, const std::string& path, int flags, uint64_t resolve) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = resolve;
  for (;;) {
    long fd = ::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
    if (fd >= 0)
      return static_cast<int>(fd);
    if (errno == EAGAIN || errno == EINTR)
      continue;  // RESOLVE_IN_ROOT asks to retry on a concurrent rename
    return -1;
  }
}

constexpr uint64_t kInRoot = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

std::string Join(const std::vector<std::string>& comps, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (i)
      out += '/';
    out += comps[i];
  }
  return out;
}

std::string OverlayXattrPrefix(OverlayXattrs x) {
  if (x == OverlayXattrs::kAuto)
    x = OverlayXattrsForMount();
  return x == OverlayXattrs::kTrusted ? "trusted.overlay." : "user.overlay.";
}

bool KernelAtLeast(int want_major, int want_minor) {
  struct utsname u;
  if (::uname(&u) != 0)
    return false;
  int major_v = 0, minor_v = 0;
  if (std::sscanf(u.release, "%d.%d", &major_v, &minor_v) != 2)
    return false;
  return major_v > want_major || (major_v == want_major && minor_v >= want_minor);
}

// Removes `name` in `parent` (never following it): unlink, or rm -rf of a
// directory through fds.
Status RemoveAt(int parent, const std::string& name, const std::string& display, int depth = 0) {
  if (::unlinkat(parent, name.c_str(), 0) == 0 || errno == ENOENT)
    return Ok();
  if (errno != EISDIR && errno != EPERM)
    return Error::FromErrno("remove " + display);
  if (depth > 4096)
    return Error(Errc::kIo, "remove " + display + ": tree too deep");
  int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return Error::FromErrno("remove " + display);
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    return Error::FromErrno("remove " + display);
  }
  std::vector<std::string> children;
  while (dirent* de = ::readdir(d)) {
    std::string_view n = de->d_name;
    if (n != "." && n != "..")
      children.emplace_back(n);
  }
  Status status;
  for (const auto& c : children) {
    status = RemoveAt(::dirfd(d), c, display + "/" + c, depth + 1);
    if (!status)
      break;
  }
  ::closedir(d);
  if (!status)
    return status;
  if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
    return Error::FromErrno("remove " + display);
  return Ok();
}

// The uncompressed stream that libarchive parses: hashed, counted, bounded.
class CountingSource {
 public:
  CountingSource(ByteSource* in, int64_t max_bytes) : in_(in), max_bytes_(max_bytes) {}

  Expected<std::string_view> Read() {
    KILN_ASSIGN_OR_RETURN(std::string_view chunk, in_->Read());
    bytes_ += static_cast<int64_t>(chunk.size());
    if (bytes_ > max_bytes_)
      return Error(Errc::kCorrupt, "decompressed size limit exceeded (" + std::to_string(max_bytes_) + " bytes)");
    hash_.Update(chunk.data(), chunk.size());
    return chunk;
  }

  static la_ssize_t ReadCb(archive* /*a*/, void* self_v, const void** buf) {
    auto* self = static_cast<CountingSource*>(self_v);
    auto chunk = self->Read();
    if (!chunk) {
      self->error_ = std::move(chunk).error();
      return -1;
    }
    *buf = chunk->data();
    return static_cast<la_ssize_t>(chunk->size());
  }

  int64_t bytes() const { return bytes_; }
  Digest TakeDigest() { return hash_.Finish(); }
  std::optional<Error>& error() { return error_; }

 private:
  ByteSource* in_;
  int64_t max_bytes_;
  int64_t bytes_ = 0;
  Sha256 hash_;
  std::optional<Error> error_;
};

// Between a decompressor and its consumer: bounds the expansion ratio
// (UnpackLimits::max_expansion_ratio) against the compressed bytes read so
// far. Runs on the thread that drives the decompressor (which alone reads
// `raw`), so reading raw->bytes() is not a race.
class RatioGuard : public ByteSource {
 public:
  RatioGuard(ByteSource* in, const internal::HashingFdSource* raw, const UnpackLimits& limits)
      : in_(in), raw_(raw), ratio_(limits.max_expansion_ratio), allowance_(limits.expansion_allowance) {}

  Expected<std::string_view> Read() override {
    KILN_ASSIGN_OR_RETURN(std::string_view chunk, in_->Read());
    out_ += static_cast<int64_t>(chunk.size());
    if (ratio_ > 0 && out_ > allowance_ && out_ / ratio_ > raw_->bytes())
      return Error(Errc::kCorrupt, "decompressed size limit exceeded: " + std::to_string(out_) + " bytes from " +
                                       std::to_string(raw_->bytes()) + " compressed bytes is more than " +
                                       std::to_string(ratio_) + ":1 (KILN_MAX_EXPANSION_RATIO)");
    return chunk;
  }

 private:
  ByteSource* in_;
  const internal::HashingFdSource* raw_;
  int64_t ratio_;
  int64_t allowance_;
  int64_t out_ = 0;
};

// Plain passthrough of the raw fd source (uncompressed layers).
class RawSource : public ByteSource {
 public:
  explicit RawSource(internal::HashingFdSource* in) : in_(in) {}
  Expected<std::string_view> Read() override { return in_->Read(); }

 private:
  internal::HashingFdSource* in_;
};

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
  bool Submit(FileJob job) {
    std::unique_lock<std::mutex> lock(mu_);
    // Bounded in bytes and in jobs (each holds a directory fd).
    space_.wait(lock, [&] { return (queued_bytes_ < kMaxQueuedBytes && outstanding_ < kMaxJobs) || error_; });
    if (error_)
      return false;
    queued_bytes_ += job.data.size();
    ++outstanding_;
    queue_.push_back(std::move(job));
    lock.unlock();
    work_.notify_one();
    return true;
  }

  // Waits until every queued job is done; the first error, if any.
  Status Drain() {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [&] { return outstanding_ == 0; });
    done_.clear();
    if (error_)
      return *error_;
    return Ok();
  }

  // Paths whose jobs finished since the last call (the reader's
  // bookkeeping of pending paths).
  std::vector<std::string> TakeDone() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(done_, {});
  }

  static constexpr size_t kMaxQueuedBytes = size_t(32) << 20;
  static constexpr size_t kMaxJobs = 512;

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty())
        return;
      FileJob job = std::move(queue_.front());
      queue_.pop_front();
      const bool skip = error_.has_value();  // after a failure: drop the rest
      lock.unlock();
      Status st = skip ? Status(Ok()) : write_(job);
      lock.lock();
      if (!st && !error_)
        error_ = std::move(st).error().WithContext("entry \"" + job.entry + "\"");
      queued_bytes_ -= job.data.size();
      done_.push_back(std::move(job.path));
      if (--outstanding_ == 0)
        idle_.notify_all();
      space_.notify_one();
    }
  }

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
int UnpackThreads(int requested) {
  if (requested > 0)
    return requested;
  if (const char* v = std::getenv("KILN_UNPACK_THREADS"); v && *v) {
    int n = std::atoi(v);
    if (n >= 1 && n <= 256)
      return n;
  }
  return static_cast<int>(std::max(1u, std::min(16u, std::thread::hardware_concurrency())));
}

class Extractor {
 public:
  Extractor(const UnpackOptions& options, UniqueFd root) : opt_(options), root_(std::move(root)) {
    xattr_prefix_ = OverlayXattrPrefix(options.overlay_xattrs);
    if (int n = UnpackThreads(options.threads); n > 1)
      pool_ = std::make_unique<WriterPool>(n, [this](FileJob& job) { return WriteJob(job); });
  }

  Status Run(archive* a, UnpackStats* stats) {
    stats_ = stats;
    for (;;) {
      archive_entry* entry = nullptr;
      int rc = archive_read_next_header(a, &entry);
      if (rc == ARCHIVE_EOF)
        break;
      if (rc == ARCHIVE_WARN) {
        const char* msg = archive_error_string(a);
        LogDebug(std::string("layer: tar warning: ") + (msg ? msg : "?"));
      } else if (rc != ARCHIVE_OK) {
        return ArchiveError(a, "read tar header");
      }
      if (++stats_->entries > opt_.limits.max_entries)
        return Error(Errc::kCorrupt, "layer has more than " + std::to_string(opt_.limits.max_entries) + " entries");
      const char* raw = archive_entry_pathname(entry);
      std::string name = raw ? raw : "";
      auto status = Entry(a, entry, name);
      if (!status) {
        if (pool_ && status.error().code() == Errc::kCancelled)
          return DrainPool();  // a writer's error, with its own entry name
        return std::move(status).error().WithContext("entry \"" + name + "\"");
      }
    }
    KILN_TRY(DrainPool());
    return ApplyDirFixups();
  }

 private:
  Error ArchiveError(archive* a, const std::string& what) {
    const char* msg = archive_error_string(a);
    return Error(Errc::kCorrupt, what + ": " + (msg ? msg : "corrupt tar"));
  }

  // --- Writer threads: ordering. A job's path is pending from Submit until
  // a writer finished it. An entry waits for every pending job (DrainPool)
  // when it is, or lies under, a pending file, or is a directory above one
  // (it could replace or remove it); hardlinks and whiteouts always wait.
  Status DrainPool() {
    if (!pool_)
      return Ok();
    pending_files_.clear();
    pending_dirs_.clear();
    return pool_->Drain();
  }

  void Forget(const std::string& path) {
    pending_files_.erase(path);
    for (size_t slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1)) {
      auto it = pending_dirs_.find(path.substr(0, slash));
      if (it != pending_dirs_.end() && --it->second == 0)
        pending_dirs_.erase(it);
    }
  }

  bool Busy(const std::vector<std::string>& comps) {
    for (const std::string& done : pool_->TakeDone())
      Forget(done);
    if (pending_files_.empty())
      return false;
    std::string prefix;
    for (size_t i = 0; i < comps.size(); ++i) {
      if (i)
        prefix += '/';
      prefix += comps[i];
      if (pending_files_.count(prefix))
        return true;
    }
    return pending_dirs_.count(prefix) > 0;
  }

  void AddPending(const std::string& path) {
    pending_files_.insert(path);
    for (size_t slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1))
      ++pending_dirs_[path.substr(0, slash)];
  }

  Status WriteJob(FileJob& job) {
    UniqueFd fd(::openat(job.parent.get(), job.name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                         0600));
    if (!fd)
      return Error::FromErrno("create " + job.path);
    const char* p = job.data.data();
    size_t left = job.data.size();
    while (left > 0) {
      ssize_t n = ::write(fd.get(), p, left);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        return Error::FromErrno("write " + job.path);
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    KILN_TRY(Chown(fd.get(), "", AT_EMPTY_PATH, job.path, job.uid, job.gid));
    ApplyXattrs(fd.get(), job.xattrs, job.path);
    if (::fchmod(fd.get(), job.perm) != 0)  // after chown, which clears setuid
      return Error::FromErrno("chmod " + job.path);
    struct timespec ts[2] = {job.mtime, job.mtime};
    if (::futimens(fd.get(), ts) != 0)
      return Error::FromErrno("set times of " + job.path);
    return Ok();
  }

  // A small regular file: its data read here (the stream is sequential),
  // the file made by a writer thread.
  Status RegularAsync(archive* a, archive_entry* entry, UniqueFd parent, const std::string& name,
                      const std::string& path, const std::string& raw_name, uid_t uid, gid_t gid, mode_t perm,
                      const struct timespec& mtime) {
    KILN_TRY(Clear(parent.get(), name, path, false));
    FileJob job;
    const la_int64_t total = archive_entry_size(entry);
    job.data.assign(static_cast<size_t>(total), '\0');
    const void* buf;
    size_t size;
    la_int64_t offset;
    for (;;) {
      int rc = archive_read_data_block(a, &buf, &size, &offset);
      if (rc == ARCHIVE_EOF)
        break;
      if (rc < ARCHIVE_WARN)
        return ArchiveError(a, "read data");
      // Data past the entry's size is cut off (the sequential path
      // truncates the file to the size).
      if (offset < 0 || offset >= total)
        continue;
      size_t n = std::min(size, static_cast<size_t>(total - offset));
      std::memcpy(job.data.data() + offset, buf, n);
    }
    KILN_TRY(CollectXattrs(entry, path, &job.xattrs));
    job.parent = std::move(parent);
    job.name = name;
    job.path = path;
    job.entry = raw_name;
    job.uid = uid;
    job.gid = gid;
    job.perm = perm;
    job.mtime = mtime;
    AddPending(path);
    if (!pool_->Submit(std::move(job)))
      return Error(Errc::kCancelled, "a writer failed");  // Run() returns the writer's error
    return Ok();
  }

  static constexpr la_int64_t kSmallFile = 1 << 20;

  // I3: split an entry name; reject NUL, `..`, over-long names.
  Expected<std::vector<std::string>> CleanPath(std::string_view raw, bool allow_empty) {
    if (raw.size() > opt_.limits.max_path_bytes)
      return Error(Errc::kCorrupt, "path longer than " + std::to_string(opt_.limits.max_path_bytes) + " bytes");
    if (raw.find('\0') != std::string_view::npos)
      return Error(Errc::kCorrupt, "path contains NUL");
    std::vector<std::string> comps = PathComponents(raw);
    for (const auto& c : comps) {
      if (c == "..")
        return Error(Errc::kCorrupt, "path escapes root (\"..\" component)");
      if (c.size() > 255)
        return Error(Errc::kCorrupt, "path component longer than 255 bytes");
    }
    if (comps.size() > opt_.limits.max_depth)
      return Error(Errc::kCorrupt, "path deeper than " + std::to_string(opt_.limits.max_depth) + " components");
    if (comps.empty() && !allow_empty)
      return Error(Errc::kCorrupt, raw.empty() ? "empty path" : "entry would replace the root directory");
    return comps;
  }

  // Opens (O_PATH) the directory made of the first n components, resolved
  // inside the root (symlinks in it are followed, clamped to the root as if
  // the root were /). With create, missing directories are made.
  Expected<UniqueFd> ParentDir(const std::vector<std::string>& comps, size_t n, bool create) {
    std::string path = Join(comps, n);
    // The cache may be cleared while the caller uses the fd: hand out dups.
    auto dup_of = [&](int fd) -> Expected<UniqueFd> {
      int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (d < 0)
        return Error::FromErrno("dup");
      return UniqueFd(d);
    };
    if (auto it = cache_.find(path); it != cache_.end())
      return dup_of(it->second.get());
    int fd;
    if (n == 0)
      fd = ::fcntl(root_.get(), F_DUPFD_CLOEXEC, 0);
    else
      fd = OpenAt2(root_.get(), path, O_PATH | O_DIRECTORY, kInRoot);
    if (fd < 0 && errno == ENOENT && create) {
      auto made = MakeDirsInRoot(comps, n);
      if (!made)
        return std::move(made).error();
      fd = made->release();
    } else if (fd < 0) {
      if (errno == ENOTDIR)
        return Error(Errc::kCorrupt, "parent \"" + path + "\" is not a directory");
      if (errno == ELOOP)
        return Error(Errc::kCorrupt, "too many symlinks resolving \"" + path + "\"");
      if (errno == EXDEV)
        return Error(Errc::kCorrupt, "parent \"" + path + "\" crosses a mount point");
      return Error::FromErrno("resolve \"" + path + "\" in root");
    }
    if (cache_.size() > 64)
      cache_.clear();
    auto& slot = cache_[path];
    slot.reset(fd);
    return dup_of(fd);
  }

  // mkdir -p inside the root, component by component, following existing
  // symlinks the way RESOLVE_IN_ROOT does (absolute targets and `..` are
  // clamped to the root) and never leaving it.
  Expected<UniqueFd> MakeDirsInRoot(const std::vector<std::string>& comps, size_t n) {
    std::deque<std::string> todo(comps.begin(), comps.begin() + static_cast<long>(n));
    std::vector<std::string> resolved;
    UniqueFd cur(::fcntl(root_.get(), F_DUPFD_CLOEXEC, 0));
    if (!cur)
      return Error::FromErrno("dup root");
    int hops = 0;
    while (!todo.empty()) {
      std::string c = std::move(todo.front());
      todo.pop_front();
      if (c.empty() || c == ".")
        continue;
      if (c == "..") {
        if (!resolved.empty())
          resolved.pop_back();
        int fd = resolved.empty() ? ::fcntl(root_.get(), F_DUPFD_CLOEXEC, 0)
                                  : OpenAt2(root_.get(), Join(resolved, resolved.size()), O_PATH | O_DIRECTORY, kInRoot);
        if (fd < 0)
          return Error::FromErrno("resolve \"" + Join(resolved, resolved.size()) + "\" in root");
        cur.reset(fd);
        continue;
      }
      struct stat st;
      if (::fstatat(cur.get(), c.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT)
          return Error::FromErrno("stat \"" + c + "\"");
        if (::mkdirat(cur.get(), c.c_str(), 0755) != 0 && errno != EEXIST)
          return Error::FromErrno("mkdir \"" + Join(resolved, resolved.size()) + "/" + c + "\"");
        st.st_mode = S_IFDIR;
      }
      if (S_ISLNK(st.st_mode)) {
        if (++hops > kMaxSymlinkHops)
          return Error(Errc::kCorrupt, "too many symlinks creating parent directories");
        std::string target(PATH_MAX + 1, '\0');
        ssize_t len = ::readlinkat(cur.get(), c.c_str(), target.data(), target.size());
        if (len < 0)
          return Error::FromErrno("readlink \"" + c + "\"");
        target.resize(static_cast<size_t>(len));
        if (!target.empty() && target[0] == '/') {
          resolved.clear();
          cur.reset(::fcntl(root_.get(), F_DUPFD_CLOEXEC, 0));
        }
        auto parts = PathComponents(target);
        todo.insert(todo.begin(), parts.begin(), parts.end());
        continue;
      }
      if (!S_ISDIR(st.st_mode))
        return Error(Errc::kCorrupt, "parent \"" + Join(resolved, resolved.size()) + (resolved.empty() ? "" : "/") + c +
                                         "\" is not a directory");
      int fd = ::openat(cur.get(), c.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        return Error::FromErrno("open \"" + c + "\"");
      cur.reset(fd);
      resolved.push_back(std::move(c));
    }
    return cur;
  }

  Status CheckId(int64_t id, const char* what) {
    if (id < 0 || id >= 4294967295LL)
      return Error(Errc::kCorrupt, std::string(what) + " " + std::to_string(id) + " out of range");
    return Ok();
  }

  Status Chown(int fd, const char* name, int flags, const std::string& path, uid_t uid, gid_t gid) {
    if (!opt_.preserve_ownership)
      return Ok();
    if (opt_.owner_uid)
      uid = *opt_.owner_uid;
    if (opt_.owner_gid)
      gid = *opt_.owner_gid;
    if (::fchownat(fd, name, uid, gid, flags) == 0)
      return Ok();
    if (errno == EINVAL || errno == EPERM)
      return Error(Errc::kSandbox,
                   "chown " + path + " to " + std::to_string(uid) + ":" + std::to_string(gid) +
                       ": id not mapped in this user namespace (the layer needs uids/gids up to that value; "
                       "extend the ranges in /etc/subuid and /etc/subgid)",
                   errno);
    return Error::FromErrno("chown " + path);
  }

  // Allowlisted xattrs only (H16): user.* (not user.overlay.*) and
  // security.capability. Overlay markers in a layer are never honoured.
  Status SetXattrs(int fd, archive_entry* entry, const std::string& path) {
    std::vector<std::pair<std::string, std::string>> xattrs;
    KILN_TRY(CollectXattrs(entry, path, &xattrs));
    if (fd >= 0)  // symlinks and special files: not applied
      ApplyXattrs(fd, xattrs, path);
    return Ok();
  }

  static void ApplyXattrs(int fd, const std::vector<std::pair<std::string, std::string>>& xattrs,
                          const std::string& path) {
    for (const auto& [name, value] : xattrs)
      if (::fsetxattr(fd, name.c_str(), value.data(), value.size(), 0) != 0)
        LogWarn("layer: " + path + ": cannot set xattr " + name + ": " + std::strerror(errno));
  }

  Status CollectXattrs(archive_entry* entry, const std::string& path,
                       std::vector<std::pair<std::string, std::string>>* out) {
    size_t count = 0;
    archive_entry_xattr_reset(entry);
    const char* name;
    const void* value;
    size_t size;
    while (archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK) {
      if (++count > opt_.limits.max_xattrs_per_entry)
        return Error(Errc::kCorrupt, "more than " + std::to_string(opt_.limits.max_xattrs_per_entry) + " xattrs");
      if (size > opt_.limits.max_xattr_value_bytes)
        return Error(Errc::kCorrupt, std::string("xattr ") + name + " larger than " +
                                         std::to_string(opt_.limits.max_xattr_value_bytes) + " bytes");
      std::string_view n = name;
      bool allowed = (n.starts_with("user.") && !n.starts_with("user.overlay.")) || n == "security.capability";
      if (!allowed) {
        LogDebug("layer: " + path + ": ignoring xattr " + std::string(n));
        continue;
      }
      out->emplace_back(std::string(n), std::string(static_cast<const char*>(value), size));
    }
    return Ok();
  }

  static struct timespec EntryMtime(archive_entry* entry) {
    struct timespec ts {};
    ts.tv_sec = archive_entry_mtime(entry);
    ts.tv_nsec = archive_entry_mtime_nsec(entry);
    if (ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000L)
      ts.tv_nsec = 0;
    return ts;
  }

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
  Status Clear(int parent, const std::string& name, const std::string& path, bool keep_dir) {
    struct stat st;
    if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT)
        return Ok();
      return Error::FromErrno("stat " + path);
    }
    if (keep_dir && S_ISDIR(st.st_mode))
      return Ok();
    if (S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode))
      cache_.clear();  // a cached parent may have been this dir or resolved through this link
    return RemoveAt(parent, name, path);
  }

  Status Entry(archive* a, archive_entry* entry, const std::string& raw_name) {
    const mode_t type = archive_entry_filetype(entry);
    const char* hardlink = archive_entry_hardlink(entry);
    KILN_ASSIGN_OR_RETURN(auto comps, CleanPath(raw_name, /*allow_empty=*/true));
    if (comps.empty()) {
      // The root itself: a "./" directory entry is fine but its metadata is
      // ignored so the root stays a traversable directory (H08, H17).
      if (type == AE_IFDIR && !hardlink)
        return Ok();
      return Error(Errc::kCorrupt, "entry would replace the root directory");
    }
    const std::string path = Join(comps, comps.size());
    const std::string& name = comps.back();
    if (pool_ && (hardlink || name.starts_with(kWhiteoutPrefix) || Busy(comps)))
      KILN_TRY(DrainPool());
    if (name.starts_with(kWhiteoutPrefix))
      return Whiteout(comps, path);

    KILN_TRY(CheckId(archive_entry_uid(entry), "uid"));
    KILN_TRY(CheckId(archive_entry_gid(entry), "gid"));
    const uid_t uid = static_cast<uid_t>(archive_entry_uid(entry));
    const gid_t gid = static_cast<gid_t>(archive_entry_gid(entry));
    const mode_t perm = archive_entry_perm(entry) & 07777;
    const struct timespec mtime = EntryMtime(entry);

    KILN_ASSIGN_OR_RETURN(UniqueFd parent_fd, ParentDir(comps, comps.size() - 1, /*create=*/true));
    const int parent = parent_fd.get();
    if (opt_.whiteouts == WhiteoutMode::kApply)
      created_.insert(path);

    if (hardlink)
      return Hardlink(parent, name, path, hardlink);

    switch (type) {
      case AE_IFDIR: {
        KILN_TRY(Clear(parent, name, path, /*keep_dir=*/true));
        if (::mkdirat(parent, name.c_str(), 0700) != 0 && errno != EEXIST)
          return Error::FromErrno("mkdir " + path);
        UniqueFd fd(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd)
          return Error::FromErrno("open " + path);
        KILN_TRY(Chown(fd.get(), "", AT_EMPTY_PATH, path, uid, gid));
        KILN_TRY(SetXattrs(fd.get(), entry, path));
        struct stat st;
        if (::fstat(fd.get(), &st) != 0)
          return Error::FromErrno("stat " + path);
        // Mode and mtime last (later entries change the mtime, and a 0500
        // directory must still accept its children), through a re-check of
        // the inode so that a later type flip cannot redirect them (H10).
        dirs_.push_back({path, st.st_dev, st.st_ino, perm, mtime});
        return Ok();
      }
      case AE_IFREG:
        if (pool_ && archive_entry_size(entry) <= kSmallFile)
          return RegularAsync(a, entry, std::move(parent_fd), name, path, raw_name, uid, gid, perm, mtime);
        return Regular(a, entry, parent, name, path, uid, gid, perm, mtime);
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(entry);
        if (!target || !*target)
          return Error(Errc::kCorrupt, "symlink with empty target");
        if (std::strlen(target) > opt_.limits.max_path_bytes)
          return Error(Errc::kCorrupt, "symlink target too long");
        KILN_TRY(Clear(parent, name, path, false));
        if (::symlinkat(target, parent, name.c_str()) != 0)
          return Error::FromErrno("symlink " + path);
        KILN_TRY(Chown(parent, name.c_str(), AT_SYMLINK_NOFOLLOW, path, uid, gid));
        KILN_TRY(SetXattrs(-1, entry, path));
        struct timespec ts[2] = {mtime, mtime};
        (void)::utimensat(parent, name.c_str(), ts, AT_SYMLINK_NOFOLLOW);
        return Ok();
      }
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO: {
        KILN_TRY(Clear(parent, name, path, false));
        dev_t dev = type == AE_IFIFO ? 0 : makedev(archive_entry_rdevmajor(entry), archive_entry_rdevminor(entry));
        if (::mknodat(parent, name.c_str(), type | 0600, dev) != 0) {
          if ((errno == EPERM || errno == EACCES) && type != AE_IFIFO && opt_.skip_unmakeable_devices) {
            LogWarn("layer: skipping device " + path + " (not permitted here)");
            ++stats_->skipped;
            return Ok();
          }
          return Error::FromErrno("mknod " + path);
        }
        KILN_TRY(Chown(parent, name.c_str(), AT_SYMLINK_NOFOLLOW, path, uid, gid));
        KILN_TRY(SetXattrs(-1, entry, path));
        if (::fchmodat(parent, name.c_str(), perm, AT_SYMLINK_NOFOLLOW) != 0 &&
            ((errno != ENOTSUP && errno != EOPNOTSUPP) ||
             ::fchmodat(parent, name.c_str(), perm, 0) != 0))  // just created: not a symlink
          return Error::FromErrno("chmod " + path);
        struct timespec ts[2] = {mtime, mtime};
        (void)::utimensat(parent, name.c_str(), ts, AT_SYMLINK_NOFOLLOW);
        return Ok();
      }
      default:
        LogWarn("layer: skipping " + path + " of unsupported type " + std::to_string(type));
        ++stats_->skipped;
        return Ok();
    }
  }

  Status Regular(archive* a, archive_entry* entry, int parent, const std::string& name, const std::string& path,
                 uid_t uid, gid_t gid, mode_t perm, const struct timespec& mtime) {
    KILN_TRY(Clear(parent, name, path, false));
    UniqueFd fd(::openat(parent, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd)
      return Error::FromErrno("create " + path);
    const void* buf;
    size_t size;
    la_int64_t offset;
    constexpr la_int64_t kWritebackChunk = 8 << 20;
    la_int64_t written_back = 0;  // start_writeback: bytes already handed to the disk
    for (;;) {
      int rc = archive_read_data_block(a, &buf, &size, &offset);
      if (rc == ARCHIVE_EOF)
        break;
      if (rc < ARCHIVE_WARN)
        return ArchiveError(a, "read data");
      const char* p = static_cast<const char*>(buf);
      while (size > 0) {
        ssize_t n = ::pwrite(fd.get(), p, size, offset);
        if (n < 0) {
          if (errno == EINTR)
            continue;
          return Error::FromErrno("write " + path);
        }
        p += n;
        size -= static_cast<size_t>(n);
        offset += n;
      }
      if (opt_.start_writeback && offset - written_back >= kWritebackChunk) {
        (void)::sync_file_range(fd.get(), written_back, offset - written_back, SYNC_FILE_RANGE_WRITE);
        written_back = offset;
      }
    }
    if (opt_.start_writeback && written_back > 0)
      (void)::sync_file_range(fd.get(), written_back, 0, SYNC_FILE_RANGE_WRITE);
    la_int64_t total = archive_entry_size(entry);
    if (total > 0 && ::ftruncate(fd.get(), total) != 0)  // sparse tail
      return Error::FromErrno("truncate " + path);
    KILN_TRY(Chown(fd.get(), "", AT_EMPTY_PATH, path, uid, gid));
    KILN_TRY(SetXattrs(fd.get(), entry, path));
    if (::fchmod(fd.get(), perm) != 0)  // after chown, which clears setuid
      return Error::FromErrno("chmod " + path);
    struct timespec ts[2] = {mtime, mtime};
    if (::futimens(fd.get(), ts) != 0)
      return Error::FromErrno("set times of " + path);
    return Ok();
  }

  // I3: the target is resolved inside the root and must exist there; link()
  // failing is an error, never a copy (H05-H07).
  Status Hardlink(int parent, const std::string& name, const std::string& path, const char* target_raw) {
    auto tcomps = CleanPath(target_raw, /*allow_empty=*/false);
    if (!tcomps)
      return std::move(tcomps).error().WithContext(std::string("hardlink target \"") + target_raw + "\"");
    const std::string tpath = Join(*tcomps, tcomps->size());
    const std::string& tname = tcomps->back();
    auto tdir = ParentDir(*tcomps, tcomps->size() - 1, /*create=*/false);
    if (!tdir)
      return Error(Errc::kCorrupt, "hardlink target \"" + tpath + "\" not found in the layer root");
    struct stat tst;
    if (::fstatat(tdir->get(), tname.c_str(), &tst, AT_SYMLINK_NOFOLLOW) != 0)
      return Error(Errc::kCorrupt, "hardlink target \"" + tpath + "\" not found in the layer root");
    if (S_ISDIR(tst.st_mode))
      return Error(Errc::kCorrupt, "hardlink target \"" + tpath + "\" is a directory");
    struct stat dst;
    if (::fstatat(parent, name.c_str(), &dst, AT_SYMLINK_NOFOLLOW) == 0 && dst.st_dev == tst.st_dev &&
        dst.st_ino == tst.st_ino)
      return Ok();  // already that inode
    KILN_TRY(Clear(parent, name, path, false));
    struct stat again;
    if (::fstatat(tdir->get(), tname.c_str(), &again, AT_SYMLINK_NOFOLLOW) != 0 || again.st_ino != tst.st_ino ||
        again.st_dev != tst.st_dev)
      return Error(Errc::kCorrupt, "hardlink target \"" + tpath + "\" was removed by its own link entry");
    if (::linkat(tdir->get(), tname.c_str(), parent, name.c_str(), 0) != 0)
      return Error::FromErrno("link " + path + " to " + tpath);
    return Ok();
  }

  Status Whiteout(const std::vector<std::string>& comps, const std::string& path) {
    const std::string& name = comps.back();
    ++stats_->whiteouts;
    KILN_ASSIGN_OR_RETURN(UniqueFd parent_fd, ParentDir(comps, comps.size() - 1, /*create=*/true));
    const int parent = parent_fd.get();
    const std::string parent_path = Join(comps, comps.size() - 1);
    cache_.clear();
    if (name == kOpaqueMarker)
      return Opaque(parent, parent_path);
    std::string target = name.substr(kWhiteoutPrefix.size());
    if (target.empty() || target == "." || target == ".." || target.find('/') != std::string::npos)
      return Error(Errc::kCorrupt, "invalid whiteout \"" + path + "\"");
    if (target.starts_with(kWhiteoutPrefix)) {
      LogWarn("layer: ignoring reserved whiteout name " + path);
      return Ok();
    }
    const std::string target_path = parent_path.empty() ? target : parent_path + "/" + target;
    KeepMtime keep(parent);
    if (opt_.whiteouts == WhiteoutMode::kApply)
      return RemoveAt(parent, target, target_path);  // never follows `target`
    KILN_TRY(RemoveAt(parent, target, target_path));
    KILN_TRY(ProbeOnce());
    if (format_ == WhiteoutFormat::kCharDevice) {
      if (::mknodat(parent, target.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0)
        return Error::FromErrno("create whiteout " + target_path);
      return Ok();
    }
    UniqueFd fd(::openat(parent, target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0));
    if (!fd)
      return Error::FromErrno("create whiteout " + target_path);
    std::string wh = xattr_prefix_ + "whiteout";
    if (::fsetxattr(fd.get(), wh.c_str(), "", 0, 0) != 0)
      return Error::FromErrno("set " + wh + " on " + target_path);
    UniqueFd dir(::openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    std::string opq = xattr_prefix_ + "opaque";
    char cur[4] = {};
    if (dir && ::fgetxattr(dir.get(), opq.c_str(), cur, sizeof cur) == 1 && cur[0] == 'y')
      return Ok();
    if (!dir || ::fsetxattr(dir.get(), opq.c_str(), "x", 1, 0) != 0)
      return Error::FromErrno("set " + opq + " on " + (parent_path.empty() ? "." : parent_path));
    return Ok();
  }

  Status Opaque(int parent, const std::string& parent_path) {
    UniqueFd dir(::openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir)
      return Error::FromErrno("open " + parent_path);
    KeepMtime keep(parent);
    if (opt_.whiteouts == WhiteoutMode::kOverlay) {
      std::string opq = xattr_prefix_ + "opaque";
      if (::fsetxattr(dir.get(), opq.c_str(), "y", 1, 0) != 0)
        return Error::FromErrno("set " + opq + " on " + (parent_path.empty() ? "." : parent_path));
      return Ok();
    }
    // Empty the directory of what lower layers put there; entries of this
    // layer (which may come before the marker) stay.
    std::vector<std::string> children;
    {
      UniqueFd dup(::fcntl(dir.get(), F_DUPFD_CLOEXEC, 0));
      DIR* d = ::fdopendir(dup.get());
      if (!d)
        return Error::FromErrno("opendir " + parent_path);
      (void)dup.release();
      while (dirent* de = ::readdir(d)) {
        std::string_view n = de->d_name;
        if (n != "." && n != "..")
          children.emplace_back(n);
      }
      ::closedir(d);
    }
    for (const auto& c : children) {
      std::string cpath = parent_path.empty() ? c : parent_path + "/" + c;
      if (created_.count(cpath))
        continue;
      KILN_TRY(RemoveAt(dir.get(), c, cpath));
    }
    return Ok();
  }

  Status ProbeOnce() {
    if (probed_)
      return Ok();
    probed_ = true;
    format_ = opt_.whiteout_format ? *opt_.whiteout_format : ProbeWhiteoutFormatFd(root_.get(), xattr_prefix_);
    if (format_ == WhiteoutFormat::kNone)
      return Error(Errc::kUnsupported,
                   "cannot create overlay whiteouts here (mknod 0/0 not permitted and no xattr whiteouts before "
                   "Linux 6.7); unpack the layer chain into one directory instead (whiteouts applied)");
    return Ok();
  }

 public:
  static WhiteoutFormat ProbeWhiteoutFormatFd(int dirfd, const std::string& prefix = "") {
    std::string name = ".kiln-wh-probe-" + std::to_string(::getpid());
    (void)::unlinkat(dirfd, name.c_str(), 0);
    if (::mknodat(dirfd, name.c_str(), S_IFCHR | 0, makedev(0, 0)) == 0) {
      (void)::unlinkat(dirfd, name.c_str(), 0);
      return WhiteoutFormat::kCharDevice;
    }
    if (!KernelAtLeast(6, 7))
      return WhiteoutFormat::kNone;
    UniqueFd fd(::openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd)
      return WhiteoutFormat::kNone;
    std::string wh = (prefix.empty() ? std::string("user.overlay.") : prefix) + "whiteout";
    bool ok = ::fsetxattr(fd.get(), wh.c_str(), "", 0, 0) == 0;
    fd.reset();
    (void)::unlinkat(dirfd, name.c_str(), 0);
    return ok ? WhiteoutFormat::kXattr : WhiteoutFormat::kNone;
  }

 private:
  Status ApplyDirFixups() {
    // Deepest first, so that setting a parent's mtime is the last change.
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      UniqueFd fd(OpenAt2(root_.get(), it->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, kInRoot));
      if (!fd)
        continue;  // replaced by a non-directory later in the layer
      struct stat st;
      if (::fstat(fd.get(), &st) != 0 || st.st_dev != it->dev || st.st_ino != it->ino)
        continue;  // not the directory this entry made: leave it alone
      if (::fchmod(fd.get(), it->mode) != 0)
        return Error::FromErrno("chmod " + it->path);
      struct timespec ts[2] = {it->mtime, it->mtime};
      if (::futimens(fd.get(), ts) != 0)
        return Error::FromErrno("set times of " + it->path);
    }
    return Ok();
  }

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

}  // namespace

OverlayXattrs OverlayXattrsForMount() {
  // PROC_USER_INIT_INO (include/linux/proc_ns.h): the initial user
  // namespace's inode. A namespace made by root with the identity map
  // "0 0 4294967295" (kiln's, for real root) looks like the initial one in
  // uid_map but cannot write trusted.* xattrs; the inode tells them apart.
  constexpr ino_t kInitialUserNsInode = 0xEFFFFFFDU;
  struct stat st;
  bool initial = ::stat("/proc/self/ns/user", &st) == 0 && st.st_ino == kInitialUserNsInode;
  return ::geteuid() == 0 && initial ? OverlayXattrs::kTrusted : OverlayXattrs::kUser;
}

int64_t DefaultMaxExpansionRatio() {
  static const int64_t ratio = [] {
    const char* v = std::getenv("KILN_MAX_EXPANSION_RATIO");
    if (!v || !*v)
      return int64_t(1000);
    char* end = nullptr;
    long long n = std::strtoll(v, &end, 10);
    if (*end || n < 0) {
      LogWarn(std::string("KILN_MAX_EXPANSION_RATIO=") + v + " is not a non-negative integer: using 1000");
      return int64_t(1000);
    }
    return static_cast<int64_t>(n);
  }();
  return ratio;
}

Expected<UnpackStats> HashLayer(int in_fd, const UnpackLimits& limits) {
  UnpackStats stats;
  internal::HashingFdSource raw(in_fd);
  KILN_ASSIGN_OR_RETURN(std::string_view head, raw.Peek(8));
  stats.compression = SniffCompression(head);
  std::unique_ptr<ByteSource> decompressor;
  std::unique_ptr<ByteSource> guard;
  ByteSource* source = nullptr;
  RawSource plain(&raw);
  if (stats.compression == Compression::kNone) {
    source = &plain;
  } else {
    KILN_ASSIGN_OR_RETURN(decompressor, internal::MakeDecompressor(stats.compression, &raw));
    guard = std::make_unique<RatioGuard>(decompressor.get(), &raw, limits);
    source = guard.get();
  }
  CountingSource counted(source, limits.max_uncompressed_bytes);
  for (;;) {
    KILN_ASSIGN_OR_RETURN(std::string_view chunk, counted.Read());
    if (chunk.empty())
      break;
  }
  for (;;) {
    KILN_ASSIGN_OR_RETURN(std::string_view chunk, raw.Read());
    if (chunk.empty())
      break;
  }
  stats.uncompressed_size = counted.bytes();
  stats.diff_id = counted.TakeDigest();
  stats.size = raw.bytes();
  stats.digest = raw.TakeDigest();
  return stats;
}

WhiteoutFormat ProbeWhiteoutFormat(const std::string& dir, OverlayXattrs xattrs) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd)
    return WhiteoutFormat::kNone;
  return Extractor::ProbeWhiteoutFormatFd(fd.get(), OverlayXattrPrefix(xattrs));
}

Expected<UnpackStats> UnpackLayer(int in_fd, const std::string& root_dir, const UnpackOptions& options) {
  auto context = [&](Error e) { return std::move(e).WithContext("unpack layer into " + root_dir); };
  UniqueFd root(::open(root_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root)
    return context(Error::FromErrno("open " + root_dir));

  if (options.raw_verified && options.expect_digest)
    return context(Error(Errc::kInvalidInput, "unpack: raw_verified and expect_digest are exclusive"));
  internal::Utf8LocaleScope utf8;
  UnpackStats stats;
  internal::HashingFdSource raw(in_fd, /*hash=*/!options.raw_verified);
  auto head = raw.Peek(8);
  if (!head)
    return context(std::move(head).error());
  stats.compression = SniffCompression(*head);
  std::unique_ptr<ByteSource> decompressor;
  std::unique_ptr<ByteSource> guard;
  std::unique_ptr<ByteSource> source;  // declared after: destroyed first
  if (stats.compression == Compression::kNone) {
    source = std::make_unique<RawSource>(&raw);
  } else {
    auto dec = internal::MakeDecompressor(stats.compression, &raw);
    if (!dec)
      return context(std::move(dec).error());
    decompressor = std::move(*dec);
    guard = std::make_unique<RatioGuard>(decompressor.get(), &raw, options.limits);
    // Decompress on a second core while this one writes files.
    source = std::make_unique<internal::PrefetchSource>(guard.get());
  }
  CountingSource counted(source.get(), options.limits.max_uncompressed_bytes);

  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), &archive_read_free);
  if (!a)
    return context(Error(Errc::kIo, "libarchive: out of memory"));
  archive_read_support_format_tar(a.get());
  archive_read_support_format_empty(a.get());
  Extractor extractor(options, std::move(root));
  Status status;
  if (archive_read_open(a.get(), &counted, nullptr, &CountingSource::ReadCb, nullptr) != ARCHIVE_OK) {
    const char* msg = archive_error_string(a.get());
    status = Error(Errc::kCorrupt, std::string("not a tar archive: ") + (msg ? msg : "?"));
  } else {
    status = extractor.Run(a.get(), &stats);
  }
  if (!status) {
    if (counted.error())
      return context(*counted.error());
    return context(std::move(status).error());
  }
  // Drain what follows the end-of-archive marker so that both digests cover
  // every byte (I4).
  for (;;) {
    auto chunk = counted.Read();
    if (!chunk)
      return context(std::move(chunk).error());
    if (chunk->empty())
      break;
  }
  for (;;) {
    auto chunk = raw.Read();
    if (!chunk)
      return context(std::move(chunk).error());
    if (chunk->empty())
      break;
  }
  stats.uncompressed_size = counted.bytes();
  stats.diff_id = counted.TakeDigest();
  stats.size = raw.bytes();
  if (options.raw_verified) {
    if (auto verified = options.raw_verified(); !verified)
      return context(std::move(verified).error());
  } else {
    stats.digest = raw.TakeDigest();
  }
  if (options.expect_diff_id && *options.expect_diff_id != stats.diff_id)
    return context(Error(Errc::kCorrupt, "diff_id mismatch: expected " + options.expect_diff_id->str() + ", got " +
                                             stats.diff_id.str()));
  if (options.expect_digest && *options.expect_digest != stats.digest)
    return context(Error(Errc::kCorrupt,
                         "digest mismatch: expected " + options.expect_digest->str() + ", got " + stats.digest.str()));
  return stats;
}

}  // namespace kiln::layer
