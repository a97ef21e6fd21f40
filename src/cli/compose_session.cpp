// The compose commands' project loading, apply environment (with kiln
// build's engine job as the build hook) and container lookup
// (compose_session.h).
#include "cli/compose_session.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "cli/build_request.h"
#include "kiln/acquire.h"
#include "kiln/cancel.h"
#include "kiln/containerfile.h"
#include "kiln/fs.h"
#include "kiln/registry.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

namespace compose_cmd {

Expected<compose::LoadResult> LoadFor(const ComposeFlags& flags, const std::vector<std::string>& services) {
  auto loaded = LoadProject(flags);
  if (!loaded || services.empty())
    return loaded;
  std::vector<std::string> missing;
  for (const auto& n : services)
    if (std::none_of(loaded->project.services.begin(), loaded->project.services.end(),
                     [&](const deployment::Service& s) { return s.name == n; }))
      missing.push_back(n);
  if (missing.empty())
    return loaded;
  ComposeFlags all = flags;
  all.profiles = {"*"};
  auto everything = LoadProject(all);
  if (!everything)
    return loaded;
  ComposeFlags more = flags;
  for (const auto& n : missing)
    for (const auto& s : everything->project.services)
      if (s.name == n)
        more.profiles.insert(more.profiles.end(), s.profiles.begin(), s.profiles.end());
  return LoadProject(more);
}

Expected<compose::LoadResult> LoadOrLabels(const ComposeFlags& flags, const std::vector<std::string>& services) {
  auto loaded = LoadFor(flags, services);
  if (loaded || flags.project_name.empty() || !flags.files.empty() ||
      loaded.error().message().find("no compose file") == std::string::npos)
    return loaded;
  compose::LoadResult r;
  r.project.name = flags.project_name;
  return r;
}

namespace {

void PrintWarnings(const compose::LoadResult& r) {
  for (const auto& w : r.warnings)
    std::fprintf(stderr, "kiln: warning: %s\n", w.c_str());
}

Status BuildService(Context& ctx, const deployment::Project& project, const deployment::Service& s,
                    const std::string& image, bool no_cache, bool pull) {
  const deployment::BuildSpec& b = *s.build;
  if (b.context.find("://") != std::string::npos || b.context.rfind("git@", 0) == 0)
    return Error(Errc::kUnsupported, "build.context " + b.context + ": a remote context is not supported by kiln yet");
  BuildRequest req;
  engine::BuildOptions& o = req.job.options;
  o.context_dir = b.context;
  if (!b.dockerfile_inline.empty()) {
    o.containerfile = "-";
    req.containerfile_name = "dockerfile_inline";
    req.containerfile_text = b.dockerfile_inline;
  } else {
    // The default Dockerfile, else a Containerfile (as podman compose).
    std::string name = b.dockerfile.empty() ? "Dockerfile" : b.dockerfile;
    if (name == "Dockerfile" && !PathExists(b.context + "/Dockerfile") && PathExists(b.context + "/Containerfile"))
      name = "Containerfile";
    o.containerfile = name[0] == '/' ? name : b.context + "/" + name;
    req.containerfile_name = name;
    auto text = ReadFile(o.containerfile, size_t(64) << 20);
    if (!text)
      return std::move(text).error().WithContext("build.dockerfile");
    req.containerfile_text = std::move(*text);
  }
  auto parsed = frontend::ParseContainerfile(req.containerfile_text, req.containerfile_name);
  if (!parsed)
    return parsed.error();
  req.containerfile = std::move(*parsed);
  // .containerignore, else .dockerignore, in the context (not beside the Dockerfile: compose's rule).
  KILN_ASSIGN_OR_RETURN(auto ignore, engine::LoadContextIgnore(b.context, ""));
  if (!ignore.patterns.empty()) {
    auto m = frontend::IgnoreMatcher::Create(ignore.patterns);
    if (!m)
      return std::move(m).error().WithContext(ignore.path);
    o.ignore = *m;
  }
  req.tags = {image};
  for (const auto& [k, v] : b.args) {
    if (v) {
      req.job.compile.build_args[k] = *v;
    } else if (const char* e = std::getenv(k.c_str())) {
      req.job.compile.build_args[k] = e;
    }
  }
  req.job.compile.target = b.target;
  req.job.compile.build_platform = Platform::Host();
  o.use_cache = !(no_cache || b.no_cache);
  if (pull || b.pull)
    req.job.acquire.policy = image::PullPolicy::kAlways;
  if (!b.network.empty())
    req.network = b.network == "default" ? "private" : b.network;
  for (const auto& [k, v] : b.labels)
    o.labels[k] = v;
  for (const auto& r : b.secrets) {
    BuildSecret sec;
    sec.id = r.target.empty() ? r.source : r.target;
    auto it = project.secrets.find(r.source);
    if (it == project.secrets.end() || it->second.external)
      return Error(Errc::kInvalidInput, "build.secrets: " + r.source + " is not a file or environment secret");
    sec.src = it->second.file;
    sec.env = it->second.environment;
    req.secrets.push_back(sec);
  }
  req.quiet = true;  // the image ID line only; errors are printed by RunBuild
  int rc = RunBuild(req, ctx);
  if (rc != 0)
    return Error(Errc::kFailed, "kiln build exited " + std::to_string(rc));
  return Ok();
}

Expected<std::unique_ptr<ApplyEnv>> MakeEnv(Context& ctx, const deployment::Project* project, bool quiet,
                                            bool no_cache = false, bool pull = false) {
  auto e = std::make_unique<ApplyEnv>();
  registry::RegisterDockerTransport();
  auto store = Store::Open(ctx.StoreRoot());
  if (!store)
    return std::move(store).error();
  e->store.emplace(std::move(*store));
  e->env.store = &*e->store;
  e->env.paths = RunPaths(ctx);
  if (project)
    e->env.build = [&ctx, project, no_cache, pull](const deployment::Service& s, const std::string& image) {
      return BuildService(ctx, *project, s, image, no_cache, pull);
    };
  if (!quiet)
    e->env.progress = [](const std::string& line) {
      std::string l = " " + line + "\n";
      (void)!::write(STDERR_FILENO, l.data(), l.size());
    };
  e->env.cancelled = [] { return Cancelled(); };
  return e;
}

}  // namespace

int Fail(const Error& e) {
  if (e.code() == Errc::kCancelled && Cancelled())
    return ReportCancelled();
  return ReportError(e);
}

Expected<std::unique_ptr<Session>> OpenSession(Context& ctx, const ComposeFlags& flags,
                                               const std::vector<std::string>& services, const SessionOptions& o) {
  auto s = std::make_unique<Session>();
  ComposeFlags f = flags;
  if (o.all_profiles)
    f.profiles = {"*"};
  auto loaded = o.no_file_ok ? LoadOrLabels(f, services) : LoadFor(f, services);
  if (!loaded)
    return std::move(loaded).error();
  s->loaded = std::move(*loaded);
  if (o.warn)
    PrintWarnings(s->loaded);
  auto e = MakeEnv(ctx, &s->loaded.project, o.quiet, o.no_cache, o.pull);
  if (!e)
    return std::move(e).error();
  s->apply = std::move(*e);
  return s;
}


Expected<std::vector<apply::ProjectContainer>> ServiceContainers(const run::Paths& paths,
                                                                 const deployment::Project& project,
                                                                 const std::vector<std::string>& services, bool all,
                                                                 bool oneoff) {
  auto found = apply::FindContainers(paths, project.name, all);
  if (!found)
    return found;
  for (const auto& n : services)  // (a project known by its labels only has no list)
    if (!project.services.empty() && std::none_of(project.services.begin(), project.services.end(),
                     [&](const deployment::Service& s) { return s.name == n; }))
      return Error(Errc::kInvalidInput, "no such service: " + n);
  std::erase_if(*found, [&](const apply::ProjectContainer& c) {
    return (c.oneoff && !oneoff) ||
           (!services.empty() && std::find(services.begin(), services.end(), c.service) == services.end());
  });
  return found;
}

std::string StatusText(const run::ContainerInfo& c) {
  std::string s = c.status == "running" ? "Up" : c.status == "exited" ? "Exited (" + std::to_string(c.exit_code) + ")"
                                                                        : c.status;
  if (c.status == "running" && !c.health_status.empty())
    s += " (" + c.health_status + ")";
  return s;
}

std::string Join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const auto& x : v)
    out += (out.empty() ? "" : sep) + x;
  return out;
}

}  // namespace compose_cmd

/// kube play --build (cmd_kube.cpp): DIR's Containerfile (or Dockerfile)
/// built as IMAGE, the way a compose service's `build:` is.
Status BuildImageFromDir(Context& ctx, const std::string& dir, const std::string& image);
Status BuildImageFromDir(Context& ctx, const std::string& dir, const std::string& image) {
  deployment::Project project;
  deployment::Service s;
  s.build = deployment::BuildSpec{};
  s.build->context = dir;
  return compose_cmd::BuildService(ctx, project, s, image, /*no_cache=*/false, /*pull=*/false);
}

}  // namespace kiln::cli
