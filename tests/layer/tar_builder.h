// Test helpers: build tar streams entry by entry (libarchive, pax), craft raw
// headers, and snapshot a directory tree to prove nothing outside a root
// changed.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <archive.h>
#include <archive_entry.h>

#include "kiln/digest.h"
#include "kiln/fs.h"

namespace kiln::test {

/// Metadata of one TarBuilder entry.
struct TarMeta {
  mode_t perm = 0644;
  int64_t uid = 0;
  int64_t gid = 0;
  int64_t mtime = 1700000000;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

/// Builds an uncompressed tar in memory with libarchive's pax writer.
class TarBuilder {
 public:
  TarBuilder() : a_(archive_write_new()) {
    archive_write_set_format_pax_restricted(a_);
    archive_write_set_options(a_, "hdrcharset=BINARY");
    archive_write_set_bytes_per_block(a_, 0);
    archive_write_open2(a_, this, nullptr, &TarBuilder::Cb, nullptr, nullptr);
  }
  ~TarBuilder() {
    if (a_)
      archive_write_free(a_);
  }

  using Meta = TarMeta;

  TarBuilder& File(const std::string& name, const std::string& data, Meta m = {}) {
    return Add(name, AE_IFREG, m, data, nullptr, nullptr);
  }
  TarBuilder& Dir(const std::string& name, Meta m = {.perm = 0755}) {
    return Add(name, AE_IFDIR, m, "", nullptr, nullptr);
  }
  TarBuilder& Symlink(const std::string& name, const std::string& target, Meta m = {.perm = 0777}) {
    return Add(name, AE_IFLNK, m, "", target.c_str(), nullptr);
  }
  TarBuilder& Hardlink(const std::string& name, const std::string& target, Meta m = {}) {
    return Add(name, AE_IFREG, m, "", nullptr, target.c_str());
  }
  TarBuilder& Device(const std::string& name, mode_t type, unsigned maj, unsigned min, Meta m = {.perm = 0600}) {
    dev_major_ = maj;
    dev_minor_ = min;
    Add(name, type, m, "", nullptr, nullptr);
    dev_major_ = dev_minor_ = 0;
    return *this;
  }
  TarBuilder& Whiteout(const std::string& name) { return File(name, "", {.perm = 0}); }

  /// Finishes the archive (two zero blocks) and returns the bytes.
  std::string Finish() {
    archive_write_close(a_);
    archive_write_free(a_);
    a_ = nullptr;
    return out_;
  }

 private:
  static la_ssize_t Cb(archive*, void* self, const void* data, size_t len) {
    static_cast<TarBuilder*>(self)->out_.append(static_cast<const char*>(data), len);
    return static_cast<la_ssize_t>(len);
  }

  TarBuilder& Add(const std::string& name, mode_t type, const Meta& m, const std::string& data, const char* symlink,
                  const char* hardlink) {
    archive_entry* e = archive_entry_new();
    archive_entry_copy_pathname(e, name.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, m.perm);
    archive_entry_set_uid(e, m.uid);
    archive_entry_set_gid(e, m.gid);
    archive_entry_set_mtime(e, m.mtime, 0);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    if (symlink)
      archive_entry_copy_symlink(e, symlink);
    if (hardlink) {
      archive_entry_copy_hardlink(e, hardlink);
      archive_entry_set_size(e, 0);
    }
    if (type == AE_IFCHR || type == AE_IFBLK) {
      archive_entry_set_rdevmajor(e, dev_major_);
      archive_entry_set_rdevminor(e, dev_minor_);
    }
    for (const auto& [k, v] : m.xattrs)
      archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    archive_write_header(a_, e);
    if (!data.empty())
      archive_write_data(a_, data.data(), data.size());
    archive_write_finish_entry(a_);
    archive_entry_free(e);
    return *this;
  }

