// Auth files and credential helpers (no network).
#include <sys/stat.h>

#include <cstdlib>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kiln/fs.h"
#include "kiln/registry.h"
#include "registry/internal.h"

namespace kiln::registry {
namespace {

// Points every auth-file variable into a temp dir for the test's duration.
class AuthEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>(std::move(*TempDir::Create("kiln-authtest-")));
    for (const char* v : {"REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DOCKER_CONFIG",
                          "HOME", "PATH"}) {
      const char* old = std::getenv(v);
      saved_.emplace_back(v, old ? std::optional<std::string>(old) : std::nullopt);
    }
    ::unsetenv("REGISTRY_AUTH_FILE");
    ::setenv("XDG_RUNTIME_DIR", Path("run").c_str(), 1);
    ::setenv("XDG_CONFIG_HOME", Path("config").c_str(), 1);
    ::unsetenv("DOCKER_CONFIG");
    ::setenv("HOME", Path("home").c_str(), 1);
    ASSERT_TRUE(MakeDirs(Path("run")));
    ASSERT_TRUE(MakeDirs(Path("home")));
  }
  void TearDown() override {
    for (const auto& [k, v] : saved_) {
      if (v)
        ::setenv(k.c_str(), v->c_str(), 1);
      else
        ::unsetenv(k.c_str());
    }
  }
  std::string Path(const std::string& rel) { return JoinPath(dir_->path(), rel); }

  std::unique_ptr<TempDir> dir_;
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST_F(AuthEnv, CandidateOrder) {
  ::setenv("REGISTRY_AUTH_FILE", "/x/auth.json", 1);
  ::setenv("DOCKER_CONFIG", "/d", 1);
  auto c = AuthFileCandidates("");
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0], "/x/auth.json");
  EXPECT_EQ(c[1], Path("run/containers/auth.json"));
  EXPECT_EQ(c[2], Path("config/containers/auth.json"));
  EXPECT_EQ(c[3], "/d/config.json");
  EXPECT_EQ(AuthFileCandidates("/only"), std::vector<std::string>{"/only"});
}

TEST_F(AuthEnv, StoreWritesFirstCandidate0600AndLookupFindsIt) {
  auto path = StoreCredentials("reg.example:5000", {"alice", "pa:ss"}, "");
  ASSERT_TRUE(path) << path.error().message();
  EXPECT_EQ(*path, Path("run/containers/auth.json"));
  struct stat st;
  ASSERT_EQ(::stat(path->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto c = LookupCredentials("reg.example:5000", "");
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->username, "alice");
  EXPECT_EQ((*c)->password, "pa:ss");
  auto none = LookupCredentials("other.example", "");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(RemoveCredentials("reg.example:5000", false, ""));
  auto gone = LookupCredentials("reg.example:5000", "");
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone->has_value());
  auto again = RemoveCredentials("reg.example:5000", false, "");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Errc::kNotFound);
}

TEST_F(AuthEnv, DockerConfigWithSchemeKeysAndFirstFileWins) {
  ASSERT_TRUE(MakeDirs(Path("home/.docker")));
  ASSERT_TRUE(WriteFileAtomic(Path("home/.docker/config.json"),
                              R"({"auths":{"https://index.docker.io/v1/":{"auth":")" +
                                  Base64Encode("hub:pw") + R"("},"r.example":{"auth":")" +
                                  Base64Encode("docker:pw") + R"("}}})"));
  auto hub = LookupCredentials("docker.io", "");
  ASSERT_TRUE(hub);
  ASSERT_TRUE(hub->has_value());
  EXPECT_EQ((*hub)->username, "hub");
  ASSERT_TRUE(MakeDirs(Path("config/containers")));
  ASSERT_TRUE(WriteFileAtomic(Path("config/containers/auth.json"),
                              R"({"auths":{"r.example":{"auth":")" + Base64Encode("podman:pw") + R"("}}})"));
  auto r = LookupCredentials("r.example", "");
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)->username, "podman");
}

TEST_F(AuthEnv, CredentialHelper) {
  ASSERT_TRUE(MakeDirs(Path("bin")));
  std::string helper = Path("bin/docker-credential-kilntest");
  ASSERT_TRUE(WriteFileAtomic(helper,
                              "#!/bin/sh\nread host\n[ \"$1\" = get ] || exit 3\n"
                              "[ \"$host\" = helped.example ] || { echo 'credentials not found'; exit 1; }\n"
                              "echo '{\"ServerURL\":\"helped.example\",\"Username\":\"hu\",\"Secret\":\"hs\"}'\n",
                              0755));
  ::setenv("PATH", (Path("bin") + ":/usr/bin:/bin").c_str(), 1);
  std::string file = Path("auth.json");
  ASSERT_TRUE(WriteFileAtomic(file, R"({"credHelpers":{"helped.example":"kilntest"},"credsStore":"kilntest"})"));
  auto c = LookupCredentials("helped.example", file);
  ASSERT_TRUE(c) << c.error().message();
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->username, "hu");
  EXPECT_EQ((*c)->password, "hs");
  auto none = LookupCredentials("unknown.example", file);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

TEST_F(AuthEnv, BadFileNamesThePathNotTheSecret) {
  std::string file = Path("auth.json");
  ASSERT_TRUE(WriteFileAtomic(file, R"({"auths":{"r":{"auth":"!!!not-base64-secret!!"}}})"));
  auto c = LookupCredentials("r", file);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find(file), std::string::npos);
  EXPECT_EQ(c.error().message().find("not-base64-secret"), std::string::npos);
  auto missing = LookupCredentials("r", Path("nope.json"));
  ASSERT_FALSE(missing);
}

TEST(Base64Test, RoundTrip) {
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "user:pa:ss", std::string("\0\xff", 2)}) {
    auto d = Base64Decode(Base64Encode(s));
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, s);
  }
  EXPECT_FALSE(Base64Decode("abc"));
}

}  // namespace
}  // namespace kiln::registry
