#include "kiln/oci.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <set>
#include <utility>

#include "oci/json_util.h"

namespace kiln {

using oci_internal::Json;

// ============================================================ strict JSON

namespace oci_internal {

namespace {

struct DuplicateKey {
  std::string key;
};
struct TooDeep {};

constexpr int kMaxDepth = 64;

}  // namespace

Expected<Json> ParseStrict(std::string_view text, std::string_view what, size_t max_bytes) {
  if (text.size() > max_bytes)
    return Error(Errc::kCorrupt, std::string(what) + ": document is larger than " +
                                     std::to_string(max_bytes) + " bytes");
  // Go's encoding/json (what registries and other tools use) refuses a
  // byte-order mark; nlohmann would skip it. Refuse it too, so that every
  // tool sees the same document.
  if (text.substr(0, 3) == "\xEF\xBB\xBF")
    return Error(Errc::kCorrupt, std::string(what) + ": invalid JSON: byte order mark");
  // One set of keys per open object, to reject duplicate keys (docs/security.md
  // H24: the last one would silently win otherwise).
  std::vector<std::set<std::string>> keys;
  auto callback = [&keys](int depth, Json::parse_event_t event, Json& parsed) -> bool {
    if (depth > kMaxDepth)
      throw TooDeep{};
    switch (event) {
      case Json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!keys.empty())
          keys.pop_back();
        break;
      case Json::parse_event_t::key: {
        std::string k = parsed.get<std::string>();
        if (!keys.empty() && !keys.back().insert(k).second)
          throw DuplicateKey{k};
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const DuplicateKey& d) {
    return Error(Errc::kCorrupt, std::string(what) + ": duplicate key \"" + d.key + "\"");
  } catch (const TooDeep&) {
    return Error(Errc::kCorrupt, std::string(what) + ": nested deeper than " +
                                     std::to_string(kMaxDepth) + " levels");
  } catch (const Json::exception& e) {
    std::string msg = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
    if (auto pos = msg.find("] "); pos != std::string::npos)
      msg = msg.substr(pos + 2);
    return Error(Errc::kCorrupt, std::string(what) + ": invalid JSON: " + msg);
  }
}

std::string Dump(const Json& j) {
  return j.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

}  // namespace oci_internal

namespace {

using oci_internal::Dump;
using oci_internal::ParseStrict;

// ============================================================ typed readers

/// Reads typed fields out of a parsed document, remembering the first error
/// (with the field's path) so that parsing code stays linear.
class Reader {
 public:
  explicit Reader(std::string what) : what_(std::move(what)) {}

  bool ok() const { return !error_.has_value(); }
  Error TakeError() { return std::move(*error_); }

  void Fail(const std::string& path, const std::string& msg) {
    if (!error_)
      error_ = Error(Errc::kCorrupt, what_ + ": " + (path.empty() ? "" : path + ": ") + msg);
  }

  static std::string Sub(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  const Json* Field(const Json& obj, std::string_view key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null())
      return nullptr;
    return &*it;
  }

  bool RequireObject(const Json& j, const std::string& path) {
    if (j.is_object())
      return true;
    Fail(path, "expected an object");
    return false;
  }

  std::string Str(const Json& obj, std::string_view key, const std::string& path) {
    const Json* v = Field(obj, key);
    if (!v)
      return {};
    if (!v->is_string()) {
      Fail(Sub(path, key), "expected a string");
      return {};
    }
    return v->get<std::string>();
  }

  bool Bool(const Json& obj, std::string_view key, const std::string& path) {
    const Json* v = Field(obj, key);
    if (!v)
      return false;
    if (!v->is_boolean()) {
      Fail(Sub(path, key), "expected true or false");
      return false;
    }
    return v->get<bool>();
  }

  int64_t Int(const Json& obj, std::string_view key, const std::string& path, bool* present = nullptr) {
    const Json* v = Field(obj, key);
    if (present)
      *present = v != nullptr;
    if (!v)
      return 0;
    if (!v->is_number_integer()) {
      Fail(Sub(path, key), "expected an integer");
      return 0;
    }
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX)) {
      Fail(Sub(path, key), "integer out of range");
      return 0;
    }
    return v->get<int64_t>();
  }

  std::optional<std::vector<std::string>> StrList(const Json& obj, std::string_view key,
                                                  const std::string& path) {
    const Json* v = Field(obj, key);
    if (!v)
      return std::nullopt;
    if (!v->is_array()) {
      Fail(Sub(path, key), "expected an array of strings");
      return std::nullopt;
    }
    std::vector<std::string> out;
    out.reserve(v->size());
    for (const auto& e : *v) {
      if (!e.is_string()) {
        Fail(Sub(path, key), "expected an array of strings");
        return std::nullopt;
      }
      out.push_back(e.get<std::string>());
    }
    return out;
  }

  std::map<std::string, std::string> StrMap(const Json& obj, std::string_view key,
                                            const std::string& path) {
    std::map<std::string, std::string> out;
    const Json* v = Field(obj, key);
    if (!v)
      return out;
    if (!v->is_object()) {
      Fail(Sub(path, key), "expected an object of strings");
      return out;
    }
    for (auto it = v->begin(); it != v->end(); ++it) {
      if (!it->is_string()) {
        Fail(Sub(path, key) + "." + it.key(), "expected a string");
        return out;
      }
      out.emplace(it.key(), it->get<std::string>());
    }
    return out;
  }

  /// Keys of an object-of-objects ("ExposedPorts": {"80/tcp": {}}).
  std::vector<std::string> KeySet(const Json& obj, std::string_view key, const std::string& path) {
    std::vector<std::string> out;
    const Json* v = Field(obj, key);
    if (!v)
      return out;
    if (!v->is_object()) {
      Fail(Sub(path, key), "expected an object");
      return out;
    }
    for (auto it = v->begin(); it != v->end(); ++it)
      out.push_back(it.key());
    return out;  // nlohmann objects iterate in key order: already sorted
  }

  Digest DigestField(const Json& obj, std::string_view key, const std::string& path, bool required) {
    const Json* v = Field(obj, key);
    if (!v) {
      if (required)
        Fail(Sub(path, key), "missing");
      return {};
    }
    if (!v->is_string()) {
      Fail(Sub(path, key), "expected a digest string");
      return {};
    }
    auto d = Digest::Parse(v->get<std::string>());
    if (!d) {
      Fail(Sub(path, key), d.error().message());
      return {};
    }
    return *d;
  }

 private:
  std::string what_;
  std::optional<Error> error_;
};

bool ValidMediaTypeSyntax(std::string_view mt) {
  // RFC 6838 restricted names: type "/" subtype, 1..127 chars each.
  auto slash = mt.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 >= mt.size())
    return false;
  auto part_ok = [](std::string_view p) {
    if (p.empty() || p.size() > 127 || !std::isalnum(static_cast<unsigned char>(p[0])))
      return false;
    for (char c : p) {
      if (std::isalnum(static_cast<unsigned char>(c)))
        continue;
      if (std::string_view("!#$&^_.+-").find(c) == std::string_view::npos)
        return false;
    }
    return true;
  };
  return part_ok(mt.substr(0, slash)) && part_ok(mt.substr(slash + 1));
}

// ============================================================ platform JSON

Platform ReadPlatform(Reader& r, const Json& j, const std::string& path) {
  Platform p;
  if (!r.RequireObject(j, path))
    return p;
  p.architecture = r.Str(j, "architecture", path);
  p.os = r.Str(j, "os", path);
  p.variant = r.Str(j, "variant", path);
  p.os_version = r.Str(j, "os.version", path);
  p.os_features = r.StrList(j, "os.features", path).value_or(std::vector<std::string>{});
  if (r.ok() && (p.architecture.empty() || p.os.empty()))
    r.Fail(path, "platform needs os and architecture");
  return p;
}

Json WritePlatform(const Platform& p) {
  Json j = Json::object();
  j["architecture"] = p.architecture;
  j["os"] = p.os;
  if (!p.variant.empty())
    j["variant"] = p.variant;
  if (!p.os_version.empty())
    j["os.version"] = p.os_version;
  if (!p.os_features.empty())
    j["os.features"] = p.os_features;
  return j;
}

// ============================================================ descriptor JSON

Descriptor ReadDescriptor(Reader& r, const Json& j, const std::string& path) {
  Descriptor d;
  if (!r.RequireObject(j, path))
    return d;
  d.media_type = r.Str(j, "mediaType", path);
  if (r.ok() && !ValidMediaTypeSyntax(d.media_type))
    r.Fail(Reader::Sub(path, "mediaType"),
           d.media_type.empty() ? "missing" : "invalid media type \"" + d.media_type + "\"");
  d.digest = r.DigestField(j, "digest", path, /*required=*/true);
  bool has_size = false;
  d.size = r.Int(j, "size", path, &has_size);
  if (r.ok() && !has_size)
    r.Fail(Reader::Sub(path, "size"), "missing");
  if (r.ok() && d.size < 0)
    r.Fail(Reader::Sub(path, "size"), "negative size");
  d.urls = r.StrList(j, "urls", path).value_or(std::vector<std::string>{});
  d.annotations = r.StrMap(j, "annotations", path);
  d.artifact_type = r.Str(j, "artifactType", path);
  if (const Json* p = r.Field(j, "platform"))
    d.platform = ReadPlatform(r, *p, Reader::Sub(path, "platform"));
  return d;
}

Json WriteDescriptor(const Descriptor& d) {
  Json j = Json::object();
  j["mediaType"] = d.media_type;
  j["digest"] = d.digest.str();
  j["size"] = d.size;
  if (!d.urls.empty())
    j["urls"] = d.urls;
  if (!d.annotations.empty())
    j["annotations"] = d.annotations;
  if (d.platform)
    j["platform"] = WritePlatform(*d.platform);
  if (!d.artifact_type.empty())
    j["artifactType"] = d.artifact_type;
  return j;
}

Json SetOfKeys(const std::vector<std::string>& keys) {
  Json j = Json::object();
  for (const auto& k : keys)
    j[k] = Json::object();
  return j;
}

std::vector<std::string> SortedUnique(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

}  // namespace

// ============================================================ media types

bool IsManifestMediaType(std::string_view mt) {
  return mt == kMediaTypeOciManifest || mt == kMediaTypeDockerManifest;
}

bool IsIndexMediaType(std::string_view mt) {
  return mt == kMediaTypeOciIndex || mt == kMediaTypeDockerManifestList;
}

bool IsConfigMediaType(std::string_view mt) {
  return mt == kMediaTypeOciConfig || mt == kMediaTypeDockerConfig;
}

bool IsLayerMediaType(std::string_view mt) {
  static constexpr std::string_view kOciPrefix = "application/vnd.oci.image.layer.";
  static constexpr std::string_view kDockerPrefix = "application/vnd.docker.image.rootfs.";
  return mt.substr(0, kOciPrefix.size()) == kOciPrefix ||
         mt.substr(0, kDockerPrefix.size()) == kDockerPrefix;
}

// ============================================================ ContainerConfig

std::optional<std::string> ContainerConfig::GetEnv(std::string_view name) const {
  for (const auto& e : env) {
    auto eq = e.find('=');
    std::string_view k = eq == std::string::npos ? std::string_view(e) : std::string_view(e).substr(0, eq);
    if (k == name)
      return eq == std::string::npos ? std::string() : e.substr(eq + 1);
  }
  return std::nullopt;
}

void ContainerConfig::SetEnv(std::string_view name, std::string_view value) {
  std::string entry = std::string(name) + "=" + std::string(value);
  for (auto& e : env) {
    auto eq = e.find('=');
    std::string_view k = eq == std::string::npos ? std::string_view(e) : std::string_view(e).substr(0, eq);
    if (k == name) {
      e = entry;
      return;
    }
  }
  env.push_back(std::move(entry));
}

// ============================================================ ImageConfig

Platform ImageConfig::platform() const {
  return Platform{os, architecture, variant, os_version, os_features};
}

void ImageConfig::set_platform(const Platform& p) {
  os = p.os;
  architecture = p.architecture;
  variant = p.variant;
  os_version = p.os_version;
  os_features = p.os_features;
}

Expected<ImageConfig> ParseImageConfig(std::string_view json) {
  KILN_ASSIGN_OR_RETURN(Json j, ParseStrict(json, "image config", kMaxDocumentBytes));
  Reader r("image config");
  ImageConfig c;
  if (!r.RequireObject(j, ""))
    return r.TakeError();
  c.created = r.Str(j, "created", "");
  c.author = r.Str(j, "author", "");
  c.architecture = r.Str(j, "architecture", "");
  c.os = r.Str(j, "os", "");
  c.variant = r.Str(j, "variant", "");
  c.os_version = r.Str(j, "os.version", "");
  c.os_features = r.StrList(j, "os.features", "").value_or(std::vector<std::string>{});
  if (const Json* cfg = r.Field(j, "config"); cfg && r.RequireObject(*cfg, "config")) {
    ContainerConfig& cc = c.config;
    const std::string p = "config";
    cc.user = r.Str(*cfg, "User", p);
    cc.exposed_ports = r.KeySet(*cfg, "ExposedPorts", p);
    cc.env = r.StrList(*cfg, "Env", p).value_or(std::vector<std::string>{});
    cc.entrypoint = r.StrList(*cfg, "Entrypoint", p);
    cc.cmd = r.StrList(*cfg, "Cmd", p);
    cc.volumes = r.KeySet(*cfg, "Volumes", p);
    cc.working_dir = r.Str(*cfg, "WorkingDir", p);
    cc.labels = r.StrMap(*cfg, "Labels", p);
    cc.stop_signal = r.Str(*cfg, "StopSignal", p);
    cc.args_escaped = r.Bool(*cfg, "ArgsEscaped", p);
    cc.on_build = r.StrList(*cfg, "OnBuild", p).value_or(std::vector<std::string>{});
    cc.shell = r.StrList(*cfg, "Shell", p).value_or(std::vector<std::string>{});
    if (const Json* hc = r.Field(*cfg, "Healthcheck"); hc && r.RequireObject(*hc, "config.Healthcheck")) {
      HealthConfig h;
      const std::string hp = "config.Healthcheck";
      h.test = r.StrList(*hc, "Test", hp).value_or(std::vector<std::string>{});
      h.interval = r.Int(*hc, "Interval", hp);
      h.timeout = r.Int(*hc, "Timeout", hp);
      h.start_period = r.Int(*hc, "StartPeriod", hp);
      h.start_interval = r.Int(*hc, "StartInterval", hp);
      int64_t retries = r.Int(*hc, "Retries", hp);
      if (retries < 0 || retries > INT32_MAX)
        r.Fail(hp + ".Retries", "out of range");
      h.retries = static_cast<int>(retries);
      cc.healthcheck = std::move(h);
    }
  }
  if (const Json* rootfs = r.Field(j, "rootfs"); rootfs && r.RequireObject(*rootfs, "rootfs")) {
    std::string type = r.Str(*rootfs, "type", "rootfs");
    if (r.ok() && type != "layers")
      r.Fail("rootfs.type", "expected \"layers\", got \"" + type + "\"");
    if (const Json* ids = r.Field(*rootfs, "diff_ids")) {
      if (!ids->is_array()) {
        r.Fail("rootfs.diff_ids", "expected an array");
      } else {
        for (size_t i = 0; i < ids->size() && r.ok(); ++i) {
          const Json& e = (*ids)[i];
          std::string path = "rootfs.diff_ids[" + std::to_string(i) + "]";
          if (!e.is_string()) {
            r.Fail(path, "expected a digest string");
            break;
          }
          auto d = Digest::Parse(e.get<std::string>());
          if (!d) {
            r.Fail(path, d.error().message());
            break;
          }
          c.diff_ids.push_back(*d);
        }
      }
    }
  } else if (r.ok()) {
    r.Fail("rootfs", "missing");
  }
  if (const Json* hist = r.Field(j, "history")) {
    if (!hist->is_array()) {
      r.Fail("history", "expected an array");
    } else {
      for (size_t i = 0; i < hist->size() && r.ok(); ++i) {
        std::string path = "history[" + std::to_string(i) + "]";
        const Json& e = (*hist)[i];
        if (!r.RequireObject(e, path))
          break;
        HistoryEntry h;
        h.created = r.Str(e, "created", path);
        h.created_by = r.Str(e, "created_by", path);
        h.author = r.Str(e, "author", path);
        h.comment = r.Str(e, "comment", path);
        h.empty_layer = r.Bool(e, "empty_layer", path);
        c.history.push_back(std::move(h));
      }
    }
  }
  if (!r.ok())
    return r.TakeError();
  if (c.os.empty() || c.architecture.empty())
    return Error(Errc::kCorrupt, "image config: os and architecture are required");
  return c;
}

std::string ToJson(const ImageConfig& c) {
  Json j = Json::object();
  if (!c.created.empty())
    j["created"] = c.created;
  if (!c.author.empty())
    j["author"] = c.author;
  j["architecture"] = c.architecture;
  j["os"] = c.os;
  if (!c.variant.empty())
    j["variant"] = c.variant;
  if (!c.os_version.empty())
    j["os.version"] = c.os_version;
  if (!c.os_features.empty())
    j["os.features"] = c.os_features;

  const ContainerConfig& cc = c.config;
  Json cfg = Json::object();
  if (!cc.user.empty())
    cfg["User"] = cc.user;
  if (!cc.exposed_ports.empty())
    cfg["ExposedPorts"] = SetOfKeys(SortedUnique(cc.exposed_ports));
  if (!cc.env.empty())
    cfg["Env"] = cc.env;
  if (cc.entrypoint)
    cfg["Entrypoint"] = *cc.entrypoint;
  if (cc.cmd)
    cfg["Cmd"] = *cc.cmd;
  if (!cc.volumes.empty())
    cfg["Volumes"] = SetOfKeys(SortedUnique(cc.volumes));
  if (!cc.working_dir.empty())
    cfg["WorkingDir"] = cc.working_dir;
  if (!cc.labels.empty())
    cfg["Labels"] = cc.labels;
  if (!cc.stop_signal.empty())
    cfg["StopSignal"] = cc.stop_signal;
  if (cc.args_escaped)
    cfg["ArgsEscaped"] = true;
  if (cc.healthcheck) {
    const HealthConfig& h = *cc.healthcheck;
    Json hj = Json::object();
    hj["Test"] = h.test;
    if (h.interval)
      hj["Interval"] = h.interval;
    if (h.timeout)
      hj["Timeout"] = h.timeout;
    if (h.start_period)
      hj["StartPeriod"] = h.start_period;
    if (h.start_interval)
      hj["StartInterval"] = h.start_interval;
    if (h.retries)
      hj["Retries"] = h.retries;
    cfg["Healthcheck"] = std::move(hj);
  }
  if (!cc.on_build.empty())
    cfg["OnBuild"] = cc.on_build;
  if (!cc.shell.empty())
    cfg["Shell"] = cc.shell;
  j["config"] = std::move(cfg);

  Json rootfs = Json::object();
  rootfs["type"] = "layers";
  Json ids = Json::array();
  for (const auto& d : c.diff_ids)
    ids.push_back(d.str());
  rootfs["diff_ids"] = std::move(ids);
  j["rootfs"] = std::move(rootfs);

  if (!c.history.empty()) {
    Json hist = Json::array();
    for (const auto& h : c.history) {
      Json e = Json::object();
      if (!h.created.empty())
        e["created"] = h.created;
      if (!h.created_by.empty())
        e["created_by"] = h.created_by;
      if (!h.author.empty())
        e["author"] = h.author;
      if (!h.comment.empty())
        e["comment"] = h.comment;
      if (h.empty_layer)
        e["empty_layer"] = true;
      hist.push_back(std::move(e));
    }
    j["history"] = std::move(hist);
  }
  return Dump(j);
}

// ============================================================ Manifest / Index

namespace {

void ReadCommon(Reader& r, const Json& j, int* schema_version, std::string* artifact_type,
                std::optional<Descriptor>* subject, std::map<std::string, std::string>* annotations) {
  bool present = false;
  int64_t v = r.Int(j, "schemaVersion", "", &present);
  if (r.ok() && !present)
    r.Fail("schemaVersion", "missing");
  if (r.ok() && v != 2)
    r.Fail("schemaVersion", "unsupported schema version " + std::to_string(v));
  *schema_version = static_cast<int>(v);
  *artifact_type = r.Str(j, "artifactType", "");
  if (const Json* s = r.Field(j, "subject"))
    *subject = ReadDescriptor(r, *s, "subject");
  *annotations = r.StrMap(j, "annotations", "");
}

/// A manifest's "layers" or an index's "manifests": required, an array of
/// descriptors.
std::vector<Descriptor> ReadDescriptors(Reader& r, const Json& j, const std::string& key) {
  std::vector<Descriptor> out;
  const Json* list = r.Field(j, key);
  if (!list) {
    if (r.ok())
      r.Fail(key, "missing");
  } else if (!list->is_array()) {
    r.Fail(key, "expected an array");
  } else {
    for (size_t i = 0; i < list->size() && r.ok(); ++i)
      out.push_back(ReadDescriptor(r, (*list)[i], key + "[" + std::to_string(i) + "]"));
  }
  return out;
}

/// What a manifest and an index write alike, with their descriptors under
/// `key`.
template <typename Document>
Json WriteDocument(const Document& d, const char* key, const std::vector<Descriptor>& descriptors) {
  Json j = Json::object();
  j["schemaVersion"] = d.schema_version;
  j["mediaType"] = d.media_type;
  if (!d.artifact_type.empty())
    j["artifactType"] = d.artifact_type;
  Json list = Json::array();
  for (const auto& desc : descriptors)
    list.push_back(WriteDescriptor(desc));
  j[key] = std::move(list);
  if (d.subject)
    j["subject"] = WriteDescriptor(*d.subject);
  if (!d.annotations.empty())
    j["annotations"] = d.annotations;
  return j;
}

}  // namespace

Expected<std::string> DetectManifestMediaType(std::string_view json) {
  KILN_ASSIGN_OR_RETURN(Json j, ParseStrict(json, "manifest", kMaxDocumentBytes));
  if (!j.is_object())
    return Error(Errc::kCorrupt, "manifest: expected an object");
  bool has_layers = j.contains("layers");
  bool has_manifests = j.contains("manifests");
  if (has_layers && has_manifests)
    return Error(Errc::kCorrupt, "manifest: ambiguous document with both \"layers\" and \"manifests\"");
  std::string mt;
  if (auto it = j.find("mediaType"); it != j.end() && it->is_string())
    mt = it->get<std::string>();
  if (mt.empty()) {
    if (has_manifests)
      return std::string(kMediaTypeOciIndex);
    if (has_layers || j.contains("config"))
      return std::string(kMediaTypeOciManifest);
    return Error(Errc::kCorrupt, "manifest: neither an image manifest nor an index");
  }
  if (IsManifestMediaType(mt) && has_manifests)
    return Error(Errc::kCorrupt, "manifest: media type " + mt + " with \"manifests\"");
  if (IsIndexMediaType(mt) && has_layers)
    return Error(Errc::kCorrupt, "manifest: media type " + mt + " with \"layers\"");
  return mt;
}

Expected<Manifest> ParseManifest(std::string_view json) {
  KILN_ASSIGN_OR_RETURN(Json j, ParseStrict(json, "manifest", kMaxDocumentBytes));
  Reader r("manifest");
  Manifest m;
  if (!r.RequireObject(j, ""))
    return r.TakeError();
  if (j.contains("manifests"))
    return Error(Errc::kCorrupt, "manifest: has \"manifests\": this is an index, not an image manifest");
  ReadCommon(r, j, &m.schema_version, &m.artifact_type, &m.subject, &m.annotations);
  m.media_type = r.Str(j, "mediaType", "");
  if (m.media_type.empty())
    m.media_type = std::string(kMediaTypeOciManifest);
  if (r.ok() && !IsManifestMediaType(m.media_type))
    r.Fail("mediaType", "not an image manifest: \"" + m.media_type + "\"");
  if (const Json* cfg = r.Field(j, "config"))
    m.config = ReadDescriptor(r, *cfg, "config");
  else if (r.ok())
    r.Fail("config", "missing");
  m.layers = ReadDescriptors(r, j, "layers");
  if (!r.ok())
    return r.TakeError();
  return m;
}

std::string ToJson(const Manifest& m) {
  Json j = WriteDocument(m, "layers", m.layers);
  j["config"] = WriteDescriptor(m.config);
  return Dump(j);
}

Expected<Index> ParseIndex(std::string_view json) {
  KILN_ASSIGN_OR_RETURN(Json j, ParseStrict(json, "index", kMaxDocumentBytes));
  Reader r("index");
  Index x;
  if (!r.RequireObject(j, ""))
    return r.TakeError();
  if (j.contains("layers") || j.contains("config"))
    return Error(Errc::kCorrupt, "index: has \"layers\" or \"config\": this is an image manifest, not an index");
  ReadCommon(r, j, &x.schema_version, &x.artifact_type, &x.subject, &x.annotations);
  x.media_type = r.Str(j, "mediaType", "");
  if (x.media_type.empty())
    x.media_type = std::string(kMediaTypeOciIndex);
  if (r.ok() && !IsIndexMediaType(x.media_type))
    r.Fail("mediaType", "not an index: \"" + x.media_type + "\"");
  x.manifests = ReadDescriptors(r, j, "manifests");
  if (!r.ok())
    return r.TakeError();
  return x;
}

std::string ToJson(const Index& x) { return Dump(WriteDocument(x, "manifests", x.manifests)); }

Expected<Descriptor> ParseDescriptor(std::string_view json) {
  KILN_ASSIGN_OR_RETURN(Json j, ParseStrict(json, "descriptor", kMaxDocumentBytes));
  Reader r("descriptor");
  Descriptor d = ReadDescriptor(r, j, "");
  if (!r.ok())
    return r.TakeError();
  return d;
}

std::string ToJson(const Descriptor& d) { return Dump(WriteDescriptor(d)); }

Descriptor DescriptorFor(std::string_view media_type, std::string_view data) {
  Descriptor d;
  d.media_type = std::string(media_type);
  d.digest = Digest::Of(data);
  d.size = static_cast<int64_t>(data.size());
  return d;
}

Digest ChainId(std::span<const Digest> diff_ids) {
  if (diff_ids.empty())
    return {};
  Digest chain = diff_ids[0];
  for (size_t i = 1; i < diff_ids.size(); ++i)
    chain = Digest::Of(chain.str() + " " + diff_ids[i].str());
  return chain;
}

// ============================================================ times

std::string FormatRfc3339(int64_t seconds) {
  time_t t = static_cast<time_t>(seconds);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string NowRfc3339() {
  if (const char* sde = std::getenv("SOURCE_DATE_EPOCH"); sde && *sde) {
    char* end = nullptr;
    long long v = std::strtoll(sde, &end, 10);
    if (end && *end == '\0' && v >= 0)
      return FormatRfc3339(v);
  }
  return FormatRfc3339(static_cast<int64_t>(std::time(nullptr)));
}

std::optional<int64_t> ParseRfc3339(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)
  auto num = [&](size_t pos, size_t len, int* out) {
    if (pos + len > s.size())
      return false;
    int v = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i])))
        return false;
      v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
  };
  struct tm tm = {};
  int y, mo, d, h, mi, sec;
  if (s.size() < 20 || !num(0, 4, &y) || s[4] != '-' || !num(5, 2, &mo) || s[7] != '-' ||
      !num(8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !num(11, 2, &h) ||
      s[13] != ':' || !num(14, 2, &mi) || s[16] != ':' || !num(17, 2, &sec))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
    return std::nullopt;
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos])))
      ++pos, ++digits;
    if (digits == 0)
      return std::nullopt;
  }
  int offset = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!num(pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !num(pos + 4, 2, &om))
      return std::nullopt;
    offset = (oh * 60 + om) * 60 * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size())
    return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  return static_cast<int64_t>(timegm(&tm)) - offset;
}

}  // namespace kiln
