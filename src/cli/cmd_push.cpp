// kiln push [--tls-verify=false] [--authfile FILE] [--cert-dir DIR] [--compression gzip|zstd] [--digestfile FILE]
//           [-q] IMAGE [DESTINATION]
#include <fcntl.h>

#include <cstdio>

#include "cli/image_util.h"
#include "kiln/acquire.h"
#include "kiln/events.h"
#include "kiln/fs.h"
#include "kiln/reference.h"
#include "kiln/registry.h"
#include "kiln/transport.h"

namespace kiln::cli {

void AddPushCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("push", "copy an image from the store to a registry or a local transport");
  struct Flags {
    std::string compression, image, destination, digestfile, sign_key, sign_passphrase;
    RegistryFlags registry;
    bool quiet = false;
  };
  auto f = std::make_shared<Flags>();
  f->registry.Add(cmd);
  cmd->add_option("--compression", f->compression, "gzip or zstd for layers that are recompressed")
      ->check(CLI::IsMember({"gzip", "zstd"}));
  cmd->add_flag("-q,--quiet", f->quiet, "print nothing but errors");
  cmd->add_option("--digestfile", f->digestfile,
                  "after the push, write the pushed manifest's digest to FILE (written in place: "
                  "/dev/termination-log works)");
  cmd->add_option("--sign-by-sigstore-private-key", f->sign_key,
                  "sign the pushed image with this cosign-format private key (docs/supply-chain.md)");
  cmd->add_option("--sign-passphrase-file", f->sign_passphrase, "read the signing key's passphrase from FILE");
  cmd->add_option("image", f->image, "image name, ID or digest in the store")->required();
  cmd->add_option("destination", f->destination,
                  "docker://REF (default: the image's name), oci:DIR[:TAG], oci-archive:FILE[:TAG], "
                  "docker-archive:FILE[:REF] or dir:DIR");
  SetAction(cmd, ctx, [&ctx, f] {
    auto store = OpenImageStore(ctx);
    if (!store)
      return ReportError(store.error());
    auto img = image::ResolveLocal(*store, f->image);
    if (!img)
      return ReportError(img.error());
    std::string source_name = MatchedName(*img, f->image);
    if (source_name.empty() && !img->names.empty())
      source_name = img->names.front();
    std::string dest_text = f->destination;
    if (dest_text.empty()) {
      if (source_name.empty())
        return ReportError(Error(Errc::kInvalidInput, "push " + f->image + ": the image has no name; give a "
                                                      "DESTINATION"));
      dest_text = "docker://" + source_name;
    }
    auto dest = ParseImageTransport(dest_text);
    if (!dest)
      return ReportError(dest.error());
    TransferOptions opts = f->registry.Options(f->quiet);
    opts.compression = f->compression;
    opts.sign_by_sigstore_private_key = f->sign_key;
    opts.sign_passphrase_file = f->sign_passphrase;
    if (!f->digestfile.empty() && dest->transport != "docker")
      return ReportError(Error(Errc::kInvalidInput, "--digestfile: " + dest_text + " is not a docker:// "
                                                    "destination"));
    if (!f->sign_key.empty() && dest->transport != "docker")
      return ReportError(Error(Errc::kInvalidInput, "--sign-by-sigstore-private-key: signatures are stored in a "
                                                    "registry; " + dest_text + " is not docker://"));
    if (auto s = PushImage(*store, *img, source_name, *dest, opts); !s)
      return ReportError(s.error());
    events::Record(ctx.StoreRoot(), "image", "push", img->id().hex(), dest_text);
    if (!f->digestfile.empty()) {
      // The manifest (or index) is pushed byte for byte as stored (the
      // registry's digest is checked): its digest is the one pushed.
      auto fd = OpenFile(f->digestfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC);
      if (!fd)
        return ReportError(std::move(fd).error().WithContext("push --digestfile"));
      if (auto s = WriteAll(fd->get(), img->top.digest.str()); !s)
        return ReportError(std::move(s).error().WithContext("push --digestfile " + f->digestfile));
    }
    return 0;
  });
}

}  // namespace kiln::cli
