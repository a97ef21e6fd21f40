#include "kiln/oci.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

std::string Hex(char c) { return std::string(64, c); }
std::string Sha(char c) { return "sha256:" + Hex(c); }

ImageConfig SampleConfig() {
  ImageConfig c;
  c.created = "2026-01-02T03:04:05Z";
  c.author = "kiln";
  c.architecture = "arm64";
  c.os = "linux";
  c.variant = "v8";
  c.config.user = "1000:1000";
  c.config.exposed_ports = {"80/tcp", "53/udp"};
  c.config.env = {"PATH=/usr/bin:/bin", "A=b=c"};
  c.config.entrypoint = std::vector<std::string>{"/bin/sh", "-c"};
  c.config.cmd = std::vector<std::string>{};
  c.config.volumes = {"/data"};
  c.config.working_dir = "/work";
  c.config.labels = {{"org.example", "x"}, {"a", "ü"}};
  c.config.stop_signal = "SIGTERM";
  c.config.args_escaped = true;
  c.config.healthcheck = HealthConfig{{"CMD-SHELL", "true"}, 30'000'000'000, 5'000'000'000, 0, 0, 3};
  c.config.on_build = {"RUN echo hi"};
  c.config.shell = {"/bin/bash", "-c"};
  c.diff_ids = {*Digest::Parse(Sha('a')), *Digest::Parse(Sha('b'))};
  c.history = {{"2026-01-02T03:04:05Z", "/bin/sh -c #(nop) ADD file", "", "", false},
               {"2026-01-02T03:04:06Z", "ENV A=b", "me", "c", true}};
  return c;
}

TEST(OciJsonTest, ConfigRoundTripIsCanonical) {
  ImageConfig c = SampleConfig();
  std::string json = ToJson(c);
  auto back = ParseImageConfig(json);
  ASSERT_TRUE(back) << back.error().message();
  // Exposed ports and volumes come back sorted; the rest is identical.
  c.config.exposed_ports = {"53/udp", "80/tcp"};
  EXPECT_EQ(*back, c);
  EXPECT_EQ(ToJson(*back), json);
  // Keys in byte order, compact.
  EXPECT_LT(json.find("\"architecture\""), json.find("\"author\""));
  EXPECT_LT(json.find("\"config\""), json.find("\"created\""));
  EXPECT_NE(json.find("\"Cmd\":[]"), std::string::npos) << "set-but-empty Cmd must survive";
  EXPECT_EQ(json.find("\n"), std::string::npos);
}

TEST(OciJsonTest, NullEntrypointStaysUnset) {
  auto c = ParseImageConfig(
      R"({"architecture":"amd64","os":"linux","config":{"Entrypoint":null,"Cmd":["sh"],"Labels":null},)"
      R"("rootfs":{"type":"layers","diff_ids":[]}})");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_FALSE(c->config.entrypoint);
  ASSERT_TRUE(c->config.cmd);
  EXPECT_EQ(c->config.cmd->at(0), "sh");
}

TEST(OciJsonTest, ConfigErrorsNameTheField) {
  struct Bad {
    const char* json;
    const char* want;
  };
  const Bad cases[] = {
      {R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:../../etc/passwd"]}})",
       "rootfs.diff_ids[0]"},
      {R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:ABC"]}})",
       "rootfs.diff_ids[0]"},
      {R"({"architecture":"amd64","os":"linux","config":{"Env":"x"},"rootfs":{"type":"layers","diff_ids":[]}})",
       "config.Env"},
      {R"({"architecture":"amd64","os":"linux"})", "rootfs"},
      {R"({"architecture":"amd64","os":"linux","rootfs":{"type":"snapshot","diff_ids":[]}})", "rootfs.type"},
      {R"({"os":"linux","rootfs":{"type":"layers","diff_ids":[]}})", "os and architecture"},
      {R"({"architecture":"amd64","architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})",
       "duplicate key \"architecture\""},
      {R"({"architecture":)", "invalid JSON"},
      {"\xef\xbb\xbf{}", "invalid JSON"},
  };
  for (const auto& b : cases) {
    auto r = ParseImageConfig(b.json);
    ASSERT_FALSE(r) << b.json;
    EXPECT_EQ(r.error().code(), Errc::kCorrupt);
    EXPECT_NE(r.error().message().find(b.want), std::string::npos) << b.json << ": " << r.error().message();
  }
}

TEST(OciJsonTest, SizeAndDepthCaps) {
  std::string big = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"author":")" +
                    std::string(kMaxDocumentBytes, 'x') + "\"}";
  auto r = ParseImageConfig(big);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("larger than"), std::string::npos);
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto d = ParseManifest(deep);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message().find("nested deeper"), std::string::npos) << d.error().message();
}

