// Lock files: the one flock() helper of the project (records of containers,
// volumes and secrets are changed under one).
#pragma once

#include <string>

#include "kiln/error.h"
#include "kiln/unique_fd.h"

namespace kiln {

/// Opens (creating it 0600, and its directory 0700) the lock file `path` and
/// flock()s it with `op` (LOCK_EX or LOCK_SH, optionally | LOCK_NB); EINTR is
/// retried. The lock lasts as long as the returned fd. kFailed "busy: PATH"
/// when LOCK_NB finds it held; kIo on any other failure.
Expected<UniqueFd> LockFile(const std::string& path, int op);

}  // namespace kiln
