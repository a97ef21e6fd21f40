// kiln kube generate / generate kube, kube play / play kube, kube down,
// generate systemd (docs/kube.md): live pods and containers through src/pod's
// description and src/kube's printer; YAML through src/kube's parser and
// src/apply; units through src/systemd.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/command.h"
#include "kiln/apply.h"
#include "kiln/fs.h"
#include "kiln/kube.h"
#include "kiln/log.h"
#include "kiln/secret.h"
#include "kiln/pod.h"
#include "kiln/process.h"
#include "kiln/run.h"
#include "kiln/store.h"
#include "kiln/systemd.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);
/// Builds DIR's Containerfile (or Dockerfile) as IMAGE (compose_session.cpp).
Status BuildImageFromDir(Context& ctx, const std::string& dir, const std::string& image);

namespace {

/// Writes `text` to FILE (replacing it atomically) or stdout.
Status Emit(const std::string& text, const std::string& file) {
  if (!file.empty())
    return WriteFileAtomic(file, text, 0644);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return Ok();
}

/// podman's NodePort Service for the pod's published ports (--service).
std::string ServiceYaml(const deployment::Pod& pod) {
  std::string name = kube::SanitizeName(pod.name);
  std::string out = "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + name + "\nspec:\n  ports:\n";
  bool any = false;
  for (const auto& c : pod.containers)
    for (const auto& p : c.ports) {
      std::string proto = p.protocol == "udp" ? "UDP" : "TCP";
      out += "  - name: \"" + std::to_string(p.target) + "\"\n    nodePort: " + (p.published.empty() ? "0" : p.published) +
             "\n    port: " + std::to_string(p.target) + "\n    protocol: " + proto +
             "\n    targetPort: " + std::to_string(p.target) + "\n";
      any = true;
    }
  if (!any)
    out += "  []\n";
  out += "  selector:\n    app: " + name + "\n  type: NodePort\n";
  return out;
}

void AddGenerateKube(CLI::App* parent, Context& ctx, const char* name) {
  auto* cmd = parent->add_subcommand(name, "print Kubernetes Pod YAML for a pod or containers");
  struct Flags {
    std::vector<std::string> names;
    std::string file;
    bool service = false;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("names", f->names, "a pod, or containers (NAME or ID)")->required();
  cmd->add_option("-f,--filename", f->file, "write the YAML to FILE instead of stdout");
  cmd->add_flag("-s,--service", f->service, "also a Service of type NodePort for the published ports");
  SetCommand(cmd, ctx, [&ctx, f]() -> Status {
    KILN_ASSIGN_OR_RETURN(auto store, Store::Open(ctx.StoreRoot()));
    run::Paths paths = RunPaths(ctx);
    std::vector<std::string> warnings;
    Expected<deployment::Pod> model = Error(Errc::kInvalidInput, "nothing to generate");
    if (auto pod_id = pod::ResolvePod(paths, f->names[0]); pod_id) {
      if (f->names.size() > 1)
        return Error(Errc::kInvalidInput, "kube generate takes one pod (or containers), not a pod and more");
      model = pod::DescribePod(store, paths, *pod_id, &warnings);
    } else {
      std::vector<std::string> ids;
      for (const auto& n : f->names) {
        auto id = run::ResolveContainer(paths, n);
        if (!id)
          return Error(Errc::kNotFound, "name or ID " + n + " not found: no pod or container has it");
        ids.push_back(*id);
      }
      model = pod::DescribeContainers(store, paths, ids, &warnings);
    }
    KILN_TRY(model);
    if (f->service)
      model->labels["app"] = kube::SanitizeName(model->name);
    std::string text = "# Save the output of this file and use kubectl create -f to import it into Kubernetes,\n"
                       "# or kiln kube play to run it again.\n#\n# Created with kiln\n";
    text += kube::GeneratePodYaml(*model, &warnings);
    if (f->service)
      text += "---\n" + ServiceYaml(*model);
    for (const auto& w : warnings)
      LogWarn(w);
    return Emit(text, f->file);
  });
}

void AddGenerateSystemd(CLI::App* parent, Context& ctx) {
  auto* cmd = parent->add_subcommand("systemd", "print a systemd unit that starts a container or pod (kiln start)");
  struct Flags {
    std::string target;
    bool name = false, files = false, is_new = false, no_header = false;
    std::string restart = "on-failure";
    int timeout = 10;
    std::string container_prefix = "container", pod_prefix = "pod", separator = "-";
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("target", f->target, "container or pod (NAME or ID)")->required();
  cmd->add_flag("-n,--name", f->name, "use the name, not the ID, in the unit and its file name");
  cmd->add_flag("-f,--files", f->files, "write the unit to ./<unit name> and print its path");
  cmd->add_flag("--new", f->is_new, "a unit that makes a new container on each start (not supported yet)");
  cmd->add_option("--restart-policy", f->restart, "systemd Restart=: no, on-success, on-failure (default), on-abnormal, on-watchdog, on-abort, always");
  cmd->add_option("-t,--time", f->timeout, "stop timeout in seconds (default 10)");
  cmd->add_option("--container-prefix", f->container_prefix, "unit name prefix of a container (default container)");
  cmd->add_option("--pod-prefix", f->pod_prefix, "unit name prefix of a pod (default pod)");
  cmd->add_option("--separator", f->separator, "between the prefix and the name (default -)");
  SetCommand(cmd, ctx, [&ctx, f]() -> Status {
    if (f->is_new)
      return Error(Errc::kUnsupported, "generate systemd --new is not supported yet (kiln does not keep "
                                       "the command line a container was made with)");
    if (!systemd::ValidRestartPolicy(f->restart))
      return Error(Errc::kInvalidInput, f->restart + " is not a valid restart policy");
    run::Paths paths = RunPaths(ctx);
    systemd::UnitSpec s;
    if (auto pod_id = pod::ResolvePod(paths, f->target)) {
      KILN_ASSIGN_OR_RETURN(pod::Pod p, pod::ReadPod(paths, *pod_id));
      s.pod = true;
      s.id = p.id;
      s.name = f->name ? p.name : p.id;
      s.prefix = f->pod_prefix;
    } else {
      auto id = run::ResolveContainer(paths, f->target);
      if (!id)
        return Error(Errc::kNotFound, f->target + " does not refer to a container or pod: no such container");
      KILN_ASSIGN_OR_RETURN(run::ContainerInfo info, run::InspectContainer(paths, *id));
      s.id = info.id;
      s.name = f->name ? info.name : info.id;
      s.prefix = f->container_prefix;
    }
    s.kiln = SelfExe();
    if (s.kiln.empty())
      return Error::FromErrno("readlink /proc/self/exe");
    s.store_root = ctx.StoreRoot();
    s.restart_policy = f->restart;
    s.stop_timeout = f->timeout;
    s.separator = f->separator;
    std::string text = systemd::ContainerUnit(s);
    if (!f->files)
      return Emit(text, "");
    char cwd[4096];
    if (!::getcwd(cwd, sizeof cwd))
      return Error::FromErrno("getcwd");
    std::string path = std::string(cwd) + "/" + systemd::UnitName(s);
    KILN_TRY(Emit(text, path));
    std::printf("%s\n", path.c_str());
    return Ok();
  });
}

/// The Secrets of kiln's secret store that `kube play` made (their value is
/// the Secret as JSON), for secretKeyRef and secret volumes naming a Secret
/// that is not in the file.
void StoredSecrets(const std::string& store_root, kube::Sources* sources) {
  auto list = secret::List(store_root);
  if (!list)
    return;
  for (const auto& info : *list) {
    if (sources->secrets.count(info.name))
      continue;
    auto value = secret::ReadValue(store_root, info.name);
    if (!value || value->empty() || (*value)[0] != '{')
      continue;
    auto doc = kube::Parse(*value, "secret " + info.name);
    if (!doc || doc->secrets.size() != 1)
      continue;
    if (auto values = kube::SecretValues(doc->secrets[0]))
      sources->secrets[info.name] = *values;
  }
}

/// A Secret as the JSON kiln stores (what StoredSecrets reads back).
std::string SecretJson(const kube::Secret& s) {
  return nlohmann::json{{"apiVersion", "v1"},   {"kind", "Secret"}, {"metadata", {{"name", s.name}}},
                        {"type", s.type},       {"data", s.data},   {"stringData", s.string_data}}
      .dump();
}

Expected<kube::Document> ReadKubeFile(const std::string& file) {
  auto text = file == "-" ? ReadAll(0, 16 << 20) : ReadFile(file, 16 << 20);
  if (!text)
    return std::move(text).error();
  return kube::Parse(*text, file);
}

/// kube down: every pod of the file, podman's output; a pod that is not
/// there is reported and the others still removed.
Status DownPods(const apply::Env& env, const kube::Document& doc) {
  std::vector<std::string> removed;
  Status result = Ok();
  for (const auto& p : doc.pods) {
    auto id = apply::DownPod(env, p.name);
    if (!id) {
      if (!result)
        ReportError(result.error());
      result = std::move(id).error();
      continue;
    }
    removed.push_back(*id);
  }
  for (const char* heading : {"Pods stopped:", "Pods removed:"}) {
    if (removed.empty())
      break;
    std::printf("%s\n", heading);
    for (const auto& id : removed)
      std::printf("%s\n", id.c_str());
  }
  return result;
}

struct PlayFlags {
  std::string file;
  bool replace = false, down = false, start = true;
  std::string build;
  std::vector<std::string> networks, configmaps;
};

Status Play(Context& ctx, const PlayFlags& f, bool down_only) {
  if (!f.build.empty() && f.build != "true" && f.build != "false")
    return Error(Errc::kInvalidInput, "invalid --build " + f.build + ": true or false");
  KILN_ASSIGN_OR_RETURN(kube::Document doc, ReadKubeFile(f.file));
  kube::Sources sources;
  for (const auto& extra : f.configmaps) {
    KILN_ASSIGN_OR_RETURN(kube::Document more, ReadKubeFile(extra));
    if (more.config_maps.empty())
      return Error(Errc::kInvalidInput, "--configmap " + extra + ": no ConfigMap in the file");
    for (const auto& cm : more.config_maps)
      sources.config_maps[cm.name] = cm.data;
  }
  for (const auto& w : doc.warnings)
    LogWarn(w);
  KILN_ASSIGN_OR_RETURN(auto store, Store::Open(ctx.StoreRoot()));
  apply::Env env;
  env.store = &store;
  env.paths = RunPaths(ctx);
  if (down_only || f.down)
    return DownPods(env, doc);
  for (const auto& cm : doc.config_maps)
    sources.config_maps[cm.name] = cm.data;
  for (const auto& s : doc.secrets) {  // into kiln's secret store (as podman's)
    KILN_ASSIGN_OR_RETURN(sources.secrets[s.name], kube::SecretValues(s));
    KILN_TRY(secret::Create(ctx.StoreRoot(), s.name, SecretJson(s), {.labels = {}, .replace = true}));
  }
  StoredSecrets(ctx.StoreRoot(), &sources);
  for (const auto& claim : doc.claims)  // a PersistentVolumeClaim is a named volume
    KILN_TRY(run::CreateVolume(env.paths, claim.name, /*ignore_existing=*/true));
  apply::PlayOptions po;
  po.start = f.start;
  po.replace = f.replace;
  po.networks = f.networks;
  po.config_maps = sources.config_maps;
  po.secrets = sources.secrets;
  if (!f.build.empty())
    po.build = f.build == "true";
  char cwd[4096];
  if (::getcwd(cwd, sizeof cwd))
    po.build_dir = cwd;
  env.build = [&ctx](const deployment::Service& s, const std::string& image) {
    return BuildImageFromDir(ctx, s.build->context, image);
  };
  for (const auto& p : doc.pods) {
    KILN_ASSIGN_OR_RETURN(deployment::Pod resolved, kube::ResolvePod(p, sources));
    std::vector<std::string> warnings;
    auto played = apply::PlayPod(env, resolved, po, &warnings);
    for (const auto& w : warnings)
      LogWarn(w);
    KILN_TRY(played);
    std::printf("Pod:\n%s\n", played->id.c_str());
    std::printf("Container%s:\n", played->containers.size() == 1 ? "" : "s");
    for (const auto& id : played->containers)
      std::printf("%s\n", id.c_str());
    std::printf("\n");
  }
  return Ok();
}

void AddPlay(CLI::App* parent, Context& ctx, const char* name, bool down_only) {
  auto* cmd = parent->add_subcommand(name, down_only ? "remove the pods a Kubernetes YAML file made (kube play)"
                                                     : "run the pods of a Kubernetes YAML file (Pod, Deployment, ...)");
  auto f = std::make_shared<PlayFlags>();
  cmd->add_option("file", f->file, "the YAML file (- for stdin)")->required();
  if (!down_only) {
    struct BoolFlag {
      const char* name;
      bool* value;
      const char* help;
    };
    for (const BoolFlag& b : {BoolFlag{"--replace", &f->replace, "remove pods of the same names first"},
                              BoolFlag{"--down", &f->down, "remove the pods instead (as kube down)"},
                              BoolFlag{"--start{true}", &f->start, "start the pods (default true; --start=false: create only)"}})
      cmd->add_flag(b.name, *b.value, b.help);
    cmd->add_flag("--build{true}", f->build,
                  "build images from ./<image name>/Containerfile (default: when the image is missing; "
                  "--build=false: never)");
    cmd->add_option("--network,--net", f->networks, "the pods' container network NAME (repeatable; default podman)")
        ->allow_extra_args(false);
    cmd->add_option("--configmap", f->configmaps, "a YAML file with ConfigMaps for env and volumes (repeatable)")
        ->allow_extra_args(false);
  }
  SetCommand(cmd, ctx, [&ctx, f, down_only] { return Play(ctx, *f, down_only); });
}

/// The words of the command line (globals and their values left out):
/// {"kube", "play", ...} or {"play", "kube", ...}.
std::vector<std::string> Words(int argc, char** argv) {
  std::vector<std::string> words;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--root" || a == "--log-level")
      ++i;
    else if (words.size() < 2 && !a.empty() && a[0] == '-')
      continue;
    else
      words.push_back(a);
  }
  return words;
}

}  // namespace

bool KubeNeedsUserNamespace(int argc, char** argv);
bool KubeStartsContainers(int argc, char** argv);
bool KubeNeedsUserNamespace(int argc, char** argv) {
  auto w = Words(argc, argv);
  return w.size() >= 2 && ((w[0] == "kube" && (w[1] == "play" || w[1] == "down")) || (w[0] == "play" && w[1] == "kube"));
}

bool KubeStartsContainers(int argc, char** argv) {
  auto w = Words(argc, argv);
  return KubeNeedsUserNamespace(argc, argv) && w[1] != "down" && std::find(w.begin(), w.end(), "--down") == w.end();
}

/// `kiln generate quadlet` (cmd_quadlet.cpp).
void AddGenerateQuadlet(CLI::App* parent, Context& ctx);

/// `kiln kube generate|play|down` and `kiln generate kube|systemd|quadlet` (main.cpp).
void AddKubeCommands(CLI::App& app, Context& ctx);
void AddKubeCommands(CLI::App& app, Context& ctx) {
  auto* kube = app.add_subcommand("kube", "Kubernetes YAML: play, down, generate");
  kube->require_subcommand(1);
  AddGenerateKube(kube, ctx, "generate");
  AddPlay(kube, ctx, "play", false);
  AddPlay(kube, ctx, "down", true);
  auto* play = app.add_subcommand("play", "run Kubernetes YAML (as kube play)");
  play->require_subcommand(1);
  AddPlay(play, ctx, "kube", false);
  auto* gen = app.add_subcommand("generate", "generate Kubernetes YAML or systemd units");
  gen->require_subcommand(1);
  AddGenerateKube(gen, ctx, "kube");
  AddGenerateSystemd(gen, ctx);
  AddGenerateQuadlet(gen, ctx);
}

}  // namespace kiln::cli
