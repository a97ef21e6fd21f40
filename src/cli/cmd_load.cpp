// kiln load [-i FILE] [-q]
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "cli/command.h"
#include "cli/image_util.h"
#include "kiln/events.h"
#include "kiln/fs.h"
#include "kiln/transport.h"

namespace kiln::cli {

namespace {

/// One image per ID, as podman: a docker-archive's layers are stored
/// recompressed, so loading an image the store already has (a build's layers
/// are compressed differently) gives a second manifest for the same config,
/// listed twice by `images`, and `rmi ID` removed only one of them. The
/// names go to the complete manifest already there instead; the new one is
/// left to prune.
Descriptor SameImageInStore(const Store& store, const Descriptor& top) {
  if (!IsManifestMediaType(top.media_type))
    return top;
  auto loaded = store.LoadImage(top);
  auto entries = store.ListImages();
  if (!loaded || !entries)
    return top;
  for (const auto& e : *entries) {
    if (e.descriptor.digest == top.digest || !IsManifestMediaType(e.descriptor.media_type))
      continue;
    auto have = store.LoadImage(e.descriptor);
    if (!have || have->id() != loaded->id())
      continue;
    bool complete = true;
    for (const auto& l : have->manifest.layers)
      complete = complete && store.HasBlob(l.digest);
    if (complete)
      return e.descriptor;
  }
  return top;
}

}  // namespace

void AddLoadCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("load", "load images from an oci-archive or docker-archive file");
  struct Flags {
    std::string input;
    bool quiet = false;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("-i,--input", f->input, "the archive to read (default: standard input)");
  cmd->add_flag("-q,--quiet", f->quiet, "print nothing but errors");
  SetCommand(cmd, ctx, [&ctx, f]() -> Status {
    KILN_ASSIGN_OR_RETURN(Store store, OpenImageStore(ctx));
    KILN_ASSIGN_OR_RETURN(Lease lease, store.AcquireLease("load"));  // until the images are named
    const std::string input = f->input.empty() ? "-" : f->input;
    std::string path = f->input;
    std::string staged;
    if (input == "-") {
      // The archive is read twice (docker-archive): stage stdin in the store.
      KILN_ASSIGN_OR_RETURN(staged, store.MakeTempDir("load-"));
      path = JoinPath(staged, "input.tar");
      KILN_ASSIGN_OR_RETURN(UniqueFd out, OpenFile(path, O_WRONLY | O_CREAT | O_TRUNC, 0600));
      char buf[1 << 16];
      for (;;) {
        ssize_t n = ::read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
          continue;
        if (n < 0)
          return Error::FromErrno("read standard input");
        if (n == 0)
          break;
        KILN_TRY(WriteAll(out.get(), buf, static_cast<size_t>(n)));
      }
    }
    struct Cleanup {
      std::string dir;
      ~Cleanup() {
        if (!dir.empty())
          (void)RemoveAll(dir);
      }
    } cleanup{staged};
    auto images = LoadArchive(store, path);
    if (!images)
      return std::move(images).error().WithContext("load " + input);
    for (auto p : *images) {
      p.top = SameImageInStore(store, p.top);
      KILN_TRY(store.AddImage(p.top, p.names));
      auto img = store.LoadImage(p.top);
      if (img)  // podman's status for load
        events::Record(ctx.StoreRoot(), "image", "loadfromarchive", img->id().hex(), input);
      if (f->quiet)
        continue;
      if (p.names.empty())
        std::printf("Loaded image: %s\n", img ? img->id().str().c_str() : p.top.digest.str().c_str());
      for (const auto& n : p.names)
        std::printf("Loaded image: %s\n", n.c_str());
    }
    return Ok();
  });
}

}  // namespace kiln::cli
