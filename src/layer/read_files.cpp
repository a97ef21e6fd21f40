// ReadMergedFiles: chosen files of an image read straight from its layer
// blobs, with the layers' whiteouts applied, without unpacking anything
// (`kiln build --sbom` reads the package databases this way).
//
// One pass per layer, bottom first. `below` holds what the layers under the
// current one left; each entry of the current layer first removes what it
// hides there (a whiteout its target and everything under it, an opaque
// marker everything under its directory, any non-directory the same path
// and everything under it, a directory a file of the same path), then a
// chosen regular file is read into `here`. `here` goes over `below` when
// the layer ends, so an opaque marker written after its directory's own
// entries still hides only the lower layers.
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <archive.h>
#include <archive_entry.h>

#include "kiln/cancel.h"
#include "kiln/layer.h"
#include "layer/stream.h"
#include "layer/tar_path.h"

namespace kiln::layer {

namespace {

using Files = std::map<std::string, std::string>;

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

/// Removes everything strictly under directory `dir` ("" = the root).
void EraseUnder(Files& files, const std::string& dir) {
  if (dir.empty()) {
    files.clear();
    return;
  }
  std::string prefix = dir + "/";
  auto it = files.lower_bound(prefix);
  while (it != files.end() && it->first.compare(0, prefix.size(), prefix) == 0)
    it = files.erase(it);
}

std::string ArchiveError(archive* a, size_t index) {
  const char* e = archive_error_string(a);
  return "layer " + std::to_string(index) + ": " + (e ? e : "unreadable");
}

Status ReadOneLayer(int fd, size_t index, const FileSelector& select, Files& below) {
  KILN_ASSIGN_OR_RETURN(internal::TarReader a, internal::OpenTarReader(fd, "layer " + std::to_string(index)));
  Files here;
  archive_entry* e = nullptr;
  int r;
  while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK) {
    KILN_TRY(CheckCancelled());
    std::string p = internal::CleanTarPath(archive_entry_pathname(e));
    if (p.empty())
      continue;
    std::string parent = internal::TarParent(p);
    std::string base = p.substr(parent.empty() ? 0 : parent.size() + 1);
    if (base == kOpaqueMarker) {
      EraseUnder(below, parent);
      continue;
    }
    if (base.rfind(kWhiteoutPrefix, 0) == 0) {
      std::string target = (parent.empty() ? "" : parent + "/") + base.substr(kWhiteoutPrefix.size());
      below.erase(target);
      EraseUnder(below, target);
      continue;
    }
    below.erase(p);
    here.erase(p);
    auto type = archive_entry_filetype(e);
    if (type == AE_IFDIR)
      continue;
    EraseUnder(below, p);
    const char* hardlink = archive_entry_hardlink(e);
    if (hardlink != nullptr) {
      // The same file as an earlier entry of this layer: what was read for
      // it (the selector is asked about this name too).
      std::string target = internal::CleanTarPath(hardlink);
      auto it = here.find(target);
      if (it != here.end() && select(p, archive_entry_mode(e), archive_entry_size(e)))
        here[p] = it->second;
      continue;
    }
    if (type != AE_IFREG)
      continue;
    std::unique_ptr<FileReader> reader = select(p, archive_entry_mode(e), archive_entry_size(e));
    if (!reader)
      continue;
    const void* buf = nullptr;
    size_t len = 0;
    la_int64_t off = 0;
    int rr;
    while ((rr = archive_read_data_block(a.get(), &buf, &len, &off)) == ARCHIVE_OK) {
      if (!reader->Add(std::string_view(static_cast<const char*>(buf), len)))
        break;
    }
    if (rr != ARCHIVE_OK && rr != ARCHIVE_EOF)
      return Error(Errc::kCorrupt, ArchiveError(a.get(), index) + " (" + p + ")");
    here[p] = reader->Finish();
  }
  if (r != ARCHIVE_EOF)
    return Error(Errc::kCorrupt, ArchiveError(a.get(), index));
  for (auto& [path, data] : here)
    below[path] = std::move(data);
  return Ok();
}

}  // namespace

Expected<std::map<std::string, std::string>> ReadMergedFiles(const std::vector<int>& layer_fds,
                                                             const FileSelector& select) {
  internal::Utf8LocaleScope utf8;
  Files files;
  for (size_t i = 0; i < layer_fds.size(); ++i)
    KILN_TRY(ReadOneLayer(layer_fds[i], i, select, files));
  return files;
}

}  // namespace kiln::layer
