// farm build: ssh processes to the nodes, one thread per platform, then the
// index pushed from here. Each node step is one `ssh NODE sh -c SCRIPT`.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "kiln/cancel.h"
#include "kiln/farm.h"
#include "kiln/fs.h"
#include "kiln/io.h"
#include "kiln/oci.h"
#include "kiln/process.h"
#include "kiln/reference.h"
#include "kiln/registry.h"
#include "kiln/text.h"
#include "internal.h"

namespace kiln::farm {

namespace internal {

/// Runs `argv`; stdin from `stdin_fd` (-1: a pipe held open until it ends:
/// when this process dies, the node's script sees end of input and stops
/// its build), stdout collected, stderr lines passed to `on_err`.
/// `*pid_out` is set while it runs (so another thread can stop it).
Expected<Output> RunCapture(const std::vector<std::string>& argv, int stdin_fd,
                            const std::function<void(const std::string&)>& on_err,
                            std::atomic<pid_t>* pid_out) {
  CaptureOptions co;
  co.stdin_fd = stdin_fd;
  co.hold_stdin = true;
  co.max_out = size_t(1) << 20;
  co.pid_out = pid_out;
  if (on_err)
    co.on_err_line = [&](std::string_view line) { on_err(std::string(line)); };
  KILN_ASSIGN_OR_RETURN(CapturedRun run, RunCaptured(argv, co));
  Output result;
  result.status = run.status;
  result.out = std::move(run.out);
  std::vector<std::string_view> tail = SplitLines(run.err);
  if (tail.size() > 5)
    tail.erase(tail.begin(), tail.end() - 5);
  // The node's own error line when there is one, else its last lines.
  for (std::string_view l : tail)
    if (l.rfind("kiln: error: ", 0) == 0)
      result.err_tail = std::string(l.substr(13));
  if (result.err_tail.empty())
    for (std::string_view l : tail)
      result.err_tail += (result.err_tail.empty() ? "" : " | ") + std::string(l);
  return result;
}

std::string Describe(const Output& o) {
  std::string why = WIFEXITED(o.status) ? "exit " + std::to_string(WEXITSTATUS(o.status))
                    : WIFSIGNALED(o.status) ? "killed by signal " + std::to_string(WTERMSIG(o.status))
                                            : "failed";
  if (WIFEXITED(o.status) && WEXITSTATUS(o.status) == 255)
    why += " (ssh could not connect or log in)";
  return o.err_tail.empty() ? why : why + ": " + o.err_tail;
}

bool Succeeded(const Output& o) { return WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0; }

Expected<Target> CheckRequest(const Farm& farm, const BuildRequest& req) {
  Target t;
  KILN_ASSIGN_OR_RETURN(t.ref, ImageReference::Parse(req.image));
  const ImageReference& ref = t.ref;
  if (ref.digest.valid())
    return Error(Errc::kInvalidInput, "farm build -t " + req.image + ": give a tag, not a digest");
  if (ref.domain == "localhost" && ref.implicit_domain)
    return Error(Errc::kInvalidInput, "farm build -t " + req.image +
                                          ": the nodes push to a registry; name one (REGISTRY/NAME[:TAG])");
  std::string containerfile = req.containerfile;
  if (containerfile.empty()) {
    for (const char* n : {"Containerfile", "Dockerfile", "dockerfile"})
      if (PathExists(JoinPath(req.context_dir, n))) {
        containerfile = n;
        break;
      }
    if (containerfile.empty())
      return Error(Errc::kNotFound, "farm build: no Containerfile or Dockerfile in " + req.context_dir);
  }
  if (containerfile.front() == '/' || containerfile.find("..") != std::string::npos)
    return Error(Errc::kInvalidInput, "farm build -f " + containerfile +
                                          ": the Containerfile must be inside the context (a relative path)");
  if (!PathExists(JoinPath(req.context_dir, containerfile)))
    return Error(Errc::kNotFound, "farm build: " + JoinPath(req.context_dir, containerfile) + " does not exist");
  (void)farm;
  t.containerfile = containerfile;
  return t;
}

Expected<BuildResult> PushIndex(const Farm& farm, const BuildRequest& req, const ImageReference& ref,
                                const std::vector<Reported>& reported) {
  KILN_TRY(CheckCancelled());
  std::string repo = ref.domain + "/" + ref.path;
  registry::ClientOptions copts;
  copts.tls_verify = req.tls_verify;
  copts.cert_dir = req.cert_dir;
  copts.authfile = req.authfile;
  KILN_ASSIGN_OR_RETURN(auto client, registry::RegistryClient::Create(ref.domain, copts));
  BuildResult result;
  for (const auto& r : reported) {
    KILN_ASSIGN_OR_RETURN(auto head, client->HeadManifest(ref.path, r.digest.str()));
    if (!head)
      return Error(Errc::kNotFound, "farm build: " + repo + "@" + r.digest.str() + " (" + r.platform +
                                        ", reported by " + r.where + ") is not in the registry; no index pushed");
    if (!IsManifestMediaType(head->media_type))
      return Error(Errc::kCorrupt, "farm build: " + repo + "@" + r.digest.str() + " is a " + head->media_type +
                                       ", not an image manifest; no index pushed");
    result.images.push_back({r.platform, head->media_type, r.digest, head->size});
    result.nodes.push_back(r.where);
  }
  std::string body = IndexJson(result.images);
  std::string tag = ref.tag.empty() ? "latest" : ref.tag;
  KILN_ASSIGN_OR_RETURN(result.index, client->PutManifest(ref.path, tag, kMediaTypeOciIndex, body));
  if (req.log)
    req.log("farm " + farm.name + ": pushed the index " + repo + ":" + tag + "@" + result.index.str());
  return result;
}

}  // namespace internal

namespace {

using internal::Describe;
using internal::Output;
using internal::RunCapture;
using internal::Succeeded;

/// Where a node keeps contexts: under its user's cache directory.
constexpr const char* kNodeDirs =
    "d=\"${XDG_CACHE_HOME:-$HOME/.cache}/kiln-farm/contexts\"; ";

/// The context as one tarball in a temporary file (GNU tar, names sorted,
/// owners zeroed), and its digest.
struct Tarball {
  UniqueFd fd;
  Digest digest;
  int64_t size = 0;
};

Expected<Tarball> PackContext(const std::string& dir) {
  const char* tmp = std::getenv("TMPDIR");
  std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/kiln-farm-ctx.XXXXXX";
  int raw = mkstemp(path.data());
  if (raw < 0)
    return Error::FromErrno("farm build: temporary file " + path);
  UniqueFd fd(raw);
  unlink(path.c_str());
  SpawnOptions so;
  so.fds = {{fd.get(), 1}};
  KILN_ASSIGN_OR_RETURN(pid_t pid, SpawnArgv({"tar", "--sort=name", "--owner=0", "--group=0", "--numeric-owner",
                                              "--format=posix",
                                              "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
                                              "-cf", "-", "-C", dir, "."},
                                             so));
  int st = WaitChild(pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return Error(Errc::kIo, "farm build: tar of the context " + dir + " failed");
  Tarball t;
  Sha256 h;
  if (lseek(fd.get(), 0, SEEK_SET) < 0)
    return Error::FromErrno("farm build: context tarball");
  KILN_TRY(ReadChunks(fd.get(), 1 << 20, [&](std::string_view data) {
    h.Update(data);
    t.size += static_cast<int64_t>(data.size());
    return Ok();
  }));
  t.digest = h.Finish();
  t.fd = std::move(fd);
  return t;
}

/// One platform's job on its node.
struct Job {
  Assignment assignment;
  std::string name;  ///< JobName()
  std::atomic<pid_t> pid{0};
  Status status;
  Digest digest;
};

}  // namespace

Expected<BuildResult> Build(const Farm& farm, const BuildRequest& req) {
  auto log = [&](const std::string& line) {
    if (req.log)
      req.log(line);
  };
  if (farm.driver == "kubernetes")
    return internal::BuildKube(farm, req);
  if (farm.nodes.empty())
    return Error(Errc::kInvalidInput, "farm " + farm.name + " has no nodes (kiln farm update --add NODE " +
                                          farm.name + ")");
  if (req.dry_run)
    return Error(Errc::kInvalidInput, "farm build --dry-run: farm " + farm.name +
                                          " has SSH nodes; --dry-run prints a Kubernetes farm's objects");
  KILN_ASSIGN_OR_RETURN(internal::Target target, internal::CheckRequest(farm, req));
  const ImageReference& ref = target.ref;
  const std::string& containerfile = target.containerfile;

  // 1. What every node builds (in parallel).
  std::vector<NodeInfo> infos(farm.nodes.size());
  std::vector<Status> info_status(farm.nodes.size());
  {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < farm.nodes.size(); ++i)
      threads.emplace_back([&, i] {
        const Node& n = farm.nodes[i];
        auto o = RunCapture(SshArgv(n, ShellQuote(n.kiln) + " info --format json"), -1, {}, nullptr);
        if (!o) {
          info_status[i] = o.error();
        } else if (!Succeeded(*o)) {
          info_status[i] = Error(Errc::kNetwork, "node " + n.url + ": kiln info: " + Describe(*o));
        } else if (auto info = ParseNodeInfo(o->out); !info) {
          info_status[i] = Error(info.error().code(), "node " + n.url + ": " + info.error().message());
        } else {
          infos[i] = std::move(*info);
        }
      });
    for (auto& t : threads)
      t.join();
  }
  for (const auto& s : info_status)
    if (!s)
      return s.error();

