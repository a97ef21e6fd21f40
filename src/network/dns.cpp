// The holder's DNS responder (docs/network.md, "Names"): a UDP socket and a
// TCP listener on each network's gateway address (port 53, inside the
// holder's namespace). A query from a container is answered with the names
// of the containers on the DNS-enabled networks the asking container is on
// (A, an empty answer for AAAA and other types, PTR for their addresses);
// other names are forwarded to the host's resolvers through a socket the
// holder opened in the host's network namespace before it made its own (so
// a resolver on 127.0.0.x works, and the holder's namespace needs no route
// out). A --disable-dns network's responder only forwards.
//
// Names come from DIR/dns/<host_interface>, written by AttachContainer after
// the veth exists: "NETWORK GATEWAY IP DNS(0|1) CONTAINER RESOLVERS NAME..."
// on one line (RESOLVERS: the container's --dns servers, comma-separated, or
// "-" for the host's). An entry whose
// veth end no longer exists in the namespace is stale (the container is
// gone, even after kill -9): it is never answered and its file is removed.
#include <arpa/inet.h>
#include <dirent.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "kiln/fs.h"
#include "kiln/log.h"
#include "network/dns.h"

namespace kiln::network {

namespace {

constexpr uint32_t kTtl = 5;  // seconds: short enough after a recreate, long enough for a client cache

int64_t NowMs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

std::string Lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// The question's name ("a.dns.podman"), its end offset, or false.
bool ParseQuestion(const unsigned char* p, size_t n, std::string* name, size_t* end, uint16_t* qtype) {
  size_t i = 12;
  name->clear();
  while (i < n) {
    unsigned len = p[i];
    if (len == 0) {
      ++i;
      break;
    }
    if (len > 63 || i + 1 + len > n)
      return false;
    if (!name->empty())
      *name += '.';
    name->append(reinterpret_cast<const char*>(p + i + 1), len);
    i += 1 + len;
  }
  if (i + 4 > n)
    return false;
  *qtype = static_cast<uint16_t>(p[i] << 8 | p[i + 1]);
  *end = i + 4;
  return true;
}

}  // namespace

Status PublishNames(const std::string& state_dir, const Network& net, const Attachment& a) {
  if (net.subnets.empty())
    return Ok();
  KILN_TRY(MakeDirs(state_dir + "/dns", 0700));
  std::string resolvers;
  for (uint32_t r : a.resolvers)
    resolvers += (resolvers.empty() ? "" : ",") + Ipv4String(r);
  std::string line = net.name + " " + net.subnets[0].gateway + " " + Ipv4String(a.ip) + " " +
                     (net.dns_enabled ? "1" : "0") + " " + (a.container.empty() ? "-" : a.container) + " " +
                     (resolvers.empty() ? "-" : resolvers);
  if (net.dns_enabled)
    for (const auto& n : a.names)
      line += " " + Lower(n);
  return WriteFileAtomic(state_dir + "/dns/" + a.host_interface, line + "\n", 0600);
}

void UnpublishNames(const std::string& state_dir, const std::string& host_interface) {
  if (!host_interface.empty() && host_interface.find('/') == std::string::npos)
    ::unlink((state_dir + "/dns/" + host_interface).c_str());
}

std::vector<uint32_t> ReadNameservers(const std::string& resolv_conf) {
  std::vector<uint32_t> out;
  auto text = ReadFile(resolv_conf, 1 << 20);
  if (!text)
    return out;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string key, value;
    ls >> key >> value;
    if (key == "nameserver")
      if (auto ip = ParseIpv4(value))
        out.push_back(*ip);
  }
  return out;
}

Responder::Responder(std::string state_dir, UniqueFd upstream, std::vector<uint32_t> nameservers)
    : state_dir_(std::move(state_dir)), upstream_(std::move(upstream)), nameservers_(std::move(nameservers)) {}

