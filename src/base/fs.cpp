#include "kiln/fs.h"

#include <dirent.h>
#include <pwd.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kiln/keyvalue.h"

namespace kiln {

Expected<UniqueFd> OpenFile(const std::string& path, int flags, mode_t mode) {
  return OpenFileAt(AT_FDCWD, path, flags, mode);
}

Expected<UniqueFd> OpenFileAt(int dirfd, const std::string& path, int flags, mode_t mode) {
  int fd;
  do {
    fd = ::openat(dirfd, path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return Error::FromErrno("open " + path);
  return UniqueFd(fd);
}

Expected<std::string> ReadAll(int fd, size_t max_bytes) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ReadRetry(fd, buf, sizeof buf);
    if (n < 0)
      return Error::FromErrno("read");
    if (n == 0)
      break;
    if (out.size() + static_cast<size_t>(n) > max_bytes)
      return Error(Errc::kInvalidInput, "file is larger than " + std::to_string(max_bytes) + " bytes");
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Expected<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
  auto data = ReadAll(fd.get(), max_bytes);
  if (!data)
    return std::move(data).error().WithContext(path);
  return data;
}

Status WriteAll(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return Error::FromErrno("write");
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return Ok();
}

Status FsyncDir(const std::string& dir) {
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(dir, O_RDONLY | O_DIRECTORY));
  if (::fsync(fd.get()) != 0)
    return Error::FromErrno("fsync " + dir);
  return Ok();
}

Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode) {
  AtomicWriteOptions o;
  o.mode = mode;
  return WriteFileAtomic(path, data, o);
}

Status WriteFileAtomic(const std::string& path, std::string_view data, const AtomicWriteOptions& options) {
  std::string dir = DirName(path);
  std::string tmpl = JoinPath(options.temp_dir.empty() ? dir : options.temp_dir, "." + BaseName(path) + ".tmp-XXXXXX");
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int raw = ::mkostemp(name.data(), O_CLOEXEC);
  if (raw < 0)
    return Error::FromErrno("create temporary file in " + DirName(tmpl));
  UniqueFd fd(raw);
  std::string tmp(name.data());
  auto fail = [&](Error e) {
    ::unlink(tmp.c_str());
    return e;
  };
  auto step = [&](const char* what) {
    if (options.on_step)
      options.on_step(what);
  };
  step("temp created");
  size_t half = options.on_step ? data.size() / 2 : data.size();
  if (auto s = WriteAll(fd.get(), data.substr(0, half)); !s)
    return fail(std::move(s).error().WithContext(tmp));
  step("half written");
  if (auto s = WriteAll(fd.get(), data.substr(half)); !s)
    return fail(std::move(s).error().WithContext(tmp));
  if (::fchmod(fd.get(), options.mode) != 0)
    return fail(Error::FromErrno("chmod " + tmp));
  if (options.durable && ::fsync(fd.get()) != 0)
    return fail(Error::FromErrno("fsync " + tmp));
  fd.reset();
  step("synced, before rename");
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return fail(Error::FromErrno("rename " + tmp + " to " + path));
  step("renamed, before directory fsync");
  return options.durable ? FsyncDir(dir) : Ok();
}

Status MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty())
    return Ok();
  std::string cur;
  size_t i = 0;
  if (path[0] == '/') {
    cur = "/";
    i = 1;
  }
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos)
      j = path.size();
    if (j > i) {
      if (!cur.empty() && cur.back() != '/')
        cur += '/';
      cur.append(path, i, j - i);
      if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST)
        return Error::FromErrno("mkdir " + cur);
    }
    i = j + 1;
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return Error::FromErrno("stat " + path);
  if (!S_ISDIR(st.st_mode))
    return Error(Errc::kIo, "mkdir " + path + ": not a directory");
  return Ok();
}

namespace {

Status RemoveAllAt(int dirfd, const char* name, dev_t dev) {
  struct stat st;
  if (::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? Ok() : Error::FromErrno(std::string("stat ") + name);
  if (S_ISDIR(st.st_mode)) {
    if (st.st_dev != dev)
      return Error(Errc::kIo, std::string("refusing to remove mount point ") + name);
    int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      // A directory without read/exec permission (e.g. mode 000 from a
      // layer): make it ours first.
      ::fchmodat(dirfd, name, 0700, 0);
      fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        return Error::FromErrno(std::string("open ") + name);
    }
    DIR* d = ::fdopendir(fd);
    if (!d) {
      ::close(fd);
      return Error::FromErrno(std::string("opendir ") + name);
    }
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0)
        continue;
      names.emplace_back(e->d_name);
    }
    Status result;
    for (const auto& n : names) {
      if (auto s = RemoveAllAt(::dirfd(d), n.c_str(), dev); !s && result)
        result = std::move(s);
    }
    ::closedir(d);
    if (!result)
      return result;
    if (::unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
      return Error::FromErrno(std::string("rmdir ") + name);
    return Ok();
  }
  if (::unlinkat(dirfd, name, 0) != 0 && errno != ENOENT)
    return Error::FromErrno(std::string("unlink ") + name);
  return Ok();
}

}  // namespace

