// Exporting an image's flattened root filesystem (`kiln build --output
// type=local|tar`).
#pragma once

#include <string>

#include "kiln/error.h"
#include "kiln/store.h"

namespace kiln::engine {

/// Writes the flattened rootfs of `image` as an uncompressed tar to `dest`
/// ("-" = stdout).
Status ExportRootfsTar(Store& store, const StoredImage& image, const std::string& dest);

/// Copies the flattened rootfs of `image` into the directory `dest`
/// (created if missing), keeping modes, owners (as seen in kiln's user
/// namespace), times and links.
Status ExportRootfsDir(Store& store, const StoredImage& image, const std::string& dest);

}  // namespace kiln::engine
