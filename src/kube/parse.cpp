// Kubernetes YAML -> the deployment model: Pod and Deployment pod templates
// (as podman play kube reads them), ConfigMap, Secret, PVC. Every field not
// read is a warning with its path, never a silent drop (RUNSIDE.md §4).
#include <algorithm>
#include <cctype>
#include <set>

#include "deployment/yaml.h"
#include "kiln/kube.h"

namespace kiln::kube {

namespace {

using deployment::KindName;
using deployment::YamlNode;

std::string Child(const std::string& path, const std::string& key) { return path + "." + key; }
using deployment::ItemPath;

Error Bad(const YamlNode& n, const std::string& path, const std::string& why) {
  return deployment::NodeError(n, path, why);
}

class Reader {
 public:
  explicit Reader(Document* doc) : doc_(doc) {}

  Status Read(const YamlNode& root, size_t index);

 private:
  Document* doc_;

  void Unknown(const YamlNode& v, const std::string& path, const char* what = "unknown field, left out") {
    doc_->warnings.push_back(v.key_mark.str() + ": " + path + ": " + what);
  }

  Expected<std::string> Str(const YamlNode& n, const std::string& path) { return deployment::ReadString(n, path); }
  Expected<int64_t> Int(const YamlNode& n, const std::string& path, int64_t min, int64_t max) {
    return deployment::ReadInt(n, path, min, max);
  }
  Expected<bool> Bool(const YamlNode& n, const std::string& path) {
    if (n.IsScalar() && (n.scalar == "true" || n.scalar == "false"))
      return n.scalar == "true";
    return Bad(n, path, "must be true or false");
  }
  Expected<std::vector<std::string>> StrList(const YamlNode& n, const std::string& path) {
    return deployment::ReadStringList(n, path);
  }
  Expected<std::map<std::string, std::string>> StrMap(const YamlNode& n, const std::string& path) {
    std::map<std::string, std::string> out;
    if (n.IsNull())
      return out;
    if (!n.IsMapping())
      return Bad(n, path, "must be a mapping, not a " + KindName(n));
    for (const auto& v : n.items) {
      KILN_ASSIGN_OR_RETURN(out[v.key], v.IsNull() ? Expected<std::string>(std::string()) : Str(v, Child(path, v.key)));
    }
    return out;
  }
  const YamlNode* Mapping(const YamlNode& n, const std::string& path, Status* st) {
    if (n.IsNull())
      return nullptr;
    if (!n.IsMapping()) {
      *st = Bad(n, path, "must be a mapping, not a " + KindName(n));
      return nullptr;
    }
    return &n;
  }

