// Shared by the farm's drivers (build.cpp: SSH, kube.cpp: Kubernetes); not a
// public API.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "kiln/farm.h"
#include "kiln/reference.h"

namespace kiln::farm::internal {

struct Output {
  std::string out;
  std::string err_tail;  ///< the last stderr lines, for the error message
  int status = -1;
};

/// Runs `argv`; stdin from `stdin_fd` (-1: a pipe held open until it ends),
/// stdout collected, stderr lines passed to `on_err`; `*pid_out` is set
/// while it runs.
Expected<Output> RunCapture(const std::vector<std::string>& argv, int stdin_fd,
                            const std::function<void(const std::string&)>& on_err, std::atomic<pid_t>* pid_out);
/// "exit N: <the last stderr lines>".
std::string Describe(const Output& o);
bool Succeeded(const Output& o);

/// What every driver checks first: -t names a registry and a tag, and the
/// Containerfile (found as `kiln build` does) is inside the context.
struct Target {
  ImageReference ref;
  std::string containerfile;  ///< relative to the context
};
Expected<Target> CheckRequest(const Farm& farm, const BuildRequest& req);

/// One platform's image as a node or Job reported it.
struct Reported {
  std::string platform;
  Digest digest;
  std::string where;  ///< the node URL or "job NAME"
};
/// HEADs each reported digest in the target repository (present, an image
/// manifest) and pushes the index under the target's tag.
Expected<BuildResult> PushIndex(const Farm& farm, const BuildRequest& req, const ImageReference& ref,
                                const std::vector<Reported>& reported);

/// The Kubernetes driver's Build().
Expected<BuildResult> BuildKube(const Farm& farm, const BuildRequest& req);

}  // namespace kiln::farm::internal
