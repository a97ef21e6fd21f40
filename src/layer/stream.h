// Byte streams of the layer module: hashing fd sinks, compressors (parallel
// gzip, multi-threaded zstd) and decompressing sources sniffed by magic.
// Internal to src/layer.
#pragma once

#include <locale.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>
#include <string>
#include <string_view>

#include "kiln/digest.h"
#include "kiln/error.h"
#include "kiln/layer.h"

struct archive;
struct archive_entry;

namespace kiln::layer::internal {

/// A push stream. Finish() flushes; Write() after Finish() is a bug.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual Status Write(const void* data, size_t len) = 0;
  virtual Status Finish() = 0;
};

/// Writes to an fd, hashing and counting the bytes.
class HashingFdSink : public ByteSink {
 public:
  explicit HashingFdSink(int fd) : fd_(fd) {}
  Status Write(const void* data, size_t len) override;
  Status Finish() override { return Ok(); }
  kiln::Digest TakeDigest() { return hash_.Finish(); }
  int64_t bytes() const { return bytes_; }

 private:
  int fd_;
  Sha256 hash_;
  bool hashing_ = true;
  int64_t bytes_ = 0;
};

/// A compressor writing into `out` (borrowed; must outlive it). kNone is a
/// pass-through. level 0 = default; threads 0 = online CPUs.
Expected<std::unique_ptr<ByteSink>> MakeCompressor(Compression c, int level, int threads, ByteSink* out);

/// A pull stream. Read() returns the next chunk, empty at end of stream. The
/// chunk stays valid until the next call.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual Expected<std::string_view> Read() = 0;
};

/// Reads an fd, hashing and counting the raw bytes. Peek() fills the first
/// chunk (at least `n` bytes unless EOF comes first) without consuming it.
class HashingFdSource : public ByteSource {
 public:
  /// `hash` false: only counts (the producer of the bytes hashes them).
  explicit HashingFdSource(int fd, bool hash = true);
  Expected<std::string_view> Peek(size_t n);
  Expected<std::string_view> Read() override;
  kiln::Digest TakeDigest() { return hash_.Finish(); }
  int64_t bytes() const { return bytes_; }

 private:
  int fd_;
  std::string buf_;
  size_t pending_ = 0;  // peeked bytes not yet returned
  Sha256 hash_;
  bool hashing_ = true;
  int64_t bytes_ = 0;
};

/// Switches this thread to the C.UTF-8 locale for its lifetime, so that
/// libarchive writes and reads UTF-8 names in PAX headers verbatim whatever
/// the process locale is (names that are not UTF-8 stay raw bytes).
class Utf8LocaleScope {
 public:
  Utf8LocaleScope();

 private:
  // Switches back to `old`, then frees the UTF-8 locale.
  struct Restore {
    locale_t old;
    void operator()(locale_t utf8) const {
      ::uselocale(old);
      ::freelocale(utf8);
    }
  };
  std::unique_ptr<std::remove_pointer_t<locale_t>, Restore> utf8_;
};

/// A decompressor reading `in` (borrowed).
Expected<std::unique_ptr<ByteSource>> MakeDecompressor(Compression c, ByteSource* in);

/// Runs `in` (borrowed) on a background thread, handing its chunks over
/// through a small ring of buffers (4 x 1 MiB), so that decompression
/// overlaps with whatever the consumer does. After Read() returned end of
/// stream or an error, `in` is no longer touched by the thread.
class PrefetchSource : public ByteSource {
 public:
  explicit PrefetchSource(ByteSource* in);
  ~PrefetchSource() override;
  PrefetchSource(const PrefetchSource&) = delete;
  PrefetchSource& operator=(const PrefetchSource&) = delete;
  Expected<std::string_view> Read() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The tar writer of PackDirectory (pack.cpp), for other producers of a
/// layer (SquashLayers): the same format, compression and digests.
class TarLayerWriter {
 public:
  virtual ~TarLayerWriter() = default;
  /// An entry read from another tar (`in` positioned at its data), as it is.
  virtual Status CopyEntry(archive* in, archive_entry* e) = 0;
  /// An empty `DIR/.wh..wh..opq` (OCI opaque directory marker).
  virtual Status OpaqueMarker(const std::string& dir) = 0;
};

/// Opens a layer on `out_fd` with `options`' compression, lets
/// `add_entries` write its entries, finishes it and returns its digests.
Expected<LayerInfo> WriteTarLayer(int out_fd, const PackOptions& options,
                                  const std::function<Status(TarLayerWriter&)>& add_entries);

}  // namespace kiln::layer::internal
