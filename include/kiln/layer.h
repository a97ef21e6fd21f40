// Layer archives: packing a directory or an overlayfs upperdir into a
// deterministic tar layer (gzip/zstd/none), and safely unpacking untrusted
// layers into a directory. See docs/layers.md for the rules (whiteouts,
// ownership, limits) and docs/security.md (I1, I3, I5) for why.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/digest.h"
#include "kiln/error.h"

namespace kiln::layer {

/// Compression of a layer blob.
enum class Compression { kNone, kGzip, kZstd, kBzip2, kXz };

/// "gzip", "zstd", "none", ...
const char* CompressionName(Compression c);

/// OCI media type of a layer with this compression
/// ("application/vnd.oci.image.layer.v1.tar+gzip", ...).
std::string LayerMediaType(Compression c);

/// Options of PackDirectory().
struct PackOptions {
  /// Only kNone, kGzip and kZstd are written.
  Compression compression = Compression::kGzip;
  /// 0 picks the default: gzip 1 (speed; still ~standard ratio for text),
  /// zstd 3. gzip accepts 1..9, zstd 1..19.
  int level = 0;
  /// Compression threads; 0 = one per online CPU (at most 8).
  int threads = 0;
  /// SOURCE_DATE_EPOCH: mtimes later than this are set to it.
  std::optional<int64_t> clamp_mtime;
  /// The directory is an overlayfs upperdir: char 0/0 devices and files with
  /// an overlay.whiteout xattr become OCI whiteouts (`.wh.name`); directories
  /// with overlay.opaque=y get a `.wh..wh..opq` entry. Both trusted.overlay.*
  /// and user.overlay.* (userxattr mounts) are understood.
  bool from_overlay_upper = false;
};

/// What PackDirectory() wrote.
struct LayerInfo {
  Digest digest;                 ///< sha256 of the compressed blob
  int64_t size = 0;              ///< bytes of the compressed blob
  Digest diff_id;                ///< sha256 of the uncompressed tar
  int64_t uncompressed_size = 0; ///< bytes of the uncompressed tar
  std::string media_type;        ///< OCI layer media type
  int64_t entries = 0;           ///< tar entries written (incl. whiteouts)
};

/// Writes `dir` as a tar layer to `out_fd` (streaming; memory stays bounded
/// whatever the size of the tree). Entries are sorted by name, owners are
/// numeric (uname/gname empty), times are whole seconds (clamped if asked),
/// atime/ctime are not stored; hardlinked inodes inside the tree become tar
/// hardlinks; xattrs are kept except overlay-private ones, security.selinux
/// and POSIX ACLs; sockets are skipped with a warning. The root directory
/// itself is not an entry. Two calls on an unchanged tree give the same
/// digest.
Expected<LayerInfo> PackDirectory(const std::string& dir, int out_fd, const PackOptions& options);

/// Squashes layer blobs (`layer_fds`: seekable, bottom layer first; read
/// twice) into one layer with the same effect when applied in their place
/// (`kiln build --squash`). `from_bottom`: the layers start at the bottom
/// of the image (--squash-all), so whiteouts have nothing left to delete
/// and are left out. Only compression, level and threads of `options` are
/// used.
Expected<LayerInfo> SquashLayers(const std::vector<int>& layer_fds, bool from_bottom, int out_fd,
                                 const PackOptions& options);

/// How UnpackLayer() handles OCI whiteouts.
enum class WhiteoutMode {
  /// Apply them: delete the named path / empty the directory (the layer is
  /// applied on top of the lower layers already in the target directory).
  kApply,
  /// Convert them into overlayfs form, so that the target directory can be an
  /// overlay lowerdir: `.wh.x` -> char device 0/0 `x` (or, where mknod is not
  /// allowed, an empty file with the overlay.whiteout xattr and the parent
  /// marked overlay.opaque=x, kernel >= 6.7); `.wh..wh..opq` -> overlay.opaque=y
  /// on the directory.
  kOverlay,
};

/// Which xattr namespace overlay markers use in kOverlay mode.
enum class OverlayXattrs {
  kAuto,     ///< OverlayXattrsForMount(): trusted.* only for real root in the initial user namespace
  kTrusted,  ///< trusted.overlay.* (overlay mounted by real root)
  kUser,     ///< user.overlay.* (overlay mounted with -o userxattr, rootless)
};

/// The xattr namespace overlayfs reads whiteout/opaque markers from where
/// kiln mounts it: kTrusted only for real root in the initial user namespace
/// (the kernel tells: /proc/self/ns/user is the initial namespace's inode),
/// kUser everywhere else -- in kiln's user namespace (also when started as
/// root, where the id map is the identity but trusted.* is not writable) the
/// overlay is mounted with `-o userxattr`. The one place that decides.
OverlayXattrs OverlayXattrsForMount();

/// The default of UnpackLimits::max_expansion_ratio: $KILN_MAX_EXPANSION_RATIO
/// when it is a non-negative integer (0 turns the ratio cap off), else 1000.
int64_t DefaultMaxExpansionRatio();

/// Bounds on an untrusted layer (I5). Exceeding one is an error.
struct UnpackLimits {
  int64_t max_uncompressed_bytes = int64_t(64) << 30;  ///< whole tar stream
  /// Compressed layers: past the first `expansion_allowance` bytes of output,
  /// the decompressed stream may be at most this many times the compressed
  /// bytes read so far ("decompressed size limit exceeded"; a gzip/zstd bomb
  /// stops after a few MiB instead of at max_uncompressed_bytes). 0: no cap.
  int64_t max_expansion_ratio = DefaultMaxExpansionRatio();
  int64_t expansion_allowance = int64_t(16) << 20;
  int64_t max_entries = 4'000'000;
  size_t max_path_bytes = 4096;      ///< a name or a hardlink target
  size_t max_depth = 512;            ///< path components
  size_t max_xattrs_per_entry = 256;
  size_t max_xattr_value_bytes = 64 * 1024;
};

/// Overlay whiteout representation usable in `dir` by this process.
enum class WhiteoutFormat {
  kCharDevice,  ///< mknod c 0 0 works
  kXattr,       ///< only the xattr form (kernel >= 6.7) is possible
  kNone,        ///< neither: fall back to applying whiteouts into one dir
};

/// Options of UnpackLayer().
struct UnpackOptions {
  WhiteoutMode whiteouts = WhiteoutMode::kApply;
  OverlayXattrs overlay_xattrs = OverlayXattrs::kAuto;
  /// kOverlay: the whiteout form to write; unset = ProbeWhiteoutFormat().
  std::optional<WhiteoutFormat> whiteout_format;
  /// When set, the sha256 of the uncompressed stream must equal it (checked
  /// at the end: unpack into a staging directory and discard it on error).
  std::optional<Digest> expect_diff_id;
  /// When set, the sha256 of the raw (compressed) input must equal it.
  std::optional<Digest> expect_digest;
  /// For a producer that hashes the raw input itself (a registry download
  /// teed into the unpacker): the raw bytes are not hashed again here
  /// (UnpackStats::digest stays empty); this is called once the whole input
  /// was read, and an error from it fails the unpack like a digest mismatch.
  /// Not together with expect_digest.
  std::function<Status()> raw_verified;
  /// Start the writeback of file data while unpacking (sync_file_range, every
  /// 8 MiB and at the end of each large file), for a caller that makes the
  /// result durable afterwards (the store's syncfs): the disk works while
  /// the unpack goes on instead of all at the end.
  bool start_writeback = false;
  /// chown every entry to the ids in the tar. Off: files belong to the caller.
  bool preserve_ownership = true;
  /// With preserve_ownership: every entry gets this uid (gid) instead of
  /// the tar's (ADD --chown of an archive).
  std::optional<uint32_t> owner_uid;
  std::optional<uint32_t> owner_gid;
  /// Character/block devices we may not create (rootless): skip with a
  /// warning (true) or fail (false).
  bool skip_unmakeable_devices = true;
  /// Threads creating small files (the stream itself is read, hashed and
  /// parsed by one thread): 0 = $KILN_UNPACK_THREADS, else the number of
  /// cores (at most 16); 1 = every file on the calling thread.
  int threads = 0;
  UnpackLimits limits;
};

/// What UnpackLayer() did.
struct UnpackStats {
  Compression compression = Compression::kNone;  ///< detected by magic bytes
  Digest digest;                 ///< sha256 of the raw input
  int64_t size = 0;              ///< raw input bytes
  Digest diff_id;                ///< sha256 of the uncompressed stream
  int64_t uncompressed_size = 0;
  int64_t entries = 0;
  int64_t whiteouts = 0;
  int64_t skipped = 0;           ///< devices/odd entries skipped with a warning
};

/// Extracts a (possibly hostile) layer read from `in_fd` into the existing
/// directory `root_dir`. Compression is detected by magic bytes (gzip, zstd,
/// bzip2, xz, or none). Every path is resolved inside the root by fd
/// (openat2 RESOLVE_IN_ROOT); the final component is never followed; `..`
/// components, whiteouts of the root, non-directories replacing the root and
/// hardlinks that leave the root are rejected (kCorrupt, naming the entry).
/// On error the target directory holds a partial result: callers unpack into
/// a private staging directory and remove it on failure. The whole input is
/// read, so trailing bytes count in both digests.
Expected<UnpackStats> UnpackLayer(int in_fd, const std::string& root_dir, const UnpackOptions& options);

/// Reads a layer blob from `in_fd` to its end and returns its digests and
/// sizes (digest, size, diff_id, uncompressed_size, compression) without
/// unpacking it: the same decompressors and limits as UnpackLayer(), so the
/// diff_id is the one an unpack would compute.
Expected<UnpackStats> HashLayer(int in_fd, const UnpackLimits& limits = {});

/// Probes (by trying, in a temporary entry inside `dir`) which whiteout form
/// works here. kXattr is reported only on kernels >= 6.7.
WhiteoutFormat ProbeWhiteoutFormat(const std::string& dir, OverlayXattrs xattrs = OverlayXattrs::kAuto);

/// Copies `in` to `out` (out < 0: discard) while hashing, failing with
/// kInvalidInput past `max_bytes`. Returns the sha256 of the bytes copied.
Expected<Digest> CopyAndHash(int in, int out, int64_t max_bytes, int64_t* copied = nullptr);

/// Reads the content of one file for ReadMergedFiles(): Add() gets the
/// file's bytes in order (false: enough, skip the rest); Finish() gives what
/// is kept for the file.
class FileReader {
 public:
  virtual ~FileReader() = default;
  virtual bool Add(std::string_view chunk) = 0;
  virtual std::string Finish() = 0;
};
/// Chooses the files ReadMergedFiles() reads: a reader for (path relative
/// to the root, without "./"; st_mode; size), or null to skip the file.
using FileSelector =
    std::function<std::unique_ptr<FileReader>(const std::string& path, uint32_t mode, int64_t size)>;

/// Reads an image's layer blobs (`layer_fds`, bottom layer first, each read
/// once from its current offset) as a stream and returns, for every regular
/// file the selector chose that is still there in the merged image (not
/// deleted by a whiteout, an opaque directory or a higher layer's entry of
/// the same path or of a parent), what its reader finished with, by path.
/// Nothing is written to disk. kCorrupt naming the layer when one is not
/// a readable tar (gzip, zstd or none).
Expected<std::map<std::string, std::string>> ReadMergedFiles(const std::vector<int>& layer_fds,
                                                             const FileSelector& select);

/// Detects the compression of a blob from its first bytes.
Compression SniffCompression(std::string_view head);

}  // namespace kiln::layer
