// PackDirectory: a directory tree or overlay upperdir -> deterministic tar
// layer, compressed and hashed in one streaming pass.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <archive.h>
#include <archive_entry.h>

#include "kiln/cancel.h"
#include "kiln/fs.h"
#include "kiln/layer.h"
#include "kiln/log.h"
#include "layer/stream.h"

namespace kiln::layer {

namespace {

using internal::ByteSink;

using ArchivePtr = std::unique_ptr<archive, decltype(&archive_write_free)>;
using EntryPtr = std::unique_ptr<archive_entry, decltype(&archive_entry_free)>;

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

struct Xattr {
  std::string name;
  std::string value;
};

bool IsOverlayXattr(std::string_view name) {
  return name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.");
}

// Reads all xattrs of an open fd, sorted by name. ENOTSUP is "none".
Expected<std::vector<Xattr>> ReadXattrs(int fd, const std::string& path) {
  std::vector<Xattr> out;
  std::string names;
  for (int attempt = 0; attempt < 4; ++attempt) {
    ssize_t n = ::flistxattr(fd, nullptr, 0);
    if (n < 0) {
      if (errno == ENOTSUP || errno == EBADF)
        return out;
      return Error::FromErrno("list xattrs of " + path);
    }
    if (n == 0)
      return out;
    names.resize(static_cast<size_t>(n));
    n = ::flistxattr(fd, names.data(), names.size());
    if (n < 0 && errno == ERANGE)
      continue;
    if (n < 0)
      return Error::FromErrno("list xattrs of " + path);
    names.resize(static_cast<size_t>(n));
    break;
  }
  for (size_t pos = 0; pos < names.size();) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    if (name.empty())
      continue;
    std::string value;
    for (int attempt = 0; attempt < 4; ++attempt) {
      ssize_t n = ::fgetxattr(fd, name.c_str(), nullptr, 0);
      if (n < 0)
        break;
      value.resize(static_cast<size_t>(n));
      n = ::fgetxattr(fd, name.c_str(), value.data(), value.size());
      if (n < 0 && errno == ERANGE)
        continue;
      if (n >= 0)
        value.resize(static_cast<size_t>(n));
      break;
    }
    out.push_back({std::move(name), std::move(value)});
  }
  std::sort(out.begin(), out.end(), [](const Xattr& a, const Xattr& b) { return a.name < b.name; });
  return out;
}

const Xattr* FindOverlayXattr(const std::vector<Xattr>& xattrs, std::string_view suffix) {
  for (const auto& x : xattrs) {
    if ((x.name.starts_with("trusted.overlay.") && std::string_view(x.name).substr(16) == suffix) ||
        (x.name.starts_with("user.overlay.") && std::string_view(x.name).substr(13) == suffix))
      return &x;
  }
  return nullptr;
}

class Packer : public internal::TarLayerWriter {
 public:
  Packer(const PackOptions& options, ByteSink* sink)
      : options_(options), sink_(sink), a_(archive_write_new(), &archive_write_free), buf_(1 << 20) {}
  // Unless Close() succeeded, archive_write_free must not flush the end of
  // the archive through WriteCb into members destroyed before a_ (diff_):
  // after an ENOSPC from the sink that crashed kiln build (SIGSEGV).
  ~Packer() {
    if (a_ && !closed_)
      archive_write_fail(a_.get());
  }

  Status Open() {
    if (!a_)
      return Error(Errc::kIo, "libarchive: out of memory");
    // pax_restricted: plain ustar headers unless a field does not fit (long
    // names, big ids, xattrs), then a PAX header, as Docker/Buildah do.
    if (archive_write_set_format_pax_restricted(a_.get()) != ARCHIVE_OK ||
        archive_write_set_options(a_.get(), "xattrheader=SCHILY") < ARCHIVE_WARN ||
        archive_write_set_bytes_per_block(a_.get(), 0) != ARCHIVE_OK)
      return ArchiveError("set up tar writer");
    if (archive_write_open2(a_.get(), this, nullptr, &Packer::WriteCb, nullptr, nullptr) != ARCHIVE_OK)
      return ArchiveError("open tar writer");
    return Ok();
  }

