// kiln pull [--platform P] [--all-platforms] [--tls-verify=false] [--authfile FILE] [--cert-dir DIR] [-q] REFERENCE
// REFERENCE: docker://REF (the default), oci:DIR[:TAG], oci-archive:FILE[:TAG],
// docker-archive:FILE[:REF], dir:DIR.
#include <cstdio>

#include "cli/image_util.h"
#include "kiln/acquire.h"
#include "kiln/registry.h"
#include "kiln/transport.h"

namespace kiln::cli {

void AddPullCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("pull", "copy an image from a registry or a local transport into the store");
  struct Flags {
    std::string platform, reference;
    RegistryFlags registry;
    bool all_platforms = false, quiet = false;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("--platform", f->platform, "os/arch[/variant] to pull (default: this host)");
  cmd->add_flag("--all-platforms", f->all_platforms, "pull every platform of an index");
  f->registry.Add(cmd);
  cmd->add_flag("-q,--quiet", f->quiet, "print only the image ID");
  cmd->add_option("reference", f->reference,
                  "NAME[:TAG|@DIGEST] (docker://), oci:DIR[:TAG], oci-archive:FILE[:TAG], "
                  "docker-archive:FILE[:REF] or dir:DIR")
      ->required();
  SetAction(cmd, ctx, [&ctx, f] {
    auto src = ParseImageTransport(f->reference);  // exit 2 for a bad reference, before any network use
    if (!src)
      return ReportError(src.error());
    image::AcquireOptions opts;
    if (!f->platform.empty()) {
      auto p = Platform::Parse(f->platform);
      if (!p)
        return ReportError(p.error());
      opts.platform = *p;
    }
    opts.transfer = f->registry.Options(f->quiet);
    opts.transfer.all_platforms = f->all_platforms;
    auto store = OpenImageStore(ctx);
    if (!store)
      return ReportError(store.error());
    auto img = image::Pull(*store, f->reference, opts);  // holds a lease until the image is named
    if (!img)
      return ReportError(img.error());
    std::printf("%s\n", img->id().hex().c_str());
    return 0;
  });
}

}  // namespace kiln::cli
