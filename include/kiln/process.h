// Starting helper processes with posix_spawn (safe in a multithreaded
// process): the attributes every kiln child gets, and one way to start a
// program from an argument vector and wait for it.
#pragma once

#include <spawn.h>
#include <sys/types.h>

#include <atomic>
#include <functional>
#include <string>
#include <string_view>
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

/// How RunCaptured feeds and reads the child.
struct CaptureOptions {
  /// Written to the child's stdin, which is then closed. Ignored when
  /// `stdin_fd` is set.
  std::string input;
  /// The child's stdin (not closed by RunCaptured); -1: `input`.
  int stdin_fd = -1;
  /// Keep the stdin pipe open until the child exits instead of closing it
  /// after `input`: the child sees end of input only when this process goes
  /// away (a remote build that must stop with its caller).
  bool hold_stdin = false;
  /// At most this much of stdout is kept (the rest is read and dropped).
  size_t max_out = size_t(16) << 20;
  /// The last this-many bytes of stderr are kept.
  size_t max_err = size_t(64) << 10;
  /// Called for every line of stderr as it comes, without its '\n'.
  std::function<void(std::string_view line)> on_err_line;
  /// Set to the child's pid while it runs and back to 0 after (so another
  /// thread can signal it).
  std::atomic<pid_t>* pid_out = nullptr;
  /// As SpawnOptions::path.
  std::string path;
};

/// What RunCaptured saw.
struct CapturedRun {
  int status = -1;  ///< the wait status
  std::string out;  ///< stdout (at most max_out bytes)
  std::string err;  ///< the end of stderr (at most max_err bytes)
  bool Succeeded() const;
};

/// Runs `argv` (SpawnArgv) and collects its stdout and stderr, read
/// together (poll) so that neither pipe fills, while feeding `input` to its
/// stdin; waits for it. An error only when it cannot be started (kNotFound
/// when the program does not exist) or a pipe fails; a non-zero exit is in
/// `status`.
Expected<CapturedRun> RunCaptured(const std::vector<std::string>& argv, const CaptureOptions& options = {});

/// waitpid(pid) retried on EINTR; the wait status (-1 if there is no such
/// child).
int WaitChild(pid_t pid);

/// pipe2(O_CLOEXEC) into `read_end` and `write_end`; kIo "pipe" on failure.
Status MakePipe(UniqueFd* read_end, UniqueFd* write_end);

/// The path of the running executable (/proc/self/exe), "" when unknown.
std::string SelfExe();

}  // namespace kiln
