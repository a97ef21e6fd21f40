// The content store: an OCI image layout on disk (oci-layout, index.json,
// blobs/sha256/<hex>) plus kiln's own records (unpacked layers, cache
// records, containers, tmp). See docs/store.md for the format and the
// crash-safety argument.
//
//   <root>/oci-layout             {"imageLayoutVersion":"1.0.0"}
//   <root>/index.json             one entry per (image, name); the name is the
//                                 org.opencontainers.image.ref.name annotation
//                                 (full reference "docker.io/library/x:latest");
//                                 an entry without it is an unnamed image
//   <root>/blobs/sha256/<hex>     every manifest, index, config and layer
//   <root>/layers/<hex>/          unpacked layers (by diff_id, or a caller's key)
//   <root>/cache/<key>.json       build-cache records (opaque JSON)
//   <root>/state/<name>           other private module state (stat caches, keys)
//   <root>/containers/            owned by the run module (opaque)
//   <root>/roots/<module>/<n>.json what modules keep alive through GC (GcRoot)
//   <root>/leases/<id>            flock'ed by in-flight builds, pulls, loads
//   <root>/tmp/                   private staging files and directories
//   <root>/lock, <root>/gc.lock   flock(2) files
//
// Concurrency: any number of kiln processes may use one store. Blobs are
// content-addressed (a second writer of the same digest is harmless); the
// read-modify-write of index.json happens under an exclusive flock on
// `lock`. Every open Store holds a shared flock on `gc.lock`; Prune() takes it
// exclusively, so garbage collection never runs while another process may be
// between writing a blob and naming it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/digest.h"
#include "kiln/error.h"
#include "kiln/oci.h"
#include "kiln/unique_fd.h"

namespace kiln {

class Store;

/// What a module keeps alive through garbage collection (docs/store.md,
/// "Roots and leases"). Registered with Store::PutRoot(module, name, root).
struct GcRoot {
  /// Blobs kept with their whole closure: a manifest keeps its config and
  /// layers, an index every manifest below it.
  std::vector<Descriptor> blobs;
  /// Unpacked layer directories (layers/<hex>) kept: diff_ids or keys.
  std::vector<Digest> layers;
  /// Image IDs (config digests): every image with one of these IDs is kept
  /// whole, `prune -a` does not remove it unnamed, and `rmi` refuses it
  /// without -f. A container's root names its image here.
  std::vector<Digest> image_ids;
  /// A path relative to the store root whose existence keeps the root
  /// valid (a container's config.json, a cache record). When it is gone the
  /// root is stale: Prune() ignores and removes it. Empty: the root lives
  /// until DeleteRoot().
  std::string owner;
};

/// A lease (containerd's model): while alive it protects every blob and
/// unpacked layer that its process writes, reuses or finds present through
/// the store object it was taken on (including their closure), so that no
/// garbage collection removes them between "blob written" and "image
/// named". It is a file leases/<random> holding those digests, flock'ed
/// for as long as the Lease lives; Prune() removes unlocked (stale) leases.
/// Nested leases on one store object share the file. Not copyable; moving
/// keeps it alive.
class Lease {
 public:
  Lease() = default;
  Lease(Lease&&) noexcept;
  Lease& operator=(Lease&&) noexcept;
  ~Lease();
  /// Protects `digest` (a blob, or a layer directory's key) explicitly.
  void Add(const Digest& digest);
  bool active() const { return state_ != nullptr; }
  struct State;

 private:
  friend class Store;
  std::shared_ptr<State> state_;
};

/// Streams one blob into the store: a private temp file in tmp/, hashed as
/// it is written; Commit() checks digest and size, fsyncs, renames it into
/// blobs/sha256/<hex> and fsyncs the directory (docs/security.md I10). An
/// uncommitted writer removes its temp file when destroyed.
class BlobWriter {
 public:
  BlobWriter(BlobWriter&& other) noexcept;
  BlobWriter& operator=(BlobWriter&& other) noexcept;
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;
  ~BlobWriter();

  /// Appends bytes. Fails (kCorrupt) past the expected size, if one was given.
  Status Write(const void* data, size_t len);
  Status Write(std::string_view data) { return Write(data.data(), data.size()); }
  int64_t bytes_written() const { return written_; }

  /// The temp file, for a producer that writes it itself (e.g. a download
  /// that may restart from 0). Once fd() has been used, Commit() re-reads the
  /// file to hash it instead of trusting Write()'s running hash.
  int fd();

  /// Commit() for a producer that wrote through fd() and hashed exactly the
  /// bytes it wrote (RegistryClient::FetchBlob): `digest` is that hash; the
  /// file is not read again. The size comes from the file itself.
  Expected<Descriptor> CommitHashed(const Digest& digest, std::string_view media_type = {});

