// kiln compose: multi-container applications from compose files
// (docs/compose.md). `config` prints the resolved project as docker compose
// config does; the commands that run containers are in cmd_compose_run.cpp.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/compose_flags.h"
#include "kiln/compose.h"
#include "kiln/fs.h"

extern char** environ;

namespace kiln::cli {

namespace {

std::map<std::string, std::string> Environ() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos)
      env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return env;
}

std::string CurrentDir() {
  std::vector<char> buf(4096);
  if (!::getcwd(buf.data(), buf.size()))
    return ".";
  return buf.data();
}

}  // namespace

Expected<compose::LoadResult> LoadProject(const ComposeFlags& f) {
  compose::LoadOptions o;
  o.files = f.files;
  o.working_dir = f.project_directory.empty() ? CurrentDir()
                  : f.project_directory[0] == '/' ? f.project_directory
                                                  : CurrentDir() + "/" + f.project_directory;
  o.project_name = f.project_name;
  o.env_files = f.env_files;
  o.profiles = f.profiles;
  o.environ = Environ();
  o.read_file = [](const std::string& path) -> std::optional<std::string> {
    auto data = path == "-" ? ReadAll(STDIN_FILENO, 64 << 20) : ReadFile(path, 64 << 20);
    if (!data)
      return std::nullopt;
    return std::move(*data);
  };
  return compose::Load(o);
}

void AddComposeCommand(CLI::App& app, Context& ctx) {
  auto* group = app.add_subcommand("compose", "run multi-container applications from compose files (up, down, ps, logs, exec, run, config...)");
  group->require_subcommand(1);
  auto f = std::make_shared<ComposeFlags>();
  group->add_option("-f,--file", f->files, "a compose file (repeatable: later files are merged over earlier ones; - reads stdin)")
      ->allow_extra_args(false);
  group->add_option("-p,--project-name", f->project_name, "the project name (default: name: in the file, else the directory)");
  group->add_option("--project-directory", f->project_directory, "the directory relative paths are resolved from");
  group->add_option("--profile", f->profiles, "enable the services of this profile (repeatable)")->allow_extra_args(false);
  group->add_option("--env-file", f->env_files, "read interpolation variables from this file instead of .env (repeatable)")
      ->allow_extra_args(false);
  group->footer("Compose files found by default: compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml "
                "(plus compose.override.yaml...). See docs/compose.md for the supported keys.");

  {
    auto* cmd = group->add_subcommand("config", "print the resolved project (merged, interpolated, canonical) as docker compose config");
    struct Flags {
      std::string format = "yaml";
      bool quiet = false, services = false, volumes = false, networks = false, images = false, profiles = false;
      std::string output;
      std::vector<std::string> only;
    };
    auto c = std::make_shared<Flags>();
    cmd->alias("convert");
    cmd->add_option("--format", c->format, "yaml or json")->check(CLI::IsMember({"yaml", "json"}));
    cmd->add_flag("-q,--quiet", c->quiet, "only validate the project, print nothing");
    cmd->add_flag("--services", c->services, "print the service names, one per line");
    cmd->add_flag("--volumes", c->volumes, "print the volume names, one per line");
    cmd->add_flag("--networks", c->networks, "print the network names, one per line");
    cmd->add_flag("--images", c->images, "print the image names, one per line");
    cmd->add_flag("--profiles", c->profiles, "print the profile names, one per line");
    cmd->add_option("-o,--output", c->output, "write to this file instead of stdout");
    cmd->add_option("services", c->only, "print only these services");
    SetAction(cmd, ctx, [f, c] {
      auto loaded = LoadProject(*f);
      if (!loaded)
        return ReportError(loaded.error());
      for (const auto& w : loaded->warnings)
        std::fprintf(stderr, "kiln: warning: %s\n", w.c_str());
      auto& p = loaded->project;
      if (!c->only.empty()) {
        for (const auto& name : c->only)
          if (std::none_of(p.services.begin(), p.services.end(), [&](const auto& s) { return s.name == name; }))
            return ReportError(Error(Errc::kInvalidInput, "no such service: " + name));
        std::erase_if(p.services, [&](const auto& s) {
          return std::find(c->only.begin(), c->only.end(), s.name) == c->only.end();
        });
      }
      if (c->quiet)
        return 0;
      std::string out;
      if (c->services) {
        for (const auto& s : p.services)
          out += s.name + "\n";
      } else if (c->volumes) {
        for (const auto& [k, v] : p.volumes)
          out += k + "\n";
      } else if (c->networks) {
        for (const auto& [k, v] : p.networks)
          out += k + "\n";
      } else if (c->images) {
        for (const auto& s : p.services)
          out += (s.image.empty() ? p.name + "-" + s.name : s.image) + "\n";
      } else if (c->profiles) {
        std::set<std::string> names;
        for (const auto& s : p.services)
          names.insert(s.profiles.begin(), s.profiles.end());
        for (const auto& n : names)
          out += n + "\n";
      } else if (c->format == "json") {
        out = compose::ConfigJson(p).dump(2) + "\n";
      } else {
        out = compose::ConfigYaml(p);
      }
      if (!c->output.empty()) {
        if (auto st = WriteFileAtomic(c->output, out); !st)
          return ReportError(st.error());
        return 0;
      }
      std::fwrite(out.data(), 1, out.size(), stdout);
      return 0;
    });
  }

  AddComposeRunCommands(group, ctx, f);
}

}  // namespace kiln::cli
