// kiln volume create|ls|inspect|rm|prune: named volumes (docs/run.md).
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/command.h"
#include "cli/format_util.h"
#include "kiln/random.h"
#include "kiln/run.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

namespace {

// podman's volume fields (plus UsedBy: the containers that use it).
nlohmann::json VolumeJson(const run::VolumeInfo& v) {
  return {{"Name", v.name},
          {"Driver", "local"},
          {"Mountpoint", v.mountpoint},
          {"CreatedAt", v.created},
          {"Labels", nlohmann::json::object()},
          {"Scope", "local"},
          {"Options", nlohmann::json::object()},
          {"MountCount", 0},
          {"UsedBy", v.used_by}};
}

}  // namespace

void AddVolumeCommand(CLI::App& app, Context& ctx) {
  auto* group = app.add_subcommand("volume", "manage named volumes");
  group->require_subcommand(1);
  {
    auto* cmd = group->add_subcommand("create", "create a volume (a random name if none is given)");
    auto name = std::make_shared<std::string>();
    auto ignore = std::make_shared<bool>(false);
    cmd->add_option("name", *name, "volume name");
    cmd->add_flag("--ignore", *ignore, "do nothing if the volume exists");
    SetCommand(cmd, ctx, [&ctx, name, ignore]() -> Status {
      std::string volume = *name;
      if (volume.empty()) {
        KILN_ASSIGN_OR_RETURN(volume, RandomHex(64));  // podman's anonymous volume names
      }
      KILN_ASSIGN_OR_RETURN(auto v, run::CreateVolume(RunPaths(ctx), volume, *ignore));
      std::printf("%s\n", v.name.c_str());
      return Ok();
    });
  }
  {
    auto* cmd = group->add_subcommand("ls", "list volumes");
    auto f = std::make_shared<ListFlags>();
    f->Add(cmd, "print only the names",
           "name=NAME (a substring), driver=local, dangling=true|false (no container uses it)",
           "json, a Go template ({{.Name}} {{.Mountpoint}}), or table TEMPLATE (docs/format.md)");
    SetAction(cmd, ctx, [&ctx, f] {
      auto filter = ListFilter::Parse(f->filters, {"name", "driver", "dangling"}, [](const std::string& key) {
        return "invalid filter \"" + key + "\" (volume ls takes name, driver, dangling)";
      });
      if (!filter)
        return ReportFormatError(filter.error());
      auto list = run::ListVolumes(RunPaths(ctx));
      if (!list)
        return ReportError(list.error());
      std::vector<nlohmann::json> rows, tmpl_rows;
      for (const auto& v : *list) {
        if (!filter->Match([&](const std::string& key, const std::string& val, size_t) {
              if (key == "name")
                return v.name.find(val) != std::string::npos;
              if (key == "driver")
                return val == "local";
              return (val == "true") == v.used_by.empty();  // dangling
            }))
          continue;
        if (f->quiet) {
          std::printf("%s\n", v.name.c_str());
          continue;
        }
        rows.push_back(VolumeJson(v));
        nlohmann::json t = rows.back();
        t["CreatedAt"] = GoTime(v.created);
        tmpl_rows.push_back(std::move(t));
      }
      if (f->quiet)
        return 0;
      format::ListOptions o;
      o.default_format = "table {{.Driver}}\t{{.Name}}";
      o.headers = {{"Name", "VOLUME NAME"}};
      o.template_options = TemplateOptions("list", "define.InspectVolumeData");
      return f->Print(o, rows, tmpl_rows, 2);
    });
  }
  AddInspectCommand(*group, ctx, "show volumes as JSON", "names", "volume names",
                    "json, or a Go template such as {{.Mountpoint}} (docs/format.md)",
                    TemplateOptions("inspect", "define.InspectVolumeData"), 2,
                    [&ctx](const std::string& n) -> Expected<nlohmann::json> {
                      KILN_ASSIGN_OR_RETURN(auto v, run::InspectVolume(RunPaths(ctx), n));
                      return VolumeJson(v);
                    });
  {
    auto rm = AddNamesCommand(*group, "rm", "remove volumes", "names", "volume names");
    auto force = std::make_shared<bool>(false);
    rm.cmd->add_flag("-f,--force", *force, "remove even when a container uses it");
    SetAction(rm.cmd, ctx, [&ctx, names = rm.names, force] {
      return ForEachName(*names, [&ctx, force](const std::string& n) { return run::RemoveVolume(RunPaths(ctx), n, *force); });
    }, kNotFoundFails);
  }
  AddPruneCommand(
      *group, ctx, "remove every volume no container uses",
      "do not ask for confirmation (kiln asks only when stdin is a terminal)",
      [&ctx]() -> Expected<std::string> {
        KILN_ASSIGN_OR_RETURN(auto volumes, run::ListVolumes(RunPaths(ctx)));
        std::string warning =
            "WARNING! This will remove all volumes not used by at least one container. The following volumes "
            "will be removed:";
        bool any = false;
        for (const auto& v : volumes)
          if (v.used_by.empty()) {
            warning += "\n" + v.name;
            any = true;
          }
        return any ? warning : "";
      },
      [&ctx] {
        auto removed = run::PruneVolumes(RunPaths(ctx));
        if (!removed)
          return ReportError(removed.error());
        for (const auto& n : *removed)
          std::printf("%s\n", n.c_str());
        return 0;
      });
}

}  // namespace kiln::cli
