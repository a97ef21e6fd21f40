// Go text/template output formats (`--format`), as podman and docker users
// write them: {{.Field}}, {{.A.B}}, {{json .}}, {{range}}, {{if}}, pipelines,
// variables, podman's functions (join, lower, upper, title, truncate, pad,
// split, json) and Go's built-ins (printf, len, index, slice, eq, lt, and,
// ...), and podman's `table` prefix with headers and aligned columns.
//
// The data are nlohmann::json values with podman's field names. A JSON
// object is a Go struct: a missing field is an error ("can't evaluate field
// Foo in type ..."), except the objects reached through a field listed in
// Options::map_fields (Labels, ...), which are Go maps: a missing key prints
// "<no value>". Pure code: no I/O, no syscalls (docs/format.md).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/error.h"

namespace kiln::format {

struct Options {
  /// Names the template in messages: "template: ps:1:2: ..." ("" leaves it out).
  std::string name;
  /// Go type of the root object in "can't evaluate field X in type T".
  std::string type_name = "struct";
  /// Fields whose object value is a Go map rather than a struct.
  std::set<std::string> map_fields = {"Labels", "Annotations", "Options", "Volumes", "ExposedPorts",
                                      "Ports", "Networks", "DriverOpts", "Env"};
  /// Execution stops with an error when the output grows beyond this.
  size_t max_output = size_t{64} << 20;
  /// ... and when it has run this many actions and loop iterations.
  size_t max_steps = 50'000'000;
};

class Template {
 public:
  /// Parses `text`; kInvalidInput "template: LINE:COL: what" on a syntax error.
  static Expected<Template> Parse(std::string_view text, Options options = {});

  /// Runs the template with `data` as dot and $. kInvalidInput
  /// "template: LINE:COL: executing at <.Foo>: can't evaluate field Foo in type T".
  Expected<std::string> Execute(const nlohmann::json& data) const;

  /// The header row of a `table` format: each action prints the header of
  /// the first field it names ({{.ID}} -> "ID", {{.CreatedAt}} -> "CREATED
  /// AT", or `overrides[field]`), control structures render their body once.
  Expected<std::string> ExecuteHeaders(const std::map<std::string, std::string>& overrides) const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

/// podman's header for a field: camel-case words, upper case ("ImageID" ->
/// "IMAGE ID", "CreatedAt" -> "CREATED AT", "ID" -> "ID").
std::string HeaderFor(std::string_view field);

/// Go's text/tabwriter as podman configures it (minimum cell width 12,
/// padding 2, spaces): every tab-terminated cell of a column block is padded
/// to the widest; the text after the last tab of a line is left as is.
std::string AlignTabs(std::string_view text);

/// How a list command (ps, images, volume ls, history) prints its rows.
struct ListOptions {
  /// Used when --format is empty or just "table": "table {{.ID}}\t{{.Names}}".
  std::string default_format;
  /// Header overrides ("ID" -> "CONTAINER ID").
  std::map<std::string, std::string> headers;
  bool no_heading = false;
  Options template_options;
};

/// True for podman's `--format json` (any case, surrounding blanks ignored).
bool IsJsonFormat(std::string_view format);

/// Renders `rows` as podman does for `format`: a "table ..." format (or an
/// empty one: the default) gets a header row (unless no_heading) and aligned
/// columns, spaces between actions becoming column breaks; any other
/// template is run once per row, with "\t" and "\n" escapes expanded and a
/// newline added when the format has none at its end.
Expected<std::string> RenderList(std::string_view format, const std::vector<nlohmann::json>& rows,
                                 const ListOptions& options);

/// Renders one object (inspect, info, version): "json" or empty prints
/// `indent`-indented JSON; a template is run with "\t"/"\n" expanded and a
/// final newline added.
Expected<std::string> RenderOne(std::string_view format, const nlohmann::json& value, const Options& options,
                                int indent = 4);

}  // namespace kiln::format
