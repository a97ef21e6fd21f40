// One step: RUN in the sandbox (mounts, ids, output), COPY, commit of the upper directory.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "engine/build_internal.h"
#include "kiln/cleanup.h"

namespace kiln::engine {

namespace build_internal {

namespace {

/// RUN --mount=type=ssh: the host's agent served to the step on a socket of
/// its own, with the mount's owner and mode (BuildKit does the same), each
/// connection forwarded to the agent by one thread; the host's socket is
/// never shown to the step. Stopped (and its directory removed) on
/// destruction.
class AgentProxy {
 public:
  static Expected<std::unique_ptr<AgentProxy>> Start(const std::string& agent, uid_t uid, gid_t gid, mode_t mode) {
    std::unique_ptr<AgentProxy> p(new AgentProxy);
    p->agent_ = agent;
    char tmpl[] = "/tmp/kiln-ssh-XXXXXX";  // short: sun_path holds 108 bytes
    if (!::mkdtemp(tmpl))
      return Error::FromErrno("ssh agent: mkdtemp /tmp/kiln-ssh-XXXXXX");
    p->dir_ = tmpl;
    p->path_ = p->dir_ + "/agent.sock";
    p->listen_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!p->listen_)
      return Error::FromErrno("ssh agent: socket");
    struct sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, p->path_.c_str(), p->path_.size() + 1);
    if (::bind(p->listen_.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(p->listen_.get(), 16) != 0)
      return Error::FromErrno("ssh agent: listen on " + p->path_);
    if (::chown(p->path_.c_str(), uid, gid) != 0)
      return Error::FromErrno("ssh agent: chown " + p->path_ + " to " + std::to_string(uid) + ":" + std::to_string(gid));
    if (::chmod(p->path_.c_str(), mode) != 0)
      return Error::FromErrno("ssh agent: chmod " + p->path_);
    int wake[2];
    if (::pipe2(wake, O_CLOEXEC) != 0)
      return Error::FromErrno("ssh agent: pipe");
    p->wake_r_.reset(wake[0]);
    p->wake_w_.reset(wake[1]);
    p->thread_ = std::thread([raw = p.get()] { raw->Loop(); });
    return p;
  }
  ~AgentProxy() {
    if (thread_.joinable()) {
      char c = 0;
      (void)!::write(wake_w_.get(), &c, 1);
      thread_.join();
    }
    if (!path_.empty())
      ::unlink(path_.c_str());
    if (!dir_.empty())
      ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  AgentProxy() = default;
  void Loop() {
    std::vector<std::pair<UniqueFd, UniqueFd>> conns;  // (step side, agent side)
    char buf[65536];
    for (;;) {
      std::vector<struct pollfd> fds = {{wake_r_.get(), POLLIN, 0}, {listen_.get(), POLLIN, 0}};
      for (const auto& c : conns) {
        fds.push_back({c.first.get(), POLLIN, 0});
        fds.push_back({c.second.get(), POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR)
          continue;
        return;
      }
      if (fds[0].revents)
        return;
      // Only the connections that were polled have entries in fds; one
      // accepted below is polled from the next round on.
      const size_t polled = conns.size();
      if (fds[1].revents & POLLIN) {
        UniqueFd client(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        UniqueFd up(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        struct sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (client && up && agent_.size() < sizeof addr.sun_path) {
          std::memcpy(addr.sun_path, agent_.c_str(), agent_.size() + 1);
          if (::connect(up.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) == 0)
            conns.emplace_back(std::move(client), std::move(up));
        }
      }
      std::vector<bool> dead(conns.size(), false);
      for (size_t i = 0; i < polled; ++i) {
        for (int side = 0; side < 2 && !dead[i]; ++side) {
          const struct pollfd& pf = fds[2 + 2 * i + static_cast<size_t>(side)];
          if (!pf.revents)
            continue;
          int from = side == 0 ? conns[i].first.get() : conns[i].second.get();
          int to = side == 0 ? conns[i].second.get() : conns[i].first.get();
          ssize_t n = ::read(from, buf, sizeof buf);
          if (n <= 0 && !(n < 0 && errno == EINTR)) {
            dead[i] = true;
            break;
          }
          for (ssize_t off = 0; n > 0 && off < n;) {  // MSG_NOSIGNAL: a closed peer is no SIGPIPE
            ssize_t w = ::send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
              continue;
            if (w <= 0) {
              dead[i] = true;
              break;
            }
            off += w;
          }
        }
      }
      for (size_t i = conns.size(); i-- > 0;)
        if (dead[i])
          conns.erase(conns.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  std::string agent_, dir_, path_;
  UniqueFd listen_, wake_r_, wake_w_;
  std::thread thread_;
};

/// RUN's resolv.conf with --dns (nameserver lines), --dns-search (the
/// search line) and --dns-option (the options line) in place of those of
/// `base`; its other lines kept.
std::string ResolvConfWithFlags(const std::string& base, const BuildOptions& o) {
  std::string out;
  std::vector<std::string> kept_ns, kept_search, kept_opts;
  size_t start = 0;
  while (start < base.size()) {
    size_t nl = base.find('\n', start);
    std::string line = base.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    start = nl == std::string::npos ? base.size() : nl + 1;
    auto is = [&](const char* word) { return line.rfind(word, 0) == 0; };
    if (is("nameserver"))
      kept_ns.push_back(line);
    else if (is("search") || is("domain"))
      kept_search.push_back(line);
    else if (is("options"))
      kept_opts.push_back(line);
    else if (!line.empty())
      out += line + "\n";
  }
  auto joined = [](const char* head, const std::vector<std::string>& v) {
    std::string l = head;
    for (const auto& x : v)
      l += " " + x;
    return l;
  };
  for (const auto& l : o.dns_search.empty() ? kept_search : std::vector<std::string>{joined("search", o.dns_search)})
    out += l + "\n";
  if (o.dns_servers.empty())
    for (const auto& l : kept_ns)
      out += l + "\n";
  for (const auto& ns : o.dns_servers)
    out += "nameserver " + ns + "\n";
  for (const auto& l : o.dns_options.empty() ? kept_opts : std::vector<std::string>{joined("options", o.dns_options)})
    out += l + "\n";
  return out;
}

}  // namespace

/// A RUN --mount=type=bind source in the build context: (real host path,
/// path relative to the context). It must stay inside the context,
/// symlinks and ".." included (docs/security.md I2).
Expected<std::pair<std::string, std::string>> BindSource(const std::string& context_dir, const Step& step,
                                                         const RunMount& m) {
  char* ctx_real = ::realpath(context_dir.c_str(), nullptr);
  char* src_real = ::realpath(JoinPath(context_dir, m.source).c_str(), nullptr);
  std::string ctx = ctx_real ? ctx_real : "", src = src_real ? src_real : "";
  std::free(ctx_real);
  std::free(src_real);
  if (src.empty())
    return Error(Errc::kNotFound, Where(step) + ": RUN --mount source \"" + m.source + "\": not found in the build context");
  if (src != ctx && src.rfind(ctx + "/", 0) != 0)
    return Error(Errc::kInvalidInput, Where(step) + ": RUN --mount source \"" + m.source + "\" is outside the build context");
  return std::make_pair(src, src == ctx ? std::string() : src.substr(ctx.size() + 1));
}

/// The directory name of a cache mount: its id (default: the target), and
/// an owner or mode other than 0:0 0755 too, since BuildKit keys a cache by
/// id and the directory it starts from (made with that owner and mode).
std::string CacheMountKey(const RunMount& m) {
  std::string id = m.id.empty() ? m.target : m.id;
  int64_t uid = m.uid.value_or(0), gid = m.gid.value_or(0);
  uint32_t mode = m.mode.value_or(0755);
  if (uid == 0 && gid == 0 && mode == 0755)
    return Digest::Of(id).hex();
  return Digest::Of(id + '\0' + std::to_string(uid) + ':' + std::to_string(gid) + ':' + std::to_string(mode)).hex();
}

/// docs/security.md H13/H38: an id the build gives a file or a RUN must be one
/// chown/setuid take as an id (4294967295 means "leave unchanged" to
/// chown, so --chown=4294967295 gave root-owned files) and one that is
/// mapped in the user namespace kiln runs in.
Status CheckBuildId(const std::string& where, const char* kind, uint32_t id) {
  if (id == 0xffffffffu)
    return Error(Errc::kInvalidInput, where + ": " + kind + " 4294967295 is out of range (0 to 4294967294)");
  auto maps = ReadIdMappings(std::string_view(kind) == "gid");
  if (!maps || maps->empty())
    return Ok();
  std::string ranges;
  for (const auto& m : *maps) {
    if (id >= m.container_id && id - m.container_id < m.size)
      return Ok();
    ranges += (ranges.empty() ? "" : ", ") + std::to_string(m.container_id) + "-" +
              std::to_string(uint64_t(m.container_id) + m.size - 1);
  }
  return Error(Errc::kInvalidInput, where + ": " + kind + " " + std::to_string(id) +
                                        " is not mapped in kiln's user namespace (mapped: " + ranges +
                                        "; a rootless build has the ids of /etc/sub" + (kind[0] == 'g' ? "gid" : "uid") +
                                        ")");
}

/// What a rw bind mount of `source` (in the build context) shows the step:
/// for a directory an overlay with `source` as its only lower layer and a
/// fresh upper in the step's scratch directory (writes land there and are
/// removed with it; nothing is copied up front), for a file a copy.
Expected<std::string> Builder::WritableView(const Step& step, const RunMount& m, size_t index,
                                            const std::string& source, const std::string& scratch,
                                            std::vector<Mount>* mounts) {
  std::string base = JoinPath(scratch, "rw" + std::to_string(index));
  struct stat st;
  if (::stat(source.c_str(), &st) != 0)
    return Error::FromErrno(Where(step) + ": RUN --mount source \"" + m.source + "\"");
  if (S_ISDIR(st.st_mode)) {
    std::string upper = base + "/upper", work = base + "/work", merged = base + "/merged";
    KILN_TRY(MakeDirs(upper));
    KILN_TRY(MakeDirs(work));
    KILN_TRY(MakeDirs(merged));
    ::chmod(upper.c_str(), st.st_mode & 07777);
    auto mount = Mount::Overlay({source}, upper, work, merged);
    if (!mount)
      return Error(Errc::kSandbox, Where(step) + ": RUN --mount source \"" + m.source +
                                       "\", rw: cannot put a copy-on-write layer over it (" + mount.error().message() +
                                       "); without rw the mount is read-only");
    mounts->push_back(std::move(*mount));
    return merged;
  }
  if (!S_ISREG(st.st_mode))
    return Error(Errc::kInvalidInput, Where(step) + ": RUN --mount source \"" + m.source +
                                          "\", rw: not a directory or regular file");
  KILN_TRY(MakeDirs(base));
  std::string copy = base + "/file";
  KILN_ASSIGN_OR_RETURN(UniqueFd in, OpenFile(source, O_RDONLY | O_NOFOLLOW | O_NONBLOCK));
  UniqueFd out(::open(copy.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777));
  if (!out)
    return Error::FromErrno("create " + copy);
  for (;;) {
    ssize_t n = ::sendfile(out.get(), in.get(), nullptr, size_t(1) << 30);
    if (n == 0)
      break;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return Error::FromErrno(Where(step) + ": copy RUN --mount source \"" + m.source + "\"");
    }
  }
  return copy;
}

Expected<std::string> Builder::FromBindView(const Step& step, const RunMount& m, size_t index,
                                            const std::string& scratch, std::vector<Mount>* mounts) {
  const std::string what = "RUN --mount from=" + (m.from->kind == CopySource::Kind::kStage
                                                       ? StageLabelName(graph_.stages[static_cast<size_t>(m.from->stage)])
                                                       : m.from->image);
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> lowers, SourceLowers(*m.from));
  std::string base = JoinPath(scratch, "from" + std::to_string(index)), root;
  if (m.read_only) {
    root = base + "/ro";
    KILN_TRY(MakeDirs(root));
    auto mount = Mount::ReadOnly(lowers, root);
    if (!mount)
      return std::move(mount).error().WithContext(Where(step) + ": " + what);
    mounts->push_back(std::move(*mount));
  } else {
    // rw: the writes go to a throwaway upper in the step's scratch space,
    // never into the source stage or the step's layer (as BuildKit).
    std::string upper = base + "/upper", work = base + "/work";
    root = base + "/merged";
    KILN_TRY(MakeDirs(upper));
    KILN_TRY(MakeDirs(work));
    KILN_TRY(MakeDirs(root));
    auto mount = Mount::Overlay(lowers, upper, work, root);
    if (!mount)
      return Error(Errc::kSandbox, Where(step) + ": " + what + ", rw: cannot put a copy-on-write layer over it (" +
                                       mount.error().message() + "); without rw the mount is read-only");
    mounts->push_back(std::move(*mount));
  }
  // The source is resolved inside the source's root, symlinks included
  // (docs/security.md I8).
  KILN_ASSIGN_OR_RETURN(UniqueFd root_fd, OpenFile(root, O_RDONLY | O_DIRECTORY));
  auto fd = OpenInRoot(root_fd.get(), m.source.empty() ? "/" : m.source, O_PATH);
  if (!fd)
    return Error(Errc::kNotFound, Where(step) + ": " + what + ": source \"" + m.source + "\": " + fd.error().message());
  char buf[PATH_MAX + 1];
  std::string link = "/proc/self/fd/" + std::to_string(fd->get());
  ssize_t n = ::readlink(link.c_str(), buf, PATH_MAX);
  if (n <= 0)
    return Error::FromErrno(Where(step) + ": " + what + ": resolve source \"" + m.source + "\"");
  std::string host(buf, static_cast<size_t>(n));
  if (host != root && host.rfind(root + "/", 0) != 0)
    return Error(Errc::kInvalidInput, Where(step) + ": " + what + ": source \"" + m.source + "\" resolves outside its root");
  return host;
}

Status Builder::CommitUpper(const std::string& upper, const Step& step, StageState& st, const Digest& key) {
  bool empty = true;
  {
    KILN_ASSIGN_OR_RETURN(UniqueFd probe, OpenFile(upper, O_RDONLY | O_DIRECTORY));
    DIR* d = ::fdopendir(probe.release());
    if (d) {
      while (struct dirent* e = ::readdir(d)) {
        if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) {
          empty = false;
          break;
        }
      }
      ::closedir(d);
    }
  }
  nlohmann::json record;
  GcRoot keep;  // what the record needs through prune (docs/store.md)
  // The time the step ran: a rebuild from the cache keeps it (BuildKit), so
  // that a fully cached build names the same image.
  // The wall-clock time, never the --timestamp/SOURCE_DATE_EPOCH one: the
  // record outlives this build, and a later cached build without a
  // timestamp gives its history the time the layer was really made, as
  // BuildKit's cache does (AddHistory applies the build's timestamp).
  const std::string created = Rfc3339(static_cast<int64_t>(std::time(nullptr)));
  record["created"] = created;
  if (empty) {
    record["empty"] = true;
    AddHistory(step, st, true, created);
  } else {
    KILN_ASSIGN_OR_RETURN(BlobWriter writer, store_.NewBlobWriter());
    layer::PackOptions po;
    po.compression = opts_.compression;
    po.clamp_mtime = opts_.timestamp;
    po.from_overlay_upper = true;
    auto info = layer::PackDirectory(upper, writer.fd(), po);
    if (!info)
      return std::move(info).error().WithContext(Where(step) + ": pack layer");
    std::string media = opts_.docker_format
                            ? std::string(opts_.compression == layer::Compression::kNone ? kMediaTypeDockerLayer
                                                                                          : kMediaTypeDockerLayerGzip)
                            : info->media_type;
    if (opts_.docker_format && opts_.compression == layer::Compression::kZstd)
      media = info->media_type;
    KILN_ASSIGN_OR_RETURN(Descriptor desc, writer.Commit(media));
    // The upperdir is already this layer in overlay form: adopt it as the
    // layer directory instead of unpacking the blob again.
    std::string layer_dir;
    auto adopted = store_.GetOrCreateLayerDir(info->diff_id, [&](const std::string& staging) -> Status {
      if (::rmdir(staging.c_str()) != 0 && errno != ENOENT)
        return Error::FromErrno("rmdir " + staging);
      if (::rename(upper.c_str(), staging.c_str()) != 0)
        return Error::FromErrno("rename " + upper);
      return Ok();
    });
    if (adopted)
      layer_dir = *adopted;
    st.layers.push_back({desc, info->diff_id, layer_dir});
    st.config.diff_ids.push_back(info->diff_id);
    record["layer"] = nlohmann::json::parse(ToJson(desc));
    record["diff_id"] = info->diff_id.str();
    keep.blobs = {desc};
    keep.layers = {info->diff_id};
    AddHistory(step, st, false, created);
  }
  // Records are written even with --no-cache (which only skips the
  // lookup), so that the next build can hit them; not with --layers=false
  // (buildah keeps no intermediate images then).
  if (opts_.write_cache)
    (void)store_.PutCacheRecord(key.hex(), record.dump(), keep);
  return Ok();
}

/// Reads a pipe line by line into progress output until EOF.
void PumpOutput(int fd, Progress& progress, const StepLabel& label, std::string* tail) {
  (void)ReadLines(fd, [&](std::string_view line) {
    progress.Output(label, std::string(line));
    tail->append(line).push_back('\n');
    if (tail->size() > (size_t(1) << 20))
      tail->erase(0, tail->size() - (size_t(1) << 19));
  });
}

Status Builder::RunStepInSandbox(const Stage& stage, const Step& step, const RunStep& run, StageState& st,
                                 const StepLabel& label, const std::string& upper, const std::string& work) {
  (void)stage;
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> lowers, LowerDirs(st));
  SandboxSpec spec;
  spec.lower_dirs = lowers;
  spec.upper_dir = upper;
  spec.work_dir = work;
  spec.volatile_upper = true;  // fresh per step; its layer blob is made durable
  spec.argv = run.argv;
  spec.env = run.env;
  auto has_env = [&](const std::string& k) {
    for (const auto& e : spec.env)
      if (e.compare(0, k.size() + 1, k + "=") == 0)
        return true;
    return false;
  };
  for (const auto& a : run.args)
    if (!has_env(a.substr(0, a.find('='))))
      spec.env.push_back(a);
  for (const auto& p : step.proxy_env)
    spec.env.push_back(p);
  if (!has_env("PATH"))
    spec.env.insert(spec.env.begin(), kDefaultPath);
  spec.cwd = run.workdir.empty() ? "/" : run.workdir;
  // HOME as runc sets it for Docker/BuildKit when neither ENV nor ARG does:
  // the user's passwd entry, "/" without one (so /root for root).
  // The default user is root with the supplementary groups /etc/group
  // gives it, as runc does for BuildKit (`groups=0(root),10(wheel)`).
  const bool need_home = !has_env("HOME");
  {
    KILN_ASSIGN_OR_RETURN(auto passwd, ReadFileFromLayers(lowers, "/etc/passwd"));
    KILN_ASSIGN_OR_RETURN(auto group, ReadFileFromLayers(lowers, "/etc/group"));
    auto user = ResolveUser(run.user.empty() ? "0" : run.user, passwd, group);
    if (!user)
      return std::move(user).error().WithContext(Where(step) + ": USER " + run.user);
    if (!run.user.empty()) {
      KILN_TRY(CheckBuildId(Where(step) + ": USER " + run.user, "uid", user->uid));
      KILN_TRY(CheckBuildId(Where(step) + ": USER " + run.user, "gid", user->gid));
      spec.uid = user->uid;
      spec.gid = user->gid;
      spec.supplementary_gids = user->supplementary_gids;
    } else {
      // Without a USER, a group kiln's user namespace cannot map (a
      // single-id mapping) is left out rather than failing every RUN.
      for (uint32_t g : user->supplementary_gids)
        if (CheckBuildId("", "gid", g))
          spec.supplementary_gids.push_back(g);
    }
    if (need_home)
      spec.env.push_back("HOME=" + user->home);
  }
  NetworkMode net = opts_.network;
  if (run.network == "none")
    net = NetworkMode::kNone;
  else if (run.network == "host")
    net = NetworkMode::kHost;
  // Without a usable helper: loopback only, never the host's network.
  std::string net_warning;
  if (!opts_.attach_network)  // a kiln network needs no helper: never loopback instead
    net = ResolvePrivateNetwork(net, &net_warning);
  if (!net_warning.empty()) {
    static std::once_flag warned;
    std::call_once(warned, [&] { LogWarn("RUN steps: " + net_warning); });
  }
  spec.network = net;
  if (net == NetworkMode::kPrivate) {
    // One network for the whole build (a holder started at the first step
    // with slirp4netns attached once, not 25-50 ms per step); if it cannot
    // be made the step fails, it never falls back to another network.
    auto netns = network_.Path();
    if (!netns)
      return std::move(netns).error().WithContext(Where(step) + ": the build's network");
    spec.join_netns = *netns;
  }
  spec.hostname = opts_.hostname;
  spec.etc_hostname = opts_.hostname + "\n";
  if (!opts_.no_hosts) {  // --no-hosts: the rootfs's own
    spec.etc_hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + opts_.hostname + "\n";
    for (const auto& [host, ip] : opts_.add_hosts)  // --add-host
      *spec.etc_hosts += ip + "\t" + host + "\n";
  }
  spec.capabilities = opts_.run_capabilities;
  spec.rlimits = opts_.run_rlimits;
  spec.shm_size = opts_.shm_size;
  spec.no_new_privileges = opts_.no_new_privileges;
  for (const auto& d : opts_.devices)
    spec.mounts.push_back({SandboxMount::Type::kBind, d, d, false, ""});
  for (const auto& v : opts_.run_volumes)  // -v
    spec.mounts.push_back({SandboxMount::Type::kBind, v.host, v.target, v.read_only, ""});
  if (net == NetworkMode::kNone) {
    spec.etc_resolv_conf = "";
  } else if (net == NetworkMode::kPrivate && opts_.attach_network) {
    spec.etc_resolv_conf = opts_.network_resolv_conf;
  } else if (net == NetworkMode::kPrivate && NetworkHelper() == "slirp4netns") {
    spec.etc_resolv_conf = "nameserver 10.0.2.3\n";
  } else {
    auto host = ReadFile("/etc/resolv.conf", 1 << 20);
    spec.etc_resolv_conf = host ? *host : "";
  }
  if (opts_.dns_none)
    spec.etc_resolv_conf.reset();
  else if (!opts_.dns_servers.empty() || !opts_.dns_search.empty() || !opts_.dns_options.empty())
    spec.etc_resolv_conf = ResolvConfWithFlags(spec.etc_resolv_conf.value_or(""), opts_);
  // Heredoc scripts and other files the step reads: bind-mounted read-only
  // from temp files, so they never land in the layer.
  KILN_ASSIGN_OR_RETURN(std::string files_dir, store_.MakeTempDir("files-"));
  {
    std::lock_guard<std::mutex> lock(temp_mu_);
    temp_dirs_.push_back(files_dir);
  }
  for (size_t i = 0; i < run.files.size(); ++i) {
    std::string host = JoinPath(files_dir, "f" + std::to_string(i));
    KILN_TRY(WriteFileAtomic(host, run.files[i].second, 0755));
    spec.mounts.push_back({SandboxMount::Type::kBind, host, run.files[i].first, true, ""});
  }
  std::string secret_dir;
  int secret_n = 0;
  struct SecretCleanup {
    std::string* dir;
    ~SecretCleanup() {
      if (!dir->empty())
        (void)RemoveAll(*dir);
    }
  } secret_cleanup{&secret_dir};
  std::vector<Mount> rw_mounts;  // overlays behind rw bind mounts, unmounted on return
  std::vector<std::unique_ptr<AgentProxy>> agents;  // ssh mounts' sockets, stopped on return
  // Cache mounts, one directory per id. sharing= (docs/security.md H48): one
  // flock per id, held until the step ends, across threads and kiln
  // processes; taken in the ids' order (no deadlock between two steps that
  // name the same ids in another order). shared: a shared lock (all shared
  // users at once); locked: an exclusive lock, waited for (the step bodies
  // never overlap); private: the cache when nobody else uses it, else an
  // empty throwaway directory (never another step's in-flight writes).
  std::vector<UniqueFd> cache_locks;
  std::map<std::string, std::string> cache_hosts;  // hex(id) -> host directory
  {
    // A new cache directory starts as BuildKit's: mode (0755) and owner
    // uid:gid (0:0) from the first mount naming it.
    struct Want {
      CacheSharing sharing;
      uint32_t mode;
      uint32_t uid, gid;
    };
    std::map<std::string, Want> wanted;  // hex(id) -> strongest sharing, mode, owner
    for (const auto& m : run.mounts) {
      if (m.type != MountType::kCache)
        continue;
      std::string hex = CacheMountKey(m);
      auto [it, fresh] = wanted.emplace(hex, Want{m.sharing, static_cast<uint32_t>(m.mode.value_or(0755)),
                                                  static_cast<uint32_t>(m.uid.value_or(0)),
                                                  static_cast<uint32_t>(m.gid.value_or(0))});
      if (!fresh && (m.sharing == CacheSharing::kLocked ||
                     (m.sharing == CacheSharing::kPrivate && it->second.sharing == CacheSharing::kShared)))
        it->second.sharing = m.sharing;
    }
    auto init_cache_dir = [&](const std::string& dir, const Want& want) -> Status {
      KILN_TRY(CheckBuildId(Where(step) + ": RUN --mount=type=cache", "uid", want.uid));
      KILN_TRY(CheckBuildId(Where(step) + ": RUN --mount=type=cache", "gid", want.gid));
      if (::chown(dir.c_str(), want.uid, want.gid) != 0)
        return Error::FromErrno(Where(step) + ": chown cache mount to " + std::to_string(want.uid) + ":" +
                                std::to_string(want.gid));
      if (::chmod(dir.c_str(), want.mode) != 0)
        return Error::FromErrno(Where(step) + ": chmod cache mount");
      return Ok();
    };
    const bool no_cache = !(opts_.use_cache && st.use_cache);
    for (const auto& [hex, want] : wanted) {
      std::string dir = JoinPath(store_.root(), "cache-mounts/" + hex);
      const bool is_new = ::access(dir.c_str(), F_OK) != 0;
      KILN_TRY(MakeDirs(dir, want.mode));
      if (is_new)
        KILN_TRY(init_cache_dir(dir, want));
      std::string lock_path = dir + ".lock";
      if (no_cache && !is_new && FirstNoCacheUse(hex)) {
        // --no-cache (or --no-cache-filter naming this stage): the build
        // starts the cache empty, as BuildKit gives such a build new cache
        // mounts; what it writes is kept for later builds. Emptied under an
        // exclusive lock, so no other step or kiln process is using it.
        int efd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (efd < 0)
          return Error::FromErrno("open cache lock " + lock_path);
        UniqueFd excl(efd);
        int erc;
        while ((erc = ::flock(excl.get(), LOCK_EX)) != 0 && errno == EINTR) {
        }
        if (erc != 0)
          return Error::FromErrno("lock cache " + lock_path);
        KILN_TRY(RemoveAll(dir));
        KILN_TRY(MakeDirs(dir, want.mode));
        KILN_TRY(init_cache_dir(dir, want));
      }
      int lfd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (lfd < 0)
        return Error::FromErrno("open cache lock " + lock_path);
      UniqueFd lock_fd(lfd);
      int op = want.sharing == CacheSharing::kShared   ? LOCK_SH
               : want.sharing == CacheSharing::kLocked ? LOCK_EX
                                                       : LOCK_EX | LOCK_NB;
      int rc;
      while ((rc = ::flock(lock_fd.get(), op)) != 0 && errno == EINTR) {
      }
      std::string host = dir;
      if (rc != 0) {
        if (want.sharing != CacheSharing::kPrivate || errno != EWOULDBLOCK)
          return Error::FromErrno("lock cache " + lock_path);
        lock_fd.reset();
        KILN_ASSIGN_OR_RETURN(host, store_.MakeTempDir("cache-private-"));
        {
          std::lock_guard<std::mutex> lock(temp_mu_);
          temp_dirs_.push_back(host);
        }
        KILN_TRY(init_cache_dir(host, want));
      }
      if (lock_fd.valid())
        cache_locks.push_back(std::move(lock_fd));
      cache_hosts[hex] = host;
    }
  }
  for (const auto& m : run.mounts) {
    if (m.type == MountType::kTmpfs) {
      spec.mounts.push_back({SandboxMount::Type::kTmpfs, "", m.target, false,
                             m.size ? "size=" + std::to_string(*m.size) : std::string()});
      continue;
    }
    if (m.type == MountType::kBind && m.from &&
        (m.from->kind == CopySource::Kind::kStage || m.from->kind == CopySource::Kind::kImage)) {
      KILN_ASSIGN_OR_RETURN(std::string host, FromBindView(step, m, static_cast<size_t>(&m - run.mounts.data()),
                                                          DirName(upper), &rw_mounts));
      spec.mounts.push_back({SandboxMount::Type::kBind, host, m.target, m.read_only, ""});
      continue;
    }
    if (m.type == MountType::kBind) {
      KILN_ASSIGN_OR_RETURN(std::string ctx_root, BindRoot(m));
      KILN_ASSIGN_OR_RETURN(auto src, BindSource(ctx_root, step, m));
      std::string host = src.first;
      if (!m.read_only) {
        // rw lets the step write there, never into the user's context
        // (docs/security.md H37): as in BuildKit the writes go to a throwaway
        // copy-on-write layer, dropped after the step.
        KILN_ASSIGN_OR_RETURN(host, WritableView(step, m, static_cast<size_t>(&m - run.mounts.data()), src.first,
                                                DirName(upper), &rw_mounts));
      }
      spec.mounts.push_back({SandboxMount::Type::kBind, host, m.target, m.read_only, ""});
      continue;
    }
    if (m.type == MountType::kCache) {
      std::string id = m.id.empty() ? m.target : m.id;
      spec.mounts.push_back({SandboxMount::Type::kBind, cache_hosts.at(CacheMountKey(m)), m.target, false, ""});
      continue;
    }
    if (m.type == MountType::kSecret) {
      // The value goes into a private file on a tmpfs (/dev/shm when it can),
      // bind-mounted read-only; the mount stub is removed after the run, so
      // it is never in the layer. Never logged, never in the key (but
      // --secret-cache-key mixes its HMAC in, InputsFor).
      auto it = opts_.secrets.find(m.id);
      if (it == opts_.secrets.end()) {
        if (m.required)
          return Error(Errc::kInvalidInput, Where(step) + ": secret \"" + m.id +
                                                "\" is required but was not given (kiln build --secret id=" + m.id +
                                                ",src=FILE)");
        continue;
      }
      if (m.target.empty()) {
        // env= without target=: the variable only, no file (BuildKit).
        spec.env.push_back(m.env + "=" + it->second);
        continue;
      }
      if (secret_dir.empty()) {
        char tmpl[] = "/dev/shm/kiln-secrets-XXXXXX";
        if (::mkdtemp(tmpl)) {
          secret_dir = tmpl;
        } else {
          KILN_ASSIGN_OR_RETURN(secret_dir, store_.MakeTempDir("secrets-"));
        }
        ::chmod(secret_dir.c_str(), 0700);
      }
      std::string path = JoinPath(secret_dir, "s" + std::to_string(secret_n++));
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd < 0)
        return Error::FromErrno("create secret file " + path);
      UniqueFd f(fd);
      KILN_TRY(WriteAll(f.get(), it->second));
      uid_t uid = static_cast<uid_t>(m.uid.value_or(0));
      gid_t gid = static_cast<gid_t>(m.gid.value_or(0));
      if (::fchown(f.get(), uid, gid) != 0)
        return Error(Errc::kFailed, Where(step) + ": secret \"" + m.id + "\": chown to " + std::to_string(uid) + ":" +
                                        std::to_string(gid) + ": " + std::strerror(errno));
      if (::fchmod(f.get(), m.mode.value_or(0400)) != 0)
        return Error::FromErrno("chmod " + path);
      spec.mounts.push_back({SandboxMount::Type::kBind, path, m.target, true, ""});
      if (!m.env.empty())
        spec.env.push_back(m.env + "=" + it->second);
      continue;
    }
    if (m.type == MountType::kSsh) {
      // A socket of the step's own (owner uid:gid, default 0:0, mode 0600)
      // forwards to the agent; SSH_AUTH_SOCK points at it.
      auto it = opts_.ssh.find(m.id);
      if (it == opts_.ssh.end()) {
        if (m.required)
          return Error(Errc::kInvalidInput, Where(step) + ": ssh agent \"" + m.id +
                                                "\" is required but was not given (kiln build --ssh " + m.id + ")");
        continue;
      }
      const uint32_t uid = static_cast<uint32_t>(m.uid.value_or(0)), gid = static_cast<uint32_t>(m.gid.value_or(0));
      KILN_TRY(CheckBuildId(Where(step) + ": RUN --mount=type=ssh", "uid", uid));
      KILN_TRY(CheckBuildId(Where(step) + ": RUN --mount=type=ssh", "gid", gid));
      auto agent = AgentProxy::Start(it->second, uid, gid, static_cast<mode_t>(m.mode.value_or(0600)));
      if (!agent)
        return std::move(agent).error().WithContext(Where(step));
      spec.mounts.push_back({SandboxMount::Type::kBind, (*agent)->path(), m.target, false, ""});
      agents.push_back(std::move(*agent));
      std::erase_if(spec.env, [](const std::string& e) { return e.rfind("SSH_AUTH_SOCK=", 0) == 0; });
      spec.env.push_back("SSH_AUTH_SOCK=" + m.target);
      continue;
    }
    return Error(Errc::kUnsupported, Where(step) + ": RUN --mount: this mount type is not supported");
  }

  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0)
    return Error::FromErrno("pipe");
  UniqueFd read_end(pipefd[0]), write_end(pipefd[1]);
  spec.stdout_fd = write_end.get();
  spec.stderr_fd = write_end.get();
  std::string tail;
  std::thread pump([&] { PumpOutput(read_end.get(), progress_, label, &tail); });
  auto result = SandboxOrHost(opts_.sandbox).Run(spec);
  write_end.reset();
  pump.join();
  if (!result)
    return std::move(result).error().WithContext(Where(step) + ": " + step.text);
  if (result->status() != 0) {
    std::string msg = step.text + " (" + Where(step) + ") ";
    if (!result->message.empty())
      msg += "failed: " + result->message + " (exit status " + std::to_string(result->exit_code) + ")";
    else if (result->signal)
      msg += "was killed by signal " + std::to_string(result->signal);
    else
      msg += "exited with status " + std::to_string(result->exit_code);
    if (progress_.mode() == ProgressMode::kQuiet && !tail.empty())
      msg += "\n" + tail;
    return Error(Errc::kFailed, msg);
  }
  return Ok();
}

Status Builder::ExecuteStep(const Stage& stage, const Step& step, StageState& st, const StepLabel& label) {
  size_t index = st.record_steps.size();
  if (step.kind == StepKind::kArg) {
    st.record_steps.push_back(nlohmann::json{{"text", step.text}, {"arg", true}});
    AddHistory(step, st, true);  // "ARG foo=bar", as BuildKit; not in the cache key
    progress_.Config(label, st.key.str());
    return Ok();
  }
  bool layered = step.kind == StepKind::kRun || step.kind == StepKind::kCopy || step.kind == StepKind::kAdd ||
                 step.kind == StepKind::kWorkdir;
  nlohmann::json info = nlohmann::json::object();
  info["text"] = step.text;
  info["parent"] = st.key.str();
  info["op"] = StepCacheJson(step);
  // What goes into the image config must be UTF-8 (the OCI config is JSON):
  // refuse ENV, LABEL, CMD, ... with other bytes rather than change them.
  if (!layered || step.kind == StepKind::kWorkdir) {
    try {
      (void)info["op"].dump();
    } catch (const nlohmann::json::type_error&) {
      std::string word = step.text.substr(0, step.text.find_first_of(" \t"));
      for (char& ch : word)
        if (static_cast<unsigned char>(ch) >= 0x80)
          ch = '?';
      return Error(Errc::kInvalidInput,
                   Where(step) + ": " + word + " holds bytes that are not UTF-8; the image config (JSON) needs UTF-8");
    }
  }
  if (!layered) {
    ApplyConfigStep(step, st);
    AddHistory(step, st, true);
    st.key = StepCacheKey(st.key, step, {});
    info["key"] = st.key.str();
    info["inputs"] = nlohmann::json::array();
    if (opts_.explain_cache)
      (void)Explain(stage, index, st, info);
    st.record_steps.push_back(std::move(info));
    progress_.Config(label, st.key.str());
    return Ok();
  }
  auto start = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> inputs, InputsFor(step, st, &info));
  Digest key = StepCacheKey(st.key, step, inputs);
  info["key"] = key.str();
  info["inputs"] = inputs;
  std::vector<std::string> reasons;
  if (opts_.explain_cache)
    reasons = Explain(stage, index, st, info);
  st.record_steps.push_back(std::move(info));
  if (opts_.use_cache && st.use_cache) {
    auto rec = store_.GetCacheRecord(key.hex());
    if (rec) {
      auto j = nlohmann::json::parse(*rec, nullptr, false);
      bool ok = !j.is_discarded() && j.is_object();
      std::string created = ok && j.contains("created") && j["created"].is_string() ? j["created"].get<std::string>() : "";
      if (created.empty())
        created = Now();
      if (ok && j.value("empty", false)) {
        if (step.kind == StepKind::kWorkdir)
          ApplyConfigStep(step, st);
        AddHistory(step, st, true, created);
        st.key = key;
        if (opts_.explain_cache)
          progress_.Explain(label, true, {});
        progress_.Cached(label, key.str());
        return Ok();
      }
      if (ok && j.contains("layer")) {
        auto desc = ParseDescriptor(j["layer"].dump());
        auto diff = Digest::Parse(j.value("diff_id", ""));
        if (desc && diff && store_.HasBlob(desc->digest)) {
          std::string dir = PathExists(store_.LayerDir(*diff)) ? store_.LayerDir(*diff) : "";
          st.layers.push_back({*desc, *diff, dir});
          st.config.diff_ids.push_back(*diff);
          if (step.kind == StepKind::kWorkdir)
            ApplyConfigStep(step, st);
          AddHistory(step, st, false, created);
          st.key = key;
          if (opts_.explain_cache)
            progress_.Explain(label, true, {});
          progress_.Cached(label, key.str());
          return Ok();
        }
      }
    }
  }
  if (opts_.explain_cache) {
    if (!opts_.use_cache)
      reasons.insert(reasons.begin(), opts_.write_cache ? "--no-cache" : "--layers=false");
    else if (!st.use_cache)
      reasons.insert(reasons.begin(), "--no-cache-filter names this stage");
    progress_.Explain(label, false, reasons);
  }
  progress_.Start(label);
  KILN_ASSIGN_OR_RETURN(std::string scratch, store_.MakeTempDir("step-"));
  std::string upper = JoinPath(scratch, "upper"), work = JoinPath(scratch, "work"),
              merged = JoinPath(scratch, "merged");
  RemoveAllOnExit cleanup(scratch);
  KILN_TRY(MakeDirs(upper));
  KILN_TRY(MakeDirs(work));
  KILN_TRY(MakeDirs(merged));
  ::chmod(upper.c_str(), 0755);

