// The model -> Kubernetes Pod YAML (what `kube generate` prints), keys in
// kubectl's order (sorted), read back by Parse to the same pod.
#include <algorithm>
#include <cctype>
#include <set>

#include "deployment/yaml.h"
#include "kiln/kube.h"

namespace kiln::kube {

namespace {

using deployment::YamlNode;

YamlNode S(const std::string& s) { return YamlNode::Str(s); }
YamlNode I(int64_t v) { return YamlNode::Plain(std::to_string(v)); }
YamlNode B(bool b) { return YamlNode::Plain(b ? "true" : "false"); }

YamlNode List(const std::vector<std::string>& v) { return deployment::StringSeqNode(v); }
YamlNode StrMap(const std::map<std::string, std::string>& m) { return deployment::StringMapNode(m); }

bool IsNumber(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

// A port as YAML: a number, or a named container port.
YamlNode Port(const std::string& p) { return IsNumber(p) ? YamlNode::Plain(p) : S(p); }

int64_t Seconds(int64_t ns) { return (ns + 999'999'999) / 1'000'000'000; }

// Sorts a mapping's keys (kubectl prints them sorted), recursively.
void SortKeys(YamlNode* n) {
  for (auto& c : n->items)
    SortKeys(&c);
  if (n->IsMapping())
    std::stable_sort(n->items.begin(), n->items.end(), [](const YamlNode& a, const YamlNode& b) { return a.key < b.key; });
}

std::string VolumeName(const deployment::VolumeMount& m) {
  if (!m.kube_name.empty())
    return m.kube_name;
  if (m.type == "bind") {  // podman: the path dashed, -host
    std::string p = m.source;
    while (!p.empty() && p[0] == '/')
      p.erase(0, 1);
    return SanitizeName(p) + "-host";
  }
  if (m.type == "volume")
    return SanitizeName(m.source) + "-pvc";
  return SanitizeName(m.source.empty() ? m.type : m.source);
}

}  // namespace

std::string GeneratePodYaml(const deployment::Pod& pod, std::vector<std::string>* warnings) {
  auto warn = [&](const std::string& w) {
    if (warnings)
      warnings->push_back(w);
  };
  YamlNode root = YamlNode::Map();
  root.Set("apiVersion", S("v1"));
  root.Set("kind", S("Pod"));
  YamlNode meta = YamlNode::Map();
  if (!pod.annotations.empty())
    meta.Set("annotations", StrMap(pod.annotations));
  if (!pod.labels.empty())
    meta.Set("labels", StrMap(pod.labels));
  meta.Set("name", S(SanitizeName(pod.name)));
  if (SanitizeName(pod.name) != pod.name)
    warn("pod name \"" + pod.name + "\" is not a Kubernetes name: written as \"" + SanitizeName(pod.name) + "\"");
  root.Set("metadata", meta);

  YamlNode spec = YamlNode::Map();
  YamlNode volumes = YamlNode::Seq();
  std::set<std::string> volume_names;
  auto containers = [&](const std::vector<deployment::Service>& list) {
    YamlNode out = YamlNode::Seq();
    for (const auto& c : list) {
      std::string where = "container " + c.name;
      YamlNode n = YamlNode::Map();
      n.Set("name", S(c.name));
      n.Set("image", S(c.image));
      if (c.entrypoint)
        n.Set("command", List(*c.entrypoint));
      if (c.command)
        n.Set("args", List(*c.command));
      if (!c.working_dir.empty())
        n.Set("workingDir", S(c.working_dir));
      if (!c.image_pull_policy.empty())
        n.Set("imagePullPolicy", S(c.image_pull_policy));
      if (!c.environment.empty()) {
        YamlNode env = YamlNode::Seq();
        for (const auto& e : c.environment) {
          YamlNode v = YamlNode::Map();
          v.Set("name", S(e.name));
          if (e.from) {
            YamlNode ref = YamlNode::Map();
            if (e.from->kind == "fieldRef") {
              ref.Set("fieldPath", S(e.from->key));
            } else {
              ref.Set("name", S(e.from->name));
              ref.Set("key", S(e.from->key));
              if (e.from->optional)
                ref.Set("optional", B(*e.from->optional));
            }
            YamlNode vf = YamlNode::Map();
            vf.Set(e.from->kind, ref);
            v.Set("valueFrom", vf);
          } else {
            v.Set("value", S(e.value.value_or("")));
          }
          env.items.push_back(v);
        }
        n.Set("env", env);
      }
      if (!c.ports.empty()) {
        YamlNode ports = YamlNode::Seq();
        for (const auto& p : c.ports) {
          YamlNode m = YamlNode::Map();
          m.Set("containerPort", I(p.target));
          if (!p.published.empty()) {
            if (IsNumber(p.published))
              m.Set("hostPort", YamlNode::Plain(p.published));
            else
              warn(where + ": host port range " + p.published + " has no Pod field, left out");
          }
          if (!p.host_ip.empty())
            m.Set("hostIP", S(p.host_ip));
          if (!p.name.empty())
            m.Set("name", S(p.name));
          if (p.protocol != "tcp") {
            std::string up = p.protocol;
            std::transform(up.begin(), up.end(), up.begin(), [](unsigned char ch) { return std::toupper(ch); });
            m.Set("protocol", S(up));
          }
          ports.items.push_back(m);
        }
        n.Set("ports", ports);
      }
      if (!c.volumes.empty()) {
        YamlNode mounts = YamlNode::Seq();
        for (const auto& v : c.volumes) {
          std::string name = VolumeName(v);
          YamlNode vol = YamlNode::Map();
          vol.Set("name", S(name));
          if (v.type == "bind") {
            YamlNode hp = YamlNode::Map();
            hp.Set("path", S(v.source));
            if (!v.host_path_type.empty())
              hp.Set("type", S(v.host_path_type));
            vol.Set("hostPath", hp);
          } else if (v.type == "volume" && !v.source.empty()) {
            YamlNode pvc = YamlNode::Map();
            pvc.Set("claimName", S(v.source));
            vol.Set("persistentVolumeClaim", pvc);
          } else if (v.type == "volume" || v.type == "emptydir") {
            vol.Set("emptyDir", YamlNode::Map());
          } else if (v.type == "tmpfs") {
            YamlNode ed = YamlNode::Map();
            ed.Set("medium", S("Memory"));
            vol.Set("emptyDir", ed);
          } else if (v.type == "configmap") {
            YamlNode cm = YamlNode::Map();
            cm.Set("name", S(v.source));
            vol.Set("configMap", cm);
          } else if (v.type == "secret") {
            YamlNode sec = YamlNode::Map();
            sec.Set("secretName", S(v.source));
            vol.Set("secret", sec);
          } else {
            warn(where + ": a " + v.type + " mount on " + v.target + " has no Pod field, left out");
            continue;
          }
          if (volume_names.insert(name).second)
            volumes.items.push_back(vol);
          YamlNode m = YamlNode::Map();
          m.Set("name", S(name));
          m.Set("mountPath", S(v.target));
          if (v.read_only)
            m.Set("readOnly", B(true));
          if (!v.subpath.empty())
            m.Set("subPath", S(v.subpath));
          if (v.propagation == "rshared" || v.propagation == "shared")
            m.Set("mountPropagation", S("Bidirectional"));
          else if (v.propagation == "rslave" || v.propagation == "slave")
            m.Set("mountPropagation", S("HostToContainer"));
          mounts.items.push_back(m);
        }
        if (!mounts.items.empty())
          n.Set("volumeMounts", mounts);
      }
      YamlNode sc = YamlNode::Map();
      if (!c.user.empty()) {
        std::string uid = c.user.substr(0, c.user.find(':'));
        std::string gid = c.user.find(':') == std::string::npos ? "" : c.user.substr(c.user.find(':') + 1);
        if (IsNumber(uid) && (gid.empty() || IsNumber(gid))) {
          sc.Set("runAsUser", YamlNode::Plain(uid));
          if (!gid.empty())
            sc.Set("runAsGroup", YamlNode::Plain(gid));
        } else {
          warn(where + ": user \"" + c.user + "\" is not numeric: runAsUser needs a uid, left out");
        }
      }
      if (c.privileged)
        sc.Set("privileged", B(true));
      if (c.read_only)
        sc.Set("readOnlyRootFilesystem", B(true));
      if (!c.cap_add.empty() || !c.cap_drop.empty()) {
        YamlNode caps = YamlNode::Map();
        if (!c.cap_add.empty())
          caps.Set("add", List(c.cap_add));
        if (!c.cap_drop.empty())
          caps.Set("drop", List(c.cap_drop));
        sc.Set("capabilities", caps);
      }
      if (!sc.items.empty())
        n.Set("securityContext", sc);
      if (c.healthcheck && !c.healthcheck->disable) {
        const auto& h = *c.healthcheck;
        YamlNode probe = YamlNode::Map();
        if (h.http_get) {
          YamlNode g = YamlNode::Map();
          if (!h.http_get->path.empty())
            g.Set("path", S(h.http_get->path));
          g.Set("port", Port(h.http_get->port));
          if (!h.http_get->host.empty())
            g.Set("host", S(h.http_get->host));
          if (!h.http_get->scheme.empty())
            g.Set("scheme", S(h.http_get->scheme));
          if (!h.http_get->headers.empty()) {
            YamlNode hs = YamlNode::Seq();
            for (const auto& [hk, hv] : h.http_get->headers) {
              YamlNode e = YamlNode::Map();
              e.Set("name", S(hk));
              e.Set("value", S(hv));
              hs.items.push_back(e);
            }
            g.Set("httpHeaders", hs);
          }
          probe.Set("httpGet", g);
        } else if (h.tcp_port) {
          YamlNode t = YamlNode::Map();
          t.Set("port", Port(*h.tcp_port));
          probe.Set("tcpSocket", t);
        } else if (!h.test.empty()) {
          std::vector<std::string> cmd;
          if (h.test[0] == "CMD-SHELL")
            cmd = {"/bin/sh", "-c", h.test.size() > 1 ? h.test[1] : ""};
          else
            cmd.assign(h.test.begin() + 1, h.test.end());
          YamlNode ex = YamlNode::Map();
          ex.Set("command", List(cmd));
          probe.Set("exec", ex);
        }
        if (h.start_period_ns)
          probe.Set("initialDelaySeconds", I(Seconds(*h.start_period_ns)));
        if (h.interval_ns)
          probe.Set("periodSeconds", I(Seconds(*h.interval_ns)));
        if (h.timeout_ns)
          probe.Set("timeoutSeconds", I(Seconds(*h.timeout_ns)));
        if (h.retries)
          probe.Set("failureThreshold", I(*h.retries));
        if (!probe.items.empty())
          n.Set("livenessProbe", probe);
      }
      if (!c.mem_limit.empty() || !c.cpus.empty()) {
        YamlNode lim = YamlNode::Map();
        if (!c.cpus.empty())
          lim.Set("cpu", S(c.cpus));
        if (!c.mem_limit.empty())
          lim.Set("memory", S(c.mem_limit));
        YamlNode res = YamlNode::Map();
        res.Set("limits", lim);
        n.Set("resources", res);
      }
      if (c.tty)
        n.Set("tty", B(true));
      if (c.stdin_open)
        n.Set("stdin", B(true));
      if (!c.tmpfs.empty())
        warn(where + ": tmpfs " + c.tmpfs[0] + (c.tmpfs.size() > 1 ? "..." : "") + " has no Pod field, left out");
      if (!c.secrets.empty())
        warn(where + ": compose secrets have no Pod field, left out");
      out.items.push_back(n);
    }
    return out;
  };
  spec.Set("containers", containers(pod.containers));
  if (!pod.init_containers.empty())
    spec.Set("initContainers", containers(pod.init_containers));
  if (!pod.hostname.empty())
    spec.Set("hostname", S(pod.hostname));
  if (pod.host_network)
    spec.Set("hostNetwork", B(true));
  if (!pod.restart_policy.empty()) {
    const std::string& r = pod.restart_policy;
    std::string k = r == "always" || r == "unless-stopped" ? "Always"
                    : r.rfind("on-failure", 0) == 0     ? "OnFailure"
                                                        : "Never";
    spec.Set("restartPolicy", S(k));
  }
  if (!volumes.items.empty())
    spec.Set("volumes", volumes);
  root.Set("spec", spec);
  SortKeys(&root);
  return EmitYaml(root, false);
}

}  // namespace kiln::kube
