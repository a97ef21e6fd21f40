// The layer extractor's file-system side (docs/security.md I1, I3): paths
// resolved inside the root through directory fds, ownership, allowlisted
// xattrs, removal without following links, and the writer threads.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "layer/extract.h"

namespace kiln::layer::internal {

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

Status RemoveAt(int parent, const std::string& name, const std::string& display, int depth) {
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

// --- writer threads ---

bool WriterPool::Submit(FileJob job) {
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

Status WriterPool::Drain() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [&] { return outstanding_ == 0; });
  done_.clear();
  if (error_)
    return *error_;
  return Ok();
}

std::vector<std::string> WriterPool::TakeDone() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(done_, {});
}

void WriterPool::Loop() {
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

// --- Extractor: paths, ownership, xattrs ---

Expected<std::vector<std::string>> Extractor::CleanPath(std::string_view raw, bool allow_empty) {
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

Expected<UniqueFd> Extractor::ParentDir(const std::vector<std::string>& comps, size_t n, bool create) {
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

Expected<UniqueFd> Extractor::MakeDirsInRoot(const std::vector<std::string>& comps, size_t n) {
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

Status Extractor::CheckId(int64_t id, const char* what) {
  if (id < 0 || id >= 4294967295LL)
    return Error(Errc::kCorrupt, std::string(what) + " " + std::to_string(id) + " out of range");
  return Ok();
}

Status Extractor::Chown(int fd, const char* name, int flags, const std::string& path, uid_t uid, gid_t gid) {
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

Status Extractor::SetXattrs(int fd, archive_entry* entry, const std::string& path) {
  std::vector<std::pair<std::string, std::string>> xattrs;
  KILN_TRY(CollectXattrs(entry, path, &xattrs));
  if (fd >= 0)  // symlinks and special files: not applied
    ApplyXattrs(fd, xattrs, path);
  return Ok();
}

void Extractor::ApplyXattrs(int fd, const std::vector<std::pair<std::string, std::string>>& xattrs,
                            const std::string& path) {
  for (const auto& [name, value] : xattrs)
    if (::fsetxattr(fd, name.c_str(), value.data(), value.size(), 0) != 0)
      LogWarn("layer: " + path + ": cannot set xattr " + name + ": " + std::strerror(errno));
}

Status Extractor::CollectXattrs(archive_entry* entry, const std::string& path,
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

struct timespec Extractor::EntryMtime(archive_entry* entry) {
  struct timespec ts {};
  ts.tv_sec = archive_entry_mtime(entry);
  ts.tv_nsec = archive_entry_mtime_nsec(entry);
  if (ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000L)
    ts.tv_nsec = 0;
  return ts;
}

Status Extractor::Clear(int parent, const std::string& name, const std::string& path, bool keep_dir) {
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

}  // namespace kiln::layer::internal
