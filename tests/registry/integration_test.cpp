// Integration tests against a real docker-registry on loopback, in four
// modes (plain HTTP, TLS with a test CA and --cert-dir, htpasswd basic auth,
// Bearer tokens from a test issuer), with skopeo as the independent client,
// plus fault injection through a loopback proxy.
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kiln/digest.h"
#include "kiln/fs.h"
#include "kiln/oci.h"
#include "kiln/registry.h"
#include "registry/harness.h"

namespace kiln::registry {
namespace {

using test::CommandResult;
using test::Fault;
using test::FaultProxy;
using test::RegistryMode;
using test::RegistryServer;

constexpr const char* kUser = "kiln";
constexpr const char* kPassword = "s3cret-pw";

std::string KilnBin() {
  const char* b = std::getenv("KILN_BIN");
  return b ? b : "kiln";
}

// True when the kiln binary has `command` (CLI11 prints the subcommand's
// own usage line for "kiln COMMAND --help").
bool KilnHas(const std::string& command) {
  auto r = test::Run({KilnBin(), command, "--help"});
  return r.exit_code == 0 && r.out.find("Usage: kiln " + command) != std::string::npos;
}

bool HaveTool(const std::string& name) {
  return test::Run({"sh", "-c", "command -v " + name}).exit_code == 0;
}

// A one-layer OCI image built in memory.
struct TestImage {
  std::string layer;  // gzip'd tar
  Digest layer_digest;
  Digest diff_id;
  std::string config;
  Digest config_digest;
  std::string manifest;
  Digest manifest_digest;
};

TestImage MakeImage(const std::string& content, size_t filler_bytes = 0) {
  TestImage img;
  auto dir = TempDir::Create("kiln-img-");
  std::string root = JoinPath(dir->path(), "root");
  EXPECT_TRUE(MakeDirs(JoinPath(root, "etc")));
  EXPECT_TRUE(WriteFileAtomic(JoinPath(root, "etc/hello.txt"), content));
  if (filler_bytes > 0) {
    // Incompressible filler, so the blob really is that large.
    std::string filler(filler_bytes, '\0');
    uint64_t x = 0x9e3779b97f4a7c15ull ^ std::hash<std::string>()(content);
    for (auto& ch : filler) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      ch = static_cast<char>(x);
    }
    EXPECT_TRUE(WriteFileAtomic(JoinPath(root, "filler.bin"), filler));
  }
  auto tar = test::Run({"tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner",
                  "-C", root, "-cf", "-", "."});
  EXPECT_EQ(tar.exit_code, 0) << tar.err;
  auto gz = test::Run({"gzip", "-n", "-c"}, tar.out);
  EXPECT_EQ(gz.exit_code, 0);
  img.layer = gz.out;
  img.layer_digest = Digest::Of(img.layer);
  img.diff_id = Digest::Of(tar.out);
  img.config = nlohmann::json({{"architecture", "amd64"},
                               {"os", "linux"},
                               {"config", {{"Cmd", {"/bin/sh"}}}},
                               {"rootfs", {{"type", "layers"}, {"diff_ids", {img.diff_id.str()}}}}})
                   .dump();
  img.config_digest = Digest::Of(img.config);
  img.manifest = nlohmann::json(
                     {{"schemaVersion", 2},
                      {"mediaType", std::string(kMediaTypeOciManifest)},
                      {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                                  {"digest", img.config_digest.str()},
                                  {"size", img.config.size()}}},
                      {"layers", {{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                                   {"digest", img.layer_digest.str()},
                                   {"size", img.layer.size()}}}}})
                     .dump();
  img.manifest_digest = Digest::Of(img.manifest);
  return img;
}

struct BlobFile {
  TempDir dir = std::move(*TempDir::Create("kiln-blob-"));
  std::string path = JoinPath(dir.path(), "b");
  UniqueFd fd;
  explicit BlobFile(const std::string& data) {
    EXPECT_TRUE(WriteFileAtomic(path, data));
    fd = std::move(*OpenFile(path, O_RDWR));
  }
  BlobFile() { fd = std::move(*OpenFile(path, O_RDWR | O_CREAT, 0600)); }
};

