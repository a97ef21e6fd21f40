// Shared between the compose sources (private to src/compose).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "deployment/yaml.h"
#include "kiln/compose.h"
#include "kiln/deployment.h"
#include "kiln/error.h"

namespace kiln::compose {

using deployment::KindName;
using deployment::Mark;
using deployment::ParseYaml;
using deployment::YamlNode;
using deployment::IsYamlInt;

/// What translating the merged tree needs besides the tree.
struct TranslateContext {
  std::string project_name;
  std::string project_dir;
  std::vector<std::string> profiles;
  std::function<std::optional<std::string>(const std::string&)> lookup;  // interpolation environment
  ReadFileFn read_file;
  std::string home;  // for ~ in paths
  std::vector<std::string>* warnings = nullptr;
};

/// The merged, interpolated tree -> the model (services a profile leaves out dropped).
Expected<deployment::Project> Translate(const YamlNode& root, TranslateContext& ctx);

/// Merges `over` (a later -f file) into `base` by the compose-spec merge rules.
void MergeProject(YamlNode* base, const YamlNode& over);

/// Path helpers (pure string work, no file system).
std::string CleanPath(const std::string& path);
std::string JoinPath(const std::string& dir, const std::string& path);
std::string DirName(const std::string& path);
std::string BaseName(const std::string& path);

/// "file:line:column: path: why", kInvalidInput.
using deployment::NodeError;

}  // namespace kiln::compose
