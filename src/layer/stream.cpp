#include "layer/stream.h"

#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <archive.h>
#include <archive_entry.h>
#ifdef KILN_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

#include "kiln/fs.h"

namespace kiln::layer::internal {

namespace {

int DefaultThreads(int threads) {
  if (threads > 0)
    return std::min(threads, 64);
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return static_cast<int>(std::clamp(n, 1L, 8L));
}

// ---- sinks ---------------------------------------------------------------

class PassSink : public ByteSink {
 public:
  explicit PassSink(ByteSink* out) : out_(out) {}
  Status Write(const void* data, size_t len) override { return out_->Write(data, len); }
  Status Finish() override { return out_->Finish(); }

 private:
  ByteSink* out_;
};

// pigz-style parallel gzip: the input is cut into fixed blocks, each block is
// deflated independently (primed with the previous 32 KiB as dictionary, so
// the ratio is close to serial deflate) and ends byte-aligned with a sync
// flush; the blocks are concatenated in order into one gzip member. Block
// boundaries depend only on the input, so the output is deterministic.
class ParallelGzipSink : public ByteSink {
 public:
  static constexpr size_t kBlock = 256 * 1024;
  static constexpr size_t kDict = 32 * 1024;

  ParallelGzipSink(int level, int threads, ByteSink* out)
      : level_(level), out_(out), max_inflight_(static_cast<size_t>(threads) * 2 + 1) {
    crc_ = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < threads; ++i)
      workers_.emplace_back([this] { WorkerLoop(); });
  }