  std::vector<std::string> platforms = req.platforms;
  if (platforms.empty())
    for (const auto& info : infos)
      for (const auto& p : info.native)
        if (std::find(platforms.begin(), platforms.end(), p) == platforms.end())
          platforms.push_back(p);
  std::vector<std::string> names;
  for (const auto& n : farm.nodes)
    names.push_back(n.url);
  KILN_ASSIGN_OR_RETURN(auto plan, Schedule(platforms, infos, names));

  // 2. The context, content-addressed.
  KILN_ASSIGN_OR_RETURN(Tarball tarball, PackContext(req.context_dir));
  log("farm " + farm.name + ": context " + tarball.digest.str() + " (" + std::to_string(tarball.size) + " bytes)");

  std::vector<std::unique_ptr<Job>> jobs;
  for (const auto& a : plan) {
    auto job = std::make_unique<Job>();
    job->assignment = a;
    job->name = JobName({tarball.digest, containerfile, a.platform, ref.str(), req.build_args, req.cache_from,
                         req.cache_to});
    log("farm " + farm.name + ": " + a.platform + " -> " + farm.nodes[a.node].url +
        (a.native ? "" : " (emulated)") + ", job " + job->name);
    jobs.push_back(std::move(job));
  }

  // 3. Each node: receive the context once (one upload per node even when
  // it builds two platforms), build, push by digest.
  std::mutex upload_mu;
  std::map<size_t, std::shared_ptr<std::mutex>> node_mu;
  for (const auto& j : jobs)
    node_mu.emplace(j->assignment.node, std::make_shared<std::mutex>());
  std::atomic<bool> failed{false};
  std::mutex log_mu;
  auto stop_others = [&] {
    if (failed.exchange(true))
      return;
    for (auto& j : jobs)
      if (pid_t p = j->pid.load(); p > 0)
        kill(p, SIGTERM);
  };
  std::string ctx_hex = tarball.digest.hex();
  std::string ctx_dir_sh = kNodeDirs + std::string("c=\"$d/") + ctx_hex + "\"; ";
  std::string repo = ref.domain + "/" + ref.path;

