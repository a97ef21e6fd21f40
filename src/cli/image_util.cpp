#include "cli/image_util.h"

#include <cmath>
#include <cstdio>
#include <ctime>

#include "kiln/oci.h"
#include "kiln/reference.h"
#include "kiln/registry.h"

namespace kiln::cli {

using Json = nlohmann::json;

Expected<Store> OpenImageStore(const Context& ctx) {
  auto s = Store::Open(ctx.StoreRoot());
  if (!s)  // docs/cli.md "Exit status": kiln could not set up its store -> exit 125
    return Error(Errc::kSandbox, s.error().message(), s.error().sys_errno());
  return s;
}

Expected<TransportRef> ParseImageTransport(std::string_view text) {
  KILN_ASSIGN_OR_RETURN(TransportRef ref, TransportRef::Parse(text));
  if (ref.transport == "docker") {
    KILN_TRY(ImageReference::Parse(ref.location));
    registry::RegisterDockerTransport();
  }
  return ref;
}

void RegistryFlags::Add(CLI::App* cmd, bool cert_dir_flag) {
  cmd->add_flag("--tls-verify", transfer.tls_verify, "verify registry TLS certificates: --tls-verify=false to skip");
  cmd->add_option("--authfile", transfer.authfile, "registry credentials file");
  if (cert_dir_flag)
    cmd->add_option("--cert-dir", transfer.cert_dir, "directory with CA certificates for the registry");
  cmd->add_option("--signature-policy", transfer.signature_policy,
                  "policy.json to check pulled images against (default: the containers-policy.json(5) files)");
}

TransferOptions RegistryFlags::Options(bool quiet) const {
  TransferOptions to = transfer;
  to.quiet = quiet;
  return to;
}

std::vector<std::string> CandidateNames(const std::string& text) {
  std::vector<std::string> out;
  if (auto local = ImageReference::ParseWithDefaultDomain(text, "localhost"))
    out.push_back(local->str());
  if (auto ref = ImageReference::Parse(text))
    out.push_back(ref->str());
  return out;
}

Expected<std::string> NormalizeNewName(std::string_view text) {
  KILN_ASSIGN_OR_RETURN(ImageReference ref, ImageReference::ParseWithDefaultDomain(text, "localhost"));
  if (ref.digest.valid())
    return Error(Errc::kInvalidInput, "invalid reference \"" + std::string(text) +
                                          "\": a name given to an image cannot contain a digest");
  return ref.str();
}

std::string MatchedName(const StoredImage& image, std::string_view text) {
  std::vector<std::string> candidates;
  if (auto local = ImageReference::ParseWithDefaultDomain(text, "localhost"))
    candidates.push_back(local->str());
  if (auto ref = ImageReference::Parse(text))
    candidates.push_back(ref->str());
  for (const auto& c : candidates)
    for (const auto& n : image.names)
      if (n == c)
        return n;
  return {};
}

std::string ShortId(const Digest& d) { return d.hex().substr(0, 12); }

std::string HumanSize(int64_t bytes) {
  static const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000.0 && u < 5) {
    v /= 1000.0;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%lld %s", static_cast<long long>(bytes), kUnits[u]);
  else
    std::snprintf(buf, sizeof buf, "%.3g %s", v, kUnits[u]);
  return buf;
}

std::string HumanAgo(const std::string& created) {
  auto t = ParseRfc3339(created);
  if (!t)
    return created.empty() ? "" : created;
  int64_t d = static_cast<int64_t>(std::time(nullptr)) - *t;
  if (d < 0)
    d = 0;
  auto plural = [](int64_t n, const char* unit) {
    return std::to_string(n) + " " + unit + (n == 1 ? "" : "s") + " ago";
  };
  if (d < 1)
    return "Less than a second ago";
  if (d < 60)
    return plural(d, "second");
  if (d < 3600)
    return d / 60 == 1 ? "About a minute ago" : plural(d / 60, "minute");
  if (d < 86400)
    return d / 3600 == 1 ? "About an hour ago" : plural(d / 3600, "hour");
  if (d < 86400 * 14)
    return plural(d / 86400, "day");
  if (d < 86400 * 60)
    return plural(d / (86400 * 7), "week");
  if (d < 86400 * 365 * 2)
    return plural(d / (86400 * 30), "month");
  return plural(d / (86400 * 365), "year");
}

int64_t ImageSize(const StoredImage& image) {
  int64_t total = image.manifest.config.size + image.manifest_descriptor.size;
  for (const auto& l : image.manifest.layers)
    total += l.size;
  return total;
}

Json InspectImageJson(const StoredImage& img) {
  Json raw = Json::object();
  try {
    raw = Json::parse(img.config_json);
  } catch (const Json::exception&) {
  }
  Json j = Json::object();
  j["Id"] = img.id().hex();
  j["Digest"] = img.top.digest.str();
  Json tags = Json::array();
  Json digests = Json::array();
  for (const auto& n : img.names) {
    tags.push_back(n);
    auto ref = ImageReference::Parse(n);
    if (ref)
      digests.push_back(ref->Name() + "@" + img.top.digest.str());
  }
  j["RepoTags"] = tags;
  j["RepoDigests"] = digests;
  j["Parent"] = "";
  j["Comment"] = img.config.history.empty() ? "" : img.config.history.back().comment;
  j["Created"] = img.config.created;
  j["Config"] = raw.contains("config") && raw["config"].is_object() ? raw["config"] : Json::object();
  j["Version"] = raw.value("docker_version", "");
  j["Author"] = img.config.author;
  j["Architecture"] = img.config.architecture;
  j["Os"] = img.config.os;
  if (!img.config.variant.empty())
    j["Variant"] = img.config.variant;
  int64_t size = ImageSize(img);
  j["Size"] = size;
  j["VirtualSize"] = size;
  Json layers = Json::array();
  for (const auto& d : img.config.diff_ids)
    layers.push_back(d.str());
  j["RootFS"] = Json{{"Type", "layers"}, {"Layers", layers}};
  j["Labels"] = img.config.config.labels.empty() ? Json(nullptr) : Json(img.config.config.labels);
  j["Annotations"] = img.manifest.annotations.empty() ? Json::object() : Json(img.manifest.annotations);
  j["ManifestType"] = img.manifest_descriptor.media_type;
  j["User"] = img.config.config.user;
  j["History"] = raw.contains("history") ? raw["history"] : Json::array();
  j["NamesHistory"] = tags;
  Json layer_descs = Json::array();
  for (const auto& l : img.manifest.layers)
    layer_descs.push_back(Json{{"MediaType", l.media_type}, {"Digest", l.digest.str()}, {"Size", l.size}});
  j["Layers"] = layer_descs;
  return j;
}

void PrintProgress(bool quiet, const std::string& line) {
  if (quiet)
    return;
  std::string l = line + "\n";
  std::fwrite(l.data(), 1, l.size(), stderr);
}

}  // namespace kiln::cli
