// systemd units for kiln containers and pods (docs/kube.md "generate
// systemd"): a pure generator, text out, nothing started or installed.
#pragma once

#include <string>

namespace kiln::systemd {

/// What `kiln generate systemd` knows of its object.
struct UnitSpec {
  bool pod = false;          ///< a pod (kiln pod start/stop) or a container (kiln start/stop)
  std::string name;          ///< the container's or pod's name, as kiln resolves it
  std::string id;            ///< its full ID (a comment in the unit)
  std::string kiln;          ///< absolute path of the kiln binary
  std::string store_root;    ///< --root of the store it lives in
  std::string restart_policy = "on-failure";  ///< systemd Restart= value
  int stop_timeout = 10;     ///< seconds, as `kiln stop -t`
  std::string prefix;        ///< "container" or "pod" by default (podman's --container-prefix/--pod-prefix)
  std::string separator = "-";
};

/// The unit's file name: "<prefix>-<name>.service" (podman's).
std::string UnitName(const UnitSpec& spec);

/// The unit: Type=forking (`kiln start` returns once the container's
/// monitor runs it; the monitor stays in the unit's cgroup and is its main
/// process), ExecStart `kiln --root STORE start NAME` (`pod start` for a
/// pod), ExecStop/ExecStopPost `stop -t N`, TimeoutStopSec N+60,
/// Restart=, WantedBy=default.target (a --user unit; `loginctl
/// enable-linger` keeps it running without a login). No wait on
/// network-online.target (RUNSIDE.md: the holder copes with a late uplink).
std::string ContainerUnit(const UnitSpec& spec);

/// A Restart= value systemd knows: no, on-success, on-failure, on-abnormal,
/// on-watchdog, on-abort, always.
bool ValidRestartPolicy(const std::string& policy);

}  // namespace kiln::systemd
