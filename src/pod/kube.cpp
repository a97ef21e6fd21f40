// `kube generate` (docs/kube.md): live pods and containers as the
// deployment model, read from the container records (the JSON `inspect`
// shows) and their images. kube::GeneratePodYaml prints it.
#include <algorithm>
#include <cctype>
#include <set>

#include <nlohmann/json.hpp>

#include "kiln/pod.h"
#include "kiln/store.h"

namespace kiln::pod {

using nlohmann::json;

namespace {

constexpr char kDefaultPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::string EnvName(const std::string& e) { return e.substr(0, e.find('=')); }

/// An anonymous volume's name in the YAML: its path, dashed ("/data/x" ->
/// "data-x-anon"), lower case [a-z0-9-].
std::string AnonymousName(const std::string& target) {
  std::string out;
  for (char ch : target) {
    char c = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (std::isalnum(static_cast<unsigned char>(c)))
      out += c;
    else if (!out.empty() && out.back() != '-')
      out += '-';
  }
  while (!out.empty() && out.back() == '-')
    out.pop_back();
  return (out.empty() ? std::string("root") : out.substr(0, 50)) + "-anon";
}

/// One container record as a model service. `pod_name`: its pod's name
/// (a "<pod>-" prefix of the container's name is left out, as podman).
Expected<deployment::Service> Describe(Store& store, const run::ContainerInfo& info, const std::string& pod_name,
                                       std::string* restart, std::vector<std::string>* warnings) {
  json j = json::parse(info.config_json, nullptr, false);
  if (!j.is_object())
    return Error(Errc::kCorrupt, "container " + info.name + ": bad record");
  deployment::Service s;
  s.name = info.name;
  if (!pod_name.empty() && s.name.rfind(pod_name + "-", 0) == 0 && s.name.size() > pod_name.size() + 1)
    s.name = s.name.substr(pod_name.size() + 1);
  s.container_name = info.name;
  s.image = info.image;
  ContainerConfig image;
  if (auto img = store.ResolveImage(info.image_id))
    image = img->config.config;
  // The command: nothing when it is the image's, args after the image's
  // entrypoint, else command (the entrypoint was replaced).
  std::vector<std::string> argv = j.value("argv", std::vector<std::string>{});
  std::vector<std::string> ep = image.entrypoint.value_or(std::vector<std::string>{});
  std::vector<std::string> full = ep;
  if (image.cmd)
    full.insert(full.end(), image.cmd->begin(), image.cmd->end());
  if (argv != full) {
    // Without an image entrypoint args alone is the whole command line.
    if (argv.size() >= ep.size() && std::equal(ep.begin(), ep.end(), argv.begin()))
      s.command = std::vector<std::string>(argv.begin() + static_cast<long>(ep.size()), argv.end());
    else
      s.entrypoint = argv;
  }
  // The environment kiln or the user added: not the image's, not HOSTNAME
  // (the pod's), not kiln's defaults for what the image left unset.
  std::set<std::string> image_env(image.env.begin(), image.env.end());
  for (const auto& e : j.value("env", std::vector<std::string>{})) {
    std::string name = EnvName(e);
    if (image_env.count(e) || name == "HOSTNAME")
      continue;
    if (!image.GetEnv(name) && (e == kDefaultPath || e == "HOME=/" || e == "HOME=/root" || e == "TERM=xterm"))
      continue;
    deployment::EnvVar v;
    v.name = name;
    v.value = e.find('=') == std::string::npos ? "" : e.substr(e.find('=') + 1);
    s.environment.push_back(std::move(v));
  }
  std::string cwd = j.value("cwd", "/");
  if (cwd != (image.working_dir.empty() ? "/" : image.working_dir))
    s.working_dir = cwd;
  uint32_t uid = j.value("uid", 0u), gid = j.value("gid", 0u);
  if (uid != 0 || gid != 0)
    s.user = std::to_string(uid) + (gid != 0 ? ":" + std::to_string(gid) : "");
  for (const auto& p : info.port_mappings) {
    deployment::PortMapping m;
    m.target = p.container_port;
    m.published = std::to_string(p.host_port);
    m.host_ip = p.host_ip == "0.0.0.0" ? "" : p.host_ip;
    m.protocol = p.udp ? "udp" : "tcp";
    s.ports.push_back(m);
  }
  std::set<std::string> anonymous;
  for (const auto& a : j.value("anonymous_volumes", std::vector<std::string>{}))
    anonymous.insert(a);
  if (auto ms = j.find("mounts"); ms != j.end() && ms->is_array())
    for (const auto& m : *ms) {
      deployment::VolumeMount v;
      std::string type = m.value("type", "");
      v.source = m.value("source", "");
      v.target = m.value("target", "");
      v.read_only = m.value("read_only", false);
      if (type == "volume" && anonymous.count(v.source)) {
        v.type = "emptydir";
        v.kube_name = AnonymousName(v.target);
        v.source.clear();
      } else if (type == "volume" || type == "bind" || type == "tmpfs") {
        v.type = type;
      } else {
        continue;
      }
      if (type == "tmpfs")
        v.source.clear();
      s.volumes.push_back(std::move(v));
    }
  if (auto h = j.find("health"); h != j.end() && h->is_object()) {
    deployment::HealthCheck hc;
    hc.test = h->value("test", std::vector<std::string>{});
    hc.interval_ns = h->value("interval", int64_t{30'000'000'000});
    hc.timeout_ns = h->value("timeout", int64_t{30'000'000'000});
    if (int64_t sp = h->value("start_period", int64_t{0}); sp > 0)
      hc.start_period_ns = sp;
    hc.retries = h->value("retries", 3);
    if (!hc.test.empty() && hc.test[0] != "NONE")
      s.healthcheck = hc;
  }
  if (auto r = j.find("restart"); r != j.end() && r->is_object() && restart && restart->empty())
    *restart = r->value("name", "no");
  if (!j.value("secrets", json::array()).empty() && warnings)
    warnings->push_back("container " + info.name + ": its secrets are not written (no values in a generated file)");
  s.tty = j.value("tty", false);
  s.stdin_open = j.value("interactive", false);
  s.read_only = j.value("read_only", false);
  return s;
}

}  // namespace

Expected<deployment::Pod> DescribePod(Store& store, const run::Paths& paths, const std::string& pod_id,
                                      std::vector<std::string>* warnings) {
  KILN_ASSIGN_OR_RETURN(PodInfo info, InspectPod(paths, pod_id));
  deployment::Pod out;
  out.name = info.pod.name;
  out.labels = info.pod.labels;
  if (info.pod.hostname != info.pod.name)
    out.hostname = info.pod.hostname;
  std::vector<run::PortMapping> ports;
  for (const auto& c : info.containers)
    if (c.id == info.pod.infra_id)
      ports = c.port_mappings;
  std::string restart;
  for (const auto& c : info.containers) {
    if (c.id == info.pod.infra_id)
      continue;
    KILN_ASSIGN_OR_RETURN(deployment::Service s, Describe(store, c, info.pod.name, &restart, warnings));
    out.containers.push_back(std::move(s));
  }
  if (out.containers.empty())
    return Error(Errc::kInvalidInput, "pod " + info.pod.name + " has no containers besides its infra: nothing to generate");
  // The pod's ports are on its first container (as podman writes them).
  for (const auto& p : ports) {
    deployment::PortMapping m;
    m.target = p.container_port;
    m.published = std::to_string(p.host_port);
    m.host_ip = p.host_ip == "0.0.0.0" ? "" : p.host_ip;
    m.protocol = p.udp ? "udp" : "tcp";
    out.containers[0].ports.push_back(m);
  }
  out.restart_policy = restart.empty() || restart == "no" ? "no" : restart == "always" || restart == "unless-stopped" ? "always" : "on-failure";
  return out;
}

Expected<deployment::Pod> DescribeContainers(Store& store, const run::Paths& paths,
                                             const std::vector<std::string>& container_ids,
                                             std::vector<std::string>* warnings) {
  deployment::Pod out;
  std::string restart;
  for (const auto& id : container_ids) {
    KILN_ASSIGN_OR_RETURN(run::ContainerInfo info, run::InspectContainer(paths, id));
    if (out.name.empty())
      out.name = info.name + "-pod";
    KILN_ASSIGN_OR_RETURN(deployment::Service s, Describe(store, info, "", &restart, warnings));
    out.containers.push_back(std::move(s));
  }
  out.restart_policy = restart.empty() || restart == "no" ? "no" : restart == "always" || restart == "unless-stopped" ? "always" : "on-failure";
  return out;
}

}  // namespace kiln::pod
