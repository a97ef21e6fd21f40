// The pure parts of kiln farm (include/kiln/farm.h): node URLs, ssh command
// lines, farms.json, scheduling, job names and the index.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "kiln/farm.h"
#include "kiln/fs.h"

namespace kiln::farm {
namespace {

TEST(FarmUrl, Parses) {
  auto u = ParseNodeUrl("ssh://builder@10.0.0.5:2222");
  ASSERT_TRUE(u) << u.error().message();
  EXPECT_EQ(u->user, "builder");
  EXPECT_EQ(u->host, "10.0.0.5");
  EXPECT_EQ(u->port, 2222);
  u = ParseNodeUrl("ssh://arm-box");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->user, "");
  EXPECT_EQ(u->host, "arm-box");
  EXPECT_EQ(u->port, 0);
  u = ParseNodeUrl("ssh://me@[::1]:22");
  ASSERT_TRUE(u) << u.error().message();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 22);
}

TEST(FarmUrl, RejectsWhatSshWouldMisread) {
  for (const char* bad : {"builder@host", "tcp://host", "ssh://", "ssh://u@", "ssh://@host", "ssh://host:0",
                          "ssh://host:70000", "ssh://host:22x", "ssh://host/run/podman.sock", "ssh://-oProxyCommand=x",
                          "ssh://ho st", "ssh://[::1", "ssh://host?x=1"}) {
    auto u = ParseNodeUrl(bad);
    EXPECT_FALSE(u) << bad;
    if (!u) {
      EXPECT_EQ(u.error().code(), Errc::kInvalidInput);
      EXPECT_NE(u.error().message().find("ssh://[USER@]HOST[:PORT]"), std::string::npos) << u.error().message();
    }
  }
}

TEST(FarmSsh, ArgvEndsOptionsBeforeTheHost) {
  Node n;
  n.url = "ssh://b@127.0.0.1:2201";
  n.identity = "/k/id";
  n.ssh_options = {"UserKnownHostsFile=/k/known"};
  auto argv = SshArgv(n, "kiln info");
  std::vector<std::string> want = {"ssh", "-o", "BatchMode=yes", "-T", "-o", "UserKnownHostsFile=/k/known",
                                   "-i", "/k/id", "-p", "2201", "--", "b@127.0.0.1", "kiln info"};
  EXPECT_EQ(argv, want);
}

TEST(FarmConfig, RoundTripAndDefaults) {
  char tmpl[] = "/tmp/farm-test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/sub/farms.json";
  auto empty = LoadConfig(path);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->farms.empty());
  Config c;
  c.default_farm = "f1";
  c.farms.push_back({"f1", {{"ssh://a@h1", "/id", "/opt/kiln", {"Port=1"}}, {"ssh://h2", "", "kiln", {}}}});
  ASSERT_TRUE(SaveConfig(path, c));
  auto back = LoadConfig(path);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->default_farm, "f1");
  ASSERT_EQ(back->farms.size(), 1u);
  ASSERT_EQ(back->farms[0].nodes.size(), 2u);
  EXPECT_EQ(back->farms[0].nodes[0].identity, "/id");
  EXPECT_EQ(back->farms[0].nodes[0].kiln, "/opt/kiln");
  EXPECT_EQ(back->farms[0].nodes[0].ssh_options, std::vector<std::string>{"Port=1"});
  EXPECT_EQ(back->farms[0].nodes[1].kiln, "kiln");
  ASSERT_NE(back->Find("f1"), nullptr);
  EXPECT_EQ(back->Find("nope"), nullptr);
  // Malformed files are named, not ignored.
  ASSERT_TRUE(WriteFileAtomic(path, "{\"farms\": [{\"nodes\": []}]}"));
  auto bad = LoadConfig(path);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find(path), std::string::npos);
  ASSERT_TRUE(WriteFileAtomic(path, "{\"farms\": [{\"name\": \"x\", \"nodes\": [{\"url\": \"http://h\"}]}]}"));
  bad = LoadConfig(path);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("farm x"), std::string::npos) << bad.error().message();
  ASSERT_TRUE(RemoveAll(tmpl));
}

NodeInfo Info(std::vector<std::string> native, std::vector<std::string> emulated) {
  return {std::move(native), std::move(emulated)};
}

