#include "sandbox/wire.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace kiln::sandbox {
namespace {

class Writer {
 public:
  void U32(uint32_t v) {
    for (int i = 0; i < 4; ++i)
      out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void Str(const std::string& s) {
    U32(static_cast<uint32_t>(s.size()));
    out_ += s;
  }
  void Strs(const std::vector<std::string>& v) {
    U32(static_cast<uint32_t>(v.size()));
    for (const auto& s : v)
      Str(s);
  }
  void Opt(const std::optional<std::string>& s) {
    U32(s ? 1 : 0);
    if (s)
      Str(*s);
  }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(const std::string& data) : data_(data) {}
  bool ok() const { return ok_; }
  uint32_t U32() {
    if (pos_ + 4 > data_.size()) {
      ok_ = false;
      return 0;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
      v |= static_cast<uint32_t>(static_cast<unsigned char>(data_[pos_ + i])) << (8 * i);
    pos_ += 4;
    return v;
  }
  std::string Str() {
    uint32_t n = U32();
    if (!ok_ || n > data_.size() - pos_) {
      ok_ = false;
      return {};
    }
    std::string s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::vector<std::string> Strs() {
    uint32_t n = U32();
    std::vector<std::string> v;
    if (n > data_.size())  // each string needs at least 4 bytes
      ok_ = false;
    for (uint32_t i = 0; ok_ && i < n; ++i)
      v.push_back(Str());
    return v;
  }
  std::optional<std::string> Opt() {
    if (U32() == 0)
      return std::nullopt;
    return Str();
  }

 private:
  const std::string& data_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

std::string EncodeSpec(const HelperSpec& h) {
  const SandboxSpec& s = h.spec;
  Writer w;
  w.Strs(s.lower_dirs);
  w.Str(s.upper_dir);
  w.Str(s.work_dir);
  w.Str(s.rootfs_dir);
  w.U32(s.driver ? static_cast<uint32_t>(*s.driver) + 1 : 0);
  w.U32(s.read_only_rootfs);
  w.U32(s.volatile_upper);
  w.U32(static_cast<uint32_t>(s.mounts.size()));
  for (const auto& m : s.mounts) {
    w.U32(static_cast<uint32_t>(m.type));
    w.Str(m.source);
    w.Str(m.target);
    w.U32(m.read_only);
    w.Str(m.tmpfs_options);
  }
  w.Strs(s.argv);
  w.Strs(s.env);
  w.Str(s.cwd);
  w.U32(s.uid);
  w.U32(s.gid);
  w.U32(static_cast<uint32_t>(s.supplementary_gids.size()));
  for (uint32_t g : s.supplementary_gids)
    w.U32(g);
  w.Str(s.hostname);
  w.U32(static_cast<uint32_t>(s.network));
  w.Str(s.join_netns);
  w.Str(s.join_ipc);
  w.Str(s.join_uts);
  w.Str(s.join_pid);
  w.U32(s.tty);
  w.U32(s.default_capabilities);
  w.Str(h.new_root);
  w.Str(h.hosts_file);
  w.Str(h.resolv_file);
  w.Str(h.hostname_file);
  w.U32(static_cast<uint32_t>(h.parent_pid));
  w.U32(h.in_userns);
  w.U32(s.capabilities ? 1 : 0);
  w.U32(static_cast<uint32_t>(s.capabilities.value_or(0)));
  w.U32(static_cast<uint32_t>(s.capabilities.value_or(0) >> 32));
  w.U32(static_cast<uint32_t>(s.rlimits.size()));
  for (const auto& l : s.rlimits) {
    w.U32(static_cast<uint32_t>(l.resource));
    for (uint64_t v : {l.soft, l.hard}) {
      w.U32(static_cast<uint32_t>(v));
      w.U32(static_cast<uint32_t>(v >> 32));
    }
  }
  w.U32(s.no_new_privileges);
  w.Str(s.shm_size);
  w.U32(s.mask_proc);
  return std::move(w.out());
}

bool DecodeSpec(const std::string& data, HelperSpec* out) {
  Reader r(data);
  SandboxSpec& s = out->spec;
  s.lower_dirs = r.Strs();
  s.upper_dir = r.Str();
  s.work_dir = r.Str();
  s.rootfs_dir = r.Str();
  uint32_t driver = r.U32();
  if (driver > 3)
    return false;
  if (driver)
    s.driver = static_cast<RootfsDriver>(driver - 1);
  s.read_only_rootfs = r.U32() != 0;
  s.volatile_upper = r.U32() != 0;
  uint32_t nmounts = r.U32();
  if (nmounts > data.size())
    return false;
  for (uint32_t i = 0; r.ok() && i < nmounts; ++i) {
    SandboxMount m;
    uint32_t type = r.U32();
    if (type > 1)
      return false;
    m.type = static_cast<SandboxMount::Type>(type);
    m.source = r.Str();
    m.target = r.Str();
    m.read_only = r.U32() != 0;
    m.tmpfs_options = r.Str();
    s.mounts.push_back(std::move(m));
  }
  s.argv = r.Strs();
  s.env = r.Strs();
  s.cwd = r.Str();
  s.uid = r.U32();
  s.gid = r.U32();
  uint32_t ngroups = r.U32();
  if (ngroups > 65536)
    return false;
  for (uint32_t i = 0; r.ok() && i < ngroups; ++i)
    s.supplementary_gids.push_back(r.U32());
  s.hostname = r.Str();
  uint32_t net = r.U32();
  if (net > 2)
    return false;
  s.network = static_cast<NetworkMode>(net);
  s.join_netns = r.Str();
  s.join_ipc = r.Str();
  s.join_uts = r.Str();
  s.join_pid = r.Str();
  s.tty = r.U32() != 0;
  s.default_capabilities = r.U32() != 0;
  out->new_root = r.Str();
  out->hosts_file = r.Str();
  out->resolv_file = r.Str();
  out->hostname_file = r.Str();
  out->parent_pid = static_cast<int32_t>(r.U32());
  out->in_userns = r.U32() != 0;
  auto u64 = [&r] {
    uint64_t lo = r.U32();
    return lo | (uint64_t(r.U32()) << 32);
  };
  if (r.U32() != 0)
    s.capabilities = u64();
  else
    (void)u64();
  uint32_t nlimits = r.U32();
  if (nlimits > 64)
    return false;
  for (uint32_t i = 0; r.ok() && i < nlimits; ++i) {
    SandboxSpec::Rlimit l;
    l.resource = static_cast<int>(r.U32());
    l.soft = u64();
    l.hard = u64();
    s.rlimits.push_back(l);
  }
  s.no_new_privileges = r.U32() != 0;
  s.shm_size = r.Str();
  s.mask_proc = r.U32() != 0;
  return r.ok();
}

namespace {

// A message of one data byte with room for one fd.
struct FdMessage {
  char byte = 0;
  struct iovec iov = {&byte, 1};
  struct msghdr msg = {};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  FdMessage() {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
  }
  FdMessage(const FdMessage&) = delete;
};

}  // namespace

bool SendFd(int sock, int fd) {
  FdMessage m;
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&m.msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  ssize_t n;
  do {
    n = ::sendmsg(sock, &m.msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == 1;
}

int ReceiveFd(int sock) {
  FdMessage m;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &m.msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n != 1) {
    if (n >= 0)
      errno = EPROTO;
    return -1;
  }
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&m.msg);
  if (!cmsg || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS ||
      cmsg->cmsg_len != CMSG_LEN(sizeof(int))) {
    errno = EPROTO;
    return -1;
  }
  int fd;
  std::memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
  return fd;
}

}  // namespace kiln::sandbox
