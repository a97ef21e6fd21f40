// kiln build: parses every flag of `kiln build` (docs/cli.md), finds the
// Containerfile and the ignore file, parses the Containerfile, then either
// prints the graph (--print-graph, compiled once per --platform) or hands a
// BuildRequest to RunBuild().
#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/build_request.h"
#include "cli/cli.h"
#include "engine/build_job.h"
#include "engine/git_source.h"
#include "kiln/acquire.h"
#include "kiln/containerfile.h"
#include "kiln/fs.h"
#include "kiln/isolation.h"
#include "kiln/keyvalue.h"
#include "kiln/layer.h"
#include "kiln/registry.h"
#include "kiln/log.h"
#include "kiln/attest.h"
#include "kiln/network.h"
#include "kiln/secret.h"
#include "kiln/text.h"

namespace kiln::cli {
namespace {

constexpr size_t kMaxContainerfileBytes = size_t(64) << 20;

/// The flags: the ones that need checking or converting as given; every
/// other flag is bound straight to its field of `req` (its engine job).
struct BuildFlags {
  BuildRequest req;
  std::string file;
  std::vector<std::string> build_args;
  std::vector<std::string> platforms;
  bool no_cache = false;
  bool layers = true;
  std::vector<std::string> no_cache_filter;
  std::string pull = "missing";
  int jobs = 0;
  std::vector<std::string> labels;
  std::vector<std::string> env;
  bool identity_label = false;
  std::vector<std::string> annotations;
  std::vector<std::string> secrets;
  std::vector<std::string> ssh;
  std::vector<std::string> allow;
  std::vector<std::string> build_contexts;
  std::vector<std::string> outputs;
  std::string format = "oci";
  std::string compression = "gzip";
  std::vector<std::string> cap_add;
  std::vector<std::string> cap_drop;
  std::vector<std::string> ulimits;
  std::vector<std::string> add_hosts;
  std::string shm_size;
  std::vector<std::string> devices;
  std::vector<std::string> security_opts;
  std::vector<std::string> volumes;
  int retry = -1;
  std::string retry_delay;
  std::vector<std::string> dns;
  std::vector<std::string> dns_search;
  std::vector<std::string> dns_options;
  std::string userns;
  std::string timestamp;
  std::string ignorefile;
  std::string sbom, provenance;  // --sbom[=V], --provenance[=V]; "": not given
  std::string context = ".";
  std::vector<std::string> temp_dirs;  // git contexts' checkouts, removed after the build
  ~BuildFlags() {
    for (const auto& d : temp_dirs)
      (void)RemoveAll(d);
  }
};

Error Usage(std::string msg) { return Error(Errc::kInvalidInput, std::move(msg)); }

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool IsFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

/// The flags that shape RUN steps' sandbox, as podman build takes them
/// (docs/build.md "RUN steps' sandbox"); exit 2 for a value kiln cannot
/// honour, never a silent no-op.
Status FillRunSandbox(const BuildFlags& f, engine::BuildOptions& opts) {
  std::string key;
  // --cap-add/--cap-drop: from Docker's default set; ALL in --cap-drop
  // empties it first, ALL in --cap-add fills it (podman's order).
  if (!f.cap_add.empty() || !f.cap_drop.empty()) {
    uint64_t add = 0, drop = 0;
    bool add_all = false, drop_all = false;
    for (bool adding : {true, false}) {
      for (const std::string& list : adding ? f.cap_add : f.cap_drop)
        for (const std::string& name : SplitList(list)) {
          int cap = CapabilityByName(name);
          if (cap == -1)
            return Usage(std::string(adding ? "--cap-add " : "--cap-drop ") + name + ": unknown capability");
          if (cap == -2)
            (adding ? add_all : drop_all) = true;
          else
            (adding ? add : drop) |= uint64_t(1) << cap;
        }
    }
    if (add & drop)
      return Usage("--cap-add and --cap-drop name the same capability");
    uint64_t caps = drop_all ? 0 : DefaultCapabilityMask();
    if (add_all)
      caps = (uint64_t(1) << (CAP_LAST_CAP + 1)) - 1;
    caps = (caps | add) & ~drop;
    opts.run_capabilities = caps;
    char hex[32];
    std::snprintf(hex, sizeof hex, "%llx", static_cast<unsigned long long>(caps));
    key += std::string("caps=") + hex + ";";
  }
  for (const std::string& u : f.ulimits) {
    // NAME=SOFT[:HARD], -1 or "unlimited" for no limit (podman).
    size_t eq = u.find('=');
    int res = eq == std::string::npos ? -1 : RlimitByName(u.substr(0, eq));
    if (res < 0)
      return Usage("--ulimit " + u + ": want NAME=SOFT[:HARD] with NAME one of core, cpu, data, fsize, locks, "
                   "memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack, as");
    std::string value = u.substr(eq + 1);
    size_t colon = value.find(':');
    auto number = [&](const std::string& text, uint64_t* out) {
      if (text == "-1" || text == "unlimited") {
        *out = RLIM_INFINITY;
        return true;
      }
      if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 19)
        return false;
      *out = std::stoull(text);
      return true;
    };
    SandboxSpec::Rlimit l;
    l.resource = res;
    if (!number(value.substr(0, colon), &l.soft) ||
        !number(colon == std::string::npos ? value.substr(0, colon) : value.substr(colon + 1), &l.hard))
      return Usage("--ulimit " + u + ": limits must be numbers (or -1 for unlimited)");
    if (l.soft > l.hard)
      return Usage("--ulimit " + u + ": the soft limit is above the hard limit");
    opts.run_rlimits.push_back(l);
    key += "ulimit=" + u + ";";
  }
  for (const std::string& h : f.add_hosts) {
    // HOST[;HOST...]:IP (an IPv6 address may be in brackets), as podman.
    size_t colon = h.find(':');
    std::string hosts = colon == std::string::npos ? "" : h.substr(0, colon);
    std::string ip = colon == std::string::npos ? "" : h.substr(colon + 1);
    if (ip.size() > 2 && ip.front() == '[' && ip.back() == ']')
      ip = ip.substr(1, ip.size() - 2);
    unsigned char buf[16];
    if (ip == "host-gateway")
      return Usage("--add-host " + h + ": host-gateway is not known to kiln build (give the address)");
    if (hosts.empty() || (::inet_pton(AF_INET, ip.c_str(), buf) != 1 && ::inet_pton(AF_INET6, ip.c_str(), buf) != 1))
      return Usage("--add-host " + h + ": want HOST:IP");
    for (const std::string& host : SplitList(hosts, ';')) {
      if (host.empty() || host.find_first_of(" \t\n") != std::string::npos)
        return Usage("--add-host " + h + ": bad host name");
      opts.add_hosts.emplace_back(host, ip);
    }
    key += "host=" + h + ";";
  }
  if (!f.shm_size.empty()) {
    // NUMBER[b|k|m|g] (podman; bytes without a unit).
    std::string s = f.shm_size;
    uint64_t mult = 1;
    char unit = static_cast<char>(std::tolower(static_cast<unsigned char>(s.back())));
    if (s.size() > 1 && (unit == 'b' || unit == 'k' || unit == 'm' || unit == 'g')) {
      mult = unit == 'k' ? 1024 : unit == 'm' ? 1024 * 1024 : unit == 'g' ? uint64_t(1) << 30 : 1;
      s.pop_back();
    }
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 12 || std::stoull(s) == 0)
      return Usage("--shm-size " + f.shm_size + ": want a size such as 64m (b, k, m or g)");
    opts.shm_size = std::to_string(std::stoull(s) * mult);
    key += "shm=" + opts.shm_size + ";";
  }
  for (const std::string& d : f.devices) {
    // HOST[:CONTAINER[:PERMS]]: kiln binds the host's node at the same path.
    std::vector<std::string> parts = SplitList(d, ':');
    if (parts.size() > 1 && parts[1] != parts[0] && parts[1].find_first_not_of("rwm") != std::string::npos)
      return Usage("--device " + d + ": kiln build binds a device at its host path only");
    struct stat st;
    if (parts[0].rfind("/dev/", 0) != 0 || ::stat(parts[0].c_str(), &st) != 0 ||
        !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
      return Usage("--device " + d + ": " + parts[0] + " is not a device node under /dev");
    opts.devices.push_back(parts[0]);
    key += "device=" + parts[0] + ";";
  }
  for (const std::string& o : f.security_opts) {
    if (o == "no-new-privileges" || o == "no-new-privileges=true" || o == "no-new-privileges:true") {
      opts.no_new_privileges = true;
      key += "nnp;";
    } else if (o == "no-new-privileges=false" || o == "no-new-privileges:false" || o == "seccomp=unconfined" ||
               o == "apparmor=unconfined" || o == "label=disable" || o == "label=false") {
      // What kiln does anyway: no seccomp filter, AppArmor profile or SELinux label of its own.
    } else {
      return Usage("--security-opt " + o +
                   ": kiln build applies no seccomp, AppArmor or SELinux policy of its own; it takes "
                   "no-new-privileges, seccomp=unconfined, apparmor=unconfined and label=disable");
    }
  }
  // --dns IP... | none, --dns-search, --dns-option (as podman build);
  // --no-hosts. What RUN reads: in the cache key.
  for (const std::string& list : f.dns)
    for (const std::string& d : SplitList(list)) {
      unsigned char buf[16];
      if (d == "none")
        opts.dns_none = true;
      else if (::inet_pton(AF_INET, d.c_str(), buf) == 1 || ::inet_pton(AF_INET6, d.c_str(), buf) == 1)
        opts.dns_servers.push_back(d);
      else
        return Usage("--dns " + d + ": want an IP address or none");
    }
  if (opts.dns_none && !opts.dns_servers.empty())
    return Usage("--dns none cannot be combined with other --dns servers");
  for (const std::string& list : f.dns_search)
    for (const std::string& d : SplitList(list))
      opts.dns_search.push_back(d);
  for (const std::string& o : f.dns_options)
    opts.dns_options.push_back(o);
  for (const auto* part : {&opts.dns_servers, &opts.dns_search, &opts.dns_options})
    for (const std::string& v : *part)
      key += "dns=" + v + ";";
  if (opts.dns_none)
    key += "dns=none;";
  // -v HOST:CTR[:OPTIONS] (podman build's; z/Z accepted: kiln labels nothing).
  for (const std::string& v : f.volumes) {
    std::vector<std::string> parts = SplitList(v, ':');
    engine::BuildOptions::Volume vol;
    bool ok = parts.size() == 2 || parts.size() == 3;
    if (ok && parts.size() == 3)
      for (const std::string& o : SplitList(parts[2])) {
        if (o == "ro")
          vol.read_only = true;
        else if (o != "rw" && o != "z" && o != "Z")
          return Usage("-v " + v + ": option " + o + " is not supported (kiln build takes ro, rw, z, Z)");
      }
    if (!ok || parts[0].empty() || parts[1].empty() || parts[1][0] != '/')
      return Usage("-v " + v + ": want HOST-PATH:/CONTAINER-PATH[:ro]");
    struct stat st;
    if (::stat(parts[0].c_str(), &st) != 0)
      return Usage("-v " + v + ": " + parts[0] + ": " + std::strerror(errno));
    vol.host = engine::AbsolutePath(parts[0]);
    vol.target = parts[1];
    opts.run_volumes.push_back(vol);
    key += "volume=" + vol.host + ":" + vol.target + (vol.read_only ? ":ro;" : ";");
  }
  if (opts.no_hosts && !f.add_hosts.empty())
    return Usage("--no-hosts and --add-host cannot be combined (no /etc/hosts is generated to add to)");
  if (opts.no_hosts)
    key += "nohosts;";
  if (!f.userns.empty() && f.userns != "host")
    return Usage("--userns " + f.userns + ": RUN steps always run in kiln's user namespace (--userns host)");
  opts.run_key = key;
  return Ok();
}

/// A git repository as a build context (`kiln build URL`, `--build-context
/// NAME=URL`; docs/build.md "Git build contexts"): REMOTE#REF checked out (its
/// submodules too) by ADD from git's fetcher into a directory under $TMPDIR
/// (else /var/tmp) removed after the build; SUBDIR of it, which must stay
/// inside the checkout. .git only with --build-arg BUILDKIT_CONTEXT_KEEP_GIT_DIR=1.
Expected<std::string> FetchGitContext(BuildFlags& f, const std::string& url, const std::string& what) {
  engine::GitSource g = engine::ParseGitSource(url);
  engine::GitOptions go;
  go.user_ssh_config = true;  // the user named this repository, not a Containerfile
  for (const std::string& a : f.build_args)
    if (a == "BUILDKIT_CONTEXT_KEEP_GIT_DIR=1" || a == "BUILDKIT_CONTEXT_KEEP_GIT_DIR=true")
      go.keep_git_dir = true;
  for (const std::string& s : f.ssh)  // --ssh default=SOCKET, else the user's agent
    if (s.rfind("default=", 0) == 0)
      go.ssh_auth_sock = s.substr(8, s.find(',') == std::string::npos ? std::string::npos : s.find(',') - 8);
  if (const char* sock = std::getenv("SSH_AUTH_SOCK"); go.ssh_auth_sock.empty() && sock)
    go.ssh_auth_sock = sock;
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = JoinPath(tmp && *tmp ? tmp : "/var/tmp", "kiln-git-context-XXXXXX");
  if (!::mkdtemp(tmpl.data()))
    return Error::FromErrno(what + ": temporary directory " + tmpl);
  f.temp_dirs.push_back(tmpl);
  KILN_ASSIGN_OR_RETURN(std::string commit, engine::ResolveGitRef(g, tmpl, what, go));
  KILN_ASSIGN_OR_RETURN(std::string checkout, engine::CheckoutGitCommit(g, commit, tmpl, what, go));
  if (g.subdir.empty())
    return checkout;
  char* real = ::realpath(JoinPath(checkout, g.subdir).c_str(), nullptr);
  std::string dir = real ? real : "";
  std::free(real);
  char* top = ::realpath(checkout.c_str(), nullptr);
  std::string root = top ? top : checkout;
  std::free(top);
  if (dir.empty() || (dir != root && dir.rfind(root + "/", 0) != 0) || !IsDir(dir))
    return Usage(what + ": " + g.subdir + " is not a directory of the repository at " + commit);
  return dir;
}

/// A tarball as the build context (`kiln build https://host/ctx.tar.gz`, as
/// docker build and podman build): downloaded through the registry client's
/// HTTP stack (TLS, --cert-dir, proxies, retries) and unpacked (every entry
/// inside the directory, owned by the caller) into a directory under
/// $TMPDIR (else /var/tmp), removed after the build.
Expected<std::string> FetchTarContext(BuildFlags& f, const std::string& url) {
  const std::string what = "build context " + url;
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = JoinPath(tmp && *tmp ? tmp : "/var/tmp", "kiln-url-context-XXXXXX");
  if (!::mkdtemp(tmpl.data()))
    return Error::FromErrno(what + ": temporary directory " + tmpl);
  f.temp_dirs.push_back(tmpl);
  UniqueFd tar(::open(tmpl.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!tar)
    return Error::FromErrno(what + ": temporary file in " + tmpl);
  registry::ClientOptions co;
  co.tls_verify = f.req.job.acquire.transfer.tls_verify;
  co.cert_dir = f.req.job.acquire.transfer.cert_dir;
  if (f.retry >= 0)
    co.max_attempts = f.retry + 1;
  if (auto got = registry::FetchUrl(url, {}, tar.get(), co); !got)
    return std::move(got).error().WithContext(what);
  if (::lseek(tar.get(), 0, SEEK_SET) != 0)
    return Error::FromErrno(what);
  std::string dir = JoinPath(tmpl, "context");
  KILN_TRY(MakeDirs(dir));
  layer::UnpackOptions uo;
  uo.preserve_ownership = false;
  auto unpacked = layer::UnpackLayer(tar.get(), dir, uo);
  if (!unpacked)
    return std::move(unpacked).error().WithContext(what + ": not a tar archive that can be unpacked");
  return dir;
}

/// --isolation (buildah's values; else $KILN_ISOLATION, $BUILDAH_ISOLATION):
/// main() already entered kiln's user namespace or, for chroot, did not
/// (EnterUserNamespaceOrChroot). Chroot isolation's RUN steps use the host's
/// network unless --network says otherwise (buildah's chroot has no other);
/// without root there is nothing to isolate with: fail closed (docs/ci.md).
Status CheckIsolation(BuildRequest& r) {
  std::string v = r.isolation, from = "--isolation ";
  for (const char* name : {"KILN_ISOLATION", "BUILDAH_ISOLATION"})
    if (const char* e = std::getenv(name); v.empty() && e && *e)
      v = e, from = std::string("$") + name + "=";
  if (!v.empty() && !ParseIsolation(v))
    return Usage(from + v + ": want oci, rootless or chroot");
  std::string userns_why;
  if (!ChrootIsolation(&userns_why))
    return Ok();
  // Not asked for: say why chroot isolation was the only choice.
  std::string prefix = userns_why == "requested" ? "" : "user namespaces are unavailable (" + userns_why + ") and ";
  if (::geteuid() != 0)
    return Error(Errc::kUnsupported, prefix + "chroot isolation needs root (this is uid " + std::to_string(::geteuid()) +
                                         "): without a user namespace kiln cannot give image files their owners; "
                                         "enable user namespaces or run the job as root (docs/ci.md)");
  // Every layered step (COPY and ADD too) mounts an overlay.
  if (std::string why = ChrootUnavailableReason(); !why.empty())
    return Error(Errc::kUnsupported, prefix + "chroot isolation cannot build here: " + why +
                                         " (enable user namespaces, or give the job CAP_SYS_ADMIN; docs/ci.md)");
  if (!r.network_given)
    r.network = "host";
  return Ok();
}

Status FillRequest(BuildFlags& f) {
  BuildRequest& r = f.req;
  engine::BuildJob& job = r.job;
  engine::BuildOptions& o = job.options;
  const bool git_context = engine::IsGitUrl(f.context);
  if (git_context) {
    KILN_ASSIGN_OR_RETURN(f.context, FetchGitContext(f, f.context, "build context " + f.context));
  } else if (f.context.rfind("https://", 0) == 0 || f.context.rfind("http://", 0) == 0) {
    KILN_ASSIGN_OR_RETURN(f.context, FetchTarContext(f, f.context));
  }
  // Context and Containerfile (docs/cli.md "kiln build": FILE defaults to Containerfile, then
  // Dockerfile, in CONTEXT; -f - reads stdin).
  if (!IsDir(f.context))
    return Usage("build context " + f.context + ": not a directory");
  o.context_dir = engine::AbsolutePath(f.context);
  std::string& containerfile = o.containerfile;
  if (f.file == "-") {
    containerfile = "-";
    r.containerfile_name = "<stdin>";
    KILN_ASSIGN_OR_RETURN(r.containerfile_text, ReadAll(STDIN_FILENO, kMaxContainerfileBytes));
  } else {
    if (f.file.empty()) {
      for (const char* name : {"Containerfile", "Dockerfile", "dockerfile"}) {  // BuildKit also takes "dockerfile"
        std::string p = JoinPath(f.context, name);
        if (IsFile(p)) {
          containerfile = p;
          break;
        }
      }
      if (containerfile.empty())
        return Usage("no Containerfile or Dockerfile in " + f.context + " (use -f FILE)");
    } else if (f.file[0] != '/' && (git_context || !IsFile(f.file)) && IsFile(JoinPath(f.context, f.file))) {
      containerfile = JoinPath(f.context, f.file);  // a git context's -f names a file in it (as docker)
    } else if (IsFile(f.file)) {
      containerfile = f.file;
    } else {
      return Error(Errc::kNotFound, "containerfile " + f.file + ": no such file");
    }
    r.containerfile_name = containerfile;
    if (r.containerfile_name.rfind("./", 0) == 0)
      r.containerfile_name = r.containerfile_name.substr(2);
    if (git_context && containerfile.rfind(f.context + "/", 0) == 0)  // not the checkout's temporary path
      r.containerfile_name = containerfile.substr(f.context.size() + 1);
    KILN_ASSIGN_OR_RETURN(r.containerfile_text, ReadFile(containerfile, kMaxContainerfileBytes));
  }

  // Ignore file: --ignorefile, else <FILE>.containerignore / <FILE>.dockerignore,
  // else .containerignore, else .dockerignore in CONTEXT.
  KILN_ASSIGN_OR_RETURN(auto ignore, engine::LoadContextIgnore(f.context, containerfile, f.ignorefile));
  if (!ignore.patterns.empty()) {
    auto m = frontend::IgnoreMatcher::Create(ignore.patterns);
    if (!m)
      return std::move(m).error().WithContext(ignore.path);
    o.ignore = *m;
  }

  for (const std::string& a : f.build_args) {
    KILN_ASSIGN_OR_RETURN(auto kv, ParseKeyValue(a, "--build-arg"));
    if (a.find('=') == std::string::npos) {
      // podman/docker: a bare name takes its value from the environment.
      const char* v = std::getenv(kv.first.c_str());
      if (!v)
        continue;
      kv.second = v;
    }
    job.compile.build_args[kv.first] = kv.second;
  }

  job.compile.build_platform = Platform::Host();
  for (const std::string& list : f.platforms) {
    for (const std::string& one : SplitList(list)) {
      auto p = Platform::Parse(one);
      if (!p)
        return Usage("--platform " + one + ": " + p.error().message());
      if (std::find(job.platforms.begin(), job.platforms.end(), *p) == job.platforms.end())
        job.platforms.push_back(*p);
    }
  }
  if (r.all_platforms && !job.platforms.empty())
    return Usage("--all-platforms and --platform: give one of them");
  if (job.platforms.empty())
    job.platforms.push_back(job.compile.build_platform);

  o.use_cache = !f.no_cache && f.layers;
  o.write_cache = f.layers;
  for (const std::string& list : f.no_cache_filter)
    for (std::string& one : SplitList(list))
      o.no_cache_filter.push_back(std::move(one));
  KILN_ASSIGN_OR_RETURN(job.acquire.policy, image::ParsePullPolicy(f.pull));
  if (f.jobs < 0)
    return Usage("--jobs " + std::to_string(f.jobs) + ": must be 0 (no cap) or more");
  o.jobs = static_cast<size_t>(f.jobs);
  // --retry N, --retry-delay D: pulls, the remote cache and ADD URL (podman's).
  if (f.retry < -1 || f.retry > 100)
    return Usage("--retry " + std::to_string(f.retry) + ": want 0 to 100");
  for (TransferOptions* t : {&job.acquire.transfer, &job.cache_transfer}) {
    if (f.retry >= 0)
      t->retries = f.retry;
    if (!f.retry_delay.empty()) {
      auto ns = ParseGoDuration(f.retry_delay);
      if (!ns || *ns < 0)
        return Usage("--retry-delay " + f.retry_delay + ": want a duration such as 2s or 500ms");
      t->retry_delay = std::chrono::milliseconds(*ns / 1000000);
    }
  }
  if (f.identity_label)
    o.labels["io.kiln.version"] = KILN_VERSION;
  for (const std::string& l : f.labels) {
    KILN_ASSIGN_OR_RETURN(auto kv, ParseKeyValue(l, "--label"));
    o.labels[kv.first] = kv.second;
  }
  // --env K=V, or K alone: its value in kiln's environment (as buildah).
  for (const std::string& e : f.env) {
    if (e.empty() || e[0] == '=')
      return Usage("--env " + e + ": give NAME=VALUE or NAME");
    if (e.find('=') != std::string::npos) {
      o.env.push_back(e);
    } else if (const char* v = std::getenv(e.c_str())) {
      o.env.push_back(e + "=" + v);
    } else {
      return Usage("--env " + e + ": not set in the environment (give " + e + "=VALUE)");
    }
  }
  for (const std::string& a : f.annotations) {
    KILN_ASSIGN_OR_RETURN(auto kv, ParseKeyValue(a, "--annotation", true));
    o.annotations[kv.first] = kv.second;
  }
  for (const std::string& s : f.secrets) {
    KILN_ASSIGN_OR_RETURN(auto attrs, ParseKeyValueList(s, "--secret"));
    BuildSecret secret;
    for (const auto& [k, v] : attrs) {
      if (k == "id")
        secret.id = v;
      else if (k == "src" || k == "source")
        secret.src = v;
      else if (k == "env")
        secret.env = v;
      else if (k != "type")
        return Usage("--secret " + s + ": unknown key \"" + k + "\" (want id, src or env)");
    }
    if (secret.id.empty())
      secret.id = !secret.src.empty() ? BaseName(secret.src) : secret.env;
    if (secret.id.empty())
      return Usage("--secret " + s + ": needs id= and src= or env=");
    if (secret.src.empty() && secret.env.empty())
      secret.src = secret.id;  // docker: id alone reads the file or env var of that name
    r.secrets.push_back(secret);
  }
  for (const std::string& s : f.ssh) {
    BuildSsh ssh;
    size_t eq = s.find('=');
    ssh.id = s.substr(0, eq);
    if (ssh.id.empty())
      return Usage("--ssh " + s + ": missing id");
    if (eq != std::string::npos)
      ssh.paths = SplitList(s.substr(eq + 1));
    r.ssh.push_back(ssh);
  }
  for (const std::string& a : f.allow) {
    if (a != "network.host")
      return Usage("--allow " + a + ": unknown entitlement (kiln grants only network.host)");
    o.allow_network_host = true;
  }
  for (const std::string& c : f.build_contexts) {
    KILN_ASSIGN_OR_RETURN(auto kv, ParseKeyValue(c, "--build-context", true));
    if (engine::IsGitUrl(kv.second)) {  // checked out, then a directory as any other
      KILN_ASSIGN_OR_RETURN(kv.second, FetchGitContext(f, kv.second, "--build-context " + c));
    }
    if (kv.second.rfind("oci-layout://", 0) == 0) {
      // PATH[:TAG|@DIGEST]: copied into the store by RunBuild.
      std::string path = kv.second.substr(13);
      path = path.substr(0, path.find_first_of(":@"));
      if (!IsFile(JoinPath(path, "index.json")))
        return Usage("--build-context " + c + ": " + path + " is not an OCI layout (no index.json)");
      kv.second = "oci-layout://" + engine::AbsolutePath(path) + kv.second.substr(13 + path.size());
    } else if (kv.second.rfind("https://", 0) == 0 || kv.second.rfind("http://", 0) == 0) {
      // A tarball: downloaded and imported by RunBuild.
    } else if (kv.second.rfind("docker-image://", 0) != 0) {
      if (kv.second.find("://") != std::string::npos)
        return Usage("--build-context " + c + ": kiln takes a directory, docker-image://REF, "
                     "oci-layout://PATH[:TAG|@DIGEST], a git repository (REMOTE.git#REF[:SUBDIR]) "
                     "or an http(s) URL of a tarball");
      if (!IsDir(kv.second))
        return Usage("--build-context " + c + ": " + kv.second + " is not a directory");
      kv.second = engine::AbsolutePath(kv.second);
      // A local named context has its own ignore file, as the main one.
      KILN_ASSIGN_OR_RETURN(auto named_ignore, engine::LoadContextIgnore(kv.second, ""));
      if (!named_ignore.path.empty()) {
        auto m = frontend::IgnoreMatcher::Create(named_ignore.patterns);
        if (!m)
          return std::move(m).error().WithContext("--build-context " + kv.first + ": ignore file");
        o.named_ignores[kv.first] = *m;
      }
      o.named_contexts[kv.first] = kv.second;
    }
    job.compile.build_contexts[kv.first] = kv.second;
  }
  for (const std::string& spec : f.outputs) {
    KILN_ASSIGN_OR_RETURN(auto attrs, ParseKeyValueList(spec, "--output"));
    engine::OutputSpec out{attrs.count("type") ? attrs["type"] : "", attrs.count("dest") ? attrs["dest"] : ""};
    static const char* const kTypes[] = {"oci", "oci-archive", "docker-archive", "local", "tar"};
    if (std::find_if(std::begin(kTypes), std::end(kTypes), [&](const char* t) { return out.type == t; }) ==
        std::end(kTypes))
      return Usage("--output " + spec + ": type must be oci, oci-archive, docker-archive, local or tar");
    if (out.dest.empty())
      return Usage("--output " + spec + ": needs dest=PATH");
    job.outputs.push_back(out);
  }
  o.docker_format = f.format == "docker";
  o.compression = f.compression == "zstd" ? layer::Compression::kZstd : layer::Compression::kGzip;
  if (o.squash && o.squash_all)
    return Usage("--squash and --squash-all: give one of them");
  KILN_TRY(FillRunSandbox(f, o));
  KILN_TRY(CheckIsolation(r));
  // --timestamp, else --build-arg SOURCE_DATE_EPOCH (as BuildKit), else $SOURCE_DATE_EPOCH.
  std::string ts = f.timestamp;
  std::string ts_from = "--timestamp ";
  const auto& build_args = job.compile.build_args;
  if (auto it = build_args.find("SOURCE_DATE_EPOCH"); ts.empty() && it != build_args.end() && !it->second.empty()) {
    ts = it->second;
    ts_from = "--build-arg SOURCE_DATE_EPOCH=";
  }
  if (ts.empty())
    if (const char* e = std::getenv("SOURCE_DATE_EPOCH"); e && *e) {
      ts = e;
      ts_from = "SOURCE_DATE_EPOCH=";
    }
  if (!ts.empty()) {
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(ts.c_str(), &end, 10);
    if (errno != 0 || *end != '\0' || v < 0)
      return Usage(ts_from + ts + ": not a number of seconds since the epoch");
    o.timestamp = v;
  }
  // --sbom, --provenance (docs/supply-chain.md); --sbom-output is bound to the job.
  if (!f.sbom.empty()) {
    KILN_ASSIGN_OR_RETURN(job.attest.sbom, attest::ParseSbomFlag(f.sbom));
  }
  if (!f.provenance.empty()) {
    KILN_ASSIGN_OR_RETURN(job.attest.provenance, attest::ParseProvenanceFlag(f.provenance));
  }
  if (!job.attest.sbom_output.empty())
    job.attest.sbom_output = engine::AbsolutePath(job.attest.sbom_output);
  return Ok();
}

}  // namespace

Status ResolveBuildSecrets(const BuildRequest& r, const std::string& store_root,
                           std::map<std::string, std::string>* secrets, std::map<std::string, std::string>* ssh) {
  constexpr size_t kMaxSecretBytes = size_t(1) << 20;
  for (const BuildSecret& s : r.secrets) {
    std::string what = "--secret id=" + s.id;
    if (!s.env.empty()) {
      const char* v = std::getenv(s.env.c_str());
      if (!v)
        return Usage(what + ": environment variable " + s.env + " is not set");
      (*secrets)[s.id] = v;
      continue;
    }
    // id alone (src defaulted to the id): a file of that name, else the
    // environment variable (docker buildx), else a secret of that name kept
    // in the store (`kiln secret create`; podman's build cannot).
    if (s.src == s.id && !IsFile(s.src)) {
      if (const char* v = std::getenv(s.id.c_str())) {
        (*secrets)[s.id] = v;
        continue;
      }
      if (auto stored = secret::ReadValue(store_root, s.id)) {
        (*secrets)[s.id] = std::move(*stored);
        continue;
      } else if (stored.error().code() != Errc::kNotFound) {
        return Usage(what + ": " + stored.error().message());
      }
      return Usage(what + ": no file " + s.id + ", no environment variable " + s.id + " and no stored secret " +
                   s.id + " (kiln secret create " + s.id + " FILE, or give src= or env=)");
    }
    auto data = ReadFile(s.src, kMaxSecretBytes);
    if (!data)
      return Usage(what + ": " + data.error().message());
    (*secrets)[s.id] = std::move(*data);
  }
  for (const BuildSsh& s : r.ssh) {
    std::string path;
    if (s.paths.empty()) {
      const char* sock = std::getenv("SSH_AUTH_SOCK");
      if (!sock || !*sock)
        return Usage("--ssh " + s.id + ": SSH_AUTH_SOCK is not set (give --ssh " + s.id + "=SOCKET)");
      path = sock;
    } else {
      path = s.paths[0];  // an agent socket; key files are not supported
    }
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode))
      return Usage("--ssh " + s.id + ": " + path + " is not an SSH agent socket");
    (*ssh)[s.id] = engine::AbsolutePath(path);
  }
  return Ok();
}

