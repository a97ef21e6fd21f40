// Copying images between the store and the outside world, by transport
// (the skopeo/buildah spelling):
//   oci:DIR[:TAG]                 an OCI image layout directory
//   oci-archive:FILE[:TAG]        a tar of an OCI image layout
//   docker-archive:FILE[:REF]     `docker save` format (manifest.json)
//   dir:DIR                       containers/image "dir:" (manifest.json + blobs by hex)
//   docker://REF                  a registry (plugged in by the registry module
//                                 with RegisterTransport("docker", ...))
// plus the archive commands (save/load) and `import` of a rootfs tar.
// See docs/images.md.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/error.h"
#include "kiln/oci.h"
#include "kiln/store.h"

namespace kiln {

/// "TRANSPORT:LOCATION[:REF]" split up. Text without a known transport
/// prefix is transport "docker" with the whole text as `location`.
struct TransportRef {
  std::string transport;  ///< "oci", "oci-archive", "docker-archive", "dir", "docker"
  std::string location;   ///< directory, file, or (docker) the image reference
  std::string ref;        ///< tag / reference after the last ':' (oci, archives), may be ""

  /// kInvalidInput naming the text (unknown transport "foo:", empty path).
  static Expected<TransportRef> Parse(std::string_view text);
  std::string str() const;
};

/// Options shared by every transport (the registry ones are ignored by the
/// local transports).
struct TransferOptions {
  std::optional<Platform> platform;  ///< pull: default the host
  bool all_platforms = false;
  bool tls_verify = true;
  std::string authfile;
  std::string cert_dir;
  std::string compression;           ///< push: "gzip" | "zstd" | "" (keep)
  bool quiet = false;
  /// pull (docker://): unpack layers while they download when running inside
  /// kiln's user namespace; false for blobs that are not meant to be run
  /// (the remote build cache).
  bool unpack_layers = true;
  /// Progress lines ("Copying blob sha256:..."); may be empty.
  std::function<void(const std::string&)> progress;
  /// pull (docker://): policy.json to use instead of the default files.
  std::string signature_policy;
  /// push (docker://): sign with this cosign-format private key and store
  /// the sigstore signature beside the image (docs/supply-chain.md).
  std::string sign_by_sigstore_private_key;
  std::string sign_passphrase_file;
  /// --retry N / --retry-delay D (podman's): N more attempts of a request
  /// that failed transiently, the first after D (then doubling, as the
  /// registry client does). Unset: the client's defaults.
  std::optional<int> retries;
  std::optional<std::chrono::milliseconds> retry_delay;
};

/// Copies `image` (its top-level manifest or index with everything it
/// references that is present locally) to `dest`. `source_name` is the
/// name the user gave (used for docker-archive RepoTags when dest.ref is "").
using PushFn = std::function<Status(Store& store, const StoredImage& image,
                                    const std::string& source_name, const TransportRef& dest,
                                    const TransferOptions& options)>;
/// A layer blob whose diff_id this process computed from the blob's own
/// bytes (while downloading and unpacking it, or ingesting it).
struct VerifiedLayer {
  Digest digest;
  Digest diff_id;
};

/// Copies the image at `src` into the store (not named) and returns the
/// top-level descriptor to record, plus names the source carries.
struct PulledImage {
  Descriptor top;
  std::vector<std::string> names;  ///< full references found in the source
  std::vector<VerifiedLayer> verified_layers;  ///< diff_ids computed on the way in
};

/// Verifies the closure of `top` before anything names it (docs/store.md,
/// "What a name guarantees"): every descriptor (index -> manifests -> config
/// + layers; absent children of an index are skipped, a present one must be
/// complete) names a blob in the store whose size equals the descriptor's
/// (blobs were digest-checked when written); nesting is at most 8 deep and
/// acyclic; an image config parses and lists one diff_id per layer; and the
/// diff_id of each layer is the sha256 of that blob's decompressed bytes --
/// taken from `verified`, from an image already named in the store with the
/// same (layer, diff_id) pair, or computed now (with `unpack`, by unpacking
/// the layer into its layer directory when that does not exist yet, which a
/// later run needs anyway; otherwise by hashing it). kCorrupt / kNotFound /
/// kInvalidInput naming the digest.
Status VerifyImageClosure(Store& store, const Descriptor& top, const std::vector<VerifiedLayer>& verified = {},
                          bool unpack = false);
using PullFn = std::function<Expected<PulledImage>(Store& store, const TransportRef& src,
                                                   const TransferOptions& options)>;

/// Installs (or replaces) a transport's handlers. The local transports are
/// built in; the registry module registers "docker".
void RegisterTransport(const std::string& name, PushFn push, PullFn pull);

/// Dispatches to the transport's handler; kUnsupported naming the
/// transport when none is registered. PullImage() then verifies what the
/// handler brought in (VerifyImageClosure()) before returning it, so a caller
/// that names the result names only a verified image.
Status PushImage(Store& store, const StoredImage& image, const std::string& source_name,
                 const TransportRef& dest, const TransferOptions& options);
Expected<PulledImage> PullImage(Store& store, const TransportRef& src, const TransferOptions& options);

// ---------------------------------------------------------------- archives

enum class ArchiveFormat { kOciArchive, kDockerArchive };

/// One image to save, with the names to record for it in the archive.
struct SaveItem {
  StoredImage image;
  std::vector<std::string> names;  ///< full references; may be empty
};

/// Writes `items` to `path` (atomically: temp file + rename) as an
/// oci-archive (index.json names via org.opencontainers.image.ref.name) or a
/// docker-archive (manifest.json with RepoTags; layers stored uncompressed,
/// as `docker save` does).
Status SaveArchive(Store& store, const std::vector<SaveItem>& items, const std::string& path,
                   ArchiveFormat format);

/// Reads an oci-archive or docker-archive (detected from the members) into
/// the store, verifying every blob and then every image
/// (VerifyImageClosure()). Returns the images found (not yet recorded in
/// index.json: callers AddImage() them).
Expected<std::vector<PulledImage>> LoadArchive(Store& store, const std::string& path);

/// Reads an OCI image layout directory (oci:DIR[:TAG]); with `tag` empty and
/// one image in the layout, that one.
Expected<PulledImage> LoadOciLayout(Store& store, const std::string& dir, const std::string& tag,
                                    const TransferOptions& options);

// ---------------------------------------------------------------- import

struct ImportOptions {
  /// Dockerfile-style instructions applied to the config: CMD, ENTRYPOINT,
  /// ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL, ONBUILD, SHELL.
  std::vector<std::string> changes;
  std::string message;  ///< history comment
  std::optional<Platform> platform;  ///< default: the host
};

/// Makes a single-layer image from a rootfs tar read from `fd` (plain or
/// compressed: gzip/zstd/bzip2/xz detected). The layer is stored gzip
/// compressed; diff_id is the sha256 of the uncompressed tar. Returns the
/// manifest descriptor (the image is not named yet). kInvalidInput for a bad
/// --change, naming it.
Expected<Descriptor> ImportRootfsTar(Store& store, int fd, const ImportOptions& options);

/// Applies one Dockerfile-style instruction ("CMD [\"sh\"]", "ENV A=b") to
/// `config`. kInvalidInput naming the instruction.
Status ApplyConfigChange(ContainerConfig& config, std::string_view instruction);

}  // namespace kiln
