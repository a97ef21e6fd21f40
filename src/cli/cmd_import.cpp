// kiln import [--change INSTRUCTION]... [-m MESSAGE] [--platform P] FILE|URL|- [NAME]
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "cli/command.h"
#include "cli/image_util.h"
#include "kiln/events.h"
#include "kiln/fs.h"
#include "kiln/registry.h"
#include "kiln/transport.h"

namespace kiln::cli {

void AddImportCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("import", "make a single-layer image from a rootfs tarball");
  struct Flags {
    std::vector<std::string> changes;
    std::string message, platform, source, name;
    bool quiet = false;
    bool tls_verify = true;
    std::string cert_dir;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("-c,--change", f->changes,
                  "apply a Containerfile instruction to the config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, "
                  "SHELL, STOPSIGNAL, USER, VOLUME, WORKDIR); repeatable")
      ->allow_extra_args(false);
  cmd->add_option("-m,--message", f->message, "history comment of the layer");
  cmd->add_option("--platform", f->platform, "platform recorded in the config (default: this host)");
  cmd->add_flag("-q,--quiet", f->quiet, "print only the image ID");
  cmd->add_flag("--tls-verify", f->tls_verify, "SOURCE is an https URL: verify its certificate (default true)");
  cmd->add_option("--cert-dir", f->cert_dir, "SOURCE is an https URL: CA certificates (*.crt) to trust");
  cmd->add_option("source", f->source,
                  "tarball (plain, gzip, zstd, bzip2 or xz), an http(s) URL of one, or - for standard input")
      ->required();
  cmd->add_option("name", f->name, "name for the image (NAME means localhost/NAME:latest)");
  SetCommand(cmd, ctx, [&ctx, f]() -> Status {
    ImportOptions opts;
    opts.changes = f->changes;
    opts.message = f->message;
    if (!f->platform.empty()) {
      KILN_ASSIGN_OR_RETURN(opts.platform, Platform::Parse(f->platform));
    }
    std::vector<std::string> names;
    if (!f->name.empty()) {
      KILN_ASSIGN_OR_RETURN(std::string n, NormalizeNewName(f->name));
      names.push_back(n);
    }
    UniqueFd owned;
    int fd = 0;
    if (f->source.find("://") != std::string::npos) {
      // podman: a URL is downloaded first (the registry client's HTTP stack:
      // TLS with certs.d, proxies from the environment, retries).
      char tmpl[] = "/tmp/kiln-import-XXXXXX";
      owned.reset(::mkstemp(tmpl));
      if (!owned)
        return Error::FromErrno("import " + f->source + ": temporary file");
      ::unlink(tmpl);
      registry::ClientOptions co;
      co.tls_verify = f->tls_verify;
      co.cert_dir = f->cert_dir;
      if (auto got = registry::FetchUrl(f->source, {}, owned.get(), co); !got)
        return std::move(got).error().WithContext("import");
      if (::lseek(owned.get(), 0, SEEK_SET) != 0)
        return Error::FromErrno("import " + f->source);
      fd = owned.get();
    } else if (f->source != "-") {
      auto o = OpenFile(f->source, O_RDONLY);
      if (!o)
        return std::move(o).error().WithContext("import");
      owned = std::move(*o);
      fd = owned.get();
    }
    KILN_ASSIGN_OR_RETURN(Store store, OpenImageStore(ctx));
    KILN_ASSIGN_OR_RETURN(Lease lease, store.AcquireLease("import"));  // until the image is named
    auto top = ImportRootfsTar(store, fd, opts);
    if (!top)
      return std::move(top).error().WithContext("import " + f->source);
    KILN_TRY(store.AddImage(*top, names));
    KILN_ASSIGN_OR_RETURN(StoredImage img, store.LoadImage(*top));
    std::printf("%s\n", img.id().hex().c_str());
    events::Record(ctx.StoreRoot(), "image", "import", img.id().hex(), f->source);
    return Ok();
  });
}

}  // namespace kiln::cli