  ~ParallelGzipSink() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : workers_)
      t.join();
  }

  Status Write(const void* data, size_t len) override {
    if (!header_written_) {
      // Fixed header: no name, mtime 0, OS "unknown" (255): deterministic.
      static const unsigned char kHeader[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
      KILN_TRY(out_->Write(kHeader, sizeof kHeader));
      header_written_ = true;
    }
    const char* p = static_cast<const char*>(data);
    crc_ = crc32_z(crc_, reinterpret_cast<const Bytef*>(p), len);
    total_ += len;
    while (len > 0) {
      size_t take = std::min(len, kBlock - cur_.size());
      cur_.append(p, take);
      p += take;
      len -= take;
      if (cur_.size() == kBlock)
        KILN_TRY(Submit(false));
    }
    return Ok();
  }

  Status Finish() override {
    if (!header_written_)
      KILN_TRY(Write("", 0));
    KILN_TRY(Submit(true));
    while (!inflight_.empty())
      KILN_TRY(DrainOne());
    unsigned char trailer[8];
    for (int i = 0; i < 4; ++i) {
      trailer[i] = static_cast<unsigned char>(crc_ >> (8 * i));
      trailer[4 + i] = static_cast<unsigned char>(total_ >> (8 * i));
    }
    KILN_TRY(out_->Write(trailer, sizeof trailer));
    return out_->Finish();
  }

 private:
  struct Job {
    std::string in;
    std::string dict;
    std::string out;
    bool last = false;
    bool done = false;
    bool failed = false;
  };

  Status Submit(bool last) {
    auto job = std::make_shared<Job>();
    job->last = last;
    job->dict = std::move(tail_);
    job->in = std::move(cur_);
    size_t keep = std::min(kDict, job->in.size());
    tail_.assign(job->in.data() + job->in.size() - keep, keep);
    if (tail_.size() < kDict && !job->dict.empty()) {
      // A short block (only possible for the last one): nothing follows.
    }
    cur_ = std::string();
    cur_.reserve(kBlock);
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(job);
    }
    inflight_.push_back(job);
    work_cv_.notify_one();
    while (inflight_.size() > max_inflight_)
      KILN_TRY(DrainOne());
    return Ok();
  }

  Status DrainOne() {
    std::shared_ptr<Job> job = inflight_.front();
    inflight_.pop_front();
    {
      std::unique_lock<std::mutex> lock(mu_);
      done_cv_.wait(lock, [&] { return job->done; });
    }
    if (job->failed)
      return Error(Errc::kIo, "gzip: deflate failed");
    return out_->Write(job->out.data(), job->out.size());
  }

  void WorkerLoop() {
    z_stream zs{};
    bool ok = deflateInit2(&zs, level_, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK;
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty())
          break;
        job = queue_.front();
        queue_.pop_front();
      }
      bool failed = !ok || !Compress(&zs, job.get());
      {
        std::lock_guard<std::mutex> lock(mu_);
        job->failed = failed;
        job->done = true;
      }
      done_cv_.notify_all();
    }
    if (ok)
      deflateEnd(&zs);
  }

  // Sub-chunks whose byte entropy is near 8 bits (already compressed data:
  // archives, images, packed binaries) are stored instead of searched for
  // matches: deflate would gain < 3% on them at ~10x the cost. The choice
  // depends only on the bytes, so the output stays deterministic.
  static constexpr size_t kSub = 8 * 1024;
  static bool HighEntropy(const unsigned char* p, size_t n) {
    if (n < 2048)
      return false;
    uint32_t count[256] = {};
    for (size_t i = 0; i < n; ++i)
      ++count[p[i]];
    double h = 0;
    for (uint32_t c : count) {
      if (c == 0)
        continue;
      double q = double(c) / double(n);
      h -= q * std::log2(q);
    }
    return h > 7.8;
  }

  static bool Grow(z_stream* zs, std::string* out) {
    size_t used = out->size() - zs->avail_out;
    out->resize(out->size() * 2 + 4096);
    zs->next_out = reinterpret_cast<Bytef*>(out->data() + used);
    zs->avail_out = static_cast<uInt>(out->size() - used);
    return true;
  }

  bool Compress(z_stream* zs, Job* job) const {
    if (deflateReset(zs) != Z_OK || deflateParams(zs, level_, Z_DEFAULT_STRATEGY) != Z_OK)
      return false;
    int cur_level = level_;
    if (!job->dict.empty() &&
        deflateSetDictionary(zs, reinterpret_cast<const Bytef*>(job->dict.data()),
                             static_cast<uInt>(job->dict.size())) != Z_OK)
      return false;
    std::string& out = job->out;
    out.resize(deflateBound(zs, job->in.size()) + 4096);
    zs->next_out = reinterpret_cast<Bytef*>(out.data());
    zs->avail_out = static_cast<uInt>(out.size());
    auto* in = reinterpret_cast<unsigned char*>(job->in.data());
    for (size_t pos = 0; pos < job->in.size();) {
      size_t n = std::min(kSub, job->in.size() - pos);
      int want = HighEntropy(in + pos, n) ? 0 : level_;
      if (want != cur_level) {
        if (zs->avail_out < 1024)
          Grow(zs, &out);
        if (deflateParams(zs, want, Z_DEFAULT_STRATEGY) != Z_OK)
          return false;
        cur_level = want;
      }
      zs->next_in = in + pos;
      zs->avail_in = static_cast<uInt>(n);
      while (zs->avail_in > 0) {
        if (zs->avail_out == 0)
          Grow(zs, &out);
        int rc = deflate(zs, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_BUF_ERROR)
          return false;
      }
      pos += n;
    }
    const int flush = job->last ? Z_FINISH : Z_SYNC_FLUSH;
    for (;;) {
      if (zs->avail_out < 64)
        Grow(zs, &out);
      int rc = deflate(zs, flush);
      if (job->last && rc == Z_STREAM_END)
        break;
      if (!job->last && rc == Z_OK && zs->avail_out > 0)
        break;
      if (rc != Z_OK && rc != Z_BUF_ERROR)
        return false;
    }
    out.resize(out.size() - zs->avail_out);
    job->in = std::string();
    job->dict = std::string();
    return true;
  }

  int level_;
  ByteSink* out_;
  size_t max_inflight_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<std::shared_ptr<Job>> queue_;     // to compress (guarded by mu_)
  std::deque<std::shared_ptr<Job>> inflight_;  // in output order (producer only)
  bool stop_ = false;
  bool header_written_ = false;
  std::string cur_, tail_;
  uLong crc_;
  uint64_t total_ = 0;
};

