// The holder's DNS responder (dns.cpp). Internal to the network module.
#pragma once

#include <netinet/in.h>
#include <time.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kiln/network.h"

namespace kiln::network {

/// Writes DIR/dns/<host_interface> for a container attached to a network
/// (with its names only when the network has DNS on; a --disable-dns
/// network's responder only forwards).
Status PublishNames(const std::string& state_dir, const Network& net, const Attachment& a);

/// IPv4 nameservers of a resolv.conf.
std::vector<uint32_t> ReadNameservers(const std::string& resolv_conf);

class Responder {
 public:
  /// `upstream`: a UDP socket in the host's network namespace (or empty: no
  /// forwarding); `nameservers`: where forwarded queries go.
  Responder(std::string state_dir, UniqueFd upstream, std::vector<uint32_t> nameservers);
  ~Responder();
  /// Re-reads the names when DIR/dns changed (or every second), binds new gateways.
  /// `force`: re-read now (a name not found may have just been written in
  /// the same tick of the directory's coarse mtime).
  void Refresh(bool force = false);
  /// The sockets to poll.
  std::vector<int> Fds() const;
  /// Handles what is ready on `fd` (a datagram, a TCP connection or its data).
  void Serve(int fd);

 private:
  struct Entry {
    std::string network;
    uint32_t gateway = 0;
    uint32_t ip = 0;
    bool dns = true;
    std::string container;
    std::vector<uint32_t> resolvers;
    std::vector<std::string> names;
  };
  struct Pending {
    int fd = -1;
    bool tcp = false;
    struct sockaddr_in client = {};
    uint16_t client_id = 0;
    int64_t sent_ms = 0;
  };
  struct TcpConn {
    uint32_t gateway = 0;
    struct sockaddr_in peer = {};
    std::string in;
    int64_t last_ms = 0;
  };
  enum class Verdict { kDrop, kReply, kForward };
  /// The answer to query `q` from `client` on `gateway`'s network.
  Verdict Answer(const unsigned char* q, size_t n, uint32_t gateway, uint32_t client, std::string* reply);
  void Forward(const unsigned char* q, size_t n, int fd, bool tcp, const struct sockaddr_in& from);
  void ServeTcp(int fd);
  void CloseConn(int fd);
  std::string state_dir_;
  UniqueFd upstream_;
  std::vector<uint32_t> nameservers_;
  std::vector<uint32_t> forward_to_;  // the asker's --dns servers, else nameservers_
  std::vector<Entry> entries_;
  std::map<uint32_t, UniqueFd> sockets_;    // UDP, by gateway
  std::map<uint32_t, UniqueFd> listeners_;  // TCP, by gateway
  std::map<int, TcpConn> conns_;            // accepted TCP connections (owned fds)
  std::map<uint16_t, Pending> pending_;
  uint16_t next_id_ = 1;
  struct timespec dir_mtime_ = {};
  int64_t last_scan_ms_ = -100000;
};

}  // namespace kiln::network
