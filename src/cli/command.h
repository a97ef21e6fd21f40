// Shapes the CLI's commands share (docs/hacking.md "Adding a command"):
// bodies that return Status or Expected<int> -- errors go through
// ReportError, so a body is a list of KILN_ASSIGN_OR_RETURN/KILN_TRY lines
// instead of if/return ladders -- and the subcommands podman spells the same
// way in every group: NAME... lists, `inspect [-f FORMAT] NAME...` and
// `prune [-f]` with its confirmation.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "kiln/format.h"

namespace kiln::cli {

/// A body's result as an exit code: the code itself, 0 for Ok, else the
/// error reported (ReportError under the command's ExitRules).
inline int ExitCode(int code) { return code; }
inline int ExitCode(const Status& s) { return s ? 0 : ReportError(s.error()); }
inline int ExitCode(const Expected<int>& r) { return r ? *r : ReportError(r.error()); }

/// SetAction for a body that returns Status or Expected<int>.
template <typename Body>
void SetCommand(CLI::App* cmd, Context& ctx, Body body, ExitRules rules = {}) {
  SetAction(cmd, ctx, [body = std::move(body)] { return ExitCode(body()); }, rules);
}

/// A subcommand of `parent` that takes one or more names: `arg` is the
/// positional's name ("containers"), `arg_help` says what they are.
struct NamesCommand {
  CLI::App* cmd;
  std::shared_ptr<std::vector<std::string>> names;
};
NamesCommand AddNamesCommand(CLI::App& parent, const std::string& name, const std::string& help,
                             const std::string& arg, const std::string& arg_help);

/// podman's `GROUP inspect [-f FORMAT] NAME...`: `one(name)` gives each
/// object; they are printed as InspectEach does (a failure is reported, the
/// others still printed). `format_help` is the -f help text.
CLI::App* AddInspectCommand(CLI::App& parent, Context& ctx, const std::string& help, const std::string& arg,
                            const std::string& arg_help, const std::string& format_help,
                            const format::Options& options, int indent,
                            std::function<Expected<nlohmann::json>(const std::string& name)> one);

/// podman's `GROUP prune [-f]`: without -f, `warning()` is asked (Confirm:
/// only when stdin is a terminal; "" means there is nothing to prune and
/// nothing is asked), then `prune()` runs unless the answer was no.
CLI::App* AddPruneCommand(CLI::App& parent, Context& ctx, const std::string& help, const std::string& force_help,
                          std::function<Expected<std::string>()> warning, std::function<int()> prune);

}  // namespace kiln::cli
