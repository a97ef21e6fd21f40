#include "kiln/rootfs.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <sstream>
#include <utility>

#include "kiln/fs.h"

namespace kiln::rootfs {

namespace {

// The mount(2) data page holds at most 4096 bytes: long lowerdir lists go
// through /proc/self/fd/N names of fds we hold open for the call.
constexpr size_t kMaxMountData = 3800;

std::string JoinLowers(const std::vector<std::string>& lowers, std::vector<UniqueFd>* held) {
  std::string joined;
  for (const auto& l : lowers) {
    if (!joined.empty())
      joined += ':';
    joined += l;
  }
  if (joined.size() < kMaxMountData)
    return joined;
  joined.clear();
  for (const auto& l : lowers) {
    int fd = ::open(l.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
      return std::string();
    held->emplace_back(fd);
    if (!joined.empty())
      joined += ':';
    joined += "/proc/self/fd/" + std::to_string(fd);
  }
  return joined;
}

// The same layer twice (two steps with an identical diff, e.g. two RUNs
// that changed nothing): overlayfs refuses a repeated lowerdir (EINVAL, or
// ELOOP read-only). The topmost copy alone shows the same tree: every path
// a lower copy could supply, whiteout or opaque marker is already decided by
// the identical copy above it. Keeps the first (topmost) of each.
std::vector<std::string> DistinctLowers(const std::vector<std::string>& lowers) {
  std::vector<std::string> out;
  for (const auto& l : lowers)
    if (std::find(out.begin(), out.end(), l) == out.end())
      out.push_back(l);
  return out;
}

Status MountOverlayData(const std::string& target, const std::string& data, unsigned long flags) {
  int last_errno = 0;
  for (const char* extra : {",userxattr", ""}) {
    std::string opts = data + extra;
    if (::mount("overlay", target.c_str(), "overlay", flags, opts.c_str()) == 0)
      return Ok();
    last_errno = errno;
  }
  return Error(Errc::kSandbox, "mount overlay on " + target + ": " + std::strerror(last_errno), last_errno);
}

}  // namespace

Expected<Mount> Mount::Overlay(const std::vector<std::string>& all_lowers, const std::string& upper,
                               const std::string& work, const std::string& target) {
  const std::vector<std::string> lowers = DistinctLowers(all_lowers);
  if (lowers.empty())
    return Error(Errc::kInvalidInput, "overlay mount needs at least one lower directory");
  std::vector<UniqueFd> held;
  std::string data = "lowerdir=" + JoinLowers(lowers, &held) + ",upperdir=" + upper + ",workdir=" + work;
  if (!MountOverlayData(target, data + ",volatile", 0))
    KILN_TRY(MountOverlayData(target, data, 0));  // a kernel before 5.10
  return Mount(target);
}

Expected<Mount> Mount::ReadOnly(const std::vector<std::string>& all_lowers, const std::string& target) {
  const std::vector<std::string> lowers = DistinctLowers(all_lowers);
  if (lowers.empty())
    return Error(Errc::kInvalidInput, "read-only mount needs at least one layer directory");
  if (lowers.size() == 1) {
    if (::mount(lowers[0].c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
      return Error::FromErrno("bind mount " + lowers[0]);
    Mount m(target);
    if (::mount(nullptr, target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0)
      return Error::FromErrno("remount read-only " + target);
    return m;
  }
  std::vector<UniqueFd> held;
  KILN_TRY(MountOverlayData(target, "lowerdir=" + JoinLowers(lowers, &held), MS_RDONLY));
  return Mount(target);
}

Mount& Mount::operator=(Mount&& o) noexcept {
  if (this != &o) {
    (void)Unmount();
    target_ = std::exchange(o.target_, std::string());
  }
  return *this;
}

Mount::~Mount() { (void)Unmount(); }

Status Mount::Unmount() {
  if (target_.empty())
    return Ok();
  std::string t = std::exchange(target_, std::string());
  if (::umount2(t.c_str(), 0) == 0)
    return Ok();
  if (::umount2(t.c_str(), MNT_DETACH) == 0)
    return Ok();
  return Error::FromErrno("unmount " + t);
}

Expected<UniqueFd> OpenInRoot(int root_fd, const std::string& path, int flags, mode_t mode) {
  struct open_how how;
  std::memset(&how, 0, sizeof how);
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  std::string p = path.empty() ? "." : path;
  long fd;
  do {
    fd = ::syscall(SYS_openat2, root_fd, p.c_str(), &how, sizeof how);
  } while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  if (fd < 0)
    return Error::FromErrno("open " + p);
  return UniqueFd(static_cast<int>(fd));
}

Expected<UniqueFd> MakeDirsInRoot(int root_fd, const std::string& path, mode_t mode,
                                  std::optional<uint32_t> uid, std::optional<uint32_t> gid,
                                  bool* created_last) {
  if (created_last)
    *created_last = false;
  KILN_ASSIGN_OR_RETURN(UniqueFd cur, OpenInRoot(root_fd, "/", O_RDONLY | O_DIRECTORY));
  auto split = [](const std::string& p) {
    std::stringstream ss(p);
    std::string comp;
    std::vector<std::string> out;
    while (std::getline(ss, comp, '/'))
      if (!comp.empty() && comp != ".")
        out.push_back(comp);
    return out;
  };
  std::vector<std::string> comps = split(path);
  std::string sofar;
  int links = 0;
  for (size_t i = 0; i < comps.size(); ++i) {
    const std::string c = comps[i];
    const std::string parent = sofar;
    sofar += "/" + c;
    // Resolve each step from the root again so that ".." and symlinks
    // (possibly planted by an earlier RUN) stay inside the root.
    auto next = OpenInRoot(root_fd, sofar, O_RDONLY | O_DIRECTORY);
    if (next) {
      cur = std::move(*next);
      continue;
    }
    if (next.error().sys_errno() == ENOTDIR)
      return Error(Errc::kInvalidInput, "cannot create directory " + sofar + ": a file is in the way");
    if (next.error().sys_errno() != ENOENT)
      return std::move(next).error();
    if (c == "..")
      continue;  // ".." at the root stays at the root
    // A dangling symlink: create its target, as BuildKit does (its MkdirAll
    // runs on the path resolved in the root). The target is read, never
    // followed by the host: the rest of the walk continues from the root
    // with the link replaced by it, so an absolute or "../" target still
    // ends inside the root.
    struct stat lst;
    if (::fstatat(cur.get(), c.c_str(), &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode)) {
      if (++links > 40)
        return Error(Errc::kInvalidInput, "cannot create directory " + sofar + ": too many levels of symbolic links");
      char buf[PATH_MAX];
      ssize_t n = ::readlinkat(cur.get(), c.c_str(), buf, sizeof buf);
      if (n < 0 || n >= static_cast<ssize_t>(sizeof buf))
        return Error::FromErrno("readlink " + sofar);
      std::string target(buf, static_cast<size_t>(n));
      std::vector<std::string> rest = split(target[0] == '/' ? target : parent + "/" + target);
      rest.insert(rest.end(), comps.begin() + static_cast<long>(i) + 1, comps.end());
      comps = std::move(rest);
      sofar.clear();
      i = static_cast<size_t>(-1);  // the loop's ++ starts it at 0
      KILN_ASSIGN_OR_RETURN(cur, OpenInRoot(root_fd, "/", O_RDONLY | O_DIRECTORY));
      continue;
    }
    if (::mkdirat(cur.get(), c.c_str(), mode) != 0 && errno != EEXIST)
      return Error::FromErrno("mkdir " + sofar);
    KILN_ASSIGN_OR_RETURN(UniqueFd made, OpenInRoot(root_fd, sofar, O_RDONLY | O_DIRECTORY));
    ::fchmod(made.get(), mode);  // umask-independent
    if (uid || gid) {
      if (::fchown(made.get(), uid ? *uid : static_cast<uid_t>(-1), gid ? *gid : static_cast<gid_t>(-1)) != 0)
        return Error::FromErrno("chown " + sofar);
    }
    if (created_last && i + 1 == comps.size())
      *created_last = true;
    cur = std::move(made);
  }
  return cur;
}

namespace {

// Files kiln itself reads from an image (passwd, group): bounded.
constexpr off_t kMaxImageFileBytes = off_t(4) << 20;

const char* FileTypeName(mode_t mode) {
  static constexpr std::pair<mode_t, const char*> kTypes[] = {
      {S_IFIFO, "a fifo"},         {S_IFSOCK, "a socket"},   {S_IFCHR, "a character device"},
      {S_IFBLK, "a block device"}, {S_IFDIR, "a directory"}, {S_IFLNK, "a symlink"}};
  for (const auto& [type, name] : kTypes)
    if ((mode & S_IFMT) == type)
      return name;
  return "a special file";
}

bool IsWhiteout(const struct stat& st, int dirfd, const std::string& name) {
  if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0))
    return true;
  if (S_ISREG(st.st_mode) && st.st_size == 0) {
    char v[8];
    std::string p = "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
    for (const char* attr : {"user.overlay.whiteout", "trusted.overlay.whiteout"})
      if (::lgetxattr(p.c_str(), attr, v, sizeof v) >= 0)
        return true;
  }
  return false;
}

}  // namespace

Expected<std::optional<std::string>> ReadFileFromLayers(const std::vector<std::string>& layer_dirs,
                                                        const std::string& path) {
  for (const auto& dir : layer_dirs) {
    auto root = OpenFile(dir, O_RDONLY | O_DIRECTORY);
    if (!root)
      return std::move(root).error();
    std::string rel = path;
    while (!rel.empty() && rel.front() == '/')
      rel.erase(0, 1);
    std::string parent = DirName(rel);
    std::string name = BaseName(rel);
    auto pfd = OpenInRoot(root->get(), parent, O_RDONLY | O_DIRECTORY);
    if (!pfd)
      continue;
    struct stat st;
    if (::fstatat(pfd->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      continue;
    if (IsWhiteout(st, pfd->get(), name))
      return std::optional<std::string>();
    // Never blocking (a FIFO at /etc/passwd would hang the caller: H12),
    // never a controlling terminal, links resolved inside this layer only.
    auto fd = OpenInRoot(root->get(), rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (!fd)
      return std::optional<std::string>();  // e.g. a symlink pointing to a later layer: treat as absent
    struct stat fst;
    if (::fstat(fd->get(), &fst) != 0)
      return Error::FromErrno("stat the image's " + path);
    if (!S_ISREG(fst.st_mode))
      return Error(Errc::kInvalidInput, "the image's " + path + " is " + FileTypeName(fst.st_mode) +
                                            ", not a regular file: refusing to read it");
    if (fst.st_size > kMaxImageFileBytes)
      return Error(Errc::kInvalidInput, "the image's " + path + " is larger than " +
                                            std::to_string(kMaxImageFileBytes >> 20) + " MiB: refusing to read it");
    auto data = ReadAll(fd->get(), kMaxImageFileBytes);
    if (!data)
      return std::move(data).error().WithContext("the image's " + path);
    return std::optional<std::string>(std::move(*data));
  }
  return std::optional<std::string>();
}

namespace {

std::vector<std::vector<std::string>> ParseColonFile(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.empty() || line[0] == '#')
      continue;
    std::vector<std::string> fields;
    size_t start = 0;
    for (;;) {
      size_t colon = line.find(':', start);
      fields.push_back(line.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
      if (colon == std::string::npos)
        break;
      start = colon + 1;
    }
    rows.push_back(std::move(fields));
  }
  return rows;
}

bool ParseId(const std::string& s, uint32_t* out) {
  if (s.empty() || s.size() > 10)
    return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > 0xfffffffeu)  // 2^32-1 is (uid_t)-1, "no change" to setresuid
    return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

bool AllDigits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

/// A user or group of a USER spec given as a number must be a valid id:
/// never a name lookup of a number that does not fit (CVE-2024-40635).
Status CheckNumericId(const std::string& part, const char* what) {
  uint32_t id;
  if (AllDigits(part) && !ParseId(part, &id))
    return Error(Errc::kInvalidInput, std::string(what) + " " + part + " is out of range (ids are 0 to 4294967294)");
  return Ok();
}

}  // namespace

Expected<ResolvedUser> ResolveUser(const std::string& spec, const std::optional<std::string>& passwd,
                                   const std::optional<std::string>& group) {
  ResolvedUser r;
  std::string user = spec, grp;
  bool has_group = false;
  if (auto colon = spec.find(':'); colon != std::string::npos) {
    user = spec.substr(0, colon);
    grp = spec.substr(colon + 1);
    has_group = true;
  }
  if (user.empty())
    user = "0";
  KILN_TRY(CheckNumericId(user, "uid"));
  if (has_group)
    KILN_TRY(CheckNumericId(grp, "gid"));
  auto pw = passwd ? ParseColonFile(*passwd) : std::vector<std::vector<std::string>>();
  auto gr = group ? ParseColonFile(*group) : std::vector<std::vector<std::string>>();
  uint32_t id = 0;
  bool numeric = ParseId(user, &id);
  std::string user_name;
  bool found = false;
  for (const auto& f : pw) {
    if (f.size() < 4)
      continue;
    uint32_t fid;
    if ((numeric && ParseId(f[2], &fid) && fid == id) || (!numeric && f[0] == user)) {
      if (!ParseId(f[2], &r.uid) || !ParseId(f[3], &r.gid))
        continue;
      user_name = f[0];
      if (f.size() > 5 && !f[5].empty())
        r.home = f[5];
      found = true;
      break;
    }
  }
  if (!found) {
    if (!numeric)
      return Error(Errc::kInvalidInput, "unable to find user " + user + ": no matching entries in passwd file");
    r.uid = id;
    r.gid = 0;
  }
  if (has_group) {
    uint32_t gid;
    if (ParseId(grp, &gid)) {
      r.gid = gid;
    } else {
      bool gfound = false;
      for (const auto& f : gr) {
        if (f.size() >= 3 && f[0] == grp && ParseId(f[2], &r.gid)) {
          gfound = true;
          break;
        }
      }
      if (!gfound)
        return Error(Errc::kInvalidInput, "unable to find group " + grp + ": no matching entries in group file");
    }
  } else if (!user_name.empty()) {
    // Supplementary groups: every group that lists the user as a member.
    for (const auto& f : gr) {
      if (f.size() < 4)
        continue;
      std::stringstream members(f[3]);
      std::string m;
      while (std::getline(members, m, ',')) {
        uint32_t gid;
        if (m == user_name && ParseId(f[2], &gid) && gid != r.gid)
          r.supplementary_gids.push_back(gid);
      }
    }
  }
  return r;
}

}  // namespace kiln::rootfs