namespace {

/// Reads and closes `d`: its names but "." and "..", sorted.
Expected<std::vector<std::string>> SortedNames(DIR* d, std::string_view what) {
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
      names.emplace_back(e->d_name);
    errno = 0;
  }
  int err = errno;
  ::closedir(d);
  if (err != 0)
    return Error::FromErrno("readdir " + std::string(what), err);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

Expected<std::vector<std::string>> ListDirSorted(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT)
      return std::vector<std::string>{};
    return Error::FromErrno("opendir " + dir);
  }
  return SortedNames(d, dir);
}

Expected<std::vector<std::string>> ListDirSortedAt(int dirfd, std::string_view what) {
  int dup = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0)
    return Error::FromErrno("open " + std::string(what));
  DIR* d = ::fdopendir(dup);
  if (!d) {
    int err = errno;
    ::close(dup);
    return Error::FromErrno("opendir " + std::string(what), err);
  }
  return SortedNames(d, what);
}

Status RemoveAll(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0)
    return errno == ENOENT ? Ok() : Error::FromErrno("stat " + path);
  return RemoveAllAt(AT_FDCWD, path.c_str(), st.st_dev);
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string DirName(std::string_view path) {
  while (path.size() > 1 && path.back() == '/')
    path.remove_suffix(1);
  auto slash = path.rfind('/');
  if (slash == std::string_view::npos)
    return ".";
  if (slash == 0)
    return "/";
  return std::string(path.substr(0, slash));
}

std::string BaseName(std::string_view path) {
  while (path.size() > 1 && path.back() == '/')
    path.remove_suffix(1);
  auto slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string JoinPath(std::string_view a, std::string_view b) {
  if (a.empty())
    return std::string(b);
  std::string out(a);
  while (!b.empty() && b.front() == '/')
    b.remove_prefix(1);
  if (out.back() != '/')
    out += '/';
  out += b;
  return out;
}

std::string UserConfigDir() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg)
    return xdg;
  if (const char* home = std::getenv("HOME"); home && *home)
    return JoinPath(home, ".config");
  struct passwd* pw = ::getpwuid(::getuid());
  return JoinPath(pw && pw->pw_dir ? pw->pw_dir : "/", ".config");
}

Expected<TempDir> TempDir::Create(std::string_view prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = JoinPath(base && *base ? base : "/tmp", std::string(prefix) + "XXXXXX");
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  if (!::mkdtemp(name.data()))
    return Error::FromErrno("mkdtemp " + tmpl);
  return TempDir(std::string(name.data()));
}

TempDir& TempDir::operator=(TempDir&& o) noexcept {
  if (this != &o) {
    if (!path_.empty())
      (void)RemoveAll(path_);
    path_ = std::exchange(o.path_, std::string());
  }
  return *this;
}

TempDir::~TempDir() {
  if (!path_.empty())
    (void)RemoveAll(path_);
}

ssize_t ReadRetry(int fd, void* buf, size_t len) {
  ssize_t n;
  do {
    n = ::read(fd, buf, len);
  } while (n < 0 && errno == EINTR);
  return n;
}

std::vector<std::string> PathComponents(std::string_view path) {
  std::vector<std::string> out = SplitList(path, '/');
  std::erase(out, ".");
  return out;
}

ssize_t LineReader::ReadOnce(int fd, const OnLine& on_line) {
  char chunk[8192];
  ssize_t n = ReadRetry(fd, chunk, sizeof chunk);
  if (n > 0)
    buf_.append(chunk, static_cast<size_t>(n));
  size_t start = 0;
  for (size_t nl; (nl = buf_.find('\n', start)) != std::string::npos; start = nl + 1)
    on_line(std::string_view(buf_).substr(start, nl - start));
  buf_.erase(0, start);
  if (n == 0 && !buf_.empty()) {
    on_line(buf_);
    buf_.clear();
  }
  return n;
}

Status ReadLines(int fd, const LineReader::OnLine& on_line) {
  LineReader reader;
  for (;;) {
    ssize_t n = reader.ReadOnce(fd, on_line);
    if (n == 0)
      return Ok();
    if (n < 0)
      return Error::FromErrno("read");
  }
}

}  // namespace kiln
