// Compose top-level volumes, networks and secrets -> the deployment model.
#include "compose/translator.h"

namespace kiln::compose {

// --- top level -----------------------------------------------------------------------

// The keys top-level volumes and networks share: name, driver, driver_opts,
// labels, external (also the old `external: {name: x}`). True when `o` is one.
template <typename Def>
Expected<bool> Translator::SharedTopKey(const YamlNode& o, const std::string& op, Def* d,
                                        std::string* explicit_name) {
  if (o.key == "name" || o.key == "driver") {
    KILN_ASSIGN_OR_RETURN(std::string v, Str(o, op));
    (o.key == "name" ? *explicit_name : d->driver) = v;
  } else if (o.key == "driver_opts" || o.key == "labels") {
    KILN_ASSIGN_OR_RETURN((o.key == "labels" ? d->labels : d->driver_opts), StringMap(o, op));
  } else if (o.key == "external") {
    if (o.IsMapping()) {
      if (const YamlNode* en = o.Find("name"); en && en->IsScalar())
        *explicit_name = en->scalar;
      d->external = true;
    } else {
      KILN_ASSIGN_OR_RETURN(bool b, Bool(o, op));
      d->external = b;
    }
  } else {
    return false;
  }
  return true;
}

// Top-level volumes and networks: a mapping of NAME: {keys} or NAME: (empty).
// The shared keys come from SharedTopKey, the kind's own from `own` (false:
// not its key); the name is NAME prefixed by the project, or `name:`, or NAME
// itself when external.
template <typename Def, typename Own>
Status Translator::TopDefs(const YamlNode& n, const std::string& kind, std::map<std::string, Def>* out, Own own) {
  if (n.IsNull())
    return {};
  if (!n.IsMapping())
    return NodeError(n, kind, "must be a mapping, not a " + KindName(n));
  for (const auto& v : n.items) {
    std::string vp = kind + "." + v.key;
    Def d;
    d.name = ctx_.project_name + "_" + v.key;
    std::string explicit_name;
    if (v.IsMapping()) {
      for (const auto& o : v.items) {
        std::string op = Child(vp, o.key);
        KILN_ASSIGN_OR_RETURN(bool shared, SharedTopKey(o, op, &d, &explicit_name));
        if (shared)
          continue;
        KILN_ASSIGN_OR_RETURN(bool known, own(o, op, &d));
        if (!known && o.key.rfind("x-", 0) != 0)
          WarnKey(o, op, "unknown key, left out");
      }
    } else if (!v.IsNull()) {
      return NodeError(v, vp, "must be a mapping or empty, not a " + KindName(v));
    }
    if (!explicit_name.empty())
      d.name = explicit_name;
    else if (d.external)
      d.name = v.key;
    (*out)[v.key] = d;
  }
  return {};
}

Status Translator::TopVolumes(const YamlNode& n, Project* p) {
  return TopDefs(n, "volumes", &p->volumes,
                 [](const YamlNode&, const std::string&, deployment::VolumeDef*) -> Expected<bool> { return false; });
}

// A top-level network's own keys: internal, attachable, enable_ipv6, ipam.
Expected<bool> Translator::NetworkKey(const YamlNode& o, const std::string& op, deployment::NetworkDef* d) {
  if (o.key == "internal" || o.key == "attachable") {
    auto b = Bool(o, op);
    if (!b)
      return std::move(b).error();
    (o.key == "internal" ? d->internal : d->attachable) = *b;
  } else if (o.key == "enable_ipv6") {
    KILN_ASSIGN_OR_RETURN(d->enable_ipv6, Bool(o, op));
  } else if (o.key == "ipam") {
    if (!o.IsMapping())
      return NodeError(o, op, "must be a mapping, not a " + KindName(o));
    for (const auto& ik : o.items) {
      std::string ip = Child(op, ik.key);
      if (ik.key == "config") {
        if (!ik.IsSequence())
          return NodeError(ik, ip, "must be a list, not a " + KindName(ik));
        for (size_t i = 0; i < ik.items.size(); ++i) {
          const YamlNode& c = ik.items[i];
          if (!c.IsMapping())
            return NodeError(c, ItemPath(ip, i), "must be a mapping, not a " + KindName(c));
          deployment::NetworkDef::Pool pool;
          for (const auto& f : c.items) {
            if (f.key == "subnet" || f.key == "ip_range" || f.key == "gateway") {
              auto s = Str(f, Child(ItemPath(ip, i), f.key));
              if (!s)
                return std::move(s).error();
              (f.key == "subnet" ? pool.subnet : f.key == "ip_range" ? pool.ip_range : pool.gateway) = *s;
            } else {
              WarnKey(f, Child(ItemPath(ip, i), f.key), "not supported by kiln, left out");
            }
          }
          d->ipam.push_back(pool);
        }
      } else if (ik.key != "driver") {
        WarnKey(ik, ip, "not supported by kiln, left out");
      }
    }
  } else {
    return false;
  }
  return true;
}

Status Translator::TopNetworks(const YamlNode& n, Project* p) {
  return TopDefs(n, "networks", &p->networks,
                 [this](const YamlNode& o, const std::string& op, deployment::NetworkDef* d) {
                   return NetworkKey(o, op, d);
                 });
}

Status Translator::TopSecrets(const YamlNode& n, Project* p) {
  if (n.IsNull())
    return {};
  if (!n.IsMapping())
    return NodeError(n, "secrets", "must be a mapping, not a " + KindName(n));
  for (const auto& v : n.items) {
    std::string vp = "secrets." + v.key;
    if (!v.IsMapping())
      return NodeError(v, vp, "must be a mapping with file, environment or external");
    deployment::SecretDef d;
    d.name = ctx_.project_name + "_" + v.key;
    std::string explicit_name;
    for (const auto& o : v.items) {
      std::string op = Child(vp, o.key);
      if (o.key == "file" || o.key == "environment" || o.key == "name") {
        auto s = Str(o, op);
        if (!s)
          return std::move(s).error();
        (o.key == "file" ? d.file : o.key == "environment" ? d.environment : explicit_name) = *s;
      } else if (o.key == "external") {
        KILN_ASSIGN_OR_RETURN(d.external, Bool(o, op));
      } else if (o.key.rfind("x-", 0) != 0) {
        WarnKey(o, op, "not supported by kiln, left out");
      }
    }
    int sources = (!d.file.empty()) + (!d.environment.empty()) + d.external;
    if (sources != 1)
      return NodeError(v, vp, "needs exactly one of file, environment, external");
    if (!d.file.empty())
      d.file = ResolvePath(d.file);
    if (!explicit_name.empty())
      d.name = explicit_name;
    else if (d.external)
      d.name = v.key;
    p->secrets[v.key] = d;
  }
  return {};
}

}  // namespace kiln::compose
