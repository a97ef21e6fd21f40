// The attestations of a build (build_job.h AttestOptions): the SBOM and
// provenance of each platform image, made with the attest module and
// attached to the image index as BuildKit does (docs/supply-chain.md).
#pragma once

#include <optional>
#include <string>

#include "engine/build.h"
#include "engine/build_job.h"
#include "engine/progress.h"
#include "kiln/error.h"
#include "kiln/graph.h"
#include "kiln/store.h"

namespace kiln::engine {

/// kInvalidInput when the attestation flags cannot be honoured for this
/// build (--format docker, --sbom-output with several platforms).
Status CheckAttestOptions(const BuildJob& job, size_t platforms);

/// Makes the attestations of the platform image `manifest` (built from
/// `graph`), writes --sbom-output, and returns the attestation manifest's
/// index entry, or nullopt when nothing is to be attached. `started` is
/// the build's start (RFC 3339).
Expected<std::optional<Descriptor>> AttestImage(const BuildJob& job, const BuildGraph& graph,
                                                const BuildOptions& opts, Store& store, const Descriptor& manifest,
                                                const std::string& started, Progress& progress);

/// The single-platform image `manifest` with its attestation manifest
/// `attestation` in a new index, named by `tags` (the manifest's own
/// unnamed entry removed). Returns the index's descriptor.
Expected<Descriptor> IndexWithAttestation(Store& store, const Descriptor& manifest, const Descriptor& attestation,
                                          const std::vector<std::string>& tags);

}  // namespace kiln::engine
