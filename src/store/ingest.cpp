#include "store/ingest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <vector>

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>
#include <zstd.h>

#include "kiln/fs.h"
#include "kiln/layer.h"

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
        compressed_ += static_cast<int64_t>(data.size());
        KILN_TRY(Inflate(data));
        return CheckExpansion();
      case Mode::kZstdIn:
        KILN_TRY(blob_.Write(data));
        compressed_ += static_cast<int64_t>(data.size());
        KILN_TRY(Unzstd(data));
        return CheckExpansion();
      case Mode::kUnknown:
        break;
    }
    return Error(Errc::kIo, "layer ingester not started");
  }

  // The same bounds as layer::UnpackLayer: the absolute size and the
  // expansion ratio (docs/layers.md).
  Status CheckExpansion() const {
    if (uncompressed_ > limits_.max_uncompressed_bytes)
      return Error(Errc::kCorrupt, "layer: decompressed size limit exceeded (" +
                                       std::to_string(limits_.max_uncompressed_bytes) + " bytes)");
    const int64_t ratio = limits_.max_expansion_ratio;
    if (ratio > 0 && uncompressed_ > limits_.expansion_allowance && uncompressed_ / ratio > compressed_)
      return Error(Errc::kCorrupt, "layer: decompressed size limit exceeded: " + std::to_string(uncompressed_) +
                                       " bytes from " + std::to_string(compressed_) +
                                       " compressed bytes is more than " + std::to_string(ratio) +
                                       ":1 (KILN_MAX_EXPANSION_RATIO)");
    return Ok();
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
  int64_t compressed_ = 0;
  layer::UnpackLimits limits_;
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

Status CheckStoredBlob(const Store& store, const Descriptor& d, std::string_view what) {
  std::string name = std::string(what) + " " + d.digest.str();
  if (d.size < 0)
    return Error(Errc::kCorrupt, name + ": negative size " + std::to_string(d.size) + " in its descriptor");
  struct stat st;
  std::string path = store.BlobPath(d.digest);
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return Error(Errc::kNotFound, name + " is not in the store");
    return Error::FromErrno("stat " + path);
  }
  if (st.st_size != d.size)
    return Error(Errc::kCorrupt, name + ": size mismatch: the descriptor says " + std::to_string(d.size) +
                                     " bytes, the blob has " + std::to_string(st.st_size));
  return Ok();
}

