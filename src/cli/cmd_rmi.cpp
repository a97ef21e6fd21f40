// kiln rmi [-f] IMAGE...
#include <dirent.h>
#include <sys/stat.h>

#include <cstdio>

#include "cli/image_util.h"
#include "kiln/fs.h"

namespace kiln::cli {

namespace {

/// True when a container record (containers/**/*.json) mentions `id`.
bool UsedByContainer(const std::string& dir, const std::string& id, int depth = 0) {
  if (depth > 3)
    return false;
  DIR* d = ::opendir(dir.c_str());
  if (!d)
    return false;
  bool found = false;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..")
      continue;
    std::string p = JoinPath(dir, n);
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0)
      continue;
    if (S_ISDIR(st.st_mode)) {
      found = UsedByContainer(p, id, depth + 1);
    } else if (S_ISREG(st.st_mode) && n.size() > 5 && n.compare(n.size() - 5, 5, ".json") == 0) {
      auto text = ReadFile(p, 4 << 20);
      found = text && text->find(id) != std::string::npos;
    }
    if (found)
      break;
  }
  ::closedir(d);
  return found;
}

int RmiCommand(Context& ctx, const std::vector<std::string>& images, bool force) {
  auto store = OpenImageStore(ctx);
  if (!store)
    return ReportError(store.error());
  int status = 0;
  bool removed_any = false;
  for (const auto& arg : images) {
    auto img = store->ResolveImage(arg);
    if (!img) {
      status = ReportError(img.error());
      continue;
    }
    std::string name = MatchedName(*img, arg);
    if (!name.empty() && img->names.size() > 1) {
      // Only this name goes; the image keeps its other names.
      if (auto s = store->RemoveName(name); !s) {
        status = ReportError(s.error());
        continue;
      }
      std::printf("Untagged: %s\n", name.c_str());
      continue;
    }
    if (name.empty() && img->names.size() > 1 && !force) {
      status = ReportError(Error(Errc::kFailed, "unable to delete image \"" + arg + "\" by ID with more than one "
                                                "name (" + std::to_string(img->names.size()) +
                                                "): remove the names or use --force"));
      continue;
    }
    if (!force && UsedByContainer(store->ContainersDir(), img->id().hex())) {
      status = ReportError(Error(Errc::kFailed, "image \"" + arg + "\" is in use by a container: "
                                                "remove the container or use --force"));
      continue;
    }
    for (const auto& n : img->names)
      std::printf("Untagged: %s\n", n.c_str());
    if (auto s = store->RemoveImage(img->top.digest); !s) {
      status = ReportError(s.error());
      continue;
    }
    std::printf("Deleted: %s\n", img->id().hex().c_str());
    removed_any = true;
  }
  if (removed_any) {
    // Free the space now if no other kiln process has the store open;
    // otherwise `kiln prune` does it later.
    (void)store->Prune({}, 0);
  }
  return status;
}

}  // namespace

void AddRmiCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("rmi", "remove images (or one of their names)");
  auto images = std::make_shared<std::vector<std::string>>();
  auto force = std::make_shared<bool>(false);
  cmd->add_flag("-f,--force", *force, "remove an image with several names, or one a container uses");
  cmd->add_option("images", *images, "image names, IDs or digests")->required();
  SetAction(cmd, ctx, [&ctx, images, force] { return RmiCommand(ctx, *images, *force); });
}

}  // namespace kiln::cli
