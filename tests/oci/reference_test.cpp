#include "kiln/reference.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

struct Case {
  const char* in;
  const char* full;
  const char* familiar;
};

TEST(ReferenceTest, NormalisesLikeDocker) {
  const Case cases[] = {
      {"alpine", "docker.io/library/alpine:latest", "alpine:latest"},
      {"alpine:3.20", "docker.io/library/alpine:3.20", "alpine:3.20"},
      {"library/alpine", "docker.io/library/alpine:latest", "alpine:latest"},
      {"team/app:v1", "docker.io/team/app:v1", "team/app:v1"},
      {"docker.io/alpine", "docker.io/library/alpine:latest", "alpine:latest"},
      {"index.docker.io/library/alpine", "docker.io/library/alpine:latest", "alpine:latest"},
      {"localhost/x", "localhost/x:latest", "localhost/x:latest"},
      {"localhost:5000/a/b/c:t", "localhost:5000/a/b/c:t", "localhost:5000/a/b/c:t"},
      {"quay.io/org/img", "quay.io/org/img:latest", "quay.io/org/img:latest"},
      {"my-host.example.com:443/p_q/r.s__t", "my-host.example.com:443/p_q/r.s__t:latest",
       "my-host.example.com:443/p_q/r.s__t:latest"},
      {"[::1]:5000/x:1", "[::1]:5000/x:1", "[::1]:5000/x:1"},
  };
  for (const auto& c : cases) {
    auto r = ImageReference::Parse(c.in);
    ASSERT_TRUE(r) << c.in << ": " << r.error().message();
    EXPECT_EQ(r->str(), c.full) << c.in;
    EXPECT_EQ(r->Familiar(), c.familiar) << c.in;
  }
}

TEST(ReferenceTest, DigestReferences) {
  std::string hex(64, 'a');
  auto r = ImageReference::Parse("alpine@sha256:" + hex);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->tag, "");
  EXPECT_TRUE(r->digest.valid());
  EXPECT_EQ(r->str(), "docker.io/library/alpine@sha256:" + hex);
  EXPECT_EQ(r->TagOrDigest(), "sha256:" + hex);
  auto both = ImageReference::Parse("h:1/x:t@sha256:" + hex);
  ASSERT_TRUE(both);
  EXPECT_EQ(both->domain, "h:1");
  EXPECT_EQ(both->tag, "t");
  EXPECT_EQ(both->str(), "h:1/x:t@sha256:" + hex);
}

TEST(ReferenceTest, ImplicitDomain) {
  auto r = ImageReference::Parse("app");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->implicit_domain);
  auto l = ImageReference::ParseWithDefaultDomain("app:2", "localhost");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->str(), "localhost/app:2");
  auto l2 = ImageReference::ParseWithDefaultDomain("quay.io/a/b", "localhost");
  ASSERT_TRUE(l2);
  EXPECT_FALSE(l2->implicit_domain);
  EXPECT_EQ(l2->str(), "quay.io/a/b:latest");
}

TEST(ReferenceTest, RejectsBadReferencesNamingThem) {
  const char* bad[] = {
      "", "Alpine", "alpine:", "alpine:-x", "alpine@sha256:abc", "alpine@md5:" ,
      "a//b", "/a", "a/", "alpine:tag with space", "a..b", "-a",
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
      "host:port/x", "alpine@sha256:../../etc/passwd",
  };
  for (const char* b : bad) {
    auto r = ImageReference::Parse(b);
    ASSERT_FALSE(r) << "accepted \"" << b << "\" as " << r->str();
    EXPECT_EQ(r.error().code(), Errc::kInvalidInput);
    EXPECT_NE(r.error().message().find("invalid reference \"" + std::string(b) + "\""), std::string::npos)
        << r.error().message();
  }
  auto upper = ImageReference::Parse("docker.io/Team/app");
  ASSERT_FALSE(upper);
  EXPECT_NE(upper.error().message().find("must be lowercase"), std::string::npos);
  std::string long_name(300, 'a');
  EXPECT_FALSE(ImageReference::Parse(long_name));
}

TEST(ReferenceTest, IdPrefixesAndTags) {
  EXPECT_TRUE(LooksLikeIdPrefix("abc"));
  EXPECT_TRUE(LooksLikeIdPrefix("sha256:0123abcd"));
  EXPECT_FALSE(LooksLikeIdPrefix("ab"));
  EXPECT_FALSE(LooksLikeIdPrefix("xyz123"));
  EXPECT_TRUE(IsValidTag("v1.0_rc-1"));
  EXPECT_FALSE(IsValidTag(".x"));
  EXPECT_FALSE(IsValidTag(std::string(129, 'a')));
}

}  // namespace
}  // namespace kiln