class ZstdSink : public ByteSink {
 public:
  static constexpr int kZstdJobSize = 2 << 20;
  static Expected<std::unique_ptr<ByteSink>> Make(int level, int threads, ByteSink* out) {
    auto sink = std::unique_ptr<ZstdSink>(new ZstdSink(out));
    if (!sink->cctx_)
      return Error(Errc::kIo, "zstd: out of memory");
    // nbWorkers >= 1 gives the same bytes whatever the count (zstd.h), so
    // digests do not depend on the machine.
    if (ZSTD_isError(ZSTD_CCtx_setParameter(sink->cctx_, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(sink->cctx_, ZSTD_c_nbWorkers, std::max(threads, 1))) ||
        // Fixed job size: bounds memory (the default, 4x the window, costs
        // ~80 MB with 2 workers) and keeps the output independent of the
        // worker count.
        ZSTD_isError(ZSTD_CCtx_setParameter(sink->cctx_, ZSTD_c_jobSize, kZstdJobSize)))
      return Error(Errc::kUnsupported, "zstd: cannot set level/threads (libzstd built without threads?)");
    return std::unique_ptr<ByteSink>(std::move(sink));
  }
  ~ZstdSink() override { ZSTD_freeCCtx(cctx_); }

  Status Write(const void* data, size_t len) override {
    ZSTD_inBuffer in{data, len, 0};
    while (in.pos < in.size)
      KILN_TRY(Step(&in, ZSTD_e_continue, nullptr));
    return Ok();
  }

  Status Finish() override {
    ZSTD_inBuffer in{nullptr, 0, 0};
    size_t remaining = 1;
    while (remaining != 0)
      KILN_TRY(Step(&in, ZSTD_e_end, &remaining));
    return out_->Finish();
  }

 private:
  explicit ZstdSink(ByteSink* out) : out_(out), cctx_(ZSTD_createCCtx()), buf_(ZSTD_CStreamOutSize()) {}

  Status Step(ZSTD_inBuffer* in, ZSTD_EndDirective mode, size_t* remaining) {
    ZSTD_outBuffer o{buf_.data(), buf_.size(), 0};
    size_t rc = ZSTD_compressStream2(cctx_, &o, in, mode);
    if (ZSTD_isError(rc))
      return Error(Errc::kIo, std::string("zstd: ") + ZSTD_getErrorName(rc));
    if (remaining)
      *remaining = rc;
    if (o.pos > 0)
      return out_->Write(buf_.data(), o.pos);
    return Ok();
  }

  ByteSink* out_;
  ZSTD_CCtx* cctx_;
  std::vector<char> buf_;
};

// ---- sources -------------------------------------------------------------

constexpr size_t kReadChunk = 1 << 20;
constexpr size_t kOutChunk = 256 * 1024;

// The rules of a gzip layer both inflaters share: members back to back, NUL
// padding after the last one (umoci #360; it still counts in the blob
// digest), nothing else; the end of the input inside a member is an error.
// An inflater only inflates one member (Inflate) and starts the next (Reset).
class GzipMembersSource : public ByteSource {
 public:
  Expected<std::string_view> Read() final {
    for (;;) {
      // Output still inside the inflater (the last call filled the
      // buffer) comes out before more input is read.
      if (avail_.empty() && !more_out_) {
        KILN_ASSIGN_OR_RETURN(avail_, in_->Read());
        if (avail_.empty()) {
          if (state_ == kInMember)
            return Error(Errc::kCorrupt, "gzip: unexpected end of stream (truncated layer)");
          return std::string_view();
        }
      }
      if (state_ == kTrailingZeros) {
        if (avail_.find_first_not_of('\0') != std::string_view::npos)
          return Error(Errc::kCorrupt, "gzip: garbage after NUL padding at end of stream");
        avail_ = {};
        continue;
      }
      if (state_ == kBetweenMembers) {
        if (avail_[0] == '\0') {
          state_ = kTrailingZeros;
          continue;
        }
        KILN_TRY(Reset());
        state_ = kInMember;
      }
      KILN_ASSIGN_OR_RETURN(Step step, Inflate(&avail_, out_.data(), out_.size()));
      more_out_ = step.out == out_.size() && !step.member_end;
      if (step.member_end)
        state_ = kBetweenMembers;
      if (step.out > 0)
        return std::string_view(out_.data(), step.out);
    }
  }

 protected:
  struct Step {
    size_t out = 0;           // bytes written to the output buffer
    bool member_end = false;  // the member's trailer was read and checked
  };
  explicit GzipMembersSource(ByteSource* in) : in_(in), out_(kOutChunk) {}
  // Starts the next member.
  virtual Status Reset() = 0;
  // Inflates from *avail (advanced past what was consumed) into out.
  virtual Expected<Step> Inflate(std::string_view* avail, char* out, size_t cap) = 0;

