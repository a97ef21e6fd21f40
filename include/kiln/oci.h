// The OCI / Docker image model: descriptors, platforms, image configs,
// manifests (OCI and Docker schema2) and indexes (OCI index and Docker
// manifest list), with their JSON form.
//
// Parsing never throws: bad JSON, duplicate keys, wrong types, ambiguous
// documents and bodies over kMaxDocumentBytes are kCorrupt errors. Every
// digest is validated (kiln::Digest) while parsing, so a parsed document is
// safe to use in a path or a URL. Output is canonical: compact JSON with keys
// in byte order and no insignificant whitespace, so equal values always give
// equal bytes and equal digests. See docs/store.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/digest.h"
#include "kiln/error.h"

namespace kiln {

// ---------------------------------------------------------------- media types

inline constexpr std::string_view kMediaTypeOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kMediaTypeOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kMediaTypeOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kMediaTypeOciLayer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kMediaTypeOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kMediaTypeOciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr std::string_view kMediaTypeOciEmpty = "application/vnd.oci.empty.v1+json";
inline constexpr std::string_view kMediaTypeDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kMediaTypeDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kMediaTypeDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kMediaTypeDockerLayer = "application/vnd.docker.image.rootfs.diff.tar";
inline constexpr std::string_view kMediaTypeDockerLayerGzip =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr std::string_view kMediaTypeDockerForeignLayer =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// Annotation holding an image's name in an OCI image layout's index.json.
inline constexpr std::string_view kAnnotationRefName = "org.opencontainers.image.ref.name";
inline constexpr std::string_view kAnnotationCreated = "org.opencontainers.image.created";
/// Attestations as BuildKit attaches them (docs/supply-chain.md): an in-toto
/// statement per layer of an attestation manifest in the image index.
inline constexpr std::string_view kPredicateSpdx = "https://spdx.dev/Document";
inline constexpr std::string_view kPredicateSlsa1 = "https://slsa.dev/provenance/v1";
inline constexpr std::string_view kMediaTypeInToto = "application/vnd.in-toto+json";
inline constexpr std::string_view kAnnotationPredicateType = "in-toto.io/predicate-type";
inline constexpr std::string_view kAnnotationRefType = "vnd.docker.reference.type";
inline constexpr std::string_view kAnnotationRefDigest = "vnd.docker.reference.digest";
inline constexpr std::string_view kRefTypeAttestation = "attestation-manifest";

/// Cap on a manifest, index or config body (docs/security.md I5).
inline constexpr size_t kMaxDocumentBytes = size_t(4) << 20;

/// OCI or Docker image manifest.
bool IsManifestMediaType(std::string_view media_type);
/// OCI image index or Docker manifest list.
bool IsIndexMediaType(std::string_view media_type);
/// Any tar layer media type (OCI, Docker, compressed or not, foreign).
bool IsLayerMediaType(std::string_view media_type);
/// OCI or Docker image config.
bool IsConfigMediaType(std::string_view media_type);

// ---------------------------------------------------------------- platform

/// os/architecture/variant, as containerd's platforms package models it.
struct Platform {
  std::string os;            ///< "linux"
  std::string architecture;  ///< GOARCH spelling: "amd64", "arm64", "arm", "386", ...
  std::string variant;       ///< "v7", "v8", ... or ""
  std::string os_version;    ///< "os.version" (Windows), usually ""
  std::vector<std::string> os_features;

  /// Parses "os[/arch[/variant]]" or "arch[/variant]" (os then defaults to
  /// linux) and normalises it: x86_64/x86-64 -> amd64, aarch64 -> arm64,
  /// armhf/armel -> arm v7/v6, i386/i686 -> 386; arm64's "v8" variant is
  /// dropped and arm without a variant gets "v7" (containerd's rules).
  /// kInvalidInput naming the text when malformed.
  static Expected<Platform> Parse(std::string_view text);
  /// The platform this kiln binary runs on (normalised).
  static Platform Host();

  /// containerd's Normalize(): canonical spelling of os/arch/variant.
  Platform Normalized() const;
  /// True when an image for `image` can run on this (wanted) platform:
  /// os and arch equal after normalisation; variants equal, or the wanted
  /// variant is empty, or (arm) the image's variant is older than ours
  /// (v8 runs v7, v6, v5; arm64 with no variant matches v8).
  bool Matches(const Platform& image) const;
  /// "linux/amd64" or "linux/arm/v7".
  std::string str() const;

  friend bool operator==(const Platform& a, const Platform& b) = default;
};

// ---------------------------------------------------------------- descriptor

/// OCI content descriptor. Valid ones have a media type, a valid digest and
/// size >= 0.
struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = 0;
  std::vector<std::string> urls;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;  ///< only in an index
  std::string artifact_type;

  friend bool operator==(const Descriptor& a, const Descriptor& b) = default;
};

// ---------------------------------------------------------------- config

/// Docker's HEALTHCHECK ("Healthcheck" in the config). Durations in ns.
struct HealthConfig {
  std::vector<std::string> test;  ///< {"NONE"}, {"CMD", ...} or {"CMD-SHELL", "..."}
  int64_t interval = 0;
  int64_t timeout = 0;
  int64_t start_period = 0;
  int64_t start_interval = 0;
  int retries = 0;

