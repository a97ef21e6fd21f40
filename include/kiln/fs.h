// Small filesystem helpers shared by every module. All paths are byte
// strings; nothing here follows a symlink out of a root (use the layer
// module's safe extraction for that).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/error.h"
#include "kiln/unique_fd.h"

namespace kiln {

/// open(2) with O_CLOEXEC added; error names the path.
Expected<UniqueFd> OpenFile(const std::string& path, int flags, mode_t mode = 0644);
Expected<UniqueFd> OpenFileAt(int dirfd, const std::string& path, int flags, mode_t mode = 0644);

/// Reads a whole file. Fails with kInvalidInput if it is larger than max_bytes.
Expected<std::string> ReadFile(const std::string& path, size_t max_bytes = size_t(1) << 30);
Expected<std::string> ReadAll(int fd, size_t max_bytes = size_t(1) << 30);

/// write(2) until done, retrying on EINTR.
Status WriteAll(int fd, const void* data, size_t len);
inline Status WriteAll(int fd, std::string_view data) { return WriteAll(fd, data.data(), data.size()); }

/// Writes `data` to `path` atomically: temp file in the same directory,
/// fsync, rename, fsync of the directory.
Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode = 0644);

/// How the general WriteFileAtomic() writes.
struct AtomicWriteOptions {
  mode_t mode = 0644;
  /// fsync the file before the rename and its directory after it. false:
  /// readers still never see a partial file, but a power loss may lose the
  /// update (run-time state that does not outlive a boot).
  bool durable = true;
  /// Directory for the temporary file (on the file system of `path`);
  /// default: the directory of `path`.
  std::string temp_dir;
  /// Called between the steps with "temp created", "half written",
  /// "synced, before rename" and "renamed, before directory fsync" (the
  /// store's crash test kills the process there); may be empty.
  std::function<void(const char* step)> on_step;
};

/// Replaces `path` atomically: temporary file, write, chmod, (fsync),
/// rename, (fsync of the directory). On failure the temporary file is removed
/// and `path` is unchanged.
Status WriteFileAtomic(const std::string& path, std::string_view data, const AtomicWriteOptions& options);

/// fsync of a directory (after a rename into it).
Status FsyncDir(const std::string& dir);

/// mkdir -p; existing directories are fine.
Status MakeDirs(const std::string& path, mode_t mode = 0755);

/// rm -rf, not crossing mount points; a missing path is fine.
Status RemoveAll(const std::string& path);

/// The names in directory `dir`, without "." and "..", sorted by byte
/// value (a stable order for digests and listings). A missing directory is
/// an empty list; any other failure is kIo naming `dir`.
Expected<std::vector<std::string>> ListDirSorted(const std::string& dir);
/// The same for an open directory `dirfd` (read through a duplicate, so
/// `dirfd`'s offset is unchanged); `what` names it in an error.
Expected<std::vector<std::string>> ListDirSortedAt(int dirfd, std::string_view what);

/// True if the path exists (lstat).
bool PathExists(const std::string& path);

/// Parent directory of a path ("a/b" -> "a", "b" -> ".", "/b" -> "/").
std::string DirName(std::string_view path);
/// Last component of a path.
std::string BaseName(std::string_view path);
/// Joins with exactly one '/'.
std::string JoinPath(std::string_view a, std::string_view b);

/// The user's configuration directory as the XDG spec and podman say:
/// $XDG_CONFIG_HOME, else $HOME/.config, else the passwd entry's home +
/// /.config. (containers/auth.json, kiln/farms.json, containers/systemd.)
std::string UserConfigDir();

/// read(2), retried on EINTR.
ssize_t ReadRetry(int fd, void* buf, size_t len);

/// The components of a slash-separated path, without empty and "."
/// components ("/a//./b/" -> a, b); ".." is kept for the caller to judge.
std::vector<std::string> PathComponents(std::string_view path);

/// Splits what is read from a pipe or socket into lines (the status pipe of
/// the sandbox helper, a RUN step's output): ReadOnce() reads once and hands
/// every complete line, without its '\n', to `on_line`.
class LineReader {
 public:
  using OnLine = std::function<void(std::string_view line)>;
  /// One read(2) of `fd` (EINTR retried). Returns its result: > 0 bytes
  /// read, 0 at end of file (the incomplete last line is then handed over
  /// too), -1 on error (errno set).
  ssize_t ReadOnce(int fd, const OnLine& on_line);

 private:
  std::string buf_;
};

/// Reads `fd` to its end, calling `on_line` for every line (the last one
/// also without a final '\n'). kIo on a read error.
Status ReadLines(int fd, const LineReader::OnLine& on_line);

/// A fresh private directory under $TMPDIR (or /tmp); removed by the
/// destructor unless release()d.
class TempDir {
 public:
  static Expected<TempDir> Create(std::string_view prefix = "kiln-");
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  TempDir& operator=(TempDir&& o) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string release() { return std::exchange(path_, std::string()); }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace kiln
