// Pods (include/kiln/pod.h, docs/pods.md): the record, the infra container,
// and acting on every member. Containers are made and run only through
// src/run's library calls.
#include "kiln/pod.h"

#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "kiln/fs.h"
#include "kiln/keyvalue.h"
#include "kiln/lock.h"
#include "kiln/log.h"
#include "kiln/oci.h"
#include "kiln/random.h"
#include "kiln/sandbox.h"
#include "kiln/store.h"

namespace kiln::pod {

using nlohmann::json;

// pod.json: the record's fields under their own names (missing ones empty).
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Pod, id, name, created, hostname, infra_id, infra_image, exit_policy,
                                                share, ports, networks, labels)

namespace {

std::string PodsRoot(const run::Paths& paths) { return paths.store_root + "/pods"; }
std::string PodDir(const run::Paths& paths, const std::string& id) { return PodsRoot(paths) + "/" + id; }

std::string Now() { return FormatRfc3339(static_cast<int64_t>(std::time(nullptr))); }

bool ValidPodName(const std::string& n) {
  if (n.empty() || n.size() > 128 || !std::isalnum(static_cast<unsigned char>(n[0])))
    return false;
  return n.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
         std::string::npos;
}

std::string PodToJson(const Pod& p) { return json(p).dump(2) + "\n"; }

/// --share: a comma list of ipc, net, pid, uts (podman's default set is
/// ipc, net, uts); "+X"
/// adds to the default; "none" or "" shares nothing.
Expected<std::vector<std::string>> ParseShare(const std::string& text) {
  std::string list = text;
  std::set<std::string> out;
  if (!list.empty() && list[0] == '+') {
    out = {"ipc", "net", "uts"};
    list = list.substr(1);
  }
  size_t pos = 0;
  while (pos <= list.size() && !list.empty()) {
    size_t comma = list.find(',', pos);
    std::string ns = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? list.size() + 1 : comma + 1;
    if (ns == "none" || ns.empty())
      continue;
    if (ns == "cgroup")
      return Error(Errc::kInvalidInput, "--share " + text + ": sharing the " + ns +
                                            " namespace is not supported by kiln yet (ipc, net, pid and uts are)");
    if (ns != "ipc" && ns != "net" && ns != "uts" && ns != "pid")
      return Error(Errc::kInvalidInput, "--share " + text + ": invalid kernel namespace to share: " + ns +
                                            " (want ipc, net, pid, uts)");
    out.insert(ns);
  }
  return std::vector<std::string>(out.begin(), out.end());
}

bool Shares(const Pod& p, const char* ns) { return std::find(p.share.begin(), p.share.end(), ns) != p.share.end(); }

/// The default infra image: a config without layers whose entrypoint is
/// the pause program bind-mounted at /catatonit (CreatePod). Made once per
/// store, always the same bytes (so the same ID).
Expected<std::string> EnsurePauseImage(Store& store) {
  if (auto found = store.ResolveImage(kPauseImage))
    return found->id().str();
  ImageConfig cfg;
  cfg.set_platform(Platform::Host());
  cfg.created = "1970-01-01T00:00:00Z";
  cfg.config.entrypoint = std::vector<std::string>{"/catatonit", "-P"};
  cfg.config.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  cfg.config.labels = {{"io.kiln.infra", "true"}};
  KILN_ASSIGN_OR_RETURN(Descriptor top, store.WriteImage(cfg, {}));
  std::vector<std::string> names = {kPauseImage};
  KILN_TRY(store.AddImage(top, names));
  KILN_ASSIGN_OR_RETURN(StoredImage image, store.ResolveImage(kPauseImage));
  return image.id().str();
}

/// The pod's containers: infra first, then the members oldest first.
std::vector<run::ContainerInfo> Containers(const std::vector<run::ContainerInfo>& all, const Pod& p) {
  std::vector<run::ContainerInfo> out;
  for (const auto& c : all)
    if (c.id == p.infra_id)
      out.push_back(c);
  for (auto it = all.rbegin(); it != all.rend(); ++it)
    if (it->pod == p.id && it->id != p.infra_id)
      out.push_back(*it);
  return out;
}

std::string StatusOf(const std::vector<run::ContainerInfo>& cs) {
  size_t running = 0, created = 0;
  for (const auto& c : cs) {
    running += c.status == "running" || c.status == "restarting";
    created += c.status == "created";
  }
  if (cs.empty() || created == cs.size())
    return "Created";
  if (running == cs.size())
    return "Running";
  if (running > 0)
    return "Degraded";
  return "Exited";
}

Expected<PodInfo> Info(const run::Paths& paths, const std::string& id, const std::vector<run::ContainerInfo>& all) {
  PodInfo info;
  KILN_ASSIGN_OR_RETURN(info.pod, ReadPod(paths, id));
  info.containers = Containers(all, info.pod);
  info.status = StatusOf(info.containers);
  return info;
}

/// Runs `fn` on each container at once (stop and kill of several members
/// should cost one timeout, not one per member); the first error is kept.
Status ForEachAtOnce(const std::vector<std::string>& ids, const std::function<Status(const std::string&)>& fn) {
  std::vector<Status> results(ids.size(), Ok());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < ids.size(); ++i)
    threads.emplace_back([&, i] { results[i] = fn(ids[i]); });
  for (auto& t : threads)
    t.join();
  for (auto& r : results)
    if (!r)
      return r;
  return Ok();
}

}  // namespace