void Responder::Refresh(bool force) {
  struct stat st;
  std::string dir = state_dir_ + "/dns";
  bool changed = ::stat(dir.c_str(), &st) == 0 && (st.st_mtim.tv_sec != dir_mtime_.tv_sec ||
                                                   st.st_mtim.tv_nsec != dir_mtime_.tv_nsec);
  int64_t now = NowMs();
  if (!force && !changed && now - last_scan_ms_ < 1000)
    return;
  last_scan_ms_ = now;
  if (changed)
    dir_mtime_ = st.st_mtim;
  entries_.clear();
  DIR* d = ::opendir(dir.c_str());
  if (!d)
    return;
  while (struct dirent* e = ::readdir(d)) {
    std::string iface = e->d_name;
    if (iface.empty() || iface[0] == '.')
      continue;
    if (::if_nametoindex(iface.c_str()) == 0) {
      ::unlink((dir + "/" + iface).c_str());  // the container is gone
      continue;
    }
    auto text = ReadFile(dir + "/" + iface, 1 << 16);
    if (!text)
      continue;
    std::istringstream in(*text);
    Entry en;
    std::string gw, ip, dns, resolvers;
    in >> en.network >> gw >> ip >> dns >> en.container >> resolvers;
    if (resolvers != "-") {
      size_t pos = 0;
      while (pos < resolvers.size()) {
        size_t comma = resolvers.find(',', pos);
        if (auto r = ParseIpv4(resolvers.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos)))
          en.resolvers.push_back(*r);
        pos = comma == std::string::npos ? resolvers.size() : comma + 1;
      }
    }
    auto g = ParseIpv4(gw);
    auto a = ParseIpv4(ip);
    if (!g || !a || (dns != "0" && dns != "1") || en.container.empty())
      continue;
    en.dns = dns == "1";
    en.gateway = *g;
    en.ip = *a;
    std::string name;
    while (in >> name)
      en.names.push_back(name);
    entries_.push_back(std::move(en));
  }
  ::closedir(d);
  // Sockets on every gateway that has containers (bound once, kept).
  for (const auto& en : entries_) {
    for (int type : {SOCK_DGRAM, SOCK_STREAM}) {
      auto& map = type == SOCK_DGRAM ? sockets_ : listeners_;
      if (map.count(en.gateway))
        continue;
      UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      struct sockaddr_in sa = {};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(53);
      sa.sin_addr.s_addr = htonl(en.gateway);
      int one = 1;
      if (fd && type == SOCK_STREAM)
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (!fd || ::bind(fd.get(), reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) != 0 ||
          (type == SOCK_STREAM && ::listen(fd.get(), 64) != 0)) {
        std::fprintf(stderr, "dns: bind %s:53/%s: %s\n", Ipv4String(en.gateway).c_str(),
                     type == SOCK_DGRAM ? "udp" : "tcp", std::strerror(errno));
        continue;
      }
      map[en.gateway] = std::move(fd);
    }
  }
}

Responder::~Responder() {
  for (auto& [fd, conn] : conns_)
    ::close(fd);
}

std::vector<int> Responder::Fds() const {
  std::vector<int> fds;
  for (const auto& [gw, fd] : sockets_)
    fds.push_back(fd.get());
  for (const auto& [gw, fd] : listeners_)
    fds.push_back(fd.get());
  for (const auto& [fd, conn] : conns_)
    fds.push_back(fd);
  if (upstream_)
    fds.push_back(upstream_.get());
  return fds;
}

namespace {

/// "name.example" as DNS labels.
std::string EncodeName(const std::string& name) {
  std::string out;
  size_t pos = 0;
  while (pos < name.size()) {
    size_t dot = name.find('.', pos);
    std::string label = name.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    pos = dot == std::string::npos ? name.size() : dot + 1;
    if (label.empty() || label.size() > 63)
      continue;
    out += static_cast<char>(label.size());
    out += label;
  }
  out += '\0';
  return out;
}

/// "4.3.2.1.in-addr.arpa" -> 1.2.3.4.
bool ParsePtrName(const std::string& name, uint32_t* ip) {
  const std::string suffix = ".in-addr.arpa";
  if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  std::string rev = name.substr(0, name.size() - suffix.size());
  uint32_t parts[4];
  int count = 0;
  size_t pos = 0;
  while (pos <= rev.size() && count < 4) {
    size_t dot = rev.find('.', pos);
    std::string p = rev.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos)
      return false;
    parts[count] = static_cast<uint32_t>(std::stoul(p));
    if (parts[count] > 255)
      return false;
    ++count;
    if (dot == std::string::npos)
      break;
    pos = dot + 1;
  }
  if (count != 4 || rev.find('.', pos) != std::string::npos)
    return false;
  *ip = parts[3] << 24 | parts[2] << 16 | parts[1] << 8 | parts[0];
  return true;
}

void AppendRecordHeader(std::string& out, uint16_t type, uint16_t rdlength) {
  unsigned char rr[12] = {0xc0, 0x0c, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  rr[2] = static_cast<unsigned char>(type >> 8);
  rr[3] = static_cast<unsigned char>(type);
  rr[6] = static_cast<unsigned char>(kTtl >> 24);
  rr[7] = static_cast<unsigned char>(kTtl >> 16);
  rr[8] = static_cast<unsigned char>(kTtl >> 8);
  rr[9] = static_cast<unsigned char>(kTtl);
  rr[10] = static_cast<unsigned char>(rdlength >> 8);
  rr[11] = static_cast<unsigned char>(rdlength);
  out.append(reinterpret_cast<const char*>(rr), sizeof rr);
}

}  // namespace

