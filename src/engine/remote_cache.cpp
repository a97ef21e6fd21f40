#include "engine/remote_cache.h"

#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "kiln/log.h"
#include "kiln/oci.h"

namespace kiln::engine {

namespace {

std::string DockerRef(const std::string& ref) {
  return ref.rfind("docker://", 0) == 0 ? ref : "docker://" + ref;
}

}  // namespace

Status ExportCache(Store& store, const std::vector<std::string>& keys, const std::string& ref,
                   TransferOptions options) {
  nlohmann::json records = nlohmann::json::object();
  std::vector<Descriptor> layers;
  ImageConfig config;
  config.set_platform(Platform::Host());
  std::set<Digest> seen;
  for (const std::string& key : keys) {
    auto digest = Digest::Parse(key);
    if (!digest || records.contains(digest->hex()))
      continue;
    auto rec = store.GetCacheRecord(digest->hex());
    if (!rec)
      continue;  // a step whose record could not be written: nothing to share
    auto j = nlohmann::json::parse(*rec, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      continue;
    if (j.contains("layer")) {
      auto desc = ParseDescriptor(j["layer"].dump());
      auto diff = Digest::Parse(j.value("diff_id", ""));
      if (!desc || !diff || !store.HasBlob(desc->digest))
        continue;
      if (seen.insert(desc->digest).second) {
        layers.push_back(*desc);
        config.diff_ids.push_back(*diff);
      }
    }
    records[digest->hex()] = j;
  }
  nlohmann::json doc = {{"v", 1}, {"records", records}};
  config.config.labels[kCacheLabel] = doc.dump();
  config.history.push_back(HistoryEntry{"", "kiln build --cache-to", "", "build cache", layers.empty()});
  for (size_t i = 1; i < layers.size(); ++i)
    config.history.push_back(HistoryEntry{"", "kiln build --cache-to", "", "build cache", false});
  KILN_ASSIGN_OR_RETURN(Descriptor top, store.WriteImage(config, layers));
  KILN_ASSIGN_OR_RETURN(StoredImage image, store.LoadImage(top));
  KILN_ASSIGN_OR_RETURN(TransportRef dest, TransportRef::Parse(DockerRef(ref)));
  options.compression.clear();  // layers go as stored
  if (auto s = PushImage(store, image, "", dest, options); !s)
    return std::move(s).error().WithContext("--cache-to " + ref);
  LogInfo("exported " + std::to_string(records.size()) + " cache records (" + std::to_string(layers.size()) +
          " layers) to " + ref);
  return Ok();
}

Expected<size_t> ImportCache(Store& store, const std::string& ref, TransferOptions options) {
  KILN_ASSIGN_OR_RETURN(TransportRef src, TransportRef::Parse(DockerRef(ref)));
  options.platform = Platform::Host();
  options.unpack_layers = false;  // a hit materialises nothing; layers unpack on first use
  auto pulled = PullImage(store, src, options);
  if (!pulled)
    return std::move(pulled).error().WithContext("--cache-from " + ref);
  KILN_ASSIGN_OR_RETURN(StoredImage image, store.LoadImage(pulled->top));
  auto label = image.config.config.labels.find(kCacheLabel);
  if (label == image.config.config.labels.end())
    return Error(Errc::kInvalidInput, "--cache-from " + ref + ": not a kiln build cache (no " +
                                          std::string(kCacheLabel) + " label)");
  auto doc = nlohmann::json::parse(label->second, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || doc.value("v", 0) != 1 || !doc.contains("records") ||
      !doc["records"].is_object())
    return Error(Errc::kInvalidInput, "--cache-from " + ref + ": unsupported cache format");
  // Every layer a record names was pulled (and verified) with the image.
  std::set<Digest> layers;
  for (const Descriptor& d : image.manifest.layers)
    layers.insert(d.digest);
  size_t imported = 0;
  for (const auto& [key, rec] : doc["records"].items()) {
    if (!rec.is_object())
      continue;
    GcRoot keep;
    if (rec.contains("layer")) {
      auto desc = ParseDescriptor(rec["layer"].dump());
      if (!desc || layers.count(desc->digest) == 0)
        continue;  // a record must not point at a blob this cache did not bring
      keep.blobs = {*desc};
      if (rec.contains("diff_id") && rec["diff_id"].is_string())
        if (auto diff = Digest::Parse(rec["diff_id"].get<std::string>()))
          keep.layers = {*diff};
    } else if (!rec.value("empty", false)) {
      continue;
    }
    if (store.GetCacheRecord(key))
      continue;
    if (auto s = store.PutCacheRecord(key, rec.dump(), keep); !s)
      return std::move(s).error().WithContext("--cache-from " + ref);
    ++imported;
  }
  return imported;
}

}  // namespace kiln::engine