std::string PodDataDir(const run::Paths& paths, const std::string& id) { return PodDir(paths, id) + "/data"; }

Expected<Pod> ReadPod(const run::Paths& paths, const std::string& id) {
  std::string path = PodDir(paths, id) + "/pod.json";
  KILN_ASSIGN_OR_RETURN(std::string text, ReadFile(path, 1 << 20));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Error(Errc::kCorrupt, "pod record " + path + ": bad JSON");
  Pod p;
  try {
    p = j.get<Pod>();
  } catch (const json::exception& e) {
    return Error(Errc::kCorrupt, "pod record " + path + ": " + e.what());
  }
  if (p.id.empty())
    p.id = id;
  if (p.exit_policy.empty())
    p.exit_policy = "continue";
  return p;
}

Expected<std::string> ResolvePod(const run::Paths& paths, const std::string& text) {
  auto not_found = [&] { return Error(Errc::kNotFound, "no pod with name or ID " + text + " found: no such pod"); };
  if (text.empty())
    return not_found();
  auto ids = ListDirSorted(PodsRoot(paths));
  if (!ids)
    return not_found();
  std::vector<std::string> prefix;
  for (const auto& id : *ids) {
    if (id.size() != 64)
      continue;
    if (id == text)
      return id;
    auto p = ReadPod(paths, id);
    if (p && p->name == text)
      return id;
    if (text.size() >= 3 && id.rfind(text, 0) == 0)
      prefix.push_back(id);
  }
  if (prefix.size() == 1)
    return prefix[0];
  if (prefix.size() > 1)
    return Error(Errc::kInvalidInput, "more than one pod matches " + text + ": give more of the ID");
  return not_found();
}

Expected<Pod> CreatePod(Store& store, const run::Paths& paths, const PodOptions& options) {
  Pod p;
  p.name = options.name;
  if (!p.name.empty() && !ValidPodName(p.name))
    return Error(Errc::kInvalidInput, "invalid pod name " + p.name + ": use [a-zA-Z0-9][a-zA-Z0-9_.-]*");
  if (options.exit_policy != "continue" && options.exit_policy != "stop")
    return Error(Errc::kInvalidInput, "invalid --exit-policy " + options.exit_policy + ": use continue or stop");
  KILN_ASSIGN_OR_RETURN(p.share, ParseShare(options.share));
  for (const auto& text : options.ports)
    KILN_TRY(run::PortMapping::ParseFlag(text));
  KILN_TRY(ParseKeyValues(options.labels, "--label", &p.labels));
  KILN_ASSIGN_OR_RETURN(p.id, RandomHex(64));
  if (p.name.empty())
    p.name = "pod_" + p.id.substr(0, 8);
  p.hostname = !options.hostname.empty() ? options.hostname : p.name;
  p.exit_policy = options.exit_policy;
  p.ports = options.ports;
  p.networks = options.networks.empty() ? std::vector<std::string>{"podman"} : options.networks;
  p.created = Now();
  if (!Shares(p, "net") && (!options.ports.empty() || !options.networks.empty()))
    return Error(Errc::kInvalidInput, "you must share network namespace to set network options (-p, --network)");

  KILN_TRY(MakeDirs(PodsRoot(paths), 0700));
  KILN_ASSIGN_OR_RETURN(UniqueFd lock, LockFile(PodsRoot(paths) + "/lock", LOCK_EX));
  if (ResolvePod(paths, p.name))
    return Error(Errc::kInvalidInput, "the pod name " + p.name + " is already in use: remove it or choose another name");

  run::RunOptions o;
  o.name = p.id.substr(0, 12) + "-infra";
  o.pull = "never";
  if (options.infra_image.empty()) {
    KILN_TRY(EnsurePauseImage(store));
    o.image = kPauseImage;
    KILN_ASSIGN_OR_RETURN(std::string helper, SandboxHelperPath());
    run::MountRequest pause;
    pause.type = run::MountRequest::Type::kBind;
    pause.source = helper;
    pause.target = "/catatonit";
    pause.read_only = true;
    o.mounts.push_back(pause);
  } else {
    o.image = options.infra_image;
    o.pull = "missing";
  }
  p.infra_image = o.image;
  for (const auto& text : options.ports) {
    KILN_ASSIGN_OR_RETURN(auto mappings, run::PortMapping::ParseFlag(text));
    o.ports.insert(o.ports.end(), mappings.begin(), mappings.end());
  }
  if (Shares(p, "net"))
    o.networks = p.networks;
  else
    o.network = NetworkMode::kNone;
  o.hostname = p.hostname;
  o.create_only = true;
  o.detach = true;
  o.infra = true;
  o.pod = p.id;
  o.pod_share = p.share;
  std::string infra_id;
  KILN_TRY(run::Run(store, paths, o, &infra_id));
  p.infra_id = infra_id;
  auto undo = [&] { (void)run::RemoveContainer(paths, infra_id, true); };
  std::string dir = PodDir(paths, p.id);
  if (Status st = MakeDirs(dir, 0700); !st) {
    undo();
    return std::move(st).error();
  }
  GcRoot root{.blobs = {}, .layers = {}, .image_ids = {}, .owner = "pods/" + p.id + "/pod.json"};
  if (auto image = store.ResolveImage(p.infra_image))
    root.image_ids.push_back(image->id());
  Status st = store.PutRoot("pods", p.id, root);
  if (st)
    st = WriteFileAtomic(dir + "/pod.json", PodToJson(p), 0600);
  if (!st) {
    undo();
    (void)RemoveAll(dir);
    (void)store.DeleteRoot("pods", p.id);
    return std::move(st).error();
  }
  return p;
}

