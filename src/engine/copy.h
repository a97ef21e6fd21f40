// COPY and ADD with Docker/BuildKit semantics: sources relative to a source
// root (the build context, or another stage's root filesystem), wildcards,
// directory-contents copies, trailing-slash rules, --chown/--chmod/
// --exclude/--parents, ADD's unpacking of local archives; and the content
// digest of a COPY's inputs for the cache key. Every destination path is
// resolved inside the container root (openat2 RESOLVE_IN_ROOT).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ignore.h"
#include "kiln/digest.h"
#include "kiln/error.h"

namespace kiln::engine {

struct CopyRequest {
  std::string src_root;               // host path of the build context or a stage's rootfs
  bool from_context = true;           // context: ignore file applies, owner defaults to 0:0
  std::shared_ptr<const frontend::IgnoreMatcher> ignore;  // context only; may be null
  std::vector<std::string> sources;   // as written (relative to src_root; "/" = src_root)
  std::vector<std::pair<std::string, std::string>> inline_files;  // heredoc name -> content
  std::string dest;                   // absolute path in the container; a trailing '/' = directory
  std::optional<uint32_t> uid;        // --chown, resolved
  std::optional<uint32_t> gid;
  std::string chmod;                  // octal or symbolic, "" = keep
  std::vector<std::string> excludes;  // --exclude patterns
  bool parents = false;               // --parents
  bool unpack_archives = false;       // ADD: local tar archives are extracted
  std::string what = "COPY";          // for messages
};

/// Copies the request's sources into the root filesystem open at
/// `dest_root_fd` (host path `dest_root_path`, used only for ADD's
/// extraction). kNotFound naming the source when one does not exist.
Status CopyIntoRoot(const CopyRequest& request, int dest_root_fd, const std::string& dest_root_path);

/// The digest of everything CopyIntoRoot would read: for each matched
/// entry its relative path, type, mode, owner, size, content digest and
/// link target, in a fixed order. The ignore file and --exclude apply, so
/// a change to an ignored file does not change it.
Expected<Digest> HashCopySources(const CopyRequest& request);

/// Applies a --chmod value to a mode: octal ("755") replaces the permission
/// bits, symbolic ("u+x,g-w") edits them. kInvalidInput when malformed.
Expected<uint32_t> ApplyChmod(const std::string& spec, uint32_t mode, bool is_dir);

}  // namespace kiln::engine
