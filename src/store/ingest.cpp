#include "store/ingest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <vector>

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>
#include <zstd.h>

#include "kiln/fs.h"

namespace kiln::store_internal {

namespace {

constexpr size_t kChunk = 1 << 17;

/// Sniffs, then delegates to one of three modes.
class Ingester : public LayerIngester {
 public:
  explicit Ingester(BlobWriter w) : blob_(std::move(w)) {}
  ~Ingester() override {
    if (mode_ == Mode::kGzipIn)
      inflateEnd(&z_);
    if (mode_ == Mode::kCompress)
      deflateEnd(&z_);
    if (zstd_)
      ZSTD_freeDCtx(zstd_);
  }

  Status Write(std::string_view data) override {
    if (mode_ == Mode::kUnknown) {
      head_.append(data);
      if (head_.size() < 4)
        return Ok();
      KILN_TRY(Start());
      std::string h = std::move(head_);
      head_.clear();
      return Feed(h);
    }
    return Feed(data);
  }

  Expected<IngestedLayer> Finish() override {
    if (mode_ == Mode::kUnknown) {
      KILN_TRY(Start());
      std::string h = std::move(head_);
      head_.clear();
      KILN_TRY(Feed(h));
    }
    std::string media_type;
    switch (mode_) {
      case Mode::kCompress: {
        KILN_TRY(Deflate(nullptr, 0, Z_FINISH));
        media_type = std::string(kMediaTypeOciLayerGzip);
        break;
      }
      case Mode::kGzipIn:
        if (!gzip_done_)
          return Error(Errc::kCorrupt, "layer: truncated gzip stream");
        media_type = std::string(kMediaTypeOciLayerGzip);
        break;
      case Mode::kZstdIn:
        if (zstd_pending_)
          return Error(Errc::kCorrupt, "layer: truncated zstd stream");
        media_type = std::string(kMediaTypeOciLayerZstd);
        break;
      case Mode::kUnknown:
        break;
    }
    IngestedLayer out;
    out.diff_id = diff_.Finish();
    out.uncompressed_size = uncompressed_;
    KILN_ASSIGN_OR_RETURN(out.blob, blob_.Commit(media_type));
    return out;
  }

 private:
  enum class Mode { kUnknown, kCompress, kGzipIn, kZstdIn };

