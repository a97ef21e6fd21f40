// UnpackLayer: safe extraction of untrusted layers (docs/security.md I1, I3, I5).
//
// libarchive only parses the tar stream; every write to disk is done here,
// relative to directory fds that were resolved inside the root with
// openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV). The
// final component of a path is never followed (O_NOFOLLOW, O_EXCL,
// AT_SYMLINK_NOFOLLOW, unlinkat/linkat without AT_SYMLINK_FOLLOW).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include <archive.h>

#include "kiln/layer.h"
#include "kiln/log.h"
#include "layer/extract.h"
#include "layer/stream.h"

namespace kiln::layer {

namespace {

using internal::ByteSource;
using internal::Extractor;
using internal::OverlayXattrPrefix;

// The uncompressed stream that libarchive parses: hashed, counted, bounded.
class CountingSource {
 public:
  CountingSource(ByteSource* in, int64_t max_bytes) : in_(in), max_bytes_(max_bytes) {}

  Expected<std::string_view> Read() {
    KILN_ASSIGN_OR_RETURN(std::string_view chunk, in_->Read());
    bytes_ += static_cast<int64_t>(chunk.size());
    if (bytes_ > max_bytes_)
      return Error(Errc::kCorrupt, "decompressed size limit exceeded (" + std::to_string(max_bytes_) + " bytes)");
    hash_.Update(chunk.data(), chunk.size());
    return chunk;
  }

  static la_ssize_t ReadCb(archive* /*a*/, void* self_v, const void** buf) {
    auto* self = static_cast<CountingSource*>(self_v);
    auto chunk = self->Read();
    if (!chunk) {
      self->error_ = std::move(chunk).error();
      return -1;
    }
    *buf = chunk->data();
    return static_cast<la_ssize_t>(chunk->size());
  }

  int64_t bytes() const { return bytes_; }
  Digest TakeDigest() { return hash_.Finish(); }
  std::optional<Error>& error() { return error_; }

 private:
  ByteSource* in_;
  int64_t max_bytes_;
  int64_t bytes_ = 0;
  Sha256 hash_;
  std::optional<Error> error_;
};

// Between a decompressor and its consumer: bounds the expansion ratio
// (UnpackLimits::max_expansion_ratio) against the compressed bytes read so
// far. Runs on the thread that drives the decompressor (which alone reads
// `raw`), so reading raw->bytes() is not a race.
class RatioGuard : public ByteSource {
 public:
  RatioGuard(ByteSource* in, const internal::HashingFdSource* raw, const UnpackLimits& limits)
      : in_(in), raw_(raw), ratio_(limits.max_expansion_ratio), allowance_(limits.expansion_allowance) {}

  Expected<std::string_view> Read() override {
    KILN_ASSIGN_OR_RETURN(std::string_view chunk, in_->Read());
    out_ += static_cast<int64_t>(chunk.size());
    if (ratio_ > 0 && out_ > allowance_ && out_ / ratio_ > raw_->bytes())
      return Error(Errc::kCorrupt, "decompressed size limit exceeded: " + std::to_string(out_) + " bytes from " +
                                       std::to_string(raw_->bytes()) + " compressed bytes is more than " +
                                       std::to_string(ratio_) + ":1 (KILN_MAX_EXPANSION_RATIO)");
    return chunk;
  }

 private:
  ByteSource* in_;
  const internal::HashingFdSource* raw_;
  int64_t ratio_;
  int64_t allowance_;
  int64_t out_ = 0;
};

// Plain passthrough of the raw fd source (uncompressed layers).
class RawSource : public ByteSource {
 public:
  explicit RawSource(internal::HashingFdSource* in) : in_(in) {}
  Expected<std::string_view> Read() override { return in_->Read(); }