namespace {

int RunBuildCommand(BuildFlags& flags, Context& ctx) {
  if (auto s = FillRequest(flags); !s)
    return ReportError(s.error());
  BuildRequest& req = flags.req;
  auto parsed = frontend::ParseContainerfile(req.containerfile_text, req.containerfile_name);
  if (!parsed)
    return ReportError(parsed.error());
  for (const frontend::Warning& w : parsed->warnings)
    LogWarn(req.containerfile_name + ":" + std::to_string(w.line) + ": " + w.message);
  req.containerfile = std::move(*parsed);
  if (req.print_graph) {
    // The graphs without base images (their ENV/WORKDIR/USER/ONBUILD are
    // not looked up): nothing is opened or pulled.
    std::vector<BuildGraph> graphs;
    for (const Platform& p : req.job.platforms) {
      auto graph = frontend::Compile(req.containerfile, req.CompileOptionsFor(p));
      if (!graph)
        return ReportError(graph.error());
      if (&p == &req.job.platforms.front())
        for (const std::string& w : graph->warnings)
          LogWarn(w);
      graphs.push_back(std::move(*graph));
    }
    std::string out;
    if (graphs.size() == 1) {
      out = DumpGraph(graphs[0]);
    } else {
      nlohmann::json all = nlohmann::json::array();
      for (const BuildGraph& g : graphs)
        all.push_back(GraphToJson(g));
      out = all.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    return 0;
  }
  // The engine compiles the Containerfile, once per platform, with the
  // store's base images (engine/build_job.h).
  return RunBuild(req, ctx);
}

}  // namespace

void AddBuildCommand(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<BuildFlags>();
  auto* cmd = app.add_subcommand("build", "build an image from a Containerfile");
  // Repeatable options take one value per occurrence (they must not eat CONTEXT).
  cmd->add_option("-f,--file", f->file,
                  "the Containerfile (default: Containerfile, Dockerfile, then dockerfile in CONTEXT); - reads stdin");
  cmd->add_option("-t,--tag", f->req.tags, "name for the image (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--build-arg", f->build_args,
                  "K=V build argument; K alone takes the value from the environment (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--target", f->req.job.compile.target, "build this stage (by name) instead of the last one");
  cmd->add_option("--platform", f->platforms,
                  "target platform(s) os/arch[/variant], comma-separated or repeated (default: this host)")
      ->allow_extra_args(false);
  cmd->add_flag("--all-platforms", f->req.all_platforms,
                "build for every platform that all the base images' manifest lists have (the store's, else "
                "the registry's)");
  cmd->add_flag("--no-cache", f->no_cache,
                "rebuild every step without looking at the cache (the cache is still written for the next build)");
  cmd->add_flag("--layers", f->layers,
                "use and fill the step cache: --layers=false neither looks it up nor writes it (default true)");
  cmd->add_option("--no-cache-filter", f->no_cache_filter,
                  "STAGE (name or 0-based index, comma-separated or repeated): rerun that stage's steps; other "
                  "stages may still hit the cache")
      ->allow_extra_args(false);
  cmd->add_flag("--explain-cache", f->req.job.options.explain_cache,
                "for every step say whether it hit the cache and, on a miss, which input changed since the last "
                "build of that stage (stderr; json events with --progress json)");
  cmd->add_flag("--secret-cache-key", f->req.job.options.secret_cache_key,
                "mix a keyed hash (HMAC-SHA256, per-store key) of each secret a RUN uses into its cache key, so "
                "that a changed secret reruns the step");
  cmd->add_option("--pull", f->pull, "base image pull policy: missing|always|never|newer (default missing)")
      ->check(CLI::IsMember({"missing", "always", "never", "newer"}));
  cmd->add_option("--jobs", f->jobs, "at most N stages run at once (default: every stage that is ready, as BuildKit)");
  cmd->add_option("--label", f->labels, "K=V label added to the image config (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--unsetlabel", f->req.job.options.unset_labels,
                  "label of the base image not to inherit (repeatable; --label still sets it)")
      ->allow_extra_args(false);
  cmd->add_flag("--identity-label", f->identity_label,
                "add the label io.kiln.version (default false: kiln adds no label of its own)");
  cmd->add_option("--env", f->env, "K=V (or K: its value here) set in the image's Env, not seen by RUN (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--unsetenv", f->req.job.options.unset_env, "variable removed from the image's Env (repeatable)")
      ->allow_extra_args(false);
  cmd->add_flag("--omit-history", f->req.job.options.omit_history, "write the image without history entries");
  cmd->add_option("--annotation", f->annotations, "K=V annotation added to the manifest (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--secret", f->secrets,
                  "id=ID,src=FILE or id=ID,env=VAR: a secret for RUN --mount=type=secret (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--ssh", f->ssh,
                  "default or ID=SOCKET: an SSH agent for RUN --mount=type=ssh (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--network", f->req.network,
                  "network for RUN steps: private|none|host, or NAME: a kiln network (its containers by name; "
                  "docs/network.md) (default private)")
      ->check([](const std::string& v) -> std::string {
        if (v == "private" || v == "none" || v == "host" || network::ValidNetworkName(v))
          return "";
        return "--network " + v + ": want private, none, host or the name of a kiln network";
      })
      ->each([f](const std::string&) { f->req.network_given = true; });
  cmd->add_option("--isolation", f->req.isolation,
                  "oci|rootless: RUN steps in kiln's sandbox in its user namespace (the default); chroot: without "
                  "a user namespace, host network (chosen with a notice when user namespaces are unavailable; "
                  "$KILN_ISOLATION, $BUILDAH_ISOLATION; docs/ci.md)");
  cmd->add_option("--allow", f->allow,
                  "network.host: let RUN --network=host use the host's network (repeatable; BuildKit's entitlement)")
      ->allow_extra_args(false);
  cmd->add_option("--build-context", f->build_contexts,
                  "NAME=DIR|docker-image://REF|oci-layout://PATH[:TAG|@DIGEST]|https://URL of a tarball: an extra context for FROM/COPY --from (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--output,-o", f->outputs,
                  "type=oci|oci-archive|docker-archive|local|tar,dest=PATH: also write the result there")
      ->allow_extra_args(false);
  cmd->add_option("--iidfile", f->req.iidfile, "write the image ID to this file");
  cmd->add_option("--manifest", f->req.manifest,
                  "add the image (each platform's) to this manifest list, created when missing");
  cmd->add_option("--format", f->format, "image format: oci|docker (default oci)")
      ->check(CLI::IsMember({"oci", "docker"}));
  cmd->add_option("--compression", f->compression, "layer compression: gzip|zstd (default gzip)")
      ->check(CLI::IsMember({"gzip", "zstd"}));
  cmd->add_flag("--squash", f->req.job.options.squash, "squash the layers this build made into one (the base image's stay)");
  cmd->add_flag("--squash-all", f->req.job.options.squash_all, "squash every layer, the base image's too, into one");
  cmd->add_option("--cap-add", f->cap_add,
                  "capability RUN steps get besides Docker's default set (NAME or ALL; comma-separated or repeated)")
      ->allow_extra_args(false);
  cmd->add_option("--cap-drop", f->cap_drop,
                  "capability RUN steps lose (NAME or ALL; comma-separated or repeated)")
      ->allow_extra_args(false);
  cmd->add_option("--ulimit", f->ulimits, "NAME=SOFT[:HARD] resource limit of RUN steps, e.g. nofile=1024:2048 (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--add-host", f->add_hosts, "HOST:IP line added to RUN steps' /etc/hosts (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--shm-size", f->shm_size, "size of RUN steps' /dev/shm, e.g. 128m (default 64m)");
  cmd->add_option("--device", f->devices, "host device node RUN steps get at the same path (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--security-opt", f->security_opts,
                  "no-new-privileges for RUN steps; seccomp=unconfined, apparmor=unconfined and label=disable are "
                  "what kiln does anyway (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("-v,--volume", f->volumes,
                  "HOST:/PATH[:ro] bind-mounted into every RUN step, writes reach the host (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--retry", f->retry, "attempts after the first of a pull or ADD download that failed transiently (default 4)");
  cmd->add_option("--retry-delay", f->retry_delay,
                  "wait before the first retry, doubling after (Go duration, default 500ms)");
  cmd->add_flag("--no-hosts", f->req.job.options.no_hosts,
                "RUN steps keep the image's /etc/hosts (no generated one; --add-host then has no effect)");
  cmd->add_option("--dns", f->dns, "nameserver of RUN steps' /etc/resolv.conf, or none: the image's own (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--dns-search", f->dns_search, "search domain of RUN steps' /etc/resolv.conf (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--dns-option", f->dns_options, "options entry of RUN steps' /etc/resolv.conf (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--userns", f->userns, "host: RUN steps run in kiln's user namespace (the only mode)");
  cmd->add_option("--timestamp", f->timestamp,
                  "seconds since the epoch for every timestamp (default: --build-arg SOURCE_DATE_EPOCH, then "
                  "$SOURCE_DATE_EPOCH): reproducible builds");
  cmd->add_option("--cache-from", f->req.job.cache_from, "registry repository to import cache records from (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--cache-to", f->req.job.cache_to, "registry repository to export cache records to");
  cmd->add_option("--ignorefile", f->ignorefile,
                  "ignore file (default <FILE>.containerignore, <FILE>.dockerignore, then .containerignore, "
                  ".dockerignore in CONTEXT; one in CONTEXT may not be a link out of it)");
  cmd->add_flag("--tls-verify", f->req.job.acquire.transfer.tls_verify, "verify registry TLS certificates: --tls-verify=false to skip");
  cmd->add_option("--authfile", f->req.job.acquire.transfer.authfile, "registry credentials file (default: podman/docker auth files)");
  cmd->add_option("--cert-dir", f->req.job.acquire.transfer.cert_dir,
                  "CA certificates (*.crt) for registries and ADD URL (default /etc/containers/certs.d/HOST:PORT)");
  cmd->add_flag("-q,--quiet", f->req.quiet, "print only the image ID");
  cmd->add_option("--progress", f->req.progress,
                  "build output on stderr: auto|tty|plain|json|quiet (default $BUILDKIT_PROGRESS, else auto: the "
                  "live view when stderr is a terminal, else plain podman-style lines; docs/build.md)")
      ->check(CLI::IsMember({"auto", "plain", "tty", "json", "quiet"}));
  cmd->add_flag("--sbom{true}", f->sbom,
                "attach an SPDX 2.3 SBOM made by kiln from the image's package databases (dpkg, apk, Python, npm, "
                "Go), as BuildKit attaches it (docs/supply-chain.md); --sbom=false: none (default)");
  cmd->add_option("--sbom-output", f->req.job.attest.sbom_output,
                  "also write the SPDX SBOM to FILE (alone: only the file, nothing attached)")
      ->type_name("FILE");
  cmd->add_flag("--provenance{true}", f->provenance,
                "attach SLSA v1 provenance: min (bare --provenance) or max, also as mode=min|max[,version=v1]; "
                "build-arg values are in it (default: none)");
  cmd->add_flag("--print-graph", f->req.print_graph,
                "print the compiled build graph as JSON and exit without building");
  cmd->add_option("CONTEXT", f->context,
                  "build context directory (default .), a git repository (REMOTE.git[#REF[:SUBDIR]], "
                  "git@HOST:REPO.git[#...]) or the http(s) URL of a tarball");
  SetAction(cmd, ctx, [f, &ctx] { return RunBuildCommand(*f, ctx); }, kNotFoundFails);
}

}  // namespace kiln::cli