  Status Start() {
    const unsigned char* h = reinterpret_cast<const unsigned char*>(head_.data());
    bool gzip = head_.size() >= 2 && h[0] == 0x1f && h[1] == 0x8b;
    bool zstd = head_.size() >= 4 && h[0] == 0x28 && h[1] == 0xb5 && h[2] == 0x2f && h[3] == 0xfd;
    bool bzip2 = head_.size() >= 3 && h[0] == 'B' && h[1] == 'Z' && h[2] == 'h';
    bool xz = head_.size() >= 4 && h[0] == 0xfd && h[1] == '7' && h[2] == 'z' && h[3] == 'X';
    if (bzip2 || xz)
      return Error(Errc::kUnsupported, std::string("layer: ") + (bzip2 ? "bzip2" : "xz") +
                                           " layers are not supported");
    if (gzip) {
      mode_ = Mode::kGzipIn;
      if (inflateInit2(&z_, 15 + 32) != Z_OK)
        return Error(Errc::kIo, "zlib: inflateInit failed");
      return Ok();
    }
    if (zstd) {
      mode_ = Mode::kZstdIn;
      zstd_ = ZSTD_createDCtx();
      if (!zstd_)
        return Error(Errc::kIo, "zstd: out of memory");
      return Ok();
    }
    mode_ = Mode::kCompress;
    if (deflateInit2(&z_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      return Error(Errc::kIo, "zlib: deflateInit failed");
    return Ok();
  }

  Status Feed(std::string_view data) {
    if (data.empty())
      return Ok();
    switch (mode_) {
      case Mode::kCompress:
        diff_.Update(data);
        uncompressed_ += static_cast<int64_t>(data.size());
        return Deflate(data.data(), data.size(), Z_NO_FLUSH);
      case Mode::kGzipIn:
        KILN_TRY(blob_.Write(data));
        return Inflate(data);
      case Mode::kZstdIn:
        KILN_TRY(blob_.Write(data));
        return Unzstd(data);
      case Mode::kUnknown:
        break;
    }
    return Error(Errc::kIo, "layer ingester not started");
  }

  Status Deflate(const char* data, size_t len, int flush) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
    z_.avail_in = static_cast<uInt>(len);
    do {
      z_.next_out = reinterpret_cast<Bytef*>(out_);
      z_.avail_out = sizeof out_;
      int rc = deflate(&z_, flush);
      if (rc == Z_STREAM_ERROR)
        return Error(Errc::kIo, "zlib: deflate failed");
      size_t have = sizeof out_ - z_.avail_out;
      if (have)
        KILN_TRY(blob_.Write(out_, have));
      if (flush == Z_FINISH && rc == Z_STREAM_END)
        break;
    } while (z_.avail_out == 0 || (flush == Z_FINISH));
    return Ok();
  }

  Status Inflate(std::string_view data) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z_.avail_in = static_cast<uInt>(data.size());
    while (z_.avail_in > 0) {
      if (gzip_done_) {
        // Concatenated gzip members (pigz, parallel compressors).
        inflateReset(&z_);
        gzip_done_ = false;
      }
      z_.next_out = reinterpret_cast<Bytef*>(out_);
      z_.avail_out = sizeof out_;
      int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
        return Error(Errc::kCorrupt, std::string("layer: invalid gzip stream: ") + (z_.msg ? z_.msg : "error"));
      size_t have = sizeof out_ - z_.avail_out;
      diff_.Update(out_, have);
      uncompressed_ += static_cast<int64_t>(have);
      if (rc == Z_STREAM_END)
        gzip_done_ = true;
      if (rc == Z_BUF_ERROR && have == 0)
        break;
    }
    return Ok();
  }

  Status Unzstd(std::string_view data) {
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    while (in.pos < in.size) {
      ZSTD_outBuffer out{out_, sizeof out_, 0};
      size_t rc = ZSTD_decompressStream(zstd_, &out, &in);
      if (ZSTD_isError(rc))
        return Error(Errc::kCorrupt, std::string("layer: invalid zstd stream: ") + ZSTD_getErrorName(rc));
      diff_.Update(out_, out.pos);
      uncompressed_ += static_cast<int64_t>(out.pos);
      zstd_pending_ = rc != 0;
    }
    return Ok();
  }

  BlobWriter blob_;
  Mode mode_ = Mode::kUnknown;
  std::string head_;
  z_stream z_{};
  ZSTD_DCtx* zstd_ = nullptr;
  bool gzip_done_ = false;
  bool zstd_pending_ = false;
  Sha256 diff_;
  int64_t uncompressed_ = 0;
  char out_[kChunk];
};

}  // namespace

Expected<std::unique_ptr<LayerIngester>> LayerIngester::Create(const Store& store) {
  KILN_ASSIGN_OR_RETURN(BlobWriter w, store.NewBlobWriter());
  return std::unique_ptr<LayerIngester>(std::make_unique<Ingester>(std::move(w)));
}

Status DecompressFd(int fd, const std::function<Status(std::string_view)>& sink, int64_t max_bytes) {
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), &archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_raw(a.get());
  if (archive_read_open_fd(a.get(), fd, kChunk) != ARCHIVE_OK)
    return Error(Errc::kCorrupt, std::string("read: ") + archive_error_string(a.get()));
  struct archive_entry* entry;
  int rc = archive_read_next_header(a.get(), &entry);
  if (rc == ARCHIVE_EOF)
    return Ok();
  if (rc != ARCHIVE_OK)
    return Error(Errc::kCorrupt, std::string("read: ") + archive_error_string(a.get()));
  std::vector<char> buf(kChunk);
  int64_t total = 0;
  for (;;) {
    la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
    if (n < 0)
      return Error(Errc::kCorrupt, std::string("decompress: ") + archive_error_string(a.get()));
    if (n == 0)
      break;
    total += n;
    if (total > max_bytes)
      return Error(Errc::kInvalidInput, "decompressed stream is larger than " + std::to_string(max_bytes) + " bytes");
    KILN_TRY(sink(std::string_view(buf.data(), static_cast<size_t>(n))));
  }
  return Ok();
}