  Status s;
  if (step.kind == StepKind::kRun) {
    s = RunStepInSandbox(stage, step, std::get<RunStep>(step.op), st, label, upper, work);
  } else {
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> lowers, LowerDirs(st));
    auto mount = Mount::Overlay(lowers, upper, work, merged);
    if (!mount)
      return std::move(mount).error().WithContext(Where(step));
    KILN_ASSIGN_OR_RETURN(UniqueFd root, OpenFile(merged, O_RDONLY | O_DIRECTORY));
    if (step.kind == StepKind::kWorkdir) {
      const auto& wd = std::get<WorkdirStep>(step.op);
      std::optional<uint32_t> uid, gid;
      if (!st.config.config.user.empty()) {
        KILN_ASSIGN_OR_RETURN(auto passwd, ReadFileFromLayers(lowers, "/etc/passwd"));
        KILN_ASSIGN_OR_RETURN(auto group, ReadFileFromLayers(lowers, "/etc/group"));
        auto user = ResolveUser(st.config.config.user, passwd, group);
        if (user) {
          uid = user->uid;
          gid = user->gid;
        }
      }
      auto made = MakeDirsInRoot(root.get(), wd.path, 0755, uid, gid);
      s = made ? Ok() : Status(std::move(made).error().WithContext(Where(step) + ": WORKDIR " + wd.path));
    } else {
      s = CopyStep_(step, std::get<CopyStep>(step.op), st, merged);
    }
    root.reset();
    if (auto u = mount->Unmount(); !u && s)
      s = std::move(u);
  }
  if (!s) {
    progress_.Failed(label, s.error().message());
    return s;
  }
  if (step.kind == StepKind::kWorkdir)
    ApplyConfigStep(step, st);
  KILN_TRY(CommitUpper(upper, step, st, key));
  st.key = key;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  progress_.Done(label, key.str(), secs);
  return Ok();
}

