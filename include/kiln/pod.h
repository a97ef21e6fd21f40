// Pods (docs/pods.md): a set of containers that share network, IPC and UTS
// namespaces, held by an infra container that runs kiln's own pause process
// (the static kiln-sandbox helper as `catatonit -P`, bind-mounted into an
// empty image: nothing to pull). Ports, networks and the hostname belong to
// the pod: they are the infra's, fixed when the pod is created.
//
//   <store>/pods/<id>/pod.json   the record (name, infra id, options)
//   <store>/pods/lock            flock: creation, names, removal
//
// Each pod is the store GC root pods/<id> (the infra image, owner: the
// record). Membership is derived from the containers' records (their "pod"
// object), never kept in the pod's.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "kiln/deployment.h"
#include "kiln/error.h"
#include "kiln/run.h"

namespace kiln {
class Store;
}

namespace kiln::pod {

/// The image of the default infra container: config only, no layers.
inline constexpr char kPauseImage[] = "localhost/kiln-pause:latest";

/// `kiln pod create` (podman's flags).
struct PodOptions {
  std::string name;                     ///< "" = a random name
  std::vector<std::string> ports;       ///< -p texts, as `run -p`
  std::vector<std::string> networks;    ///< --network NAME...; empty: the default `podman`
  std::string share = "ipc,net,uts";    ///< --share (a leading + adds to the default)
  std::string infra_image;              ///< --infra-image ("" = kiln's pause)
  std::string hostname;                 ///< --hostname ("" = the pod's name)
  std::vector<std::string> labels;      ///< --label K=V
  std::string exit_policy = "continue"; ///< --exit-policy continue|stop
};

struct Pod {
  std::string id;
  std::string name;
  std::string created;  ///< RFC 3339
  std::string hostname;
  std::string infra_id;
  std::string infra_image;
  std::string exit_policy;
  std::vector<std::string> share;  ///< "ipc", "net", "uts"
  std::vector<std::string> ports;  ///< as given
  std::vector<std::string> networks;
  std::map<std::string, std::string> labels;
};

/// A pod with its containers (infra first, then the members oldest first)
/// and podman's status: Created, Running, Degraded (some running), Exited.
struct PodInfo {
  Pod pod;
  std::string status;
  std::vector<run::ContainerInfo> containers;
};

/// Makes the record and the infra container (created, not started; `pod
/// start` or the first `run --pod` starts it). kInvalidInput for a bad or
/// taken name, a bad -p, --share or --exit-policy.
Expected<Pod> CreatePod(Store& store, const run::Paths& paths, const PodOptions& options);
/// A pod by full id, unique id prefix (>= 3 chars) or name. kNotFound in
/// podman's words ("no pod with name or ID X found: no such pod").
Expected<std::string> ResolvePod(const run::Paths& paths, const std::string& text);
Expected<Pod> ReadPod(const run::Paths& paths, const std::string& id);
/// A directory that goes with the pod (removed by RemovePod): what `kube
/// play` writes for configMap, secret and emptyDir volumes.
std::string PodDataDir(const run::Paths& paths, const std::string& id);
/// Every pod, newest first.
Expected<std::vector<PodInfo>> ListPods(const run::Paths& paths);
Expected<PodInfo> InspectPod(const run::Paths& paths, const std::string& id);

/// Start the infra, then the members (oldest first). Errors of members are
/// collected: the others are started anyway.
Status StartPod(const run::Paths& paths, const std::string& id);
/// Stops the members (all at once), then the infra.
Status StopPod(const run::Paths& paths, const std::string& id, int timeout_seconds);
Status RestartPod(const run::Paths& paths, const std::string& id, int timeout_seconds);
/// Sends `signal` to every running container of the pod, infra included.
/// kFailed when none runs.
Status KillPod(const run::Paths& paths, const std::string& id, int signal);
/// Removes the members, the infra, the record and the GC root. A running
/// container: kFailed unless force (then they are killed).
Status RemovePod(Store& store, const run::Paths& paths, const std::string& id, bool force);
/// Removes every pod none of whose containers runs; returns their ids.
Expected<std::vector<std::string>> PrunePods(Store& store, const run::Paths& paths);

/// `run/create --pod NAME|new:NAME`: refuses what the pod owns (-p, -P,
/// --network, --ip, --dns*, --add-host, --hostname: podman's messages),
/// makes the pod for new:NAME, starts its infra (unless create_only), and
/// fills `o`'s pod fields: the infra's network namespace, IPC, UTS and
/// hostname.
Status PrepareMember(Store& store, const run::Paths& paths, const std::string& pod, run::RunOptions& o);

/// `kube generate` (docs/kube.md): live containers as the deployment model,
/// for kube::GeneratePodYaml. A pod: its members (not the infra), with the
/// pod's ports on the first member, its hostname and labels. Containers not
/// in a pod: one pod named after the first ("<name>-pod"), their own ports.
/// Only what differs from the image is written: the command as args (or
/// command when the entrypoint was replaced), the environment kiln or -e
/// added (not HOSTNAME), the working directory. Named volumes become
/// persistentVolumeClaims, binds hostPaths; the health check a
/// livenessProbe; the restart policy the pod's restartPolicy; a numeric
/// user securityContext.runAsUser. `warnings` names what has no Pod field.
Expected<deployment::Pod> DescribePod(Store& store, const run::Paths& paths, const std::string& pod_id,
                                      std::vector<std::string>* warnings);
Expected<deployment::Pod> DescribeContainers(Store& store, const run::Paths& paths,
                                             const std::vector<std::string>& container_ids,
                                             std::vector<std::string>* warnings);

}  // namespace kiln::pod
