// Getting an image into the store (src/image/, docs/images.md "Acquiring an
// image"): the one place that says how a name finds a stored image and when
// it is pulled instead. `kiln build` (FROM, COPY --from=IMAGE), `kiln run`,
// `kiln pull` and `kiln manifest add` all go through it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "kiln/error.h"
#include "kiln/oci.h"
#include "kiln/store.h"
#include "kiln/transport.h"

namespace kiln::image {

/// podman's --pull values.
enum class PullPolicy {
  kMissing,  ///< the stored image, else pull (the default)
  kAlways,   ///< pull every time; a failed pull fails
  kNever,    ///< the stored image only
  kNewer,    ///< pull every time; a failed pull falls back to the stored image with a warning
};

/// "missing" | "always" | "never" | "newer"; kInvalidInput naming the value.
Expected<PullPolicy> ParsePullPolicy(std::string_view text);
std::string_view PullPolicyName(PullPolicy policy);

struct AcquireOptions {
  PullPolicy policy = PullPolicy::kMissing;
  /// The manifest of an index to use (and to pull); default: the host's.
  std::optional<Platform> platform;
  /// Registry/transport options of a pull (tls_verify, authfile, cert_dir,
  /// quiet, progress, all_platforms). `transfer.platform` is replaced by
  /// `platform`.
  TransferOptions transfer;
  /// Acquire(): wrap a failed pull's error in "pull REFERENCE: ...".
  bool pull_context = true;
};

/// The one name-resolution rule for an image in the store: a full ID or ID
/// prefix, a manifest/index digest, or a reference (a short name tries
/// localhost/NAME, then docker.io/library/NAME; NAME@DIGEST matches by
/// digest) -- Store::ResolveImage -- and, for a Docker Hub name
/// (docker.io/library/NAME, what `FROM busybox` normalizes to), the image
/// stored as localhost/NAME when the Hub name is not stored. For an index,
/// the manifest for `platform` (default: the host). kNotFound when the
/// store has no such image (the caller may pull).
Expected<StoredImage> ResolveLocal(const Store& store, std::string_view reference,
                                   const std::optional<Platform>& platform = std::nullopt);

/// Copies `reference` (docker://REF, the default, or any transport of
/// kiln/transport.h) into the store and names it: the names the source
/// carries, else, for a registry reference, the reference itself (a digest
/// reference is named NAME@DIGEST). A lease on `store` protects the blobs
/// until the name exists. Returns the image for options.platform, with its
/// names. The transport's error as is (no context added).
Expected<StoredImage> Pull(Store& store, std::string_view reference, const AcquireOptions& options);

/// ResolveLocal(), else Pull(), as options.policy says. kNotFound ("image
/// not known: REF") when the policy forbids the pull and the store has no
/// such image.
Expected<StoredImage> Acquire(Store& store, std::string_view reference, const AcquireOptions& options);

/// `--platform PLATFORM --pull POLICY` of `kiln run` (docs/multiplatform.md):
/// Acquire() for that platform, refusing (kNotFound, naming both platforms)
/// an image that is for another one. Returns the reference that names
/// exactly that image: the manifest's digest when `reference` is an index,
/// else `reference`. kInvalidInput naming a bad --platform or --pull value.
Expected<std::string> AcquireForPlatform(Store& store, std::string_view reference, std::string_view platform,
                                         std::string_view pull);

}  // namespace kiln::image