TEST(FarmNodeInfo, FromKilnInfo) {
  auto info = ParseNodeInfo(R"({"host": {}, "platforms": [
      {"native": true, "platform": "linux/amd64"},
      {"native": false, "platform": "linux/arm64", "emulator": {"binfmt_misc": "qemu-aarch64"}}]})");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->native, std::vector<std::string>{"linux/amd64"});
  EXPECT_EQ(info->emulated, std::vector<std::string>{"linux/arm64"});
  EXPECT_FALSE(ParseNodeInfo("kiln: unknown flag"));
  EXPECT_FALSE(ParseNodeInfo(R"({"host": {}})"));
}

TEST(FarmSchedule, NativeFirstThenLeastLoaded) {
  std::vector<NodeInfo> nodes = {Info({"linux/amd64"}, {"linux/arm64"}), Info({"linux/amd64"}, {"linux/arm64"}),
                                 Info({"linux/arm64"}, {})};
  auto plan = Schedule({"linux/amd64", "linux/arm64/v8", "linux/amd64"}, nodes, {"a", "b", "c"});
  ASSERT_TRUE(plan) << plan.error().message();
  ASSERT_EQ(plan->size(), 3u);
  EXPECT_EQ((*plan)[0].node, 0u);
  EXPECT_TRUE((*plan)[0].native);
  EXPECT_EQ((*plan)[1].node, 2u);  // the native arm64 node beats emulation
  EXPECT_TRUE((*plan)[1].native);
  EXPECT_EQ((*plan)[1].platform, "linux/arm64/v8");
  EXPECT_EQ((*plan)[2].node, 1u);  // the second amd64 build goes to the idle node
}

TEST(FarmSchedule, EmulationWhenNoNodeIsNativeSpreadOverNodes) {
  std::vector<NodeInfo> nodes = {Info({"linux/amd64"}, {"linux/arm64"}), Info({"linux/amd64"}, {"linux/arm64"})};
  auto plan = Schedule({"linux/amd64", "linux/arm64"}, nodes, {"a", "b"});
  ASSERT_TRUE(plan);
  EXPECT_EQ((*plan)[0].node, 0u);
  EXPECT_EQ((*plan)[1].node, 1u);
  EXPECT_FALSE((*plan)[1].native);
}

TEST(FarmSchedule, NoNodeNamesWhatEachOffers) {
  auto plan = Schedule({"linux/s390x"}, {Info({"linux/amd64"}, {"linux/arm64"})}, {"ssh://a@h"});
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code(), Errc::kInvalidInput);
  EXPECT_NE(plan.error().message().find("linux/s390x"), std::string::npos);
  EXPECT_NE(plan.error().message().find("ssh://a@h: linux/amd64, linux/arm64 (emulated)"), std::string::npos)
      << plan.error().message();
}

TEST(FarmJob, NameIsAHashOfEveryInput) {
  JobInputs in{Digest::Of("ctx"), "Containerfile", "linux/amd64", "reg/app:1", {"A=1"}, {"reg/cache"}, "reg/cache"};
  std::string name = JobName(in);
  EXPECT_EQ(name.rfind("kiln-farm-", 0), 0u);
  EXPECT_EQ(name.size(), std::string("kiln-farm-").size() + 16);
  EXPECT_EQ(JobName(in), name);  // a retry has the same name
  auto differs = [&](auto change) {
    JobInputs c = in;
    change(c);
    return JobName(c) != name;
  };
  EXPECT_TRUE(differs([](JobInputs& c) { c.context = Digest::Of("ctx2"); }));
  EXPECT_TRUE(differs([](JobInputs& c) { c.platform = "linux/arm64"; }));
  EXPECT_TRUE(differs([](JobInputs& c) { c.build_args = {"A=2"}; }));
  EXPECT_TRUE(differs([](JobInputs& c) { c.build_args = {"A=1", ""}; }));
  EXPECT_TRUE(differs([](JobInputs& c) { c.cache_to = ""; }));
  EXPECT_TRUE(differs([](JobInputs& c) { c.image = "reg/app:2"; }));
  EXPECT_TRUE(differs([](JobInputs& c) { c.builder = "reg/kiln:1"; }));  // a Kubernetes farm's kiln image
}

