// Image references in the docker grammar (distribution/reference):
//   [host[:port]/]path[:tag][@digest]
// "alpine" means docker.io/library/alpine:latest; "localhost/x" and
// "host:5000/x" name other registries. See docs/images.md.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kiln/digest.h"
#include "kiln/error.h"

namespace kiln {

/// A parsed, normalised image reference. Invariants (after Parse): domain
/// and path are non-empty and valid; at least one of tag and digest is set
/// (a bare name gets tag "latest").
struct ImageReference {
  std::string domain;  ///< "docker.io", "localhost", "registry.example:5000"
  std::string path;    ///< "library/alpine", "team/app"
  std::string tag;     ///< "latest", or "" when only a digest was given
  Digest digest;       ///< valid() only when "@sha256:..." was given
  /// The text named no registry ("alpine", "team/app"): the store tries
  /// localhost/<path> before docker.io (docs/cli.md "Image references and
  /// transports").
  bool implicit_domain = false;

  /// Parses and normalises `text`. kInvalidInput, naming the reference, on
  /// a grammar error (uppercase repository, bad tag, bad digest, a name of
  /// 64 hex characters, more than 255 characters of name, ...).
  static Expected<ImageReference> Parse(std::string_view text);
  /// As Parse(), but a name without a registry goes to `default_domain`
  /// ("localhost" for names kiln gives images: tag, import, build -t).
  /// Docker's "library/" prefix is added only for docker.io.
  static Expected<ImageReference> ParseWithDefaultDomain(std::string_view text,
                                                         std::string_view default_domain);

  /// "domain/path" (the repository name).
  std::string Name() const;
  /// Full form: "domain/path[:tag][@digest]".
  std::string str() const;
  /// docker's short form: "alpine:latest", "localhost/x:1", "team/app@sha256:..".
  std::string Familiar() const;
  /// Tag or digest, whichever addresses the manifest ("sha256:..." wins).
  std::string TagOrDigest() const;

  friend bool operator==(const ImageReference& a, const ImageReference& b) = default;
};

/// True when `text` has the shape of an image-ID prefix (3..64 lower-case
/// hex digits), optionally preceded by "sha256:".
bool LooksLikeIdPrefix(std::string_view text);

/// True when `text` is a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}).
bool IsValidTag(std::string_view text);

}  // namespace kiln
