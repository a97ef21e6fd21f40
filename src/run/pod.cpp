// Pod members (docs/pods.md): what a container records of its pod, and the
// infra container's namespaces it joins when it starts. The pod itself (its
// record, the infra, start/stop of every member) is src/pod; this file only
// lets a container run inside a pod's namespaces: the network one through
// network_container (network.cpp), IPC, UTS and PID here.
#include <algorithm>

#include "kiln/log.h"
#include "run/internal.h"

namespace kiln::run {
namespace internal {

using nlohmann::json;

void PodToJson(const Config& c, json& j) {
  if (c.pod.empty())
    return;
  j["pod"] = {{"id", c.pod}, {"infra", c.infra}, {"infra_id", c.pod_infra}, {"share", c.pod_share}};
  if (!c.pod_exit_policy.empty())
    j["pod"]["exit_policy"] = c.pod_exit_policy;
}

void PodFromJson(const json& j, Config& c) {
  auto it = j.find("pod");
  if (it == j.end() || !it->is_object())
    return;
  c.pod = it->value("id", "");
  c.infra = it->value("infra", false);
  c.pod_infra = it->value("infra_id", "");
  c.pod_exit_policy = it->value("exit_policy", "");
  if (auto s = it->find("share"); s != it->end() && s->is_array())
    for (const auto& v : *s)
      if (v.is_string())
        c.pod_share.push_back(v.get<std::string>());
}

void ApplyPodOptions(const RunOptions& o, Config& c) {
  c.pod = o.pod;
  c.pod_infra = o.pod_infra;
  c.pod_share = o.pod_share;
  c.infra = o.infra;
  c.pod_exit_policy = o.pod_exit_policy;
}

void JoinPodNamespacesHook(const Paths& paths, const Config& c, SandboxSpec& spec) {
  if (c.pod_infra.empty())
    return;
  auto shares = [&](const char* ns) { return std::find(c.pod_share.begin(), c.pod_share.end(), ns) != c.pod_share.end(); };
  if (!shares("ipc") && !shares("uts") && !shares("pid"))
    return;
  // Fails closed: without the infra the member gets namespaces of its own
  // (its hostname is the pod's anyway), never the host's.
  State s = EffectiveState(paths, c.pod_infra);
  if (s.status != "running" || s.pid <= 0) {
    LogWarn("pod " + c.pod.substr(0, 12) + ": its infra container is not running: " + c.name +
            " gets IPC, UTS and PID namespaces of its own");
    return;
  }
  std::string base = "/proc/" + std::to_string(s.pid) + "/ns/";
  if (shares("ipc"))
    spec.join_ipc = base + "ipc";
  if (shares("uts"))
    spec.join_uts = base + "uts";
  if (shares("pid"))
    spec.join_pid = base + "pid";
}

Status StartPodInfra(const Paths& paths, const std::string& id) {
  KILN_ASSIGN_OR_RETURN(Config c, ReadConfig(paths, id));
  if (c.pod_infra.empty() || MonitorAlive(paths, c.pod_infra))
    return Ok();
  Status st = StartContainer(paths, c.pod_infra);
  if (!st)
    return std::move(st).error().WithContext("start the infra container of pod " + c.pod.substr(0, 12));
  return Ok();
}

void StopPodAfterLastMember(const Paths& paths, const Config& c) {
  if (c.infra || c.pod_infra.empty() || c.pod_exit_policy != "stop")
    return;
  auto all = ListContainers(paths, true);
  if (!all)
    return;
  for (const auto& o : *all)
    if (o.pod == c.pod && o.id != c.id && o.id != c.pod_infra && (o.status == "running" || o.status == "restarting"))
      return;
  if (Status st = StopContainer(paths, c.pod_infra, 10); !st)
    LogWarn("pod " + c.pod.substr(0, 12) + ": --exit-policy stop: " + st.error().message());
}

}  // namespace internal
}  // namespace kiln::run
