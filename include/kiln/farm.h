// A build farm (docs/farm.md): `kiln farm create/ls/rm/update/build`, podman's
// spelling. A farm is a named list of nodes reached over SSH; `farm build`
// sends each requested platform to a node that builds it (natively when one
// can), each node pushes its image by digest, and the local kiln assembles and
// pushes the index from the digests the nodes report.
//
// The pure parts (configuration, node URLs, scheduling, the job name, the
// index) are separate from Build(), which starts ssh processes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/digest.h"
#include "kiln/error.h"

namespace kiln::farm {

/// One node: where it is and how to reach kiln there.
struct Node {
  std::string url;                       ///< ssh://[user@]host[:port]
  std::string identity;                  ///< ssh -i FILE; "" for ssh's default
  std::string kiln = "kiln";             ///< the kiln program on the node
  std::vector<std::string> ssh_options;  ///< each passed as `ssh -o OPT`
};

/// A Kubernetes farm's settings (`--driver kubernetes`, `--driver-opt`, as
/// buildx's kubernetes driver spells them).
struct KubeSettings {
  std::string namespace_name;              ///< "" = the kubeconfig context's namespace
  std::string image;                       ///< the kiln image (contrib/kiln-image)
  std::vector<std::string> node_selector;  ///< extra KEY=VALUE for every Job
  std::string kubeconfig;                  ///< kubectl --kubeconfig ("" = kubectl's default)
  std::string context;                     ///< kubectl --context ("" = the current one)
  std::string registry_secret;             ///< a kubernetes.io/dockerconfigjson Secret for the Jobs' pushes
};

struct Farm {
  std::string name;
  std::vector<Node> nodes;
  std::string driver = "ssh";  ///< "ssh" (nodes) or "kubernetes" (kube)
  KubeSettings kube;
};

/// Applies one `--driver-opt KEY=VALUE` (namespace, image, nodeselector,
/// kubeconfig, context, secret) to `kube`; kInvalidInput naming the option
/// for an unknown key or a bad value. nodeselector takes KEY=VALUE pairs
/// separated by ';' (kubernetes.io/arch is set per Job and may not be given).
Status ApplyDriverOpt(KubeSettings& kube, std::string_view opt);

/// The farms of one user ($XDG_CONFIG_HOME/kiln/farms.json).
struct Config {
  std::string default_farm;  ///< "" when none is set
  std::vector<Farm> farms;