Status PushWithClient(RegistryClient& c, const std::string& repo, const std::string& tag,
                      const TestImage& img) {
  BlobFile layer(img.layer), config(img.config);
  auto l = c.UploadBlob(repo, img.layer_digest, static_cast<int64_t>(img.layer.size()), layer.fd.get());
  if (!l)
    return std::move(l).error();
  auto k = c.UploadBlob(repo, img.config_digest, static_cast<int64_t>(img.config.size()), config.fd.get());
  if (!k)
    return std::move(k).error();
  auto m = c.PutManifest(repo, tag, kMediaTypeOciManifest, img.manifest);
  if (!m)
    return std::move(m).error();
  return Ok();
}

// ------------------------------------------------------------ per-mode suite

class RegistryModeTest : public ::testing::TestWithParam<RegistryMode> {
 protected:
  void SetUp() override {
    if (!HaveTool("skopeo"))
      GTEST_SKIP() << "skopeo is not installed";
    std::string why = server_.Start(GetParam(), kUser, kPassword);
    if (!why.empty())
      GTEST_SKIP() << why;
  }

  bool auth() const {
    return GetParam() == RegistryMode::kHtpasswd || GetParam() == RegistryMode::kToken;
  }

  ClientOptions Options() const {
    ClientOptions o;
    o.authfile = "/nonexistent/kiln-auth.json";
    o.retry_base = std::chrono::milliseconds(50);
    if (GetParam() == RegistryMode::kTls)
      o.cert_dir = server_.cert_dir();
    if (auth())
      o.credentials = Credentials{kUser, kPassword};
    else
      o.credentials = Credentials{};
    return o;
  }

  // skopeo flags for reading (src) or writing (dest) this registry.
  std::vector<std::string> SkopeoFlags(const std::string& side) const {
    std::vector<std::string> f;
    std::string prefix = side.empty() ? "--" : "--" + side + "-";
    if (GetParam() == RegistryMode::kTls)
      f.push_back(prefix + "cert-dir=" + server_.cert_dir());
    else
      f.push_back(prefix + "tls-verify=false");
    if (auth())
      f.push_back(prefix + "creds=" + std::string(kUser) + ":" + kPassword);
    return f;
  }

  std::vector<std::string> KilnTlsFlags() const {
    if (GetParam() == RegistryMode::kTls)
      return {"--cert-dir", server_.cert_dir()};
    return {};
  }

  RegistryServer server_;
};

TEST_P(RegistryModeTest, ClientPushSkopeoReads) {
  auto client = RegistryClient::Create(server_.host(), Options());
  ASSERT_TRUE(client) << client.error().message();
  ASSERT_TRUE((*client)->Ping());
  TestImage img = MakeImage("pushed by kiln\n");
  auto s = PushWithClient(**client, "kiln/app", "v1", img);
  ASSERT_TRUE(s) << s.error().message();

  std::vector<std::string> inspect = {"skopeo", "inspect"};
  for (auto& f : SkopeoFlags(""))
    inspect.push_back(f);
  inspect.push_back("docker://" + server_.host() + "/kiln/app:v1");
  auto r = test::Run(inspect);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["Digest"], img.manifest_digest.str());
  ASSERT_EQ(j["Layers"].size(), 1u);
  EXPECT_EQ(j["Layers"][0], img.layer_digest.str());

  auto out = TempDir::Create("kiln-oci-");
  std::vector<std::string> copy = {"skopeo", "copy", "-q"};
  for (auto& f : SkopeoFlags("src"))
    copy.push_back(f);
  copy.push_back("docker://" + server_.host() + "/kiln/app:v1");
  copy.push_back("oci:" + out->path() + ":v1");
  r = test::Run(copy);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(PathExists(JoinPath(out->path(), "blobs/sha256/" + img.layer_digest.hex())));
  EXPECT_TRUE(PathExists(JoinPath(out->path(), "blobs/sha256/" + img.manifest_digest.hex())));

  // Tags and a HEAD of the manifest.
  auto tags = (*client)->ListTags("kiln/app");
  ASSERT_TRUE(tags) << tags.error().message();
  EXPECT_EQ(*tags, std::vector<std::string>{"v1"});
  auto head = (*client)->HeadManifest("kiln/app", "v1");
  ASSERT_TRUE(head);
  ASSERT_TRUE(head->has_value());
  EXPECT_EQ((*head)->digest, img.manifest_digest);
}

