// kiln tag SOURCE TARGET...
#include "cli/image_util.h"
#include "kiln/acquire.h"
#include "kiln/events.h"

namespace kiln::cli {

void AddTagCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("tag", "give an image more names");
  auto args = std::make_shared<std::vector<std::string>>();
  cmd->add_option("names", *args, "SOURCE (name, ID or digest) followed by one or more TARGET names")
      ->required()
      ->expected(2, -1);
  SetAction(cmd, ctx, [&ctx, args] {
    std::vector<std::string> targets;
    for (size_t i = 1; i < args->size(); ++i) {
      auto n = NormalizeNewName((*args)[i]);
      if (!n)
        return ReportError(n.error());
      targets.push_back(*n);
    }
    auto store = OpenImageStore(ctx);
    if (!store)
      return ReportError(store.error());
    auto img = image::ResolveLocal(*store, (*args)[0]);
    if (!img)
      return ReportError(img.error());
    if (auto s = store->AddImage(img->top, targets); !s)
      return ReportError(s.error());
    for (const auto& t : targets)
      events::Record(ctx.StoreRoot(), "image", "tag", img->id().hex(), t);
    return 0;
  });
}

}  // namespace kiln::cli