  archive* a_;
  std::string out_;
  unsigned dev_major_ = 0, dev_minor_ = 0;
};

/// One raw 512-byte ustar header; `size_field`/`checksum` may be garbage on
/// purpose. typeflag '0', '5', 'x' (pax), ...
inline std::string RawHeader(const std::string& name, char typeflag, const std::string& size_field,
                             bool break_checksum = false) {
  std::string h(512, '\0');
  std::memcpy(&h[0], name.data(), std::min<size_t>(name.size(), 100));
  std::memcpy(&h[100], "0000644", 7);
  std::memcpy(&h[108], "0000000", 7);
  std::memcpy(&h[116], "0000000", 7);
  std::memcpy(&h[124], size_field.data(), std::min<size_t>(size_field.size(), 12));
  std::memcpy(&h[136], "14507760400", 11);
  h[156] = typeflag;
  std::memcpy(&h[257], "ustar", 6);
  std::memcpy(&h[263], "00", 2);
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h)
    sum += c;
  if (break_checksum)
    sum += 1;
  char buf[8];
  std::snprintf(buf, sizeof buf, "%06o", sum);
  std::memcpy(&h[148], buf, 7);
  h[154] = '\0';
  h[155] = ' ';
  return h;
}

inline std::string Octal(size_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%011zo", v);
  return buf;
}

inline std::string Pad512(std::string s) {
  s.resize((s.size() + 511) / 512 * 512, '\0');
  return s;
}

/// A pax 'x' record "<len> key=value\n".
inline std::string PaxRecord(const std::string& key, const std::string& value) {
  std::string body = " " + key + "=" + value + "\n";
  size_t len = body.size() + 1;
  while (std::to_string(len).size() + body.size() != len)
    ++len;
  return std::to_string(len) + body;
}

/// path -> "type mode uid gid size mtime ino content-hash/linktarget xattrs"
/// for every entry under `dir` (recursive, not following symlinks).
inline void SnapshotInto(const std::string& dir, const std::string& rel, std::map<std::string, std::string>* out,
                         const std::string& skip) {
  DIR* d = ::opendir(dir.c_str());
  if (!d)
    return;
  std::vector<std::string> names;
  while (dirent* de = ::readdir(d)) {
    std::string n = de->d_name;
    if (n != "." && n != "..")
      names.push_back(n);
  }
  ::closedir(d);
  for (const auto& n : names) {
    std::string path = dir + "/" + n;
    std::string r = rel.empty() ? n : rel + "/" + n;
    if (path == skip)
      continue;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0)
      continue;
    std::string desc = std::to_string(st.st_mode) + " " + std::to_string(st.st_uid) + ":" +
                       std::to_string(st.st_gid) + " " + std::to_string(st.st_size) + " " +
                       std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + " " +
                       std::to_string(st.st_ino) + " " + std::to_string(st.st_nlink);
    if (S_ISREG(st.st_mode)) {
      auto data = ReadFile(path);
      desc += " " + (data ? Digest::Of(*data).str() : std::string("?"));
    } else if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t k = ::readlink(path.c_str(), buf, sizeof buf);
      desc += " -> " + std::string(buf, k > 0 ? static_cast<size_t>(k) : 0);
    }
    char names_buf[8192];
    ssize_t xl = ::llistxattr(path.c_str(), names_buf, sizeof names_buf);
    if (xl > 0)
      desc += " xattrs:" + std::string(names_buf, static_cast<size_t>(xl));
    (*out)[r] = desc;
    if (S_ISDIR(st.st_mode))
      SnapshotInto(path, r, out, skip);
  }
}

/// Snapshot of `dir` without the subtree `skip` (an absolute path).
inline std::map<std::string, std::string> Snapshot(const std::string& dir, const std::string& skip = "") {
  std::map<std::string, std::string> out;
  struct stat st;
  if (::lstat(dir.c_str(), &st) == 0)
    out["."] = std::to_string(st.st_mode) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
               std::to_string(st.st_mtim.tv_nsec);
  SnapshotInto(dir, "", &out, skip);
  return out;
}

}  // namespace kiln::test
