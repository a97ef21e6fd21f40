// Compose files -> the deployment model (docs/compose.md). A pure
// translator: files are read through a callback, the environment is a map,
// nothing else is touched, so every form and every error is unit-tested
// without a file system (tests/compose). Errors name file:line:column and the
// key; warnings (unknown keys, include:/extends: left out, unset variables)
// are returned, never dropped.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/deployment.h"
#include "kiln/error.h"

namespace kiln::compose {

/// Reads a whole file; nullopt when it does not exist or cannot be read.
using ReadFileFn = std::function<std::optional<std::string>(const std::string& path)>;

struct LoadOptions {
  /// -f files in merge order (relative to `working_dir`). Empty: the first of
  /// compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml in
  /// `working_dir`, and its compose.override.* / docker-compose.override.* if present.
  std::vector<std::string> files;
  std::string working_dir;   // absolute: where kiln runs
  std::string project_name;  // -p ("" = COMPOSE_PROJECT_NAME, name:, the directory)
  /// --env-file files; empty: <project dir>/.env when it exists.
  std::vector<std::string> env_files;
  std::vector<std::string> profiles;           // --profile (plus COMPOSE_PROFILES)
  std::map<std::string, std::string> environ;  // the process environment
  ReadFileFn read_file;
};

struct LoadResult {
  deployment::Project project;
  std::vector<std::string> warnings;  // "compose.yaml:3:5: ..." lines, in order
};

/// The default file names, in the order docker compose looks for them.
const std::vector<std::string>& DefaultFileNames();

/// Loads, interpolates, merges and translates the project. Services a
/// profile leaves out are not in the result. Errors are kInvalidInput.
Expected<LoadResult> Load(const LoadOptions& options);

/// `kiln compose config`: the resolved project as docker compose config
/// prints it (canonical long forms, absolute paths, sorted keys).
std::string ConfigYaml(const deployment::Project& project);
nlohmann::json ConfigJson(const deployment::Project& project);

/// Interpolates one string as compose does (${V} ${V:-d} ${V-d} ${V:?e}
/// ${V?e} ${V:+r} ${V+r} $V $$, nested). `lookup` returns nullopt for an
/// unset variable; each unset variable used without a default is appended
/// to `unset`. An error holds the ${V?e} message.
Expected<std::string> Interpolate(const std::string& text,
                                  const std::function<std::optional<std::string>(const std::string&)>& lookup,
                                  std::vector<std::string>* unset);

/// A .env / env_file: KEY=VALUE lines, # comments, `export `, quotes,
/// ${V} in unquoted and double-quoted values (looked up in the lines before,
/// then `lookup`). A line with a name alone takes the value from `lookup`
/// (and is left out when unset). `file` names the errors.
Expected<std::vector<std::pair<std::string, std::string>>> ParseDotEnv(
    const std::string& text, const std::string& file,
    const std::function<std::optional<std::string>(const std::string&)>& lookup);

/// Splits a command string as compose does (shell words, no expansion).
Expected<std::vector<std::string>> SplitShellWords(const std::string& text);

/// The project name rule: lower case letters, digits, '-' and '_', starting
/// with a letter or digit. NormalizeProjectName makes one from a directory
/// name (lower case, other characters dropped), as docker compose does.
bool IsValidProjectName(const std::string& name);
std::string NormalizeProjectName(const std::string& name);

}  // namespace kiln::compose