  struct Meta {
    std::string name;
    std::map<std::string, std::string> labels, annotations;
  };
  Expected<Meta> Metadata(const YamlNode& root, const std::string& path, bool name_required);
  Status PodSpec(const YamlNode& spec, const std::string& path, deployment::Pod* pod);
  Expected<deployment::Service> Container(const YamlNode& n, const std::string& path,
                                          const std::map<std::string, deployment::VolumeMount>& volumes);
  Expected<deployment::HealthCheck> Probe(const YamlNode& n, const std::string& path);
  Status SecurityContext(const YamlNode& n, const std::string& path, deployment::Service* s);
  Expected<std::map<std::string, deployment::VolumeMount>> Volumes(const YamlNode& n, const std::string& path);
};

Expected<Reader::Meta> Reader::Metadata(const YamlNode& root, const std::string& path, bool name_required) {
  Meta m;
  const YamlNode* md = root.Find("metadata");
  if (!md || !md->IsMapping()) {
    if (name_required)
      return Bad(md ? *md : root, path + ".metadata", "metadata.name is required");
    return m;
  }
  for (const auto& v : md->items) {
    std::string vp = Child(path + ".metadata", v.key);
    if (v.key == "name") {
      KILN_ASSIGN_OR_RETURN(m.name, Str(v, vp));
    } else if (v.key == "labels" || v.key == "annotations") {
      auto mm = StrMap(v, vp);
      if (!mm)
        return std::move(mm).error();
      (v.key == "labels" ? m.labels : m.annotations) = *mm;
    } else if (v.key == "namespace" || v.key == "creationTimestamp" || v.key == "uid" ||
               v.key == "resourceVersion" || v.key == "generation") {
      continue;  // bookkeeping of a cluster: no meaning here
    } else {
      Unknown(v, vp);
    }
  }
  if (name_required && m.name.empty())
    return Bad(*md, path + ".metadata", "metadata.name is required");
  return m;
}

Expected<std::map<std::string, deployment::VolumeMount>> Reader::Volumes(const YamlNode& n, const std::string& path) {
  std::map<std::string, deployment::VolumeMount> out;
  if (n.IsNull())
    return out;
  if (!n.IsSequence())
    return Bad(n, path, "must be a list, not a " + KindName(n));
  for (size_t i = 0; i < n.items.size(); ++i) {
    const YamlNode& v = n.items[i];
    std::string p = ItemPath(path, i);
    if (!v.IsMapping())
      return Bad(v, p, "must be a mapping, not a " + KindName(v));
    deployment::VolumeMount m;
    const YamlNode* name = v.Find("name");
    if (!name || !name->IsScalar() || name->scalar.empty())
      return Bad(v, p, "name is required");
    m.kube_name = name->scalar;
    for (const auto& f : v.items) {
      std::string fp = Child(p, f.key);
      if (f.key == "name")
        continue;
      if (!m.type.empty()) {
        return Bad(f, fp, "a volume has one source (" + m.type + " already given)");
      }
      Status st;
      const YamlNode* src = Mapping(f, fp, &st);
      if (!st)
        return std::move(st).error();
      auto field = [&](const char* key) -> const YamlNode* { return src ? src->Find(key) : nullptr; };
      if (f.key == "hostPath") {
        m.type = "bind";
        const YamlNode* hp = field("path");
        if (!hp || !hp->IsScalar() || hp->scalar.empty())
          return Bad(f, fp, "path is required");
        m.source = hp->scalar;
        if (const YamlNode* t = field("type"); t && t->IsScalar())
          m.host_path_type = t->scalar;
        // podman: a hostPath without '/' names a named volume.
        if (m.source.find('/') == std::string::npos)
          m.type = "volume";
      } else if (f.key == "persistentVolumeClaim") {
        m.type = "volume";
        const YamlNode* cn = field("claimName");
        if (!cn || !cn->IsScalar() || cn->scalar.empty())
          return Bad(f, fp, "claimName is required");
        m.source = cn->scalar;
        if (const YamlNode* ro = field("readOnly")) {
          KILN_ASSIGN_OR_RETURN(m.read_only, Bool(*ro, Child(fp, "readOnly")));
        }
      } else if (f.key == "emptyDir") {
        m.type = "emptydir";
        if (const YamlNode* med = field("medium"); med && med->IsScalar() && med->scalar == "Memory")
          m.type = "tmpfs";
      } else if (f.key == "configMap" || f.key == "secret") {
        m.type = f.key == "configMap" ? "configmap" : "secret";
        const YamlNode* nm = field(f.key == "configMap" ? "name" : "secretName");
        if (!nm || !nm->IsScalar() || nm->scalar.empty())
          return Bad(f, fp, std::string(f.key == "configMap" ? "name" : "secretName") + " is required");
        m.source = nm->scalar;
        if (src)
          for (const auto& o : src->items)
            if (o.key != "name" && o.key != "secretName" && o.key != "optional")
              Unknown(o, Child(fp, o.key), "not supported by kiln, left out (the whole map/secret is mounted)");
      } else {
        Unknown(f, fp, "volume source not supported by kiln, left out");
        m.type = "unsupported:" + f.key;
      }
    }
    if (m.type.empty())
      return Bad(v, p, "no volume source (hostPath, persistentVolumeClaim, emptyDir, configMap, secret)");
    if (out.count(m.kube_name))
      return Bad(v, p, "volume name \"" + m.kube_name + "\" used twice");
    out[m.kube_name] = m;
  }
  return out;
}

Expected<deployment::HealthCheck> Reader::Probe(const YamlNode& n, const std::string& path) {
  deployment::HealthCheck h;
  if (!n.IsMapping())
    return Bad(n, path, "must be a mapping, not a " + KindName(n));
  int handlers = 0;
  for (const auto& v : n.items) {
    std::string vp = Child(path, v.key);
    auto seconds = [&](std::optional<int64_t>* out) -> Status {
      auto i = Int(v, vp, 0, 1'000'000);
      if (!i)
        return std::move(i).error();
      *out = *i * 1'000'000'000;
      return {};
    };
    Status st;
    if (v.key == "exec") {
      ++handlers;
      const YamlNode* cmd = v.IsMapping() ? v.Find("command") : nullptr;
      if (!cmd)
        return Bad(v, vp, "command is required");
      auto l = StrList(*cmd, Child(vp, "command"));
      if (!l)
        return std::move(l).error();
      h.test = {"CMD"};
      h.test.insert(h.test.end(), l->begin(), l->end());
    } else if (v.key == "httpGet") {
      ++handlers;
      if (!v.IsMapping())
        return Bad(v, vp, "must be a mapping");
      deployment::HealthCheck::HttpGet g;
      for (const auto& f : v.items) {
        std::string fp = Child(vp, f.key);
        if (f.key == "path" || f.key == "host" || f.key == "scheme" || f.key == "port") {
          auto s = Str(f, fp);
          if (!s)
            return std::move(s).error();
          (f.key == "path" ? g.path : f.key == "host" ? g.host : f.key == "scheme" ? g.scheme : g.port) = *s;
        } else if (f.key == "httpHeaders") {
          if (!f.IsSequence())
            return Bad(f, fp, "must be a list");
          for (size_t i = 0; i < f.items.size(); ++i) {
            const YamlNode& hd = f.items[i];
            const YamlNode* hn = hd.Find("name");
            const YamlNode* hv = hd.Find("value");
            if (!hn || !hv || !hn->IsScalar() || !hv->IsScalar())
              return Bad(hd, ItemPath(fp, i), "name and value are required");
            g.headers.emplace_back(hn->scalar, hv->scalar);
          }
        } else {
          Unknown(f, fp);
        }
      }
      if (g.port.empty())
        return Bad(v, vp, "port is required");
      h.http_get = g;
    } else if (v.key == "tcpSocket") {
      ++handlers;
      const YamlNode* port = v.IsMapping() ? v.Find("port") : nullptr;
      if (!port || !port->IsScalar())
        return Bad(v, vp, "port is required");
      h.tcp_port = port->scalar;
      if (const YamlNode* host = v.Find("host"))
        Unknown(*host, Child(vp, "host"), "not supported by kiln, left out (the pod's own address is probed)");
    } else if (v.key == "initialDelaySeconds") {
      st = seconds(&h.start_period_ns);
    } else if (v.key == "periodSeconds") {
      st = seconds(&h.interval_ns);
    } else if (v.key == "timeoutSeconds") {
      st = seconds(&h.timeout_ns);
    } else if (v.key == "failureThreshold") {
      auto i = Int(v, vp, 1, 1'000'000);
      if (!i)
        return std::move(i).error();
      h.retries = static_cast<int>(*i);
    } else {
      Unknown(v, vp);
    }
    if (!st)
      return std::move(st).error();
  }
  if (handlers != 1)
    return Bad(n, path, "needs exactly one of exec, httpGet, tcpSocket");
  return h;
}

Status Reader::SecurityContext(const YamlNode& n, const std::string& path, deployment::Service* s) {
  if (n.IsNull())
    return {};
  if (!n.IsMapping())
    return Bad(n, path, "must be a mapping, not a " + KindName(n));
  std::string uid, gid;
  for (const auto& v : n.items) {
    std::string vp = Child(path, v.key);
    if (v.key == "runAsUser" || v.key == "runAsGroup") {
      auto i = Int(v, vp, 0, UINT32_MAX);
      if (!i)
        return std::move(i).error();
      (v.key == "runAsUser" ? uid : gid) = std::to_string(*i);
    } else if (v.key == "privileged" || v.key == "readOnlyRootFilesystem") {
      auto b = Bool(v, vp);
      if (!b)
        return std::move(b).error();
      (v.key == "privileged" ? s->privileged : s->read_only) = *b;
    } else if (v.key == "capabilities") {
      if (!v.IsMapping())
        return Bad(v, vp, "must be a mapping");
      for (const auto& c : v.items) {
        if (c.key != "add" && c.key != "drop") {
          Unknown(c, Child(vp, c.key));
          continue;
        }
        auto l = StrList(c, Child(vp, c.key));
        if (!l)
          return std::move(l).error();
        (c.key == "add" ? s->cap_add : s->cap_drop) = *l;
      }
    } else if (v.key == "runAsNonRoot" || v.key == "allowPrivilegeEscalation") {
      Unknown(v, vp, "not enforced by kiln, left out");
    } else {
      Unknown(v, vp);
    }
  }
  if (!uid.empty() || !gid.empty()) {
    // A pod-level context gives defaults; the container's own wins field by field.
    std::string old_uid = s->user.substr(0, s->user.find(':'));
    std::string old_gid = s->user.find(':') == std::string::npos ? "" : s->user.substr(s->user.find(':') + 1);
    if (uid.empty())
      uid = old_uid.empty() ? "0" : old_uid;
    if (gid.empty())
      gid = old_gid;
    s->user = gid.empty() ? uid : uid + ":" + gid;
  }
  return {};
}

Expected<deployment::Service> Reader::Container(const YamlNode& n, const std::string& path,
                                                const std::map<std::string, deployment::VolumeMount>& volumes) {
  deployment::Service s;
  if (!n.IsMapping())
    return Bad(n, path, "must be a mapping, not a " + KindName(n));
  for (const auto& v : n.items) {
    std::string vp = Child(path, v.key);
    const std::string& k = v.key;
    Status st;
    auto str_into = [&](std::string* out) -> Status {
      KILN_ASSIGN_OR_RETURN(*out, Str(v, vp));
      return {};
    };
    if (k == "name") {
      st = str_into(&s.name);
    } else if (k == "image") {
      st = str_into(&s.image);
    } else if (k == "command" || k == "args") {
      auto l = StrList(v, vp);
      if (!l)
        return std::move(l).error();
      (k == "command" ? s.entrypoint : s.command) = *l;
    } else if (k == "workingDir") {
      st = str_into(&s.working_dir);
    } else if (k == "imagePullPolicy") {
      st = str_into(&s.image_pull_policy);
    } else if (k == "env") {
      if (!v.IsSequence())
        return Bad(v, vp, "must be a list, not a " + KindName(v));
      for (size_t i = 0; i < v.items.size(); ++i) {
        const YamlNode& e = v.items[i];
        std::string ep = ItemPath(vp, i);
        if (!e.IsMapping())
          return Bad(e, ep, "must be a mapping, not a " + KindName(e));
        deployment::EnvVar var;
        for (const auto& f : e.items) {
          std::string fp = Child(ep, f.key);
          if (f.key == "name" || f.key == "value") {
            auto s2 = f.IsNull() ? Expected<std::string>(std::string()) : Str(f, fp);
            if (!s2)
              return std::move(s2).error();
            if (f.key == "name")
              var.name = *s2;
            else
              var.value = *s2;
          } else if (f.key == "valueFrom") {
            if (!f.IsMapping() || f.items.size() != 1)
              return Bad(f, fp, "needs exactly one of configMapKeyRef, secretKeyRef, fieldRef");
            const YamlNode& ref = f.items[0];
            std::string rp = Child(fp, ref.key);
            deployment::EnvSource src;
            src.kind = ref.key;
            if (ref.key == "configMapKeyRef" || ref.key == "secretKeyRef") {
              const YamlNode* rn = ref.Find("name");
              const YamlNode* rk = ref.Find("key");
              if (!rn || !rk || !rn->IsScalar() || !rk->IsScalar())
                return Bad(ref, rp, "name and key are required");
              src.name = rn->scalar;
              src.key = rk->scalar;
              if (const YamlNode* opt = ref.Find("optional")) {
                KILN_ASSIGN_OR_RETURN(src.optional, Bool(*opt, Child(rp, "optional")));
              }
            } else if (ref.key == "fieldRef") {
              const YamlNode* fpth = ref.Find("fieldPath");
              if (!fpth || !fpth->IsScalar())
                return Bad(ref, rp, "fieldPath is required");
              src.key = fpth->scalar;
            } else {
              return Bad(ref, rp, "not supported (configMapKeyRef, secretKeyRef, fieldRef)");
            }
            var.from = src;
          } else {
            Unknown(f, fp);
          }
        }
        if (var.name.empty())
          return Bad(e, ep, "name is required");
        if (var.from && var.value)
          return Bad(e, ep, "value and valueFrom are mutually exclusive");
        if (!var.from && !var.value)
          var.value = "";
        s.environment.push_back(var);
      }
    } else if (k == "ports") {
      if (!v.IsSequence())
        return Bad(v, vp, "must be a list, not a " + KindName(v));
      for (size_t i = 0; i < v.items.size(); ++i) {
        const YamlNode& p = v.items[i];
        std::string pp = ItemPath(vp, i);
        if (!p.IsMapping())
          return Bad(p, pp, "must be a mapping, not a " + KindName(p));
        deployment::PortMapping m;
        bool has = false;
        for (const auto& f : p.items) {
          std::string fp = Child(pp, f.key);
          if (f.key == "containerPort" || f.key == "hostPort") {
            auto port = Int(f, fp, 1, 65535);
            if (!port)
              return std::move(port).error();
            if (f.key == "containerPort") {
              m.target = static_cast<uint32_t>(*port);
              has = true;
            } else {
              m.published = std::to_string(*port);
            }
          } else if (f.key == "protocol") {
            auto pr = Str(f, fp);
            if (!pr)
              return std::move(pr).error();
            std::string lower = *pr;
            std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
            if (lower != "tcp" && lower != "udp" && lower != "sctp")
              return Bad(f, fp, "unknown protocol \"" + *pr + "\" (TCP, UDP, SCTP)");
            m.protocol = lower;
          } else if (f.key == "name" || f.key == "hostIP") {
            auto s2 = Str(f, fp);
            if (!s2)
              return std::move(s2).error();
            (f.key == "name" ? m.name : m.host_ip) = *s2;
          } else {
            Unknown(f, fp);
          }
        }
        if (!has)
          return Bad(p, pp, "containerPort is required");
        s.ports.push_back(m);
      }
    } else if (k == "volumeMounts") {
      if (!v.IsSequence())
        return Bad(v, vp, "must be a list, not a " + KindName(v));
      for (size_t i = 0; i < v.items.size(); ++i) {
        const YamlNode& m = v.items[i];
        std::string mp = ItemPath(vp, i);
        if (!m.IsMapping())
          return Bad(m, mp, "must be a mapping, not a " + KindName(m));
        const YamlNode* name = m.Find("name");
        const YamlNode* mount = m.Find("mountPath");
        if (!name || !name->IsScalar())
          return Bad(m, mp, "name is required");
        if (!mount || !mount->IsScalar() || mount->scalar.empty() || mount->scalar[0] != '/')
          return Bad(m, mp, "mountPath (an absolute path) is required");
        auto it = volumes.find(name->scalar);
        if (it == volumes.end())
          return Bad(*name, Child(mp, "name"), "no volume named \"" + name->scalar + "\" in spec.volumes");
        deployment::VolumeMount vm = it->second;
        if (vm.type.rfind("unsupported:", 0) == 0)
          continue;  // warned about once, at the volume
        vm.target = mount->scalar;
        for (const auto& f : m.items) {
          std::string fp = Child(mp, f.key);
          if (f.key == "readOnly") {
            auto b = Bool(f, fp);
            if (!b)
              return std::move(b).error();
            vm.read_only = vm.read_only || *b;
          } else if (f.key == "subPath") {
            KILN_ASSIGN_OR_RETURN(vm.subpath, Str(f, fp));
          } else if (f.key == "mountPropagation") {
            auto pr = Str(f, fp);
            if (!pr)
              return std::move(pr).error();
            vm.propagation = *pr == "Bidirectional" ? "rshared" : *pr == "HostToContainer" ? "rslave" : "";
          } else if (f.key != "name" && f.key != "mountPath") {
            Unknown(f, fp);
          }
        }
        s.volumes.push_back(vm);
      }
    } else if (k == "securityContext") {
      st = SecurityContext(v, vp, &s);
    } else if (k == "livenessProbe") {
      KILN_ASSIGN_OR_RETURN(s.healthcheck, Probe(v, vp));
    } else if (k == "resources") {
      if (!v.IsMapping())
        return Bad(v, vp, "must be a mapping");
      for (const auto& r : v.items) {
        if (r.key != "limits") {
          Unknown(r, Child(vp, r.key), "not supported by kiln, left out (limits are)");
          continue;
        }
        auto lim = StrMap(r, Child(vp, "limits"));
        if (!lim)
          return std::move(lim).error();
        for (const auto& [lk, lv] : *lim) {
          if (lk == "memory")
            s.mem_limit = lv;
          else if (lk == "cpu")
            s.cpus = lv;
          else
            Unknown(r, Child(Child(vp, "limits"), lk), "not supported by kiln, left out");
        }
      }
    } else if (k == "stdin" || k == "tty") {
      auto b = Bool(v, vp);
      if (!b)
        return std::move(b).error();
      (k == "tty" ? s.tty : s.stdin_open) = *b;
    } else if (k == "readinessProbe" || k == "startupProbe" || k == "envFrom" || k == "lifecycle" ||
               k == "volumeDevices" || k == "terminationMessagePath" || k == "terminationMessagePolicy" ||
               k == "stdinOnce") {
      Unknown(v, vp, "not supported by kiln yet, left out");
    } else {
      Unknown(v, vp);
    }
    if (!st)
      return std::move(st).error();
  }
  if (s.name.empty())
    return Bad(n, path, "name is required");
  if (s.image.empty())
    return Bad(n, path, "image is required");
  return s;
}

Status Reader::PodSpec(const YamlNode& spec, const std::string& path, deployment::Pod* pod) {
  if (!spec.IsMapping())
    return Bad(spec, path, "must be a mapping, not a " + KindName(spec));
  std::map<std::string, deployment::VolumeMount> volumes;
  if (const YamlNode* v = spec.Find("volumes")) {
    KILN_ASSIGN_OR_RETURN(volumes, Volumes(*v, Child(path, "volumes")));
  }
  const YamlNode* pod_security = nullptr;
  for (const auto& v : spec.items) {
    std::string vp = Child(path, v.key);
    if (v.key == "containers" || v.key == "initContainers") {
      if (!v.IsSequence() || v.items.empty())
        return Bad(v, vp, "must be a non-empty list of containers");
      std::set<std::string> names;
      for (size_t i = 0; i < v.items.size(); ++i) {
        auto c = Container(v.items[i], ItemPath(vp, i), volumes);
        if (!c)
          return std::move(c).error();
        if (!names.insert(c->name).second)
          return Bad(v.items[i], ItemPath(vp, i), "container name \"" + c->name + "\" used twice");
        (v.key == "containers" ? pod->containers : pod->init_containers).push_back(std::move(*c));
      }
    } else if (v.key == "volumes") {
      continue;
    } else if (v.key == "restartPolicy") {
      auto r = Str(v, vp);
      if (!r)
        return std::move(r).error();
      if (*r == "Always")
        pod->restart_policy = "always";
      else if (*r == "OnFailure")
        pod->restart_policy = "on-failure";
      else if (*r == "Never")
        pod->restart_policy = "no";
      else
        return Bad(v, vp, "unknown restart policy \"" + *r + "\" (Always, OnFailure, Never)");
    } else if (v.key == "hostname") {
      KILN_ASSIGN_OR_RETURN(pod->hostname, Str(v, vp));
    } else if (v.key == "hostNetwork") {
      KILN_ASSIGN_OR_RETURN(pod->host_network, Bool(v, vp));
    } else if (v.key == "securityContext") {
      pod_security = &v;
    } else {
      Unknown(v, vp, v.key == "dnsConfig" || v.key == "hostAliases" || v.key == "nodeSelector"
                         ? "not supported by kiln yet, left out"
                         : "unknown field, left out");
    }
  }
  if (pod->containers.empty())
    return Bad(spec, path, "containers is required");
  if (pod_security) {
    // Pod-level runAsUser/runAsGroup are defaults under each container's own.
    for (auto& c : pod->containers) {
      deployment::Service defaults;
      if (auto st = SecurityContext(*pod_security, Child(path, "securityContext"), &defaults); !st)
        return st;
      if (c.user.empty())
        c.user = defaults.user;
    }
  }
  return {};
}

Status Reader::Read(const YamlNode& root, size_t index) {
  std::string path = "document " + std::to_string(index + 1);
  if (!root.IsMapping())
    return Bad(root, path, "a Kubernetes object is a mapping, not a " + KindName(root));
  const YamlNode* kind = root.Find("kind");
  if (!kind || !kind->IsScalar())
    return Bad(root, path, "kind is required");
  std::string k = kind->scalar;
  path = k;
  if (k == "Pod" || k == "Deployment") {
    auto meta = Metadata(root, path, true);
    if (!meta)
      return std::move(meta).error();
    path = k + "/" + meta->name;
    const YamlNode* spec = root.Find("spec");
    if (!spec)
      return Bad(root, path, "spec is required");
    deployment::Pod pod;
    pod.name = meta->name;
    pod.labels = meta->labels;
    pod.annotations = meta->annotations;
    if (k == "Deployment") {
      // podman: a Deployment is one pod named <deployment>-pod.
      pod.name = meta->name + "-pod";
      if (!spec->IsMapping())
        return Bad(*spec, path + ".spec", "must be a mapping");
      const YamlNode* tmpl = nullptr;
      for (const auto& v : spec->items) {
        std::string vp = path + ".spec." + v.key;
        if (v.key == "template") {
          tmpl = &v;
        } else if (v.key == "replicas") {
          auto r = Int(v, vp, 0, INT32_MAX);
          if (!r)
            return std::move(r).error();
          if (*r != 1)
            doc_->warnings.push_back(v.mark.str() + ": " + vp + ": " + std::to_string(*r) +
                                     " replicas asked, kiln runs one pod (as podman)");
        } else if (v.key != "selector" && v.key != "strategy") {
          Unknown(v, vp);
        }
      }
      if (!tmpl || !tmpl->IsMapping())
        return Bad(*spec, path + ".spec", "template is required");
      auto tmeta = Metadata(*tmpl, path + ".spec.template", false);
      if (!tmeta)
        return std::move(tmeta).error();
      for (auto& [lk, lv] : tmeta->labels)
        pod.labels.emplace(lk, lv);
      for (auto& [ak, av] : tmeta->annotations)
        pod.annotations.emplace(ak, av);
      const YamlNode* tspec = tmpl->Find("spec");
      if (!tspec)
        return Bad(*tmpl, path + ".spec.template", "spec is required");
      if (auto st = PodSpec(*tspec, path + ".spec.template.spec", &pod); !st)
        return st;
    } else if (auto st = PodSpec(*spec, path + ".spec", &pod); !st) {
      return st;
    }
    for (const auto& v : root.items)
      if (v.key != "apiVersion" && v.key != "kind" && v.key != "metadata" && v.key != "spec" && v.key != "status")
        Unknown(v, path + "." + v.key);
    doc_->pods.push_back(std::move(pod));
    return {};
  }
  if (k == "ConfigMap") {
    auto meta = Metadata(root, path, true);
    if (!meta)
      return std::move(meta).error();
    ConfigMap cm{meta->name, {}};
    if (const YamlNode* d = root.Find("data")) {
      KILN_ASSIGN_OR_RETURN(cm.data, StrMap(*d, path + "/" + meta->name + ".data"));
    }
    if (const YamlNode* b = root.Find("binaryData"))
      Unknown(*b, path + "/" + meta->name + ".binaryData", "not supported by kiln, left out");
    doc_->config_maps.push_back(cm);
    return {};
  }
  if (k == "Secret") {
    auto meta = Metadata(root, path, true);
    if (!meta)
      return std::move(meta).error();
    Secret s{meta->name, "", {}, {}};
    if (const YamlNode* t = root.Find("type"); t && t->IsScalar())
      s.type = t->scalar;
    for (const char* field : {"data", "stringData"}) {
      if (const YamlNode* d = root.Find(field)) {
        auto m = StrMap(*d, path + "/" + meta->name + "." + field);
        if (!m)
          return std::move(m).error();
        (std::string(field) == "data" ? s.data : s.string_data) = *m;
      }
    }
    doc_->secrets.push_back(s);
    return {};
  }
  if (k == "PersistentVolumeClaim") {
    auto meta = Metadata(root, path, true);
    if (!meta)
      return std::move(meta).error();
    PersistentVolumeClaim c{meta->name, meta->annotations, ""};
    if (const YamlNode* spec = root.Find("spec"))
      if (const YamlNode* res = spec->Find("resources"))
        if (const YamlNode* req = res->Find("requests"))
          if (const YamlNode* st = req->Find("storage"); st && st->IsScalar())
            c.storage = st->scalar;
    doc_->claims.push_back(c);
    return {};
  }
  doc_->warnings.push_back(kind->mark.str() + ": " + path + ": kind " + k +
                           " is not supported by kiln (Pod, Deployment, ConfigMap, Secret, PersistentVolumeClaim), "
                           "left out");
  return {};
}

}  // namespace

Expected<Document> Parse(std::string_view text, const std::string& file) {
  auto docs = deployment::ParseYamlDocuments(text, file);
  if (!docs)
    return std::move(docs).error();
  Document out;
  Reader r(&out);
  for (size_t i = 0; i < docs->size(); ++i)
    if (auto st = r.Read((*docs)[i], i); !st)
      return std::move(st).error();
  if (out.pods.empty() && out.config_maps.empty() && out.secrets.empty() && out.claims.empty() &&
      out.warnings.empty())
    return Error(Errc::kInvalidInput, file + ": no Kubernetes object in the file");
  return out;
}

std::string SanitizeName(const std::string& name) {
  std::string out;
  for (char c : name) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (std::isalnum(static_cast<unsigned char>(l)))
      out += l;
    else if (!out.empty() && out.back() != '-')
      out += '-';
  }
  if (out.size() > 63)
    out.resize(63);
  while (!out.empty() && out.back() == '-')
    out.pop_back();
  return out.empty() ? "x" : out;
}

}  // namespace kiln::kube
