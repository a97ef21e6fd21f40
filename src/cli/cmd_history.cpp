// kiln history [--no-trunc] [-q] [--noheading] [--format json|TEMPLATE] IMAGE
#include <algorithm>
#include <cstdio>

#include "cli/command.h"
#include "cli/format_util.h"
#include "cli/image_util.h"
#include "kiln/acquire.h"

namespace kiln::cli {

namespace {

Expected<int> HistoryCommand(Context& ctx, const std::string& name, bool no_trunc, bool quiet, bool no_heading,
                             const std::string& format) {
  KILN_ASSIGN_OR_RETURN(Store store, OpenImageStore(ctx));
  KILN_ASSIGN_OR_RETURN(StoredImage img, image::ResolveLocal(store, name));
  struct Row {
    std::string id, created, created_by, size, comment;
    nlohmann::json json;
  };
  std::vector<Row> rows;
  size_t layer = 0;
  const auto& hist = img.config.history;
  for (size_t i = 0; i < hist.size(); ++i) {
    const HistoryEntry& h = hist[i];
    int64_t size = 0;
    if (!h.empty_layer && layer < img.manifest.layers.size())
      size = img.manifest.layers[layer++].size;
    Row r;
    r.id = i + 1 == hist.size() ? (no_trunc ? img.id().str() : ShortId(img.id())) : "<missing>";
    r.created = HumanAgo(h.created);
    r.created_by = h.created_by;
    if (!no_trunc && r.created_by.size() > 45)
      r.created_by = r.created_by.substr(0, 42) + "...";
    r.size = HumanSize(size);
    r.comment = h.comment;
    r.json = {{"id", i + 1 == hist.size() ? img.id().hex() : "<missing>"},
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
  // podman's fields: .ID .Created .CreatedAt .CreatedSince .CreatedBy .Size .Comment .Tags
  std::vector<nlohmann::json> json_rows, tmpl_rows;
  for (const auto& r : rows) {
    json_rows.push_back(r.json);
    std::string created_at = r.json.value("created", "");
    tmpl_rows.push_back({{"ID", r.id},
                         {"Created", r.created},
                         {"CreatedSince", r.created},
                         {"CreatedAt", GoTime(created_at)},
                         {"CreatedBy", r.created_by},
                         {"Size", r.size},
                         {"Comment", r.comment},
                         {"Tags", nlohmann::json::array()}});
  }
  format::ListOptions o;
  o.default_format = "table {{.ID}}\t{{.Created}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
  o.headers = {{"CreatedBy", "CREATED BY"}};
  o.no_heading = no_heading;
  o.template_options.name = "history";
  o.template_options.type_name = "image.historyReporter";
  return PrintList(format, json_rows, tmpl_rows, o, 4);
}

}  // namespace

void AddHistoryCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("history", "show the history of an image");
  struct Flags {
    std::string image, format;
    bool no_trunc = false, quiet = false, no_heading = false;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_flag("--no-trunc", f->no_trunc, "do not truncate IDs and commands");
  cmd->add_flag("-q,--quiet", f->quiet, "print only the IDs");
  cmd->add_flag("--noheading,-n", f->no_heading, "leave out the header row of a table");
  cmd->add_option("--format", f->format,
                  "json, a Go template ({{.ID}} {{.CreatedBy}}), or table TEMPLATE (docs/format.md)");
  cmd->add_option("image", f->image, "image name, ID or digest")->required();
  SetCommand(cmd, ctx, [&ctx, f] { return HistoryCommand(ctx, f->image, f->no_trunc, f->quiet, f->no_heading, f->format); });
}

}  // namespace kiln::cli
