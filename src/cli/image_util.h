// Helpers shared by the image commands (images, tag, rmi, inspect, history,
// save, load, import, push, pull, prune).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "kiln/store.h"
#include "kiln/transport.h"

namespace kiln::cli {

/// Opens the store at ctx.StoreRoot(); the error names the path.
Expected<Store> OpenImageStore(const Context& ctx);

/// TRANSPORT:LOCATION as pull, push and manifest push take it
/// (kiln/transport.h). A registry reference is checked before any network
/// use (kInvalidInput: exit 2) and the docker:// transport is registered.
Expected<TransportRef> ParseImageTransport(std::string_view text);

/// The registry flags of pull, push and manifest: --tls-verify, --authfile,
/// --cert-dir and --signature-policy, parsed into the TransferOptions they set.
struct RegistryFlags {
  TransferOptions transfer;
  /// Adds the flags to `cmd` (--cert-dir only with `cert_dir_flag`).
  void Add(CLI::App* cmd, bool cert_dir_flag = true);
  /// The TransferOptions they give, with -q's `quiet`.
  TransferOptions Options(bool quiet) const;
};

/// A name kiln gives an image (tag, import, pull of a local transport):
/// "name" -> "localhost/name:latest", "quay.io/x" -> "quay.io/x:latest".
/// kInvalidInput for a bad reference or one with a digest.
Expected<std::string> NormalizeNewName(std::string_view text);

/// The full references a user's `text` may mean in index.json: the
/// localhost/ reading of a short name first, then the docker.io one.
std::vector<std::string> CandidateNames(const std::string& text);

/// The name of `image` that `text` refers to ("busybox" ->
/// "docker.io/library/busybox:latest" when the image has that name), or ""
/// when `text` addressed it by ID or digest.
std::string MatchedName(const StoredImage& image, std::string_view text);

/// First 12 hex digits of a digest.
std::string ShortId(const Digest& d);
/// podman's sizes: "1.23 MB", "512 B" (SI units, three significant digits).
std::string HumanSize(int64_t bytes);
/// "3 minutes ago", "About an hour ago", "2 days ago"; "" for an empty time.
std::string HumanAgo(const std::string& rfc3339);
/// Sum of the blob sizes of the image (layers + config + manifest).
int64_t ImageSize(const StoredImage& image);

/// podman-like JSON description of an image (`kiln inspect`).
nlohmann::json InspectImageJson(const StoredImage& image);

/// Prints "kiln: warning: ..." style info to stderr unless quiet.
void PrintProgress(bool quiet, const std::string& line);

}  // namespace kiln::cli
