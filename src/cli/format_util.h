// --format for the CLI's list and inspect commands (docs/format.md): JSON,
// Go templates and podman's `table`, through src/format.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "kiln/format.h"

namespace kiln::cli {

/// A bad --format (syntax or execution): "kiln: error: template: ..." and
/// exit 125, as podman.
int ReportFormatError(const Error& error);

/// A list command's output: `--format json` prints `json_rows` as one array
/// (indented by `indent`); anything else renders `rows` with
/// format::RenderList. Returns the exit code.
int PrintList(const std::string& format, const std::vector<nlohmann::json>& json_rows,
              const std::vector<nlohmann::json>& rows, const format::ListOptions& options, int indent = 4);

/// inspect-like output: no format or `json` prints the array; a template is
/// run on each object in turn.
int PrintObjects(const std::string& format, const std::vector<nlohmann::json>& objects,
                 const format::Options& options, int indent = 4);

/// The flags of a list command as podman spells them: -q/--quiet,
/// --noheading/-n, -f/--filter (repeatable) and --format.
struct ListFlags {
  bool quiet = false, no_heading = false;
  std::string format;
  std::vector<std::string> filters;
  /// Registers them on `cmd` in that order, with the command's help texts.
  void Add(CLI::App* cmd, const std::string& quiet_help, const std::string& filter_help,
           const std::string& format_help);
  /// Prints a list (PrintList) with --format and --noheading; `o` gives the
  /// default format, the headers and the template options.
  int Print(format::ListOptions o, const std::vector<nlohmann::json>& json_rows,
            const std::vector<nlohmann::json>& rows, int indent) const;
};

/// format::Options naming the command (`name`, for template errors) and
/// podman's Go type of the objects (`type_name`, for `{{printf "%T" .}}`).
format::Options TemplateOptions(const std::string& name, const std::string& type_name);

/// An inspect command: `one(name)` for every name; a failure is reported
/// and the others are still printed (PrintObjects). Returns the printing's
/// exit code, else the last failure's, else 0.
int InspectEach(const std::vector<std::string>& names, const std::string& format, const format::Options& options,
                int indent, const std::function<Expected<nlohmann::json>(const std::string& name)>& one);

/// An rm-like command: `op(name)` for every name, printing the name when it
/// succeeds; a failure is reported and the others go on. Returns the last
/// failure's exit code, else 0.
int ForEachName(const std::vector<std::string>& names, const std::function<Status(const std::string& name)>& op);

/// podman's `--filter KEY=VALUE` of a list command (ps, images, volume ls,
/// secret ls, network ls|prune): the values by key; one key's values OR,
/// keys AND.
class ListFilter {
 public:
  /// Refuses a key not in `keys` (the error `unknown_key(key)` says which
  /// keys the command takes: each command keeps podman's wording) and a
  /// spec without a value ("--filter SPEC: expected KEY=VALUE").
  static Expected<ListFilter> Parse(const std::vector<std::string>& specs, const std::vector<std::string>& keys,
                                    const std::function<std::string(const std::string& key)>& unknown_key);

  /// True when every key has a value for which `one(key, value, index)`
  /// holds (index: the value's place among its key's values).
  bool Match(const std::function<bool(const std::string& key, const std::string& value, size_t index)>& one) const;

  bool Has(const std::string& key) const { return by_key_.count(key) > 0; }
  const std::map<std::string, std::vector<std::string>>& by_key() const { return by_key_; }

 private:
  std::map<std::string, std::vector<std::string>> by_key_;
};

/// podman's label=KEY or label=KEY=VALUE filter value against a labels object
/// (JSON object of strings, or a map).
bool LabelMatches(const nlohmann::json& labels, const std::string& spec);
bool LabelMatches(const std::map<std::string, std::string>& labels, const std::string& spec);

/// Go's time.Time printing: "2026-12-05 01:13:24 +0000 UTC" ("" for "").
std::string GoTime(const std::string& rfc3339);
/// Unix seconds of an RFC 3339 time; podman's zero time (-62135596800) for "".
int64_t UnixOrZero(const std::string& rfc3339);

}  // namespace kiln::cli
