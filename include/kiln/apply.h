// Applying a deployment model (kiln/deployment.h) to the machine: the run
// side of `kiln compose up/down/ps/...` (docs/compose.md) and of `kube play`.
//
// Up() creates what the project declares -- its networks (network module),
// named volumes (run module), secrets (secret module) -- gets the images
// (built through the caller's build hook, else image::Acquire), and creates
// and starts one container per service through run::Run, in depends_on
// order, level by level: the services of one level start in parallel
// threads, and a service waits, before it starts, for the conditions
// its dependencies name (service_started, service_healthy through the
// container's health_status events, service_completed_successfully through
// its died event). Everything is named and labelled as docker compose does:
// containers `<project>-<service>-1` (or container_name) labelled
// com.docker.compose.project/service/container-number/oneoff/config-hash,
// networks `<project>_<key>` labelled com.docker.compose.project/network.
// The reverse (FindContainers, FindNetworks) finds them by those labels, so
// down/ps/logs need nothing but the project name.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kiln/deployment.h"
#include "kiln/error.h"
#include "kiln/network.h"
#include "kiln/run.h"

namespace kiln {
class Store;
}

namespace kiln::apply {

inline constexpr char kProjectLabel[] = "com.docker.compose.project";
inline constexpr char kServiceLabel[] = "com.docker.compose.service";
inline constexpr char kNumberLabel[] = "com.docker.compose.container-number";
inline constexpr char kOneoffLabel[] = "com.docker.compose.oneoff";
inline constexpr char kConfigHashLabel[] = "com.docker.compose.config-hash";
inline constexpr char kImageLabel[] = "com.docker.compose.image";
inline constexpr char kWorkingDirLabel[] = "com.docker.compose.project.working_dir";
inline constexpr char kConfigFilesLabel[] = "com.docker.compose.project.config_files";
inline constexpr char kDependsOnLabel[] = "com.docker.compose.depends_on";
inline constexpr char kNetworkLabel[] = "com.docker.compose.network";
inline constexpr char kVolumeLabel[] = "com.docker.compose.volume";

/// What applying works on, and the caller's hooks.
struct Env {
  Store* store = nullptr;
  run::Paths paths;
  /// Builds `service`'s image and names it `image` (the CLI runs kiln
  /// build's engine job). Null: a service with `build:` and no stored image
  /// is an error.
  std::function<Status(const deployment::Service& service, const std::string& image)> build;
  /// One progress line ("Container p-web-1  Started"), as docker compose
  /// prints them on stderr. Null: nothing printed.
  std::function<void(const std::string& line)> progress;
  /// Polled while waiting (dependencies, --wait): true stops the wait with
  /// kCancelled. Null: never.
  std::function<bool()> cancelled;
};

/// The image a service runs: `image:`, else `<project>-<service>` (docker
/// compose v2's name for a built image).
std::string ImageName(const deployment::Project& project, const deployment::Service& service);
/// `container_name:`, else `<project>-<service>-<number>`.
std::string ContainerName(const deployment::Project& project, const deployment::Service& service, int number = 1);

/// The service's `kiln run -d` options (pure: no store, no file system):
/// image, command/entrypoint (a list entrypoint's first word is the
/// entrypoint, the rest goes before the command, as docker does), environment,
/// ports, mounts (named volumes by their real names), networks with the
/// service name and aliases as DNS names, health check, restart, secrets by
/// their real names, labels (the service's plus compose's). kInvalidInput
/// naming the service and key for what kiln cannot run; `warnings` gets the
/// keys left out (cap_add, privileged...).
Expected<run::RunOptions> ServiceRunOptions(const deployment::Project& project, const deployment::Service& service,
                                            std::vector<std::string>* warnings);

/// A fingerprint of the run options (the com.docker.compose.config-hash
/// label): `up` recreates a container whose hash or image changed.
std::string ConfigHash(const run::RunOptions& options);

/// The services to act on: `names` (all when empty) and, unless no_deps,
/// every service they depend on; kInvalidInput for an unknown name. Sorted
/// in start order.
Expected<std::vector<std::string>> SelectServices(const deployment::Project& project,
                                                  const std::vector<std::string>& names, bool no_deps = false);
/// depends_on levels: level 0 depends on nothing in `selected`, level k
/// only on levels < k. Names sorted within a level.
std::vector<std::vector<std::string>> StartLevels(const deployment::Project& project,
                                                  const std::vector<std::string>& selected);

/// Creates the project's networks, named volumes and secrets that do not
/// exist (external ones must exist: kNotFound naming them). Secrets are
/// (re)written from their file/environment each time.
Status EnsureResources(const Env& env, const deployment::Project& project);

struct UpOptions {
  std::vector<std::string> services;  ///< empty: every service
  bool no_deps = false;
  bool build = false;           ///< --build: build before starting, even when the image exists
  bool no_build = false;        ///< --no-build: never build
  bool force_recreate = false;  ///< recreate even unchanged containers
  bool no_recreate = false;
  bool no_start = false;        ///< create only
  bool wait = false;            ///< --wait: every service running (healthy when it has a health check)
  std::string pull;             ///< --pull policy for every service ("" = the service's pull_policy, else missing)
};

/// One container Up() made or found.
struct Started {
  std::string service;
  std::string name;
  std::string id;
  bool created = false;  ///< false: an unchanged one left as it was
};

/// `compose up -d`: resources, images, then containers level by level.
/// An unchanged running container is left alone; a changed one (config
/// hash or image) is recreated; a stopped one is started again. A
/// dependency that cannot be met (unhealthy, exited, exited non-zero) is an
/// error naming it, unless the dependency is `required: false` (a warning).
Expected<std::vector<Started>> Up(const Env& env, const deployment::Project& project, const UpOptions& options);

/// Waits until container `id` (service `service`) meets `condition`:
/// "service_started" (running, or exited 0 for a one-shot), "service_healthy"
/// (health healthy; kFailed when unhealthy, exited, or without a health
/// check), "service_completed_successfully" (exited 0; kFailed naming the
/// code), "running_or_healthy" (--wait: healthy when it has a health check,
/// else running). Follows the event log for the container's health_status
/// and died events.
Status WaitCondition(const Env& env, const std::string& service, const std::string& id, const std::string& condition);

/// A container of a project, found by its labels.
struct ProjectContainer {
  run::ContainerInfo info;
  std::string service;
  int number = 0;
  bool oneoff = false;
  std::map<std::string, std::string> labels;
};
/// The project's containers (all=false: running ones only), by service
/// name then number; one-off (`run`) containers too.
Expected<std::vector<ProjectContainer>> FindContainers(const run::Paths& paths, const std::string& project, bool all);
/// The networks labelled com.docker.compose.project=`project`.
Expected<std::vector<network::Network>> FindNetworks(const Store& store, const std::string& project);

struct DownOptions {
  bool volumes = false;         ///< -v: also the named volumes the project declares (not external)
  bool remove_orphans = false;  ///< containers of services no longer in the file
  int timeout = -1;             ///< stop timeout in seconds (-1: each service's stop_grace_period, else 10)
};
/// `compose down`: stops and removes the project's containers (dependents
/// first), then its networks, and with volumes its named volumes.
/// Containers of services not in `project` are removed too with
/// remove_orphans, and named otherwise (a warning line through progress).
Status Down(const Env& env, const deployment::Project& project, const DownOptions& options);

/// `compose stop/start/restart [SERVICE...]`: in reverse (stop) or start
/// order. timeout -1: each service's stop_grace_period, else 10 s.
Status Stop(const Env& env, const deployment::Project& project, const std::vector<std::string>& services, int timeout);
Status Start(const Env& env, const deployment::Project& project, const std::vector<std::string>& services);
Status Restart(const Env& env, const deployment::Project& project, const std::vector<std::string>& services,
               int timeout);

/// Gets the image of every selected service: builds those with `build:`
/// (always when `force_build`, else when the image is not stored), pulls
/// the others as `pull` says ("" = the service's pull_policy, else missing).
Status EnsureImages(const Env& env, const deployment::Project& project, const std::vector<std::string>& services,
                    bool force_build, bool no_build, const std::string& pull);

// ------------------------------------------------------------------ pods (pod.cpp)

/// `kube play` of one pod of the model (docs/kube.md).
struct PlayOptions {
  bool start = true;                  ///< --start=false: create the pod and containers only
  bool replace = false;               ///< --replace: remove a pod of that name first
  std::vector<std::string> networks;  ///< --network: the pod's container networks (default podman)
  /// ConfigMaps and Secrets (decoded values) by name, for configMap and
  /// secret volumes (env valueFrom is resolved before: kube::ResolvePod).
  std::map<std::string, std::map<std::string, std::string>> config_maps, secrets;
  /// --build: a container whose image is missing (always with build=true,
  /// never with build=false) is built from the directory <build_dir>/<image
  /// name> when it holds a Containerfile or Dockerfile (env.build).
  std::optional<bool> build;
  std::string build_dir;
};
struct PlayedPod {
  std::string id;
  std::vector<std::string> containers;  ///< their IDs
};
/// Makes the pod (its ports from the containers' hostPorts, its hostname
/// and labels) through src/pod, then each container as `<pod>-<container>`
/// joined to it (pod::PrepareMember), with the container's run options as a
/// compose service gets them (ServiceRunOptions: image, command, env,
/// volumes -- a persistentVolumeClaim is the named volume of its claim --,
/// health check) and the pod's restartPolicy. configMap and secret volumes
/// are files written under pod::PodDataDir (read-only binds), emptyDir a
/// directory there shared by the pod's containers (all go with the pod).
/// kInvalidInput when a pod of that name exists (unless replace); on any
/// error the pod made so far is removed again.
Expected<PlayedPod> PlayPod(const Env& env, const deployment::Pod& pod, const PlayOptions& options,
                            std::vector<std::string>* warnings);
/// `kube down`: removes the pod named `name` with its containers (named
/// volumes stay). Returns its ID; kNotFound when there is none.
Expected<std::string> DownPod(const Env& env, const std::string& name);

}  // namespace kiln::apply