  /// Verifies (kCorrupt "digest mismatch"/"size mismatch", naming both
  /// values) and publishes the blob. A blob already present counts as
  /// success. Returns its descriptor with `media_type`.
  Expected<Descriptor> Commit(std::string_view media_type = {});

 private:
  friend class Store;
  BlobWriter() = default;
  void Abort();
  Expected<Descriptor> Publish(const Digest& got, int64_t size, std::string_view media_type);

  const Store* store_ = nullptr;
  UniqueFd fd_;
  std::string tmp_path_;
  std::optional<Digest> expected_;
  int64_t expected_size_ = -1;
  int64_t written_ = 0;
  bool fd_exposed_ = false;
  bool failed_ = false;
  Sha256 hasher_;
};

/// An image resolved in the store: the entry that was named (a manifest, or
/// an index from which the platform's manifest was chosen), the manifest
/// and its config.
struct StoredImage {
  Descriptor top;                 ///< the index.json entry (manifest or index)
  Descriptor manifest_descriptor; ///< == top unless top is an index
  Manifest manifest;
  ImageConfig config;
  std::string config_json;        ///< the config's exact bytes
  std::vector<std::string> names; ///< every name pointing at `top`
  /// The image ID (podman's): the config digest.
  const Digest& id() const { return manifest.config.digest; }
};

/// One image of index.json with all its names.
struct ImageEntry {
  Descriptor descriptor;           ///< annotations stripped of the name
  std::vector<std::string> names;  ///< full references, sorted; empty: unnamed
};

class Store {
 public:
  /// Opens (creating if needed) the store at `root`. Takes the shared gc
  /// lock for the lifetime of the object. kIo naming the path on failure.
  static Expected<Store> Open(const std::string& root);

  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  ~Store();

  const std::string& root() const { return root_; }

  // ------------------------------------------------------------ blobs

  /// <root>/blobs/<algo>/<hex>. The digest type guarantees a safe name.
  std::string BlobPath(const Digest& digest) const;
  bool HasBlob(const Digest& digest) const;
  /// A writer for a new blob. With `expected`, Commit() insists on that
  /// digest; with expected_size >= 0, on that size (and Write() refuses to
  /// go past it).
  Expected<BlobWriter> NewBlobWriter(std::optional<Digest> expected = std::nullopt,
                                     int64_t expected_size = -1) const;
  /// Stores `data` (digest computed here).
  Expected<Descriptor> PutBlob(std::string_view media_type, std::string_view data) const;
  /// Copies `fd` to its end into a blob, verifying `expected`/`expected_size`
  /// when given.
  Expected<Descriptor> PutBlobFromFd(int fd, std::string_view media_type,
                                     std::optional<Digest> expected = std::nullopt,
                                     int64_t expected_size = -1) const;
  Expected<UniqueFd> OpenBlob(const Digest& digest) const;
  /// Reads a whole blob (kInvalidInput past max_bytes) and re-verifies its
  /// digest (kCorrupt on mismatch).
  Expected<std::string> ReadBlob(const Digest& digest, size_t max_bytes = kMaxDocumentBytes) const;
  Expected<Manifest> ReadManifest(const Digest& digest) const;
  Expected<Index> ReadIndex(const Digest& digest) const;
  Expected<ImageConfig> ReadConfig(const Digest& digest) const;

  /// Writes `config` and a manifest over `layers` (blobs already stored)
  /// and returns the manifest's descriptor. manifest_media_type is
  /// kMediaTypeOciManifest or kMediaTypeDockerManifest (config and layer
  /// media types follow). Does not name the image: see AddImage().
  Expected<Descriptor> WriteImage(const ImageConfig& config, const std::vector<Descriptor>& layers,
                                  std::string_view manifest_media_type = kMediaTypeOciManifest,
                                  const std::map<std::string, std::string>& annotations = {}) const;

  // ------------------------------------------------------------ names

  /// Every image of index.json with its names, in index.json order.
  Expected<std::vector<ImageEntry>> ListImages() const;
  /// Records the image `top` (manifest or index; its blobs, recursively,
  /// must be present) under `names` (full references, see
  /// ImageReference::str()); a name is moved from any other image. With no
  /// names the image is kept unnamed (unless it already has a name). Under
  /// the store lock; index.json is replaced atomically.
  Status AddImage(const Descriptor& top, std::span<const std::string> names = {});
  /// Removes one name. kNotFound if no image has it. The image stays, unnamed,
  /// when it was its last name.
  Status RemoveName(const std::string& name);
  /// Removes every entry of the image `top_digest` (its blobs stay until
  /// Prune()). kNotFound if absent.
  Status RemoveImage(const Digest& top_digest);

