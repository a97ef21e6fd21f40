// The pure parts of a farm build: what nodes offer, which node builds which
// platform, the job name and the index.
#include <algorithm>
#include <optional>

#include <nlohmann/json.hpp>

#include "kiln/farm.h"
#include "kiln/oci.h"

namespace kiln::farm {

using nlohmann::json;

namespace {

/// "linux/arm64/v8" and "linux/arm64" are one platform to a node (kiln info
/// lists arm64 without a variant).
std::string Normalize(std::string_view platform) {
  std::string p(platform);
  if (p == "linux/arm64/v8")
    return "linux/arm64";
  return p;
}

bool Contains(const std::vector<std::string>& list, const std::string& platform) {
  for (const auto& p : list)
    if (Normalize(p) == platform)
      return true;
  return false;
}

std::string Offers(const NodeInfo& n) {
  std::string out;
  for (const auto& p : n.native)
    out += (out.empty() ? "" : ", ") + p;
  for (const auto& p : n.emulated)
    out += (out.empty() ? "" : ", ") + p + " (emulated)";
  return out.empty() ? "nothing" : out;
}

}  // namespace

Expected<NodeInfo> ParseNodeInfo(std::string_view info_json) {
  json doc = json::parse(info_json, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("platforms") || !doc["platforms"].is_array())
    return Error(Errc::kCorrupt, "kiln info --format json gave no \"platforms\" list (is the node's kiln too old?)");
  NodeInfo info;
  for (const auto& p : doc["platforms"]) {
    if (!p.is_object() || !p.contains("platform") || !p["platform"].is_string())
      continue;
    std::string name = p["platform"].get<std::string>();
    bool native = p.value("native", false);
    (native ? info.native : info.emulated).push_back(name);
  }
  return info;
}

Expected<std::vector<Assignment>> Schedule(const std::vector<std::string>& platforms,
                                           const std::vector<NodeInfo>& nodes,
                                           const std::vector<std::string>& node_names) {
  std::vector<Assignment> out;
  std::vector<int> load(nodes.size(), 0);
  for (const auto& requested : platforms) {
    std::string platform = Normalize(requested);
    std::optional<size_t> best;
    bool best_native = false;
    for (size_t i = 0; i < nodes.size(); ++i) {
      bool native = Contains(nodes[i].native, platform);
      if (!native && !Contains(nodes[i].emulated, platform))
        continue;
      if (!best || (native && !best_native) || (native == best_native && load[i] < load[*best])) {
        best = i;
        best_native = native;
      }
    }
    if (!best) {
      std::string what;
      for (size_t i = 0; i < nodes.size(); ++i)
        what += "; " + (i < node_names.size() ? node_names[i] : "node " + std::to_string(i)) + ": " +
                Offers(nodes[i]);
      return Error(Errc::kInvalidInput, "no node of the farm builds " + requested + what);
    }
    ++load[*best];
    out.push_back({requested, *best, best_native});
  }
  return out;
}

std::string JobName(const JobInputs& in) {
  // Every field length-prefixed: no two input lists hash alike.
  Sha256 h;
  auto put = [&](std::string_view field) {
    h.Update(std::to_string(field.size()) + ":");
    h.Update(field);
  };
  put("kiln-farm-job-v1");
  put(in.context.str());
  put(in.containerfile);
  put(in.platform);
  put(in.image);
  put(std::to_string(in.build_args.size()));
  for (const auto& a : in.build_args)
    put(a);
  put(std::to_string(in.cache_from.size()));
  for (const auto& c : in.cache_from)
    put(c);
  put(in.cache_to);
  if (!in.builder.empty())  // SSH nodes' job names stay what they were
    put(in.builder);
  return "kiln-farm-" + h.Finish().hex().substr(0, 16);
}

std::string PlatformCacheRef(const std::string& ref, std::string_view platform) {
  std::string suffix(platform);
  std::replace(suffix.begin(), suffix.end(), '/', '-');
  // A tag is what follows the last ':' after the last '/' (a registry's
  // port is before the first '/').
  auto slash = ref.rfind('/');
  auto colon = ref.rfind(':');
  if (ref.find('@') != std::string::npos)
    return ref;  // a digest: used as given (a --cache-from of one record set)
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash))
    return ref + "-" + suffix;
  return ref + ":" + suffix;
}

std::string IndexJson(const std::vector<PlatformImage>& images) {
  json manifests = json::array();
  for (const auto& img : images) {
    json platform = json::object();
    std::string_view p = img.platform;
    auto slash = p.find('/');
    platform["os"] = std::string(p.substr(0, slash));
    std::string_view rest = slash == std::string_view::npos ? std::string_view() : p.substr(slash + 1);
    auto slash2 = rest.find('/');
    platform["architecture"] = std::string(rest.substr(0, slash2));
    if (slash2 != std::string_view::npos)
      platform["variant"] = std::string(rest.substr(slash2 + 1));
    // Key order as the image-spec's examples: mediaType, size, digest, platform.
    json d = json::object();
    d["mediaType"] = img.media_type;
    d["size"] = img.size;
    d["digest"] = img.digest.str();
    d["platform"] = std::move(platform);
    manifests.push_back(std::move(d));
  }
  json index = json::object();
  index["schemaVersion"] = 2;
  index["mediaType"] = std::string(kMediaTypeOciIndex);
  index["manifests"] = std::move(manifests);
  return index.dump();
}

}  // namespace kiln::farm
