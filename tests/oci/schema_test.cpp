// Validates every document kind kiln emits against the OCI image-spec JSON
// schemas in ../shared/conformance/oci-image-spec/schema, with a small
// validator for the draft-04 subset those schemas use ($ref, type,
// properties, patternProperties, required, items, minItems, minimum,
// maximum, enum, pattern, oneOf, format date-time).
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kiln/fs.h"
#include "kiln/oci.h"
#include "support/testdata.h"

namespace kiln {
namespace {

using Json = nlohmann::json;

class SchemaSet {
 public:
  explicit SchemaSet(std::string dir) : dir_(std::move(dir)) {}

  const Json& File(const std::string& name) {
    auto it = files_.find(name);
    if (it != files_.end())
      return it->second;
    auto text = ReadFile(JoinPath(dir_, name));
    Json j = text ? Json::parse(*text) : Json();
    return files_.emplace(name, std::move(j)).first->second;
  }

  /// Appends problems ("path: why") to `errs`.
  void Validate(const Json& schema, const std::string& file, const Json& doc, const std::string& path,
                std::vector<std::string>& errs) {
    if (schema.contains("$ref")) {
      std::string ref = schema["$ref"];
      std::string target_file = file;
      std::string pointer;
      auto hash = ref.find('#');
      if (hash != 0)
        target_file = ref.substr(0, hash);
      if (hash != std::string::npos)
        pointer = ref.substr(hash + 1);
      const Json& root = File(target_file);
      const Json& sub = pointer.empty() ? root : root.at(Json::json_pointer(pointer));
      Validate(sub, target_file, doc, path, errs);
      return;
    }
    if (schema.contains("oneOf")) {
      int matched = 0;
      for (const auto& alt : schema["oneOf"]) {
        std::vector<std::string> sub;
        Validate(alt, file, doc, path, sub);
        if (sub.empty())
          ++matched;
      }
      if (matched != 1)
        errs.push_back(path + ": matches " + std::to_string(matched) + " of oneOf");
    }
    if (schema.contains("type") && !TypeOk(schema["type"], doc)) {
      errs.push_back(path + ": expected type " + schema["type"].dump() + ", got " + doc.dump().substr(0, 80));
      return;
    }
    if (schema.contains("enum")) {
      bool found = false;
      for (const auto& e : schema["enum"])
        found = found || e == doc;
      if (!found)
        errs.push_back(path + ": not in enum");
    }
    if (schema.contains("pattern") && doc.is_string() &&
        !std::regex_search(doc.get<std::string>(), std::regex(schema["pattern"].get<std::string>())))
      errs.push_back(path + ": does not match " + schema["pattern"].get<std::string>());
    if (schema.contains("format") && schema["format"] == "date-time" && doc.is_string() &&
        !ParseRfc3339(doc.get<std::string>()))
      errs.push_back(path + ": not a date-time");
    if (schema.contains("minimum") && doc.is_number() && doc.get<double>() < schema["minimum"].get<double>())
      errs.push_back(path + ": below minimum");
    if (schema.contains("maximum") && doc.is_number() && doc.get<double>() > schema["maximum"].get<double>())
      errs.push_back(path + ": above maximum");
    if (doc.is_object()) {
      if (schema.contains("required"))
        for (const auto& r : schema["required"])
          if (!doc.contains(r.get<std::string>()))
            errs.push_back(path + ": missing required " + r.get<std::string>());
      for (auto it = doc.begin(); it != doc.end(); ++it) {
        if (schema.contains("properties") && schema["properties"].contains(it.key()))
          Validate(schema["properties"][it.key()], file, it.value(), path + "." + it.key(), errs);
        if (schema.contains("patternProperties"))
          for (auto pp = schema["patternProperties"].begin(); pp != schema["patternProperties"].end(); ++pp)
            if (std::regex_search(it.key(), std::regex(pp.key())))
              Validate(pp.value(), file, it.value(), path + "." + it.key(), errs);
      }
    }
    if (doc.is_array()) {
      if (schema.contains("minItems") && doc.size() < schema["minItems"].get<size_t>())
        errs.push_back(path + ": fewer than minItems");
      if (schema.contains("items"))
        for (size_t i = 0; i < doc.size(); ++i)
          Validate(schema["items"], file, doc[i], path + "[" + std::to_string(i) + "]", errs);
    }
  }

  std::vector<std::string> ValidateDoc(const std::string& schema_file, const std::string& json) {
    std::vector<std::string> errs;
    Validate(File(schema_file), schema_file, Json::parse(json), "$", errs);
    return errs;
  }

 private:
  static bool TypeOk(const Json& type, const Json& doc) {
    static const std::map<std::string, bool (Json::*)() const noexcept> kChecks = {
        {"object", &Json::is_object},   {"array", &Json::is_array},   {"string", &Json::is_string},
        {"integer", &Json::is_number_integer}, {"number", &Json::is_number}, {"boolean", &Json::is_boolean},
        {"null", &Json::is_null}};
    auto it = kChecks.find(type.get<std::string>());
    return it != kChecks.end() && (doc.*(it->second))();
  }