Expected<std::vector<PodInfo>> ListPods(const run::Paths& paths) {
  std::vector<PodInfo> out;
  auto ids = ListDirSorted(PodsRoot(paths));
  if (!ids)
    return out;
  KILN_ASSIGN_OR_RETURN(auto all, run::ListContainers(paths, true));
  for (const auto& id : *ids) {
    if (id.size() != 64)
      continue;
    auto info = Info(paths, id, all);
    if (!info) {
      LogWarn(info.error().message());
      continue;
    }
    out.push_back(std::move(*info));
  }
  std::sort(out.begin(), out.end(), [](const PodInfo& a, const PodInfo& b) { return a.pod.created > b.pod.created; });
  return out;
}

Expected<PodInfo> InspectPod(const run::Paths& paths, const std::string& id) {
  KILN_ASSIGN_OR_RETURN(auto all, run::ListContainers(paths, true));
  return Info(paths, id, all);
}

Status StartPod(const run::Paths& paths, const std::string& id) {
  KILN_ASSIGN_OR_RETURN(PodInfo info, InspectPod(paths, id));
  Status first = Ok();
  for (const auto& c : info.containers) {
    if (c.status == "running")
      continue;
    Status st = run::StartContainer(paths, c.id);
    if (!st) {
      if (c.id == info.pod.infra_id)
        return std::move(st).error().WithContext("pod " + info.pod.name + ": start the infra container");
      LogWarn("pod " + info.pod.name + ": start " + c.name + ": " + st.error().message());
      if (first)
        first = std::move(st).error().WithContext("pod " + info.pod.name + ": start " + c.name);
    }
  }
  return first;
}

Status StopPod(const run::Paths& paths, const std::string& id, int timeout_seconds) {
  KILN_ASSIGN_OR_RETURN(PodInfo info, InspectPod(paths, id));
  std::vector<std::string> members;
  for (const auto& c : info.containers)
    if (c.id != info.pod.infra_id)
      members.push_back(c.id);
  auto stop = [&](const std::string& cid) { return run::StopContainer(paths, cid, timeout_seconds); };
  Status st = ForEachAtOnce(members, stop);
  if (!info.pod.infra_id.empty()) {
    Status infra = stop(info.pod.infra_id);
    if (st && !infra)
      st = std::move(infra);
  }
  return st;
}

Status RestartPod(const run::Paths& paths, const std::string& id, int timeout_seconds) {
  KILN_TRY(StopPod(paths, id, timeout_seconds));
  return StartPod(paths, id);
}

