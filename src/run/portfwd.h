// Internal to src/run: the built-in port forwarder behind `kiln run -p`
// (the design of rootlesskit's "builtin" port driver; docs/run.md).
//
// The process that owns a container (the foreground `kiln run` or the
// detached monitor) lives in the host network namespace. It binds the host
// sockets before the container starts; once the container's init exists, a
// forwarder thread joins the container's network namespace (setns on
// /proc/<pid>/ns/net, which affects only that thread), so every socket it
// creates from then on lives in the container, while the host sockets it
// accepted keep living on the host. For each accepted TCP connection it
// connects to 127.0.0.1:CTR in the container and relays both directions
// (poll, non-blocking read/write, bounded buffers, half-close passed on).
// UDP datagrams are relayed per client address through a connected socket
// in the container, dropped after kUdpIdleSeconds without traffic.
//
// No tun device, no external helper, nothing but the container's loopback is
// ever connected to.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kiln/error.h"
#include "kiln/run.h"
#include "kiln/unique_fd.h"

namespace kiln::run::internal {

/// -p as the user wrote it, normalised: "[IP:]HOST:CTR[/udp]" ("[IP:]:CTR", "CTR" for a free port).
std::string PublishFlagText(const PortMapping& p);

class PortForwarder {
 public:
  /// Limits (per forwarder).
  static constexpr size_t kMaxTcpConnections = 1024;
  static constexpr size_t kMaxPendingConnects = 8;  ///< connects into the container in progress
  static constexpr size_t kBufferSize = 32 * 1024;  ///< per direction per connection
  static constexpr size_t kMaxUdpFlows = 256;
  static constexpr int kUdpIdleSeconds = 60;

  /// Binds (and for TCP listens on) the host socket of every mapping, in the
  /// calling thread's network namespace. kSandbox "-p 127.0.0.1:8080:80:
  /// address already in use" when one is taken, kInvalidInput for a bad IP.
  static Expected<std::unique_ptr<PortForwarder>> Bind(const std::vector<PortMapping>& ports);
  /// Takes over host sockets that another process bound for `ports` (the
  /// detached container's monitor gets them from `kiln run -d`, so that the
  /// port is held from the first bind on, never released in between): fds[i]
  /// must be a socket bound to ports[i]'s port (listening, for TCP), else
  /// kSandbox naming the mapping. Takes ownership of every fd (and sets
  /// FD_CLOEXEC on it), also on error.
  static Expected<std::unique_ptr<PortForwarder>> Adopt(const std::vector<PortMapping>& ports,
                                                        const std::vector<int>& fds);
  /// The mappings as bound: a host port 0 replaced by the one the system chose.
  std::vector<PortMapping> mappings() const;
  /// The host sockets, in the order of the mappings (borrowed).
  std::vector<int> fds() const;

  ~PortForwarder();
  PortForwarder(const PortForwarder&) = delete;
  PortForwarder& operator=(const PortForwarder&) = delete;

  /// Starts forwarding into the network namespace of process `pid` (opened
  /// now; the forwarder thread joins it). Call once.
  Status Start(pid_t pid);

  /// Stops the thread and closes every socket (host ports are free after
  /// it returns). Idempotent.
  void Stop();

 private:
  struct Listener {
    PortMapping mapping;
    UniqueFd fd;
  };
  PortForwarder() = default;
  Status MakeWakePipe();
  void Loop();

  std::vector<Listener> listeners_;
  UniqueFd wake_r_;
  UniqueFd wake_w_;
  std::thread thread_;
};

}  // namespace kiln::run::internal