TEST_P(RegistryModeTest, SkopeoPushClientPulls) {
  // An OCI layout made by skopeo from our image, pushed by skopeo.
  TestImage img = MakeImage("pushed by skopeo\n", 200000);
  auto layout = TempDir::Create("kiln-layout-");
  std::string dir = layout->path();
  ASSERT_TRUE(WriteFileAtomic(JoinPath(dir, "oci-layout"), R"({"imageLayoutVersion":"1.0.0"})"));
  ASSERT_TRUE(MakeDirs(JoinPath(dir, "blobs/sha256")));
  for (const auto& [d, data] : std::vector<std::pair<Digest, std::string>>{
           {img.layer_digest, img.layer}, {img.config_digest, img.config}, {img.manifest_digest, img.manifest}})
    ASSERT_TRUE(WriteFileAtomic(JoinPath(dir, "blobs/sha256/" + d.hex()), data));
  ASSERT_TRUE(WriteFileAtomic(
      JoinPath(dir, "index.json"),
      nlohmann::json({{"schemaVersion", 2},
                      {"manifests", {{{"mediaType", std::string(kMediaTypeOciManifest)},
                                      {"digest", img.manifest_digest.str()},
                                      {"size", img.manifest.size()},
                                      {"annotations", {{"org.opencontainers.image.ref.name", "t"}}}}}}})
          .dump()));
  std::vector<std::string> copy = {"skopeo", "copy", "-q"};
  for (auto& f : SkopeoFlags("dest"))
    copy.push_back(f);
  copy.push_back("oci:" + dir + ":t");
  copy.push_back("docker://" + server_.host() + "/other/img:t");
  auto r = test::Run(copy);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  auto client = RegistryClient::Create(server_.host(), Options());
  ASSERT_TRUE(client);
  auto m = (*client)->GetManifest("other/img", "t");
  ASSERT_TRUE(m) << m.error().message();
  auto j = nlohmann::json::parse(m->body);
  ASSERT_EQ(j["layers"].size(), 1u);
  EXPECT_EQ(j["layers"][0]["digest"], img.layer_digest.str()) << "layer digests must survive the round trip";
  BlobFile out;
  auto s = (*client)->FetchBlob("other/img", img.layer_digest, static_cast<int64_t>(img.layer.size()),
                                out.fd.get());
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(*ReadFile(out.path), img.layer);
  auto by_digest = (*client)->GetManifest("other/img", m->digest.str());
  ASSERT_TRUE(by_digest) << by_digest.error().message();
}