Expected<Descriptor> CopyBlobIn(const Store& store, const std::string& path, const Descriptor& expected) {
  if (store.HasBlob(expected.digest)) {
    KILN_TRY(CheckStoredBlob(store, expected, "blob"));
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

namespace kiln {

namespace {

constexpr int kMaxImageNesting = 8;

class ClosureVerifier {
 public:
  ClosureVerifier(Store& store, const std::vector<VerifiedLayer>& verified, bool unpack)
      : store_(store), unpack_(unpack) {
    for (const auto& v : verified)
      ok_.insert({v.digest, v.diff_id});
  }

  Status Visit(const Descriptor& d, int depth, std::vector<Digest>& path) {
    if (depth > kMaxImageNesting)
      return Error(Errc::kCorrupt, "image nesting deeper than " + std::to_string(kMaxImageNesting) + " levels at " +
                                       d.digest.str());
    if (std::find(path.begin(), path.end(), d.digest) != path.end())
      return Error(Errc::kCorrupt, "index cycle: " + d.digest.str() + " contains itself");
    const bool index = IsIndexMediaType(d.media_type);
    if (!index && !IsManifestMediaType(d.media_type))
      return Error(Errc::kUnsupported, d.digest.str() + ": media type \"" + d.media_type +
                                           "\" is neither an image manifest nor an index");
    KILN_TRY(store_internal::CheckStoredBlob(store_, d, index ? "index" : "manifest"));
    if (!done_.insert(d.digest).second)
      return Ok();
    path.push_back(d.digest);
    if (index) {
      KILN_ASSIGN_OR_RETURN(Index idx, store_.ReadIndex(d.digest));
      size_t present = 0;
      for (const auto& child : idx.manifests) {
        if (!store_.HasBlob(child.digest))
          continue;  // a platform that was not pulled
        ++present;
        KILN_TRY(Visit(child, depth + 1, path));
      }
      if (present == 0 && !idx.manifests.empty())
        return Error(Errc::kNotFound, "index " + d.digest.str() + ": none of its " +
                                          std::to_string(idx.manifests.size()) + " manifests is in the store");
    } else {
      KILN_ASSIGN_OR_RETURN(Manifest m, store_.ReadManifest(d.digest));
      auto s = VisitManifest(m);
      if (!s)
        return std::move(s).error().WithContext("manifest " + d.digest.str());
    }
    path.pop_back();
    return Ok();
  }

 private:
  Status VisitManifest(const Manifest& m) {
    KILN_TRY(store_internal::CheckStoredBlob(store_, m.config, "config"));
    for (const auto& l : m.layers)
      KILN_TRY(store_internal::CheckStoredBlob(store_, l, "layer"));
    if (!IsConfigMediaType(m.config.media_type))
      return Ok();  // an artifact: kiln does not run it, sizes are all there is
    auto cfg = store_.ReadConfig(m.config.digest);
    if (!cfg)
      return std::move(cfg).error().WithContext("config " + m.config.digest.str());
    if (cfg->diff_ids.size() != m.layers.size())
      return Error(Errc::kCorrupt, "config " + m.config.digest.str() + " lists " +
                                       std::to_string(cfg->diff_ids.size()) + " diff_ids for " +
                                       std::to_string(m.layers.size()) + " layers");
    for (size_t i = 0; i < m.layers.size(); ++i) {
      // A layer outside the image-layer media types (BuildKit's in-toto
      // attestations, whose config lists their digests) is never unpacked:
      // nothing to rehash. Anything named a layer is checked (fails closed).
      if (!IsLayerMediaType(m.layers[i].media_type))
        continue;
      KILN_TRY(CheckDiffId(m.layers[i], cfg->diff_ids[i]));
    }
    return Ok();
  }

  Status CheckDiffId(const Descriptor& layer, const Digest& diff_id) {
    std::pair<Digest, Digest> key{layer.digest, diff_id};
    if (ok_.count(key))
      return Ok();
    LoadNamedPairs();
    if (named_.count(key)) {
      ok_.insert(key);
      return Ok();
    }
    if (unpack_ && !PathExists(store_.LayerDir(diff_id))) {
      // Computed while unpacking: the layer directory a run needs anyway.
      auto dir = store_.UnpackedLayer(layer, diff_id);
      if (!dir)
        return std::move(dir).error().WithContext("layer " + layer.digest.str());
    } else {
      KILN_ASSIGN_OR_RETURN(UniqueFd fd, store_.OpenBlob(layer.digest));
      auto stats = layer::HashLayer(fd.get());
      if (!stats)
        return std::move(stats).error().WithContext("layer " + layer.digest.str());
      if (stats->digest != layer.digest)
        return Error(Errc::kCorrupt, "layer " + layer.digest.str() + ": the stored blob hashes to " +
                                         stats->digest.str());
      if (stats->diff_id != diff_id)
        return Error(Errc::kCorrupt, "layer " + layer.digest.str() + ": diff_id mismatch: the config says " +
                                         diff_id.str() + ", the layer's content is " + stats->diff_id.str());
    }
    ok_.insert(key);
    return Ok();
  }

  // (layer, diff_id) pairs of the images the store names already: each was
  // verified when it was named.
  void LoadNamedPairs() {
    if (named_loaded_)
      return;
    named_loaded_ = true;
    auto images = store_.ListImages();
    if (!images)
      return;
    auto add_manifest = [&](const Digest& digest) {
      auto m = store_.ReadManifest(digest);
      if (!m || !IsConfigMediaType(m->config.media_type))
        return;
      auto cfg = store_.ReadConfig(m->config.digest);
      if (!cfg || cfg->diff_ids.size() != m->layers.size())
        return;
      for (size_t i = 0; i < m->layers.size(); ++i)
        named_.insert({m->layers[i].digest, cfg->diff_ids[i]});
    };
    for (const auto& e : *images) {
      if (!store_.HasBlob(e.descriptor.digest))
        continue;
      if (IsManifestMediaType(e.descriptor.media_type)) {
        add_manifest(e.descriptor.digest);
      } else if (IsIndexMediaType(e.descriptor.media_type)) {
        auto idx = store_.ReadIndex(e.descriptor.digest);
        if (!idx)
          continue;
        for (const auto& c : idx->manifests)
          if (IsManifestMediaType(c.media_type) && store_.HasBlob(c.digest))
            add_manifest(c.digest);
      }
    }
  }

  Store& store_;
  bool unpack_;
  std::set<std::pair<Digest, Digest>> ok_;
  std::set<std::pair<Digest, Digest>> named_;
  bool named_loaded_ = false;
  std::set<Digest> done_;
};

}  // namespace

Status VerifyImageClosure(Store& store, const Descriptor& top, const std::vector<VerifiedLayer>& verified,
                          bool unpack) {
  ClosureVerifier v(store, verified, unpack);
  std::vector<Digest> path;
  return v.Visit(top, 0, path);
}

}  // namespace kiln
