// kiln images [-a] [-q] [--no-trunc] [--format json|TEMPLATE]
#include <algorithm>
#include <cstdio>
#include <set>

#include "cli/image_util.h"
#include "kiln/reference.h"

namespace kiln::cli {

namespace {

struct Row {
  std::string repo, tag, id, created, size;
};

int ImagesCommand(Context& ctx, bool all, bool quiet, bool no_trunc, const std::string& format) {
  (void)all;  // every image of the store is listed; kiln keeps no intermediate images
  auto store = OpenImageStore(ctx);
  if (!store)
    return ReportError(store.error());
  auto entries = store->ListImages();
  if (!entries)
    return ReportError(entries.error());
  std::vector<Row> rows;
  nlohmann::json array = nlohmann::json::array();
  std::set<std::string> ids_printed;
  for (const auto& e : *entries) {
    auto img = store->LoadImage(e.descriptor);
    bool is_list = IsIndexMediaType(e.descriptor.media_type);
    if (!img && is_list) {
      // A manifest list without this host's platform: describe it by the
      // first platform it holds; an empty list by itself.
      auto idx = store->ReadIndex(e.descriptor.digest);
      if (idx)
        for (const Descriptor& d : idx->manifests)
          if (store->HasBlob(d.digest)) {
            img = store->LoadImage(e.descriptor, d.platform);
            break;
          }
      if (!img && idx && idx->manifests.empty()) {
        std::string id = no_trunc ? e.descriptor.digest.str() : ShortId(e.descriptor.digest);
        if (quiet) {
          if (ids_printed.insert(id).second)
            std::printf("%s\n", id.c_str());
          continue;
        }
        array.push_back({{"Id", e.descriptor.digest.hex()}, {"Names", e.names}, {"RepoTags", e.names},
                         {"Digest", e.descriptor.digest.str()}, {"Size", e.descriptor.size},
                         {"IsManifestList", true}, {"Dangling", e.names.empty()}});
        for (const auto& n : e.names) {
          auto ref = ImageReference::Parse(n);
          rows.push_back({ref ? ref->Name() : n, ref && !ref->tag.empty() ? ref->tag : "<none>", id, "",
                          HumanSize(e.descriptor.size)});
        }
        continue;
      }
    }
    // A damaged image (a blob of it missing) is listed, not hidden: SIZE
    // says "damaged", a warning names what is missing and the way out
    // (docs/images.md).
    std::vector<std::string> missing = store->MissingBlobs(e.descriptor);
    if (!missing.empty()) {
      std::string label = e.names.empty() ? e.descriptor.digest.str() : e.names.front();
      std::fprintf(stderr,
                   "kiln: warning: image %s is damaged: %s is missing%s; pull or load it again to repair it, "
                   "or remove it with kiln rmi\n",
                   label.c_str(), missing.front().c_str(),
                   missing.size() > 1 ? (" (and " + std::to_string(missing.size() - 1) + " more)").c_str() : "");
    }
    if (!img) {
      if (missing.empty()) {
        std::fprintf(stderr, "kiln: warning: image %s: %s\n", e.descriptor.digest.str().c_str(),
                     img.error().message().c_str());
        missing.push_back(img.error().message());
      }
      // Not even its config: show what index.json and the manifest tell.
      Digest idd = e.descriptor.digest;
      if (IsManifestMediaType(e.descriptor.media_type))
        if (auto m = store->ReadManifest(e.descriptor.digest))
          idd = m->config.digest;
      std::string id = no_trunc ? idd.str() : ShortId(idd);
      if (quiet) {
        if (ids_printed.insert(id).second)
          std::printf("%s\n", id.c_str());
        continue;
      }
      array.push_back({{"Id", idd.hex()}, {"Names", e.names}, {"RepoTags", e.names},
                       {"Digest", e.descriptor.digest.str()}, {"Dangling", e.names.empty()},
                       {"IsManifestList", is_list}, {"Damaged", true}, {"Missing", missing}});
      if (e.names.empty())
        rows.push_back({"<none>", "<none>", id, "", "damaged"});
      for (const auto& n : e.names) {
        auto ref = ImageReference::Parse(n);
        rows.push_back({ref ? ref->Name() : n, ref && !ref->tag.empty() ? ref->tag : "<none>", id, "", "damaged"});
      }
      continue;
    }
    img->names = e.names;
    std::string id = no_trunc ? img->id().str() : ShortId(img->id());
    if (quiet) {
      if (ids_printed.insert(id).second)
        std::printf("%s\n", id.c_str());
      continue;
    }
    int64_t created = ParseRfc3339(img->config.created).value_or(0);
    nlohmann::json j = {{"Id", img->id().hex()},
                        {"ParentId", ""},
                        {"RepoTags", e.names},
                        {"RepoDigests", nlohmann::json::array()},
                        {"Size", ImageSize(*img)},
                        {"SharedSize", 0},
                        {"VirtualSize", ImageSize(*img)},
                        {"Labels", img->config.config.labels.empty() ? nlohmann::json(nullptr)
                                                                      : nlohmann::json(img->config.config.labels)},
                        {"Containers", 0},
                        {"Names", e.names},
                        {"Digest", e.descriptor.digest.str()},
                        {"Created", created},
                        {"CreatedAt", img->config.created},
                        {"Dangling", e.names.empty()},
                        {"IsManifestList", is_list}};
    if (!missing.empty()) {
      j["Damaged"] = true;
      j["Missing"] = missing;
    }
    std::string size = missing.empty() ? HumanSize(ImageSize(*img)) : "damaged";
    for (const auto& n : e.names)
      if (auto ref = ImageReference::Parse(n))
        j["RepoDigests"].push_back(ref->Name() + "@" + e.descriptor.digest.str());
    array.push_back(j);
    if (e.names.empty()) {
      rows.push_back({"<none>", "<none>", id, HumanAgo(img->config.created), size});
      continue;
    }
    for (const auto& n : e.names) {
      auto ref = ImageReference::Parse(n);
      std::string repo = ref ? ref->Name() : n;
      std::string tag = ref && !ref->tag.empty() ? ref->tag : "<none>";
      rows.push_back({repo, tag, id, HumanAgo(img->config.created), size});
    }
  }
  if (quiet)
    return 0;
  if (format == "json") {
    std::printf("%s\n", array.dump(4).c_str());
    return 0;
  }
  if (!format.empty()) {
    for (const auto& j : array) {
      auto line = RenderTemplate(format, j);
      if (!line)
        return ReportError(line.error());
      std::printf("%s\n", line->c_str());
    }
    return 0;
  }
  size_t w_repo = 10, w_tag = 3, w_id = 8, w_created = 7;
  for (const auto& r : rows) {
    w_repo = std::max(w_repo, r.repo.size());
    w_tag = std::max(w_tag, r.tag.size());
    w_id = std::max(w_id, r.id.size());
    w_created = std::max(w_created, r.created.size());
  }
  auto line = [&](const Row& r) {
    std::printf("%-*s  %-*s  %-*s  %-*s  %s\n", static_cast<int>(w_repo), r.repo.c_str(), static_cast<int>(w_tag),
                r.tag.c_str(), static_cast<int>(w_id), r.id.c_str(), static_cast<int>(w_created),
                r.created.c_str(), r.size.c_str());
  };
  line({"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"});
  for (const auto& r : rows)
    line(r);
  return 0;
}

}  // namespace

void AddImagesCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("images", "list the images in the store");
  struct Flags {
    bool all = false, quiet = false, no_trunc = false;
    std::string format;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_flag("-a,--all", f->all, "show all images (kiln keeps no hidden intermediate images)");
  cmd->add_flag("-q,--quiet", f->quiet, "print only the image IDs");
  cmd->add_flag("--no-trunc", f->no_trunc, "print full image IDs");
  cmd->add_option("--format", f->format, "json, or a template over the JSON fields ({{.Id}} {{.Names}})");
  SetAction(cmd, ctx, [&ctx, f] { return ImagesCommand(ctx, f->all, f->quiet, f->no_trunc, f->format); });
}

}  // namespace kiln::cli