TEST(OciJsonTest, ManifestRoundTripOciAndDocker) {
  Manifest m;
  m.config = Descriptor{std::string(kMediaTypeOciConfig), *Digest::Parse(Sha('c')), 123, {}, {}, {}, {}};
  m.layers.push_back(Descriptor{std::string(kMediaTypeOciLayerGzip), *Digest::Parse(Sha('d')), 456, {},
                                {{"k", "v"}}, {}, {}});
  m.annotations["org.opencontainers.image.created"] = "2026-01-01T00:00:00Z";
  std::string json = ToJson(m);
  auto back = ParseManifest(json);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, m);
  EXPECT_EQ(ToJson(*back), json);
  EXPECT_EQ(*DetectManifestMediaType(json), kMediaTypeOciManifest);

  m.media_type = std::string(kMediaTypeDockerManifest);
  m.config.media_type = std::string(kMediaTypeDockerConfig);
  m.layers[0].media_type = std::string(kMediaTypeDockerLayerGzip);
  auto docker = ParseManifest(ToJson(m));
  ASSERT_TRUE(docker);
  EXPECT_EQ(docker->media_type, kMediaTypeDockerManifest);
}

TEST(OciJsonTest, ManifestRejectsHostileInput) {
  std::string cfg = R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" + Sha('c') +
                    R"(","size":2})";
  struct Bad {
    std::string json;
    const char* want;
  };
  const Bad cases[] = {
      {R"({"schemaVersion":2,)" + cfg + R"(,"layers":[],"manifests":[]})", "index"},
      {R"({"schemaVersion":1,)" + cfg + R"(,"layers":[]})", "schema version"},
      {R"({"schemaVersion":2,)" + cfg + R"(,"layers":[{"mediaType":"a/b","digest":"sha256:../x","size":1}]})",
       "layers[0].digest"},
      {R"({"schemaVersion":2,)" + cfg + R"(,"layers":[{"mediaType":"a/b","digest":")" + Sha('e') +
           R"(","size":-1}]})",
       "layers[0].size"},
      {R"({"schemaVersion":2,)" + cfg + R"(,"layers":[{"mediaType":"a/b","digest":")" + Sha('e') + R"("}]})",
       "layers[0].size: missing"},
      {R"({"schemaVersion":2,)" + cfg + R"(,"layers":[{"mediaType":"a/b","digest":")" + Sha('e') +
           R"(","size":18446744073709551615}]})",
       "out of range"},
      {R"({"schemaVersion":2,)" + cfg + R"(,"layers":[],"layers":[]})", "duplicate key"},
      {R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",)" + cfg + R"(,"layers":[]})",
       "not an image manifest"},
  };
  for (const auto& b : cases) {
    auto r = ParseManifest(b.json);
    ASSERT_FALSE(r) << b.json;
    EXPECT_EQ(r.error().code(), Errc::kCorrupt);
    EXPECT_NE(r.error().message().find(b.want), std::string::npos) << r.error().message();
  }
  auto amb = DetectManifestMediaType(R"({"layers":[],"manifests":[]})");
  ASSERT_FALSE(amb);
  EXPECT_NE(amb.error().message().find("ambiguous"), std::string::npos);
}

TEST(OciJsonTest, IndexAndPlatformSelection) {
  Index x;
  auto add = [&](const char* plat, char c) {
    Descriptor d{std::string(kMediaTypeOciManifest), *Digest::Parse(Sha(c)), 10, {}, {}, {}, {}};
    d.platform = *Platform::Parse(plat);
    x.manifests.push_back(d);
  };
  add("linux/amd64", '1');
  add("linux/arm/v6", '2');
  add("linux/arm/v7", '3');
  add("linux/arm64/v8", '4');
  Descriptor att{std::string(kMediaTypeOciManifest), *Digest::Parse(Sha('5')), 10, {}, {}, {}, {}};
  att.platform = Platform{"unknown", "unknown", "", "", {}};
  x.manifests.push_back(att);
  std::string json = ToJson(x);
  auto back = ParseIndex(json);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, x);
  EXPECT_EQ(ToJson(*back), json);

  EXPECT_EQ(x.SelectPlatform(*Platform::Parse("linux/amd64"))->digest.str(), Sha('1'));
  EXPECT_EQ(x.SelectPlatform(*Platform::Parse("linux/arm64"))->digest.str(), Sha('4'));
  EXPECT_EQ(x.SelectPlatform(*Platform::Parse("linux/arm/v7"))->digest.str(), Sha('3'));
  EXPECT_EQ(x.SelectPlatform(*Platform::Parse("linux/arm/v8"))->digest.str(), Sha('3'));
  EXPECT_EQ(x.SelectPlatform(*Platform::Parse("linux/arm/v6"))->digest.str(), Sha('2'));
  auto miss = x.SelectPlatform(*Platform::Parse("linux/s390x"));
  ASSERT_FALSE(miss);
  EXPECT_EQ(miss.error().code(), Errc::kNotFound);
  EXPECT_NE(miss.error().message().find("linux/arm/v7"), std::string::npos) << miss.error().message();
  EXPECT_FALSE(ParseIndex(R"({"schemaVersion":2,"manifests":[],"layers":[]})"));
}