  Status Close() {
    if (archive_write_close(a_.get()) != ARCHIVE_OK)
      return ArchiveError("finish tar");
    closed_ = true;
    return Ok();
  }

  Status CopyEntry(archive* in, archive_entry* e) override {
    std::string path = archive_entry_pathname(e) ? archive_entry_pathname(e) : "?";
    KILN_TRY(WriteHeader(e, path));
    const void* data;
    size_t len;
    la_int64_t offset;
    int r;
    while ((r = archive_read_data_block(in, &data, &len, &offset)) == ARCHIVE_OK)
      if (archive_write_data(a_.get(), data, len) < 0)
        return ArchiveError("write " + path);
    if (r != ARCHIVE_EOF)
      return Error(Errc::kCorrupt, "read " + path + ": " +
                                       (archive_error_string(in) ? archive_error_string(in) : "unreadable"));
    return Ok();
  }

  Status OpaqueMarker(const std::string& dir) override {
    EntryPtr e(archive_entry_new(), &archive_entry_free);
    std::string path = dir + "/.wh..wh..opq";
    archive_entry_copy_pathname(e.get(), path.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0);
    archive_entry_set_size(e.get(), 0);
    return WriteHeader(e.get(), path);
  }

  Status WalkDir(int dirfd, const std::string& prefix, int depth) {
    if (depth > 4096)
      return Error(Errc::kInvalidInput, "directory tree too deep at " + prefix);
    std::vector<std::string> names;
    {
      int dup_fd = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
      if (dup_fd < 0)
        return Error::FromErrno("dup");
      DIR* d = ::fdopendir(dup_fd);
      if (!d) {
        ::close(dup_fd);
        return Error::FromErrno("opendir " + Display(prefix));
      }
      errno = 0;
      while (dirent* de = ::readdir(d)) {
        std::string_view n = de->d_name;
        if (n != "." && n != "..")
          names.emplace_back(n);
      }
      int err = errno;
      ::closedir(d);
      if (err != 0)
        return Error::FromErrno("readdir " + Display(prefix), err);
    }
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      KILN_TRY(CheckCancelled());  // SIGINT/SIGTERM (kiln/cancel.h): the blob is not written
      KILN_TRY(AddOne(dirfd, prefix, name, depth));
    }
    return Ok();
  }

  int64_t entries() const { return entries_; }
  int64_t bytes() const { return bytes_; }
  Digest TakeDiffId() { return diff_.Finish(); }

 private:
  static std::string Display(const std::string& prefix) { return prefix.empty() ? "." : prefix; }

  Error ArchiveError(const std::string& what) {
    if (cb_error_)
      return *cb_error_;
    const char* msg = archive_error_string(a_.get());
    return Error(Errc::kIo, what + ": " + (msg ? msg : "libarchive error"));
  }

  static la_ssize_t WriteCb(archive* /*a*/, void* self_v, const void* data, size_t len) {
    auto* self = static_cast<Packer*>(self_v);
    self->diff_.Update(data, len);
    self->bytes_ += static_cast<int64_t>(len);
    if (auto s = self->sink_->Write(data, len); !s) {
      self->cb_error_ = std::move(s).error();
      return -1;
    }
    return static_cast<la_ssize_t>(len);
  }

  int64_t Mtime(const struct stat& st) const {
    int64_t t = st.st_mtim.tv_sec;
    if (options_.clamp_mtime && t > *options_.clamp_mtime)
      t = *options_.clamp_mtime;
    return t;
  }

  EntryPtr NewEntry(const std::string& path, const struct stat& st) {
    EntryPtr e(archive_entry_new(), &archive_entry_free);
    archive_entry_copy_pathname(e.get(), path.c_str());
    archive_entry_set_uid(e.get(), st.st_uid);
    archive_entry_set_gid(e.get(), st.st_gid);
    archive_entry_set_perm(e.get(), st.st_mode & 07777);
    archive_entry_set_mtime(e.get(), Mtime(st), 0);
    return e;
  }

  Status WriteHeader(archive_entry* e, const std::string& path) {
    int rc = archive_write_header(a_.get(), e);
    if (rc < ARCHIVE_WARN)
      return ArchiveError("write tar header for " + path);
    ++entries_;
    return Ok();
  }

