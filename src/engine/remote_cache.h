// The remote build cache (`kiln build --cache-to REF` / `--cache-from REF`):
// the registry is the distributed store a fleet of CI machines shares.
//
// Format (docs/cache.md): an ordinary single-platform OCI image whose layers
// are the layer blobs the exported cache records name and whose config holds
// the records themselves in the label "io.kiln.cache.v1" (JSON
// {"v":1,"records":{"<key hex>": <record>}}). Being an image, it goes through
// the same verified push/pull paths as any other, and any registry stores it.
#pragma once

#include <string>
#include <vector>

#include "kiln/error.h"
#include "kiln/store.h"
#include "kiln/transport.h"

namespace kiln::engine {

inline constexpr const char kCacheLabel[] = "io.kiln.cache.v1";

/// Pushes the cache records of `keys` ("sha256:<hex>", as Progress::StepKeys
/// gives them; keys without a record are skipped) with their layer blobs to
/// the registry reference `ref` (docker:// optional).
Status ExportCache(Store& store, const std::vector<std::string>& keys, const std::string& ref,
                   TransferOptions options);

/// Pulls the cache image `ref` and adds its records to the store (records
/// already present are kept). Returns how many records were imported; a ref
/// the registry does not have is kNotFound.
Expected<size_t> ImportCache(Store& store, const std::string& ref, TransferOptions options);

}  // namespace kiln::engine
