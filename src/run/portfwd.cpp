// The built-in port forwarder of `kiln run -p` (portfwd.h, docs/run.md).
#include "run/portfwd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <list>

#include "kiln/log.h"

namespace kiln::run::internal {

namespace {

/// One direction of a TCP connection: bytes read from one side, not yet
/// written to the other.
struct Direction {
  std::unique_ptr<char[]> buf;
  size_t off = 0;
  size_t len = 0;
  bool eof = false;       ///< the reading side has sent FIN
  bool shut = false;      ///< FIN passed on to the writing side
  bool Empty() const { return off == len; }
};

struct TcpConn {
  UniqueFd host;  ///< accepted on the host
  UniqueFd ctr;   ///< connected to 127.0.0.1:CTR inside the container
  bool connecting = true;
  Direction up;    ///< host -> container
  Direction down;  ///< container -> host
  bool dead = false;
};

struct UdpFlow {
  size_t listener = 0;
  struct sockaddr_storage client = {};
  socklen_t client_len = 0;
  UniqueFd ctr;
  std::chrono::steady_clock::time_point last;
};

bool SameAddr(const struct sockaddr_storage& a, socklen_t alen, const struct sockaddr_storage& b,
              socklen_t blen) {
  return alen == blen && std::memcmp(&a, &b, alen) == 0;
}

/// Reads into an empty direction. Returns false on a hard error.
bool Fill(int from, Direction& d) {
  if (!d.Empty() || d.eof)
    return true;
  if (!d.buf)
    d.buf = std::make_unique<char[]>(PortForwarder::kBufferSize);
  ssize_t n = ::recv(from, d.buf.get(), PortForwarder::kBufferSize, 0);
  if (n > 0) {
    d.off = 0;
    d.len = static_cast<size_t>(n);
    return true;
  }
  if (n == 0) {
    d.eof = true;
    return true;
  }
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/// Writes what a direction holds. Returns false on a hard error.
bool Drain(int to, Direction& d) {
  while (!d.Empty()) {
    ssize_t n = ::send(to, d.buf.get() + d.off, d.len - d.off, MSG_NOSIGNAL);
    if (n < 0)
      return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    d.off += static_cast<size_t>(n);
  }
  d.off = d.len = 0;
  return true;
}

/// Passes a FIN on once everything before it was written.
void PassShutdown(int to, Direction& d) {
  if (d.eof && d.Empty() && !d.shut) {
    ::shutdown(to, SHUT_WR);
    d.shut = true;
  }
}

/// Closes `fd` with a reset (the client sees the container refuse).
void CloseWithReset(UniqueFd& fd) {
  if (!fd)
    return;
  struct linger l = {1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  fd.reset();
}

/// A non-blocking socket in the current thread's network namespace (the
/// container's), connecting to 127.0.0.1:port (and connected right away for
/// UDP). Never any other address.
UniqueFd ConnectLoopback(uint16_t port, bool udp, bool* in_progress) {
  UniqueFd s(::socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s)
    return s;
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  *in_progress = false;
  if (::connect(s.get(), reinterpret_cast<struct sockaddr*>(&a), sizeof a) == 0)
    return s;
  if (errno == EINPROGRESS) {
    *in_progress = true;
    return s;
  }
  return UniqueFd();
}

}  // namespace

std::string PublishFlagText(const PortMapping& p) {
  std::string out;
  if (!p.host_ip.empty())
    out = (p.host_ip.find(':') != std::string::npos ? "[" + p.host_ip + "]" : p.host_ip) + ":";
  if (p.host_port != 0 || !p.host_ip.empty())
    out += (p.host_port != 0 ? std::to_string(p.host_port) : "") + ":";
  out += std::to_string(p.container_port);
  if (p.udp)
    out += "/udp";
  return out;
}

Expected<std::unique_ptr<PortForwarder>> PortForwarder::Bind(const std::vector<PortMapping>& ports) {
  std::unique_ptr<PortForwarder> f(new PortForwarder());
  for (const auto& p : ports) {
    std::string flag = "-p " + PublishFlagText(p);
    struct sockaddr_storage ss = {};
    socklen_t len = 0;
    int family = AF_INET;
    if (p.host_ip.find(':') != std::string::npos) {
      family = AF_INET6;
      auto* a6 = reinterpret_cast<struct sockaddr_in6*>(&ss);
      a6->sin6_family = AF_INET6;
      a6->sin6_port = htons(p.host_port);
      if (::inet_pton(AF_INET6, p.host_ip.c_str(), &a6->sin6_addr) != 1)
        return Error(Errc::kInvalidInput, flag + ": invalid host IP address " + p.host_ip);
      len = sizeof *a6;
    } else {
      auto* a4 = reinterpret_cast<struct sockaddr_in*>(&ss);
      a4->sin_family = AF_INET;
      a4->sin_port = htons(p.host_port);
      if (p.host_ip.empty())
        a4->sin_addr.s_addr = htonl(INADDR_ANY);
      else if (::inet_pton(AF_INET, p.host_ip.c_str(), &a4->sin_addr) != 1)
        return Error(Errc::kInvalidInput, flag + ": invalid host IP address " + p.host_ip);
      len = sizeof *a4;
    }
    UniqueFd s(::socket(family, (p.udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!s)
      return Error(Errc::kSandbox, flag + ": socket: " + std::strerror(errno));
    int one = 1;
    if (family == AF_INET6)
      ::setsockopt(s.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    // TCP only: lets a restarted container rebind while old connections are
    // in TIME_WAIT (it never lets two listeners share a port on Linux; on
    // UDP it would, so not there).
    if (!p.udp)
      ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(s.get(), reinterpret_cast<struct sockaddr*>(&ss), len) != 0) {
      int e = errno;
      std::string why = e == EADDRINUSE ? "address already in use" : std::strerror(e);
      if (e == EACCES && p.host_port < 1024)
        why += " (host ports below 1024 need privileges: see net.ipv4.ip_unprivileged_port_start)";
      if (e == EADDRNOTAVAIL)
        why += " (no interface of this host has " + p.host_ip + ")";
      // strerror is capitalised; user-facing messages are lower case.
      if (!why.empty())
        why[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(why[0])));
      return Error(Errc::kSandbox, flag + ": " + why);
    }
    if (!p.udp && ::listen(s.get(), 128) != 0)
      return Error(Errc::kSandbox, flag + ": listen: " + std::strerror(errno));
    PortMapping bound = p;
    if (bound.host_port == 0) {  // -p CTR, -P: the port the system chose
      struct sockaddr_storage got = {};
      socklen_t glen = sizeof got;
      if (::getsockname(s.get(), reinterpret_cast<struct sockaddr*>(&got), &glen) != 0)
        return Error(Errc::kSandbox, flag + ": getsockname: " + std::strerror(errno));
      bound.host_port = got.ss_family == AF_INET6 ? ntohs(reinterpret_cast<struct sockaddr_in6*>(&got)->sin6_port)
                                                  : ntohs(reinterpret_cast<struct sockaddr_in*>(&got)->sin_port);
    }
    f->listeners_.push_back(Listener{bound, std::move(s)});
  }
  KILN_TRY(f->MakeWakePipe());
  return f;
}

Expected<std::unique_ptr<PortForwarder>> PortForwarder::Adopt(const std::vector<PortMapping>& ports,
                                                              const std::vector<int>& fds) {
  std::vector<UniqueFd> owned;
  for (int fd : fds) {
    owned.emplace_back(fd);
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);  // never into the sandbox helper
  }
  if (ports.size() != fds.size())
    return Error(Errc::kSandbox, "-p: got " + std::to_string(fds.size()) + " host sockets for " +
                                     std::to_string(ports.size()) + " published ports");
  std::unique_ptr<PortForwarder> f(new PortForwarder());
  for (size_t i = 0; i < ports.size(); ++i) {
    const PortMapping& p = ports[i];
    std::string flag = "-p " + PublishFlagText(p);
    int type = 0;
    int listening = 0;
    socklen_t tlen = sizeof type;
    socklen_t llen = sizeof listening;
    struct sockaddr_storage ss = {};
    socklen_t len = sizeof ss;
    if (::getsockopt(fds[i], SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 ||
        ::getsockopt(fds[i], SOL_SOCKET, SO_ACCEPTCONN, &listening, &llen) != 0 ||
        ::getsockname(fds[i], reinterpret_cast<struct sockaddr*>(&ss), &len) != 0)
      return Error(Errc::kSandbox, flag + ": host socket (fd " + std::to_string(fds[i]) + "): " + std::strerror(errno));
    uint16_t port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_port)
                    : ss.ss_family == AF_INET ? ntohs(reinterpret_cast<struct sockaddr_in*>(&ss)->sin_port)
                                              : 0;
    if (type != (p.udp ? SOCK_DGRAM : SOCK_STREAM) || port != p.host_port || (!p.udp && !listening))
      return Error(Errc::kSandbox, flag + ": fd " + std::to_string(fds[i]) + " is not the host socket of this port");
    int fl = ::fcntl(fds[i], F_GETFL);
    if (fl < 0 || ::fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) != 0)
      return Error::FromErrno(flag + ": host socket");
    f->listeners_.push_back(Listener{p, std::move(owned[i])});
  }
  KILN_TRY(f->MakeWakePipe());
  return f;
}

std::vector<PortMapping> PortForwarder::mappings() const {
  std::vector<PortMapping> out;
  for (const auto& l : listeners_)
    out.push_back(l.mapping);
  return out;
}

std::vector<int> PortForwarder::fds() const {
  std::vector<int> out;
  for (const auto& l : listeners_)
    out.push_back(l.fd.get());
  return out;
}

Status PortForwarder::MakeWakePipe() {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) != 0)
    return Error::FromErrno("pipe");
  wake_r_.reset(pipefd[0]);
  wake_w_.reset(pipefd[1]);
  return Ok();
}

