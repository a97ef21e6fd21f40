// Pods of the deployment model (kube play/down, docs/kube.md): the pod
// through src/pod, its containers through ServiceRunOptions and run::Run.
#include <sys/stat.h>

#include <algorithm>

#include "kiln/apply.h"
#include "kiln/fs.h"
#include "kiln/pod.h"
#include "kiln/run.h"
#include "kiln/store.h"

namespace kiln::apply {

namespace {

/// "[IP:]HOST:CTR/proto" for a container port with a hostPort.
std::string PodPort(const deployment::PortMapping& p) {
  std::string s = p.host_ip.empty() ? "" : p.host_ip + ":";
  return s + p.published + ":" + std::to_string(p.target) + "/" + p.protocol;
}

/// The pod's options for src/pod: name, hostname, labels, --network, and
/// the containers' hostPorts as the pod's -p.
pod::PodOptions PodOptionsOf(const deployment::Pod& pod, const PlayOptions& options, std::vector<std::string>* warnings) {
  pod::PodOptions po;
  po.name = pod.name;
  po.hostname = pod.hostname;
  po.networks = options.networks;
  for (const auto& [k, v] : pod.labels)
    po.labels.push_back(k + "=" + v);
  for (const auto& c : pod.containers)
    for (const auto& p : c.ports)
      if (!p.published.empty())
        po.ports.push_back(PodPort(p));
  if (!pod.init_containers.empty() && warnings)
    warnings->push_back("pod " + pod.name + ": initContainers are not supported by kiln yet, left out");
  if (pod.host_network && warnings)
    warnings->push_back("pod " + pod.name + ": hostNetwork is not supported by kiln: the pod gets its own network");
  return po;
}

/// configMap, secret and emptyDir volumes as directories of the pod
/// (written once per pod volume), mounted as binds.
Status MaterializeVolumes(const std::string& data_dir, const PlayOptions& options, deployment::Service& s) {
  for (auto& v : s.volumes) {
    if (v.type != "configmap" && v.type != "secret" && v.type != "emptydir")
      continue;
    std::string dir = data_dir + "/" + v.type + "/" + v.kube_name;
    if (!PathExists(dir)) {
      KILN_TRY(MakeDirs(dir, 0755));
      if (v.type == "emptydir") {
        ::chmod(dir.c_str(), 01777);  // as Kubernetes: writable by any user of the pod
      } else {
        const auto& table = v.type == "configmap" ? options.config_maps : options.secrets;
        auto it = table.find(v.source);
        if (it == table.end())
          return Error(Errc::kInvalidInput, "container " + s.name + ": volume " + v.kube_name + ": no " +
                                                (v.type == "configmap" ? "ConfigMap " : "Secret ") + v.source);
        for (const auto& [key, value] : it->second) {
          if (key.empty() || key.find('/') != std::string::npos || key == "." || key == "..")
            return Error(Errc::kInvalidInput, "volume " + v.kube_name + ": key \"" + key + "\" is not a file name");
          KILN_TRY(WriteFileAtomic(dir + "/" + key, value, 0644));
        }
      }
    }
    if (v.type != "emptydir")
      v.read_only = true;
    v.type = "bind";
    v.source = dir;
  }
  return Ok();
}

/// --build: the image built from <build_dir>/<name> (name: the image's
/// last path component without tag) when that directory holds a
/// Containerfile or Dockerfile, and the image is missing or build=true.
Status MaybeBuild(const Env& env, const PlayOptions& options, deployment::Service s) {
  if (options.build == false || options.build_dir.empty())
    return Ok();
  std::string name = s.image.substr(s.image.rfind('/') == std::string::npos ? 0 : s.image.rfind('/') + 1);
  name = name.substr(0, name.find_first_of(":@"));
  std::string dir = options.build_dir + "/" + name;
  if (!PathExists(dir + "/Containerfile") && !PathExists(dir + "/Dockerfile"))
    return Ok();
  if (options.build != true && env.store->ResolveImage(s.image))
    return Ok();
  if (!env.build)
    return Error(Errc::kUnsupported, "container " + s.name + ": building " + s.image + " is not possible here");
  s.build = deployment::BuildSpec{};
  s.build->context = dir;
  if (env.progress)
    env.progress("Building " + s.image + " from " + dir);
  return env.build(s, s.image);
}

}  // namespace

Expected<PlayedPod> PlayPod(const Env& env, const deployment::Pod& pod, const PlayOptions& options,
                            std::vector<std::string>* warnings) {
  if (auto existing = pod::ResolvePod(env.paths, pod.name)) {
    if (!options.replace)
      return Error(Errc::kInvalidInput, "pod " + pod.name + " already exists: use --replace to replace it");
    KILN_TRY(pod::RemovePod(*env.store, env.paths, *existing, true));
  }
  for (const auto& c : pod.containers)
    KILN_TRY(MaybeBuild(env, options, c));
  KILN_ASSIGN_OR_RETURN(pod::Pod made, pod::CreatePod(*env.store, env.paths, PodOptionsOf(pod, options, warnings)));
  PlayedPod out;
  out.id = made.id;
  auto fail = [&](Error e) -> Error {
    (void)pod::RemovePod(*env.store, env.paths, made.id, true);
    return e;
  };
  deployment::Project project;
  project.name = pod.name;
  for (const auto& c : pod.containers) {
    deployment::Service s = c;
    s.ports.clear();     // the pod's
    s.hostname.clear();  // the pod's
    s.networks.clear();
    s.restart = pod.restart_policy.empty() ? "always" : pod.restart_policy;
    if (Status st = MaterializeVolumes(pod::PodDataDir(env.paths, made.id), options, s); !st)
      return fail(std::move(st).error().WithContext("pod " + pod.name));
    auto o = ServiceRunOptions(project, s, warnings);
    if (!o)
      return fail(std::move(o).error());
    o->name = pod.name + "-" + c.name;
    o->networks.clear();
    o->network_aliases.clear();
    o->hostname.clear();
    o->labels.clear();
    for (const auto& [k, v] : c.labels)
      o->labels.push_back(k + "=" + v);
    o->create_only = !options.start;
    o->detach = true;
    if (Status st = pod::PrepareMember(*env.store, env.paths, made.id, *o); !st)
      return fail(std::move(st).error());
    std::string id;
    if (auto r = run::Run(*env.store, env.paths, *o, &id); !r)
      return fail(std::move(r).error().WithContext("pod " + pod.name + ": container " + c.name));
    out.containers.push_back(id);
    if (env.progress)
      env.progress("Container " + o->name + "  " + (options.start ? "Started" : "Created"));
  }
  return out;
}

Expected<std::string> DownPod(const Env& env, const std::string& name) {
  KILN_ASSIGN_OR_RETURN(std::string id, pod::ResolvePod(env.paths, name));
  KILN_TRY(pod::RemovePod(*env.store, env.paths, id, true));
  return id;
}

}  // namespace kiln::apply
