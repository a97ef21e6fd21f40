// kiln save -o FILE [--format oci-archive|docker-archive] IMAGE...
#include "cli/image_util.h"
#include "kiln/acquire.h"
#include "kiln/events.h"
#include "kiln/transport.h"

namespace kiln::cli {

void AddSaveCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("save", "write images to an archive file");
  struct Flags {
    std::string output, format = "docker-archive";
    std::vector<std::string> images;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("-o,--output", f->output, "the archive file to write")->required();
  cmd->add_option("--format", f->format, "oci-archive or docker-archive (default)")
      ->check(CLI::IsMember({"oci-archive", "docker-archive"}));
  cmd->add_option("images", f->images, "image names, IDs or digests")->required();
  SetAction(cmd, ctx, [&ctx, f] {
    auto store = OpenImageStore(ctx);
    if (!store)
      return ReportError(store.error());
    std::vector<SaveItem> items;
    for (const auto& arg : f->images) {
      auto img = image::ResolveLocal(*store, arg);
      if (!img)
        return ReportError(img.error());
      // By name: that name; by ID: every name of the image.
      std::string name = MatchedName(*img, arg);
      std::vector<std::string> names = name.empty() ? img->names : std::vector<std::string>{name};
      items.push_back(SaveItem{*img, names});
    }
    auto format = f->format == "oci-archive" ? ArchiveFormat::kOciArchive : ArchiveFormat::kDockerArchive;
    if (auto s = SaveArchive(*store, items, f->output, format); !s)
      return ReportError(std::move(s).error().WithContext("save " + f->output));
    for (const auto& item : items)
      events::Record(ctx.StoreRoot(), "image", "save", item.image.id().hex(), f->output);
    return 0;
  });
}

}  // namespace kiln::cli
