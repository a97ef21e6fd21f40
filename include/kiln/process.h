// Starting helper processes with posix_spawn (safe in a multithreaded
// process): the attributes every kiln child gets, and one way to start a
// program from an argument vector and wait for it.
#pragma once

#include <spawn.h>
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "kiln/error.h"
#include "kiln/unique_fd.h"

namespace kiln {

/// Initialises `attr` so that the child starts with no signal blocked and
/// every signal at its default action (kiln blocks and handles some), plus
/// `extra_flags` (e.g. POSIX_SPAWN_SETSID). The caller destroys it.
void InitSpawnAttr(posix_spawnattr_t* attr, short extra_flags = 0);

/// How SpawnArgv starts the child.
struct SpawnOptions {
  /// (from, to): the caller's fd `from` becomes the child's fd `to`, in
  /// this order. Every other kiln fd is O_CLOEXEC and not inherited.
  std::vector<std::pair<int, int>> fds;
  /// Extra posix_spawn flags, e.g. POSIX_SPAWN_SETSID.
  short flags = 0;
  /// The program to run; empty: argv[0], searched in $PATH (posix_spawnp).
  std::string path;
};

/// Starts `argv` (argv[0] names the program) with kiln's spawn attributes
/// (InitSpawnAttr) and the environment of this process; the child runs in
/// the calling thread's namespaces. Returns its pid; the caller waits for it
/// (WaitChild). On failure, the error names argv[0] and carries the errno
/// (kNotFound when the program does not exist).
Expected<pid_t> SpawnArgv(const std::vector<std::string>& argv, const SpawnOptions& options = {});

/// waitpid(pid) retried on EINTR; the wait status (-1 if there is no such
/// child).
int WaitChild(pid_t pid);

/// pipe2(O_CLOEXEC) into `read_end` and `write_end`; kIo "pipe" on failure.
Status MakePipe(UniqueFd* read_end, UniqueFd* write_end);

/// The path of the running executable (/proc/self/exe), "" when unknown.
std::string SelfExe();

}  // namespace kiln
