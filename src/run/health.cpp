// Health checks (docs/run.md "Health checks"): run by the container's owner
// (the monitor, or the foreground `kiln run`) on a thread, no systemd and no
// kiln process per probe; `kiln healthcheck run` runs one probe. A probe is
// a forked child that joins the container as `kiln exec` does (Exec()).
// State: <run>/containers/<id>/health.json in Docker's State.Health shape,
// changed under health.lock.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "kiln/events.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "run/internal.h"

namespace kiln::run {

using namespace internal;
using nlohmann::json;

namespace {

constexpr size_t kMaxOutput = 4096;  // Docker's cap on a probe's kept output
constexpr size_t kMaxLog = 5;        // results kept

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Duration(int64_t ns) {
  if (ns % 1000000000 == 0)
    return std::to_string(ns / 1000000000) + "s";
  return std::to_string(ns / 1000000) + "ms";
}

struct Probe {
  std::string start;
  std::string end;
  int exit_code = 0;
  std::string output;
};

/// Runs the container's health test once (joins it in a forked child as
/// `kiln exec`), killing it at the timeout.
Probe RunProbe(const Paths& paths, const Config& c, std::atomic<pid_t>* running = nullptr) {
  Probe p;
  p.start = FormatLogTime(NowNs());
  ExecOptions eo;
  if (c.health.test[0] == "CMD-SHELL")
    eo.command = {"/bin/sh", "-c", c.health.test.size() > 1 ? c.health.test[1] : ""};
  else
    eo.command.assign(c.health.test.begin() + 1, c.health.test.end());
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    p.exit_code = -1;
    p.output = std::string("pipe: ") + std::strerror(errno);
    p.end = FormatLogTime(NowNs());
    return p;
  }
  UniqueFd out_r(out[0]);
  UniqueFd out_w(out[1]);
  pid_t child = ::fork();
  if (child == 0) {
    int null_fd = ::open("/dev/null", O_RDONLY);
    ::dup2(null_fd, 0);
    ::dup2(out_w.get(), 1);
    ::dup2(out_w.get(), 2);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    auto st = Exec(paths, c.id, eo);
    if (!st) {
      std::string line = st.error().message() + "\n";
      (void)!::write(2, line.data(), line.size());
      ::_exit(125);
    }
    ::_exit(*st);
  }
  out_w.reset();
  if (child < 0) {
    p.exit_code = -1;
    p.output = std::string("fork: ") + std::strerror(errno);
    p.end = FormatLogTime(NowNs());
    return p;
  }
  if (running)
    *running = child;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(c.health.timeout);
  bool timed_out = false;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd pfd = {out_r.get(), POLLIN, 0};
    int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0) {
      timed_out = true;
      break;
    }
    ssize_t n = ::read(out_r.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    if (p.output.size() < kMaxOutput)
      p.output.append(buf, std::min(static_cast<size_t>(n), kMaxOutput - p.output.size()));
  }
  if (timed_out)
    ::kill(child, SIGKILL);  // the probe's process dies with it (PDEATHSIG)
  int st = 0;
  while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  if (running)
    *running = 0;
  p.end = FormatLogTime(NowNs());
  if (timed_out) {
    p.exit_code = 1;
    p.output = "healthcheck command exceeded timeout of " + Duration(c.health.timeout);
  } else {
    p.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  return p;
}

std::string HealthPath(const Paths& paths, const std::string& id) { return RunDir(paths, id) + "/health.json"; }

json ReadHealth(const Paths& paths, const std::string& id) {
  auto text = ReadFile(HealthPath(paths, id), 1 << 20);
  json j = text ? json::parse(*text, nullptr, false) : json();
  if (j.is_discarded() || !j.is_object())
    j = {{"Status", "starting"}, {"FailingStreak", 0}, {"Log", json::array()}};
  return j;
}

Status WriteHealth(const Paths& paths, const std::string& id, const json& j) {
  AtomicWriteOptions o;
  o.mode = 0600;
  o.durable = false;
  return WriteFileAtomic(HealthPath(paths, id), j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n", o);
}

/// Records `p`; returns the status before and after.
std::pair<std::string, std::string> Record(const Paths& paths, const Config& c, const Probe& p, bool in_start_period) {
  auto lock = LockFile(RunDir(paths, c.id) + "/health.lock", LOCK_EX);
  json h = ReadHealth(paths, c.id);
  std::string before = h.value("Status", "starting");
  std::string status = before;
  int streak = h.value("FailingStreak", 0);
  if (p.exit_code == 0) {
    status = "healthy";
    streak = 0;
  } else if (!in_start_period) {
    // Docker: failures in the start period do not count.
    if (++streak >= c.health.retries)
      status = "unhealthy";
  }
  json log = h.contains("Log") && h["Log"].is_array() ? h["Log"] : json::array();
  log.push_back({{"Start", p.start}, {"End", p.end}, {"ExitCode", p.exit_code}, {"Output", p.output}});
  while (log.size() > kMaxLog)
    log.erase(log.begin());
  h = {{"Status", status}, {"FailingStreak", streak}, {"Log", log}};
  (void)WriteHealth(paths, c.id, h);
  return {before, status};
}

/// --health-on-failure, once the container turned unhealthy.
void OnFailure(const Paths& paths, const Config& c) {
  const std::string& a = c.health.on_failure;
  if (a == "none")
    return;
  LogInfo("container " + c.name + " is unhealthy: --health-on-failure=" + a);
  if (a == "restart") {
    // The monitor restarts it whatever the restart policy (restart.cpp).
    (void)WriteFileAtomic(RunDir(paths, c.id) + "/restart-requested", "", AtomicWriteOptions{});
    (void)KillContainer(paths, c.id, SIGKILL);
  } else if (a == "kill") {
    (void)KillContainer(paths, c.id, SIGKILL);
  } else if (a == "stop") {
    (void)UpdateState(paths, c.id, [](State& s) { s.stopped_by_user = true; });
    (void)KillContainer(paths, c.id, c.stop_signal > 0 ? c.stop_signal : SIGTERM);
    for (int i = 0; i < 100 && EffectiveState(paths, c.id).status == "running"; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    (void)KillContainer(paths, c.id, SIGKILL);
  }
}

void EmitHealth(const Paths& paths, const Config& c, const std::string& status) {
  EmitContainerEvent(paths, c, "health_status", std::nullopt, status);
}

}  // namespace

namespace internal {

void HealthChecker::Start(const Paths& paths, const Config& c) {
  if (c.health.test.empty())
    return;
  {
    auto lock = LockFile(RunDir(paths, c.id) + "/health.lock", LOCK_EX);
    (void)WriteHealth(paths, c.id, json{{"Status", "starting"}, {"FailingStreak", 0}, {"Log", json::array()}});
  }
  thread_ = std::thread([this, &paths, &c] {
    auto started = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      bool in_start = std::chrono::steady_clock::now() - started < std::chrono::nanoseconds(c.health.start_period);
      int64_t wait = in_start ? c.health.start_interval : c.health.interval;
      if (cv_.wait_for(lk, std::chrono::nanoseconds(wait), [this] { return stop_; }))
        return;
      in_start = std::chrono::steady_clock::now() - started < std::chrono::nanoseconds(c.health.start_period);
      lk.unlock();
      Probe p = RunProbe(paths, c, &probe_pid_);
      lk.lock();
      if (stop_)
        return;  // the container ended during the probe: not its health
      lk.unlock();
      auto [before, after] = Record(paths, c, p, in_start);
      if (before != after) {
        EmitHealth(paths, c, after);
        if (after == "unhealthy")
          OnFailure(paths, c);
      }
      lk.lock();
    }
  });
}

void HealthChecker::Stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    if (pid_t p = probe_pid_.load(); p > 0)
      ::kill(p, SIGKILL);
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

HealthChecker::~HealthChecker() { Stop(); }

}  // namespace internal

Expected<bool> RunHealthcheck(const Paths& paths, const std::string& id) {
  KILN_ASSIGN_OR_RETURN(Config c, ReadConfig(paths, id));
  if (c.health.test.empty())
    return Error(Errc::kNotFound, "container " + id + " has no defined healthcheck");
  if (EffectiveState(paths, id).status != "running")
    return Error(Errc::kNotFound, "container " + id + " is not running");
  Probe p = RunProbe(paths, c);
  auto [before, after] = Record(paths, c, p, false);
  if (before != after) {
    EmitHealth(paths, c, after);
    if (after == "unhealthy")
      OnFailure(paths, c);
  }
  return p.exit_code == 0;  // podman: this probe's result, whatever the streak
}

}  // namespace kiln::run