Status Builder::CopyStep_(const Step& step, const CopyStep& copy, StageState& st, const std::string& merged) {
  if (copy.sources.size() + copy.heredoc_sources.size() > 1 && (copy.dest.empty() || copy.dest.back() != '/'))
    return Error(Errc::kInvalidInput, Where(step) + ": when using " + std::string(copy.is_add ? "ADD" : "COPY") +
                                          " with more than one source file, the destination must be a "
                                          "directory and end with a /");
  std::vector<Mount> mounts;
  std::string scratch = DirName(merged);
  std::vector<CopyRequest> reqs;
  const CopyStep* local = &copy;
  std::pair<CopyStep, CopyStep> split;
  if (copy.is_add && CopyHasUrlSource(copy)) {
    // ADD URL: the fetched files (mode 0600, mtime from Last-Modified),
    // owned by 0:0 unless --chown, never extracted (Docker's rule), and
    // each git checkout; the local sources of the same ADD after them, as
    // any ADD's.
    split = SplitUrlSources(copy);
    KILN_ASSIGN_OR_RETURN(std::vector<UrlCopy> url_copies, MaterializeUrlSources(step, split.first, scratch));
    for (const UrlCopy& u : url_copies) {
      KILN_ASSIGN_OR_RETURN(CopyRequest r, MakeCopyRequest(split.first, u.root, true));
      r.ignore = nullptr;
      r.sources = u.sources;
      r.unpack_archives = false;
      reqs.push_back(std::move(r));
    }
    local = &split.second;
    if (local->sources.empty() && local->heredoc_sources.empty())
      local = nullptr;
  }
  if (local) {
    reqs.emplace_back();
    KILN_ASSIGN_OR_RETURN(std::string src_root, SourceRootFor(copy.from, &mounts, scratch));
    bool from_context = copy.from.kind == CopySource::Kind::kContext || copy.from.kind == CopySource::Kind::kNamedContext;
    KILN_ASSIGN_OR_RETURN(reqs.back(), MakeCopyRequest(*local, src_root, from_context));
  }
  if (!copy.chown.empty()) {
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> lowers, LowerDirs(st));
    KILN_ASSIGN_OR_RETURN(auto passwd, ReadFileFromLayers(lowers, "/etc/passwd"));
    KILN_ASSIGN_OR_RETURN(auto group, ReadFileFromLayers(lowers, "/etc/group"));
    auto user = ResolveUser(copy.chown, passwd, group);
    if (!user)
      return std::move(user).error().WithContext(Where(step) + ": --chown=" + copy.chown);
    KILN_TRY(CheckBuildId(Where(step) + ": --chown=" + copy.chown, "uid", user->uid));
    KILN_TRY(CheckBuildId(Where(step) + ": --chown=" + copy.chown, "gid", user->gid));
    for (CopyRequest& req : reqs) {
      req.uid = user->uid;
      req.gid = user->gid;
    }
  }
  KILN_ASSIGN_OR_RETURN(UniqueFd root, OpenFile(merged, O_RDONLY | O_DIRECTORY));
  for (const CopyRequest& req : reqs) {
    auto s = CopyIntoRoot(req, root.get(), merged);
    if (!s)
      return std::move(s).error().WithContext(Where(step));
  }
  return Ok();
}

}  // namespace build_internal

}  // namespace kiln::engine
