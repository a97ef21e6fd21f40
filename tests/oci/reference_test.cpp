#include "kiln/reference.h"
#include "oci/reference_grammar.h"

#include <gtest/gtest.h>
#include <re2/re2.h>

#include <functional>
#include <random>
#include <string>

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


// The hand-written matchers against distribution/reference's expressions
// (the RE2 they replaced): every string of up to 4 characters over an
// alphabet of the interesting characters, and random longer ones.
TEST(ReferenceTest, GrammarMatchersAgreeWithTheRegularExpressions) {
  const RE2 domain{
      "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
      "(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
      "|\\[[a-fA-F0-9:]+\\]"};
  const RE2 port{"[0-9]+"};
  const RE2 path_component{"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"};
  const RE2 tag{"[\\w][\\w.-]{0,127}"};
  const RE2 id_prefix{"(?:sha256:)?[a-f0-9]{3,64}"};
  ASSERT_TRUE(domain.ok() && port.ok() && path_component.ok() && tag.ok() && id_prefix.ok());
  size_t checked = 0;
  auto check = [&](const std::string& s) {
    ++checked;
    ASSERT_EQ(reference_grammar::Domain(s), RE2::FullMatch(s, domain)) << "domain \"" << s << "\"";
    ASSERT_EQ(reference_grammar::Port(s), RE2::FullMatch(s, port)) << "port \"" << s << "\"";
    ASSERT_EQ(reference_grammar::PathComponent(s), RE2::FullMatch(s, path_component)) << "component \"" << s << "\"";
    ASSERT_EQ(reference_grammar::Tag(s), RE2::FullMatch(s, tag)) << "tag \"" << s << "\"";
    ASSERT_EQ(reference_grammar::IdPrefix(s), RE2::FullMatch(s, id_prefix)) << "id \"" << s << "\"";
  };
  const std::string alphabet = "a0F._-[]:/@zG";
  std::string s;
  std::function<void(size_t)> all = [&](size_t len) {
    check(s);
    if (len == 0)
      return;
    for (char c : alphabet) {
      s.push_back(c);
      all(len - 1);
      s.pop_back();
    }
  };
  all(4);
  std::mt19937 rng(18);
  const std::string wide = alphabet + "bcdef123456789xyzABC_ \t\xff";
  for (int i = 0; i < 20000; ++i) {
    size_t len = rng() % 140;
    std::string r;
    for (size_t k = 0; k < len; ++k)
      r.push_back(wide[rng() % wide.size()]);
    check(r);
    // Mostly valid shapes too: runs of lower-case letters joined by separators.
    std::string v;
    const char* seps[] = {".", "_", "__", "-", "--", "___", "._", ":", ""};
    for (size_t k = 0, n = 1 + rng() % 6; k < n; ++k)
      v += std::string(1 + rng() % 3, "ab9"[rng() % 3]) + (k + 1 < n ? seps[rng() % 9] : "");
    check(v);
    check("sha256:" + v);
    check("[" + v + "]");
  }
  check(std::string(128, 'a'));
  check(std::string(129, 'a'));
  check(std::string(64, 'f'));
  check(std::string(65, 'f'));
  check("sha256:" + std::string(64, '0'));
  EXPECT_GT(checked, 100000u);
}

}  // namespace
}  // namespace kiln
