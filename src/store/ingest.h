// Streaming helpers of the store module: bringing a layer stream into the
// store (computing blob digest and diff_id in one pass), decompressing any
// supported stream, and copying blobs in and out of directories.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kiln/error.h"
#include "kiln/oci.h"
#include "kiln/store.h"
#include "kiln/transport.h"

namespace kiln::store_internal {

struct IngestedLayer {
  Descriptor blob;              ///< stored blob (media type set)
  Digest diff_id;               ///< sha256 of the uncompressed tar
  int64_t uncompressed_size = 0;
};

/// Takes a layer stream piece by piece. The compression is sniffed from the
/// first bytes: gzip and zstd streams are stored as they are (and inflated
/// only to compute the diff_id); an uncompressed tar is gzip-compressed on
/// the way in (deterministically: no name, mtime 0). Other compressions are
/// kUnsupported (decompress them first with DecompressFd).
class LayerIngester {
 public:
  static Expected<std::unique_ptr<LayerIngester>> Create(const Store& store);
  virtual ~LayerIngester() = default;
  virtual Status Write(std::string_view data) = 0;
  virtual Expected<IngestedLayer> Finish() = 0;
};

/// Reads `fd` to its end, decompressing gzip/zstd/bzip2/xz/... (libarchive
/// filters, detected by magic) or passing plain bytes, and hands the
/// decompressed bytes to `sink`. Stops after max_bytes of output.
Status DecompressFd(int fd, const std::function<Status(std::string_view)>& sink,
                    int64_t max_bytes = int64_t(64) << 30);

/// Copies a store blob to `path` (temp file in the same directory, then
/// rename), unless `path` exists with the right size.
Status CopyBlobOut(const Store& store, const Digest& digest, const std::string& path);

/// Fails (kCorrupt, naming the digest and both sizes) unless the blob of `d`
/// is in the store with exactly d.size bytes; kNotFound when absent. `what`
/// names the kind of blob ("layer", "config", ...).
Status CheckStoredBlob(const Store& store, const Descriptor& d, std::string_view what);

/// Copies a file into the store, verifying digest and size. A blob already
/// in the store is reused only when its size equals expected.size.
Expected<Descriptor> CopyBlobIn(const Store& store, const std::string& path, const Descriptor& expected);

/// Every blob reachable from `top` that is present in the store, in a
/// deterministic order (children before parents: layers, config, manifest,
/// index last), without duplicates. Index children that are absent are
/// skipped; an absent manifest/config/layer of a present manifest is an
/// error.
Expected<std::vector<Descriptor>> ImageBlobs(const Store& store, const Descriptor& top);

}  // namespace kiln::store_internal

namespace kiln::store_internal {

/// One image found in an archive or layout, before naming.
struct FoundImage {
  Descriptor top;
  std::string ref_name;            ///< raw org.opencontainers.image.ref.name (or RepoTags[0])
  std::vector<std::string> names;  ///< normalised full references
  std::vector<VerifiedLayer> verified_layers;  ///< diff_ids computed while ingesting
};

/// Loads every blob of an oci-archive or docker-archive file into the store
/// (verified) and returns the images it holds.
Expected<std::vector<FoundImage>> LoadArchiveImages(Store& store, const std::string& path);

/// Reads the images of an OCI layout directory's index.json and copies
/// `selected` (by ref.name == tag, or the only one when tag is "") into the
/// store.
Expected<FoundImage> LoadLayoutImage(Store& store, const std::string& dir, const std::string& tag);

/// The full reference a ref.name / RepoTags string stands for, when it is
/// one (has a '/' or a ':' and parses); "" for a bare tag like "latest".
std::string NameFromRefName(std::string_view ref_name);

/// Picks the image whose raw ref name equals `tag` (or whose normalised name
/// does), or the only image when `tag` is empty. kNotFound / kInvalidInput
/// naming `where`.
Expected<FoundImage> SelectImage(const std::vector<FoundImage>& images, const std::string& tag,
                                 const std::string& where);

}  // namespace kiln::store_internal
