// Which platforms this machine can run: natively (the host's architecture,
// and 386 on amd64) or under emulation through a binfmt_misc handler
// (qemu-user-static registered with the F flag, so that it works inside
// user namespaces and chroots). `kiln build` checks this before it starts a
// multi-platform build; `kiln info` lists the result. See docs/multiplatform.md.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kiln/error.h"
#include "kiln/oci.h"

namespace kiln::engine {

/// One binfmt_misc entry that handles an architecture's ELF binaries.
struct BinfmtHandler {
  std::string name;         ///< entry name ("qemu-aarch64")
  std::string interpreter;  ///< "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"
  std::string flags;        ///< "PF", "F", "OCF", ...
};

/// The binfmt_misc directory: $KILN_BINFMT_MISC_DIR (tests) or
/// /proc/sys/fs/binfmt_misc.
std::string BinfmtMiscDir();

/// True when the host CPU runs `p`'s binaries without emulation.
bool RunsNatively(const Platform& p);

/// The enabled binfmt_misc handler whose magic/mask matches an ELF
/// executable of `p`'s architecture; nullopt when none (or binfmt_misc is
/// not mounted, or disabled) or the architecture is unknown.
std::optional<BinfmtHandler> FindBinfmtHandler(const Platform& p);

/// Ok when RUN steps for `p` can execute here (natively, or through a
/// handler with the F flag). Otherwise kInvalidInput with the actionable
/// message ("linux/arm64: this machine cannot run arm64 binaries: install
/// qemu-user-static ...").
Status CheckCanRun(const Platform& p);

/// Every platform of kiln's architecture table this machine can run, the
/// host first; `emulated` receives the handler for each one that needs it.
struct RunnablePlatform {
  Platform platform;
  std::optional<BinfmtHandler> handler;  ///< nullopt: native
};
std::vector<RunnablePlatform> RunnablePlatforms();

}  // namespace kiln::engine
