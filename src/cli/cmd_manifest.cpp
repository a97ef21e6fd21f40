// kiln manifest create|add|remove|inspect|push: assembling image indexes
// (manifest lists) from separately built or pulled images, as podman's
// commands of the same name. See docs/multiplatform.md.
//
//   kiln manifest create [--amend] [--all] LIST [IMAGE...]
//   kiln manifest add [--all] [--platform P] [--os OS] [--arch ARCH] [--variant V]
//                     [--os-version V] [--features F] [--annotation K=V] LIST IMAGE
//   kiln manifest remove LIST DIGEST
//   kiln manifest inspect LIST
//   kiln manifest push [--all] [--rm] [--tls-verify=false] [--authfile F] [--cert-dir D] [-q]
//                      [--digestfile F] LIST [DESTINATION]
#include <algorithm>
#include <cstdio>

#include "cli/image_util.h"
#include "kiln/acquire.h"
#include "kiln/fs.h"
#include "kiln/reference.h"
#include "kiln/registry.h"
#include "kiln/transport.h"

namespace kiln::cli {
namespace {

/// A manifest list of the store: its index.json entry and its content.
struct StoredList {
  Descriptor top;
  std::vector<std::string> names;
  Index index;
};

Error Usage(std::string msg) { return Error(Errc::kInvalidInput, std::move(msg)); }

/// Finds the list called `text` (a name, or the index digest). kNotFound
/// when absent; kInvalidInput when `text` names an image that is no list.
Expected<StoredList> FindList(Store& store, const std::string& text) {
  KILN_ASSIGN_OR_RETURN(std::vector<ImageEntry> images, store.ListImages());
  std::vector<std::string> candidates = CandidateNames(text);
  const ImageEntry* found = nullptr;
  for (const auto& e : images) {
    for (const auto& c : candidates)
      if (std::find(e.names.begin(), e.names.end(), c) != e.names.end())
        found = &e;
    if (!found && (e.descriptor.digest.str() == text || e.descriptor.digest.hex() == text))
      found = &e;
    if (found)
      break;
  }
  if (!found)
    return Error(Errc::kNotFound, text + ": no manifest list of that name (create it with kiln manifest create)");
  if (!IsIndexMediaType(found->descriptor.media_type))
    return Usage(text + ": is an image, not a manifest list");
  StoredList l;
  l.top = found->descriptor;
  l.names = found->names;
  KILN_ASSIGN_OR_RETURN(l.index, store.ReadIndex(found->descriptor.digest));
  return l;
}

/// The image store and the list `text` in it, as the list commands start.
struct OpenedList {
  Store store;
  StoredList list;
};
Expected<OpenedList> OpenList(const Context& ctx, const std::string& text) {
  KILN_ASSIGN_OR_RETURN(Store store, OpenImageStore(ctx));
  KILN_ASSIGN_OR_RETURN(StoredList list, FindList(store, text));
  return OpenedList{std::move(store), std::move(list)};
}

/// Stores `index` and names it `names` (moving the names from the old list).
Expected<Descriptor> SaveList(Store& store, const Index& index, const std::vector<std::string>& names) {
  KILN_ASSIGN_OR_RETURN(Descriptor top, store.PutBlob(index.media_type, ToJson(index)));
  KILN_TRY(store.AddImage(top, names));
  return top;
}

struct PlatformOverride {
  std::string platform, os, arch, variant, os_version;
  std::vector<std::string> features;
  std::vector<std::string> annotations;
};

/// The list entry for one image: its manifest, with its platform.
Descriptor EntryOf(const StoredImage& img) {
  Descriptor d = img.manifest_descriptor;
  d.annotations.clear();
  d.platform = img.config.platform();
  return d;
}

/// The manifests `image_text` contributes: a local image (or a registry
/// image, pulled first) -- one manifest, or with `all` every manifest of an
/// index.
Expected<std::vector<Descriptor>> ManifestsOf(Store& store, const std::string& image_text, bool all,
                                              const TransferOptions& pull_options) {
  // docker://REF is always pulled; anything else is the stored image if
  // there is one (the host's manifest of an index), else pulled.
  bool remote_only = image_text.rfind("docker://", 0) == 0;
  auto img = remote_only ? Expected<StoredImage>(Error(Errc::kNotFound, "")) : image::ResolveLocal(store, image_text);
  if (!img) {
    if (img.error().code() != Errc::kNotFound)
      return std::move(img).error();
    KILN_TRY(ParseImageTransport(image_text));
    image::AcquireOptions ao;
    ao.platform = pull_options.platform;
    ao.transfer = pull_options;
    ao.transfer.all_platforms = all;
    img = image::Pull(store, image_text, ao);
    if (!img)
      return std::move(img).error();
  }
  std::vector<Descriptor> out;
  if (all && IsIndexMediaType(img->top.media_type)) {
    KILN_ASSIGN_OR_RETURN(Index idx, store.ReadIndex(img->top.digest));
    for (const Descriptor& d : idx.manifests)
      if (store.HasBlob(d.digest))
        out.push_back(d);
    return out;
  }
  out.push_back(EntryOf(*img));
  return out;
}

Status ApplyOverride(Descriptor& d, const PlatformOverride& o) {
  Platform p = d.platform.value_or(Platform{});
  if (!o.platform.empty()) {
    KILN_ASSIGN_OR_RETURN(Platform parsed, Platform::Parse(o.platform));
    p.os = parsed.os;
    p.architecture = parsed.architecture;
    p.variant = parsed.variant;
  }
  if (!o.os.empty())
    p.os = o.os;
  if (!o.arch.empty()) {
    KILN_ASSIGN_OR_RETURN(Platform parsed, Platform::Parse(p.os.empty() ? o.arch : p.os + "/" + o.arch));
    p.architecture = parsed.architecture;
    if (o.variant.empty())
      p.variant = parsed.variant;
  }
  if (!o.variant.empty())
    p.variant = o.variant;
  if (!o.os_version.empty())
    p.os_version = o.os_version;
  if (!o.features.empty())
    p.os_features = o.features;
  if (!p.os.empty() || !p.architecture.empty())
    d.platform = p;
  for (const std::string& a : o.annotations) {
    size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0)
      return Usage("--annotation " + a + ": want KEY=VALUE");
    d.annotations[a.substr(0, eq)] = a.substr(eq + 1);
  }
  return Ok();
}

/// Adds (or replaces, by digest) `manifests` in `index`.
void AddToIndex(Index& index, const std::vector<Descriptor>& manifests) {
  for (const Descriptor& d : manifests) {
    std::erase_if(index.manifests, [&](const Descriptor& e) { return e.digest == d.digest; });
    index.manifests.push_back(d);
  }
}

TransferOptions PullOptionsFrom(const RegistryFlags& registry, const PlatformOverride& o) {
  TransferOptions to = registry.Options(true);
  if (!o.platform.empty())
    if (auto p = Platform::Parse(o.platform))
      to.platform = *p;
  return to;
}

void PrintDigest(const Descriptor& top) { std::printf("%s\n", top.digest.str().c_str()); }

/// SaveList(), then prints the list's new digest; the command's exit code.
int SaveListAndPrint(Store& store, const Index& index, const std::vector<std::string>& names) {
  auto top = SaveList(store, index, names);
  if (!top)
    return ReportError(top.error());
  PrintDigest(*top);
  return 0;
}

}  // namespace