PortForwarder::~PortForwarder() { Stop(); }

Status PortForwarder::Start(pid_t pid) {
  if (thread_.joinable())
    return Error(Errc::kFailed, "port forwarder already started");
  std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
  UniqueFd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns)
    return Error(Errc::kSandbox, "-p: open the container's network namespace " + path + ": " + std::strerror(errno));
  std::promise<int> joined;
  std::future<int> result = joined.get_future();
  int nsfd = ns.release();
  thread_ = std::thread([this, nsfd, joined = std::move(joined)]() mutable {
    // setns(CLONE_NEWNET) moves only this thread: sockets it creates from
    // now on live in the container; the host sockets stay where they are.
    int rc = ::setns(nsfd, CLONE_NEWNET) == 0 ? 0 : errno;
    ::close(nsfd);
    joined.set_value(rc);
    if (rc == 0)
      Loop();
  });
  int rc = result.get();
  if (rc != 0) {
    thread_.join();
    return Error(Errc::kSandbox, "-p: join the container's network namespace: " + std::string(std::strerror(rc)));
  }
  return Ok();
}

void PortForwarder::Stop() {
  if (thread_.joinable()) {
    (void)!::write(wake_w_.get(), "x", 1);
    thread_.join();
  }
  listeners_.clear();
}

