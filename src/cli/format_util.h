// --format for the CLI's list and inspect commands (docs/format.md): JSON,
// Go templates and podman's `table`, through src/format.
#pragma once

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

/// Go's time.Time printing: "2026-12-05 01:13:24 +0000 UTC" ("" for "").
std::string GoTime(const std::string& rfc3339);
/// Unix seconds of an RFC 3339 time; podman's zero time (-62135596800) for "".
int64_t UnixOrZero(const std::string& rfc3339);

}  // namespace kiln::cli
