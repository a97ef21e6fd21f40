// kiln kube generate / generate kube, generate systemd (docs/kube.md): live
// pods and containers through src/pod's description and src/kube's printer;
// units through src/systemd.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "kiln/fs.h"
#include "kiln/kube.h"
#include "kiln/log.h"
#include "kiln/pod.h"
#include "kiln/run.h"
#include "kiln/store.h"
#include "kiln/systemd.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

namespace {

/// Writes `text` to FILE (replacing it atomically) or stdout.
int Emit(const std::string& text, const std::string& file) {
  if (file.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  }
  if (auto st = WriteFileAtomic(file, text, 0644); !st)
    return ReportError(st.error());
  return 0;
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
  SetAction(cmd, ctx, [&ctx, f] {
    auto store = Store::Open(ctx.StoreRoot());
    if (!store)
      return ReportError(store.error());
    run::Paths paths = RunPaths(ctx);
    std::vector<std::string> warnings;
    Expected<deployment::Pod> model = Error(Errc::kInvalidInput, "nothing to generate");
    if (auto pod_id = pod::ResolvePod(paths, f->names[0]); pod_id) {
      if (f->names.size() > 1)
        return ReportError(Error(Errc::kInvalidInput, "kube generate takes one pod (or containers), not a pod and more"));
      model = pod::DescribePod(*store, paths, *pod_id, &warnings);
    } else {
      std::vector<std::string> ids;
      for (const auto& n : f->names) {
        auto id = run::ResolveContainer(paths, n);
        if (!id)
          return ReportError(Error(Errc::kNotFound, "name or ID " + n + " not found: no pod or container has it"));
        ids.push_back(*id);
      }
      model = pod::DescribeContainers(*store, paths, ids, &warnings);
    }
    if (!model)
      return ReportError(model.error());
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
  SetAction(cmd, ctx, [&ctx, f] {
    if (f->is_new)
      return ReportError(Error(Errc::kUnsupported, "generate systemd --new is not supported yet (kiln does not keep "
                                                   "the command line a container was made with)"));
    if (!systemd::ValidRestartPolicy(f->restart))
      return ReportError(Error(Errc::kInvalidInput, f->restart + " is not a valid restart policy"));
    run::Paths paths = RunPaths(ctx);
    systemd::UnitSpec s;
    if (auto pod_id = pod::ResolvePod(paths, f->target)) {
      auto p = pod::ReadPod(paths, *pod_id);
      if (!p)
        return ReportError(p.error());
      s.pod = true;
      s.id = p->id;
      s.name = f->name ? p->name : p->id;
      s.prefix = f->pod_prefix;
    } else {
      auto id = run::ResolveContainer(paths, f->target);
      if (!id)
        return ReportError(Error(Errc::kNotFound, f->target + " does not refer to a container or pod: no such container"));
      auto info = run::InspectContainer(paths, *id);
      if (!info)
        return ReportError(info.error());
      s.id = info->id;
      s.name = f->name ? info->name : info->id;
      s.prefix = f->container_prefix;
    }
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
      return ReportError(Error::FromErrno("readlink /proc/self/exe"));
    s.kiln = std::string(exe, static_cast<size_t>(n));
    s.store_root = ctx.StoreRoot();
    s.restart_policy = f->restart;
    s.stop_timeout = f->timeout;
    s.separator = f->separator;
    std::string text = systemd::ContainerUnit(s);
    if (!f->files) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      return 0;
    }
    char cwd[4096];
    if (!::getcwd(cwd, sizeof cwd))
      return ReportError(Error::FromErrno("getcwd"));
    std::string path = std::string(cwd) + "/" + systemd::UnitName(s);
    if (auto st = WriteFileAtomic(path, text, 0644); !st)
      return ReportError(st.error());
    std::printf("%s\n", path.c_str());
    return 0;
  });
}

}  // namespace

/// `kiln kube generate|play|down` and `kiln generate kube|systemd` (main.cpp).
void AddKubeCommands(CLI::App& app, Context& ctx);
void AddKubeCommands(CLI::App& app, Context& ctx) {
  auto* kube = app.add_subcommand("kube", "Kubernetes YAML: generate from pods and containers");
  kube->require_subcommand(1);
  AddGenerateKube(kube, ctx, "generate");
  auto* gen = app.add_subcommand("generate", "generate Kubernetes YAML or systemd units");
  gen->require_subcommand(1);
  AddGenerateKube(gen, ctx, "kube");
  AddGenerateSystemd(gen, ctx);
}

}  // namespace kiln::cli