void AddManifestCommand(CLI::App& app, Context& ctx) {
  auto* manifest = app.add_subcommand("manifest", "create, edit, inspect and push manifest lists (image indexes)");
  manifest->require_subcommand(1);

  // create
  {
    struct Flags {
      std::string list;
      std::vector<std::string> images;
      bool amend = false, all = false;
      RegistryFlags registry;
    };
    auto f = std::make_shared<Flags>();
    auto* cmd = manifest->add_subcommand("create", "create a manifest list, optionally holding IMAGEs");
    cmd->add_flag("-a,--amend", f->amend, "modify the list if it exists already instead of failing");
    cmd->add_flag("--all", f->all, "add every manifest of IMAGEs that are lists themselves");
    f->registry.Add(cmd, false);
    cmd->add_option("list", f->list, "name of the new list (\"name\" means localhost/name:latest)")->required();
    cmd->add_option("images", f->images, "images (local, or registry references) to add");
    SetAction(cmd, ctx, [&ctx, f] {
      auto name = NormalizeNewName(f->list);
      if (!name)
        return ReportError(name.error());
      auto store = OpenImageStore(ctx);
      if (!store)
        return ReportError(store.error());
      Index index;
      auto existing = FindList(*store, *name);
      if (existing) {
        if (!f->amend)
          return ReportError(Usage(f->list + ": a manifest list of that name exists (use --amend to modify it)"));
        index = existing->index;
      } else if (existing.error().code() != Errc::kNotFound) {
        if (!f->amend || existing.error().code() != Errc::kInvalidInput)
          return ReportError(Usage(f->list + ": an image of that name exists"));
      }
      TransferOptions to = PullOptionsFrom(f->registry, {});
      for (const std::string& image : f->images) {
        auto ms = ManifestsOf(*store, image, f->all, to);
        if (!ms)
          return ReportError(std::move(ms).error().WithContext("manifest create: " + image));
        AddToIndex(index, *ms);
      }
      return SaveListAndPrint(*store, index, {*name});
    });
  }

  // add
  {
    struct Flags {
      std::string list, image;
      RegistryFlags registry;
      bool all = false;
      PlatformOverride o;
    };
    auto f = std::make_shared<Flags>();
    auto* cmd = manifest->add_subcommand("add", "add an image's manifest to a manifest list");
    cmd->add_flag("--all", f->all, "when IMAGE is a list, add all of its manifests");
    cmd->add_option("--platform", f->o.platform,
                    "os/arch[/variant]: the platform to record (and to pick from a list IMAGE)");
    cmd->add_option("--os", f->o.os, "override the operating system recorded for the image");
    cmd->add_option("--arch", f->o.arch, "override the architecture recorded for the image");
    cmd->add_option("--variant", f->o.variant, "override the architecture variant recorded for the image");
    cmd->add_option("--os-version", f->o.os_version, "record this OS version for the image");
    cmd->add_option("--features", f->o.features, "record these OS features (repeatable)")->allow_extra_args(false);
    cmd->add_option("--annotation", f->o.annotations, "KEY=VALUE annotation on the entry (repeatable)")
        ->allow_extra_args(false);
    f->registry.Add(cmd);
    cmd->add_option("list", f->list, "the manifest list")->required();
    cmd->add_option("image", f->image, "local image (name, ID, digest) or registry reference (docker://REF)")
        ->required();
    SetAction(cmd, ctx, [&ctx, f] {
      auto opened = OpenList(ctx, f->list);
      if (!opened)
        return ReportError(opened.error());
      auto& [store, list] = *opened;
      if (!f->o.platform.empty())
        if (auto p = Platform::Parse(f->o.platform); !p)
          return ReportError(Usage("--platform " + f->o.platform + ": " + p.error().message()));
      TransferOptions to = PullOptionsFrom(f->registry, f->o);
      std::vector<Descriptor> ms;
      if (!f->o.platform.empty() && !f->all) {
        // Pick the platform from a list IMAGE; a single image keeps its own.
        auto img = image::ResolveLocal(store, f->image, to.platform);
        if (img)
          ms.push_back(EntryOf(*img));
      }
      if (ms.empty()) {
        auto got = ManifestsOf(store, f->image, f->all, to);
        if (!got)
          return ReportError(std::move(got).error().WithContext("manifest add: " + f->image));
        ms = std::move(*got);
      }
      for (Descriptor& d : ms)
        if (auto s = ApplyOverride(d, f->o); !s)
          return ReportError(s.error());
      AddToIndex(list.index, ms);
      return SaveListAndPrint(store, list.index, list.names);
    });
  }

  // remove
  {
    struct Flags {
      std::string list, digest;
    };
    auto f = std::make_shared<Flags>();
    auto* cmd = manifest->add_subcommand("remove", "remove an entry (by manifest digest) from a manifest list");
    cmd->alias("rm-entry");
    cmd->add_option("list", f->list, "the manifest list")->required();
    cmd->add_option("digest", f->digest, "sha256:... digest of the manifest to remove")->required();
    SetAction(cmd, ctx, [&ctx, f] {
      auto d = Digest::Parse(f->digest);
      if (!d)
        return ReportError(Usage("manifest remove: " + f->digest + ": not a digest (want sha256:<64 hex>)"));
      auto opened = OpenList(ctx, f->list);
      if (!opened)
        return ReportError(opened.error());
      auto& [store, list] = *opened;
      size_t before = list.index.manifests.size();
      std::erase_if(list.index.manifests, [&](const Descriptor& e) { return e.digest == *d; });
      if (list.index.manifests.size() == before)
        return ReportError(Error(Errc::kNotFound, "manifest remove: " + f->list + " has no entry " + f->digest));
      return SaveListAndPrint(store, list.index, list.names);
    });
  }

  // inspect
  {
    struct Flags {
      std::string list;
      RegistryFlags registry;
    };
    auto f = std::make_shared<Flags>();
    auto* cmd = manifest->add_subcommand("inspect", "print a manifest list (local, else from its registry) as JSON");
    f->registry.Add(cmd);
    cmd->add_option("list", f->list, "the manifest list: a local name, or a registry reference")->required();
    SetAction(cmd, ctx, [&ctx, f] {
      auto store = OpenImageStore(ctx);
      if (!store)
        return ReportError(store.error());
      std::string body;
      auto list = f->list.rfind("docker://", 0) == 0 ? Expected<StoredList>(Error(Errc::kNotFound, ""))
                                                     : FindList(*store, f->list);
      if (list) {
        auto raw = store->ReadBlob(list->top.digest);
        if (!raw)
          return ReportError(raw.error());
        body = *raw;
      } else if (list.error().code() == Errc::kNotFound) {
        // As podman: a name not in the store is looked up in its registry.
        std::string text = f->list.rfind("docker://", 0) == 0 ? f->list.substr(9) : f->list;
        auto ref = ImageReference::Parse(text);
        if (!ref)
          return ReportError(list.error());
        TransferOptions to = f->registry.Options(false);
        auto client = registry::RegistryClient::Create(ref->domain, registry::ClientOptionsFrom(to));
        if (!client)
          return ReportError(client.error());
        auto mb = (*client)->GetManifest(ref->path, ref->TagOrDigest());
        if (!mb)
          return ReportError(std::move(mb).error().WithContext("manifest inspect " + ref->str()));
        body = mb->body;
      } else {
        return ReportError(list.error());
      }
      std::printf("%s\n", nlohmann::json::parse(body, nullptr, false).dump(4).c_str());
      return 0;
    });
  }

  // push
  {
    struct Flags {
      std::string list, destination, digestfile;
      RegistryFlags registry;
      bool all = true, rm = false, quiet = false;
    };
    auto f = std::make_shared<Flags>();
    auto* cmd = manifest->add_subcommand("push", "push a manifest list with its images (by digest first, then the "
                                                 "list) to a registry or a local transport");
    cmd->add_flag("--all", f->all, "push the images of the list too (default true; they always are)");
    cmd->add_flag("--rm", f->rm, "remove the list from the store after a successful push");
    f->registry.Add(cmd);
    cmd->add_option("--digestfile", f->digestfile, "write the list's digest to this file");
    cmd->add_flag("-q,--quiet", f->quiet, "print nothing but errors");
    cmd->add_option("list", f->list, "the manifest list")->required();
    cmd->add_option("destination", f->destination,
                    "docker://REF (default: the list's name), oci:DIR[:TAG] or oci-archive:FILE[:TAG]");
    SetAction(cmd, ctx, [&ctx, f] {
      auto opened = OpenList(ctx, f->list);
      if (!opened)
        return ReportError(opened.error());
      auto& [store, list] = *opened;
      if (list.index.manifests.empty())
        return ReportError(Usage("manifest push: " + f->list + " is empty (kiln manifest add)"));
      for (const Descriptor& d : list.index.manifests)
        if (!store.HasBlob(d.digest))
          return ReportError(Error(Errc::kNotFound, "manifest push: manifest " + d.digest.str() + " of " + f->list +
                                                        " is not in the store"));
      std::string dest_text = f->destination;
      if (dest_text.empty()) {
        if (list.names.empty())
          return ReportError(Usage("manifest push " + f->list + ": the list has no name; give a DESTINATION"));
        dest_text = "docker://" + list.names.front();
      }
      auto dest = ParseImageTransport(dest_text);
      if (!dest)
        return ReportError(dest.error());
      if (dest->transport != "docker" && dest->transport != "oci" && dest->transport != "oci-archive")
        return ReportError(Usage("manifest push: " + dest->transport +
                                 ": cannot hold a manifest list (use docker://, oci: or oci-archive:)"));
      StoredImage image;
      image.top = list.top;
      image.manifest_descriptor = list.top;
      image.names = list.names;
      TransferOptions opts = f->registry.Options(f->quiet);
      if (auto s = PushImage(store, image, list.names.empty() ? "" : list.names.front(), *dest, opts); !s)
        return ReportError(s.error());
      if (!f->digestfile.empty())
        if (auto s = WriteFileAtomic(f->digestfile, list.top.digest.str()); !s)
          return ReportError(std::move(s).error().WithContext("--digestfile"));
      if (f->rm)
        if (auto s = store.RemoveImage(list.top.digest); !s)
          return ReportError(s.error());
      if (!f->quiet)
        PrintDigest(list.top);
      return 0;
    });
  }
}

}  // namespace kiln::cli
