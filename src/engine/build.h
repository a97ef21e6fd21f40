// Build(): executes a BuildGraph into an image in the store.
//
// Stages run on the scheduler (plan.h) as soon as the stages they need are
// done, independent ones in parallel. Within a stage each step either hits
// the cache (its key, docs/cache.md, names a stored layer: nothing is
// unpacked or mounted) or runs: RUN in the sandbox over an overlay of the
// parent's layer directories, COPY/ADD/WORKDIR by the engine into the same
// kind of overlay; the upperdir is packed into the step's layer and then
// becomes that layer's directory. Metadata steps only edit the config.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/progress.h"
#include "kiln/acquire.h"
#include "kiln/containerfile.h"
#include "kiln/error.h"
#include "kiln/graph.h"
#include "kiln/layer.h"
#include "kiln/oci.h"
#include "kiln/sandbox.h"
#include "kiln/store.h"

namespace kiln::engine {

/// What BuildOptions::fetch_url got for one URL.
struct UrlFetchResult {
  bool not_modified = false;  // 304 to the conditional headers: nothing written
  std::string etag;
  std::string last_modified;
  std::string content_disposition;
};
/// GETs `url` into `fd` with `headers` (If-None-Match, If-Modified-Since).
using FetchUrlFn = std::function<Expected<UrlFetchResult>(
    const std::string& url, const std::vector<std::pair<std::string, std::string>>& headers, int fd)>;

struct BuildOptions {
  std::string context_dir;                                // the build context (host path)
  std::shared_ptr<const frontend::IgnoreMatcher> ignore;  // may be null
  std::map<std::string, std::string> named_contexts;      // --build-context NAME=DIR
  std::map<std::string, std::shared_ptr<const frontend::IgnoreMatcher>> named_ignores;  // their ignore files
  std::vector<std::string> tags;                          // full references
  std::string commit_name;                                // the first -t as written ("COMMIT name" line)
  layer::Compression compression = layer::Compression::kGzip;
  bool docker_format = false;                             // --format docker
  std::optional<int64_t> timestamp;                       // --timestamp / SOURCE_DATE_EPOCH
  NetworkMode network = NetworkMode::kPrivate;            // --network (RUN default)
  bool allow_network_host = false;                        // --allow network.host (RUN --network=host)
  /// --network NAME (a kiln network, docs/network.md "Builds"): puts the
  /// build's one network namespace on that network instead of slirp4netns
  /// (SharedNetwork's attach); RUN steps on the default network see
  /// `network_resolv_conf`. Null: the private network.
  std::function<Status(pid_t)> attach_network;
  std::string network_resolv_conf;
  std::string hostname = "kiln";                          // RUN's hostname (--build-arg BUILDKIT_SANDBOX_HOSTNAME)
  size_t jobs = 0;                                        // --jobs (0: number of cores)
  bool use_cache = true;                                  // false: --no-cache / --layers=false (no lookups)
  bool write_cache = true;                                // false: --layers=false (no records written either)
  std::vector<std::string> no_cache_filter;               // --no-cache-filter: stage names or 0-based indexes
  bool explain_cache = false;                             // --explain-cache: say why each step hit or missed
  std::string containerfile;                              // its path: names the build's per-stage records
  bool stat_cache = true;                                 // use and keep the context stat cache
  std::map<std::string, std::string> secrets;             // --secret: id -> value (never logged or stored)
  bool secret_cache_key = false;                          // --secret-cache-key: HMAC of used secrets in keys
  std::map<std::string, std::string> ssh;                 // --ssh: id -> agent socket path (host)
  std::map<std::string, std::string> labels;              // --label
  std::vector<std::string> unset_labels;                  // --unsetlabel: inherited labels dropped (before --label)
  std::vector<std::string> env;                           // --env K=V: the image's Env (RUN steps do not see it)
  std::vector<std::string> unset_env;                     // --unsetenv K: dropped from the image's Env
  bool omit_history = false;                              // --omit-history: no history in the config
  std::map<std::string, std::string> annotations;         // --annotation
  bool squash = false;                                    // --squash: the stage's new layers into one
  bool squash_all = false;                                // --squash-all: every layer into one
  // RUN steps' sandbox (--cap-add/--cap-drop, --ulimit, --add-host,
  // --shm-size, --device, --security-opt no-new-privileges), all checked by
  // the CLI. `run_key` describes the ones that change what a step may
  // produce; it goes into every RUN step's cache key when not empty.
  std::optional<uint64_t> run_capabilities;               // bounding set; unset = Docker's default
  std::vector<SandboxSpec::Rlimit> run_rlimits;
  std::vector<std::pair<std::string, std::string>> add_hosts;  // (host, ip) lines of /etc/hosts
  std::string shm_size;                                   // tmpfs size of /dev/shm ("" = 64 MiB)
  std::vector<std::string> devices;                       // host device paths, bound at the same path
  bool no_new_privileges = false;
  /// -v HOST:CTR[:ro]: a host directory or file bind-mounted into every RUN
  /// step (writes reach the host, as podman build; the mount point is never
  /// in a layer).
  struct Volume {
    std::string host;
    std::string target;
    bool read_only = false;
  };
  std::vector<Volume> run_volumes;
  bool no_hosts = false;                                  // --no-hosts: RUN keeps the rootfs's /etc/hosts
  /// --dns none: RUN keeps the rootfs's /etc/resolv.conf; else --dns,
  /// --dns-search, --dns-option replace those lines of the one RUN gets.
  bool dns_none = false;
  std::vector<std::string> dns_servers;
  std::vector<std::string> dns_search;
  std::vector<std::string> dns_options;
  std::string run_key;
  /// Pull a base image that is not in the store (set by the CLI; null = fail).
  std::function<Status(const std::string& reference, const Platform& platform)> pull;
  /// ADD from an http(s) URL (set by the CLI; null = fail).
  FetchUrlFn fetch_url;
  /// Where RUN steps run (null: the real sandbox, HostSandbox(); tests pass a fake).
  Sandbox* sandbox = nullptr;
};

struct BuildResult {
  Descriptor manifest;   // the image's manifest
  Digest image_id;       // config digest (podman's image ID)
};

/// The image a FROM or COPY --from reference names in the store: the one
/// rule of image::ResolveLocal (include/kiln/acquire.h). kNotFound when the
/// store has no such image (the caller may pull).
inline Expected<StoredImage> ResolveStoreImage(const Store& store, const std::string& reference,
                                               const std::optional<Platform>& platform = std::nullopt) {
  return image::ResolveLocal(store, reference, platform);
}

/// Runs `graph` and stores the resulting image (named by options.tags).
Expected<BuildResult> Build(const BuildGraph& graph, Store& store, const BuildOptions& options,
                            Progress& progress);

/// The key of a step (docs/cache.md): sha256 over the parent key, the
/// step's canonical op JSON and the content digests of its inputs.
Digest StepCacheKey(const Digest& parent, const Step& step, const std::vector<std::string>& inputs);

}  // namespace kiln::engine
