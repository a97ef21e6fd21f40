// `kiln attach` (docs/run.md): the client (output from ctr.log, stdin sent
// to the monitor, detach keys) and the monitor's stdin server.
//
// The monitor of a container created with -i keeps a pipe as the
// container's stdin and listens on <run dir>/attach.sock (SOCK_SEQPACKET).
// Each packet an attach client sends is 'd' + bytes for the container's
// stdin, or 'e': the client's input ended, the container's stdin is closed
// (as podman). A client that goes away without 'e' (detach keys, killed)
// leaves the stdin open for the next one.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "kiln/fs.h"
#include "kiln/process.h"
#include "run/internal.h"

namespace kiln::run {

using namespace internal;

namespace {

constexpr char kSocketName[] = "attach.sock";

// A unix socket address for `dir`/attach.sock that fits sun_path whatever
// the length of `dir`: through /proc/self/fd of an O_PATH descriptor.
struct SocketAddress {
  UniqueFd dir;
  sockaddr_un addr{};
};

Expected<SocketAddress> AddressIn(const std::string& dir) {
  SocketAddress a;
  a.dir.reset(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!a.dir)
    return Error::FromErrno("open " + dir);
  a.addr.sun_family = AF_UNIX;
  std::string path = "/proc/self/fd/" + std::to_string(a.dir.get()) + "/" + kSocketName;
  std::memcpy(a.addr.sun_path, path.c_str(), path.size() + 1);
  return a;
}

bool SendPacket(int fd, char kind, const char* data, size_t n) {
  std::string p(1, kind);
  p.append(data, n);
  for (;;) {
    ssize_t w = ::send(fd, p.data(), p.size(), MSG_NOSIGNAL);
    if (w >= 0)
      return true;
    if (errno != EINTR)
      return false;
  }
}

}  // namespace

Expected<std::string> ParseDetachKeys(const std::string& spec) {
  std::string keys;
  if (spec.empty())
    return keys;
  size_t start = 0;
  for (;;) {
    size_t comma = spec.find(',', start);
    std::string k = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (k.size() == 1) {
      keys += k[0];
    } else if (k.size() == 6 && k.compare(0, 5, "ctrl-") == 0) {
      char c = k[5];
      if (c >= 'a' && c <= 'z')
        keys += static_cast<char>(c - 'a' + 1);
      else if (c == '@')
        keys += '\0';
      else if (c == '[' || c == '\\' || c == ']' || c == '^' || c == '_')
        keys += static_cast<char>(c - '[' + 27);
      else
        k.clear();
    } else {
      k.clear();
    }
    if (k.empty())
      return Error(Errc::kInvalidInput, "invalid detach keys " + spec +
                                            ": use comma-separated ctrl-<a-z, @, [, \\, ], ^ or _> or single "
                                            "characters, e.g. ctrl-p,ctrl-q");
    if (comma == std::string::npos)
      return keys;
    start = comma + 1;
  }
}

std::string DetachMatcher::Feed(std::string_view data, bool* detached) {
  std::string out;
  *detached = false;
  for (char c : data) {
    if (keys_.empty()) {
      out += c;
      continue;
    }
    if (c == keys_[matched_]) {
      if (++matched_ == keys_.size()) {
        matched_ = 0;
        *detached = true;
        return out;  // what follows the sequence is not sent
      }
      continue;
    }
    out.append(keys_, 0, matched_);  // a prefix that was not the sequence
    matched_ = 0;
    if (c == keys_[0])
      matched_ = 1;
    else
      out += c;
  }
  return out;
}

Expected<int> Attach(const Paths& paths, const std::string& id, const AttachOptions& o, int in_fd, int out_fd) {
  UniqueFd conn;
  bool tty = false;
  if (o.stdin) {
    auto c = ReadConfig(paths, id);
    if (c && c->interactive) {
      tty = c->tty;
      // The socket exists while the monitor serves it; none: no stdin.
      auto addr = AddressIn(RunDir(paths, id));
      if (addr) {
        conn.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        if (conn && ::connect(conn.get(), reinterpret_cast<sockaddr*>(&addr->addr), sizeof addr->addr) != 0)
          conn.reset();
      }
    }
  }
  std::optional<RawMode> raw;
  if (conn && tty)
    raw.emplace(in_fd);  // the keys go to the container's terminal as typed
  // Shared with the stdin thread, which may outlive this call (blocked on a
  // read when the container exits).
  struct Shared {
    std::atomic<bool> detached{false};
    UniqueFd conn;
    std::string keys;
  };
  auto sh = std::make_shared<Shared>();
  sh->conn = std::move(conn);
  sh->keys = o.detach_keys;
  std::thread input;
  LogOptions lo;
  lo.follow = true;
  lo.tail = 0;
  lo.stop = &sh->detached;
  if (sh->conn)
    lo.caught_up = [&input, sh, in_fd] {
      input = std::thread([sh, in_fd] {
        DetachMatcher m(sh->keys);
        char buf[16384];
        for (;;) {
          ssize_t n = ::read(in_fd, buf, sizeof buf);
          if (n < 0 && errno == EINTR)
            continue;
          if (n <= 0) {
            (void)SendPacket(sh->conn.get(), 'e', nullptr, 0);
            return;
          }
          bool detached = false;
          std::string pass = m.Feed(std::string_view(buf, static_cast<size_t>(n)), &detached);
          if (!pass.empty() && !SendPacket(sh->conn.get(), 'd', pass.data(), pass.size()))
            return;  // the monitor is gone
          if (detached) {
            sh->detached = true;
            return;
          }
        }
      });
    };
  Status st = WriteLogs(paths, id, lo, out_fd);
  if (input.joinable()) {
    if (sh->detached)
      input.join();
    else
      input.detach();  // blocked reading in_fd: it ends with the process
  }
  raw.reset();
  if (!st)
    return st.error();
  if (sh->detached)
    return -1;
  return WaitContainer(paths, id);
}

namespace internal {

Status StdinServer::Start(const Paths& paths, const std::string& id) {
  UniqueFd r, w;
  KILN_TRY(MakePipe(&r, &w));
  UniqueFd stop_r, stop_w;
  KILN_TRY(MakePipe(&stop_r, &stop_w));
  std::string dir = RunDir(paths, id);
  KILN_ASSIGN_OR_RETURN(SocketAddress addr, AddressIn(dir));
  UniqueFd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!s)
    return Error::FromErrno("socket");
  std::string path = dir + "/" + kSocketName;
  (void)::unlink(path.c_str());
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&addr.addr), sizeof addr.addr) != 0)
    return Error::FromErrno("bind " + path);
  ::chmod(path.c_str(), 0600);
  if (::listen(s.get(), 8) != 0)
    return Error::FromErrno("listen on " + path);
  read_ = std::move(r);
  write_ = std::make_shared<UniqueFd>(std::move(w));
  listen_ = std::move(s);
  socket_path_ = path;
  stop_r_ = std::move(stop_r);
  stop_w_ = std::move(stop_w);
  thread_ = std::thread([this] { Serve(); });
  return Ok();
}