 private:
  enum State { kInMember, kBetweenMembers, kTrailingZeros };
  ByteSource* in_;
  State state_ = kInMember;
  bool more_out_ = false;
  std::string_view avail_;
  std::vector<char> out_;
};

class GzipSource : public GzipMembersSource {
 public:
  explicit GzipSource(ByteSource* in) : GzipMembersSource(in) { ok_ = inflateInit2(&zs_, 15 + 16) == Z_OK; }
  ~GzipSource() override {
    if (ok_)
      inflateEnd(&zs_);
  }

 protected:
  Status Reset() override {
    if (!ok_ || inflateReset(&zs_) != Z_OK)
      return Error(Errc::kIo, "gzip: reset failed");
    return Ok();
  }
  Expected<Step> Inflate(std::string_view* avail, char* out, size_t cap) override {
    if (!ok_)
      return Error(Errc::kIo, "gzip: out of memory");
    zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(avail->data()));
    zs_.avail_in = static_cast<uInt>(avail->size());
    zs_.next_out = reinterpret_cast<Bytef*>(out);
    zs_.avail_out = static_cast<uInt>(cap);
    int rc = inflate(&zs_, Z_NO_FLUSH);
    *avail = avail->substr(avail->size() - zs_.avail_in);
    if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END)
      return Error(Errc::kCorrupt, std::string("gzip: ") + (zs_.msg ? zs_.msg : "corrupt stream"));
    return Step{cap - zs_.avail_out, rc == Z_STREAM_END};
  }

 private:
  z_stream zs_{};
  bool ok_ = false;
};

#ifdef KILN_HAVE_ISAL
// The same reader on ISA-L's igzip inflate (Debian libisal-dev): it takes
// 0.45x zlib's CPU time on a tar of /usr/lib and 0.6x on bench/unpack.sh's
// half-random layer (docs/performance.md), and inflating is the one step of
// a pull that cannot be spread over cores. It streams (unlike libdeflate,
// which wants the whole member in memory) and checks each member's CRC-32
// and size as zlib does.
class IsalGzipSource : public GzipMembersSource {
 public:
  explicit IsalGzipSource(ByteSource* in) : GzipMembersSource(in), state_(std::make_unique<inflate_state>()) {
    isal_inflate_init(state_.get());
    state_->crc_flag = ISAL_GZIP;
  }

 protected:
  Status Reset() override {
    isal_inflate_reset(state_.get());  // keeps crc_flag
    return Ok();
  }
  Expected<Step> Inflate(std::string_view* avail, char* out, size_t cap) override {
    inflate_state* st = state_.get();
    const size_t in_before = avail->size();
    st->next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(avail->data()));
    st->avail_in = static_cast<uint32_t>(avail->size());
    st->next_out = reinterpret_cast<uint8_t*>(out);
    st->avail_out = static_cast<uint32_t>(cap);
    int rc = isal_inflate(st);
    *avail = avail->substr(avail->size() - st->avail_in);
    if (rc < 0)
      return Error(Errc::kCorrupt, std::string("gzip: ") + IsalError(rc));
    Step step{cap - st->avail_out, st->block_state == ISAL_BLOCK_FINISH};  // FINISH: trailer checked
    if (step.out == 0 && in_before > 0 && avail->size() == in_before && !step.member_end)
      return Error(Errc::kCorrupt, "gzip: the inflater made no progress");  // never loop forever
    return step;
  }

 private:
  static const char* IsalError(int rc) {
    switch (rc) {
      case ISAL_INVALID_BLOCK: return "invalid deflate block";
      case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
      case ISAL_INVALID_LOOKBACK: return "invalid lookback distance";
      case ISAL_INVALID_WRAPPER: return "incorrect header check";
      case ISAL_UNSUPPORTED_METHOD: return "unknown compression method";
      case ISAL_INCORRECT_CHECKSUM: return "incorrect data check (CRC-32 or size)";
      default: return "corrupt stream";
    }
  }

  std::unique_ptr<inflate_state> state_;  // ~100 KiB: not on the stack
};
#endif