TEST_P(RegistryModeTest, KilnLoginLogout) {
  if (!auth())
    GTEST_SKIP() << "login needs an auth mode";
  auto home = TempDir::Create("kiln-login-");
  std::string authfile = JoinPath(home->path(), "auth.json");
  auto bad = test::Run({KilnBin(), "login", "-u", kUser, "--password-stdin", "--authfile", authfile,
                  server_.host()},
                 "wrong-password-xyz\n");
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_NE(bad.err.find("kiln: error: "), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("wrong-password-xyz"), std::string::npos) << "password leaked: " << bad.err;
  EXPECT_FALSE(PathExists(authfile));

  auto good = test::Run({KilnBin(), "login", "-u", kUser, "--password-stdin", "--authfile", authfile,
                   server_.host()},
                  std::string(kPassword) + "\n");
  ASSERT_EQ(good.exit_code, 0) << good.err;
  EXPECT_NE(good.out.find("Login Succeeded"), std::string::npos);
  struct stat st;
  ASSERT_EQ(::stat(authfile.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(good.err.find(kPassword), std::string::npos);

  // The stored credentials work for the client.
  ClientOptions o = Options();
  o.credentials.reset();
  o.authfile = authfile;
  auto client = RegistryClient::Create(server_.host(), o);
  ASSERT_TRUE(client);
  TestImage img = MakeImage("after login\n");
  auto s = PushWithClient(**client, "kiln/login", "1", img);
  ASSERT_TRUE(s) << s.error().message();

  auto out = test::Run({KilnBin(), "logout", "--authfile", authfile, server_.host()});
  EXPECT_EQ(out.exit_code, 0) << out.err;
  auto creds = LookupCredentials(server_.host(), authfile);
  ASSERT_TRUE(creds);
  EXPECT_FALSE(creds->has_value());
  auto again = test::Run({KilnBin(), "logout", "--authfile", authfile, server_.host()});
  EXPECT_NE(again.exit_code, 0);
}

TEST_P(RegistryModeTest, KilnLoginAsUnprivilegedUser) {
  const char* user = std::getenv("KILN_TEST_USER");
  if (!user || !*user)
    GTEST_SKIP() << "KILN_TEST_USER is not set";
  if (!auth())
    GTEST_SKIP() << "login needs an auth mode";
  passwd* pw = ::getpwnam(user);
  ASSERT_NE(pw, nullptr);
  auto home = TempDir::Create("kiln-login-user-");
  ASSERT_EQ(::chown(home->path().c_str(), pw->pw_uid, pw->pw_gid), 0);
  std::string authfile = JoinPath(home->path(), "auth.json");
  auto r = test::Run({"runuser", "-u", user, "--", KilnBin(), "login", "-u", kUser, "--password-stdin",
                "--authfile", authfile, server_.host()},
               std::string(kPassword) + "\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat st;
  ASSERT_EQ(::stat(authfile.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, pw->pw_uid);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_P(RegistryModeTest, WrongCredentialsAreRefused) {
  if (!auth())
    GTEST_SKIP() << "needs an auth mode";
  ClientOptions o = Options();
  o.credentials = Credentials{kUser, "not-the-password"};
  auto client = RegistryClient::Create(server_.host(), o);
  ASSERT_TRUE(client);
  auto s = (*client)->Ping();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Errc::kAuth) << s.error().message();
  EXPECT_EQ(s.error().message().find("not-the-password"), std::string::npos);
  o.credentials = Credentials{};
  auto anon = RegistryClient::Create(server_.host(), o);
  auto m = (*anon)->GetManifest("kiln/app", "v1");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), Errc::kAuth) << m.error().message();
}

TEST_P(RegistryModeTest, TlsNeedsTheCa) {
  if (GetParam() != RegistryMode::kTls)
    GTEST_SKIP() << "TLS mode only";
  ClientOptions o = Options();
  o.cert_dir = "";
  o.max_attempts = 1;
  // 127.0.0.1 is loopback, so kiln may fall back to plain http: that fails
  // against a TLS server too, and the error must say why.
  auto client = RegistryClient::Create(server_.host(), o);
  ASSERT_TRUE(client);
  auto s = (*client)->Ping();
  EXPECT_FALSE(s) << "a certificate from an unknown CA was accepted";
  o.tls_verify = false;
  auto insecure = RegistryClient::Create(server_.host(), o);
  auto base = (*insecure)->BaseUrl();
  ASSERT_TRUE(base) << base.error().message();
  EXPECT_EQ(base->rfind("https://", 0), 0u);
  EXPECT_TRUE((*insecure)->Ping());
}

// Full kiln round trips: kiln import + kiln push, skopeo reads; skopeo
// pushes, kiln pull reads. Needs the store's import/push/pull commands.
TEST_P(RegistryModeTest, KilnPushAndPullRoundTrip) {
  if (!KilnHas("import") || !KilnHas("push") || !KilnHas("pull"))
    GTEST_SKIP() << "kiln import/push/pull are not built yet";
  auto work = TempDir::Create("kiln-rt-");
  ::chmod(work->path().c_str(), 0755);
  std::string rootfs = JoinPath(work->path(), "rootfs");
  ASSERT_TRUE(MakeDirs(JoinPath(rootfs, "etc")));
  ASSERT_TRUE(WriteFileAtomic(JoinPath(rootfs, "etc/os-release"), "NAME=kiln-test\n"));
  std::string tar = JoinPath(work->path(), "rootfs.tar");
  ASSERT_EQ(test::Run({"tar", "-C", rootfs, "-cf", tar, "."}).exit_code, 0);

  const char* test_user = std::getenv("KILN_TEST_USER");
  std::vector<std::string> users = {""};
  if (test_user && *test_user)
    users.push_back(test_user);
  for (const auto& user : users) {
    SCOPED_TRACE(user.empty() ? "as root" : "as " + user);
    std::string store = JoinPath(work->path(), "store-" + (user.empty() ? "root" : user));
    std::string auth_dir = JoinPath(work->path(), "auth-" + (user.empty() ? "root" : user));
    std::string authfile = JoinPath(auth_dir, "auth.json");
    ASSERT_TRUE(MakeDirs(store));
    ASSERT_TRUE(MakeDirs(auth_dir));
    std::vector<std::string> prefix;
    if (!user.empty()) {
      passwd* pw = ::getpwnam(user.c_str());
      ASSERT_NE(pw, nullptr);
      ASSERT_EQ(::chown(store.c_str(), pw->pw_uid, pw->pw_gid), 0);
      ASSERT_EQ(::chown(auth_dir.c_str(), pw->pw_uid, pw->pw_gid), 0);
      prefix = {"runuser", "-u", user, "--"};
    }
    // --authfile (when the registry wants a login) and the TLS flags of push and pull.
    auto add_registry_flags = [&](std::vector<std::string>& argv) {
      if (auth()) {
        argv.push_back("--authfile");
        argv.push_back(authfile);
      }
      for (auto& f : KilnTlsFlags())
        argv.push_back(f);
    };
    auto kiln = [&](std::vector<std::string> args, const std::string& input = "") {
      std::vector<std::string> argv = prefix;
      argv.push_back(KilnBin());
      argv.push_back("--root");
      argv.push_back(store);
      for (auto& a : args)
        argv.push_back(a);
      return test::Run(argv, input);
    };
    if (auth()) {
      auto r = kiln({"login", "-u", kUser, "--password-stdin", "--authfile", authfile, server_.host()},
                    std::string(kPassword) + "\n");
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    std::string name = "localhost/rt-" + (user.empty() ? std::string("root") : user) + ":1";
    auto r = kiln({"import", tar, name});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string dest = server_.host() + "/kiln/rt-" + (user.empty() ? "root" : user) + ":1";
    std::vector<std::string> push = {"push"};
    add_registry_flags(push);
    push.push_back(name);
    push.push_back("docker://" + dest);
    r = kiln(push);
    ASSERT_EQ(r.exit_code, 0) << r.err;

    std::vector<std::string> inspect = {"skopeo", "inspect"};
    for (auto& f : SkopeoFlags(""))
      inspect.push_back(f);
    inspect.push_back("docker://" + dest);
    auto si = test::Run(inspect);
    ASSERT_EQ(si.exit_code, 0) << si.err;
    auto j = nlohmann::json::parse(si.out);
    ASSERT_EQ(j["Layers"].size(), 1u);
    std::string layer = j["Layers"][0];

    // skopeo copies it to another repository; kiln pulls that one into a
    // fresh store and gets the same layer.
    std::vector<std::string> copy = {"skopeo", "copy", "-q"};
    for (auto& f : SkopeoFlags("src"))
      copy.push_back(f);
    for (auto& f : SkopeoFlags("dest"))
      copy.push_back(f);
    copy.push_back("docker://" + dest);
    std::string dest2 = server_.host() + "/kiln/copied-" + (user.empty() ? "root" : user) + ":2";
    copy.push_back("docker://" + dest2);
    auto sc = test::Run(copy);
    ASSERT_EQ(sc.exit_code, 0) << sc.err;

    std::string store2 = store + "-pull";
    ASSERT_TRUE(MakeDirs(store2));
    if (!user.empty()) {
      passwd* pw = ::getpwnam(user.c_str());
      ASSERT_EQ(::chown(store2.c_str(), pw->pw_uid, pw->pw_gid), 0);
    }
    std::vector<std::string> argv = prefix;
    for (std::string a : {KilnBin(), std::string("--root"), store2, std::string("pull")})
      argv.push_back(a);
    add_registry_flags(argv);
    argv.push_back(dest2);
    auto pr = test::Run(argv);
    ASSERT_EQ(pr.exit_code, 0) << pr.err;
    auto d = Digest::Parse(layer);
    ASSERT_TRUE(d);
    EXPECT_TRUE(PathExists(JoinPath(store2, "blobs/sha256/" + d->hex())))
        << "pulled store lacks layer " << layer;
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, RegistryModeTest,
                         ::testing::Values(RegistryMode::kPlain, RegistryMode::kTls,
                                           RegistryMode::kHtpasswd, RegistryMode::kToken),
                         [](const auto& p) {
                           switch (p.param) {
                             case RegistryMode::kPlain: return std::string("PlainHttp");
                             case RegistryMode::kTls: return std::string("Tls");
                             case RegistryMode::kHtpasswd: return std::string("Htpasswd");
                             case RegistryMode::kToken: return std::string("Token");
                           }
                           return std::string("Unknown");
                         });

// ------------------------------------------------------------ faults

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = server_.Start(RegistryMode::kPlain);
    if (!why.empty())
      GTEST_SKIP() << why;
    proxy_ = std::make_unique<FaultProxy>(server_.port());
    img_ = MakeImage("fault test\n", 3 << 20);
    // Seed the registry directly (no faults).
    auto direct = RegistryClient::Create(server_.host(), Options());
    ASSERT_TRUE(direct);
    auto s = PushWithClient(**direct, "fault/img", "1", img_);
    ASSERT_TRUE(s) << s.error().message();
  }

  ClientOptions Options() {
    ClientOptions o;
    o.authfile = "/nonexistent/kiln-auth.json";
    o.credentials = Credentials{};
    o.retry_base = std::chrono::milliseconds(20);
    o.max_retry_after = std::chrono::seconds(2);
    o.idle_timeout_s = 2;
    return o;
  }

  std::unique_ptr<RegistryClient> ViaProxy(ClientOptions o) {
    auto c = RegistryClient::Create(proxy_->host(), std::move(o));
    EXPECT_TRUE(c);
    return std::move(*c);
  }

  Status FetchLayer(RegistryClient& c, BlobFile& out) {
    return c.FetchBlob("fault/img", img_.layer_digest, static_cast<int64_t>(img_.layer.size()), out.fd.get());
  }

  // Fetches the layer through the proxy: it must arrive whole despite the faults.
  void ExpectWholeLayerThroughProxy() {
    auto c = ViaProxy(Options());
    BlobFile out;
    auto s = FetchLayer(*c, out);
    ASSERT_TRUE(s) << s.error().message() << "\n" << Log();
    EXPECT_EQ(Digest::Of(*ReadFile(out.path)), img_.layer_digest);
  }

  std::string Log() {
    std::string s;
    for (const auto& l : proxy_->log())
      s += l + "\n";
    return s;
  }

  RegistryServer server_;
  std::unique_ptr<FaultProxy> proxy_;
  TestImage img_;
};

TEST_F(FaultTest, ResetMidBlobResumes) {
  proxy_->Add({.kind = Fault::kReset, .method = "GET", .path = "/blobs/", .after = 1 << 20});
  auto c = ViaProxy(Options());
  BlobFile out;
  auto s = FetchLayer(*c, out);
  ASSERT_TRUE(s) << s.error().message() << "\n" << Log();
  EXPECT_EQ(*ReadFile(out.path), img_.layer);
  EXPECT_EQ(proxy_->pending(), 0);
}

TEST_F(FaultTest, TruncatedBodyIsRetried) {
  proxy_->Add({.kind = Fault::kTruncate, .method = "GET", .path = "/blobs/", .after = 100000, .times = 2});
  ExpectWholeLayerThroughProxy();
}

TEST_F(FaultTest, CorruptedOnceIsRefetched) {
  proxy_->Add({.kind = Fault::kCorrupt, .method = "GET", .path = "/blobs/"});
  ExpectWholeLayerThroughProxy();
}

TEST_F(FaultTest, AlwaysCorruptedFailsWithDigestMismatch) {
  proxy_->Add({.kind = Fault::kCorrupt, .method = "GET", .path = "/blobs/", .times = 100});
  auto o = Options();
  o.max_attempts = 3;
  auto c = ViaProxy(o);
  BlobFile out;
  auto s = FetchLayer(*c, out);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Errc::kCorrupt);
  EXPECT_NE(s.error().message().find("digest mismatch"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().message().find("http://" + proxy_->host() + "/v2/fault/img/blobs/"), std::string::npos)
      << s.error().message();
}

TEST_F(FaultTest, ServerErrorsAndRateLimitsAreRetried) {
  proxy_->Add({.kind = Fault::kStatus, .method = "GET", .path = "/manifests/", .status = 503, .times = 2});
  proxy_->Add({.kind = Fault::kStatus, .method = "GET", .path = "/blobs/", .status = 429, .retry_after = 1});
  proxy_->Add({.kind = Fault::kStatus, .method = "GET", .path = "/blobs/", .status = 500});
  auto c = ViaProxy(Options());
  auto m = c->GetManifest("fault/img", "1");
  ASSERT_TRUE(m) << m.error().message() << "\n" << Log();
  EXPECT_EQ(m->digest, img_.manifest_digest);
  auto start = std::chrono::steady_clock::now();
  BlobFile out;
  auto s = FetchLayer(*c, out);
  ASSERT_TRUE(s) << s.error().message() << "\n" << Log();
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(950))
      << "Retry-After ignored";
  EXPECT_EQ(proxy_->pending(), 0);
}

TEST_F(FaultTest, PersistentErrorNamesStatusAndUrl) {
  proxy_->Add({.kind = Fault::kStatus, .method = "GET", .path = "/manifests/", .status = 500, .times = 100});
  auto o = Options();
  o.max_attempts = 3;
  auto c = ViaProxy(o);
  auto m = c->GetManifest("fault/img", "1");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("500"), std::string::npos) << m.error().message();
  EXPECT_NE(m.error().message().find("http://" + proxy_->host() + "/v2/fault/img/manifests/1"),
            std::string::npos)
      << m.error().message();
}

