// kiln top CONTAINER [DESCRIPTOR...] (docs/run.md): the container's processes
// in podman's columns (AIX descriptors: user pid ppid pcpu etime tty time
// args, comm, group, nice, vsz, uid, gid).
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "kiln/run.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

void AddTopCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("top", "show the processes of a running container");
  auto args = std::make_shared<std::vector<std::string>>();
  cmd->add_option("args", *args, "CONTAINER, then descriptors (default: user pid ppid pcpu etime tty time args)")
      ->required();
  SetAction(cmd, ctx, [&ctx, args] {
    run::Paths paths = RunPaths(ctx);
    auto id = run::ResolveContainer(paths, (*args)[0]);
    if (!id)
      return ReportError(id.error());
    std::vector<std::string> descriptors;
    for (size_t i = 1; i < args->size(); ++i) {  // "pid,user" or "pid user", as podman
      std::string d = (*args)[i];
      for (size_t at = 0; at <= d.size();) {
        size_t comma = std::min(d.find(','), d.size());
        if (comma > at)
          descriptors.push_back(d.substr(at, comma - at));
        d = comma < d.size() ? d.substr(comma + 1) : "";
        at = 0;
        if (d.empty())
          break;
      }
    }
    auto rows = run::TopContainer(paths, *id, descriptors);
    if (!rows)
      return ReportError(rows.error());
    // podman's tabwriter: columns padded to the widest cell + 3, the last unpadded.
    std::vector<size_t> width;
    for (const auto& r : *rows)
      for (size_t i = 0; i < r.size(); ++i) {
        width.resize(std::max(width.size(), r.size()));
        width[i] = std::max(width[i], r[i].size());
      }
    for (const auto& r : *rows) {
      std::string line;
      for (size_t i = 0; i < r.size(); ++i)
        line += i + 1 < r.size() ? r[i] + std::string(width[i] - r[i].size() + 3, ' ') : r[i];
      std::printf("%s\n", line.c_str());
    }
    return 0;
  });
}

}  // namespace kiln::cli
