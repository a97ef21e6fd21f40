// kiln volume create|ls|inspect|rm|prune: named volumes (docs/run.md).
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "kiln/run.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

namespace {

nlohmann::json VolumeJson(const run::VolumeInfo& v) {
  return {{"Name", v.name}, {"Driver", "local"}, {"Mountpoint", v.mountpoint}, {"CreatedAt", v.created},
          {"UsedBy", v.used_by}};
}

std::string RandomVolumeName() {
  std::string hex;
  static const char kHex[] = "0123456789abcdef";
  FILE* f = std::fopen("/dev/urandom", "rb");
  for (int i = 0; i < 32; ++i) {
    int ch = f ? std::fgetc(f) : i;
    hex += kHex[(ch >> 4) & 15];
    hex += kHex[ch & 15];
  }
  if (f)
    std::fclose(f);
  return hex;
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
    SetAction(cmd, ctx, [&ctx, name, ignore] {
      auto v = run::CreateVolume(RunPaths(ctx), name->empty() ? RandomVolumeName() : *name, *ignore);
      if (!v)
        return ReportError(v.error());
      std::printf("%s\n", v->name.c_str());
      return 0;
    });
  }
  {
    auto* cmd = group->add_subcommand("ls", "list volumes");
    auto quiet = std::make_shared<bool>(false);
    auto format = std::make_shared<std::string>();
    cmd->add_flag("-q,--quiet", *quiet, "print only the names");
    cmd->add_option("--format", *format, "json: one JSON array")->check(CLI::IsMember({"json", "table"}));
    SetAction(cmd, ctx, [&ctx, quiet, format] {
      auto list = run::ListVolumes(RunPaths(ctx));
      if (!list)
        return ReportError(list.error());
      if (*format == "json") {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& v : *list)
          out.push_back(VolumeJson(v));
        std::printf("%s\n", out.dump(2).c_str());
        return 0;
      }
      if (!*quiet)
        std::printf("%-10s %s\n", "DRIVER", "VOLUME NAME");
      for (const auto& v : *list)
        if (*quiet)
          std::printf("%s\n", v.name.c_str());
        else
          std::printf("%-10s %s\n", "local", v.name.c_str());
      return 0;
    });
  }
  {
    auto* cmd = group->add_subcommand("inspect", "show volumes as JSON");
    auto names = std::make_shared<std::vector<std::string>>();
    cmd->add_option("names", *names, "volume names")->required();
    SetAction(cmd, ctx, [&ctx, names] {
      nlohmann::json out = nlohmann::json::array();
      int rc = 0;
      for (const auto& n : *names) {
        auto v = run::InspectVolume(RunPaths(ctx), n);
        if (!v) {
          rc = ReportError(v.error());
          continue;
        }
        out.push_back(VolumeJson(*v));
      }
      std::printf("%s\n", out.dump(2).c_str());
      return rc;
    });
  }
  {
    auto* cmd = group->add_subcommand("rm", "remove volumes");
    auto names = std::make_shared<std::vector<std::string>>();
    auto force = std::make_shared<bool>(false);
    cmd->add_flag("-f,--force", *force, "remove even when a container uses it");
    cmd->add_option("names", *names, "volume names")->required();
    SetAction(cmd, ctx, [&ctx, names, force] {
      int rc = 0;
      for (const auto& n : *names) {
        if (auto st = run::RemoveVolume(RunPaths(ctx), n, *force); !st) {
          rc = ReportError(st.error());
          continue;
        }
        std::printf("%s\n", n.c_str());
      }
      return rc;
    });
  }
  {
    auto* cmd = group->add_subcommand("prune", "remove every volume no container uses");
    auto force = std::make_shared<bool>(false);
    cmd->add_flag("-f,--force", *force, "do not ask (kiln never asks; accepted for podman compatibility)");
    SetAction(cmd, ctx, [&ctx] {
      auto removed = run::PruneVolumes(RunPaths(ctx));
      if (!removed)
        return ReportError(removed.error());
      for (const auto& n : *removed)
        std::printf("%s\n", n.c_str());
      return 0;
    });
  }
}

}  // namespace kiln::cli
