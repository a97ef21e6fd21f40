// Build attestations (docs/supply-chain.md "SBOM and provenance"): the
// packages an image holds, read from its own package databases (dpkg, apk,
// Python, npm, Go build info) by kiln itself, offline; the SPDX 2.3 SBOM and
// the SLSA v1 provenance made of them; and BuildKit's way of attaching them
// to an image (an attestation manifest in the image index).
//
// The scanners and document builders are pure (text in, text out); only
// ScanImage(), AttachAttestations() and FindAttestation() use the store.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/error.h"
#include "kiln/layer.h"
#include "kiln/oci.h"
#include "kiln/store.h"

namespace kiln::attest {

// The in-toto and BuildKit names an attestation manifest uses are in kiln/oci.h.

// ------------------------------------------------------------ packages

/// One package found in an image.
struct Package {
  std::string type;      ///< purl type: "deb", "apk", "pypi", "npm", "golang"
  std::string name;
  std::string version;
  std::string arch;      ///< deb/apk architecture, "" when none
  std::string license;   ///< as the database says it, "" when none
  std::string supplier;  ///< maintainer/author, "" when none
  std::string source;    ///< the database file it came from ("/var/lib/dpkg/status")
  std::string purl;      ///< filled by Scan()
};

/// /etc/os-release of the image (ID and VERSION_ID), for the purls.
struct OsRelease {
  std::string id;
  std::string version_id;
};

/// What kind of package database a path of an image is, if any. `mode` is
/// st_mode: Go build info is looked for only in executable regular files.
enum class FileKind {
  kNone,
  kDpkgStatus,      ///< var/lib/dpkg/status
  kDpkgStatusD,     ///< var/lib/dpkg/status.d/NAME (distroless)
  kApkInstalled,    ///< lib/apk/db/installed
  kPythonMetadata,  ///< *.dist-info/METADATA, *.egg-info/PKG-INFO, a *.egg-info file
  kNpmPackage,      ///< node_modules/[@scope/]NAME/package.json
  kOsRelease,       ///< etc/os-release, usr/lib/os-release
  kExecutable,      ///< maybe a Go binary
};
FileKind Classify(std::string_view path, uint32_t mode);

/// The parsers. Each gives the packages of one file; malformed stanzas are
/// skipped (a note in `warnings` names the file and line).
std::vector<Package> ParseDpkgStatus(std::string_view text, const std::string& file,
                                     std::vector<std::string>* warnings = nullptr);
std::vector<Package> ParseApkInstalled(std::string_view text, const std::string& file,
                                       std::vector<std::string>* warnings = nullptr);
std::optional<Package> ParsePythonMetadata(std::string_view text, const std::string& file);
std::optional<Package> ParseNpmPackageJson(std::string_view text, const std::string& file);
/// `data` starts at Go's build info magic ("\xff Go buildinf:"); the main
/// module and its dependencies (Go >= 1.18 binaries; older ones: none).
std::vector<Package> ParseGoBuildInfo(std::string_view data, const std::string& file);
OsRelease ParseOsRelease(std::string_view text);

/// The FileSelector (kiln/layer.h) that reads what Classify() recognises:
/// databases whole (up to 256 MiB), executables only from Go's build info
/// magic on (a file that is not ELF is skipped after its first bytes).
layer::FileSelector PackageFileSelector();

/// All packages of an image.
struct ScanResult {
  std::vector<Package> packages;       ///< sorted by type, name, version
  std::vector<std::string> databases;  ///< the files that had any ("/var/lib/dpkg/status")
  OsRelease os;
  std::vector<std::string> warnings;
};
/// Parses what PackageFileSelector() read (path -> content), pure.
ScanResult Scan(const std::map<std::string, std::string>& files);
/// Reads the layers of `image` from the store (no unpacking) and Scan()s them.
Expected<ScanResult> ScanImage(const Store& store, const StoredImage& image);

// ------------------------------------------------------------ documents

/// What the documents say about the image they describe.
struct Subject {
  std::string name;          ///< the first tag, or "" (then the image ID names it)
  Digest manifest;           ///< the platform manifest's digest
  Platform platform;
  std::string created;       ///< RFC 3339: the image config's "created"
  std::string tool_version;  ///< kiln's version
};

/// The SPDX 2.3 JSON document of `scan` (an image package CONTAINS every
/// package found; its comment says when none was found). Deterministic: the
/// namespace and times come from `subject`.
std::string SpdxDocument(const ScanResult& scan, const Subject& subject);

/// The "pkg:docker/NAME@TAG?platform=..." name of a subject.
std::string SubjectPurl(const Subject& subject);

/// An in-toto v0.1 statement about `subject` with the predicate JSON.
std::string InTotoStatement(std::string_view predicate_type, const std::string& predicate_json,
                            const Subject& subject);

/// One base image the build used (FROM), as pinned.
struct Material {
  std::string uri;     ///< "pkg:docker/docker.io/library/busybox@latest?platform=linux%2Famd64"
  Digest digest;
};

/// What the provenance says about the build (SLSA v1, BuildKit's shape).
struct ProvenanceInput {
  bool max = false;                             ///< --provenance=max
  std::string containerfile_name;               ///< "Containerfile" (relative to the context when inside)
  std::string containerfile_text;
  std::map<std::string, std::string> build_args;
  std::string target;
  std::vector<std::string> platforms;           ///< as built
  std::string build_platform;
  Digest context_digest;                        ///< of the context's files (ignore file applied)
  std::vector<Material> materials;              ///< base images, in FROM order, unique
  std::map<std::string, std::string> build_contexts;  ///< --build-context (max)
  std::vector<std::string> secret_ids;          ///< --secret ids, never values (max)
  std::vector<std::string> ssh_ids;             ///< --ssh ids (max)
  std::string network;                          ///< --network (max)
  std::vector<std::pair<std::string, Digest>> steps;  ///< (instruction, layer digest) (max)
  std::string started_on, finished_on;          ///< RFC 3339
  std::string invocation_id;
  std::string tool_version;
};

/// The SLSA v1 provenance predicate (https://slsa.dev/provenance/v1).
/// Credentials in URLs (user:password@) are replaced by "xxxxx".
std::string ProvenancePredicate(const ProvenanceInput& input);

/// `text` with the password of any "scheme://user:password@" removed.
std::string RedactUrlCredentials(const std::string& text);

// ------------------------------------------------------------ flags

/// The value of `kiln build --sbom[=V]` (bare: "true"): true or false.
/// kInvalidInput naming the value otherwise (buildah's scanner presets
/// "syft", "trivy"... included: kiln needs no scanner).
Expected<bool> ParseSbomFlag(std::string_view value);
/// The value of `--provenance[=V]` (bare: "true"), BuildKit's spellings:
/// true|false|min|max|mode=min|mode=max[,version=v1]. "" (off), "min" or
/// "max"; kInvalidInput naming the value otherwise (version other than v1:
/// kiln writes SLSA v1 only).
Expected<std::string> ParseProvenanceFlag(std::string_view value);

// ------------------------------------------------------------ attaching

/// One attestation to attach: its predicate type and the in-toto statement.
struct Attestation {
  std::string predicate_type;
  std::string statement;
};

/// Stores an attestation manifest for the platform manifest `image` (one
/// in-toto layer per attestation, a config with platform unknown/unknown)
/// and returns its index entry: platform unknown/unknown, annotations
/// vnd.docker.reference.type=attestation-manifest and
/// vnd.docker.reference.digest=<image's digest>.
Expected<Descriptor> WriteAttestationManifest(const Store& store, const Descriptor& image,
                                              const std::vector<Attestation>& attestations);

/// The predicate (JSON) of the attestation of `predicate_type` attached to
/// `image`: its index (image.top) must hold an attestation manifest for the
/// chosen platform manifest. kNotFound saying which is missing.
Expected<std::string> FindAttestation(const Store& store, const StoredImage& image,
                                      std::string_view predicate_type);

}  // namespace kiln::attest