  auto run_job = [&](Job& job) -> Status {
    const Node& node = farm.nodes[job.assignment.node];
    std::string prefix = "[" + job.assignment.platform + "@" + node.url + "] ";
    auto on_err = [&](const std::string& line) {
      std::lock_guard<std::mutex> g(log_mu);
      log(prefix + line);
    };
    {
      std::lock_guard<std::mutex> g(*node_mu[job.assignment.node]);
      if (failed)
        return Error(Errc::kCancelled, "cancelled");
      auto have = RunCapture(SshArgv(node, "sh -c " + ShellQuote(ctx_dir_sh + "test -d \"$c\" && echo present || "
                                                                                "echo absent")),
                             -1, on_err, &job.pid);
      if (!have)
        return have.error();
      if (!Succeeded(*have))
        return Error(Errc::kNetwork, "node " + node.url + ": " + Describe(*have));
      if (have->out.find("present") == std::string::npos) {
        on_err("sending the context (" + std::to_string(tarball.size) + " bytes)");
        UniqueFd in;
        {
          std::lock_guard<std::mutex> g2(upload_mu);  // one reader of the shared tarball fd at a time
          int dup_fd = open(("/proc/self/fd/" + std::to_string(tarball.fd.get())).c_str(), O_RDONLY | O_CLOEXEC);
          if (dup_fd < 0)
            return Error::FromErrno("farm build: reopen the context tarball");
          in = UniqueFd(dup_fd);
        }
        std::string script = ctx_dir_sh +
                             "set -e; mkdir -p \"$d\"; t=$(mktemp -d \"$d/.in.XXXXXX\"); "
                             "tar -x --no-same-owner -C \"$t\" -f -; "
                             "mv -T \"$t\" \"$c\" 2>/dev/null || rm -rf \"$t\"";
        auto up = RunCapture(SshArgv(node, "sh -c " + ShellQuote(script)), in.get(), on_err, &job.pid);
        if (!up)
          return up.error();
        if (!Succeeded(*up))
          return Error(Errc::kNetwork, "node " + node.url + ": sending the context: " + Describe(*up));
      }
    }
    if (failed)
      return Error(Errc::kCancelled, "cancelled");
    // The build, as a process group the watcher stops when this kiln goes
    // away or stops it (end of input on fd 3, which ssh forwards).
    std::string k = ShellQuote(node.kiln);
    std::string tag = ShellQuote("localhost/" + job.name + ":latest");
    std::string tls = req.tls_verify ? "" : " --tls-verify=false";
    std::string build = k + " build --platform " + ShellQuote(job.assignment.platform) + " -f " +
                        ShellQuote(containerfile) + tls;
    if (!req.progress.empty())
      build += " --progress " + ShellQuote(req.progress);
    for (const auto& a : req.build_args)
      build += " --build-arg " + ShellQuote(a);
    for (const auto& c : req.cache_from)
      build += " --cache-from " + ShellQuote(PlatformCacheRef(c, job.assignment.platform));
    if (!req.cache_to.empty())
      build += " --cache-to " + ShellQuote(PlatformCacheRef(req.cache_to, job.assignment.platform));
    build += " -t " + tag + " \"$c\" >&2";
    std::string work = "set -e; " + build + "; " + "dig=$(" + k + " images --no-trunc --filter reference=" + tag +
                       " --format '{{.Digest}}' | head -n1); " + "test -n \"$dig\"; " +
                       // Up to three tries: a registry may refuse a manifest while another node is
                       // committing a blob they share (docker-registry: MANIFEST_BLOB_UNKNOWN).
                       "for i in 1 2 3; do " + k + " push -q" + tls + " " + tag + " " +
                       ShellQuote("docker://" + repo) + "@\"$dig\" >&2 && break; " +
                       "[ $i = 3 ] && exit 1; echo \"push failed, retrying\" >&2; sleep $i; done; " +
                       "echo \"kiln-farm-result $dig\"";
    // setsid: the work is a process group of its own (dash has no job
    // control without a tty), which the watcher stops as a whole.
    std::string script = ctx_dir_sh + "export c; exec 3<&0; setsid sh -c " + ShellQuote(work) +
                         " </dev/null & w=$!; { cat <&3 >/dev/null; kill -TERM -$w; } >/dev/null 2>&1 & "
                         "wait $w; rc=$?; exit $rc";
    auto o = RunCapture(SshArgv(node, "sh -c " + ShellQuote(script)), -1, on_err, &job.pid);
    if (!o)
      return o.error();
    if (failed && !Succeeded(*o))
      return Error(Errc::kCancelled, "cancelled");
    if (!Succeeded(*o))
      return Error(Errc::kFailed, "node " + node.url + " (" + job.assignment.platform + "): " + Describe(*o));
    auto pos = o->out.rfind("kiln-farm-result ");
    if (pos == std::string::npos)
      return Error(Errc::kCorrupt, "node " + node.url + " (" + job.assignment.platform +
                                       "): no result line; output: " + o->out.substr(0, 200));
    std::string d = o->out.substr(pos + 17);
    d = d.substr(0, d.find('\n'));
    KILN_ASSIGN_OR_RETURN(job.digest, Digest::Parse(d));
    return Ok();
  };
  {
    std::vector<std::thread> threads;
    for (auto& j : jobs)
      threads.emplace_back([&, job = j.get()] {
        job->status = run_job(*job);
        if (!job->status)
          stop_others();
      });
    for (auto& t : threads)
      t.join();
  }
  for (const auto& j : jobs)
    if (!j->status && j->status.error().code() != Errc::kCancelled)
      return Error(j->status.error().code(), "farm build: " + j->status.error().message() + "; no index pushed");
  for (const auto& j : jobs)
    if (!j->status)
      return Error(Errc::kCancelled, "farm build cancelled; no index pushed");
  KILN_TRY(CheckCancelled());

  // 4. The index, from what the nodes reported.
  std::vector<internal::Reported> reported;
  for (const auto& j : jobs)
    reported.push_back({j->assignment.platform, j->digest, farm.nodes[j->assignment.node].url});
  return internal::PushIndex(farm, req, ref, reported);
}

}  // namespace kiln::farm
