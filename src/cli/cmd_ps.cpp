// kiln ps [-a] [-q] [--format json]: the containers.
#include <ctime>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "kiln/run.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

namespace {

time_t ParseTime(const std::string& rfc3339) {
  struct tm tm = {};
  if (rfc3339.empty() || !::strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm))
    return 0;
  return ::timegm(&tm);
}

std::string Ago(const std::string& when) {
  time_t t = ParseTime(when);
  if (t == 0)
    return "";
  long d = static_cast<long>(std::time(nullptr) - t);
  if (d < 1)
    return "Less than a second";
  if (d < 60)
    return std::to_string(d) + (d == 1 ? " second" : " seconds");
  if (d < 3600)
    return std::to_string(d / 60) + (d / 60 == 1 ? " minute" : " minutes");
  if (d < 86400)
    return std::to_string(d / 3600) + (d / 3600 == 1 ? " hour" : " hours");
  return std::to_string(d / 86400) + (d / 86400 == 1 ? " day" : " days");
}

std::string StatusText(const run::ContainerInfo& c) {
  if (c.status == "running")
    return "Up " + Ago(c.started_at);
  if (c.status == "exited") {
    std::string ago = Ago(c.finished_at);
    return "Exited (" + std::to_string(c.exit_code) + ")" + (ago.empty() ? "" : " " + ago + " ago");
  }
  return "Created";
}

std::string Joined(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (const auto& x : v)
    s += (s.empty() ? "" : sep) + x;
  return s;
}

}  // namespace

void AddPsCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("ps", "list containers (running ones; -a for all)");
  auto all = std::make_shared<bool>(false);
  auto quiet = std::make_shared<bool>(false);
  auto format = std::make_shared<std::string>();
  cmd->add_flag("-a,--all", *all, "show every container, not only the running ones");
  cmd->add_flag("-q,--quiet", *quiet, "print only the container IDs");
  cmd->add_option("--format", *format, "json: one JSON array")->check(CLI::IsMember({"json", "table"}));
  SetAction(cmd, ctx, [&ctx, all, quiet, format] {
    auto list = run::ListContainers(RunPaths(ctx), *all);
    if (!list)
      return ReportError(list.error());
    if (*format == "json") {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& c : *list)
        out.push_back({{"Id", c.id},
                       {"Names", {c.name}},
                       {"Image", c.image},
                       {"ImageID", c.image_id},
                       {"Command", c.command},
                       {"Created", c.created},
                       {"State", c.status},
                       {"Status", StatusText(c)},
                       {"ExitCode", c.exit_code},
                       {"StartedAt", c.started_at},
                       {"ExitedAt", c.finished_at},
                       {"Pid", c.pid},
                       {"Ports", c.ports},
                       {"AutoRemove", c.auto_remove}});
      std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      return 0;
    }
    if (*quiet) {
      for (const auto& c : *list)
        std::printf("%s\n", c.id.substr(0, 12).c_str());
      return 0;
    }
    std::printf("%-12s  %-28s  %-20s  %-14s  %-24s  %-28s  %s\n", "CONTAINER ID", "IMAGE", "COMMAND", "CREATED",
                "STATUS", "PORTS", "NAMES");
    for (const auto& c : *list) {
      std::string command = Joined(c.command, " ");
      if (command.size() > 20)
        command = command.substr(0, 17) + "...";
      std::string created = Ago(c.created);
      created = created.empty() ? "" : created + " ago";
      std::printf("%-12s  %-28s  %-20s  %-14s  %-24s  %-28s  %s\n", c.id.substr(0, 12).c_str(), c.image.c_str(),
                  ("\"" + command + "\"").c_str(), created.c_str(), StatusText(c).c_str(),
                  Joined(c.ports, ", ").c_str(), c.name.c_str());
    }
    return 0;
  });
}

}  // namespace kiln::cli