 private:
  internal::HashingFdSource* in_;
};

// Reads `source` to its end.
template <typename Source>
Status Drain(Source& source) {
  for (;;) {
    KILN_ASSIGN_OR_RETURN(std::string_view chunk, source.Read());
    if (chunk.empty())
      return Ok();
  }
}

}  // namespace

OverlayXattrs OverlayXattrsForMount() {
  // PROC_USER_INIT_INO (include/linux/proc_ns.h): the initial user
  // namespace's inode. A namespace made by root with the identity map
  // "0 0 4294967295" (kiln's, for real root) looks like the initial one in
  // uid_map but cannot write trusted.* xattrs; the inode tells them apart.
  constexpr ino_t kInitialUserNsInode = 0xEFFFFFFDU;
  struct stat st;
  bool initial = ::stat("/proc/self/ns/user", &st) == 0 && st.st_ino == kInitialUserNsInode;
  return ::geteuid() == 0 && initial ? OverlayXattrs::kTrusted : OverlayXattrs::kUser;
}

int64_t DefaultMaxExpansionRatio() {
  static const int64_t ratio = [] {
    const char* v = std::getenv("KILN_MAX_EXPANSION_RATIO");
    if (!v || !*v)
      return int64_t(1000);
    char* end = nullptr;
    long long n = std::strtoll(v, &end, 10);
    if (*end || n < 0) {
      LogWarn(std::string("KILN_MAX_EXPANSION_RATIO=") + v + " is not a non-negative integer: using 1000");
      return int64_t(1000);
    }
    return static_cast<int64_t>(n);
  }();
  return ratio;
}

Expected<UnpackStats> HashLayer(int in_fd, const UnpackLimits& limits) {
  UnpackStats stats;
  internal::HashingFdSource raw(in_fd);
  KILN_ASSIGN_OR_RETURN(std::string_view head, raw.Peek(8));
  stats.compression = SniffCompression(head);
  std::unique_ptr<ByteSource> decompressor;
  std::unique_ptr<ByteSource> guard;
  ByteSource* source = nullptr;
  RawSource plain(&raw);
  if (stats.compression == Compression::kNone) {
    source = &plain;
  } else {
    KILN_ASSIGN_OR_RETURN(decompressor, internal::MakeDecompressor(stats.compression, &raw));
    guard = std::make_unique<RatioGuard>(decompressor.get(), &raw, limits);
    source = guard.get();
  }
  CountingSource counted(source, limits.max_uncompressed_bytes);
  KILN_TRY(Drain(counted));
  KILN_TRY(Drain(raw));
  stats.uncompressed_size = counted.bytes();
  stats.diff_id = counted.TakeDigest();
  stats.size = raw.bytes();
  stats.digest = raw.TakeDigest();
  return stats;
}

WhiteoutFormat ProbeWhiteoutFormat(const std::string& dir, OverlayXattrs xattrs) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd)
    return WhiteoutFormat::kNone;
  return Extractor::ProbeWhiteoutFormatFd(fd.get(), OverlayXattrPrefix(xattrs));
}

Expected<UnpackStats> UnpackLayer(int in_fd, const std::string& root_dir, const UnpackOptions& options) {
  auto context = [&](Error e) { return std::move(e).WithContext("unpack layer into " + root_dir); };
  UniqueFd root(::open(root_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root)
    return context(Error::FromErrno("open " + root_dir));

  if (options.raw_verified && options.expect_digest)
    return context(Error(Errc::kInvalidInput, "unpack: raw_verified and expect_digest are exclusive"));
  internal::Utf8LocaleScope utf8;
  UnpackStats stats;
  internal::HashingFdSource raw(in_fd, /*hash=*/!options.raw_verified);
  auto head = raw.Peek(8);
  if (!head)
    return context(std::move(head).error());
  stats.compression = SniffCompression(*head);
  std::unique_ptr<ByteSource> decompressor;
  std::unique_ptr<ByteSource> guard;
  std::unique_ptr<ByteSource> source;  // declared after: destroyed first
  if (stats.compression == Compression::kNone) {
    source = std::make_unique<RawSource>(&raw);
  } else {
    auto dec = internal::MakeDecompressor(stats.compression, &raw);
    if (!dec)
      return context(std::move(dec).error());
    decompressor = std::move(*dec);
    guard = std::make_unique<RatioGuard>(decompressor.get(), &raw, options.limits);
    // Decompress on a second core while this one writes files.
    source = std::make_unique<internal::PrefetchSource>(guard.get());
  }
  CountingSource counted(source.get(), options.limits.max_uncompressed_bytes);

  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), &archive_read_free);
  if (!a)
    return context(Error(Errc::kIo, "libarchive: out of memory"));
  archive_read_support_format_tar(a.get());
  archive_read_support_format_empty(a.get());
  Extractor extractor(options, std::move(root));
  Status status;
  if (archive_read_open(a.get(), &counted, nullptr, &CountingSource::ReadCb, nullptr) != ARCHIVE_OK) {
    const char* msg = archive_error_string(a.get());
    status = Error(Errc::kCorrupt, std::string("not a tar archive: ") + (msg ? msg : "?"));
  } else {
    status = extractor.Run(a.get(), &stats);
  }
  if (!status) {
    if (counted.error())
      return context(*counted.error());
    return context(std::move(status).error());
  }
  // Drain what follows the end-of-archive marker so that both digests cover
  // every byte (I4).
  if (auto st = Drain(counted); !st)
    return context(std::move(st).error());
  if (auto st = Drain(raw); !st)
    return context(std::move(st).error());
  stats.uncompressed_size = counted.bytes();
  stats.diff_id = counted.TakeDigest();
  stats.size = raw.bytes();
  if (options.raw_verified) {
    if (auto verified = options.raw_verified(); !verified)
      return context(std::move(verified).error());
  } else {
    stats.digest = raw.TakeDigest();
  }
  if (options.expect_diff_id && *options.expect_diff_id != stats.diff_id)
    return context(Error(Errc::kCorrupt, "diff_id mismatch: expected " + options.expect_diff_id->str() + ", got " +
                                             stats.diff_id.str()));
  if (options.expect_digest && *options.expect_digest != stats.digest)
    return context(Error(Errc::kCorrupt,
                         "digest mismatch: expected " + options.expect_digest->str() + ", got " + stats.digest.str()));
  return stats;
}

}  // namespace kiln::layer