TEST(PlatformTest, ParseAndNormalise) {
  struct Case {
    const char* in;
    const char* out;
  };
  const Case cases[] = {
      {"linux/amd64", "linux/amd64"},       {"linux/x86_64", "linux/amd64"},
      {"linux/x86-64", "linux/amd64"},      {"linux/aarch64", "linux/arm64"},
      {"linux/arm64/v8", "linux/arm64"},    {"linux/arm64/8", "linux/arm64"},
      {"linux/arm", "linux/arm/v7"},        {"linux/armhf", "linux/arm/v7"},
      {"linux/armel", "linux/arm/v6"},      {"linux/arm/6", "linux/arm/v6"},
      {"linux/i386", "linux/386"},          {"arm64", "linux/arm64"},
      {"LINUX/AMD64", "linux/amd64"},       {"linux/arm64/v9.0", "linux/arm64/v9"},
      {"windows/amd64", "windows/amd64"},   {"linux/riscv64", "linux/riscv64"},
  };
  for (const auto& c : cases) {
    auto p = Platform::Parse(c.in);
    ASSERT_TRUE(p) << c.in << ": " << p.error().message();
    EXPECT_EQ(p->str(), c.out) << c.in;
  }
  for (const char* bad : {"", "linux/", "linux/amd64/v1/x", "plan10/amd64", "linux/mystery", "../x"}) {
    auto p = Platform::Parse(bad);
    ASSERT_FALSE(p) << bad;
    EXPECT_EQ(p.error().code(), Errc::kInvalidInput);
    EXPECT_NE(p.error().message().find("invalid platform \"" + std::string(bad) + "\""), std::string::npos);
  }
  EXPECT_EQ(Platform::Parse("linux")->architecture, Platform::Host().architecture);
  EXPECT_EQ(Platform::Host().os, "linux");
  EXPECT_FALSE(Platform::Host().architecture.empty());
}

TEST(PlatformTest, Matches) {
  auto P = [](const char* s) { return *Platform::Parse(s); };
  EXPECT_TRUE(P("linux/amd64").Matches(P("linux/x86_64")));
  EXPECT_TRUE(P("linux/amd64").Matches(P("linux/386")));
  EXPECT_FALSE(P("linux/386").Matches(P("linux/amd64")));
  EXPECT_TRUE(P("linux/arm64").Matches(Platform{"linux", "arm64", "v8", "", {}}));
  EXPECT_TRUE(P("linux/arm/v8").Matches(P("linux/arm/v7")));
  EXPECT_FALSE(P("linux/arm/v6").Matches(P("linux/arm/v7")));
  EXPECT_FALSE(P("linux/amd64").Matches(P("windows/amd64")));
  EXPECT_FALSE(P("linux/amd64").Matches(P("linux/arm64")));
}

TEST(OciTest, ChainIdAndDescriptors) {
  Digest a = Digest::Of("a"), b = Digest::Of("b"), c = Digest::Of("c");
  std::vector<Digest> one = {a};
  EXPECT_EQ(ChainId(one), a);
  std::vector<Digest> three = {a, b, c};
  Digest ab = Digest::Of(a.str() + " " + b.str());
  EXPECT_EQ(ChainId(three), Digest::Of(ab.str() + " " + c.str()));
  EXPECT_FALSE(ChainId({}).valid());
  Descriptor d = DescriptorFor(kMediaTypeOciEmpty, "{}");
  EXPECT_EQ(d.size, 2);
  EXPECT_EQ(d.digest.str(), "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  auto back = ParseDescriptor(ToJson(d));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, d);
  EXPECT_TRUE(IsLayerMediaType(kMediaTypeDockerLayerGzip));
  EXPECT_TRUE(IsLayerMediaType(kMediaTypeOciLayerZstd));
  EXPECT_FALSE(IsLayerMediaType(kMediaTypeOciConfig));
}

TEST(OciTest, Rfc3339) {
  EXPECT_EQ(FormatRfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(ParseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseRfc3339("2026-01-02T03:04:05.123456789Z"), *ParseRfc3339("2026-01-02T03:04:05Z"));
  EXPECT_EQ(ParseRfc3339("1970-01-01T01:00:00+01:00"), 0);
  EXPECT_FALSE(ParseRfc3339("yesterday"));
  EXPECT_FALSE(ParseRfc3339("2026-13-01T00:00:00Z"));
  ::setenv("SOURCE_DATE_EPOCH", "86400", 1);
  EXPECT_EQ(NowRfc3339(), "1970-01-02T00:00:00Z");
  ::unsetenv("SOURCE_DATE_EPOCH");
}

}  // namespace
}  // namespace kiln