  /// Finds an image by (in this order): full ID or ID prefix (config digest,
  /// "sha256:" optional, >= 3 hex digits, unique), manifest/index digest
  /// ("sha256:..."), or reference (a short name tries localhost/NAME, then
  /// docker.io/library/NAME; "name@sha256:..." matches by digest). For an
  /// index, the manifest for `platform` (default: the host) is chosen.
  /// kNotFound ("image not known: <text>") or kInvalidInput (bad reference,
  /// ambiguous ID prefix).
  Expected<StoredImage> ResolveImage(std::string_view text,
                                     const std::optional<Platform>& platform = std::nullopt) const;
  /// Loads an image from a manifest or index descriptor.
  Expected<StoredImage> LoadImage(const Descriptor& top,
                                  const std::optional<Platform>& platform = std::nullopt) const;

  // ------------------------------------------------------------ unpacked layers

  /// <root>/layers/<hex of key>.
  std::string LayerDir(const Digest& key) const;
  /// The directory for `key`, created on first use by `fill(staging_dir)`:
  /// fill runs on a private staging directory under tmp/, which is synced
  /// and renamed into place only when fill succeeds (so a present directory
  /// is always complete). Concurrent creators race harmlessly: the first
  /// rename wins, the others discard their copy.
  Expected<std::string> GetOrCreateLayerDir(const Digest& key,
                                            const std::function<Status(const std::string&)>& fill);
  /// The layer blob `layer` (in the store) unpacked into layers/<diff_id
  /// hex>/ with overlay-style whiteouts (usable as an overlay lowerdir),
  /// verifying both digests.
  Expected<std::string> UnpackedLayer(const Descriptor& layer, const Digest& diff_id);
  /// As UnpackedLayer(), but reads the layer's bytes from `in_fd` (a stream:
  /// the pull pipeline feeds it while the blob downloads) instead of the
  /// stored blob. Both digests are verified over the bytes read; nothing is
  /// published on a mismatch or a short stream. With `raw_verified`, the
  /// stream's producer hashes the compressed bytes itself (the registry
  /// download): they are not hashed again, and the layer is published only
  /// when raw_verified(), called after the last byte, returns Ok.
  Expected<std::string> UnpackedLayerFromStream(int in_fd, const Descriptor& layer, const Digest& diff_id,
                                                const std::function<Status()>& raw_verified = {});

  // ------------------------------------------------------------ cache records

  /// Keys: 1..128 of [A-Za-z0-9_.-], not starting with '.'; typically the hex
  /// of a cache key digest. Values are opaque JSON. What the record needs
  /// kept through Prune() is `keep` (registered as the root "cache"/<key>
  /// owned by the record); a record without a root (written by an older
  /// kiln) keeps every "sha256:<hex>" string in it alive.
  Status PutCacheRecord(std::string_view key, std::string_view json, const GcRoot& keep = {}) const;
  /// kNotFound when absent.
  Expected<std::string> GetCacheRecord(std::string_view key) const;
  Status DeleteCacheRecord(std::string_view key) const;

  // ------------------------------------------------------------ state files

  /// <root>/state/<name>: private files of kiln modules that are neither
  /// blobs nor cache records (the build's context stat caches, the key for
  /// secret-aware cache keys). Names as cache keys. Written atomically
  /// (temp file in tmp/, fsync, rename) with `mode`. Prune keeps them.
  Status PutStateFile(std::string_view name, std::string_view data, uint32_t mode = 0644) const;
  /// Like PutStateFile, but never replaces an existing file (link(2)):
  /// kFailed "exists" when another process created it first.
  Status CreateStateFile(std::string_view name, std::string_view data, uint32_t mode = 0600) const;
  /// kNotFound when absent.
  Expected<std::string> GetStateFile(std::string_view name, size_t max_bytes = size_t(256) << 20) const;

  // ------------------------------------------------------------ roots and leases

  /// Registers (replaces) the root `module`/`name` (both as cache keys:
  /// [A-Za-z0-9_.-]): its blobs, layers and images survive Prune() while
  /// the root exists (and, with an owner, while the owner path exists).
  /// Written atomically; not synced (a root lost in a power cut falls back
  /// to the legacy scan of its owner's JSON, docs/store.md).
  Status PutRoot(std::string_view module, std::string_view name, const GcRoot& root) const;
  /// Removes a root; absent is fine.
  Status DeleteRoot(std::string_view module, std::string_view name) const;
  /// Every valid (non-stale) root of `module` (empty: all modules), keyed
  /// "module/name".
  Expected<std::map<std::string, GcRoot>> ListRoots(std::string_view module = {}) const;
  /// Takes a lease (see Lease) on this store object, or joins the one
  /// already held through it. `purpose` is recorded for humans.
  Expected<Lease> AcquireLease(std::string_view purpose) const;