Status KillPod(const run::Paths& paths, const std::string& id, int signal) {
  KILN_ASSIGN_OR_RETURN(PodInfo info, InspectPod(paths, id));
  std::vector<std::string> running;
  for (const auto& c : info.containers)
    if (c.status == "running")
      running.push_back(c.id);
  if (running.empty())
    return Error(Errc::kFailed, "pod " + info.pod.name + " has no running containers to kill");
  return ForEachAtOnce(running, [&](const std::string& cid) { return run::KillContainer(paths, cid, signal); });
}

Status RemovePod(Store& store, const run::Paths& paths, const std::string& id, bool force) {
  KILN_ASSIGN_OR_RETURN(PodInfo info, InspectPod(paths, id));
  if (!force)
    for (const auto& c : info.containers)
      if (c.status == "running")
        return Error(Errc::kFailed, "pod " + info.pod.name + " has running containers (" + c.name +
                                        "): stop the pod first or use -f");
  // Members first (they hold the infra's namespaces), then the infra.
  std::vector<std::string> members;
  for (const auto& c : info.containers)
    if (c.id != info.pod.infra_id)
      members.push_back(c.id);
  KILN_TRY(ForEachAtOnce(members, [&](const std::string& cid) { return run::RemoveContainer(paths, cid, true); }));
  if (!info.pod.infra_id.empty())
    if (auto st = run::RemoveContainer(paths, info.pod.infra_id, true); !st && st.error().code() != Errc::kNotFound)
      return st;
  KILN_ASSIGN_OR_RETURN(UniqueFd lock, LockFile(PodsRoot(paths) + "/lock", LOCK_EX));
  KILN_TRY(RemoveAll(PodDir(paths, id)));
  return store.DeleteRoot("pods", id);
}

Expected<std::vector<std::string>> PrunePods(Store& store, const run::Paths& paths) {
  KILN_ASSIGN_OR_RETURN(auto pods, ListPods(paths));
  std::vector<std::string> removed;
  for (const auto& p : pods) {
    if (p.status == "Running" || p.status == "Degraded")
      continue;
    KILN_TRY(RemovePod(store, paths, p.pod.id, false));
    removed.push_back(p.pod.id);
  }
  return removed;
}

Status PrepareMember(Store& store, const run::Paths& paths, const std::string& text, run::RunOptions& o) {
  const std::string shared = ": network cannot be configured when it is shared with a pod";
  std::string name = text;
  bool make = text.rfind("new:", 0) == 0;
  if (make)
    name = text.substr(4);
  KILN_ASSIGN_OR_RETURN(Pod probe, [&]() -> Expected<Pod> {
    if (make)
      return Pod{};
    KILN_ASSIGN_OR_RETURN(std::string id, ResolvePod(paths, name));
    return ReadPod(paths, id);
  }());
  bool shares_net = make || Shares(probe, "net");
  if (shares_net) {
    if (!o.ports.empty() || o.publish_all)
      return Error(Errc::kInvalidInput,
                   "invalid config provided: published or exposed ports must be defined when the pod is created" + shared);
    if (!o.networks.empty() || !o.network_container.empty() || o.network != NetworkMode::kPrivate || !o.ip.empty() ||
        !o.network_aliases.empty())
      return Error(Errc::kInvalidInput, "invalid config provided: networks must be defined when the pod is created" + shared);
    if (!o.dns_servers.empty() || !o.dns_search.empty() || !o.dns_options.empty() || !o.add_hosts.empty())
      return Error(Errc::kInvalidInput,
                   "invalid config provided: --dns, --dns-search, --dns-option and --add-host must be given when the "
                   "pod is created" + shared);
  }
  if (!o.hostname.empty() && (make || Shares(probe, "uts")))
    return Error(Errc::kInvalidInput, "invalid config provided: cannot set hostname when joining the pod UTS namespace: "
                                      "invalid configuration");
  Pod p = probe;
  if (make) {
    PodOptions po;
    po.name = name;
    KILN_ASSIGN_OR_RETURN(p, CreatePod(store, paths, po));
  }
  if (!o.create_only) {
    Status st = run::StartContainer(paths, p.infra_id);
    if (!st)
      return std::move(st).error().WithContext("pod " + p.name + ": start the infra container");
  }
  o.pod = p.id;
  o.pod_infra = p.infra_id;
  o.pod_exit_policy = p.exit_policy;
  for (const auto& ns : p.share)
    if (ns != "net")
      o.pod_share.push_back(ns);
  if (Shares(p, "net")) {
    o.network_container = p.infra_id;
    o.network = NetworkMode::kNone;  // no namespace of its own: the infra's (run's ShareNetwork)
  }
  if (Shares(p, "uts"))
    o.hostname = p.hostname;
  return Ok();
}

}  // namespace kiln::pod