Responder::Verdict Responder::Answer(const unsigned char* buf, size_t n, uint32_t gateway, uint32_t client,
                                     std::string* reply) {
  if (n < 12 || (buf[2] & 0x80))
    return Verdict::kDrop;  // a response, not a query
  std::string qname;
  size_t qend = 0;
  uint16_t qtype = 0;
  if ((buf[4] << 8 | buf[5]) != 1 || !ParseQuestion(buf, n, &qname, &qend, &qtype))
    return Verdict::kDrop;
  Refresh();
  std::string name = Lower(qname);
  while (!name.empty() && name.back() == '.')
    name.pop_back();
  const std::string suffix = ".dns.podman";
  bool in_domain = name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  std::string bare = in_domain ? name.substr(0, name.size() - suffix.size()) : name;
  // Only containers of the network may ask: a container of another network
  // can send to this gateway (a local address of the namespace), but must
  // not learn the names here. The asker's container, then every DNS-enabled
  // network it is on (it may have been connected to more since).
  auto asker = [&]() -> const Entry* {
    for (const auto& en : entries_)
      if (en.gateway == gateway && en.ip == client)
        return &en;
    return nullptr;
  };
  const Entry* me = asker();
  if (!me) {
    Refresh(true);
    me = asker();
    if (!me)
      return Verdict::kDrop;
  }
  std::string container = me->container;
  forward_to_ = me->resolvers.empty() ? nameservers_ : me->resolvers;
  std::vector<uint32_t> ips;
  std::string ptr;
  uint32_t ptr_ip = 0;
  bool is_ptr = ParsePtrName(name, &ptr_ip);
  for (int pass = 0; pass < 2 && ips.empty() && ptr.empty(); ++pass) {
    if (pass == 1)
      Refresh(true);
    std::set<std::string> nets;
    for (const auto& en : entries_)
      if (en.container == container && en.dns)
        nets.insert(en.network);
    for (const auto& en : entries_) {
      if (!en.dns || !nets.count(en.network))
        continue;
      if (is_ptr && en.ip == ptr_ip && !en.names.empty() && ptr.empty())
        ptr = en.names[0];
      if (!is_ptr && std::find(en.names.begin(), en.names.end(), bare) != en.names.end() &&
          std::find(ips.begin(), ips.end(), en.ip) == ips.end())
        ips.push_back(en.ip);
    }
  }
  bool known = !ips.empty() || !ptr.empty();
  if (!known && !in_domain)
    return upstream_ && !forward_to_.empty() ? Verdict::kForward : Verdict::kDrop;
  // Our answer: the question, then an A record per address, or the PTR
  // (NODATA for a known name asked for another type, NXDOMAIN for an
  // unknown one under dns.podman).
  std::string& out = *reply;
  out.assign(reinterpret_cast<const char*>(buf), qend);
  out[2] = static_cast<char>(0x84 | (buf[2] & 0x01));  // QR, AA, RD as asked
  out[3] = static_cast<char>(0x80 | (known ? 0 : 3));   // RA, NOERROR / NXDOMAIN
  size_t answers = 0;
  if (qtype == 1 || qtype == 255) {
    for (uint32_t ip4 : ips) {
      AppendRecordHeader(out, 1, 4);
      uint32_t be = htonl(ip4);
      out.append(reinterpret_cast<const char*>(&be), 4);
      ++answers;
    }
  }
  if (!ptr.empty() && (qtype == 12 || qtype == 255)) {
    std::string target = EncodeName(ptr + suffix);
    AppendRecordHeader(out, 12, static_cast<uint16_t>(target.size()));
    out += target;
    ++answers;
  }
  out[6] = static_cast<char>(answers >> 8);
  out[7] = static_cast<char>(answers & 0xff);
  for (int i = 8; i < 12; ++i)
    out[static_cast<size_t>(i)] = 0;
  return Verdict::kReply;
}

void Responder::Forward(const unsigned char* q, size_t n, int fd, bool tcp, const struct sockaddr_in& from) {
  // A fresh id; the answer goes back to this client (every nameserver gets
  // the query at once, the first answer wins).
  int64_t now = NowMs();
  for (auto it = pending_.begin(); it != pending_.end();)
    it = now - it->second.sent_ms > 5000 ? pending_.erase(it) : std::next(it);
  uint16_t id = next_id_++;
  Pending p;
  p.fd = fd;
  p.tcp = tcp;
  p.client = from;
  p.client_id = static_cast<uint16_t>(q[0] << 8 | q[1]);
  p.sent_ms = now;
  pending_[id] = p;
  std::string out(reinterpret_cast<const char*>(q), n);
  out[0] = static_cast<char>(id >> 8);
  out[1] = static_cast<char>(id & 0xff);
  for (uint32_t ns : forward_to_) {
    struct sockaddr_in to = {};
    to.sin_family = AF_INET;
    to.sin_port = htons(53);
    to.sin_addr.s_addr = htonl(ns);
    ::sendto(upstream_.get(), out.data(), out.size(), 0, reinterpret_cast<struct sockaddr*>(&to), sizeof to);
  }
}