class ZstdSource : public ByteSource {
 public:
  explicit ZstdSource(ByteSource* in) : in_(in), dctx_(ZSTD_createDCtx()), out_(ZSTD_DStreamOutSize()) {
    // Bound the window (and so memory) to 128 MiB: a frame asking for more
    // is refused instead of allocating (H18).
    if (dctx_)
      ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, 27);
  }
  ~ZstdSource() override { ZSTD_freeDCtx(dctx_); }

  Expected<std::string_view> Read() override {
    if (!dctx_)
      return Error(Errc::kIo, "zstd: out of memory");
    for (;;) {
      if (in_buf_.pos == in_buf_.size) {
        KILN_ASSIGN_OR_RETURN(std::string_view chunk, in_->Read());
        if (chunk.empty()) {
          if (last_rc_ != 0) {
            // Maybe output is still buffered inside the context.
            ZSTD_outBuffer o{out_.data(), out_.size(), 0};
            size_t rc = ZSTD_decompressStream(dctx_, &o, &in_buf_);
            if (!ZSTD_isError(rc) && o.pos > 0) {
              last_rc_ = rc;
              return std::string_view(out_.data(), o.pos);
            }
            return Error(Errc::kCorrupt, "zstd: unexpected end of stream (truncated layer)");
          }
          return std::string_view();
        }
        in_buf_ = ZSTD_inBuffer{chunk.data(), chunk.size(), 0};
      }
      ZSTD_outBuffer o{out_.data(), out_.size(), 0};
      size_t rc = ZSTD_decompressStream(dctx_, &o, &in_buf_);
      if (ZSTD_isError(rc))
        return Error(Errc::kCorrupt, std::string("zstd: ") + ZSTD_getErrorName(rc));
      last_rc_ = rc;
      if (o.pos > 0)
        return std::string_view(out_.data(), o.pos);
    }
  }

 private:
  ByteSource* in_;
  ZSTD_DCtx* dctx_;
  ZSTD_inBuffer in_buf_{nullptr, 0, 0};
  size_t last_rc_ = 0;
  std::vector<char> out_;
};

// bzip2 and xz through libarchive's "raw" format, which only decompresses.
class ArchiveRawSource : public ByteSource {
 public:
  explicit ArchiveRawSource(ByteSource* in) : in_(in), a_(archive_read_new()), out_(kOutChunk) {}
  ~ArchiveRawSource() override { archive_read_free(a_); }

  Status Open(Compression c) {
    if (!a_)
      return Error(Errc::kIo, "libarchive: out of memory");
    if (c == Compression::kBzip2)
      archive_read_support_filter_bzip2(a_);
    else
      archive_read_support_filter_xz(a_);
    archive_read_support_format_raw(a_);
    if (archive_read_open(a_, this, nullptr, &ArchiveRawSource::ReadCb, nullptr) != ARCHIVE_OK)
      return Fail();
    archive_entry* entry = nullptr;
    int rc = archive_read_next_header(a_, &entry);
    if (rc == ARCHIVE_EOF) {
      eof_ = true;
      return Ok();
    }
    if (rc != ARCHIVE_OK)
      return Fail();
    return Ok();
  }

  Expected<std::string_view> Read() override {
    if (eof_)
      return std::string_view();
    la_ssize_t n = archive_read_data(a_, out_.data(), out_.size());
    if (n < 0)
      return Fail();
    if (n == 0)
      eof_ = true;
    return std::string_view(out_.data(), static_cast<size_t>(n));
  }

 private:
  Error Fail() {
    if (error_)
      return *error_;
    const char* msg = archive_error_string(a_);
    return Error(Errc::kCorrupt, std::string("decompress: ") + (msg ? msg : "corrupt stream"));
  }

  static la_ssize_t ReadCb(archive* /*a*/, void* self_v, const void** buf) {
    auto* self = static_cast<ArchiveRawSource*>(self_v);
    auto chunk = self->in_->Read();
    if (!chunk) {
      self->error_ = std::move(chunk).error();
      return -1;
    }
    *buf = chunk->data();
    return static_cast<la_ssize_t>(chunk->size());
  }

  ByteSource* in_;
  archive* a_;
  std::vector<char> out_;
  bool eof_ = false;
  std::optional<Error> error_;
};

}  // namespace

Utf8LocaleScope::Utf8LocaleScope() {
  if (locale_t utf8 = ::newlocale(LC_ALL_MASK, "C.UTF-8", nullptr))
    utf8_ = decltype(utf8_)(utf8, Restore{::uselocale(utf8)});
}