TEST(FarmKube, DriverOpts) {
  KubeSettings k;
  ASSERT_TRUE(ApplyDriverOpt(k, "namespace=builds"));
  ASSERT_TRUE(ApplyDriverOpt(k, "image=reg/kiln:1"));
  ASSERT_TRUE(ApplyDriverOpt(k, "nodeselector=pool=build;disk=ssd"));
  ASSERT_TRUE(ApplyDriverOpt(k, "secret=auth"));
  EXPECT_EQ(k.namespace_name, "builds");
  EXPECT_EQ(k.image, "reg/kiln:1");
  EXPECT_EQ(k.node_selector, (std::vector<std::string>{"pool=build", "disk=ssd"}));
  EXPECT_EQ(k.registry_secret, "auth");
  for (const char* bad : {"replicas=2", "image", "image=", "nodeselector=pool", "nodeselector=kubernetes.io/arch=arm64",
                          "nodeselector=a=b;;c=d"}) {
    auto s = ApplyDriverOpt(k, bad);
    ASSERT_FALSE(s) << bad;
    EXPECT_EQ(s.error().code(), Errc::kInvalidInput);
    EXPECT_NE(s.error().message().find(bad), std::string::npos) << s.error().message();
  }
}

TEST(FarmKube, ConfigRoundTrip) {
  char tmpl[] = "/tmp/farm-test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/farms.json";
  Config c;
  Farm f{"k", {}};
  f.driver = "kubernetes";
  f.kube.image = "reg/kiln:1";
  f.kube.namespace_name = "ns";
  f.kube.node_selector = {"pool=build"};
  f.kube.kubeconfig = "/kc";
  f.kube.context = "ctx";
  c.farms.push_back(f);
  c.farms.push_back({"s", {{"ssh://h", "", "kiln", {}}}});
  ASSERT_TRUE(SaveConfig(path, c));
  auto back = LoadConfig(path);
  ASSERT_TRUE(back) << back.error().message();
  ASSERT_EQ(back->farms.size(), 2u);
  EXPECT_EQ(back->farms[0].driver, "kubernetes");
  EXPECT_EQ(back->farms[0].kube.image, "reg/kiln:1");
  EXPECT_EQ(back->farms[0].kube.namespace_name, "ns");
  EXPECT_EQ(back->farms[0].kube.node_selector, std::vector<std::string>{"pool=build"});
  EXPECT_EQ(back->farms[0].kube.kubeconfig, "/kc");
  EXPECT_EQ(back->farms[0].kube.context, "ctx");
  EXPECT_EQ(back->farms[1].driver, "ssh");
  ASSERT_TRUE(WriteFileAtomic(path, "{\"farms\": [{\"name\": \"x\", \"driver\": \"nomad\"}]}"));
  auto bad = LoadConfig(path);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("unknown driver nomad"), std::string::npos) << bad.error().message();
  ASSERT_TRUE(RemoveAll(tmpl));
}

TEST(FarmCache, OneTagPerPlatform) {
  EXPECT_EQ(PlatformCacheRef("reg:5000/team/cache", "linux/arm64"), "reg:5000/team/cache:linux-arm64");
  EXPECT_EQ(PlatformCacheRef("reg:5000/team/cache:main", "linux/arm/v7"), "reg:5000/team/cache:main-linux-arm-v7");
  EXPECT_EQ(PlatformCacheRef("cache", "linux/amd64"), "cache:linux-amd64");
  std::string pinned = "reg/cache@" + Digest::Of("x").str();
  EXPECT_EQ(PlatformCacheRef(pinned, "linux/amd64"), pinned);
}

TEST(FarmIndex, OciIndexWithPlatforms) {
  std::vector<PlatformImage> images = {
      {"linux/amd64", "application/vnd.oci.image.manifest.v1+json", Digest::Of("a"), 501},
      {"linux/arm64/v8", "application/vnd.oci.image.manifest.v1+json", Digest::Of("b"), 502}};
  std::string body = IndexJson(images);
  EXPECT_EQ(IndexJson(images), body);
  auto j = nlohmann::json::parse(body);
  EXPECT_EQ(j["schemaVersion"], 2);
  EXPECT_EQ(j["mediaType"], "application/vnd.oci.image.index.v1+json");
  ASSERT_EQ(j["manifests"].size(), 2u);
  EXPECT_EQ(j["manifests"][0]["digest"], Digest::Of("a").str());
  EXPECT_EQ(j["manifests"][0]["size"], 501);
  EXPECT_EQ(j["manifests"][0]["platform"], nlohmann::json({{"os", "linux"}, {"architecture", "amd64"}}));
  EXPECT_EQ(j["manifests"][1]["platform"]["variant"], "v8");
}

}  // namespace
}  // namespace kiln::farm
