// kiln images [-a] [-q] [--no-trunc] [--digests] [--filter K=V]... [--sort KEY] [--noheading]
// [--format json|TEMPLATE]: podman's fields, filters and table (docs/format.md).
#include <algorithm>
#include <cstdio>
#include <set>

#include <fnmatch.h>

#include <map>

#include "cli/format_util.h"
#include "cli/image_util.h"
#include "kiln/reference.h"

namespace kiln::cli {

namespace {

struct Row {
  std::string repo, tag, id, created, size;
};

// -q, --noheading, -f and --format are ListFlags' (registered in podman's order below).
struct Flags : ListFlags {
  bool all = false, no_trunc = false, digests = false;
  std::string sort = "created";
};

// One image: its --format json object and its table rows (one per name).
struct Item {
  nlohmann::json j;
  std::vector<Row> rows;
  std::string id;  // as printed
};

std::string Short(const std::string& name) {
  for (const char* p : {"docker.io/library/", "docker.io/", "localhost/"})
    if (name.rfind(p, 0) == 0)
      return name.substr(std::string(p).size());
  return name;
}

// podman's images --filter: one key ORs its values, keys AND.
Status MatchFilters(const std::vector<std::string>& specs, const std::vector<Item>& items, std::vector<Item>& out) {
  KILN_ASSIGN_OR_RETURN(auto filter, ListFilter::Parse(specs, {"dangling", "label", "reference", "before", "since", "id"},
                                                      [](const std::string& key) {
                                                        return "unsupported image filter \"" + key +
                                                               "\" (dangling, label, reference, before, since, id)";
                                                      }));
  const auto& by_key = filter.by_key();
  if (by_key.count("dangling"))
    for (const auto& v : by_key.at("dangling"))
      if (v != "true" && v != "false")
        return Error(Errc::kInvalidInput, "--filter dangling=" + v + ": expected true or false");
  auto created = [](const Item& i) { return i.j.value("Created", int64_t{0}); };
  auto find = [&](const std::string& v) -> const Item* {
    for (const auto& i : items) {
      std::string hex = i.j.value("Id", "");
      if (v.size() >= 3 && (hex.rfind(v, 0) == 0 || ("sha256:" + hex).rfind(v, 0) == 0))
        return &i;
      for (const auto& n : i.j.value("Names", std::vector<std::string>{}))
        for (const auto& c : CandidateNames(v))
          if (n == c)
            return &i;
    }
    return nullptr;
  };
  for (const auto& [key, values] : by_key)
    if (key == "before" || key == "since")
      for (const auto& v : values)
        if (!find(v))
          return Error(Errc::kNotFound, "--filter " + key + "=" + v + ": image not known");
  for (const auto& item : items) {
    const nlohmann::json& j = item.j;
    std::vector<std::string> names = j.value("Names", std::vector<std::string>{});
    bool keep = filter.Match([&](const std::string& key, const std::string& v, size_t) {
      if (key == "dangling")
        return (v == "true") == names.empty();
      if (key == "label")
        return LabelMatches(j.value("Labels", nlohmann::json::object()), v);
      if (key == "reference") {
        for (const auto& n : names) {
          std::string repo = n.substr(0, n.rfind(':') != std::string::npos && n.rfind(':') > n.rfind('/')
                                             ? n.rfind(':')
                                             : std::string::npos);
          for (const std::string& form : {n, repo, Short(n), Short(repo)})
            if (::fnmatch(v.c_str(), form.c_str(), 0) == 0)
              return true;
        }
        return false;
      }
      if (key == "id") {
        std::string hex = j.value("Id", "");
        return hex.rfind(v.rfind("sha256:", 0) == 0 ? v.substr(7) : v, 0) == 0;
      }
      // before, since
      const Item* other = find(v);
      return key == "before" ? created(item) < created(*other) : created(item) > created(*other);
    });
    if (keep)
      out.push_back(item);
  }
  return Ok();
}

int ImagesCommand(Context& ctx, const Flags& f) {
  bool quiet = f.quiet, no_trunc = f.no_trunc;
  static const char* const kSorts[] = {"created", "id", "repository", "size", "tag"};
  if (std::find(std::begin(kSorts), std::end(kSorts), f.sort) == std::end(kSorts))
    return ReportFormatError(Error(Errc::kInvalidInput, "\"" + f.sort +
                                                            "\" is not a valid field for sorting. Choose from: "
                                                            "created, id, repository, size, tag"));
  auto store = OpenImageStore(ctx);
  if (!store)
    return ReportError(store.error());
  auto entries = store->ListImages();
  if (!entries)
    return ReportError(entries.error());
  std::vector<Item> items;
  for (const auto& e : *entries) {
    Item& item = items.emplace_back();
    std::vector<Row>& rows = item.rows;
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
        item.id = id;
        item.j = nlohmann::json({{"Id", e.descriptor.digest.hex()}, {"Names", e.names}, {"RepoTags", e.names},
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
      item.id = id;
      item.j = nlohmann::json({{"Id", idd.hex()}, {"Names", e.names}, {"RepoTags", e.names},
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
    item.id = id;
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
                        {"History", e.names},
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
    item.j = j;
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
  std::vector<Item> kept;
  if (auto st = MatchFilters(f.filters, items, kept); !st)
    return ReportFormatError(st.error());  // podman: 125 for a bad filter
  // newest first; --sort picks another key
  auto key = [&](const Item& i) -> std::string {
    if (f.sort == "id") return i.j.value("Id", "");
    if (f.sort == "repository") return i.rows.empty() ? "" : i.rows[0].repo;
    if (f.sort == "tag") return i.rows.empty() ? "" : i.rows[0].tag;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%020lld",
                  static_cast<long long>(f.sort == "size" ? i.j.value("Size", int64_t{0}) : i.j.value("Created", int64_t{0})));
    return buf;
  };
  std::stable_sort(kept.begin(), kept.end(), [&](const Item& a, const Item& b) {
    return f.sort == "created" ? key(a) > key(b) : key(a) < key(b);
  });
  if (quiet) {
    std::set<std::string> printed;
    for (const auto& i : kept)
      if (printed.insert(i.id).second)
        std::printf("%s\n", i.id.c_str());
    return 0;
  }
  std::vector<nlohmann::json> json_rows, tmpl_rows;
  for (const auto& i : kept) {
    json_rows.push_back(i.j);
    for (const auto& r : i.rows) {
      // podman's image fields: the JSON object's, and per name these
      nlohmann::json t = i.j;
      std::string created_at = i.j.value("CreatedAt", "");
      t["ID"] = r.id;
      t["Repository"] = r.repo;
      t["Tag"] = r.tag;
      t["Created"] = r.created;
      t["CreatedSince"] = r.created;
      t["CreatedAt"] = GoTime(created_at);
      t["CreatedTime"] = GoTime(created_at);
      t["Size"] = r.size;
      t["ReadOnly"] = false;
      t["History"] = i.j.value("Names", std::vector<std::string>{});
      if (!t.contains("Labels") || t["Labels"].is_null())
        t["Labels"] = nlohmann::json::object();
      if (!t.contains("Digest"))
        t["Digest"] = "";
      tmpl_rows.push_back(std::move(t));
    }
  }
  format::ListOptions o;
  o.default_format = f.digests ? "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.Created}}\t{{.Size}}"
                               : "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Created}}\t{{.Size}}";
  o.headers = {{"ID", "IMAGE ID"}, {"ReadOnly", "R/O"}};
  o.template_options = TemplateOptions("images", "images.imageReporter");
  return f.Print(o, json_rows, tmpl_rows, 4);
}

}  // namespace

void AddImagesCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("images", "list the images in the store");
  auto f = std::make_shared<Flags>();
  cmd->add_flag("-a,--all", f->all, "show all images (kiln keeps no hidden intermediate images)");
  cmd->add_flag("-q,--quiet", f->quiet, "print only the image IDs");
  cmd->add_flag("--no-trunc", f->no_trunc, "print full image IDs");
  cmd->add_flag("--digests", f->digests, "show the manifest digests (DIGEST column)");
  cmd->add_option("-f,--filter", f->filters,
                  "dangling=true|false, label=KEY[=VALUE], reference=PATTERN, before=IMAGE, since=IMAGE, "
                  "id=PREFIX; a key's values OR, keys AND");
  cmd->add_option("--sort", f->sort, "created (default, newest first), id, repository, size, tag");
  cmd->add_flag("--noheading,-n", f->no_heading, "leave out the header row of a table");
  cmd->add_option("--format", f->format,
                  "json, a Go template ({{.Repository}}:{{.Tag}}), or table TEMPLATE (docs/format.md)");
  SetAction(cmd, ctx, [&ctx, f] { return ImagesCommand(ctx, *f); });
}

}  // namespace kiln::cli