void Responder::CloseConn(int fd) {
  // Forwarded queries of the connection are forgotten with it (its fd
  // number may be reused by the next connection).
  for (auto it = pending_.begin(); it != pending_.end();)
    it = it->second.tcp && it->second.fd == fd ? pending_.erase(it) : std::next(it);
  ::close(fd);
  conns_.erase(fd);
}

void Responder::ServeTcp(int fd) {
  auto it = conns_.find(fd);
  if (it == conns_.end())
    return;
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf);
  if (n <= 0 || it->second.in.size() > 65536 + 2) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    CloseConn(fd);
    return;
  }
  TcpConn& c = it->second;
  c.in.append(buf, static_cast<size_t>(n));
  c.last_ms = NowMs();
  while (c.in.size() >= 2) {
    size_t len = static_cast<unsigned char>(c.in[0]) << 8 | static_cast<unsigned char>(c.in[1]);
    if (c.in.size() < 2 + len)
      break;
    std::string q = c.in.substr(2, len);
    c.in.erase(0, 2 + len);
    std::string reply;
    auto v = Answer(reinterpret_cast<const unsigned char*>(q.data()), q.size(), c.gateway,
                    ntohl(c.peer.sin_addr.s_addr), &reply);
    if (v == Verdict::kReply) {
      std::string framed;
      framed += static_cast<char>(reply.size() >> 8);
      framed += static_cast<char>(reply.size() & 0xff);
      framed += reply;
      (void)WriteAll(fd, framed);  // small: fits the socket buffer
    } else if (v == Verdict::kForward) {
      Forward(reinterpret_cast<const unsigned char*>(q.data()), q.size(), fd, true, c.peer);
    }
  }
}

void Responder::Serve(int fd) {
  for (const auto& [gw, lfd] : listeners_) {
    if (lfd.get() != fd)
      continue;
    struct sockaddr_in peer = {};
    socklen_t len = sizeof peer;
    int c = ::accept4(fd, reinterpret_cast<struct sockaddr*>(&peer), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0)
      return;
    // Bounded: the oldest idle connection goes first.
    int64_t now = NowMs();
    for (auto it = conns_.begin(); it != conns_.end();) {
      int old = it->first;
      ++it;
      if (now - conns_[old].last_ms > 10000 || conns_.size() >= 64)
        CloseConn(old);
    }
    TcpConn conn;
    conn.gateway = gw;
    conn.peer = peer;
    conn.last_ms = now;
    conns_[c] = std::move(conn);
    return;
  }
  if (conns_.count(fd)) {
    ServeTcp(fd);
    return;
  }
  unsigned char buf[1500];
  struct sockaddr_in from = {};
  socklen_t fromlen = sizeof from;
  ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<struct sockaddr*>(&from), &fromlen);
  if (n < 12)
    return;
  if (upstream_ && fd == upstream_.get()) {
    uint16_t id = static_cast<uint16_t>(buf[0] << 8 | buf[1]);
    auto it = pending_.find(id);
    if (it == pending_.end())
      return;
    buf[0] = static_cast<unsigned char>(it->second.client_id >> 8);
    buf[1] = static_cast<unsigned char>(it->second.client_id & 0xff);
    if (it->second.tcp) {
      if (conns_.count(it->second.fd)) {
        std::string framed;
        framed += static_cast<char>((n >> 8) & 0xff);
        framed += static_cast<char>(n & 0xff);
        framed.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
        (void)WriteAll(it->second.fd, framed);
      }
    } else {
      ::sendto(it->second.fd, buf, static_cast<size_t>(n), 0, reinterpret_cast<struct sockaddr*>(&it->second.client),
               sizeof it->second.client);
    }
    pending_.erase(it);
    return;
  }
  uint32_t gateway = 0;
  for (const auto& [gw, sfd] : sockets_)
    if (sfd.get() == fd)
      gateway = gw;
  std::string reply;
  switch (Answer(buf, static_cast<size_t>(n), gateway, ntohl(from.sin_addr.s_addr), &reply)) {
    case Verdict::kReply:
      ::sendto(fd, reply.data(), reply.size(), 0, reinterpret_cast<struct sockaddr*>(&from), fromlen);
      break;
    case Verdict::kForward:
      Forward(buf, static_cast<size_t>(n), fd, false, from);
      break;
    case Verdict::kDrop:
      break;
  }
}

}  // namespace kiln::network
