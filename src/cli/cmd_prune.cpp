// kiln prune [--all] [--cache] [-f] [--dry-run] [--check]
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/image_util.h"
#include "kiln/log.h"
#include "kiln/run.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

namespace {

int CheckCommand(Store& store) {
  auto report = store.Check();
  if (!report)
    return ReportError(report.error());
  for (const auto& n : report->notes)
    std::printf("note: %s\n", n.c_str());
  for (const auto& p : report->problems)
    std::printf("problem: %s\n", p.c_str());
  std::printf("%s: %lld blobs, %lld images, %lld unpacked layers, %zu problems\n", store.root().c_str(),
              static_cast<long long>(report->blobs), static_cast<long long>(report->images),
              static_cast<long long>(report->layer_dirs), report->problems.size());
  if (!report->ok())
    return ReportError(Error(Errc::kCorrupt, "store " + store.root() + " is inconsistent"));
  return 0;
}

}  // namespace

bool Confirm(const std::string& warning) {
  if (!::isatty(STDIN_FILENO))
    return true;
  std::printf("%s\nAre you sure you want to continue? [y/N] ", warning.c_str());
  std::fflush(stdout);
  std::string answer;
  std::getline(std::cin, answer);
  return answer == "y" || answer == "Y" || answer == "yes";
}

void AddPruneCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("prune", "remove unused blobs, unpacked layers and temporary files");
  struct Flags {
    bool all = false, cache = false, force = false, dry_run = false, check = false;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_flag("-a,--all", f->all, "also remove unnamed images and every unpacked layer");
  cmd->add_flag("--cache", f->cache, "also remove the build cache");
  cmd->add_flag("-f,--force", f->force, "do not ask for confirmation");
  cmd->add_flag("--dry-run", f->dry_run, "only report what would be removed");
  cmd->add_flag("--check", f->check, "verify the store instead (every blob re-hashed); exit 1 when damaged");
  SetAction(cmd, ctx, [&ctx, f] {
    auto store = OpenImageStore(ctx);
    if (!store)
      return ReportError(store.error());
    if (f->check)
      return CheckCommand(*store);
    if (!f->force && !f->dry_run &&
        !Confirm(std::string("WARNING! This removes unused blobs and unpacked layers") +
                 (f->all ? ", unnamed images" : "") + (f->cache ? " and the build cache" : "") + "."))
      return 0;
    auto r = store->Prune({.all = f->all, .cache = f->cache, .dry_run = f->dry_run});
    if (!r)
      return ReportError(r.error());
    // What a killed run/rm left half-made (containers/.new-<id>, .rm-<id>, an
    // <id> without its config): never listed by ps, so prune removes it.
    if (!f->dry_run) {
      if (auto litter = run::RemoveContainerLitter(RunPaths(ctx)); !litter)
        LogWarn("prune: containers: " + litter.error().message());
    }
    std::printf("%s%lld images, %lld blobs (%s), %lld unpacked layers, %lld cache records, %lld temporary files\n",
                f->dry_run ? "would remove: " : "removed: ", static_cast<long long>(r->images_removed),
                static_cast<long long>(r->blobs_removed), HumanSize(r->bytes_freed).c_str(),
                static_cast<long long>(r->layer_dirs_removed), static_cast<long long>(r->cache_records_removed),
                static_cast<long long>(r->tmp_removed));
    return 0;
  });
}

}  // namespace kiln::cli