void PortForwarder::Loop() {
  using Clock = std::chrono::steady_clock;
  std::list<TcpConn> conns;
  std::list<UdpFlow> flows;
  std::vector<char> dgram(65536);
  std::vector<struct pollfd> pfds;
  enum class Kind { kWake, kListener, kConnHost, kConnCtr, kFlow };
  struct Ref {
    Kind kind;
    size_t listener = 0;
    TcpConn* conn = nullptr;
    UdpFlow* flow = nullptr;
  };
  std::vector<Ref> refs;
  // Two descriptors per connection: stay well inside RLIMIT_NOFILE (the
  // container inherits our limits, so they are not raised here).
  size_t max_conns = kMaxTcpConnections;
  if (struct rlimit rl; ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    max_conns = std::min<size_t>(max_conns, rl.rlim_cur > 128 ? (rl.rlim_cur - 64 - kMaxUdpFlows / 4) / 2 : 16);
  // accept() failing for want of descriptors or memory leaves the listener
  // readable: wait a little instead of spinning.
  Clock::time_point accept_paused_until{};

  for (;;) {
    pfds.clear();
    refs.clear();
    size_t connecting = 0;
    for (const auto& c : conns)
      connecting += c.connecting ? 1 : 0;
    pfds.push_back({wake_r_.get(), POLLIN, 0});
    refs.push_back({Kind::kWake});
    for (size_t i = 0; i < listeners_.size(); ++i) {
      bool tcp = !listeners_[i].mapping.udp;
      // Back-pressure: the kernel's backlog holds new clients while we are
      // at the limit, or while enough connects into the container are still
      // in progress (a burst would overflow the server's small backlog there
      // and wait for SYN retransmits, seconds, instead).
      if (tcp && (conns.size() >= max_conns || connecting >= kMaxPendingConnects ||
                  Clock::now() < accept_paused_until))
        continue;
      pfds.push_back({listeners_[i].fd.get(), POLLIN, 0});
      refs.push_back({Kind::kListener, i});
    }
    for (auto& c : conns) {
      short host_ev = 0;
      short ctr_ev = 0;
      if (c.connecting) {
        ctr_ev = POLLOUT;
      } else {
        if (c.up.Empty() && !c.up.eof)
          host_ev |= POLLIN;
        if (!c.down.Empty())
          host_ev |= POLLOUT;
        if (c.down.Empty() && !c.down.eof)
          ctr_ev |= POLLIN;
        if (!c.up.Empty())
          ctr_ev |= POLLOUT;
      }
      // A negative fd is skipped by poll: no POLLHUP spinning on a socket
      // that we wait nothing from.
      pfds.push_back({host_ev ? c.host.get() : -1, host_ev, 0});
      refs.push_back({Kind::kConnHost, 0, &c});
      pfds.push_back({ctr_ev ? c.ctr.get() : -1, ctr_ev, 0});
      refs.push_back({Kind::kConnCtr, 0, &c});
    }
    for (auto& f : flows) {
      pfds.push_back({f.ctr.get(), POLLIN, 0});
      refs.push_back({Kind::kFlow, 0, nullptr, &f});
    }
    int timeout = -1;
    if (Clock::now() < accept_paused_until)
      timeout = 100;
    if (!flows.empty()) {
      auto oldest = Clock::now();
      for (const auto& f : flows)
        oldest = std::min(oldest, f.last);
      auto due = oldest + std::chrono::seconds(kUdpIdleSeconds) - Clock::now();
      int idle = static_cast<int>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(due).count() + 1));
      timeout = timeout < 0 ? idle : std::min(timeout, idle);
    }
    int n = ::poll(pfds.data(), pfds.size(), timeout);
    if (n < 0 && errno != EINTR)
      return;  // cannot happen with valid arguments
    for (size_t i = 0; n > 0 && i < pfds.size(); ++i) {
      short re = pfds[i].revents;
      if (!re)
        continue;
      const Ref& r = refs[i];
      switch (r.kind) {
        case Kind::kWake:
          return;  // Stop(): sockets close with the lists and listeners_
        case Kind::kListener: {
          Listener& l = listeners_[r.listener];
          if (!l.mapping.udp) {
            for (int k = 0; k < 64 && conns.size() < max_conns && connecting < kMaxPendingConnects; ++k) {
              UniqueFd h(::accept4(l.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
              if (!h) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                  accept_paused_until = Clock::now() + std::chrono::milliseconds(100);
                break;
              }
              bool in_progress = false;
              UniqueFd ctr = ConnectLoopback(l.mapping.container_port, false, &in_progress);
              if (!ctr) {
                CloseWithReset(h);
                continue;
              }
              int one = 1;
              ::setsockopt(h.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
              ::setsockopt(ctr.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
              TcpConn& c = conns.emplace_back();
              c.host = std::move(h);
              c.ctr = std::move(ctr);
              c.connecting = in_progress;
              connecting += in_progress ? 1 : 0;
            }
            break;
          }
          // UDP: one flow per client address.
          for (int k = 0; k < 64; ++k) {
            struct sockaddr_storage from = {};
            socklen_t from_len = sizeof from;
            ssize_t got = ::recvfrom(l.fd.get(), dgram.data(), dgram.size(), 0,
                                     reinterpret_cast<struct sockaddr*>(&from), &from_len);
            if (got < 0)
              break;
            UdpFlow* flow = nullptr;
            for (auto& f : flows)
              if (f.listener == r.listener && SameAddr(f.client, f.client_len, from, from_len))
                flow = &f;
            if (!flow) {
              if (flows.size() >= kMaxUdpFlows) {
                // Make room: the least recently used flow goes.
                auto lru = flows.begin();
                for (auto it = flows.begin(); it != flows.end(); ++it)
                  if (it->last < lru->last)
                    lru = it;
                flows.erase(lru);
              }
              bool in_progress = false;
              UniqueFd ctr = ConnectLoopback(l.mapping.container_port, true, &in_progress);
              if (!ctr)
                continue;
              UdpFlow& f = flows.emplace_back();
              f.listener = r.listener;
              f.client = from;
              f.client_len = from_len;
              f.ctr = std::move(ctr);
              flow = &f;
            }
            flow->last = Clock::now();
            (void)::send(flow->ctr.get(), dgram.data(), static_cast<size_t>(got), MSG_NOSIGNAL);
          }
          break;
        }
        case Kind::kFlow: {
          UdpFlow& f = *r.flow;
          for (int k = 0; k < 64; ++k) {
            ssize_t got = ::recv(f.ctr.get(), dgram.data(), dgram.size(), 0);
            if (got < 0) {
              if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
              continue;  // ECONNREFUSED (nobody listens yet) and the like: keep the flow
            }
            f.last = Clock::now();
            (void)::sendto(listeners_[f.listener].fd.get(), dgram.data(), static_cast<size_t>(got), MSG_NOSIGNAL,
                           reinterpret_cast<struct sockaddr*>(&f.client), f.client_len);
          }
          break;
        }
        case Kind::kConnHost:
        case Kind::kConnCtr: {
          TcpConn& c = *r.conn;
          if (c.dead)
            break;
          if (c.connecting) {
            int err = 0;
            socklen_t elen = sizeof err;
            if (::getsockopt(c.ctr.get(), SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
              c.dead = true;  // nobody listens on CTR in the container (yet)
              CloseWithReset(c.host);
              break;
            }
            c.connecting = false;
            break;
          }
          bool ok = true;
          if (r.kind == Kind::kConnHost) {
            if (re & (POLLIN | POLLHUP | POLLERR))
              ok = ok && Fill(c.host.get(), c.up);
            if (ok && (re & POLLOUT))
              ok = Drain(c.host.get(), c.down);
          } else {
            if (re & (POLLIN | POLLHUP | POLLERR))
              ok = ok && Fill(c.ctr.get(), c.down);
            if (ok && (re & POLLOUT))
              ok = Drain(c.ctr.get(), c.up);
          }
          if (!ok) {
            c.dead = true;
            CloseWithReset(c.host);
            CloseWithReset(c.ctr);
            break;
          }
          // Pass data on right away when the other side can take it.
          ok = Drain(c.ctr.get(), c.up) && Drain(c.host.get(), c.down);
          if (!ok) {
            c.dead = true;
            CloseWithReset(c.host);
            CloseWithReset(c.ctr);
            break;
          }
          PassShutdown(c.ctr.get(), c.up);
          PassShutdown(c.host.get(), c.down);
          if (c.up.shut && c.down.shut)
            c.dead = true;
          break;
        }
      }
    }
    conns.remove_if([](const TcpConn& c) { return c.dead; });
    auto now = Clock::now();
    flows.remove_if([&](const UdpFlow& f) { return now - f.last >= std::chrono::seconds(kUdpIdleSeconds); });
  }
}

}  // namespace kiln::run::internal