  friend bool operator==(const HealthConfig& a, const HealthConfig& b) = default;
};

/// The "config" object of an image config (what a container runs with).
/// Optional vectors distinguish "unset/null" (inherit) from "set to []".
struct ContainerConfig {
  std::string user;
  std::vector<std::string> exposed_ports;  ///< "80/tcp", sorted, unique
  std::vector<std::string> env;            ///< "K=V", in order
  std::optional<std::vector<std::string>> entrypoint;
  std::optional<std::vector<std::string>> cmd;
  std::vector<std::string> volumes;        ///< sorted, unique
  std::string working_dir;
  std::map<std::string, std::string> labels;
  std::string stop_signal;
  bool args_escaped = false;               ///< Docker/Windows legacy, kept for round trips
  std::optional<HealthConfig> healthcheck;
  std::vector<std::string> on_build;
  std::vector<std::string> shell;

  /// Value of env variable `name`, or nullopt.
  std::optional<std::string> GetEnv(std::string_view name) const;
  /// Sets (replacing an existing entry in place) env variable `name`.
  void SetEnv(std::string_view name, std::string_view value);

  friend bool operator==(const ContainerConfig& a, const ContainerConfig& b) = default;
};

/// One history entry. `empty_layer` entries have no layer in rootfs.diff_ids.
struct HistoryEntry {
  std::string created;     ///< RFC 3339, may be ""
  std::string created_by;
  std::string author;
  std::string comment;
  bool empty_layer = false;

  friend bool operator==(const HistoryEntry& a, const HistoryEntry& b) = default;
};

/// OCI image config (also reads Docker's, which is a superset).
struct ImageConfig {
  std::string created;  ///< RFC 3339 ("2024-01-02T03:04:05Z"), may be ""
  std::string author;
  std::string architecture;
  std::string os;
  std::string variant;
  std::string os_version;
  std::vector<std::string> os_features;
  ContainerConfig config;
  std::vector<Digest> diff_ids;  ///< rootfs.diff_ids, base layer first
  std::vector<HistoryEntry> history;

  Platform platform() const;
  void set_platform(const Platform& p);

  friend bool operator==(const ImageConfig& a, const ImageConfig& b) = default;
};

// ---------------------------------------------------------------- manifest

/// An image manifest: OCI (media_type kMediaTypeOciManifest) or Docker
/// schema2 (kMediaTypeDockerManifest); the JSON form differs only in the
/// media types used.
struct Manifest {
  int schema_version = 2;
  std::string media_type = std::string(kMediaTypeOciManifest);
  std::string artifact_type;
  Descriptor config;
  std::vector<Descriptor> layers;
  std::optional<Descriptor> subject;
  std::map<std::string, std::string> annotations;

  friend bool operator==(const Manifest& a, const Manifest& b) = default;
};

/// An OCI image index or a Docker manifest list.
struct Index {
  int schema_version = 2;
  std::string media_type = std::string(kMediaTypeOciIndex);
  std::string artifact_type;
  std::vector<Descriptor> manifests;
  std::optional<Descriptor> subject;
  std::map<std::string, std::string> annotations;

  /// The first manifest whose platform `wanted` Matches() (entries without a
  /// platform match anything); kNotFound listing the platforms present.
  Expected<Descriptor> SelectPlatform(const Platform& wanted) const;

  friend bool operator==(const Index& a, const Index& b) = default;
};

// ---------------------------------------------------------------- JSON

/// Parse a document (at most kMaxDocumentBytes). kCorrupt on any problem,
/// with a message naming the field ("manifest: layers[2].digest: ...").
Expected<ImageConfig> ParseImageConfig(std::string_view json);
Expected<Manifest> ParseManifest(std::string_view json);
Expected<Index> ParseIndex(std::string_view json);
Expected<Descriptor> ParseDescriptor(std::string_view json);

/// Canonical JSON (see the file comment). Optional empty fields are left
/// out, as the Go implementations do with omitempty.
std::string ToJson(const ImageConfig& config);
std::string ToJson(const Manifest& manifest);
std::string ToJson(const Index& index);
std::string ToJson(const Descriptor& descriptor);

/// What a manifest-ish document is: its "mediaType", or (when absent)
/// guessed from the fields (config+layers: OCI manifest, manifests: OCI
/// index). kCorrupt for a document with both "layers" and "manifests"
/// (CVE-2021-41190) or neither.
Expected<std::string> DetectManifestMediaType(std::string_view json);

/// A descriptor for `data` with the given media type.
Descriptor DescriptorFor(std::string_view media_type, std::string_view data);

/// ChainID of a stack of layers (OCI image spec): chain[0] = diff_ids[0],
/// chain[n] = sha256(chain[n-1] + " " + diff_ids[n]). Empty input: invalid.
Digest ChainId(std::span<const Digest> diff_ids);

/// Current UTC time (or $SOURCE_DATE_EPOCH when set) in RFC 3339 with
/// second precision: "2026-01-02T03:04:05Z".
std::string NowRfc3339();
/// Seconds since the epoch of an RFC 3339 time, or nullopt.
std::optional<int64_t> ParseRfc3339(std::string_view text);
/// RFC 3339 (UTC, seconds) of a time since the epoch.
std::string FormatRfc3339(int64_t seconds);

}  // namespace kiln