  std::string dir_;
  std::map<std::string, Json> files_;
};

class SchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string shared = test::SharedDir();
    if (shared.empty() || !PathExists(JoinPath(shared, "conformance/oci-image-spec/schema/config-schema.json")))
      GTEST_SKIP() << "../shared/conformance/oci-image-spec/schema is absent";
    schemas_ = std::make_unique<SchemaSet>(JoinPath(shared, "conformance/oci-image-spec/schema"));
  }
  std::unique_ptr<SchemaSet> schemas_;
};

ImageConfig FullConfig() {
  ImageConfig c;
  c.created = NowRfc3339();
  c.author = "kiln";
  c.set_platform(*Platform::Parse("linux/arm/v7"));
  c.config.user = "nobody";
  c.config.exposed_ports = {"8080/tcp"};
  c.config.env = {"PATH=/bin"};
  c.config.entrypoint = std::vector<std::string>{"/bin/sh"};
  c.config.cmd = std::vector<std::string>{"-c", "echo hi"};
  c.config.volumes = {"/data"};
  c.config.working_dir = "/";
  c.config.labels = {{"a", "b"}};
  c.config.stop_signal = "SIGINT";
  c.config.args_escaped = true;
  c.config.healthcheck = HealthConfig{{"CMD", "true"}, 1, 2, 3, 4, 5};
  c.config.on_build = {"RUN true"};
  c.config.shell = {"/bin/sh", "-c"};
  c.diff_ids = {Digest::Of("layer")};
  c.history = {{NowRfc3339(), "import", "", "imported", false}, {NowRfc3339(), "ENV", "", "", true}};
  return c;
}

TEST_F(SchemaTest, EmittedConfigValidates) {
  auto errs = schemas_->ValidateDoc("config-schema.json", ToJson(FullConfig()));
  EXPECT_TRUE(errs.empty()) << errs.front();
  ImageConfig minimal;
  minimal.set_platform(Platform::Host());
  errs = schemas_->ValidateDoc("config-schema.json", ToJson(minimal));
  EXPECT_TRUE(errs.empty()) << errs.front();
}

TEST_F(SchemaTest, EmittedManifestsValidate) {
  std::string cfg = ToJson(FullConfig());
  Manifest m;
  m.config = DescriptorFor(kMediaTypeOciConfig, cfg);
  m.layers.push_back(DescriptorFor(kMediaTypeOciLayerGzip, "x"));
  m.layers.back().annotations["k"] = "v";
  m.layers.back().urls = {"https://example.com/x"};
  m.annotations[std::string(kAnnotationCreated)] = NowRfc3339();
  m.subject = DescriptorFor(kMediaTypeOciManifest, "{}");
  auto errs = schemas_->ValidateDoc("image-manifest-schema.json", ToJson(m));
  EXPECT_TRUE(errs.empty()) << errs.front();
  m.media_type = std::string(kMediaTypeDockerManifest);
  m.config.media_type = std::string(kMediaTypeDockerConfig);
  m.layers[0].media_type = std::string(kMediaTypeDockerLayerGzip);
  m.subject.reset();
  errs = schemas_->ValidateDoc("image-manifest-schema.json", ToJson(m));
  EXPECT_TRUE(errs.empty()) << errs.front();
  errs = schemas_->ValidateDoc("content-descriptor.json", ToJson(m.config));
  EXPECT_TRUE(errs.empty()) << errs.front();
}

TEST_F(SchemaTest, EmittedIndexValidates) {
  Index x;
  Descriptor d = DescriptorFor(kMediaTypeOciManifest, "m1");
  d.platform = *Platform::Parse("linux/arm64");
  d.platform->os_features = {"f"};
  x.manifests.push_back(d);
  Descriptor named = DescriptorFor(kMediaTypeOciManifest, "m2");
  named.annotations[std::string(kAnnotationRefName)] = "docker.io/library/busybox:latest";
  x.manifests.push_back(named);
  x.annotations["a"] = "b";
  auto errs = schemas_->ValidateDoc("image-index-schema.json", ToJson(x));
  EXPECT_TRUE(errs.empty()) << errs.front();
  errs = schemas_->ValidateDoc("image-layout-schema.json", R"({"imageLayoutVersion":"1.0.0"})");
  EXPECT_TRUE(errs.empty()) << errs.front();
}

TEST_F(SchemaTest, ValidatorCatchesViolations) {
  // The validator must be able to fail: documents that break the schema.
  EXPECT_FALSE(schemas_->ValidateDoc("config-schema.json", R"({"os":"linux","rootfs":{}})").empty());
  EXPECT_FALSE(schemas_->ValidateDoc("config-schema.json",
                                     R"({"os":"linux","architecture":"x","created":"yesterday",)"
                                     R"("rootfs":{"type":"layers","diff_ids":[]}})")
                   .empty());
  EXPECT_FALSE(schemas_->ValidateDoc("image-manifest-schema.json",
                                     R"({"schemaVersion":3,"config":{"mediaType":"a/b","size":1,)"
                                     R"("digest":"sha256:x"},"layers":[]})")
                   .empty());
  EXPECT_FALSE(schemas_->ValidateDoc("image-index-schema.json",
                                     R"({"schemaVersion":2,"manifests":[{"mediaType":"bad type","size":1,)"
                                     R"("digest":"sha256:abc"}]})")
                   .empty());
}

}  // namespace
}  // namespace kiln
