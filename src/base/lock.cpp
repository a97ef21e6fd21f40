#include "kiln/lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

#include "kiln/fs.h"

namespace kiln {

Expected<UniqueFd> LockFile(const std::string& path, int op) {
  KILN_TRY(MakeDirs(DirName(path), 0700));
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDWR | O_CREAT, 0600));
  while (::flock(fd.get(), op) != 0) {
    if (errno == EINTR)
      continue;
    if (errno == EWOULDBLOCK)
      return Error(Errc::kFailed, "busy: " + path);
    return Error::FromErrno("lock " + path);
  }
  return fd;
}

}  // namespace kiln
