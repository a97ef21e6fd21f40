// kiln logout: removes stored credentials for a registry (or all of them).
#include <cstdio>
#include <string>

#include "cli/cli.h"
#include "kiln/registry.h"

namespace kiln::cli {

void AddLogoutCommand(CLI::App& app, Context& ctx) {
  struct Flags {
    bool all = false;
    std::string authfile;
    std::string registry;
  };
  auto flags = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand("logout", "remove stored credentials for a registry");
  cmd->add_flag("-a,--all", flags->all, "remove the credentials of every registry");
  cmd->add_option("--authfile", flags->authfile, "auth file to edit (default: every auth file kiln reads)");
  cmd->add_option("registry", flags->registry, "registry host[:port]");
  SetAction(cmd, ctx, [flags] {
    std::string r = flags->registry;
    for (std::string_view p : {"https://", "http://"})
      if (r.rfind(p, 0) == 0)
        r = r.substr(p.size());
    if (auto slash = r.find('/'); slash != std::string::npos)
      r = r.substr(0, slash);
    if (r.empty() && !flags->all)
      return ReportError(Error(Errc::kInvalidInput, "logout: give a registry or --all"));
    if (auto s = registry::RemoveCredentials(r, flags->all, flags->authfile); !s)
      return ReportError(std::move(s).error());
    if (flags->all)
      std::printf("Removed login credentials for all registries\n");
    else
      std::printf("Removed login credentials for %s\n", r.c_str());
    return 0;
  });
}

}  // namespace kiln::cli
