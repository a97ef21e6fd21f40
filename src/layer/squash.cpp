// SquashLayers: several layer blobs -> one layer with the same effect
// (`kiln build --squash` / `--squash-all`).
//
// Two passes over the layers. The first, top layer first, reads only the
// headers and decides which entries survive: an entry is dropped when a
// higher layer has the same path (the higher one wins, directories
// included), replaced it or a parent by a non-directory, deleted it with a
// whiteout, or made a parent opaque. A whiteout (or opaque marker) survives
// unless the squashed layers start at the bottom of the image (nothing
// below to delete) or a higher layer already decided the path; a directory
// over a whiteout of the same path gets an opaque marker, since the layers
// below it no longer show through. The second pass writes the survivors
// bottom layer first, each layer's entries in their own order, so applying
// the result in order gives what applying the layers did.
#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <set>
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

using ReadPtr = internal::TarReader;

constexpr char kWhiteoutPrefix[] = ".wh.";
constexpr char kOpaqueMarker[] = ".wh..wh..opq";  // as pack.cpp writes it

std::string Clean(const char* name) { return internal::CleanTarPath(name); }
std::string Parent(const std::string& p) { return internal::TarParent(p); }

std::string Base(const std::string& p) {
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

Expected<ReadPtr> OpenLayer(int fd, size_t index) {
  if (::lseek(fd, 0, SEEK_SET) != 0)
    return Error::FromErrno("squash: seek layer " + std::to_string(index));
  return internal::OpenTarReader(fd, "squash: layer " + std::to_string(index));
}

// What survives of one layer: entry numbers, plus paths of directories that
// get an opaque marker (written before the layer's own entries).
struct Keep {
  std::set<size_t> entries;
  std::vector<std::string> opaque_markers;
};

class Decider {
 public:
  explicit Decider(bool drop_whiteouts) : drop_whiteouts_(drop_whiteouts) {}

  // One layer, top layer first.
  Status Layer(archive* a, size_t index, Keep* keep) {
    std::set<std::string> hidden, opaque;  // take effect for the layers below this one
    std::set<std::string> dirs_here;
    std::vector<std::string> whiteouts_here;
    archive_entry* e = nullptr;
    size_t n = 0;
    int r;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
      KILN_TRY(CheckCancelled());
      std::string p = Clean(archive_entry_pathname(e));
      size_t i = n++;
      if (p.empty())
        continue;
      std::string base = Base(p);
      if (base == kOpaqueMarker) {
        std::string dir = Parent(p);
        if (!Covered(dir) && !opaque_.count(dir) && !drop_whiteouts_)
          keep->entries.insert(i);
        opaque.insert(dir);
        continue;
      }
      if (base.rfind(kWhiteoutPrefix, 0) == 0) {
        std::string target = Parent(p);
        target = (target.empty() ? "" : target + "/") + base.substr(sizeof kWhiteoutPrefix - 1);
        hidden.insert(target);
        if (Covered(target))
          continue;
        if (emitted_.count(target)) {
          // A higher layer made it again: as a directory, the layers under
          // this whiteout no longer show through it.
          if (emitted_dirs_.count(target) && !opaque_.count(target) && !drop_whiteouts_)
            whiteouts_here.push_back(target);
          continue;
        }
        if (!drop_whiteouts_)
          keep->entries.insert(i);
        continue;
      }
      if (Covered(p) || emitted_.count(p))
        continue;
      keep->entries.insert(i);
      emitted_.insert(p);
      if (archive_entry_filetype(e) == AE_IFDIR) {
        emitted_dirs_.insert(p);
        dirs_here.insert(p);
      } else {
        hidden.insert(p);  // a non-directory hides what lower layers have under it
      }
    }
    if (r != ARCHIVE_EOF)
      return Error(Errc::kCorrupt, "squash: layer " + std::to_string(index) + ": " +
                                       (archive_error_string(a) ? archive_error_string(a) : "unreadable"));
    for (const auto& d : whiteouts_here)
      if (!dirs_here.count(d) && opaque_marked_.insert(d).second)
        keep->opaque_markers.push_back(d);
    hidden_.insert(hidden.begin(), hidden.end());
    opaque_.insert(opaque.begin(), opaque.end());
    return Ok();
  }

 private:
  // Decided by a higher layer: the path or a parent deleted or replaced by a
  // non-directory, or a parent made opaque.
  bool Covered(const std::string& p) const {
    if (hidden_.count(p))
      return true;
    for (std::string d = p; !d.empty();) {
      d = Parent(d);
      if (opaque_.count(d) || (!d.empty() && hidden_.count(d)))
        return true;
    }
    return false;
  }

  bool drop_whiteouts_;
  std::set<std::string> hidden_, opaque_, emitted_, emitted_dirs_, opaque_marked_;
};

}  // namespace

Expected<LayerInfo> SquashLayers(const std::vector<int>& layer_fds, bool from_bottom, int out_fd,
                                 const PackOptions& options) {
  internal::Utf8LocaleScope utf8;
  std::vector<Keep> keep(layer_fds.size());
  Decider decider(from_bottom);
  for (size_t i = layer_fds.size(); i-- > 0;) {
    KILN_ASSIGN_OR_RETURN(ReadPtr a, OpenLayer(layer_fds[i], i));
    KILN_TRY(decider.Layer(a.get(), i, &keep[i]));
  }
  return internal::WriteTarLayer(out_fd, options, [&](internal::TarLayerWriter& w) -> Status {
    for (size_t i = 0; i < layer_fds.size(); ++i) {
      for (const auto& d : keep[i].opaque_markers)
        KILN_TRY(w.OpaqueMarker(d));
      KILN_ASSIGN_OR_RETURN(ReadPtr a, OpenLayer(layer_fds[i], i));
      archive_entry* e = nullptr;
      size_t n = 0;
      int r;
      while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK) {
        KILN_TRY(CheckCancelled());
        if (keep[i].entries.count(n++))
          KILN_TRY(w.CopyEntry(a.get(), e));
      }
      if (r != ARCHIVE_EOF)
        return Error(Errc::kCorrupt, "squash: layer " + std::to_string(i) + ": " +
                                         (archive_error_string(a.get()) ? archive_error_string(a.get()) : "unreadable"));
    }
    return Ok();
  });
}

}  // namespace kiln::layer
