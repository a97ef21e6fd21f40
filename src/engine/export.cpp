#include "engine/export.h"

#include <fcntl.h>
#include <unistd.h>

#include "engine/copy.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/layer.h"
#include "kiln/rootfs.h"

namespace kiln::engine {

using namespace rootfs;  // Mount, OpenInRoot, MakeDirsInRoot, ReadFileFromLayers, ResolveUser

namespace {

/// Mounts the image's layers read-only under a temp dir; `fn(path)` sees the
/// flattened tree.
Status WithFlatRootfs(Store& store, const StoredImage& image, const std::function<Status(const std::string&)>& fn) {
  std::vector<std::string> lowers;
  const auto& layers = image.manifest.layers;
  if (layers.size() != image.config.diff_ids.size())
    return Error(Errc::kCorrupt, "image has " + std::to_string(layers.size()) + " layers but " +
                                     std::to_string(image.config.diff_ids.size()) + " diff_ids");
  for (size_t i = layers.size(); i-- > 0;) {
    KILN_ASSIGN_OR_RETURN(std::string dir, store.UnpackedLayer(layers[i], image.config.diff_ids[i]));
    lowers.push_back(dir);
  }
  KILN_ASSIGN_OR_RETURN(std::string scratch, store.MakeTempDir("export-"));
  RemoveAllOnExit cleanup(scratch);
  std::string target = JoinPath(scratch, "root");
  KILN_TRY(MakeDirs(target));
  if (lowers.empty()) {
    lowers.push_back(JoinPath(scratch, "empty"));
    KILN_TRY(MakeDirs(lowers.back()));
  }
  KILN_ASSIGN_OR_RETURN(Mount m, Mount::ReadOnly(lowers, target));
  Status s = fn(target);
  if (auto u = m.Unmount(); !u && s)
    return u;
  return s;
}

}  // namespace

Status ExportRootfsTar(Store& store, const StoredImage& image, const std::string& dest) {
  return WithFlatRootfs(store, image, [&](const std::string& root) -> Status {
    UniqueFd out;
    int fd = STDOUT_FILENO;
    if (dest != "-") {
      KILN_ASSIGN_OR_RETURN(out, OpenFile(dest, O_WRONLY | O_CREAT | O_TRUNC, 0644));
      fd = out.get();
    }
    layer::PackOptions po;
    po.compression = layer::Compression::kNone;
    auto info = layer::PackDirectory(root, fd, po);
    if (!info)
      return std::move(info).error().WithContext("export " + dest);
    return Ok();
  });
}

Status ExportRootfsDir(Store& store, const StoredImage& image, const std::string& dest) {
  KILN_TRY(MakeDirs(dest));
  return WithFlatRootfs(store, image, [&](const std::string& root) -> Status {
    CopyRequest req;
    req.src_root = root;
    req.from_context = false;
    req.sources = {"/"};
    req.dest = "/";
    req.what = "export";
    KILN_ASSIGN_OR_RETURN(UniqueFd d, OpenFile(dest, O_RDONLY | O_DIRECTORY));
    return CopyIntoRoot(req, d.get(), dest);
  });
}

}  // namespace kiln::engine