Status HashingFdSink::Write(const void* data, size_t len) {
  hash_.Update(data, len);
  bytes_ += static_cast<int64_t>(len);
  return WriteAll(fd_, data, len);
}

Expected<std::unique_ptr<ByteSink>> MakeCompressor(Compression c, int level, int threads, ByteSink* out) {
  threads = DefaultThreads(threads);
  switch (c) {
    case Compression::kNone:
      return std::unique_ptr<ByteSink>(new PassSink(out));
    case Compression::kGzip:
      if (level == 0)
        level = 1;
      if (level < 1 || level > 9)
        return Error(Errc::kInvalidInput, "gzip level must be 1..9, not " + std::to_string(level));
      return std::unique_ptr<ByteSink>(new ParallelGzipSink(level, threads, out));
    case Compression::kZstd:
      if (level == 0)
        level = 3;
      if (level < 1 || level > 19)
        return Error(Errc::kInvalidInput, "zstd level must be 1..19, not " + std::to_string(level));
      return ZstdSink::Make(level, threads, out);
    case Compression::kBzip2:
    case Compression::kXz:
      break;
  }
  return Error(Errc::kUnsupported, std::string("writing ") + CompressionName(c) + " layers is not supported");
}

HashingFdSource::HashingFdSource(int fd, bool hash) : fd_(fd), hashing_(hash) { buf_.resize(kReadChunk); }

Expected<std::string_view> HashingFdSource::Peek(size_t n) {
  n = std::min(n, buf_.size());
  while (pending_ < n) {
    ssize_t r = ReadRetry(fd_, buf_.data() + pending_, buf_.size() - pending_);
    if (r < 0)
      return Error::FromErrno("read layer");
    if (r == 0)
      break;
    if (hashing_)
      hash_.Update(buf_.data() + pending_, static_cast<size_t>(r));
    bytes_ += r;
    pending_ += static_cast<size_t>(r);
  }
  return std::string_view(buf_.data(), pending_);
}

Expected<std::string_view> HashingFdSource::Read() {
  if (pending_ > 0) {
    size_t n = std::exchange(pending_, 0);
    return std::string_view(buf_.data(), n);
  }
  for (;;) {
    ssize_t r = ::read(fd_, buf_.data(), buf_.size());
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return Error::FromErrno("read layer");
    }
    if (hashing_)
      hash_.Update(buf_.data(), static_cast<size_t>(r));
    bytes_ += r;
    return std::string_view(buf_.data(), static_cast<size_t>(r));
  }
}

struct PrefetchSource::Impl {
  static constexpr size_t kSlots = 4;
  static constexpr size_t kSlotBytes = 1 << 20;

  ByteSource* in;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> full;   // produced, in order
  std::vector<std::string> free;  // buffers to fill
  std::string current;            // handed to the consumer
  bool eof = false;
  bool stop = false;
  std::optional<Error> error;
  std::thread thread;

  void Run() {
    for (;;) {
      std::string buf;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || !free.empty(); });
        if (stop)
          return;
        buf = std::move(free.back());
        free.pop_back();
      }
      buf.clear();
      bool end = false;
      std::optional<Error> err;
      // Fill up to one slot from as many chunks as fit.
      while (buf.size() < kSlotBytes / 2) {
        auto chunk = in->Read();
        if (!chunk) {
          err = std::move(chunk).error();
          break;
        }
        if (chunk->empty()) {
          end = true;
          break;
        }
        buf.append(chunk->data(), chunk->size());
      }
      std::lock_guard<std::mutex> lock(mu);
      if (!buf.empty())
        full.push_back(std::move(buf));
      if (err)
        error = std::move(err);
      if (end)
        eof = true;
      cv.notify_all();
      if (err || end)
        return;
    }
  }
};

PrefetchSource::PrefetchSource(ByteSource* in) : impl_(std::make_unique<Impl>()) {
  impl_->in = in;
  for (size_t i = 0; i < Impl::kSlots; ++i) {
    impl_->free.emplace_back();
    impl_->free.back().reserve(Impl::kSlotBytes);
  }
  impl_->thread = std::thread([this] { impl_->Run(); });
}

PrefetchSource::~PrefetchSource() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable())
    impl_->thread.join();
}

