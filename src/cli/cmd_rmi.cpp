// kiln rmi [-f] IMAGE...
//
// As podman (docs/images.md): NAME removes that name (the image goes with
// its last one); ID or digest removes the image with all its names (-f when
// it has several); an image a container uses is refused (exit 2, "image used
// by ID: image is in use by a container") unless -f, which removes those
// containers first; a damaged image (a blob missing) is removed with a
// warning; an ID that matches several images is refused, listing them.
#include <cstdio>
#include <set>

#include "cli/image_util.h"
#include "kiln/events.h"
#include "kiln/reference.h"
#include "kiln/run.h"

namespace kiln::cli {

run::Paths RunPaths(const Context& ctx);

namespace {

/// The name of `e` that `text` spells (short names as ResolveImage reads
/// them), or "".
std::string NameMatched(const ImageEntry& e, std::string_view text) {
  StoredImage img;
  img.names = e.names;
  return MatchedName(img, text);
}

/// The image IDs (config digests) of an entry, as far as its blobs tell.
std::set<std::string> EntryIds(const Store& store, const ImageEntry& e) {
  std::set<std::string> ids;
  if (IsIndexMediaType(e.descriptor.media_type)) {
    if (auto idx = store.ReadIndex(e.descriptor.digest))
      for (const auto& d : idx->manifests)
        if (IsManifestMediaType(d.media_type))
          if (auto m = store.ReadManifest(d.digest))
            ids.insert(m->config.digest.str());
  } else if (auto m = store.ReadManifest(e.descriptor.digest)) {
    ids.insert(m->config.digest.str());
  }
  return ids;
}

/// An entry's image ID for its events (64 hex; the digest when unreadable).
std::string EventId(const Store& store, const ImageEntry& e) {
  auto ids = EntryIds(store, e);
  return ids.empty() ? e.descriptor.digest.hex() : Digest::Parse(*ids.begin())->hex();
}

/// How `kiln images` shows an entry: its ID (12 hex) or, when even the
/// manifest is gone, its digest; with its names.
std::string Describe(const Store& store, const ImageEntry& e) {
  auto ids = EntryIds(store, e);
  std::string s = ids.size() == 1 ? Digest::Parse(*ids.begin())->hex().substr(0, 12) : e.descriptor.digest.str();
  s += " (";
  if (e.names.empty())
    s += "<none>";
  for (size_t i = 0; i < e.names.size(); ++i)
    s += (i ? ", " : "") + e.names[i];
  return s + ")";
}

int RmiCommand(Context& ctx, const std::vector<std::string>& images, bool force) {
  auto store = OpenImageStore(ctx);
  if (!store)
    return ReportError(store.error());
  run::Paths paths = RunPaths(ctx);
  int status = 0;
  bool removed_any = false;
  auto fail = [&](const Error& e, int code = 0) {
    int rc = ReportError(e);
    status = code ? code : rc;
  };
  for (const auto& arg : images) {
    auto found = store->FindImageEntries(arg);
    if (!found) {
      fail(found.error());
      continue;
    }
    std::vector<ImageEntry> entries = std::move(*found);
    if (entries.size() > 1) {
      // An ID that matches several images (an ambiguous prefix, or one ID in
      // several entries: a manifest and an index holding it). Removing one
      // and printing "Deleted" while an image with that ID stays listed
      // would mislead; -f removes them all when they share one ID.
      std::set<std::string> ids;
      for (const auto& e : entries)
        for (const auto& id : EntryIds(*store, e))
          ids.insert(id);
      if (!force || ids.size() != 1) {
        std::string list;
        for (const auto& e : entries)
          list += (list.empty() ? "" : ", ") + Describe(*store, e);
        fail(Error(Errc::kInvalidInput, "image ID \"" + arg + "\" is ambiguous: it matches " +
                                            std::to_string(entries.size()) + " images: " + list +
                                            (ids.size() == 1 ? "; use a name or digest, or --force to remove them all"
                                                             : "; use more digits, a name or a digest")));
        continue;
      }
    }
    const ImageEntry& first = entries.front();
    std::string name = entries.size() == 1 ? NameMatched(first, arg) : std::string();
    std::vector<std::string> missing = store->MissingBlobs(first.descriptor);
    if (!name.empty() && first.names.size() > 1) {
      // Only this name goes; the image keeps its other names.
      if (auto s = store->RemoveName(name); !s) {
        fail(s.error());
        continue;
      }
      std::printf("Untagged: %s\n", name.c_str());
      events::Record(ctx.StoreRoot(), "image", "untag", EventId(*store, first), name);
      continue;
    }
    if (name.empty() && entries.size() == 1 && first.names.size() > 1 && !force) {
      fail(Error(Errc::kFailed, "unable to delete image \"" + arg + "\" by ID with more than one name (" +
                                    std::to_string(first.names.size()) + "): remove the names or use --force"));
      continue;
    }
    // Containers that use it (podman: refused without -f; -f removes them).
    std::set<std::string> ids;
    for (const auto& e : entries)
      for (const auto& id : EntryIds(*store, e))
        ids.insert(id);
    std::vector<run::ContainerInfo> users;
    if (auto ctrs = run::ListContainers(paths, true)) {
      for (auto& c : *ctrs)
        if (ids.count(c.image_id))
          users.push_back(std::move(c));
    }
    if (!users.empty() && !force) {
      fail(Error(Errc::kFailed, "image used by " + users.front().id +
                                    ": image is in use by a container: remove the container or use rmi -f"),
           2);
      continue;
    }
    bool ctr_failed = false;
    for (const auto& c : users) {
      if (auto s = run::RemoveContainer(paths, c.id, true); !s) {
        fail(s.error());
        ctr_failed = true;
        break;
      }
    }
    if (ctr_failed)
      continue;
    if (!missing.empty())
      std::fprintf(stderr, "kiln: warning: image %s is damaged (missing %s%s): removing it\n", arg.c_str(),
                   missing.front().c_str(),
                   missing.size() > 1 ? (" and " + std::to_string(missing.size() - 1) + " more").c_str() : "");
    bool ok = true;
    for (const auto& e : entries) {
      for (const auto& n : e.names) {
        std::printf("Untagged: %s\n", n.c_str());
        events::Record(ctx.StoreRoot(), "image", "untag", EventId(*store, e), n);
      }
      if (auto s = store->RemoveImage(e.descriptor.digest); !s) {
        fail(s.error());
        ok = false;
        break;
      }
    }
    if (!ok)
      continue;
    if (ids.empty())
      std::printf("Deleted: %s\n", first.descriptor.digest.hex().c_str());
    for (const auto& id : ids)
      std::printf("Deleted: %s\n", Digest::Parse(id)->hex().c_str());
    events::Record(ctx.StoreRoot(), "image", "remove", EventId(*store, first), arg);
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
  cmd->add_flag("-f,--force",
                *force, "remove an image with several names or several matches, and the containers that use it");
  cmd->add_option("images", *images, "image names, IDs or digests")->required();
  SetAction(
      cmd, ctx, [&ctx, images, force] { return RmiCommand(ctx, *images, *force); }, kNotFoundFails);
}

}  // namespace kiln::cli