void StdinServer::Serve() {
  std::vector<UniqueFd> clients;
  std::vector<char> buf(65536 + 1);
  for (;;) {
    // [0] the stop pipe, [1] the listening socket, then one per client
    std::vector<pollfd> fds(2 + clients.size());
    fds[0] = {stop_r_.get(), POLLIN, 0};
    fds[1] = {listen_.get(), POLLIN, 0};
    for (size_t i = 0; i < clients.size(); ++i)
      fds[2 + i] = {clients[i].get(), POLLIN, 0};
    int ready = ::poll(fds.data(), fds.size(), -1);
    if (ready < 0 && errno == EINTR)
      continue;
    if (ready < 0 || fds[0].revents != 0)
      return;  // stopping (or poll cannot work: no more input)
    if (fds[1].revents & POLLIN) {
      int c = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0)
        clients.emplace_back(c);
    }
    std::vector<bool> gone(clients.size(), false);
    for (size_t i = 0; i < clients.size(); ++i) {
      if (!(fds[i + 2].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      ssize_t n = ::recv(clients[i].get(), buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        gone[i] = true;  // went away: the stdin stays open
        continue;
      }
      if (buf[0] == 'e') {
        write_->reset();  // end of input: the container reads EOF
      } else if (buf[0] == 'd' && *write_) {
        if (!WriteAll(write_->get(), buf.data() + 1, static_cast<size_t>(n - 1)))
          write_->reset();  // nobody reads it any more
      }
    }
    for (size_t i = clients.size(); i-- > 0;)
      if (gone[i])
        clients.erase(clients.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

StdinServer::~StdinServer() {
  if (!thread_.joinable())
    return;
  read_.reset();  // a write blocked on a full pipe fails now (EPIPE)
  (void)!::write(stop_w_.get(), "x", 1);
  thread_.join();
  (void)::unlink(socket_path_.c_str());
}

}  // namespace internal

}  // namespace kiln::run
