// BlobWriter (include/kiln/store.h): a blob written to a temporary file,
// hashed as it goes, verified against the expected digest and size, and
// published into blobs/ by rename (docs/store.md "Write protocol").
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/store.h"
#include "store/internal.h"

namespace kiln {

// ============================================================ BlobWriter

BlobWriter::BlobWriter(BlobWriter&& o) noexcept
    : store_(o.store_),
      fd_(std::move(o.fd_)),
      tmp_path_(std::exchange(o.tmp_path_, std::string())),
      expected_(std::move(o.expected_)),
      expected_size_(o.expected_size_),
      written_(o.written_),
      fd_exposed_(o.fd_exposed_),
      failed_(o.failed_),
      hasher_(std::move(o.hasher_)) {}

BlobWriter& BlobWriter::operator=(BlobWriter&& o) noexcept {
  if (this != &o) {
    Abort();
    store_ = o.store_;
    fd_ = std::move(o.fd_);
    tmp_path_ = std::exchange(o.tmp_path_, std::string());
    expected_ = std::move(o.expected_);
    expected_size_ = o.expected_size_;
    written_ = o.written_;
    fd_exposed_ = o.fd_exposed_;
    failed_ = o.failed_;
    hasher_ = std::move(o.hasher_);
  }
  return *this;
}

BlobWriter::~BlobWriter() { Abort(); }

void BlobWriter::Abort() {
  fd_.reset();
  if (!tmp_path_.empty()) {
    ::unlink(tmp_path_.c_str());
    tmp_path_.clear();
  }
}

int BlobWriter::fd() {
  fd_exposed_ = true;
  return fd_.get();
}

Status BlobWriter::Write(const void* data, size_t len) {
  if (failed_ || tmp_path_.empty())
    return Error(Errc::kIo, "blob writer is closed");
  if (expected_size_ >= 0 && written_ + static_cast<int64_t>(len) > expected_size_) {
    failed_ = true;
    return Error(Errc::kCorrupt, "size mismatch: more than the expected " + std::to_string(expected_size_) +
                                     " bytes" + (expected_ ? " for " + expected_->str() : std::string()));
  }
  if (auto s = WriteAll(fd_.get(), data, len); !s) {
    failed_ = true;
    return std::move(s).error().WithContext("write " + tmp_path_);
  }
  hasher_.Update(data, len);
  written_ += static_cast<int64_t>(len);
  return Ok();
}

Expected<Descriptor> BlobWriter::Commit(std::string_view media_type) {
  if (failed_ || tmp_path_.empty())
    return Error(Errc::kIo, "blob writer is closed");
  failed_ = true;  // one attempt only
  CrashPoint("blob: written, before verify");
  Digest got;
  int64_t size = written_;
  if (fd_exposed_) {
    // The producer wrote through fd(): hash what is really in the file.
    Sha256 h;
    char buf[1 << 16];
    off_t off = 0;
    for (;;) {
      ssize_t n = ::pread(fd_.get(), buf, sizeof buf, off);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        return Error::FromErrno("read " + tmp_path_);
      }
      if (n == 0)
        break;
      h.Update(buf, static_cast<size_t>(n));
      off += n;
    }
    size = static_cast<int64_t>(off);
    got = h.Finish();
  } else {
    got = hasher_.Finish();
  }
  return Publish(got, size, media_type);
}

Expected<Descriptor> BlobWriter::CommitHashed(const Digest& digest, std::string_view media_type) {
  if (failed_ || tmp_path_.empty())
    return Error(Errc::kIo, "blob writer is closed");
  failed_ = true;  // one attempt only
  CrashPoint("blob: written, before verify");
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0)
    return Error::FromErrno("stat " + tmp_path_);
  return Publish(digest, static_cast<int64_t>(st.st_size), media_type);
}

// Checks digest and size against the expected ones, makes the temp file
// durable and renames it into place.
Expected<Descriptor> BlobWriter::Publish(const Digest& got, int64_t size, std::string_view media_type) {
  if (expected_size_ >= 0 && size != expected_size_)
    return Error(Errc::kCorrupt, "size mismatch" + (expected_ ? " for " + expected_->str() : std::string()) +
                                     ": expected " + std::to_string(expected_size_) + " bytes, got " +
                                     std::to_string(size));
  if (expected_ && *expected_ != got)
    return Error(Errc::kCorrupt, "digest mismatch: expected " + expected_->str() + ", got " + got.str());
  if (::fsync(fd_.get()) != 0)
    return Error::FromErrno("fsync " + tmp_path_);
  fd_.reset();
  CrashPoint("blob: synced, before rename");
  std::string dest = store_->BlobPath(got);
  if (PathExists(dest)) {
    // Content-addressed: an existing blob with this name is the same bytes
    // (Check() re-verifies). containerd treats this as success too.
    ::unlink(tmp_path_.c_str());
    tmp_path_.clear();
  } else {
    if (::rename(tmp_path_.c_str(), dest.c_str()) != 0)
      return Error::FromErrno("rename " + tmp_path_ + " to " + dest);
    tmp_path_.clear();
    CrashPoint("blob: renamed, before directory fsync");
    KILN_TRY(FsyncDir(DirName(dest)));
  }
  store_->NoteLeased(got);
  Descriptor d;
  d.media_type = std::string(media_type);
  d.digest = got;
  d.size = size;
  return d;
}

}  // namespace kiln
