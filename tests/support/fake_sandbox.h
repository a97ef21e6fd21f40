// A fake kiln::Sandbox for unit tests of the modules that start processes
// (engine::Build's RUN steps, the run module): it records every spec it is
// given and does what the test scripts instead of starting kiln-sandbox.
//
//   FakeSandbox fake;
//   fake.script = [](const SandboxSpec& spec, FakeSandbox::Call& call) {
//     call.WriteFile("/hello", "hi\n");   // lands in the step's upper dir
//     return SandboxResult{};             // exit 0
//   };
//   options.sandbox = &fake;
//
// Without a script every call succeeds with exit status 0 (on_started is not
// called: there is no process). `host_process`
// runs spec.argv as a plain host process instead (no namespaces: only for
// tests that need a real pid to stop, kill or wait for), calling on_started
// with its pid as the real sandbox does.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "kiln/error.h"
#include "kiln/sandbox.h"

namespace kiln::testing {

class FakeSandbox : public Sandbox {
 public:
  /// One Run() call, as the script sees it.
  struct Call {
    const SandboxSpec& spec;
    /// The directory the process's writes land in: the upper dir of a
    /// layered rootfs, else the plain rootfs directory.
    std::string WritableRoot() const {
      return !spec.lower_dirs.empty() || spec.rootfs_dir.empty() ? spec.upper_dir : spec.rootfs_dir;
    }
    /// Writes `content` to `path` (absolute, in the container) in the
    /// writable root, making parent directories. Returns false on error.
    bool WriteFile(const std::string& path, const std::string& content, mode_t mode = 0644) const {
      std::string full = WritableRoot() + path;
      for (size_t i = WritableRoot().size() + 1; (i = full.find('/', i)) != std::string::npos; ++i)
        ::mkdir(full.substr(0, i).c_str(), 0755);
      int fd = ::open(full.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
      if (fd < 0)
        return false;
      bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
      ::close(fd);
      return ok;
    }
    /// Writes `text` to the process's stdout (as the process would).
    void Print(const std::string& text) const {
      if (spec.stdout_fd >= 0)
        (void)!::write(spec.stdout_fd, text.data(), text.size());
    }
  };

  using Script = std::function<Expected<SandboxResult>(const SandboxSpec&, Call&)>;
  Script script;
  bool host_process = false;

  Expected<SandboxResult> Run(const SandboxSpec& spec) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      SandboxSpec copy = spec;
      copy.on_started = nullptr;
      copy.on_tty = nullptr;
      specs_.push_back(std::move(copy));
    }
    Call call{spec};
    if (host_process)
      return RunHostProcess(spec);
    if (script)
      return script(spec, call);
    return SandboxResult{};
  }

  /// Every spec Run() got, in call order.
  std::vector<SandboxSpec> specs() const {
    std::lock_guard<std::mutex> lock(mu_);
    return specs_;
  }
  size_t calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return specs_.size();
  }

 private:
  static Expected<SandboxResult> RunHostProcess(const SandboxSpec& spec) {
    std::vector<char*> argv;
    for (const auto& a : spec.argv)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0)
      return Error::FromErrno("fork");
    if (pid == 0) {
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2})
        ::signal(sig, SIG_DFL);
      int null_fd = ::open("/dev/null", O_RDWR);
      ::dup2(spec.stdin_fd >= 0 ? spec.stdin_fd : null_fd, 0);
      ::dup2(spec.stdout_fd >= 0 ? spec.stdout_fd : null_fd, 1);
      ::dup2(spec.stderr_fd >= 0 ? spec.stderr_fd : null_fd, 2);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    if (spec.on_started)
      spec.on_started(pid);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    SandboxResult r;
    if (WIFSIGNALED(status))
      r.signal = WTERMSIG(status);
    else
      r.exit_code = WEXITSTATUS(status);
    return r;
  }

  mutable std::mutex mu_;
  std::vector<SandboxSpec> specs_;
};

}  // namespace kiln::testing
