// The layer extractor: one tar entry at a time (regular files, possibly on
// writer threads, links, devices, whiteouts and opaque directories), then
// the directories' metadata (docs/security.md I1, I3, I5).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "layer/extract.h"

namespace kiln::layer::internal {

// on_block(data, size, offset) for each data block of the current entry.
template <typename F>
Status Extractor::ReadBlocks(archive* a, F on_block) {
  const void* buf;
  size_t size;
  la_int64_t offset;
  for (;;) {
    int rc = archive_read_data_block(a, &buf, &size, &offset);
    if (rc == ARCHIVE_EOF)
      return Ok();
    if (rc < ARCHIVE_WARN)
      return ArchiveError(a, "read data");
    KILN_TRY(on_block(static_cast<const char*>(buf), size, offset));
  }
}

Status Extractor::Run(archive* a, UnpackStats* stats) {
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

Error Extractor::ArchiveError(archive* a, const std::string& what) {
  const char* msg = archive_error_string(a);
  return Error(Errc::kCorrupt, what + ": " + (msg ? msg : "corrupt tar"));
}

Status Extractor::DrainPool() {
  if (!pool_)
    return Ok();
  pending_files_.clear();
  pending_dirs_.clear();
  return pool_->Drain();
}

void Extractor::Forget(const std::string& path) {
  pending_files_.erase(path);
  for (size_t slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    auto it = pending_dirs_.find(path.substr(0, slash));
    if (it != pending_dirs_.end() && --it->second == 0)
      pending_dirs_.erase(it);
  }
}

bool Extractor::Busy(const std::vector<std::string>& comps) {
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

void Extractor::AddPending(const std::string& path) {
  pending_files_.insert(path);
  for (size_t slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1))
    ++pending_dirs_[path.substr(0, slash)];
}

Status Extractor::WriteJob(FileJob& job) {
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

Status Extractor::RegularAsync(archive* a, archive_entry* entry, UniqueFd parent, const std::string& name,
                               const std::string& path, const std::string& raw_name, uid_t uid, gid_t gid, mode_t perm,
                               const struct timespec& mtime) {
  KILN_TRY(Clear(parent.get(), name, path, false));
  FileJob job;
  const la_int64_t total = archive_entry_size(entry);
  job.data.assign(static_cast<size_t>(total), '\0');
  KILN_TRY(ReadBlocks(a, [&](const char* p, size_t size, la_int64_t offset) -> Status {
    // Data past the entry's size is cut off (the sequential path
    // truncates the file to the size).
    if (offset >= 0 && offset < total)
      std::memcpy(job.data.data() + offset, p, std::min(size, static_cast<size_t>(total - offset)));
    return Ok();
  }));
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

Status Extractor::Entry(archive* a, archive_entry* entry, const std::string& raw_name) {
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

Status Extractor::Regular(archive* a, archive_entry* entry, int parent, const std::string& name,
                          const std::string& path, uid_t uid, gid_t gid, mode_t perm, const struct timespec& mtime) {
  KILN_TRY(Clear(parent, name, path, false));
  UniqueFd fd(::openat(parent, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd)
    return Error::FromErrno("create " + path);
  constexpr la_int64_t kWritebackChunk = 8 << 20;
  la_int64_t written_back = 0;  // start_writeback: bytes already handed to the disk
  KILN_TRY(ReadBlocks(a, [&](const char* p, size_t size, la_int64_t offset) -> Status {
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
    return Ok();
  }));
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

Status Extractor::Hardlink(int parent, const std::string& name, const std::string& path, const char* target_raw) {
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

Status Extractor::Whiteout(const std::vector<std::string>& comps, const std::string& path) {
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

Status Extractor::Opaque(int parent, const std::string& parent_path) {
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
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> children, ListDirSortedAt(dir.get(), parent_path));
  for (const auto& c : children) {
    std::string cpath = parent_path.empty() ? c : parent_path + "/" + c;
    if (created_.count(cpath))
      continue;
    KILN_TRY(RemoveAt(dir.get(), c, cpath));
  }
  return Ok();
}

Status Extractor::ProbeOnce() {
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

WhiteoutFormat Extractor::ProbeWhiteoutFormatFd(int dirfd, const std::string& prefix) {
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

Status Extractor::ApplyDirFixups() {
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

}  // namespace kiln::layer::internal
