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

/// An argument of an Exec line as systemd reads it: quoted when it holds a
/// space, a quote or a backslash; % doubled (systemd.service "Command lines").
std::string ExecArg(const std::string& arg);

/// A Restart= value systemd knows: no, on-success, on-failure, on-abnormal,
/// on-watchdog, on-abort, always.
bool ValidRestartPolicy(const std::string& policy);

}  // namespace kiln::systemd

// Quadlet (docs/kube.md "Quadlet"): podman's unit-file shorthand,
// ~/.config/containers/systemd/*.container|*.volume|*.network|*.kube, turned
// into systemd services that run kiln. Pure: file text in, unit text out.
#include <map>
#include <vector>

#include "kiln/error.h"

namespace kiln::systemd {

/// Where the generated units find kiln and its store.
struct QuadletOptions {
  std::string kiln;        ///< absolute path of the kiln binary
  std::string store_root;  ///< --root; empty: kiln's default store
  /// The volume or network each .volume/.network file makes (its
  /// QuadletUnit::object), by file name: what Volume=foo.volume and
  /// Network=foo.network use. A file not in it: systemd-foo.
  std::map<std::string, std::string> objects;
};

/// One generated unit.
struct QuadletUnit {
  std::string file_name;  ///< "web.service", "data-volume.service", "net-network.service"
  std::string text;
  std::string object;     ///< the volume or network a .volume/.network file makes
};

/// The unit made from one Quadlet file: `name` is its file name (web.container),
/// `path` where it was read (the unit's SourcePath=), `text` its contents. A key
/// kiln does not know, a missing Image= or a bad line is an error naming
/// path:line and the key (as podman's quadlet, the file gives no unit).
Expected<QuadletUnit> Quadlet(const std::string& name, const std::string& path, const std::string& text,
                              const QuadletOptions& options);

/// The file endings Quadlet reads: .container .volume .network .kube.
bool IsQuadletFile(const std::string& name);

}  // namespace kiln::systemd
