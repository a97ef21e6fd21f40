// The holder's DNS responder (docs/network.md, "Names"): one UDP socket on
// each DNS-enabled network's gateway address (port 53, inside the holder's
// namespace), answering A queries for the names of the containers on that
// network only, and forwarding other names to the host's resolvers through a
// socket the holder opened in the host's network namespace before it made
// its own (so a resolver on 127.0.0.x works, and the holder's namespace
// needs no route out).
//
// Names come from DIR/dns/<host_interface>, written by AttachContainer after
// the veth exists: "NETWORK GATEWAY IP NAME..." on one line. An entry whose
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
  if (!net.dns_enabled || net.subnets.empty())
    return Ok();
  KILN_TRY(MakeDirs(state_dir + "/dns", 0700));
  std::string line = net.name + " " + net.subnets[0].gateway + " " + Ipv4String(a.ip);
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
    std::string gw, ip;
    in >> en.network >> gw >> ip;
    auto g = ParseIpv4(gw);
    auto a = ParseIpv4(ip);
    if (!g || !a)
      continue;
    en.gateway = *g;
    en.ip = *a;
    std::string name;
    while (in >> name)
      en.names.push_back(name);
    entries_.push_back(std::move(en));
  }
  ::closedir(d);
  // A socket on every gateway that has names (bound once, kept).
  for (const auto& en : entries_) {
    if (sockets_.count(en.gateway))
      continue;
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    struct sockaddr_in sa = {};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(53);
    sa.sin_addr.s_addr = htonl(en.gateway);
    if (!fd || ::bind(fd.get(), reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) != 0) {
      std::fprintf(stderr, "dns: bind %s:53: %s\n", Ipv4String(en.gateway).c_str(), std::strerror(errno));
      continue;
    }
    sockets_[en.gateway] = std::move(fd);
  }
}

std::vector<int> Responder::Fds() const {
  std::vector<int> fds;
  for (const auto& [gw, fd] : sockets_)
    fds.push_back(fd.get());
  if (upstream_)
    fds.push_back(upstream_.get());
  return fds;
}

void Responder::Serve(int fd) {
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
    ::sendto(it->second.fd, buf, static_cast<size_t>(n), 0, reinterpret_cast<struct sockaddr*>(&it->second.client),
             sizeof it->second.client);
    pending_.erase(it);
    return;
  }
  uint32_t gateway = 0;
  for (const auto& [gw, sfd] : sockets_)
    if (sfd.get() == fd)
      gateway = gw;
  if (buf[2] & 0x80)
    return;  // a response, not a query
  std::string qname;
  size_t qend = 0;
  uint16_t qtype = 0;
  if ((buf[4] << 8 | buf[5]) != 1 || !ParseQuestion(buf, static_cast<size_t>(n), &qname, &qend, &qtype))
    return;
  Refresh();
  std::string name = Lower(qname);
  while (!name.empty() && name.back() == '.')
    name.pop_back();
  const std::string suffix = ".dns.podman";
  bool in_domain = name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  std::string bare = in_domain ? name.substr(0, name.size() - suffix.size()) : name;
  // Only the network's own containers may ask: a container of another
  // network can send to this gateway (a local address of the namespace), but
  // must not learn the names here.
  uint32_t client = ntohl(from.sin_addr.s_addr);
  auto member = [&] {
    return std::any_of(entries_.begin(), entries_.end(),
                       [&](const Entry& en) { return en.gateway == gateway && en.ip == client; });
  };
  if (!member()) {
    Refresh(true);
    if (!member())
      return;
  }
  std::vector<uint32_t> ips;
  for (int pass = 0; pass < 2 && ips.empty(); ++pass) {
    if (pass == 1)
      Refresh(true);
    for (const auto& en : entries_)
      if (en.gateway == gateway && std::find(en.names.begin(), en.names.end(), bare) != en.names.end())
        ips.push_back(en.ip);
  }
  bool known = !ips.empty();
  if (!known && !in_domain && upstream_ && !nameservers_.empty()) {
    // Forward: a fresh id, the answer goes back to this client.
    int64_t now = NowMs();
    for (auto it = pending_.begin(); it != pending_.end();)
      it = now - it->second.sent_ms > 5000 ? pending_.erase(it) : std::next(it);
    uint16_t id = next_id_++;
    Pending p;
    p.fd = fd;
    p.client = from;
    p.client_id = static_cast<uint16_t>(buf[0] << 8 | buf[1]);
    p.sent_ms = now;
    pending_[id] = p;
    buf[0] = static_cast<unsigned char>(id >> 8);
    buf[1] = static_cast<unsigned char>(id & 0xff);
    for (uint32_t ns : nameservers_) {
      struct sockaddr_in to = {};
      to.sin_family = AF_INET;
      to.sin_port = htons(53);
      to.sin_addr.s_addr = htonl(ns);
      ::sendto(upstream_.get(), buf, static_cast<size_t>(n), 0, reinterpret_cast<struct sockaddr*>(&to), sizeof to);
    }
    return;
  }
  // Our answer: the question, then an A record per address (NODATA for a
  // known name asked for another type, NXDOMAIN for an unknown one).
  std::string out(reinterpret_cast<const char*>(buf), qend);
  out[2] = static_cast<char>(0x84 | (buf[2] & 0x01));  // QR, AA, RD as asked
  out[3] = static_cast<char>(0x80 | (known ? 0 : 3));   // RA, NOERROR / NXDOMAIN
  size_t answers = qtype == 1 ? ips.size() : 0;
  out[6] = 0;
  out[7] = static_cast<char>(answers);
  for (int i = 8; i < 12; ++i)
    out[static_cast<size_t>(i)] = 0;
  for (size_t i = 0; i < answers; ++i) {
    unsigned char rr[16] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0};
    rr[6] = static_cast<unsigned char>(kTtl >> 24);
    rr[7] = static_cast<unsigned char>(kTtl >> 16);
    rr[8] = static_cast<unsigned char>(kTtl >> 8);
    rr[9] = static_cast<unsigned char>(kTtl);
    uint32_t ip = htonl(ips[i]);
    std::memcpy(rr + 12, &ip, 4);
    out.append(reinterpret_cast<const char*>(rr), sizeof rr);
  }
  ::sendto(fd, out.data(), out.size(), 0, reinterpret_cast<struct sockaddr*>(&from), fromlen);
}

}  // namespace kiln::network