TEST_F(FaultTest, SlowResponsesSucceedAndStallsTimeOut) {
  proxy_->Add({.kind = Fault::kSlow, .method = "GET", .path = "/blobs/", .delay_ms = 20});
  auto c = ViaProxy(Options());
  BlobFile out;
  auto s = FetchLayer(*c, out);
  ASSERT_TRUE(s) << s.error().message();
  // A stall longer than the idle timeout: the first attempt is abandoned,
  // the retry succeeds.
  proxy_->Add({.kind = Fault::kSlow, .method = "GET", .path = "/blobs/", .delay_ms = 4000});
  auto start = std::chrono::steady_clock::now();
  BlobFile out2;
  s = FetchLayer(*c, out2);
  ASSERT_TRUE(s) << s.error().message() << "\n" << Log();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  EXPECT_EQ(Digest::Of(*ReadFile(out2.path)), img_.layer_digest);
}

TEST_F(FaultTest, UploadSurvivesResetsAnd503) {
  TestImage other = MakeImage("upload through faults\n", 1 << 20);
  proxy_->Add({.kind = Fault::kStatus, .method = "POST", .path = "/blobs/uploads/", .status = 503});
  proxy_->Add({.kind = Fault::kStatus, .method = "PUT", .path = "/blobs/uploads/", .status = 502});
  proxy_->Add({.kind = Fault::kReset, .method = "PUT", .path = "/manifests/", .after = 0});
  auto c = ViaProxy(Options());
  auto s = PushWithClient(*c, "fault/up", "1", other);
  ASSERT_TRUE(s) << s.error().message() << "\n" << Log();
  auto direct = RegistryClient::Create(server_.host(), Options());
  auto m = (*direct)->GetManifest("fault/up", "1");
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->digest, other.manifest_digest);
}