  // An OCI whiteout entry: empty regular file, root-owned, mode 0.
  Status WriteWhiteout(const std::string& path, const struct stat& st) {
    EntryPtr e(archive_entry_new(), &archive_entry_free);
    archive_entry_copy_pathname(e.get(), path.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0);
    archive_entry_set_size(e.get(), 0);
    archive_entry_set_mtime(e.get(), Mtime(st), 0);
    return WriteHeader(e.get(), path);
  }

  void AddXattrs(archive_entry* e, const std::vector<Xattr>& xattrs) {
    for (const auto& x : xattrs) {
      // Overlay bookkeeping is private to the mount; SELinux labels and
      // ACLs (system.*) are host policy, not image content.
      if (IsOverlayXattr(x.name) || x.name == "security.selinux" || x.name.starts_with("system."))
        continue;
      archive_entry_xattr_add_entry(e, x.name.c_str(), x.value.data(), x.value.size());
    }
  }

  Status AddOne(int dirfd, const std::string& prefix, const std::string& name, int depth) {
    const std::string path = prefix + name;
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT)
        return Ok();  // vanished while we walked
      return Error::FromErrno("stat " + path);
    }
    const bool overlay = options_.from_overlay_upper;
    if (S_ISCHR(st.st_mode) && overlay && st.st_rdev == makedev(0, 0))
      return WriteWhiteout(prefix + std::string(kWhiteoutPrefix) + name, st);
    if (S_ISSOCK(st.st_mode)) {
      LogWarn("layer: skipping socket " + path);
      return Ok();
    }
    if (S_ISDIR(st.st_mode)) {
      KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenFileAt(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
      KILN_ASSIGN_OR_RETURN(auto xattrs, ReadXattrs(fd.get(), path));
      EntryPtr e = NewEntry(path + "/", st);
      archive_entry_set_filetype(e.get(), AE_IFDIR);
      AddXattrs(e.get(), xattrs);
      KILN_TRY(WriteHeader(e.get(), path));
      if (overlay) {
        const Xattr* opq = FindOverlayXattr(xattrs, "opaque");
        if (opq && opq->value == "y")
          KILN_TRY(WriteWhiteout(path + "/" + std::string(kOpaqueMarker), st));
      }
      return WalkDir(fd.get(), path + "/", depth + 1);
    }
    // Hardlinks inside the layer: the first path seen (sorted walk) carries
    // the data, later ones link to it.
    if (st.st_nlink > 1) {
      auto key = std::make_pair(st.st_dev, st.st_ino);
      auto it = links_.find(key);
      if (it != links_.end()) {
        EntryPtr e = NewEntry(path, st);
        archive_entry_set_filetype(e.get(), st.st_mode & S_IFMT);
        archive_entry_copy_hardlink(e.get(), it->second.c_str());
        archive_entry_set_size(e.get(), 0);
        return WriteHeader(e.get(), path);
      }
    }
    if (S_ISREG(st.st_mode))
      KILN_TRY(AddRegular(dirfd, path, name, st));
    else if (S_ISLNK(st.st_mode))
      KILN_TRY(AddSymlink(dirfd, path, name, st));
    else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode))
      KILN_TRY(AddSpecial(path, st));
    else {
      LogWarn("layer: skipping " + path + " of unknown type");
      return Ok();
    }
    if (st.st_nlink > 1)
      links_.emplace(std::make_pair(st.st_dev, st.st_ino), path);
    return Ok();
  }

  Status AddRegular(int dirfd, const std::string& path, const std::string& name, struct stat& st) {
    // O_NONBLOCK: if the file was swapped for a FIFO since the stat, open
    // must not hang; the fstat below then sees the change.
    KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenFileAt(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK));
    struct stat now;
    if (::fstat(fd.get(), &now) != 0)
      return Error::FromErrno("stat " + path);
    if (!S_ISREG(now.st_mode) || now.st_ino != st.st_ino)
      return Error(Errc::kIo, path + " changed while being packed");
    st.st_size = now.st_size;
    KILN_ASSIGN_OR_RETURN(auto xattrs, ReadXattrs(fd.get(), path));
    if (options_.from_overlay_upper && st.st_size == 0 && FindOverlayXattr(xattrs, "whiteout")) {
      std::string prefix = DirName(path) == "." ? "" : DirName(path) + "/";
      return WriteWhiteout(prefix + std::string(kWhiteoutPrefix) + name, st);
    }
    EntryPtr e = NewEntry(path, st);
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_size(e.get(), st.st_size);  // before the sparse map, which libarchive checks against it
    // A file with holes (fewer blocks than its size needs) is stored as a
    // PAX sparse entry (GNU sparse 1.0, which Go's archive/tar, GNU tar and
    // libarchive read): only its data extents are read and written, so the
    // work and the layer follow the data, not the apparent size.
    KILN_ASSIGN_OR_RETURN(std::vector<Extent> extents, DataExtents(fd.get(), path, st));
    const bool sparse = IsSparseMap(extents, st.st_size);
    if (sparse) {
      for (const auto& x : extents)
        archive_entry_sparse_add_entry(e.get(), x.offset, x.length);
      if (extents.empty() || extents.back().offset + extents.back().length < st.st_size)
        archive_entry_sparse_add_entry(e.get(), st.st_size, 0);  // the map reaches the end (a trailing hole)
    }
    AddXattrs(e.get(), xattrs);
    KILN_TRY(WriteHeader(e.get(), path));
    if (!sparse)
      extents = {{0, st.st_size}};
    // libarchive writes the sparse map with the first data call: make one
    // even for a file that is all hole (no extent follows).
    if (sparse && archive_write_data(a_.get(), buf_.data(), 0) < 0)
      return ArchiveError("write " + path);
    // Exactly st_size bytes: a file that grows is cut, one that shrinks is
    // padded with zeros (libarchive pads at finish_entry), with a warning.
    int64_t pos = 0;
    for (const auto& x : extents) {
      // The hole before this extent: libarchive skips hole bytes without
      // reading them, so the buffer's content does not matter.
      while (pos < x.offset) {
        size_t n = static_cast<size_t>(std::min<int64_t>(x.offset - pos, int64_t(buf_.size())));
        if (archive_write_data(a_.get(), buf_.data(), n) < 0)
          return ArchiveError("write " + path);
        pos += static_cast<int64_t>(n);
      }
      int64_t left = x.length;
      while (left > 0) {
        ssize_t n = ::pread(fd.get(), buf_.data(), static_cast<size_t>(std::min<int64_t>(left, int64_t(buf_.size()))),
                            pos);
        if (n < 0) {
          if (errno == EINTR)
            continue;
          return Error::FromErrno("read " + path);
        }
        if (n == 0) {
          LogWarn("layer: " + path + " shrank while being packed");
          break;
        }
        la_ssize_t w = archive_write_data(a_.get(), buf_.data(), static_cast<size_t>(n));
        if (w < 0)
          return ArchiveError("write " + path);
        left -= n;
        pos += n;
      }
      if (left > 0)
        break;
    }
    if (archive_write_finish_entry(a_.get()) < ARCHIVE_WARN)
      return ArchiveError("write " + path);
    return Ok();
  }

  struct Extent {
    int64_t offset = 0;
    int64_t length = 0;
  };

  /// The data extents of a file that has fewer blocks allocated than its
  /// size needs (SEEK_DATA/SEEK_HOLE), in order; empty for a dense file or
  /// when the file system cannot tell. At most kMaxExtents: a file more
  /// fragmented than that is packed dense (a huge sparse map is a cost of
  /// its own for every reader, docs/security.md H15).
  Expected<std::vector<Extent>> DataExtents(int fd, const std::string& path, const struct stat& st) {
    constexpr size_t kMaxExtents = 4096;
    std::vector<Extent> out;
    if (st.st_size == 0 || st.st_blocks * 512 >= st.st_size)
      return out;
    int64_t pos = 0;
    while (pos < st.st_size) {
      off_t data = ::lseek(fd, pos, SEEK_DATA);
      if (data < 0) {
        if (errno == ENXIO)
          break;  // only a hole from pos to the end
        if (errno == EINVAL || errno == ENOTSUP)
          return std::vector<Extent>();  // no hole support: pack dense
        return Error::FromErrno("seek in " + path);
      }
      if (data >= st.st_size)
        break;
      off_t hole = ::lseek(fd, data, SEEK_HOLE);
      if (hole < 0)
        return Error::FromErrno("seek in " + path);
      if (hole > st.st_size)
        hole = st.st_size;
      out.push_back({data, hole - data});
      if (out.size() > kMaxExtents)
        return std::vector<Extent>();
      pos = hole;
    }
    if (out.empty())
      out.push_back({0, 0});  // all hole; {0, 0} marks "sparse, no data"
    return out;
  }

  /// True when the extents leave out part of the file.
  static bool IsSparseMap(std::vector<Extent>& extents, int64_t size) {
    if (extents.empty())
      return false;
    if (extents.size() == 1 && extents[0].offset == 0 && extents[0].length == 0) {
      extents.clear();
      return size > 0;
    }
    int64_t data = 0;
    for (const auto& x : extents)
      data += x.length;
    return data < size;
  }

  Status AddSymlink(int dirfd, const std::string& path, const std::string& name, const struct stat& st) {
    std::string target(PATH_MAX + 1, '\0');
    ssize_t n = ::readlinkat(dirfd, name.c_str(), target.data(), target.size());
    if (n < 0)
      return Error::FromErrno("readlink " + path);
    target.resize(static_cast<size_t>(n));
    EntryPtr e = NewEntry(path, st);
    archive_entry_set_filetype(e.get(), AE_IFLNK);
    archive_entry_set_perm(e.get(), 0777);
    archive_entry_copy_symlink(e.get(), target.c_str());
    return WriteHeader(e.get(), path);
  }

  Status AddSpecial(const std::string& path, const struct stat& st) {
    EntryPtr e = NewEntry(path, st);
    archive_entry_set_filetype(e.get(), st.st_mode & S_IFMT);
    if (!S_ISFIFO(st.st_mode)) {
      archive_entry_set_rdevmajor(e.get(), major(st.st_rdev));
      archive_entry_set_rdevminor(e.get(), minor(st.st_rdev));
    }
    return WriteHeader(e.get(), path);
  }

  const PackOptions& options_;
  ByteSink* sink_;
  ArchivePtr a_;
  std::vector<char> buf_;
  Sha256 diff_;
  int64_t bytes_ = 0;
  int64_t entries_ = 0;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
  std::optional<Error> cb_error_;
  bool closed_ = false;
};

}  // namespace

