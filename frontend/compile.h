// The compiler: ast::File + build options -> BuildGraph (BuildKit's
// dockerfile2llb + instructions packages). Pure: base images are described
// by the injected resolve_base, never fetched here.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "ast.h"
#include "kiln/error.h"
#include "kiln/graph.h"

namespace kiln::frontend {

/// Describes a base image for FROM. Called only for stages reachable from
/// the target, once per (reference, platform). An error fails the compile.
using ResolveBaseFn = std::function<Expected<BaseImageInfo>(const std::string& ref, const Platform& platform)>;

struct CompileOptions {
  std::map<std::string, std::string> build_args;  // --build-arg K=V (K alone: the CLI looks K up in its env)
  std::string target;                             // --target, "" = the last stage
  Platform target_platform;                       // empty = linux/amd64
  Platform build_platform;                        // empty = target_platform
  /// --build-context NAME=VALUE: a value starting with docker-image:// is an
  /// image, anything else a local directory.
  std::map<std::string, std::string> build_contexts;
  ResolveBaseFn resolve_base;                     // null = every base has an empty config
};

/// Compiles the file. Errors are kInvalidInput ("<file>:<line>: <what>"),
/// or whatever resolve_base returned, with the FROM location added.
Expected<BuildGraph> Compile(const File& file, const CompileOptions& options);

/// Validates and normalizes an image reference the way Docker does for FROM
/// ("alpine" -> "docker.io/library/alpine:latest"). kInvalidInput if invalid.
Expected<std::string> NormalizeImageReference(std::string_view ref);

}  // namespace kiln::frontend
