// Integration-test harness: a real docker-registry (Debian's distribution
// 2.8) on a loopback port in plain HTTP, TLS or auth mode, a tiny Bearer
// token issuer, a fault-injecting HTTP proxy, and command running helpers.
// Everything listens on 127.0.0.1 only and is stopped by its destructor.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kiln/fs.h"

namespace kiln::registry::test {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

/// Runs argv (PATH lookup), feeding `input` on stdin; waits at most
/// timeout_s seconds (then SIGKILL, exit_code -1).
CommandResult Run(const std::vector<std::string>& argv, const std::string& input = "",
                  int timeout_s = 300, const std::vector<std::string>& extra_env = {});

/// A port that was free a moment ago on 127.0.0.1.
int FreePort();

/// true once something accepts connections on 127.0.0.1:port.
bool WaitForPort(int port, int timeout_ms);

enum class RegistryMode { kPlain, kTls, kHtpasswd, kToken };

/// A docker-registry process with its own storage and config.
class RegistryServer {
 public:
  RegistryServer();
  /// Starts the registry; "" on success, else why it could not start.
  std::string Start(RegistryMode mode, const std::string& user = "kiln",
                    const std::string& password = "s3cret-pw");
  ~RegistryServer();

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_->path(); }
  /// CA certificate directory for --cert-dir (TLS mode).
  std::string cert_dir() const { return JoinPath(dir(), "certs"); }
  RegistryMode mode() const { return mode_; }

 private:
  std::string StartTokenIssuer(const std::string& user, const std::string& password);

  std::unique_ptr<TempDir> dir_;
  RegistryMode mode_ = RegistryMode::kPlain;
  pid_t pid_ = -1;
  int port_ = 0;
  struct TokenIssuer;
  std::unique_ptr<TokenIssuer> issuer_;
};

/// One fault for the proxy to inject on the next request matching method
/// and a path substring.
struct Fault {
  enum Kind {
    kStatus,      // answer `status` (with Retry-After: retry_after when > 0) instead of forwarding
    kReset,       // forward, send `after` bytes of the response, then reset the connection
    kTruncate,    // forward, send headers and `after` body bytes, then close cleanly
    kCorrupt,     // forward, flip one body byte
    kSlow,        // forward, sleeping `delay_ms` between 64 KiB pieces
  };
  Kind kind = kStatus;
  std::string method;   // "" = any
  std::string path;     // substring of the request path
  int status = 503;
  int retry_after = 0;
  size_t after = 0;
  int delay_ms = 0;
  int times = 1;        // how many matching requests it applies to
};

/// An HTTP/1.1 proxy on 127.0.0.1 in front of a plain-HTTP registry: one
/// request per connection, faults applied in order.
class FaultProxy {
 public:
  explicit FaultProxy(int upstream_port);
  ~FaultProxy();
  int port() const { return port_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  void Add(Fault f);
  /// Faults not yet consumed.
  int pending();
  /// "METHOD path -> status" for every request seen.
  std::vector<std::string> log();

 private:
  void Serve();
  void Handle(int fd);

  int upstream_;
  int port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<Fault> faults_;
  std::vector<std::string> log_;
  std::vector<std::thread> workers_;
};

}  // namespace kiln::registry::test
