// kiln generate-sigstore-key: a key pair for push --sign-by-sigstore-private-key
// and policy.json's sigstoreSigned (skopeo's command and file format).
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "cli/cli.h"
#include "kiln/fs.h"
#include "kiln/sigstore.h"

namespace kiln::cli {

void AddSigstoreKeyCommand(CLI::App& app, Context& ctx) {
  struct Flags {
    std::string prefix, passphrase_file;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand("generate-sigstore-key",
                                 "create a sigstore key pair (PREFIX.pub, PREFIX.private) as skopeo does");
  cmd->add_option("--output-prefix", f->prefix, "write PREFIX.pub and PREFIX.private")->required();
  cmd->add_option("--passphrase-file", f->passphrase_file,
                  "read the private key's passphrase from FILE (its first line)");
  SetAction(cmd, ctx, [f] {
    std::string passphrase;
    if (!f->passphrase_file.empty()) {
      auto p = ReadFile(f->passphrase_file, 1 << 16);
      if (!p)
        return ReportError(std::move(p).error().WithContext("--passphrase-file"));
      passphrase = p->substr(0, p->find('\n'));
    }
    const std::string pub = f->prefix + ".pub", priv = f->prefix + ".private";
    for (const auto& path : {pub, priv}) {
      struct stat st;
      if (::lstat(path.c_str(), &st) == 0)
        return ReportError(Error(Errc::kInvalidInput, path + " exists; refusing to overwrite a key"));
    }
    auto keys = registry::GenerateSigstoreKey(passphrase);
    if (!keys)
      return ReportError(keys.error());
    if (auto s = WriteFileAtomic(priv, keys->private_pem, 0600); !s)
      return ReportError(s.error());
    if (auto s = WriteFileAtomic(pub, keys->public_pem, 0644); !s)
      return ReportError(s.error());
    std::printf("Key written to \"%s\" and \"%s\"\n", priv.c_str(), pub.c_str());
    return 0;
  });
}

}  // namespace kiln::cli
