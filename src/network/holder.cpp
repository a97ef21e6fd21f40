// The network namespace holder and the per-container attachment
// (docs/network.md, "Data path").
//
// One `kiln __network-holder` per store owns a user namespace U and a
// network namespace N (owned by U) that holds the bridges, one per network
// in use (kiln0 for `podman`, kiln1, ... for user networks). Every kiln
// command that runs in a user namespace joins U instead of making its own
// while the holder lives (EnterUserNamespace(join_userns_fd)): a veth pair
// can only be made by a process with CAP_NET_ADMIN over both ends'
// namespaces, and sibling user namespaces hold no capability over each other.
// That is podman's pause process; kiln's holder also keeps N.
//
// Its state directory is HolderDir(): one holder per store (the records and
// the containers are the store's) and run root (pid files are run-time state).
//   DIR/holder.pid   the holder's pid (host view)
//   DIR/start.lock   flock: starting the holder / deciding to exit
//   DIR/refs        flock LOCK_SH by every user: a `kiln run`
//                                   of a container on a network (for its whole
//                                   life) and the monitor of a detached one
//
// The holder checks every 200 ms whether it can take `refs` exclusively:
// then nobody uses it; it removes holder.pid under start.lock and exits, and
// N with its bridges and veth ends goes away.
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

#include "kiln/digest.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/network.h"
#include "kiln/process.h"
#include "network/dns.h"