  const Farm* Find(std::string_view name) const;
  Farm* Find(std::string_view name);
};

/// $XDG_CONFIG_HOME/kiln/farms.json, else $HOME/.config/kiln/farms.json.
std::string ConfigPath();
/// Reads the file; a missing file is an empty Config. kInvalidInput naming
/// the file for anything malformed.
Expected<Config> LoadConfig(const std::string& path);
/// Writes it atomically (0600: it may name identity files).
Status SaveConfig(const std::string& path, const Config& config);

/// The parts of ssh://[user@]host[:port] (no path, query or fragment).
struct SshUrl {
  std::string user, host;
  int port = 0;  ///< 0: ssh's default
};
Expected<SshUrl> ParseNodeUrl(std::string_view url);

/// The ssh command line that runs `remote_command` (one shell word string)
/// on `node`: BatchMode (never a password prompt), its -i, -p and -o.
std::vector<std::string> SshArgv(const Node& node, const std::string& remote_command);

/// What a node says it builds (from `kiln info --format json`).
struct NodeInfo {
  std::vector<std::string> native;    ///< "linux/amd64", ...
  std::vector<std::string> emulated;  ///< through binfmt_misc (qemu-user)
};
Expected<NodeInfo> ParseNodeInfo(std::string_view info_json);

/// Platform -> node: each platform goes to a node that builds it natively,
/// else one that emulates it; among those, the one with the fewest
/// platforms so far (then the farm's order). kInvalidInput naming the
/// platform and what each node offers when no node builds it.
struct Assignment {
  std::string platform;
  size_t node = 0;
  bool native = true;
};
Expected<std::vector<Assignment>> Schedule(const std::vector<std::string>& platforms,
                                           const std::vector<NodeInfo>& nodes,
                                           const std::vector<std::string>& node_names);

/// What one platform's build needs, hashed into its job name.
struct JobInputs {
  Digest context;  ///< the context tarball
  std::string containerfile, platform, image;
  std::vector<std::string> build_args, cache_from;
  std::string cache_to;
  std::string builder;  ///< what builds it when not an SSH node (the kiln image); "" is not hashed
};
/// "kiln-farm-" + 16 hex digits of a hash over every input: a retried build
/// has the same name (its node-side tag and work directory).
std::string JobName(const JobInputs& inputs);

/// The cache reference one platform's node uses for `ref` (--cache-from,
/// --cache-to): a tag of its own per platform, so that nodes sharing one
/// cache repository do not overwrite each other's records (the last writer
/// of a tag wins): "reg/cache" -> "reg/cache:linux-arm64",
/// "reg/cache:main" -> "reg/cache:main-linux-arm64".
std::string PlatformCacheRef(const std::string& ref, std::string_view platform);

/// One platform's image as a node pushed it.
struct PlatformImage {
  std::string platform;  ///< os/arch[/variant]
  std::string media_type;
  Digest digest;
  int64_t size = 0;
};
/// The OCI image index over `images`, in the given order (deterministic bytes).
std::string IndexJson(const std::vector<PlatformImage>& images);

struct BuildRequest {
  std::string context_dir;
  std::string containerfile;  ///< relative to context_dir ("" = Containerfile/Dockerfile)
  std::vector<std::string> platforms;  ///< empty: every native platform of the nodes
  std::string image;                   ///< registry reference the index is pushed to
  std::vector<std::string> build_args;
  std::vector<std::string> cache_from;
  std::string cache_to;
  std::string progress;         ///< the nodes' `build --progress` ("" = their default)
  bool tls_verify = true;       ///< also given to the nodes' pull and push
  std::string authfile, cert_dir;  ///< the local index push
  /// Kubernetes farms: print the objects (YAML) instead of applying them.
  bool dry_run = false;
  /// Progress and the nodes' output, one line at a time ("[platform@node] ...").
  std::function<void(const std::string&)> log;
};
struct BuildResult {
  Digest index;
  std::vector<PlatformImage> images;
  std::vector<std::string> nodes;  ///< per image: the node URL that built it
};
/// The objects of a Kubernetes farm build (docs/farm.md "Kubernetes
/// driver"): one ConfigMap holding the context's regular files, one Job per
/// platform named JobName() (nodeSelector kubernetes.io/arch, hostUsers:
/// false, not privileged, the kiln image: `kiln build` in an init
/// container, `kiln push --digestfile /dev/termination-log` after it).
struct KubeObjects {
  std::vector<std::string> documents;  ///< each one object as JSON (which is YAML)
  std::string configmap;               ///< the context ConfigMap's name
  std::vector<std::string> platforms, jobs;  ///< per Job, in order
  std::string repository;              ///< REGISTRY/NAME the Jobs push to
};
/// kInvalidInput for a context the driver cannot send (a symlink or special
/// file, more than kMaxKubeContext bytes), naming the path or the size.
Expected<KubeObjects> MakeKubeObjects(const Farm& farm, const BuildRequest& request);
/// The largest context (sum of file sizes) a ConfigMap carries: 1 MiB
/// objects, base64 in binaryData.
constexpr int64_t kMaxKubeContext = 700 * 1024;
/// The documents as one YAML stream ("---" between them).
std::string KubeYaml(const KubeObjects& objects);

/// Runs the farm build: asks every node what it builds, schedules, sends the
/// context (content-addressed: a node that has it is not sent it again),
/// builds and pushes on the nodes in parallel, then pushes the index. When a
/// node fails the other nodes' builds are stopped and no index is pushed.
/// A Kubernetes farm (farm.driver == "kubernetes") is driven with kubectl:
/// apply the objects, wait for every Job, read each Job's digest from its
/// push container's termination message; a failed Job deletes the others'
/// and no index is pushed.
Expected<BuildResult> Build(const Farm& farm, const BuildRequest& request);

}  // namespace kiln::farm