namespace internal {

Expected<LayerInfo> WriteTarLayer(int out_fd, const PackOptions& options,
                                  const std::function<Status(TarLayerWriter&)>& add_entries) {
  internal::Utf8LocaleScope utf8;
  internal::HashingFdSink out(out_fd);
  KILN_ASSIGN_OR_RETURN(auto compressor,
                        internal::MakeCompressor(options.compression, options.level, options.threads, &out));
  Packer packer(options, compressor.get());
  KILN_TRY(packer.Open());
  KILN_TRY(add_entries(packer));
  KILN_TRY(packer.Close());
  KILN_TRY(compressor->Finish());
  LayerInfo info;
  info.digest = out.TakeDigest();
  info.size = out.bytes();
  info.diff_id = packer.TakeDiffId();
  info.uncompressed_size = packer.bytes();
  info.media_type = LayerMediaType(options.compression);
  info.entries = packer.entries();
  return info;
}

}  // namespace internal

Expected<LayerInfo> PackDirectory(const std::string& dir, int out_fd, const PackOptions& options) {
  KILN_ASSIGN_OR_RETURN(UniqueFd root, OpenFile(dir, O_RDONLY | O_DIRECTORY));
  auto info = internal::WriteTarLayer(out_fd, options, [&](internal::TarLayerWriter& w) {
    return static_cast<Packer&>(w).WalkDir(root.get(), "", 0);
  });
  if (!info)
    return std::move(info).error().WithContext("pack " + dir);
  return info;
}

}  // namespace kiln::layer