namespace kiln::network {

namespace {

std::string NetDir(const std::string& dir) { return dir; }

Expected<UniqueFd> OpenLock(const std::string& path) {
  return OpenFile(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
}

Status Flock(int fd, int op, const std::string& what) {
  while (::flock(fd, op) != 0) {
    if (errno != EINTR)
      return Error::FromErrno("lock " + what);
  }
  return Ok();
}

/// The live holder's pid for `state_dir`, or 0.
pid_t LiveHolder(const std::string& state_dir) {
  auto text = ReadFile(NetDir(state_dir) + "/holder.pid", 64);
  if (!text)
    return 0;
  pid_t pid = static_cast<pid_t>(std::atoi(text->c_str()));
  if (pid <= 0 || ::kill(pid, 0) != 0)
    return 0;
  auto cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline", 1 << 16);
  if (!cmdline)
    return 0;
  std::string want = std::string("__network-holder") + '\0' + "--state-dir" + '\0' + state_dir + '\0';
  if (cmdline->find(want) == std::string::npos)
    return 0;  // a recycled pid
  return pid;
}

std::string OutboundHelper();
Status StartOutbound(const std::string& state_dir, const std::string& slirp, pid_t holder, int exit_r);

/// Starts `kiln __network-holder --run-root R` in its own session and waits
/// for its ready byte. Under start.lock.
Status StartHolder(const std::string& state_dir) {
  std::string slirp = OutboundHelper();
  UniqueFd out_r, out_w;
  if (!slirp.empty())
    KILN_TRY(MakePipe(&out_r, &out_w));
  std::string self = SelfExe();
  if (self.empty())
    return Error::FromErrno("readlink /proc/self/exe");
  UniqueFd ready_r, ready_w;
  KILN_TRY(MakePipe(&ready_r, &ready_w));
  UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  KILN_ASSIGN_OR_RETURN(UniqueFd log_fd, OpenFile(NetDir(state_dir) + "/holder.log",
                                                  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  SpawnOptions so;
  so.fds = {{null_fd.get(), 0}, {log_fd.get(), 1}, {log_fd.get(), 2}, {ready_w.get(), 3}};
  std::vector<std::string> args = {"kiln", "__network-holder", "--state-dir", state_dir, "--ready-fd", "3"};
  if (out_w) {
    so.fds.push_back({out_w.get(), 4});
    args.push_back("--outbound-fd");
    args.push_back("4");
  }
  so.flags = POSIX_SPAWN_SETSID;
  so.path = self;
  auto pid = SpawnArgv(args, so);
  if (!pid)
    return std::move(pid).error().WithContext("start the network namespace holder");
  ready_w.reset();
  char c = 0;
  ssize_t n = ReadRetry(ready_r.get(), &c, 1);
  ::waitpid(*pid, nullptr, WNOHANG);
  if (n != 1 || c != 'R') {
    auto log = ReadFile(NetDir(state_dir) + "/holder.log", 4096);
    std::string why = log && !log->empty() ? *log : "it exited before it was ready";
    while (!why.empty() && why.back() == '\n')
      why.pop_back();
    return Error(Errc::kSandbox, "start the network namespace holder: " + why);
  }
  out_w.reset();
  if (!slirp.empty() && PathExists(NetDir(state_dir) + "/outbound")) {
    // Outbound access fails closed: without slirp4netns the namespace has
    // no route out (containers still reach each other), never the host's
    // network.
    if (pid_t h = LiveHolder(state_dir); h != 0)
      if (auto st = StartOutbound(state_dir, slirp, h, out_r.get()); !st)
        LogWarn("container networks have no outbound access: " + st.error().message());
  }
  return Ok();
}

/// Runs `args` (args[0] looked up in $PATH) with `input` on stdin, in the
/// network namespace `netns_fd` (entered by a thread of its own; the child
/// inherits it). `ignore_errors`: the exit status is ignored.
Status RunTool(int netns_fd, std::vector<std::string> args, const std::string& input, bool ignore_errors,
               const std::string& what) {
  Status result = Ok();
  std::thread t([&] {
    if (::setns(netns_fd, CLONE_NEWNET) != 0) {
      result = Error::FromErrno(what + ": enter the network namespace");
      return;
    }
    int in[2], err[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      result = Error::FromErrno("pipe");
      return;
    }
    UniqueFd in_r(in[0]), in_w(in[1]), err_r(err[0]), err_w(err[1]);
    UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
    SpawnOptions so;
    so.fds = {{in_r.get(), 0}, {null_fd.get(), 1}, {err_w.get(), 2}};
    // The child is made by this thread: it starts in the namespace entered
    // above (namespaces are per thread, fork copies the caller's).
    auto pid = SpawnArgv(args, so);
    in_r.reset();
    err_w.reset();
    if (!pid) {
      result = Error(Errc::kUnsupported, what + ": run " + args[0] + " (install " +
                                             (args[0] == "ip" ? "iproute2" : args[0]) +
                                             "): " + std::strerror(pid.error().sys_errno()));
      return;
    }
    (void)WriteAll(in_w.get(), input);
    in_w.reset();
    auto errtext = ReadAll(err_r.get(), 1 << 16);
    int st = WaitChild(*pid);
    if (!ignore_errors && (!WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
      std::string e = errtext ? *errtext : "";
      while (!e.empty() && e.back() == '\n')
        e.pop_back();
      size_t nl = e.rfind('\n');
      result = Error(Errc::kSandbox, what + ": " + (nl == std::string::npos ? e : e.substr(nl + 1)));
    }
  });
  t.join();
  return result;
}

/// `ip -batch -` with `commands` (-force: go on after a failed line).
Status RunIp(int netns_fd, const std::string& commands, bool ignore_errors, const std::string& what) {
  std::vector<std::string> args = {"ip"};
  if (ignore_errors)
    args.push_back("-force");
  args.push_back("-batch");
  args.push_back("-");
  return RunTool(netns_fd, args, commands, ignore_errors, what);
}

/// slirp4netns in $PATH when /dev/net/tun is usable by this user (it makes
/// a tap device), else "": the holder's namespace then has no way out.
std::string OutboundHelper() {
  if (::access("/dev/net/tun", R_OK | W_OK) != 0)
    return {};
  const char* env = std::getenv("PATH");
  std::string path = env ? env : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t colon = path.find(':', pos);
    std::string dir = path.substr(pos, colon == std::string::npos ? std::string::npos : colon - pos);
    pos = colon == std::string::npos ? path.size() + 1 : colon + 1;
    if (dir.empty() || dir[0] != '/')
      continue;  // never relative to the current directory
    std::string p = dir + "/slirp4netns";
    if (::access(p.c_str(), X_OK) == 0)
      return p;
  }
  return {};
}

/// The holder's way out (docs/network.md, "Outbound access"): slirp4netns
/// attached to the holder's namespace as tap0 (10.0.2.100, default route via
/// 10.0.2.2), started from the host side (its sockets are the host's). It
/// exits when `exit_r` reports EOF: the holder keeps the write end for life.
Status StartOutbound(const std::string& state_dir, const std::string& slirp, pid_t holder, int exit_r) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0)
    return Error::FromErrno("pipe");
  UniqueFd ready_r(ready[0]), ready_w(ready[1]);
  UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  KILN_ASSIGN_OR_RETURN(UniqueFd log_fd, OpenFile(NetDir(state_dir) + "/slirp4netns.log",
                                                  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  SpawnOptions so;
  so.fds = {{null_fd.get(), 0}, {log_fd.get(), 1}, {log_fd.get(), 2}, {exit_r, 3}, {ready_w.get(), 4}};
  so.flags = POSIX_SPAWN_SETSID;
  so.path = slirp;
  std::string proc = "/proc/" + std::to_string(holder);
  KILN_ASSIGN_OR_RETURN(pid_t pid, SpawnArgv({slirp, "--configure", "--mtu=65520", "--disable-host-loopback",
                                              "--exit-fd=3", "--ready-fd=4", "--userns-path=" + proc + "/ns/user",
                                              "--netns-type=path", proc + "/ns/net", "tap0"},
                                             so));
  ready_w.reset();
  char c = 0;
  ssize_t n = ReadRetry(ready_r.get(), &c, 1);
  if (n != 1) {
    ::waitpid(pid, nullptr, 0);
    auto log = ReadFile(NetDir(state_dir) + "/slirp4netns.log", 4096);
    std::string why = log ? *log : "";
    while (!why.empty() && why.back() == '\n')
      why.pop_back();
    size_t nl = why.rfind('\n');
    return Error(Errc::kSandbox, "slirp4netns: " + (nl == std::string::npos ? why : why.substr(nl + 1)));
  }
  // It lives as long as the holder; nobody waits for it (it is reparented).
  return Ok();
}

/// The holder's rules (nftables, in its own namespace only): no forwarding
/// between bridges (isolation), bridges of non-internal networks (the set
/// `outbound`, filled by AttachContainer) out through tap0 with masquerade,
/// replies back in.
constexpr char kRules[] = R"(table ip kiln {
  set outbound { type ifname; }
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname @outbound oifname "tap0" accept
  }
  chain postrouting {
    type nat hook postrouting priority 100;
    oifname "tap0" masquerade
  }
}
)";

}  // namespace

std::string HolderDir(const std::string& run_root, const std::string& store_root) {
  Sha256 h;
  h.Update(store_root);
  return run_root + "/network-" + h.Finish().hex().substr(0, 12);
}

Expected<HolderHandle> PrepareHolder(const std::string& state_dir, bool start) {
  HolderHandle h;
  if (!start && !PathExists(NetDir(state_dir) + "/holder.pid"))
    return h;
  KILN_TRY(MakeDirs(NetDir(state_dir), 0700));
  if (start) {
    // The reference first: from here on the holder cannot decide to exit.
    KILN_ASSIGN_OR_RETURN(h.refs, OpenLock(NetDir(state_dir) + "/refs"));
    KILN_TRY(Flock(h.refs.get(), LOCK_SH, NetDir(state_dir) + "/refs"));
  }
  KILN_ASSIGN_OR_RETURN(UniqueFd start_lock, OpenLock(NetDir(state_dir) + "/start.lock"));
  KILN_TRY(Flock(start_lock.get(), LOCK_EX, NetDir(state_dir) + "/start.lock"));
  pid_t pid = LiveHolder(state_dir);
  if (pid == 0 && start) {
    KILN_TRY(StartHolder(state_dir));
    pid = LiveHolder(state_dir);
    if (pid == 0)
      return Error(Errc::kSandbox, "the network namespace holder started but is not running");
  }
  if (pid != 0) {
    std::string path = "/proc/" + std::to_string(pid) + "/ns/user";
    auto fd = OpenFile(path, O_RDONLY | O_CLOEXEC);
    if (!fd)
      return std::move(fd).error().WithContext("join the network namespace holder");
    h.userns = std::move(*fd);
  }
  return h;
}

Expected<UniqueFd> TakeHolderReference(const std::string& state_dir) {
  KILN_TRY(MakeDirs(NetDir(state_dir), 0700));
  KILN_ASSIGN_OR_RETURN(UniqueFd refs, OpenLock(NetDir(state_dir) + "/refs"));
  KILN_TRY(Flock(refs.get(), LOCK_SH, NetDir(state_dir) + "/refs"));
  if (LiveHolder(state_dir) == 0)
    return Error(Errc::kSandbox, "the network namespace holder of " + state_dir + " is not running");
  return refs;
}

int HolderMain(const std::string& state_dir, int ready_fd, int outbound_fd) {
  auto fail = [&](const std::string& msg) {
    std::fprintf(stderr, "%s\n", msg.c_str());
    return 1;
  };
  // The DNS responder's way out: a socket made in the host's network
  // namespace, before the holder leaves it (a resolver on 127.0.0.x works).
  // KILN_RESOLV_CONF names another resolv.conf (tests: a resolver on loopback).
  UniqueFd upstream(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  const char* resolv = std::getenv("KILN_RESOLV_CONF");
  std::vector<uint32_t> nameservers = ReadNameservers(resolv && *resolv ? resolv : "/etc/resolv.conf");
  if (::unshare(CLONE_NEWNET) != 0)
    return fail(std::string("unshare the network namespace: ") + std::strerror(errno));
  auto self_net = OpenFile("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (!self_net)
    return fail(self_net.error().message());
  if (auto st = RunIp(self_net->get(), "link set lo up\n", false, "bring lo up"); !st)
    return fail(st.error().message());
  // No routing between the bridges: containers on different networks cannot
  // reach each other (a new namespace inherits the host's ip_forward, often
  // 1). Fail closed when it cannot be switched off.
  for (const char* knob : {"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/conf/all/forwarding",
                           "/proc/sys/net/ipv4/conf/default/forwarding"}) {
    auto fd = OpenFile(knob, O_WRONLY | O_CLOEXEC);
    if (!fd || !WriteAll(fd->get(), "0\n"))
      return fail(std::string("isolate the networks: cannot write 0 to ") + knob);
  }
  // Outbound access (the starter has slirp4netns for us): the rules first,
  // forwarding on only once they are in place; a failure leaves forwarding
  // off (isolated, no way out: closed).
  ::unlink((NetDir(state_dir) + "/outbound").c_str());
  if (outbound_fd >= 0) {
    ::fcntl(outbound_fd, F_SETFD, FD_CLOEXEC);  // kept open for life: slirp4netns's exit-fd
    Status st = RunTool(self_net->get(), {"nft", "-f", "-"}, kRules, false, "outbound rules");
    if (st && PathExists("/proc/sys/net/bridge/bridge-nf-call-iptables")) {
      // With br_netfilter, traffic inside one bridge would meet the
      // forward chain's drop policy: this namespace does not filter it.
      auto fd = OpenFile("/proc/sys/net/bridge/bridge-nf-call-iptables", O_WRONLY | O_CLOEXEC);
      if (!fd || !WriteAll(fd->get(), "0\n"))
        st = Error(Errc::kSandbox, "outbound: cannot write 0 to /proc/sys/net/bridge/bridge-nf-call-iptables");
    }
    if (st) {
      auto fd = OpenFile("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
      if (!fd || !WriteAll(fd->get(), "1\n"))
        st = Error(Errc::kSandbox, "outbound: cannot write 1 to /proc/sys/net/ipv4/ip_forward");
    }
    if (st)
      st = WriteFileAtomic(NetDir(state_dir) + "/outbound", "tap0\n", 0600);
    if (!st)
      std::fprintf(stderr, "no outbound access: %s\n", st.error().message().c_str());
  }
  auto refs = OpenLock(NetDir(state_dir) + "/refs");
  auto start_lock = OpenLock(NetDir(state_dir) + "/start.lock");
  if (!refs || !start_lock)
    return fail("open the holder's lock files in " + NetDir(state_dir));
  if (auto st = WriteFileAtomic(NetDir(state_dir) + "/holder.pid", std::to_string(::getpid()) + "\n", 0600); !st)
    return fail(st.error().message());
  char r = 'R';
  if (ready_fd >= 0) {
    (void)!::write(ready_fd, &r, 1);
    ::close(ready_fd);
  }
  Responder dns(state_dir, std::move(upstream), std::move(nameservers));
  // A container's names (and the first one's listen sockets) are taken in
  // as soon as its file appears, not at the next 200 ms tick.
  (void)MakeDirs(NetDir(state_dir) + "/dns", 0700);
  UniqueFd notify(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (notify && ::inotify_add_watch(notify.get(), (NetDir(state_dir) + "/dns").c_str(),
                                    IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_CLOSE_WRITE) < 0)
    notify.reset();
  struct timespec last = {};
  for (;;) {
    dns.Refresh();
    std::vector<int> fds = dns.Fds();
    std::vector<struct pollfd> pfds;
    if (notify)
      pfds.push_back({notify.get(), POLLIN, 0});
    for (int fd : fds)
      pfds.push_back({fd, POLLIN, 0});
    int n = ::poll(pfds.data(), pfds.size(), 200);
    if (n > 0 && notify && (pfds[0].revents & POLLIN)) {
      char drain[4096];
      while (::read(notify.get(), drain, sizeof drain) > 0) {
      }
      dns.Refresh(true);
    }
    for (int i = notify ? 1 : 0; n > 0 && i < static_cast<int>(pfds.size()); ++i)
      if (pfds[static_cast<size_t>(i)].revents & (POLLIN | POLLHUP | POLLERR))
        dns.Serve(pfds[static_cast<size_t>(i)].fd);
    struct timespec now;
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - last.tv_sec) * 1000 + (now.tv_nsec - last.tv_nsec) / 1000000 < 200)
      continue;
    last = now;
    if (::flock(start_lock->get(), LOCK_EX) != 0)
      continue;
    if (::flock(refs->get(), LOCK_EX | LOCK_NB) == 0) {
      // Nobody uses the namespace: forget it and go (N, its bridges and
      // the veth ends in it go with the last process in it).
      auto text = ReadFile(NetDir(state_dir) + "/holder.pid", 64);
      if (text && std::atoi(text->c_str()) == ::getpid())
        ::unlink((NetDir(state_dir) + "/holder.pid").c_str());
      return 0;
    }
    ::flock(start_lock->get(), LOCK_UN);
  }
}

Status AttachContainer(const std::string& state_dir, const Network& net, const Attachment& a, pid_t pid) {
  pid_t holder = LiveHolder(state_dir);
  if (holder == 0)
    return Error(Errc::kSandbox, "network " + net.name + ": the network namespace holder of " + state_dir +
                                     " is not running");
  KILN_ASSIGN_OR_RETURN(Cidr prefix, net.Prefix());
  KILN_ASSIGN_OR_RETURN(uint32_t gateway, net.Gateway());
  auto holder_net = OpenFile("/proc/" + std::to_string(holder) + "/ns/net", O_RDONLY | O_CLOEXEC);
  if (!holder_net)
    return std::move(holder_net).error().WithContext("network " + net.name);
  auto ctr_net = OpenFile("/proc/" + std::to_string(pid) + "/ns/net", O_RDONLY | O_CLOEXEC);
  if (!ctr_net)
    return std::move(ctr_net).error().WithContext("network " + net.name);
  const std::string& br = net.interface_name;
  std::string plen = std::to_string(prefix.prefix);
  // The bridge, once per network (a second `link add` fails harmlessly),
  // with a fixed MAC address: a bridge without one takes the lowest of its
  // ports' and changes it when a container joins, and the containers' ARP
  // entries for the gateway (the DNS responder) go stale.
  char mac[32];
  std::snprintf(mac, sizeof mac, "02:6b:%02x:%02x:%02x:%02x", gateway >> 24, (gateway >> 16) & 255,
                (gateway >> 8) & 255, gateway & 255);
  // (Looked up first: one `ip` run less per container once it exists.)
  bool bridge_exists = false;
  std::thread([&] {
    if (::setns(holder_net->get(), CLONE_NEWNET) == 0)
      bridge_exists = ::if_nametoindex(br.c_str()) != 0;
  }).join();
  if (!bridge_exists) {
    KILN_TRY(RunIp(holder_net->get(),
                   "link add " + br + " address " + mac + " type bridge\n" + "addr add " + Ipv4String(gateway) + "/" +
                       plen + " dev " + br + "\n" + "link set " + br + " up\n",
                   true, "network " + net.name + ": bridge " + br));
    if (!net.internal && PathExists(NetDir(state_dir) + "/outbound"))
      KILN_TRY(RunTool(holder_net->get(), {"nft", "add", "element", "ip", "kiln", "outbound", "{ " + br + " }"}, "",
                       false, "network " + net.name + ": outbound access for " + br));
  }
  // The veth pair: the host end on the bridge, the other in the container,
  // with a MAC address derived from the container's IP (as docker did): an
  // address used again by a new container keeps its MAC, so the neighbours'
  // ARP entries for it stay right (else they point at the old container's
  // MAC until they expire: seconds of lost packets).
  char ctr_mac[32];
  std::snprintf(ctr_mac, sizeof ctr_mac, "02:6a:%02x:%02x:%02x:%02x", a.ip >> 24, (a.ip >> 16) & 255,
                (a.ip >> 8) & 255, a.ip & 255);
  KILN_TRY(RunIp(holder_net->get(),
                 "link add " + a.host_interface + " type veth peer name " + a.interface + " address " + ctr_mac +
                     " netns " + std::to_string(pid) + "\n" + "link set " + a.host_interface + " master " + br +
                     " up\n",
                 false, "network " + net.name + ": veth " + a.host_interface));
  std::string in_ctr = "addr add " + Ipv4String(a.ip) + "/" + plen + " dev " + a.interface + "\n" + "link set " +
                       a.interface + " up\n";
  if (a.default_route)
    in_ctr += "route add default via " + Ipv4String(gateway) + "\n";
  KILN_TRY(RunIp(ctr_net->get(), in_ctr, false, "network " + net.name + ": " + a.interface));
  KILN_TRY(PublishNames(state_dir, net, a));
  // The first container of a network: wait (<= 1 s) until the responder
  // listens on the gateway, so that the container's first lookup is
  // answered (/proc/PID/net/udp lists the sockets of PID's namespace).
  char want[32];
  std::snprintf(want, sizeof want, " %08X:0035 ", htonl(gateway));
  for (int i = 0; i < 500; ++i) {
    auto udp = ReadFile("/proc/" + std::to_string(holder) + "/net/udp", 1 << 20);
    if (!udp || udp->find(want) != std::string::npos)
      break;
    struct timespec ts = {0, 2000000};
    ::nanosleep(&ts, nullptr);
  }
  return Ok();
}

std::map<std::string, std::set<uint32_t>> BuildAddresses(const std::string& state_dir) {
  std::map<std::string, std::set<uint32_t>> out;
  pid_t holder = LiveHolder(state_dir);
  if (holder == 0)
    return out;  // no namespace: no build holds an address
  // The interfaces of the holder's namespace ("%6s: counters" lines).
  auto dev = ReadFile("/proc/" + std::to_string(holder) + "/net/dev", 1 << 22);
  if (!dev)
    return out;
  std::set<std::string> live;
  std::istringstream lines(*dev);
  for (std::string l; std::getline(lines, l);) {
    size_t b = l.find_first_not_of(' '), colon = l.find(':');
    if (b != std::string::npos && colon != std::string::npos && colon > b)
      live.insert(l.substr(b, colon - b));
  }
  auto names = ListDirSorted(NetDir(state_dir) + "/dns");
  if (!names)
    return out;
  for (const auto& name : *names) {
    if (name.rfind(kBuildInterfacePrefix, 0) != 0 || !live.count(name))
      continue;
    auto line = ReadFile(NetDir(state_dir) + "/dns/" + name, 1 << 16);
    if (!line)
      continue;
    std::istringstream in(*line);
    std::string net, gateway, ip;
    in >> net >> gateway >> ip;
    if (auto a = ParseIpv4(ip))
      out[net].insert(*a);
  }
  return out;
}

Status DetachContainer(const std::string& state_dir, const std::string& host_interface) {
  UnpublishNames(state_dir, host_interface);
  pid_t holder = LiveHolder(state_dir);
  if (holder == 0)
    return Ok();
  auto holder_net = OpenFile("/proc/" + std::to_string(holder) + "/ns/net", O_RDONLY | O_CLOEXEC);
  if (!holder_net)
    return std::move(holder_net).error().WithContext("disconnect " + host_interface);
  // Deleting one end of a veth pair deletes both: the container's interface
  // is gone at once.
  return RunIp(holder_net->get(), "link del " + host_interface + "\n", false, "disconnect: veth " + host_interface);
}

}  // namespace kiln::network
