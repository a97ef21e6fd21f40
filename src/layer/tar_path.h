// Reading layer tars in the layer module: a libarchive reader for a
// (gzip, zstd or plain) tar stream, and entry names as the module sees them
// ("./a/b/" is "a/b"). Internal to src/layer.
#pragma once

#include <memory>
#include <string>

#include <archive.h>

#include "kiln/error.h"

namespace kiln::layer::internal {

/// A tar entry name without leading "./" and "/" and trailing "/".
inline std::string CleanTarPath(const char* name) {
  std::string p = name ? name : "";
  while (p.rfind("./", 0) == 0)
    p.erase(0, 2);
  while (!p.empty() && p.front() == '/')
    p.erase(0, 1);
  while (!p.empty() && p.back() == '/')
    p.pop_back();
  return p;
}

/// "a/b" -> "a"; "a" -> "".
inline std::string TarParent(const std::string& p) {
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? "" : p.substr(0, slash);
}

using TarReader = std::unique_ptr<archive, decltype(&archive_read_free)>;

/// A tar reader over `fd` from its current offset; kCorrupt "WHAT: why" when
/// the stream is no tar.
inline Expected<TarReader> OpenTarReader(int fd, const std::string& what) {
  TarReader a(archive_read_new(), &archive_read_free);
  if (!a)
    return Error(Errc::kIo, "libarchive: out of memory");
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_fd(a.get(), fd, 1 << 20) != ARCHIVE_OK) {
    const char* e = archive_error_string(a.get());
    return Error(Errc::kCorrupt, what + ": " + (e ? e : "unreadable"));
  }
  return a;
}

}  // namespace kiln::layer::internal
