// kiln history [--no-trunc] [-q] [--format json] IMAGE
#include <algorithm>
#include <cstdio>

#include "cli/image_util.h"

namespace kiln::cli {

namespace {

int HistoryCommand(Context& ctx, const std::string& name, bool no_trunc, bool quiet, const std::string& format) {
  auto store = OpenImageStore(ctx);
  if (!store)
    return ReportError(store.error());
  auto img = store->ResolveImage(name);
  if (!img)
    return ReportError(img.error());
  struct Row {
    std::string id, created, created_by, size, comment;
    nlohmann::json json;
  };
  std::vector<Row> rows;
  size_t layer = 0;
  const auto& hist = img->config.history;
  for (size_t i = 0; i < hist.size(); ++i) {
    const HistoryEntry& h = hist[i];
    int64_t size = 0;
    if (!h.empty_layer && layer < img->manifest.layers.size())
      size = img->manifest.layers[layer++].size;
    Row r;
    r.id = i + 1 == hist.size() ? (no_trunc ? img->id().str() : ShortId(img->id())) : "<missing>";
    r.created = HumanAgo(h.created);
    r.created_by = h.created_by;
    if (!no_trunc && r.created_by.size() > 45)
      r.created_by = r.created_by.substr(0, 42) + "...";
    r.size = HumanSize(size);
    r.comment = h.comment;
    r.json = {{"id", i + 1 == hist.size() ? img->id().hex() : "<missing>"},
              {"created", h.created},
              {"createdBy", h.created_by},
              {"size", size},
              {"comment", h.comment},
              {"emptyLayer", h.empty_layer}};
    rows.push_back(std::move(r));
  }
  std::reverse(rows.begin(), rows.end());  // newest first, as docker and podman
  if (quiet) {
    for (const auto& r : rows)
      std::printf("%s\n", r.id.c_str());
    return 0;
  }
  if (format == "json") {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& r : rows)
      a.push_back(r.json);
    std::printf("%s\n", a.dump(4).c_str());
    return 0;
  }
  size_t w_id = 8, w_created = 7, w_by = 10, w_size = 4;
  for (const auto& r : rows) {
    w_id = std::max(w_id, r.id.size());
    w_created = std::max(w_created, r.created.size());
    w_by = std::max(w_by, r.created_by.size());
    w_size = std::max(w_size, r.size.size());
  }
  auto line = [&](const std::string& a, const std::string& b, const std::string& c, const std::string& d,
                  const std::string& e) {
    std::printf("%-*s  %-*s  %-*s  %-*s  %s\n", static_cast<int>(w_id), a.c_str(), static_cast<int>(w_created),
                b.c_str(), static_cast<int>(w_by), c.c_str(), static_cast<int>(w_size), d.c_str(), e.c_str());
  };
  line("ID", "CREATED", "CREATED BY", "SIZE", "COMMENT");
  for (const auto& r : rows)
    line(r.id, r.created, r.created_by, r.size, r.comment);
  return 0;
}

}  // namespace

void AddHistoryCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("history", "show the history of an image");
  struct Flags {
    std::string image, format;
    bool no_trunc = false, quiet = false;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_flag("--no-trunc", f->no_trunc, "do not truncate IDs and commands");
  cmd->add_flag("-q,--quiet", f->quiet, "print only the IDs");
  cmd->add_option("--format", f->format, "json for machine-readable output")->check(CLI::IsMember({"json"}));
  cmd->add_option("image", f->image, "image name, ID or digest")->required();
  SetAction(cmd, ctx, [&ctx, f] { return HistoryCommand(ctx, f->image, f->no_trunc, f->quiet, f->format); });
}

}  // namespace kiln::cli
