// containers-registries.conf(5), version 2, as podman and buildah read it:
// which registry a reference really goes to (prefix -> location rewrite),
// its mirrors, whether it is insecure or blocked, and how a short name
// ("busybox", "team/app") becomes a fully qualified one (aliases,
// unqualified-search-registries, short-name-mode). docs/registries.md.
//
// Parsing, merging and the resolution rules are pure (unit-tested without
// files); LoadRegistriesConf() reads the files in podman's order.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/error.h"
#include "kiln/reference.h"

namespace kiln::registry {

struct MirrorConf {
  std::string location;          // "host[:port][/path]"
  bool insecure = false;         // plain HTTP and unverified TLS allowed
  std::string pull_from_mirror;  // "all" (default) | "digest-only" | "tag-only"
};

struct RegistryConf {
  /// What references the entry applies to: "host[:port][/path]" or
  /// "*.domain" (any host under domain). Defaults to `location`.
  std::string prefix;
  /// Where matching references really live: the prefix part of the
  /// reference is replaced by it ("" with a wildcard prefix: unchanged).
  std::string location;
  bool insecure = false;
  bool blocked = false;
  bool mirror_by_digest_only = false;
  std::vector<MirrorConf> mirrors;
  std::string file;  // where the entry was read (error messages)
};

enum class ShortNameMode { kEnforcing, kPermissive, kDisabled };

struct RegistriesConf {
  /// unqualified-search-registries; nullopt when no file sets it.
  std::optional<std::vector<std::string>> search;
  std::optional<ShortNameMode> short_name_mode;  // nullopt: permissive (containers/image's default)
  /// [aliases]: short name -> fully qualified name (no tag or digest), with
  /// the file that defined it.
  std::map<std::string, std::pair<std::string, std::string>> aliases;
  std::vector<RegistryConf> registries;
  std::string search_file;  // the file that set `search` (messages)
  std::vector<std::string> files;  // every file read, in order
};

/// Parses one file's text (TOML, version 2; a version-1 file with
/// [registries.search]/[registries.insecure]/[registries.block] is converted).
/// kInvalidInput naming `file` (and the line, where TOML gives one).
Expected<RegistriesConf> ParseRegistriesConf(std::string_view text, const std::string& file);

/// Applies a later file over an earlier one, as containers-registries.conf.d(5):
/// a key it sets replaces the earlier value, a [[registry]] with the same
/// prefix replaces the earlier entry, others are added; aliases merge.
void MergeRegistriesConf(RegistriesConf& into, RegistriesConf later);

/// The files podman reads, in order: $CONTAINERS_REGISTRIES_CONF, else
/// $HOME/.config/containers/registries.conf when it exists, else
/// /etc/containers/registries.conf; then the *.conf of
/// /etc/containers/registries.conf.d (not when the user file was chosen) and
/// of $HOME/.config/containers/registries.conf.d, each in name order.
std::vector<std::string> RegistriesConfFiles();

/// Reads RegistriesConfFiles() once per process (missing files are skipped;
/// an unreadable or invalid one is an error naming it).
Expected<RegistriesConf> LoadRegistriesConf();

/// The entry that applies to `name` ("host/path[:tag][@digest]"): the
/// longest matching prefix, a wildcard only when no plain prefix matches.
const RegistryConf* FindRegistry(const RegistriesConf& conf, std::string_view name);

/// One place to pull from.
struct PullSource {
  ImageReference ref;  // the reference rewritten to this location
  bool insecure = false;
  bool mirror = false;
};

/// Where to pull `ref` from, in order: the mirrors that apply (pull-from-
/// mirror / mirror-by-digest-only against a tag or digest reference), then
/// the primary location. kFailed naming the registry and file when blocked.
Expected<std::vector<PullSource>> PullSources(const RegistriesConf& conf, const ImageReference& ref);

/// For push: blocked is refused (kFailed), insecure is reported. Mirrors and
/// location rewriting apply to pulls only, as in containers/image.
Expected<bool> PushInsecure(const RegistriesConf& conf, const ImageReference& ref);

/// How a short name resolves.
struct ShortNameResolution {
  std::vector<ImageReference> candidates;  // try in order
  std::string note;  // "Resolved "x" as an alias (FILE)", or "" for search registries
};

/// `ref` as parsed from a name without a registry (implicit_domain):
/// an alias wins; else each unqualified-search registry (docker.io when no
/// file sets any: Docker's rule, kiln's default). More than one candidate
/// with short-name-mode enforcing is kInvalidInput naming them (kiln does
/// not prompt; podman prompts on a terminal).
Expected<ShortNameResolution> ResolveShortName(const RegistriesConf& conf, const ImageReference& ref);

}  // namespace kiln::registry