// kiln pull through the proxy: a blob that always arrives corrupted must
// never appear in the store (docs/security.md H29-H35).
// A pull on a terminal draws a bar per blob (redrawn in place); without one
// it prints plain lines and no escape sequences.
TEST_F(FaultTest, KilnPullShowsBarsOnATerminalAndLinesOtherwise) {
  if (!KilnHas("pull"))
    GTEST_SKIP() << "kiln pull is not built yet";
  if (test::Run({"sh", "-c", "command -v script"}).exit_code != 0)
    GTEST_SKIP() << "script(1) (util-linux) is not installed";
  auto tty_store = TempDir::Create("kiln-progress-");
  std::string cmd = KilnBin() + " --root " + tty_store->path() + " pull " + server_.host() + "/fault/img:1";
  auto tty = test::Run({"env", "TERM=xterm", "script", "-qfec", cmd, "/dev/null"});
  ASSERT_EQ(tty.exit_code, 0) << tty.out << tty.err;
  EXPECT_NE(tty.out.find("Copying blob " + img_.layer_digest.str().substr(0, 19) + " ["), std::string::npos)
      << tty.out;
  EXPECT_NE(tty.out.find("=] "), std::string::npos) << "no full bar: " << tty.out;
  EXPECT_NE(tty.out.find(" done"), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("\x1b["), std::string::npos) << "bars are redrawn with cursor movement";

  auto plain_store = TempDir::Create("kiln-progress-");
  auto plain = test::Run({KilnBin(), "--root", plain_store->path(), "pull", server_.host() + "/fault/img:1"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_NE(plain.err.find("Copying blob " + img_.layer_digest.str().substr(0, 19) + " done"), std::string::npos)
      << plain.err;
  EXPECT_EQ(plain.err.find("\x1b["), std::string::npos) << plain.err;
}

TEST_F(FaultTest, KilnPullNeverStoresACorruptBlob) {
  if (!KilnHas("pull"))
    GTEST_SKIP() << "kiln pull is not built yet";
  // One reset and one 503 on the layer: the pull retries and succeeds.
  auto good = TempDir::Create("kiln-fault-store-");
  proxy_->Add({.kind = Fault::kReset, .method = "GET", .path = "/blobs/" + img_.layer_digest.str(),
               .after = 500000});
  proxy_->Add({.kind = Fault::kStatus, .method = "GET", .path = "/blobs/" + img_.layer_digest.str(),
               .status = 503});
  auto r = test::Run({KilnBin(), "--root", good->path(), "pull", proxy_->host() + "/fault/img:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err << "\n" << Log();
  EXPECT_TRUE(PathExists(JoinPath(good->path(), "blobs/sha256/" + img_.layer_digest.hex())));
  // The layer was unpacked while it downloaded, across the resumed transfer.
  auto hello = ReadFile(JoinPath(good->path(), "layers/" + img_.diff_id.hex() + "/etc/hello.txt"));
  ASSERT_TRUE(hello) << "the streamed unpack did not publish the layer";
  EXPECT_EQ(*hello, "fault test\n");
  // Corrupted once: the download starts over from byte 0, which cuts the
  // streamed unpack (it saw bad bytes); the layer is never published from
  // them -- either absent (unpacked on first use) or right.
  auto once = TempDir::Create("kiln-fault-store-");
  proxy_->Add({.kind = Fault::kCorrupt, .method = "GET", .path = "/blobs/" + img_.layer_digest.str()});
  r = test::Run({KilnBin(), "--root", once->path(), "pull", proxy_->host() + "/fault/img:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err << "\n" << Log();
  std::string once_layer = JoinPath(once->path(), "layers/" + img_.diff_id.hex());
  if (PathExists(once_layer)) {
    EXPECT_EQ(*ReadFile(JoinPath(once_layer, "etc/hello.txt")), "fault test\n");
  }
  // Always corrupted: the pull fails naming the digest mismatch, and the
  // blob is not in the store, nor any layer unpacked from it.
  auto bad = TempDir::Create("kiln-fault-store-");
  proxy_->Add({.kind = Fault::kCorrupt, .method = "GET", .path = "/blobs/" + img_.layer_digest.str(),
               .times = 100});
  r = test::Run({KilnBin(), "--root", bad->path(), "pull", proxy_->host() + "/fault/img:1"});
  EXPECT_NE(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("digest mismatch"), std::string::npos) << r.err;
  EXPECT_FALSE(PathExists(JoinPath(bad->path(), "blobs/sha256/" + img_.layer_digest.hex())));
  EXPECT_FALSE(PathExists(JoinPath(bad->path(), "layers/" + img_.diff_id.hex())));
}

}  // namespace
}  // namespace kiln::registry
