// kiln generate quadlet (docs/kube.md "Quadlet"): podman's Quadlet files
// (*.container, *.volume, *.network, *.kube) to systemd units, through the
// pure translator of src/systemd. Also what contrib/systemd/kiln-user-generator
// runs when systemd loads its units.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/command.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/process.h"
#include "kiln/systemd.h"

namespace kiln::cli {

namespace {

/// Where podman's Quadlet reads: the user's ~/.config/containers/systemd
/// (XDG_CONFIG_HOME), or /etc/containers/systemd for root.
std::string DefaultQuadletDir() {
  if (::geteuid() == 0)
    return "/etc/containers/systemd";
  return JoinPath(UserConfigDir(), "containers/systemd");
}

}  // namespace

/// `kiln generate quadlet` (cmd_kube.cpp registers it under generate).
void AddGenerateQuadlet(CLI::App* parent, Context& ctx);
void AddGenerateQuadlet(CLI::App* parent, Context& ctx) {
  auto* cmd = parent->add_subcommand(
      "quadlet", "turn Quadlet files (*.container, *.volume, *.network, *.kube) into systemd units that run kiln");
  struct Flags {
    std::vector<std::string> sources;
    std::string output;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("source", f->sources,
                  "Quadlet files or directories (default: ~/.config/containers/systemd, /etc/containers/systemd for root)");
  cmd->add_option("-o,--output", f->output,
                  "write each unit into DIR (a systemd generator's directory) instead of printing them");
  SetCommand(cmd, ctx, [&ctx, f]() -> Expected<int> {
    std::vector<std::string> sources = f->sources;
    bool defaulted = sources.empty();
    if (defaulted)
      sources.push_back(DefaultQuadletDir());
    std::vector<std::pair<std::string, std::string>> files;  // name, path
    for (const auto& src : sources) {
      struct stat st{};
      if (::stat(src.c_str(), &st) != 0) {
        if (defaulted)
          return 0;  // nothing to generate, as a generator with no files
        return Error(Errc::kInvalidInput, src + ": no such file or directory");
      }
      if (S_ISDIR(st.st_mode)) {
        KILN_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirSorted(src));
        for (const auto& n : names)
          if (systemd::IsQuadletFile(n))
            files.emplace_back(n, src + "/" + n);
      } else {
        std::string n = src.substr(src.rfind('/') + 1);
        files.emplace_back(n, src);
      }
    }
    std::string exe = SelfExe();
    if (exe.empty())
      return Error::FromErrno("readlink /proc/self/exe");
    systemd::QuadletOptions opts{exe, ctx.StoreRoot()};
    // Volumes and networks first: containers and kube files use their names.
    std::stable_sort(files.begin(), files.end(), [](const auto& a, const auto& b) {
      auto rank = [](const std::string& n) { return n.ends_with(".volume") || n.ends_with(".network") ? 0 : 1; };
      return rank(a.first) < rank(b.first);
    });
    int failed = 0;
    for (const auto& [name, path] : files) {
      auto text = ReadFile(path, 1 << 20);
      auto unit = text ? systemd::Quadlet(name, path, *text, opts) : Expected<systemd::QuadletUnit>(text.error());
      if (!unit) {
        LogError(unit.error().message());
        ++failed;
        continue;
      }
      if (!unit->object.empty())
        opts.objects[name] = unit->object;
      if (f->output.empty()) {
        std::printf("---%s---\n%s", unit->file_name.c_str(), unit->text.c_str());
        continue;
      }
      std::string out = f->output + "/" + unit->file_name;
      KILN_TRY(WriteFileAtomic(out, unit->text, 0644));
      std::printf("%s\n", out.c_str());
    }
    return failed ? 1 : 0;
  });
}

}  // namespace kiln::cli
