// The Kubernetes driver of `kiln farm build` (docs/farm.md "Kubernetes
// driver"): a ConfigMap with the context, a Job per platform, applied and
// watched with kubectl; the index is pushed from here as the SSH driver's.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include <nlohmann/json.hpp>

#include "internal.h"
#include "kiln/cancel.h"
#include "kiln/farm.h"
#include "kiln/fs.h"
#include "kiln/io.h"
#include "kiln/text.h"

namespace kiln::farm {

using nlohmann::json;

namespace {

constexpr const char* kManagedBy = "app.kubernetes.io/managed-by";
constexpr const char* kStore = "/var/lib/kiln";
constexpr const char* kContextMount = "/kiln-farm";
constexpr const char* kContextDir = "/kiln-farm/context";  // items' paths start with "context/"
constexpr const char* kAuthMount = "/kiln-farm-auth";      // the registry Secret, config.json

/// RFC 4648 base64 for binaryData: the bits of each byte shifted into an
/// accumulator, six at a time out.
std::string ToBase64(std::string_view bytes) {
  static constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    for (bits += 8; bits >= 6; bits -= 6)
      out += kAlphabet[(acc >> (bits - 6)) & 63];
  }
  if (bits > 0)
    out += kAlphabet[(acc << (6 - bits)) & 63];
  while (out.size() % 4)
    out += '=';
  return out;
}

std::string Stripped(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return std::string(s);
}

struct ContextFile {
  std::string path;  ///< relative to the context
  int mode = 0644;
  std::string data;
};

/// Every regular file under `dir` (sorted), refusing what a ConfigMap
/// volume cannot recreate.
Status CollectContext(const std::string& dir, const std::string& rel, std::vector<ContextFile>& out,
                      int64_t& total) {
  KILN_ASSIGN_OR_RETURN(auto names, ListDirSorted(JoinPath(dir, rel)));
  for (const auto& name : names) {
    std::string r = rel.empty() ? name : rel + "/" + name;
    std::string full = JoinPath(dir, r);
    struct stat st;
    if (lstat(full.c_str(), &st) != 0)
      return Error::FromErrno("farm build: " + full);
    if (S_ISDIR(st.st_mode)) {
      KILN_TRY(CollectContext(dir, r, out, total));
    } else if (S_ISREG(st.st_mode)) {
      total += st.st_size;
      if (total > kMaxKubeContext)
        return Error(Errc::kInvalidInput, "farm build: the context " + dir + " has more than " +
                                              std::to_string(kMaxKubeContext) +
                                              " bytes of files; a Kubernetes farm sends it in one ConfigMap "
                                              "(at most 1 MiB): build from a smaller context");
      ContextFile f;
      f.path = r;
      f.mode = static_cast<int>(st.st_mode & 0777);
      KILN_ASSIGN_OR_RETURN(f.data, ReadFile(full, static_cast<size_t>(kMaxKubeContext)));
      out.push_back(std::move(f));
    } else {
      return Error(Errc::kInvalidInput, "farm build: " + full + " is " +
                                            (S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file") +
                                            "; a Kubernetes farm's context carries regular files and "
                                            "directories only");
    }
  }
  return Ok();
}

json SecurityContext() {
  // As docs/ci.md's Job (tests/ci/nested.sh): kiln nests user namespaces
  // inside the pod's own (hostUsers: false), so /proc is unmasked and the
  // default seccomp profile (which refuses unshare) is not used; never
  // privileged.
  return {{"privileged", false}, {"allowPrivilegeEscalation", false}, {"procMount", "Unmasked"},
          {"seccompProfile", {{"type", "Unconfined"}}}};
}

}  // namespace

Expected<KubeObjects> MakeKubeObjects(const Farm& farm, const BuildRequest& req) {
  const KubeSettings& k = farm.kube;
  if (k.image.empty())
    return Error(Errc::kInvalidInput, "farm " + farm.name +
                                          ": no kiln image (kiln farm create NAME --driver kubernetes "
                                          "--driver-opt image=REGISTRY/kiln:TAG; contrib/kiln-image)");
  KILN_ASSIGN_OR_RETURN(internal::Target target, internal::CheckRequest(farm, req));
  const ImageReference& ref = target.ref;
  if (req.platforms.empty())
    return Error(Errc::kInvalidInput, "farm build: a Kubernetes farm needs --platforms (os/arch,...)");

  std::vector<ContextFile> files;
  int64_t total = 0;
  KILN_TRY(CollectContext(req.context_dir, "", files, total));
  // The context's digest: every file's path, mode and bytes, length-prefixed.
  Sha256 h;
  auto put = [&](std::string_view field) {
    h.Update(std::to_string(field.size()) + ":");
    h.Update(field);
  };
  put("kiln-farm-kube-context-v1");
  for (const auto& f : files) {
    put(f.path);
    put(std::to_string(f.mode));
    put(f.data);
  }
  Digest context = h.Finish();

  KubeObjects objs;
  objs.repository = ref.domain + "/" + ref.path;
  objs.configmap = "kiln-farm-context-" + context.hex().substr(0, 16);
  json meta_labels = {{kManagedBy, "kiln-farm"}, {"kiln-farm/context", context.hex().substr(0, 16)}};
  auto metadata = [&](const std::string& name) {
    json m = {{"name", name}, {"labels", meta_labels}};
    if (!k.namespace_name.empty())
      m["namespace"] = k.namespace_name;
    return m;
  };

  json configmap = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", metadata(objs.configmap)}};
  configmap["metadata"]["annotations"] = {{"kiln-farm/context", context.str()}};
  json binary = json::object();
  json items = json::array();
  for (size_t i = 0; i < files.size(); ++i) {
    std::string key = "file-" + std::to_string(i);
    binary[key] = ToBase64(files[i].data);
    items.push_back({{"key", key}, {"path", "context/" + files[i].path}, {"mode", files[i].mode}});
  }
  configmap["binaryData"] = std::move(binary);
  objs.documents.push_back(configmap.dump(2));

  std::string tls = req.tls_verify ? "" : "--tls-verify=false";
  // Explicit, not $HOME/.docker: a FROM scratch image has no passwd entry.
  std::string authfile =
      k.registry_secret.empty() ? "" : std::string("--authfile=") + kAuthMount + "/config.json";
  for (const auto& platform : req.platforms) {
    auto slash = platform.find('/');
    if (slash == 0 || slash == std::string::npos || slash + 1 == platform.size() || platform[slash + 1] == '/')
      return Error(Errc::kInvalidInput, "farm build --platforms " + platform + ": expected OS/ARCH[/VARIANT]");
    std::string job = JobName({context, target.containerfile, platform, ref.str(), req.build_args, req.cache_from,
                               req.cache_to, k.image});
    std::string local = "localhost/" + job + ":latest";
    json build_args = {"build", "--platform", platform, "-f", target.containerfile};
    if (!tls.empty())
      build_args.push_back(tls);
    if (!authfile.empty())
      build_args.push_back(authfile);
    if (!req.progress.empty())
      build_args.push_back("--progress=" + req.progress);
    for (const auto& a : req.build_args)
      build_args.push_back("--build-arg=" + a);
    for (const auto& c : req.cache_from)
      build_args.push_back("--cache-from=" + PlatformCacheRef(c, platform));
    if (!req.cache_to.empty())
      build_args.push_back("--cache-to=" + PlatformCacheRef(req.cache_to, platform));
    build_args.push_back("-t");
    build_args.push_back(local);
    build_args.push_back(kContextDir);
    json push_args = {"push", "--digestfile", "/dev/termination-log"};
    if (!tls.empty())
      push_args.push_back(tls);
    if (!authfile.empty())
      push_args.push_back(authfile);
    push_args.push_back(local);
    // A tag named after the job (the image has no shell to push by the
    // digest it learns only after the build).
    push_args.push_back("docker://" + objs.repository + ":" + job);

    std::string os = platform.substr(0, slash);
    std::string arch = platform.substr(slash + 1);
    arch = arch.substr(0, arch.find('/'));
    json selector = {{"kubernetes.io/os", os}, {"kubernetes.io/arch", arch}};
    for (const auto& kv : k.node_selector)
      selector[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);

    json store_mount = {{"name", "store"}, {"mountPath", kStore}};
    json build = {{"name", "build"},
                  {"image", k.image},
                  {"args", build_args},
                  {"securityContext", SecurityContext()},
                  {"terminationMessagePolicy", "FallbackToLogsOnError"},
                  {"volumeMounts", {store_mount, {{"name", "context"}, {"mountPath", kContextMount},
                                                  {"readOnly", true}}}}};
    json push = {{"name", "push"},
                 {"image", k.image},
                 {"args", push_args},
                 {"securityContext", SecurityContext()},
                 {"terminationMessagePolicy", "FallbackToLogsOnError"},
                 {"volumeMounts", {store_mount}}};
    json volumes = {{{"name", "store"}, {"emptyDir", json::object()}},
                    {{"name", "context"}, {"configMap", {{"name", objs.configmap}, {"items", items}}}}};
    if (!k.registry_secret.empty()) {
      json auth = {{"name", "registry-auth"}, {"mountPath", kAuthMount}, {"readOnly", true}};
      build["volumeMounts"].push_back(auth);
      push["volumeMounts"].push_back(auth);
      volumes.push_back({{"name", "registry-auth"},
                         {"secret", {{"secretName", k.registry_secret},
                                     {"items", {{{"key", ".dockerconfigjson"}, {"path", "config.json"}}}}}}});
    }
    json pod = {{"restartPolicy", "Never"},
                {"hostUsers", false},
                {"automountServiceAccountToken", false},
                {"nodeSelector", selector},
                {"initContainers", {build}},
                {"containers", {push}},
                {"volumes", volumes}};
    json jobj = {{"apiVersion", "batch/v1"}, {"kind", "Job"}, {"metadata", metadata(job)}};
    jobj["metadata"]["annotations"] = {{"kiln-farm/farm", farm.name}, {"kiln-farm/platform", platform},
                                       {"kiln-farm/image", ref.str()}};
    jobj["spec"] = {{"backoffLimit", 0},
                    {"ttlSecondsAfterFinished", 86400},
                    {"template", {{"metadata", {{"labels", {{kManagedBy, "kiln-farm"}}}}}, {"spec", pod}}}};
    objs.documents.push_back(jobj.dump(2));
    objs.platforms.push_back(platform);
    objs.jobs.push_back(job);
  }
  return objs;
}

std::string KubeYaml(const KubeObjects& objects) {
  std::string out;
  for (const auto& d : objects.documents)
    out += "---\n" + d + "\n";
  return out;
}

namespace internal {

namespace {

std::vector<std::string> Kubectl(const KubeSettings& k) {
  std::vector<std::string> argv = {"kubectl"};
  if (!k.kubeconfig.empty())
    argv.push_back("--kubeconfig=" + k.kubeconfig);
  if (!k.context.empty())
    argv.push_back("--context=" + k.context);
  if (!k.namespace_name.empty())
    argv.push_back("--namespace=" + k.namespace_name);
  return argv;
}

/// Runs kubectl with `args`; its stdout, or an error naming what failed.
Expected<std::string> RunKubectl(const KubeSettings& k, std::vector<std::string> args, int stdin_fd = -1) {
  auto argv = Kubectl(k);
  argv.insert(argv.end(), args.begin(), args.end());
  auto o = RunCapture(argv, stdin_fd, {}, nullptr);
  if (!o)
    return std::move(o).error().WithContext("kubectl");
  if (!Succeeded(*o))
    return Error(Errc::kFailed, "kubectl " + args.front() + ": " + Describe(*o));
  return o->out;
}

/// "Complete", "Failed" (with the reason in `why`) or "" while it runs.
std::string JobState(const json& job, std::string* why) {
  for (const auto& c : job.value("status", json::object()).value("conditions", json::array())) {
    if (c.value("status", "") != "True")
      continue;
    std::string type = c.value("type", "");
    if (type == "Complete")
      return type;
    if (type == "Failed") {
      *why = c.value("reason", "") + ": " + c.value("message", "");
      return type;
    }
  }
  return "";
}

/// The Job's pods' container states: a failed container's message (the
/// tail of its log), or the push container's termination message.
struct PodReport {
  std::string digest;
  std::string failure;
};
PodReport ReadPods(const KubeSettings& k, const std::string& job) {
  PodReport r;
  auto out = RunKubectl(k, {"get", "pods", "-l", "job-name=" + job, "-o", "json"});
  if (!out)
    return r;
  json pods = json::parse(*out, nullptr, false);
  if (pods.is_discarded())
    return r;
  for (const auto& pod : pods.value("items", json::array())) {
    json status = pod.value("status", json::object());
    for (const char* list : {"initContainerStatuses", "containerStatuses"})
      for (const auto& c : status.value(list, json::array())) {
        json term = c.value("state", json::object()).value("terminated", json::object());
        if (term.empty())
          continue;
        std::string message = Stripped(term.value("message", ""));
        if (term.value("exitCode", 0) != 0) {
          r.failure = "container " + c.value("name", "") + " exited " + std::to_string(term.value("exitCode", 0)) +
                      (message.empty() ? "" : ": " + message);
        } else if (c.value("name", "") == "push" && !message.empty()) {
          r.digest = message;
        }
      }
  }
  return r;
}

}  // namespace

Expected<BuildResult> BuildKube(const Farm& farm, const BuildRequest& req) {
  auto log = [&](const std::string& line) {
    if (req.log)
      req.log(line);
  };
  KILN_ASSIGN_OR_RETURN(KubeObjects objs, MakeKubeObjects(farm, req));
  KILN_ASSIGN_OR_RETURN(Target target, CheckRequest(farm, req));
  // SIGINT/SIGTERM stop the wait below and delete the Jobs (main() leaves
  // `farm` with the default action: the SSH driver's nodes stop when ssh
  // goes). Still the only thread here.
  InstallCancelHandlers("farm build");
  const KubeSettings& k = farm.kube;
  for (size_t i = 0; i < objs.jobs.size(); ++i)
    log("farm " + farm.name + ": " + objs.platforms[i] + " -> job " + objs.jobs[i]);

  // A Job that failed before (a retried build) runs again; a complete one
  // is reused (same inputs, same name).
  std::vector<std::string> get = {"get", "jobs"};
  get.insert(get.end(), objs.jobs.begin(), objs.jobs.end());
  get.insert(get.end(), {"--ignore-not-found", "-o", "json"});
  KILN_ASSIGN_OR_RETURN(std::string existing, RunKubectl(k, get));
  if (!Stripped(existing).empty()) {
    json list = json::parse(existing, nullptr, false);
    for (const auto& j : list.is_discarded() ? json::array() : list.value("items", json::array())) {
      std::string why;
      if (JobState(j, &why) == "Failed") {
        std::string name = j["metadata"].value("name", "");
        log("farm " + farm.name + ": job " + name + " failed before (" + why + "); running it again");
        KILN_TRY(RunKubectl(k, {"delete", "job", name, "--wait=true"}));
      }
    }
  }

  // Apply, from an unlinked temporary file on kubectl's stdin.
  const char* tmp = std::getenv("TMPDIR");
  std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/kiln-farm-objects.XXXXXX";
  int raw = mkstemp(path.data());
  if (raw < 0)
    return Error::FromErrno("farm build: temporary file " + path);
  UniqueFd objects_fd(raw);
  unlink(path.c_str());
  KILN_TRY(WriteAll(objects_fd.get(), KubeYaml(objs)));
  if (lseek(objects_fd.get(), 0, SEEK_SET) < 0)
    return Error::FromErrno("farm build: " + path);
  KILN_ASSIGN_OR_RETURN(std::string applied, RunKubectl(k, {"apply", "-f", "-"}, objects_fd.get()));
  std::string applied_lines = Stripped(applied);
  for (auto line : SplitLines(applied_lines))
    log("farm " + farm.name + ": " + std::string(line));

  auto delete_jobs = [&](const std::vector<std::string>& names) {
    if (names.empty())
      return;
    std::vector<std::string> del = {"delete", "job", "--ignore-not-found", "--wait=false"};
    del.insert(del.end(), names.begin(), names.end());
    (void)RunKubectl(k, del);
  };

  // Wait for every Job: Complete, or the first Failed stops the others.
  std::vector<std::string> state(objs.jobs.size());
  int failed_polls = 0;  // kubectl get may fail for a moment (an API server restarting)
  for (;;) {
    if (auto c = CheckCancelled(); !c) {
      delete_jobs(objs.jobs);
      return Error(Errc::kCancelled, "farm build cancelled (its Jobs deleted); no index pushed");
    }
    get = {"get", "jobs"};
    get.insert(get.end(), objs.jobs.begin(), objs.jobs.end());
    get.insert(get.end(), {"-o", "json"});
    auto out = RunKubectl(k, get);
    if (!out) {
      if (++failed_polls >= 5)
        return Error(out.error().code(), "farm build: " + out.error().message() + " (5 times in a row; the Jobs "
                                             "are left running); no index pushed");
      log("farm " + farm.name + ": " + out.error().message() + "; trying again");
      std::this_thread::sleep_for(std::chrono::seconds(2));
      continue;
    }
    failed_polls = 0;
    json list = json::parse(*out, nullptr, false);
    if (list.is_discarded())
      return Error(Errc::kCorrupt, "farm build: kubectl get jobs gave no JSON; no index pushed");
    json items = list.contains("items") ? list["items"] : json::array({list});
    for (const auto& j : items) {
      std::string name = j.value("metadata", json::object()).value("name", "");
      for (size_t i = 0; i < objs.jobs.size(); ++i) {
        if (objs.jobs[i] != name || !state[i].empty())
          continue;
        std::string why;
        state[i] = JobState(j, &why);
        if (state[i] == "Failed") {
          PodReport pods = ReadPods(k, name);
          std::vector<std::string> others;
          for (size_t o = 0; o < objs.jobs.size(); ++o)
            if (o != i && state[o].empty())
              others.push_back(objs.jobs[o]);
          delete_jobs(others);
          return Error(Errc::kFailed, "farm build: job " + name + " (" + objs.platforms[i] + ") failed: " + why +
                                          (pods.failure.empty() ? "" : "; " + pods.failure) +
                                          " (kubectl logs job/" + name + " -c build); no index pushed");
        }
        if (state[i] == "Complete")
          log("farm " + farm.name + ": job " + name + " (" + objs.platforms[i] + ") complete");
      }
    }
    bool all = true;
    for (const auto& s : state)
      all = all && s == "Complete";
    if (all)
      break;
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }

  // The digests the Jobs report (their push container's termination message).
  std::vector<Reported> reported;
  for (size_t i = 0; i < objs.jobs.size(); ++i) {
    PodReport pods = ReadPods(k, objs.jobs[i]);
    auto digest = Digest::Parse(pods.digest);
    if (!digest)
      return Error(Errc::kCorrupt, "farm build: job " + objs.jobs[i] + " (" + objs.platforms[i] +
                                       ") reported no digest (its push container's termination message is \"" +
                                       pods.digest + "\"); no index pushed");
    reported.push_back({objs.platforms[i], *digest, "job " + objs.jobs[i]});
  }
  return PushIndex(farm, req, target.ref, reported);
}

}  // namespace internal

}  // namespace kiln::farm
