// The command shapes of command.h.
#include "cli/command.h"

#include "cli/format_util.h"

namespace kiln::cli {

NamesCommand AddNamesCommand(CLI::App& parent, const std::string& name, const std::string& help,
                             const std::string& arg, const std::string& arg_help) {
  NamesCommand c{parent.add_subcommand(name, help), std::make_shared<std::vector<std::string>>()};
  c.cmd->add_option(arg, *c.names, arg_help)->required();
  return c;
}

CLI::App* AddInspectCommand(CLI::App& parent, Context& ctx, const std::string& help, const std::string& arg,
                            const std::string& arg_help, const std::string& format_help,
                            const format::Options& options, int indent,
                            std::function<Expected<nlohmann::json>(const std::string& name)> one) {
  auto* cmd = parent.add_subcommand("inspect", help);
  auto names = std::make_shared<std::vector<std::string>>();
  auto format = std::make_shared<std::string>();
  cmd->add_option("-f,--format", *format, format_help);
  cmd->add_option(arg, *names, arg_help)->required();
  SetAction(cmd, ctx, [names, format, options, indent, one = std::move(one)] {
    return InspectEach(*names, *format, options, indent, one);
  });
  return cmd;
}

CLI::App* AddPruneCommand(CLI::App& parent, Context& ctx, const std::string& help, const std::string& force_help,
                          std::function<Expected<std::string>()> warning, std::function<int()> prune) {
  auto* cmd = parent.add_subcommand("prune", help);
  auto force = std::make_shared<bool>(false);
  cmd->add_flag("-f,--force", *force, force_help);
  SetAction(cmd, ctx, [force, warning = std::move(warning), prune = std::move(prune)] {
    if (!*force) {
      auto w = warning();
      if (!w)
        return ReportError(w.error());
      if (w->empty() || !Confirm(*w))
        return 0;
    }
    return prune();
  });
  return cmd;
}

}  // namespace kiln::cli
