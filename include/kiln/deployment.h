// The one typed deployment model (docs/compose.md, docs/architecture.md
// "Homes for the coming areas"): what a compose project or a Kubernetes Pod
// asks to run. Plain data, no I/O. The translators (kiln/compose.h,
// kiln/kube.h) fill it; the run side (apply) reads it. Paths in it are
// absolute once a translator has resolved them; durations are nanoseconds.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kiln::deployment {

/// One published or exposed port. A short form with ranges is expanded to
/// one mapping per container port (docker compose config does the same).
struct PortMapping {
  std::string name;          // compose long form `name`, kube `name`
  std::string host_ip;       // "" = every address
  uint32_t target = 0;       // port in the container
  std::string published;     // host port or range "8000-8010"; "" = none/ephemeral
  std::string protocol = "tcp";
  std::string mode;          // compose: "ingress" (default of docker) or "host"
  std::string app_protocol;  // compose long form
  bool operator==(const PortMapping&) const = default;
};

/// A mount into a container.
struct VolumeMount {
  /// "volume" (named, or anonymous when source is empty), "bind", "tmpfs",
  /// "configmap" and "secret" (kube: `source` names the ConfigMap/Secret),
  /// "emptydir" (kube: anonymous volume that goes with the pod).
  std::string type;
  std::string source;
  std::string target;
  bool read_only = false;
  std::string subpath;            // volume.subpath / kube subPath
  bool create_host_path = false;  // bind: short syntax creates a missing source (docker)
  std::string propagation;        // bind.propagation
  std::string selinux;            // bind.selinux "z" | "Z"
  bool nocopy = false;            // volume.nocopy
  int64_t tmpfs_size = 0;         // bytes; 0 = unset
  std::optional<uint32_t> tmpfs_mode;
  std::string kube_name;          // kube: the pod volume's name (kept for the round trip)
  std::string host_path_type;     // kube hostPath.type
  bool operator==(const VolumeMount&) const = default;
};

/// Where a variable's value comes from when it is not given inline (kube valueFrom).
struct EnvSource {
  std::string kind;  // "configMapKeyRef" | "secretKeyRef" | "fieldRef"
  std::string name;  // the ConfigMap/Secret (fieldRef: empty)
  std::string key;   // its key (fieldRef: the field path)
  std::optional<bool> optional;
  bool operator==(const EnvSource&) const = default;
};

struct EnvVar {
  std::string name;
  std::optional<std::string> value;  // nullopt: unset (compose `FOO:` with FOO not in the environment)
  std::optional<EnvSource> from;
  bool operator==(const EnvVar&) const = default;
};

struct EnvFile {
  std::string path;  // absolute
  bool required = true;
  bool operator==(const EnvFile&) const = default;
};

/// A health check. `test` is docker's form: {"CMD", argv...},
/// {"CMD-SHELL", "script"} or {"NONE"}. kube httpGet/tcpSocket probes are
/// kept as such (the monitor runs them itself; nothing needed in the image).
struct HealthCheck {
  std::vector<std::string> test;
  std::optional<int64_t> interval_ns, timeout_ns, start_period_ns, start_interval_ns;
  std::optional<int> retries;
  bool disable = false;
  struct HttpGet {
    std::string path, host, scheme;
    std::string port;  // number or a named container port
    std::vector<std::pair<std::string, std::string>> headers;
    bool operator==(const HttpGet&) const = default;
  };
  std::optional<HttpGet> http_get;
  std::optional<std::string> tcp_port;
  bool operator==(const HealthCheck&) const = default;
};

struct Dependency {
  std::string service;
  std::string condition = "service_started";  // | service_healthy | service_completed_successfully
  bool required = true;
  bool restart = false;
  bool operator==(const Dependency&) const = default;
};

struct NetworkAttachment {
  std::string network;  // key in Project::networks ("default" for <project>_default)
  std::vector<std::string> aliases;
  std::string ipv4_address, ipv6_address;
  std::optional<int> priority;
  bool operator==(const NetworkAttachment&) const = default;
};

struct SecretRef {
  std::string source;  // key in Project::secrets
  std::string target;  // "" = /run/secrets/<source>
  std::string uid, gid;
  std::optional<uint32_t> mode;
  bool operator==(const SecretRef&) const = default;
};

