// LoadContextIgnore(): finding and reading a build context's ignore file
// (docs/build.md, docs/security.md H39) for kiln build and compose build;
// AbsolutePath() for the contexts' paths.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/build_job.h"
#include "kiln/fs.h"
#include "kiln/unique_fd.h"

namespace kiln::engine {

std::string AbsolutePath(const std::string& path) {
  if (!path.empty() && path[0] == '/')
    return path;
  char buf[4096];
  if (!::getcwd(buf, sizeof buf))
    return path;
  return path == "." ? std::string(buf) : JoinPath(buf, path);
}

namespace {

/// The text of an ignore file. `beneath_context`: the file was found in the
/// build context (not named by --ignorefile), so it is opened beneath the
/// context: a symlink may lead elsewhere in the context, never out of it.
/// Always a regular file (opened O_NONBLOCK: a FIFO cannot hang the build)
/// of at most 4 MiB.
Expected<std::string> ReadIgnoreFileText(const std::string& path, const std::string& context_dir,
                                         bool beneath_context) {
  constexpr size_t kMaxIgnoreFileBytes = size_t(4) << 20;
  const int flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  std::string abs = AbsolutePath(path), ctx = AbsolutePath(context_dir);
  while (ctx.size() > 1 && ctx.back() == '/')
    ctx.pop_back();
  UniqueFd fd;
  if (beneath_context && abs.rfind(ctx + "/", 0) == 0) {
    UniqueFd dir(::open(ctx.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir)
      return Error::FromErrno("open build context " + ctx);
    struct open_how how;
    std::memset(&how, 0, sizeof how);
    how.flags = static_cast<uint64_t>(flags);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    std::string rel = abs.substr(ctx.size() + 1);
    long r;
    do {
      r = ::syscall(SYS_openat2, dir.get(), rel.c_str(), &how, sizeof how);
    } while (r < 0 && (errno == EINTR || errno == EAGAIN));
    if (r < 0 && errno == EXDEV)
      return Error(Errc::kInvalidInput, "ignore file " + path + ": a symlink that leads out of the build context " +
                                            ctx + " (not followed; name a file outside with --ignorefile)");
    if (r < 0)
      return Error::FromErrno("open ignore file " + path);
    fd.reset(static_cast<int>(r));
  } else {
    fd.reset(::open(path.c_str(), flags));
    if (!fd)
      return Error::FromErrno("open ignore file " + path);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0)
    return Error::FromErrno("stat ignore file " + path);
  if (!S_ISREG(st.st_mode))
    return Error(Errc::kInvalidInput, "ignore file " + path + ": not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxIgnoreFileBytes)
    return Error(Errc::kInvalidInput, "ignore file " + path + ": " + std::to_string(st.st_size) +
                                          " bytes, more than the limit of 4 MiB");
  return ReadAll(fd.get(), kMaxIgnoreFileBytes);
}

}  // namespace

Expected<ContextIgnore> LoadContextIgnore(const std::string& context_dir, const std::string& containerfile,
                                          const std::string& ignorefile) {
  ContextIgnore result;
  if (!ignorefile.empty()) {
    struct stat st;
    if (::stat(ignorefile.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      return Error(Errc::kNotFound, "--ignorefile " + ignorefile + ": no such file");
    result.path = ignorefile;
  } else {
    std::vector<std::string> candidates;
    if (!containerfile.empty() && containerfile != "-") {
      candidates.push_back(containerfile + ".containerignore");
      candidates.push_back(containerfile + ".dockerignore");
    }
    candidates.push_back(JoinPath(context_dir, ".containerignore"));
    candidates.push_back(JoinPath(context_dir, ".dockerignore"));
    // The first name that exists at all (a link, a FIFO, a directory): it is
    // then checked when read, rather than silently passed over.
    for (const auto& c : candidates) {
      struct stat st;
      if (::lstat(c.c_str(), &st) == 0) {
        result.path = c;
        break;
      }
    }
  }
  if (result.path.empty())
    return result;
  KILN_ASSIGN_OR_RETURN(std::string text, ReadIgnoreFileText(result.path, context_dir, ignorefile.empty()));
  result.patterns = frontend::ReadIgnoreFile(text);
  return result;
}

}  // namespace kiln::engine