Expected<std::string_view> PrefetchSource::Read() {
  std::unique_lock<std::mutex> lock(impl_->mu);
  if (!impl_->current.empty() || impl_->current.capacity() > 0) {
    impl_->free.push_back(std::move(impl_->current));
    impl_->current = std::string();
    impl_->cv.notify_all();
  }
  impl_->cv.wait(lock, [&] { return !impl_->full.empty() || impl_->eof || impl_->error; });
  if (!impl_->full.empty()) {
    impl_->current = std::move(impl_->full.front());
    impl_->full.pop_front();
    return std::string_view(impl_->current);
  }
  lock.unlock();
  if (impl_->thread.joinable())
    impl_->thread.join();  // finished: `in` is the caller's again
  if (impl_->error)
    return *impl_->error;
  return std::string_view();
}

#ifdef KILN_HAVE_ISAL
namespace {
// KILN_GZIP_INFLATE=zlib: zlib's inflate instead of ISA-L's (tests run both;
// bench/unpack.sh compares them).
bool ZlibInflateWanted() {
  const char* v = std::getenv("KILN_GZIP_INFLATE");
  return v && std::string_view(v) == "zlib";
}
}  // namespace
#endif

Expected<std::unique_ptr<ByteSource>> MakeDecompressor(Compression c, ByteSource* in) {
  switch (c) {
    case Compression::kNone:
      return Error(Errc::kInvalidInput, "no decompressor needed");
    case Compression::kGzip:
#ifdef KILN_HAVE_ISAL
      if (!ZlibInflateWanted())
        return std::unique_ptr<ByteSource>(new IsalGzipSource(in));
#endif
      return std::unique_ptr<ByteSource>(new GzipSource(in));
    case Compression::kZstd:
      return std::unique_ptr<ByteSource>(new ZstdSource(in));
    case Compression::kBzip2:
    case Compression::kXz: {
      auto src = std::make_unique<ArchiveRawSource>(in);
      KILN_TRY(src->Open(c));
      return std::unique_ptr<ByteSource>(std::move(src));
    }
  }
  KILN_UNREACHABLE("bad compression");
}

}  // namespace kiln::layer::internal

namespace kiln::layer {

const char* CompressionName(Compression c) {
  switch (c) {
    case Compression::kNone: return "none";
    case Compression::kGzip: return "gzip";
    case Compression::kZstd: return "zstd";
    case Compression::kBzip2: return "bzip2";
    case Compression::kXz: return "xz";
  }
  return "?";
}

std::string LayerMediaType(Compression c) {
  std::string base = "application/vnd.oci.image.layer.v1.tar";
  switch (c) {
    case Compression::kNone: return base;
    case Compression::kGzip: return base + "+gzip";
    case Compression::kZstd: return base + "+zstd";
    case Compression::kBzip2: return base + "+bzip2";  // not an OCI type; for logs
    case Compression::kXz: return base + "+xz";
  }
  return base;
}

Compression SniffCompression(std::string_view head) {
  auto starts = [&](std::string_view magic) { return head.substr(0, magic.size()) == magic; };
  if (starts("\x1f\x8b"))
    return Compression::kGzip;
  if (starts("\x28\xb5\x2f\xfd") || (head.size() >= 4 && (static_cast<unsigned char>(head[0]) & 0xf0) == 0x50 &&
                                     head.substr(1, 3) == "\x2a\x4d\x18"))
    return Compression::kZstd;  // zstd frame, or a skippable frame first
  if (starts("BZh"))
    return Compression::kBzip2;
  if (starts("\xfd" "7zXZ\x00"))
    return Compression::kXz;
  return Compression::kNone;
}

Expected<Digest> CopyAndHash(int in, int out, int64_t max_bytes, int64_t* copied) {
  Sha256 hash;
  std::vector<char> buf(1 << 20);
  int64_t total = 0;
  for (;;) {
    ssize_t n = ReadRetry(in, buf.data(), buf.size());
    if (n < 0)
      return Error::FromErrno("read");
    if (n == 0)
      break;
    total += n;
    if (total > max_bytes)
      return Error(Errc::kInvalidInput, "input is larger than " + std::to_string(max_bytes) + " bytes");
    hash.Update(buf.data(), static_cast<size_t>(n));
    if (out >= 0)
      KILN_TRY(WriteAll(out, buf.data(), static_cast<size_t>(n)));
  }
  if (copied)
    *copied = total;
  return hash.Finish();
}

}  // namespace kiln::layer