  // ------------------------------------------------------------ damage

  /// The blobs of the image `top` that are missing (for an index: the
  /// manifests of it that are present, and their configs and layers; an
  /// index without any present manifest counts as missing that index's
  /// first manifest). Each entry is "what digest" ("config sha256:...").
  /// Empty: the image is complete.
  std::vector<std::string> MissingBlobs(const Descriptor& top) const;
  /// Like ResolveImage, but finds an image even when it is damaged (its
  /// manifest or config missing): by name, by top digest, by ID or ID
  /// prefix (when its manifest is readable). Returns every matching entry
  /// (several when an ID prefix matches several entries); kNotFound when
  /// none.
  Expected<std::vector<ImageEntry>> FindImageEntries(std::string_view text) const;

  // ------------------------------------------------------------ directories

  /// <root>/containers: the run module's own records. A container keeps its
  /// image through a root ("containers"/<id>, owner its config.json); a
  /// record written by an older kiln without a root keeps every
  /// "sha256:<hex>" in its *.json files alive (the legacy scan).
  std::string ContainersDir() const;
  /// <root>/tmp: on the store's file system, for staging.
  std::string TmpDir() const;
  /// A fresh private directory under tmp/ ("tmp/<prefix>XXXXXX"); the
  /// caller removes it (Prune() removes leftovers).
  Expected<std::string> MakeTempDir(std::string_view prefix = "dir-") const;

  // ------------------------------------------------------------ maintenance

  struct CheckReport {
    int64_t blobs = 0;
    int64_t images = 0;
    int64_t layer_dirs = 0;
    std::vector<std::string> problems;  ///< inconsistencies (the store is damaged)
    std::vector<std::string> notes;     ///< harmless leftovers (stale tmp files)
    bool ok() const { return problems.empty(); }
  };
  /// fsck: every blob re-hashes to its name; index.json parses and every
  /// descriptor reachable from it (manifests, indexes, configs, layers)
  /// exists with the right size; nothing in blobs/ is a temp file; every
  /// layers/ entry has a valid name.
  Expected<CheckReport> Check() const;

  struct PruneOptions {
    bool all = false;    ///< also unnamed images and every unpacked layer
    bool cache = false;  ///< also every build-cache record
    bool dry_run = false;
  };
  struct PruneReport {
    int64_t images_removed = 0;
    int64_t roots_removed = 0;   ///< stale roots and leases
    int64_t blobs_removed = 0;
    int64_t bytes_freed = 0;
    int64_t layer_dirs_removed = 0;
    int64_t tmp_removed = 0;
    int64_t cache_records_removed = 0;
  };
  /// One mark-and-sweep from the roots (docs/store.md): every image of
  /// index.json with its closure, every registered root (containers, cache
  /// records), every live lease, and the legacy scan of records without a
  /// root. Removes unmarked blobs, unpacked layers no root uses (--all:
  /// none but those of containers, cache records and leases), stale roots
  /// and leases, and everything in tmp/.
  /// Takes the gc lock exclusively: waits up to `wait_seconds` for other
  /// kiln processes (0: fail at once with kFailed "store is in use").
  Expected<PruneReport> Prune(const PruneOptions& options, int wait_seconds = 30);

 private:
  explicit Store(std::string root);
  friend class BlobWriter;
  struct LeaseSlot;
  class IndexLock;

  Expected<std::string> ReadIndexJson() const;
  /// AddImage's update of `idx` (read under the index lock), then written.
  Status AddImageLocked(Index& idx, const Descriptor& top, std::span<const std::string> names);
  static std::shared_ptr<LeaseSlot> NewLeaseSlot();
  std::string UnsyncedRecordPath(const Digest& key) const;
  /// At Open: discards layer directories whose unsynced record names
  /// another boot, and clears the records of this boot's layers renamed into
  /// place over a minute ago (after a syncfs).
  Status RecoverUnsyncedLayers();
  Status WriteIndexJson(const std::string& json) const;
  /// The lease of this store object, when one is held: every blob and
  /// layer key the store writes or finds present is added to it.
  void NoteLeased(const Digest& digest) const;

  std::string root_;
  UniqueFd gc_lock_;
  std::shared_ptr<LeaseSlot> lease_;
};

/// Crash-point injection for the crash-safety test: when $KILN_CRASH_AT=N,
/// the N-th call of CrashPoint() in this process kills it with SIGKILL. The
/// store calls it between every two steps of a write protocol. $KILN_CRASH_LOG
/// (a file) receives one "N name" line per call (append mode).
void CrashPoint(const char* name);
/// Re-reads $KILN_CRASH_AT and resets the counter (tests that fork).
void ResetCrashPointsForTesting();

}  // namespace kiln
