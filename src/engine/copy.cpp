#include "engine/copy.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <sstream>
#include <cstdio>
#include <cstdlib>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "kiln/cancel.h"
#include "kiln/fs.h"
#include "kiln/layer.h"
#include "kiln/rootfs.h"

namespace kiln::engine {

using namespace rootfs;  // Mount, OpenInRoot, MakeDirsInRoot, ReadFileFromLayers, ResolveUser

namespace {

/// Cleans a source path to a relative path inside the source root: "/a/../b"
/// -> "b"; ".." never leaves the root (as BuildKit joins with "/").
std::string CleanRel(const std::string& path) {
  std::vector<std::string> out;
  std::stringstream ss(path);
  std::string c;
  while (std::getline(ss, c, '/')) {
    if (c.empty() || c == ".")
      continue;
    if (c == "..") {
      if (!out.empty())
        out.pop_back();
      continue;
    }
    out.push_back(c);
  }
  std::string r;
  for (const auto& s : out) {
    if (!r.empty())
      r += '/';
    r += s;
  }
  return r;
}

bool HasGlob(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

/// The sorted names in `dirfd` (kiln/fs.h); unreadable: none.
std::vector<std::string> ListDir(int dirfd) {
  auto names = ListDirSortedAt(dirfd, "directory");
  return names ? std::move(*names) : std::vector<std::string>{};
}

struct Filter {
  std::shared_ptr<const frontend::IgnoreMatcher> ignore;
  std::shared_ptr<const frontend::IgnoreMatcher> exclude;

  bool Skip(const std::string& rel) const {
    return (ignore && ignore->Matches(rel)) || (exclude && exclude->Matches(rel));
  }
  /// An excluded directory must still be walked when an exception could
  /// re-include something below it.
  bool MustDescend(const std::string& rel) const {
    return (ignore && ignore->HasExceptionsUnder(rel)) || (exclude && exclude->HasExceptionsUnder(rel));
  }
};

Expected<Filter> MakeFilter(const CopyRequest& req) {
  Filter f;
  if (req.from_context)
    f.ignore = req.ignore;
  if (!req.excludes.empty()) {
    auto m = frontend::IgnoreMatcher::Create(req.excludes);
    if (!m)
      return std::move(m).error().WithContext(req.what + " --exclude");
    f.exclude = *m;
  }
  return f;
}

/// One matched source: its path relative to the source root, and which of
/// the request's sources matched it.
struct Match {
  std::string rel;
  size_t source = 0;
};

/// `base` (relative to the root, "" for the root) and every directory below
/// it, not through symlinks: what a `**` component matches.
void AllDirsBelow(int root_fd, const std::string& base, std::vector<std::string>* out) {
  out->push_back(base);
  auto dfd = OpenInRoot(root_fd, base.empty() ? "." : base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!dfd)
    return;
  for (const auto& name : ListDir(dfd->get())) {
    struct stat st;
    if (::fstatat(dfd->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
      AllDirsBelow(root_fd, base.empty() ? name : base + "/" + name, out);
  }
}

/// Expands one source (wildcards per component) into matches.
Status ExpandSource(int root_fd, const std::string& source, const Filter& filter, const CopyRequest& req,
                    std::vector<Match>* out) {
  std::string rel = CleanRel(source);
  if (!HasGlob(rel)) {
    auto fd = OpenInRoot(root_fd, rel.empty() ? "." : rel, O_PATH);
    if (!fd) {
      if (fd.error().sys_errno() == ENOENT || fd.error().sys_errno() == ENOTDIR)
        return Error(Errc::kNotFound, req.what + " failed: \"" + source + "\": not found" +
                                          (req.from_context ? " in the build context" : ""));
      return std::move(fd).error().WithContext(req.what + " " + source);
    }
    if (!rel.empty() && filter.Skip(rel) && !filter.MustDescend(rel))
      return Error(Errc::kNotFound, req.what + " failed: \"" + source +
                                        "\": excluded by the ignore file or --exclude");
    out->push_back({rel});
    return Ok();
  }
  std::vector<std::string> comps;
  std::stringstream ss(rel);
  std::string c;
  while (std::getline(ss, c, '/'))
    comps.push_back(c);
  std::vector<std::string> partial = {""};
  for (size_t i = 0; i < comps.size(); ++i) {
    std::vector<std::string> next;
    for (const auto& base : partial) {
      if (comps[i] == "**") {  // any number of directories, as in BuildKit's patterns
        AllDirsBelow(root_fd, base, &next);
        continue;
      }
      if (!HasGlob(comps[i])) {
        std::string p = base.empty() ? comps[i] : base + "/" + comps[i];
        if (OpenInRoot(root_fd, p, O_PATH))
          next.push_back(p);
        continue;
      }
      auto dfd = OpenInRoot(root_fd, base.empty() ? "." : base, O_RDONLY | O_DIRECTORY);
      if (!dfd)
        continue;
      for (const auto& name : ListDir(dfd->get())) {
        if (::fnmatch(comps[i].c_str(), name.c_str(), 0) != 0)
          continue;
        std::string p = base.empty() ? name : base + "/" + name;
        if (filter.Skip(p) && !filter.MustDescend(p))
          continue;
        next.push_back(p);
      }
    }
    std::sort(next.begin(), next.end());
    next.erase(std::unique(next.begin(), next.end()), next.end());
    partial = std::move(next);
  }
  for (auto& p : partial)
    out->push_back({p});
  return Ok();
}

Expected<std::vector<Match>> ExpandSources(int root_fd, const CopyRequest& req, const Filter& filter) {
  std::vector<Match> matches;
  // A wildcard that matches nothing copies nothing, as in BuildKit (AllowEmptyWildcard); a
  // plain source that does not exist is an error (ExpandSource).
  for (size_t i = 0; i < req.sources.size(); ++i) {
    size_t before = matches.size();
    KILN_TRY(ExpandSource(root_fd, req.sources[i], filter, req, &matches));
    for (size_t m = before; m < matches.size(); ++m)
      matches[m].source = i;
  }
  return matches;
}

struct CopyCtx {
  const CopyRequest* req;
  Filter filter;
  std::map<std::pair<dev_t, ino_t>, std::pair<int, std::string>> links;  // src inode -> (held fd, name)
  std::vector<UniqueFd> held;
};

Status SetOwnerModeTimes(int fd, const std::string& what, const struct stat& st, CopyCtx& ctx, bool is_dir) {
  uid_t uid = ctx.req->uid ? *ctx.req->uid : (ctx.req->from_context ? 0 : st.st_uid);
  gid_t gid = ctx.req->gid ? *ctx.req->gid : (ctx.req->from_context ? 0 : st.st_gid);
  if (::fchown(fd, uid, gid) != 0)
    return Error(Errc::kFailed, "chown " + what + " to " + std::to_string(uid) + ":" + std::to_string(gid) +
                                    ": " + std::strerror(errno) +
                                    (errno == EINVAL ? " (the id is not mapped: add a range to /etc/subuid and "
                                                       "/etc/subgid)"
                                                     : ""));
  uint32_t mode = st.st_mode & 07777;
  if (!ctx.req->chmod.empty()) {
    KILN_ASSIGN_OR_RETURN(mode, ApplyChmod(ctx.req->chmod, mode, is_dir));
  }
  if (::fchmod(fd, mode) != 0)
    return Error::FromErrno("chmod " + what);
  struct timespec ts[2] = {st.st_mtim, st.st_mtim};
  if (::futimens(fd, ts) != 0)
    return Error::FromErrno("set times of " + what);
  return Ok();
}

Status CopyData(int in, int out, const std::string& what) {
  for (;;) {
    ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, size_t(1) << 30, 0);
    if (n == 0)
      return Ok();
    if (n > 0)
      continue;
    if (errno == EINTR)
      continue;
    if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
      return Error::FromErrno("copy " + what);
    break;
  }
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return Error::FromErrno("read " + what);
    if (n == 0)
      return Ok();
    KILN_TRY(WriteAll(out, buf, static_cast<size_t>(n)));
  }
}

/// Removes a non-directory at dst_dir/name so that it can be replaced.
Status ClearForReplace(int dst_dir, const std::string& name, bool want_dir, const std::string& what) {
  struct stat st;
  if (::fstatat(dst_dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return Ok();
  if (S_ISDIR(st.st_mode)) {
    if (want_dir)
      return Ok();
    return Error(Errc::kFailed, "cannot replace directory " + what + " with a non-directory");
  }
  if (::unlinkat(dst_dir, name.c_str(), 0) != 0)
    return Error::FromErrno("remove " + what);
  return Ok();
}

Status CopyNode(int src_dir, const std::string& src_name, const std::string& rel, int dst_dir,
                const std::string& dst_name, const std::string& dst_what, CopyCtx& ctx);

Status CopyDirContents(int src_fd, const std::string& rel, int dst_fd, const std::string& dst_what, CopyCtx& ctx) {
  for (const auto& name : ListDir(src_fd)) {
    std::string child_rel = rel.empty() ? name : rel + "/" + name;
    KILN_TRY(CopyNode(src_fd, name, child_rel, dst_fd, name, dst_what + "/" + name, ctx));
  }
  return Ok();
}

Status CopyNode(int src_dir, const std::string& src_name, const std::string& rel, int dst_dir,
                const std::string& dst_name, const std::string& dst_what, CopyCtx& ctx) {
  KILN_TRY(CheckCancelled());  // a safe point per file (kiln/cancel.h)
  struct stat st;
  if (::fstatat(src_dir, src_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return Error::FromErrno("stat " + rel);
  bool skipped = !rel.empty() && ctx.filter.Skip(rel);
  if (skipped && !(S_ISDIR(st.st_mode) && ctx.filter.MustDescend(rel)))
    return Ok();

  if (S_ISDIR(st.st_mode)) {
    KILN_TRY(ClearForReplace(dst_dir, dst_name, true, dst_what));
    if (::mkdirat(dst_dir, dst_name.c_str(), 0700) != 0 && errno != EEXIST)
      return Error::FromErrno("mkdir " + dst_what);
    int s = ::openat(src_dir, src_name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (s < 0)
      return Error::FromErrno("open " + rel);
    UniqueFd sfd(s);
    int d = ::openat(dst_dir, dst_name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (d < 0)
      return Error::FromErrno("open " + dst_what);
    UniqueFd dfd(d);
    KILN_TRY(CopyDirContents(sfd.get(), rel, dfd.get(), dst_what, ctx));
    return SetOwnerModeTimes(dfd.get(), dst_what, st, ctx, true);
  }

  KILN_TRY(ClearForReplace(dst_dir, dst_name, false, dst_what));
  if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
    auto it = ctx.links.find({st.st_dev, st.st_ino});
    if (it != ctx.links.end()) {
      std::string proc = "/proc/self/fd/" + std::to_string(it->second.first);
      if (::linkat(AT_FDCWD, proc.c_str(), dst_dir, dst_name.c_str(), AT_SYMLINK_FOLLOW) == 0)
        return Ok();
      // Fall through to a plain copy when the link cannot be made.
    }
  }
  if (S_ISREG(st.st_mode)) {
    int s = ::openat(src_dir, src_name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (s < 0)
      return Error::FromErrno("open " + rel);
    UniqueFd sfd(s);
    int d = ::openat(dst_dir, dst_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (d < 0)
      return Error::FromErrno("create " + dst_what);
    UniqueFd dfd(d);
    KILN_TRY(CopyData(sfd.get(), dfd.get(), rel));
    KILN_TRY(SetOwnerModeTimes(dfd.get(), dst_what, st, ctx, false));
    if (st.st_nlink > 1)
      ctx.links[{st.st_dev, st.st_ino}] = {dfd.get(), dst_what};
    ctx.held.push_back(std::move(dfd));
    if (ctx.held.size() > 512) {  // bound the fds kept for hardlinks
      ctx.links.clear();
      ctx.held.clear();
    }
    return Ok();
  }
  if (S_ISLNK(st.st_mode)) {
    std::string target(4096, '\0');
    ssize_t n = ::readlinkat(src_dir, src_name.c_str(), target.data(), target.size());
    if (n < 0)
      return Error::FromErrno("readlink " + rel);
    target.resize(static_cast<size_t>(n));
    if (::symlinkat(target.c_str(), dst_dir, dst_name.c_str()) != 0)
      return Error::FromErrno("symlink " + dst_what);
  } else if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    if (::mknodat(dst_dir, dst_name.c_str(), st.st_mode, st.st_rdev) != 0)
      return Error::FromErrno("mknod " + dst_what);
  } else {
    return Ok();  // sockets are not copied
  }
  uid_t uid = ctx.req->uid ? *ctx.req->uid : (ctx.req->from_context ? 0 : st.st_uid);
  gid_t gid = ctx.req->gid ? *ctx.req->gid : (ctx.req->from_context ? 0 : st.st_gid);
  if (::fchownat(dst_dir, dst_name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
    return Error::FromErrno("chown " + dst_what);
  struct timespec ts[2] = {st.st_mtim, st.st_mtim};
  ::utimensat(dst_dir, dst_name.c_str(), ts, AT_SYMLINK_NOFOLLOW);
  if (!S_ISLNK(st.st_mode)) {
    uint32_t mode = st.st_mode & 07777;
    if (!ctx.req->chmod.empty()) {
      KILN_ASSIGN_OR_RETURN(mode, ApplyChmod(ctx.req->chmod, mode, false));
    }
    ::fchmodat(dst_dir, dst_name.c_str(), mode, 0);
  }
  return Ok();
}

bool IsArchive(int fd) {
  char head[512];
  ssize_t n = ::pread(fd, head, sizeof head, 0);
  if (n <= 0)
    return false;
  std::string_view h(head, static_cast<size_t>(n));
  if (layer::SniffCompression(h) != layer::Compression::kNone)
    return true;
  return n >= 262 && std::memcmp(head + 257, "ustar", 5) == 0;
}

/// The path, relative to dest, under which --parents keeps a source: the
/// part after a "/./" pivot, else the whole cleaned path.
std::string ParentsRel(const std::string& source, const std::string& rel) {
  auto pivot = source.find("/./");
  if (pivot != std::string::npos)
    return CleanRel(rel.substr(std::min(rel.size(), CleanRel(source.substr(0, pivot)).size())));
  return rel;
}

}  // namespace

Expected<uint32_t> ApplyChmod(const std::string& spec, uint32_t mode, bool is_dir) {
  if (!spec.empty() && std::all_of(spec.begin(), spec.end(), [](char c) { return c >= '0' && c <= '7'; })) {
    if (spec.size() > 4)
      return Error(Errc::kInvalidInput, "invalid --chmod value \"" + spec + "\"");
    return (mode & ~07777u) | static_cast<uint32_t>(std::stoul(spec, nullptr, 8));
  }
  std::stringstream ss(spec);
  std::string clause;
  uint32_t m = mode & 07777;
  while (std::getline(ss, clause, ',')) {
    size_t i = 0;
    uint32_t who = 0;
    for (; i < clause.size() && std::strchr("ugoa", clause[i]); ++i)
      who |= clause[i] == 'u' ? 04700u : clause[i] == 'g' ? 02070u : clause[i] == 'o' ? 01007u : 07777u;
    if (who == 0)
      who = 07777;
    if (i >= clause.size() || !std::strchr("+-=", clause[i]))
      return Error(Errc::kInvalidInput, "invalid --chmod value \"" + spec + "\"");
    while (i < clause.size() && std::strchr("+-=", clause[i])) {
      char op = clause[i++];
      uint32_t bits = 0;
      for (; i < clause.size() && std::strchr("rwxXst", clause[i]); ++i) {
        switch (clause[i]) {
          case 'r': bits |= 0444; break;
          case 'w': bits |= 0222; break;
          case 'x': bits |= 0111; break;
          case 'X': if (is_dir || (m & 0111)) bits |= 0111; break;
          case 's': bits |= 06000; break;
          case 't': bits |= 01000; break;
        }
      }
      bits &= who;
      if (op == '+') m |= bits;
      else if (op == '-') m &= ~bits;
      else m = (m & ~(who & 0777)) | bits;
    }
    if (i != clause.size())
      return Error(Errc::kInvalidInput, "invalid --chmod value \"" + spec + "\"");
  }
  return (mode & ~07777u) | m;
}

/// A file destination with its symlinks followed inside the root, as
/// BuildKit resolves it (fs.RootPath): `COPY f /link` writes where /link
/// points, also when that does not exist yet; the link stays. At most 40
/// links; a link target above / stays inside the root.
static std::string FollowDestLinks(int root_fd, const std::string& dest) {
  std::string path = "/" + CleanRel(dest);
  for (int hops = 0; hops < 40 && path != "/"; ++hops) {
    std::string dir = DirName(path), name = BaseName(path);
    auto dfd = OpenInRoot(root_fd, dir.empty() ? "/" : dir, O_RDONLY | O_DIRECTORY);
    if (!dfd)
      break;
    char buf[4096];
    ssize_t n = ::readlinkat(dfd->get(), name.c_str(), buf, sizeof buf - 1);
    if (n <= 0)
      break;
    std::string target(buf, static_cast<size_t>(n));
    path = "/" + CleanRel(target[0] == '/' ? target : JoinPath(dir, target));
  }
  return path;
}

Status CopyIntoRoot(const CopyRequest& req, int dest_root_fd, const std::string& dest_root_path) {
  KILN_ASSIGN_OR_RETURN(Filter filter, MakeFilter(req));
  KILN_ASSIGN_OR_RETURN(UniqueFd src_root, OpenFile(req.src_root, O_RDONLY | O_DIRECTORY));
  KILN_ASSIGN_OR_RETURN(std::vector<Match> matches, ExpandSources(src_root.get(), req, filter));

  bool dest_slash = !req.dest.empty() && req.dest.back() == '/';
  size_t count = matches.size() + req.inline_files.size();
  bool dest_exists_dir = static_cast<bool>(OpenInRoot(dest_root_fd, req.dest, O_RDONLY | O_DIRECTORY));
  bool dest_is_dir = dest_slash || count > 1 || dest_exists_dir || req.parents;
  const std::string file_dest = dest_is_dir ? req.dest : FollowDestLinks(dest_root_fd, req.dest);

  CopyCtx ctx{&req, filter, {}, {}};
  auto owner_uid = req.uid ? req.uid : std::optional<uint32_t>(0);
  auto owner_gid = req.gid ? req.gid : std::optional<uint32_t>(0);
  // Directories the copy creates on the way to the destination get an octal
  // --chmod mode, as in BuildKit (fsutil copy: MkdirAll with the mode);
  // a symbolic --chmod leaves them 0755.
  mode_t dir_mode = 0755;
  if (!req.chmod.empty() &&
      std::all_of(req.chmod.begin(), req.chmod.end(), [](char c) { return c >= '0' && c <= '7'; })) {
    KILN_ASSIGN_OR_RETURN(uint32_t m, ApplyChmod(req.chmod, 0, true));
    dir_mode = static_cast<mode_t>(m);
  }
  if (count == 0 && dest_is_dir)  // wildcards that matched nothing still make the destination, as in BuildKit
    KILN_TRY(MakeDirsInRoot(dest_root_fd, req.dest, dir_mode, owner_uid, owner_gid));

  for (size_t mi = 0; mi < matches.size(); ++mi) {
    const Match& m = matches[mi];
    const std::string& source = req.sources[m.source];
    auto path_fd = OpenInRoot(src_root.get(), m.rel.empty() ? "." : m.rel, O_RDONLY | O_NOFOLLOW);
    // Top-level symlinks are followed inside the source root (as BuildKit).
    if (!path_fd)
      path_fd = OpenInRoot(src_root.get(), m.rel.empty() ? "." : m.rel, O_RDONLY);
    if (!path_fd)
      return std::move(path_fd).error().WithContext(req.what + " " + source);
    struct stat st;
    if (::fstat(path_fd->get(), &st) != 0)
      return Error::FromErrno("stat " + m.rel);
    std::string base_dest = req.dest;
    if (req.parents) {
      std::string keep = ParentsRel(source, m.rel);
      base_dest = JoinPath(req.dest, S_ISDIR(st.st_mode) ? keep : DirName(keep) == "." ? "" : DirName(keep));
    }
    if (S_ISDIR(st.st_mode)) {
      bool created = false;
      KILN_ASSIGN_OR_RETURN(UniqueFd dfd,
                            MakeDirsInRoot(dest_root_fd, base_dest, dir_mode, owner_uid, owner_gid, &created));
      KILN_TRY(CopyDirContents(path_fd->get(), m.rel, dfd.get(), base_dest, ctx));
      continue;
    }
    if (req.unpack_archives && S_ISREG(st.st_mode) && IsArchive(path_fd->get())) {
      KILN_ASSIGN_OR_RETURN(UniqueFd dfd, MakeDirsInRoot(dest_root_fd, base_dest, 0755, owner_uid, owner_gid));
      layer::UnpackOptions uo;
      uo.whiteouts = layer::WhiteoutMode::kApply;
      uo.preserve_ownership = true;
      // ADD --chown: every extracted entry gets the owner (BuildKit untars
      // with ChownOpts), not the archive's ids.
      uo.owner_uid = req.uid;
      uo.owner_gid = req.gid;
      std::string target = "/proc/self/fd/" + std::to_string(dfd.get());
      auto r = layer::UnpackLayer(path_fd->get(), target, uo);
      if (!r)
        return std::move(r).error().WithContext("ADD " + source + ": extract archive");
      (void)dest_root_path;
      continue;
    }
    std::string dir = (dest_is_dir || req.parents) ? base_dest : DirName(file_dest);
    std::string name = (dest_is_dir || req.parents) ? BaseName(m.rel.empty() ? source : m.rel) : BaseName(file_dest);
    KILN_ASSIGN_OR_RETURN(UniqueFd dfd, MakeDirsInRoot(dest_root_fd, dir, dir_mode, owner_uid, owner_gid));
    std::string parent_rel = DirName(m.rel);
    auto parent_fd = OpenInRoot(src_root.get(), parent_rel == "." ? "." : parent_rel, O_RDONLY | O_DIRECTORY);
    if (parent_fd && ::faccessat(parent_fd->get(), BaseName(m.rel).c_str(), F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
      struct stat lst;
      if (::fstatat(parent_fd->get(), BaseName(m.rel).c_str(), &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
          !S_ISLNK(lst.st_mode)) {
        // Copy through the parent so that hardlink and special-file logic applies;
        // the match itself is never filtered (it was named explicitly).
        CopyCtx one{&req, Filter{}, {}, {}};
        KILN_TRY(CopyNode(parent_fd->get(), BaseName(m.rel), "", dfd.get(), name, JoinPath(dir, name), one));
        continue;
      }
    }
    // A top-level symlink: copy what it points at, under the source's name.
    KILN_TRY(ClearForReplace(dfd.get(), name, false, JoinPath(dir, name)));
    int d = ::openat(dfd.get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (d < 0)
      return Error::FromErrno("create " + JoinPath(dir, name));
    UniqueFd out(d);
    KILN_TRY(CopyData(path_fd->get(), out.get(), m.rel));
    KILN_TRY(SetOwnerModeTimes(out.get(), JoinPath(dir, name), st, ctx, false));
  }

  for (const auto& [fname, content] : req.inline_files) {
    std::string dir = dest_is_dir ? req.dest : DirName(file_dest);
    std::string name = dest_is_dir ? fname : BaseName(file_dest);
    KILN_ASSIGN_OR_RETURN(UniqueFd dfd, MakeDirsInRoot(dest_root_fd, dir, dir_mode, owner_uid, owner_gid));
    KILN_TRY(ClearForReplace(dfd.get(), name, false, JoinPath(dir, name)));
    int d = ::openat(dfd.get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (d < 0)
      return Error::FromErrno("create " + JoinPath(dir, name));
    UniqueFd out(d);
    KILN_TRY(WriteAll(out.get(), content));
    struct stat st{};
    st.st_mode = S_IFREG | 0644;
    KILN_TRY(SetOwnerModeTimes(out.get(), JoinPath(dir, name), st, ctx, false));
  }
  return Ok();
}

// ------------------------------------------------------------ stat cache

namespace {

constexpr char kStatCacheHeader[] = "kiln-statcache 1 ";

int64_t Ns(const struct timespec& ts) { return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec; }

}  // namespace

void StatCache::Load(std::string_view data) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.clear();
  size_t nl = data.find('\n');
  if (nl == std::string_view::npos || data.substr(0, sizeof kStatCacheHeader - 1) != kStatCacheHeader)
    return;
  loaded_stamp_ns_ = std::strtoll(std::string(data.substr(sizeof kStatCacheHeader - 1, nl)).c_str(), nullptr, 10);
  size_t pos = nl + 1;
  while (pos < data.size()) {
    size_t end = data.find('\n', pos);
    if (end == std::string_view::npos)
      break;
    std::string line(data.substr(pos, end - pos));
    pos = end + 1;
    // size mtime_ns ino ctime_ns mode(octal) hex rel
    Entry e;
    unsigned long long ino = 0;
    long long size = 0, mt = 0, ct = 0;
    unsigned mode = 0;
    char hex[65];
    int consumed = 0;
    if (std::sscanf(line.c_str(), "%lld %lld %llu %lld %o %64s %n", &size, &mt, &ino, &ct, &mode, hex, &consumed) < 6 ||
        consumed <= 0 || static_cast<size_t>(consumed) >= line.size())
      continue;
    auto d = Digest::Parse(std::string("sha256:") + hex);
    if (!d)
      continue;
    e.size = size;
    e.mtime_ns = mt;
    e.ino = ino;
    e.ctime_ns = ct;
    e.mode = mode;
    e.digest = *d;
    entries_[line.substr(static_cast<size_t>(consumed))] = std::move(e);
  }
}

std::string StatCache::Serialize() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out = kStatCacheHeader + std::to_string(now_ns_) + "\n";
  out.reserve(entries_.size() * 120);
  std::vector<const std::pair<const std::string, Entry>*> sorted;
  for (const auto& kv : entries_)
    sorted.push_back(&kv);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
  char buf[160];
  for (const auto* kv : sorted) {
    const Entry& e = kv->second;
    std::snprintf(buf, sizeof buf, "%lld %lld %llu %lld %o ", static_cast<long long>(e.size),
                  static_cast<long long>(e.mtime_ns), static_cast<unsigned long long>(e.ino),
                  static_cast<long long>(e.ctime_ns), e.mode);
    out += buf;
    out += e.digest.hex();
    out += ' ';
    out += kv->first;
    out += '\n';
  }
  return out;
}

std::optional<Digest> StatCache::Lookup(const std::string& rel, const struct stat& st) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(rel);
  if (it != entries_.end()) {
    const Entry& e = it->second;
    if (e.size == st.st_size && e.mtime_ns == Ns(st.st_mtim) && e.ino == st.st_ino && e.ctime_ns == Ns(st.st_ctim) &&
        e.mode == (st.st_mode & 0177777) && e.mtime_ns < loaded_stamp_ns_) {
      ++hits_;
      return e.digest;
    }
  }
  ++misses_;
  return std::nullopt;
}

void StatCache::Put(const std::string& rel, const struct stat& st, const Digest& digest) {
  if (rel.empty() || rel[0] == ' ' || rel.find('\n') != std::string::npos || digest.algorithm() != "sha256")
    return;
  Entry e;
  e.size = st.st_size;
  e.mtime_ns = Ns(st.st_mtim);
  e.ino = st.st_ino;
  e.ctime_ns = Ns(st.st_ctim);
  e.mode = st.st_mode & 0177777;
  e.digest = digest;
  std::lock_guard<std::mutex> lock(mu_);
  entries_[rel] = std::move(e);
  dirty_ = true;
}

bool StatCache::dirty() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dirty_;
}
int64_t StatCache::hits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hits_;
}
int64_t StatCache::misses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return misses_;
}

// ------------------------------------------------------------ source digests

namespace {

void HashField(Sha256& h, std::string_view s) {
  uint64_t n = s.size();
  h.Update(&n, sizeof n);
  h.Update(s);
}

/// One entry of the walk: hashed as the fields `rel` and `meta` (+ " " +
/// the content digest for a regular file).
struct HashItem {
  std::string rel;
  std::string meta;
  bool regular = false;
  bool follow = false;  // a named top-level source: open through symlinks
  struct stat st {};
  Digest digest;
};

std::string MetaOf(const struct stat& st) {
  return std::to_string(st.st_mode) + " " + std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid);
}

Status WalkNode(int dir, const std::string& name, const std::string& rel, const Filter& filter,
                std::deque<HashItem>* out) {
  struct stat st;
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return Error::FromErrno("stat " + rel);
  bool skipped = !rel.empty() && filter.Skip(rel);
  if (skipped && !(S_ISDIR(st.st_mode) && filter.MustDescend(rel)))
    return Ok();
  HashItem item;
  item.rel = rel;
  item.meta = MetaOf(st);
  item.st = st;
  if (S_ISREG(st.st_mode)) {
    item.regular = true;
  } else if (S_ISLNK(st.st_mode)) {
    std::string target(4096, '\0');
    ssize_t n = ::readlinkat(dir, name.c_str(), target.data(), target.size());
    if (n >= 0)
      item.meta += " -> " + target.substr(0, static_cast<size_t>(n));
  } else if (S_ISDIR(st.st_mode)) {
    out->push_back(std::move(item));
    int fd = ::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
      return Error::FromErrno("open " + rel);
    UniqueFd d(fd);
    for (const auto& child : ListDir(d.get()))
      KILN_TRY(WalkNode(d.get(), child, rel.empty() ? child : rel + "/" + child, filter, out));
    return Ok();
  }
  out->push_back(std::move(item));
  return Ok();
}

Status DigestItem(int root_fd, HashItem& item, StatCache* cache) {
  KILN_TRY(CheckCancelled());
  auto fd = OpenInRoot(root_fd, item.rel, item.follow ? O_RDONLY : O_RDONLY | O_NOFOLLOW);
  if (!fd)
    return std::move(fd).error().WithContext("open " + item.rel);
  struct stat st;
  if (::fstat(fd->get(), &st) != 0)
    return Error::FromErrno("stat " + item.rel);
  KILN_ASSIGN_OR_RETURN(item.digest, layer::CopyAndHash(fd->get(), -1, INT64_MAX));
  if (cache)
    cache->Put(item.rel, st, item.digest);
  return Ok();
}

}  // namespace

Expected<Digest> HashCopySources(const CopyRequest& req, StatCache* cache, SourceListing* listing) {
  KILN_ASSIGN_OR_RETURN(Filter filter, MakeFilter(req));
  KILN_ASSIGN_OR_RETURN(UniqueFd src_root, OpenFile(req.src_root, O_RDONLY | O_DIRECTORY));
  KILN_ASSIGN_OR_RETURN(std::vector<Match> matches, ExpandSources(src_root.get(), req, filter));
  std::deque<HashItem> items;  // no reallocation of 10,000s of entries
  for (const auto& m : matches) {
    std::string parent = DirName(m.rel);
    KILN_ASSIGN_OR_RETURN(UniqueFd pfd, OpenInRoot(src_root.get(), m.rel.empty() || parent == "." ? "." : parent,
                                                   O_RDONLY | O_DIRECTORY));
    if (m.rel.empty()) {
      for (const auto& child : ListDir(pfd.get()))
        KILN_TRY(WalkNode(pfd.get(), child, child, filter, &items));
      continue;
    }
    // The named source itself (following a top-level symlink inside the root).
    auto fd = OpenInRoot(src_root.get(), m.rel, O_RDONLY);
    struct stat st;
    if (fd && ::fstat(fd->get(), &st) == 0 && S_ISREG(st.st_mode)) {
      HashItem item;
      item.rel = m.rel;
      item.meta = MetaOf(st);
      item.regular = true;
      item.follow = true;
      item.st = st;
      items.push_back(std::move(item));
      continue;
    }
    KILN_TRY(WalkNode(pfd.get(), BaseName(m.rel), m.rel, filter, &items));
  }
  // Content digests: from the stat cache, else read (in parallel when many).
  std::vector<size_t> todo;
  int64_t todo_bytes = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!items[i].regular)
      continue;
    if (cache) {
      if (auto d = cache->Lookup(items[i].rel, items[i].st)) {
        items[i].digest = *d;
        continue;
      }
    }
    todo.push_back(i);
    todo_bytes += items[i].st.st_size;
  }
  if (todo.size() >= 4 && todo_bytes >= (int64_t(1) << 20)) {
    std::mutex err_mu;
    std::optional<Error> first_error;
    tbb::parallel_for(tbb::blocked_range<size_t>(0, todo.size(), 1), [&](const tbb::blocked_range<size_t>& r) {
      for (size_t k = r.begin(); k != r.end(); ++k) {
        Status s = DigestItem(src_root.get(), items[todo[k]], cache);
        if (!s) {
          std::lock_guard<std::mutex> lock(err_mu);
          if (!first_error)
            first_error = s.error();
        }
      }
    });
    if (first_error)
      return *first_error;
  } else {
    for (size_t i : todo)
      KILN_TRY(DigestItem(src_root.get(), items[i], cache));
  }
  Sha256 h;
  if (listing)
    listing->reserve(listing->size() + items.size());
  for (auto& item : items) {
    HashField(h, item.rel);
    if (item.regular)
      item.meta += " " + item.digest.str();
    HashField(h, item.meta);
    if (listing)
      listing->emplace_back(std::move(item.rel), std::move(item.meta));
  }
  for (const auto& [name, content] : req.inline_files) {
    HashField(h, "<<" + name);
    HashField(h, content);
  }
  return h.Finish();
}

}  // namespace kiln::engine
