// Reading and writing inside a container root filesystem, for the build
// engine and for run (module src/rootfs, below both):
// overlay mounts of layer directories, safe path resolution (every lookup
// stays inside the root, docs/security.md I1), and USER resolution from the
// image's /etc/passwd and /etc/group.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kiln/error.h"
#include "kiln/unique_fd.h"

namespace kiln::rootfs {

/// An overlay (or, for a single read-only layer, a bind) mount owned by this
/// object; unmounted (lazily) by the destructor. Needs CAP_SYS_ADMIN in the
/// current user namespace: kiln runs the engine inside its own namespace.
class Mount {
 public:
  /// Writable overlay: `lowers` top first (at least one; pass an empty
  /// directory for scratch), a fresh `upper` and `work` on one filesystem.
  /// Mounted `volatile` where the kernel allows it: the build makes the
  /// step's result durable itself (the layer blob), and a plain overlay's
  /// unmount would sync the whole file system of `upper`.
  static Expected<Mount> Overlay(const std::vector<std::string>& lowers, const std::string& upper,
                                 const std::string& work, const std::string& target);
  /// Read-only view of `lowers` (top first).
  static Expected<Mount> ReadOnly(const std::vector<std::string>& lowers, const std::string& target);

  Mount(Mount&& o) noexcept : target_(std::exchange(o.target_, std::string())) {}
  Mount& operator=(Mount&& o) noexcept;
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;
  ~Mount();
  const std::string& path() const { return target_; }
  /// Unmounts now, reporting errors.
  Status Unmount();

 private:
  explicit Mount(std::string target) : target_(std::move(target)) {}
  std::string target_;
};

/// openat2(root_fd, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): `path`
/// (absolute or relative) is resolved as if root_fd were "/", symlinks
/// included. O_CLOEXEC is added.
Expected<UniqueFd> OpenInRoot(int root_fd, const std::string& path, int flags, mode_t mode = 0);

/// mkdir -p of `path` inside the root (symlinks resolved inside the root);
/// new directories get `mode` and, when given, the owner. Returns an
/// O_DIRECTORY fd of the final directory. kInvalidInput when a component
/// exists and is not a directory.
Expected<UniqueFd> MakeDirsInRoot(int root_fd, const std::string& path, mode_t mode = 0755,
                                  std::optional<uint32_t> uid = std::nullopt,
                                  std::optional<uint32_t> gid = std::nullopt,
                                  bool* created_last = nullptr);

/// Reads a file of the container's filesystem from its layer directories
/// (top first) without mounting them: the first layer that has the path
/// wins; an overlay whiteout there means "absent". nullopt when absent.
Expected<std::optional<std::string>> ReadFileFromLayers(const std::vector<std::string>& layer_dirs,
                                                        const std::string& path);

/// A resolved USER.
struct ResolvedUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> supplementary_gids;
  std::string home = "/";
};

/// Resolves "user[:group]" (names or numbers) against passwd/group file
/// contents (nullopt: file absent), as runc/Docker do: a numeric uid needs
/// no entry (gid then 0 unless the entry exists), a name must exist.
/// kInvalidInput "unable to find user X: no matching entries in passwd file".
Expected<ResolvedUser> ResolveUser(const std::string& spec, const std::optional<std::string>& passwd,
                                   const std::optional<std::string>& group);

}  // namespace kiln::rootfs