Status CopyBlobOut(const Store& store, const Digest& digest, const std::string& path) {
  KILN_ASSIGN_OR_RETURN(UniqueFd in, store.OpenBlob(digest));
  struct stat src, dst;
  if (::fstat(in.get(), &src) != 0)
    return Error::FromErrno("stat blob " + digest.str());
  if (::stat(path.c_str(), &dst) == 0 && dst.st_size == src.st_size)
    return Ok();
  std::string tmp = path + ".kiln-tmp-" + std::to_string(::getpid());
  KILN_ASSIGN_OR_RETURN(UniqueFd out, OpenFile(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644));
  std::vector<char> buf(kChunk);
  for (;;) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      ::unlink(tmp.c_str());
      return Error::FromErrno("read blob " + digest.str());
    }
    if (n == 0)
      break;
    if (auto s = WriteAll(out.get(), buf.data(), static_cast<size_t>(n)); !s) {
      ::unlink(tmp.c_str());
      return std::move(s).error().WithContext(tmp);
    }
  }
  if (::fsync(out.get()) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Error::FromErrno("write " + path, err);
  }
  return Ok();
}

Expected<Descriptor> CopyBlobIn(const Store& store, const std::string& path, const Descriptor& expected) {
  if (store.HasBlob(expected.digest)) {
    Descriptor d = expected;
    return d;
  }
  auto fd = OpenFile(path, O_RDONLY);
  if (!fd)
    return std::move(fd).error();
  auto d = store.PutBlobFromFd(fd->get(), expected.media_type, expected.digest, expected.size);
  if (!d)
    return std::move(d).error().WithContext(path);
  return d;
}

namespace {

Status Collect(const Store& store, const Descriptor& d, int depth, std::set<std::string>& seen,
               std::vector<Descriptor>& out) {
  if (depth > 8)
    return Error(Errc::kCorrupt, "image nesting too deep at " + d.digest.str());
  if (seen.count(d.digest.str()))
    return Ok();
  if (IsIndexMediaType(d.media_type)) {
    KILN_ASSIGN_OR_RETURN(Index idx, store.ReadIndex(d.digest));
    for (const auto& m : idx.manifests) {
      if (!store.HasBlob(m.digest))
        continue;  // a platform we do not have
      KILN_TRY(Collect(store, m, depth + 1, seen, out));
    }
  } else if (IsManifestMediaType(d.media_type)) {
    KILN_ASSIGN_OR_RETURN(Manifest m, store.ReadManifest(d.digest));
    for (const auto& l : m.layers) {
      if (!store.HasBlob(l.digest))
        return Error(Errc::kNotFound, "layer " + l.digest.str() + " of " + d.digest.str() + " is not in the store");
      if (seen.insert(l.digest.str()).second)
        out.push_back(l);
    }
    if (!store.HasBlob(m.config.digest))
      return Error(Errc::kNotFound, "config " + m.config.digest.str() + " is not in the store");
    if (seen.insert(m.config.digest.str()).second)
      out.push_back(m.config);
  }
  if (seen.insert(d.digest.str()).second) {
    Descriptor plain = d;
    plain.annotations.erase(std::string(kAnnotationRefName));
    out.push_back(plain);
  }
  return Ok();
}

}  // namespace

Expected<std::vector<Descriptor>> ImageBlobs(const Store& store, const Descriptor& top) {
  std::vector<Descriptor> out;
  std::set<std::string> seen;
  KILN_TRY(Collect(store, top, 0, seen, out));
  return out;
}

}  // namespace kiln::store_internal