struct BuildSpec {
  std::string context;     // absolute path, or a URL
  std::string dockerfile;  // relative to context ("Dockerfile" by default)
  std::string dockerfile_inline;
  std::vector<std::pair<std::string, std::optional<std::string>>> args;  // sorted by name
  std::string target;
  std::string network;
  std::vector<SecretRef> secrets;
  std::map<std::string, std::string> labels;
  std::vector<std::string> cache_from, tags;
  bool no_cache = false, pull = false;
  bool operator==(const BuildSpec&) const = default;
};

struct ExtraHost {
  std::string host, ip;
  bool operator==(const ExtraHost&) const = default;
};

/// A compose service or one container of a pod.
struct Service {
  std::string name;
  std::vector<std::string> profiles;
  std::string image;
  std::optional<BuildSpec> build;
  std::optional<std::vector<std::string>> command;     // kube: args
  std::optional<std::vector<std::string>> entrypoint;  // kube: command
  std::vector<EnvVar> environment;                     // compose: sorted by name; kube: in order
  std::vector<EnvFile> env_files;
  std::vector<PortMapping> ports;
  std::vector<std::string> expose;
  std::vector<VolumeMount> volumes;
  std::vector<NetworkAttachment> networks;  // empty with network_mode set
  std::string network_mode;
  std::vector<Dependency> depends_on;
  std::optional<HealthCheck> healthcheck;
  std::string restart;  // "" | "no" | "always" | "on-failure[:N]" | "unless-stopped"
  std::string container_name, hostname, domainname, working_dir, user;
  std::map<std::string, std::string> labels, annotations;
  std::vector<SecretRef> secrets;
  std::string stop_signal;
  std::optional<int64_t> stop_grace_period_ns;
  std::vector<std::string> tmpfs;
  std::vector<ExtraHost> extra_hosts;
  std::vector<std::string> dns, dns_search, cap_add, cap_drop;
  std::optional<bool> init;
  bool privileged = false, read_only = false, tty = false, stdin_open = false;
  std::string pull_policy, platform;
  std::string mem_limit, cpus;  // as written ("512m", "0.5"); kube resources.limits
  std::string image_pull_policy;  // kube imagePullPolicy, as written
  bool operator==(const Service&) const = default;
};

struct VolumeDef {
  std::string name;  // the real name: <project>_<key> unless `name:` or external
  std::string driver;
  std::map<std::string, std::string> driver_opts, labels;
  bool external = false;
  bool operator==(const VolumeDef&) const = default;
};

struct NetworkDef {
  std::string name;  // <project>_<key> unless `name:` or external
  std::string driver;
  std::map<std::string, std::string> driver_opts, labels;
  bool external = false, internal = false, attachable = false;
  std::optional<bool> enable_ipv6;
  struct Pool {
    std::string subnet, ip_range, gateway;
    bool operator==(const Pool&) const = default;
  };
  std::vector<Pool> ipam;
  bool operator==(const NetworkDef&) const = default;
};

struct SecretDef {
  std::string name;         // <project>_<key> unless `name:` or external
  std::string file;         // absolute
  std::string environment;  // variable holding the value
  bool external = false;
  bool operator==(const SecretDef&) const = default;
};

/// A Kubernetes Pod (or a Deployment's pod template): containers sharing
/// namespaces, ports on the pod.
struct Pod {
  std::string name;
  std::map<std::string, std::string> labels, annotations;
  std::string hostname;
  std::string restart_policy;  // model vocabulary: "always" | "on-failure" | "no"
  std::vector<Service> init_containers;
  std::vector<Service> containers;
  bool host_network = false;
  bool operator==(const Pod&) const = default;
};

/// What a compose project or a kube file describes.
struct Project {
  std::string name;
  std::string working_dir;                 // the project directory
  std::vector<std::string> config_files;   // as given, in merge order
  std::vector<Service> services;           // sorted by name
  std::map<std::string, VolumeDef> volumes;
  std::map<std::string, NetworkDef> networks;
  std::map<std::string, SecretDef> secrets;
  std::vector<Pod> pods;
  bool operator==(const Project&) const = default;
};

/// Go's time.Duration.String(): "1m30s", "500ms", "1h0m0s", "0s".
std::string FormatDuration(int64_t ns);
/// Go's time.ParseDuration ("1m30s", "1.5h", "300ms", "0"); nullopt if invalid.
std::optional<int64_t> ParseDuration(const std::string& text);

}  // namespace kiln::deployment
