#include "kiln/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

extern char** environ;

namespace kiln {

void InitSpawnAttr(posix_spawnattr_t* attr, short extra_flags) {
  posix_spawnattr_init(attr);
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(attr, &none);
  posix_spawnattr_setsigdefault(attr, &all);
  posix_spawnattr_setflags(attr, static_cast<short>(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | extra_flags));
}

Expected<pid_t> SpawnArgv(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty())
    return Error(Errc::kInvalidInput, "spawn: empty argument list");
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  for (const auto& [from, to] : options.fds)
    posix_spawn_file_actions_adddup2(&fa, from, to);
  posix_spawnattr_t attr;
  InitSpawnAttr(&attr, options.flags);
  pid_t pid = -1;
  int rc = options.path.empty() ? ::posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ)
                                : ::posix_spawn(&pid, options.path.c_str(), &fa, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    return Error::FromErrno("run " + (options.path.empty() ? argv[0] : options.path), rc);
  return pid;
}

int WaitChild(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return -1;
  }
  return status;
}

Status MakePipe(UniqueFd* read_end, UniqueFd* write_end) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0)
    return Error::FromErrno("pipe");
  read_end->reset(p[0]);
  write_end->reset(p[1]);
  return Ok();
}

std::string SelfExe() {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    return {};
  self[n] = '\0';
  return self;
}

}  // namespace kiln
