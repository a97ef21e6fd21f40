// kiln logs [-f] [-t] [--since T] [--until T] [--tail N] CONTAINER: the
// output of a detached container (podman's flags; times: docs/run.md).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <regex>
#include <string>

#include "cli/cli.h"
#include "kiln/run.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

/// Also `kiln events` (cmd_events.cpp).
Expected<int64_t> ParseLogTime(const std::string& flag, const std::string& v);

/// podman's --since/--until values: a Go duration before now ("10m",
/// "1h30m", "2.5s"), Unix seconds ("1700000000[.123]"), or an RFC 3339
/// date/time ("2026-12-05", "2026-12-05T02:30:00[.123][Z|+01:00]", local
/// time without a zone). Unix nanoseconds.
Expected<int64_t> ParseLogTime(const std::string& flag, const std::string& v) {
  static const std::regex duration(R"(((\d+(\.\d+)?)(ns|us|µs|ms|s|m|h))+)");
  static const std::regex part(R"((\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h))");
  static const std::regex unix_time(R"((\d+)(\.(\d{1,9}))?)");
  static const std::regex rfc3339(
      R"((\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}:?\d{2})?)");
  std::smatch m;
  if (std::regex_match(v, duration)) {
    double ns = 0;
    for (auto it = std::sregex_iterator(v.begin(), v.end(), part); it != std::sregex_iterator(); ++it) {
      double n = std::stod((*it)[1].str());
      std::string u = (*it)[2].str();
      double scale = u == "ns" ? 1 : u == "us" || u == "µs" ? 1e3 : u == "ms" ? 1e6 : u == "s" ? 1e9 : u == "m" ? 60e9 : 3600e9;
      ns += n * scale;
    }
    return NowNs() - static_cast<int64_t>(ns);
  }
  if (std::regex_match(v, m, unix_time)) {
    std::string frac = m[3].str();
    frac.resize(9, '0');
    return std::stoll(m[1].str()) * 1000000000LL + (m[3].matched ? std::stoll(frac) : 0);
  }
  if (std::regex_match(v, m, rfc3339)) {
    struct tm tm {};
    tm.tm_year = std::stoi(m[1].str()) - 1900;
    tm.tm_mon = std::stoi(m[2].str()) - 1;
    tm.tm_mday = std::stoi(m[3].str());
    tm.tm_hour = m[4].matched ? std::stoi(m[4].str()) : 0;
    tm.tm_min = m[5].matched ? std::stoi(m[5].str()) : 0;
    tm.tm_sec = m[6].matched ? std::stoi(m[6].str()) : 0;
    time_t secs;
    if (m[8].matched) {
      secs = ::timegm(&tm);
      std::string z = m[8].str();
      if (z != "Z") {
        int sign = z[0] == '-' ? -1 : 1;
        z.erase(std::remove(z.begin(), z.end(), ':'), z.end());
        secs -= sign * (std::stoi(z.substr(1, 2)) * 3600 + std::stoi(z.substr(3, 2)) * 60);
      }
    } else {
      tm.tm_isdst = -1;
      secs = ::mktime(&tm);
    }
    std::string frac = m[7].str();
    frac.resize(9, '0');
    return static_cast<int64_t>(secs) * 1000000000LL + (m[7].matched ? std::stoll(frac) : 0);
  }
  return Error(Errc::kInvalidInput, "logs: invalid " + flag + " value \"" + v +
                                        "\": want a duration (10m, 1h30m), Unix seconds or an RFC 3339 time");
}


void AddLogsCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("logs", "print the stdout/stderr of a detached container");
  auto o = std::make_shared<run::LogOptions>();
  auto since = std::make_shared<std::string>();
  auto until = std::make_shared<std::string>();
  auto name = std::make_shared<std::string>();
  cmd->add_flag("-f,--follow", o->follow, "keep printing new output until the container stops");
  cmd->add_flag("-t,--timestamps", o->timestamps, "prefix each line with the time it was written (RFC 3339)");
  cmd->add_option("--since", *since, "only lines written since TIME (10m, 1h30m, Unix seconds, RFC 3339)");
  cmd->add_option("--until", *until, "only lines written until TIME (as --since)");
  cmd->add_option("--tail", o->tail, "print only the last N lines (-1: all)");
  cmd->add_option("container", *name, "container name or ID")->required();
  SetAction(cmd, ctx, [&ctx, o, since, until, name] {
    if (!since->empty()) {
      auto t = ParseLogTime("--since", *since);
      if (!t)
        return ReportError(t.error());
      o->since_ns = *t;
    }
    if (!until->empty()) {
      auto t = ParseLogTime("--until", *until);
      if (!t)
        return ReportError(t.error());
      o->until_ns = *t;
    }
    run::Paths paths = RunPaths(ctx);
    auto id = run::ResolveContainer(paths, *name);
    if (!id)
      return ReportError(id.error());
    if (auto st = run::WriteLogs(paths, *id, *o, 1); !st)
      return ReportError(st.error());
    return 0;
  });
}

}  // namespace kiln::cli
