// The compose commands' logs: every container's lines, prefixed with its
// name (compose_session.h PrintLogs).
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <thread>

#include "cli/compose_session.h"
#include "kiln/cancel.h"
#include "kiln/fs.h"

namespace kiln::cli::compose_cmd {

namespace {

struct LogSource {
  std::string prefix;
  std::string id, name;
  int fd = -1;
  std::string pending;
};

const char* kColors[] = {"\033[36m", "\033[33m", "\033[32m", "\033[35m", "\033[34m", "\033[91m", "\033[92m", "\033[93m"};

}  // namespace

void PrintLogs(const run::Paths& paths, const std::vector<apply::ProjectContainer>& containers,
               const run::LogOptions& options, bool prefix, const std::function<void()>& on_cancel) {
  size_t width = 0;
  for (const auto& c : containers)
    width = std::max(width, c.info.name.size());
  bool color = ::isatty(STDOUT_FILENO);
  std::vector<LogSource> sources;
  std::vector<std::thread> threads;
  for (size_t i = 0; i < containers.size(); ++i) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      continue;
    LogSource src;
    if (prefix) {
      std::string name = containers[i].info.name;
      name.resize(width, ' ');
      src.prefix = color ? std::string(kColors[i % 8]) + name + " |\033[0m " : name + " | ";
    }
    src.fd = fds[0];
    src.id = containers[i].info.id;
    src.name = containers[i].info.name;
    sources.push_back(src);
    std::string id = containers[i].info.id;
    int w = fds[1];
    threads.emplace_back([paths, id, options, w] {
      (void)run::WriteLogs(paths, id, options, w);
      ::close(w);
    });
  }
  auto emit = [](const std::string& text) { (void)WriteAll(STDOUT_FILENO, text); };
  bool cancelled_once = false;
  size_t open = sources.size();
  while (open > 0) {
    std::vector<pollfd> pfds;
    for (const auto& s : sources)
      pfds.push_back({s.fd, POLLIN, 0});
    int cancel_fd = CancelFd();
    if (cancel_fd >= 0 && !cancelled_once)
      pfds.push_back({cancel_fd, POLLIN, 0});
    if (::poll(pfds.data(), pfds.size(), -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (pfds.size() > sources.size() && (pfds.back().revents & POLLIN)) {
      cancelled_once = true;
      if (on_cancel)
        on_cancel();
    }
    for (size_t i = 0; i < sources.size(); ++i) {
      if (sources[i].fd < 0 || !(pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      char buf[65536];
      ssize_t n = ::read(sources[i].fd, buf, sizeof buf);
      if (n <= 0) {
        if (n < 0 && errno == EINTR)
          continue;
        if (!sources[i].pending.empty())
          emit(sources[i].prefix + sources[i].pending + "\n");
        if (on_cancel && options.follow)
          if (auto info = run::InspectContainer(paths, sources[i].id); info && info->status != "running")
            emit(sources[i].name + " exited with code " + std::to_string(info->exit_code) + "\n");
        ::close(sources[i].fd);
        sources[i].fd = -1;
        pfds[i].fd = -1;
        --open;
        continue;
      }
      sources[i].pending.append(buf, static_cast<size_t>(n));
      std::string out;
      size_t start = 0, nl;
      while ((nl = sources[i].pending.find('\n', start)) != std::string::npos) {
        out += sources[i].prefix + sources[i].pending.substr(start, nl + 1 - start);
        start = nl + 1;
      }
      sources[i].pending.erase(0, start);
      if (!out.empty())
        emit(out);
    }
  }
  for (auto& t : threads)
    t.join();
}

}  // namespace kiln::cli::compose_cmd
