// registries.conf parsing, merging and resolution (pure; no files, no network).
#include <gtest/gtest.h>

#include "kiln/registries_conf.h"

namespace kiln::registry {
namespace {

RegistriesConf Conf(std::string_view text, const std::string& file = "/etc/containers/registries.conf") {
  auto c = ParseRegistriesConf(text, file);
  EXPECT_TRUE(c) << (c ? "" : c.error().message());
  return c ? *c : RegistriesConf{};
}

ImageReference Ref(std::string_view text) {
  auto r = ImageReference::Parse(text);
  EXPECT_TRUE(r) << text;
  return *r;
}

std::vector<std::string> Sources(const RegistriesConf& c, std::string_view ref) {
  auto s = PullSources(c, Ref(ref));
  EXPECT_TRUE(s) << (s ? "" : s.error().message());
  std::vector<std::string> out;
  if (s)
    for (const auto& p : *s)
      out.push_back(p.ref.str() + (p.mirror ? " mirror" : "") + (p.insecure ? " insecure" : ""));
  return out;
}

TEST(RegistriesConf, MirrorsThenPrimaryWithLocationRewrite) {
  auto c = Conf(R"(
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "127.0.0.1:5001"
insecure = true
[[registry.mirror]]
location = "mirror.example:5000/hub"

[[registry]]
prefix = "example.com/team"
location = "internal.example:5000/t"
)");
  EXPECT_EQ(Sources(c, "busybox:1"),
            (std::vector<std::string>{"127.0.0.1:5001/library/busybox:1 mirror insecure",
                                      "mirror.example:5000/hub/library/busybox:1 mirror",
                                      "docker.io/library/busybox:1"}));
  EXPECT_EQ(Sources(c, "example.com/team/app:2"),
            (std::vector<std::string>{"internal.example:5000/t/app:2"}));
  // A prefix matches at a path boundary only.
  EXPECT_EQ(Sources(c, "example.com/teamwork/app"), (std::vector<std::string>{"example.com/teamwork/app:latest"}));
  EXPECT_EQ(Sources(c, "quay.io/x/y"), (std::vector<std::string>{"quay.io/x/y:latest"}));
}

TEST(RegistriesConf, PullFromMirrorAndDigestOnly) {
  auto c = Conf(R"(
[[registry]]
location = "r.example"
[[registry.mirror]]
location = "tags.example"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "digests.example"
pull-from-mirror = "digest-only"
)");
  const std::string d = "sha256:" + std::string(64, 'a');
  EXPECT_EQ(Sources(c, "r.example/a:1"),
            (std::vector<std::string>{"tags.example/a:1 mirror", "r.example/a:1"}));
  EXPECT_EQ(Sources(c, "r.example/a@" + d),
            (std::vector<std::string>{"digests.example/a@" + d + " mirror", "r.example/a@" + d}));
  auto by = Conf(R"(
[[registry]]
location = "r.example"
mirror-by-digest-only = true
[[registry.mirror]]
location = "m.example"
)");
  EXPECT_EQ(Sources(by, "r.example/a:1"), (std::vector<std::string>{"r.example/a:1"}));
}

TEST(RegistriesConf, BlockedAndInsecureWithWildcardAndLongestPrefix) {
  auto c = Conf(R"(
[[registry]]
prefix = "*.corp.example"
insecure = true
[[registry]]
location = "a.corp.example/private"
blocked = true
)", "/home/u/.config/containers/registries.conf");
  auto s = PullSources(c, Ref("a.corp.example/private/x"));
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("registry a.corp.example is blocked in "
                                     "/home/u/.config/containers/registries.conf"),
            std::string::npos)
      << s.error().message();
  EXPECT_EQ(Sources(c, "a.corp.example/public/x"), (std::vector<std::string>{"a.corp.example/public/x:latest insecure"}));
  EXPECT_EQ(Sources(c, "b.corp.example:5000/x"), (std::vector<std::string>{"b.corp.example:5000/x:latest insecure"}));
  EXPECT_EQ(Sources(c, "corp.example/x"), (std::vector<std::string>{"corp.example/x:latest"}));
  auto push = PushInsecure(c, Ref("a.corp.example/private/x"));
  ASSERT_FALSE(push);
  EXPECT_NE(push.error().message().find("refusing to push"), std::string::npos);
  EXPECT_TRUE(*PushInsecure(c, Ref("b.corp.example/x")));
}

TEST(RegistriesConf, ShortNames) {
  auto c = Conf(R"(
unqualified-search-registries = ["quay.io", "docker.io"]
short-name-mode = "enforcing"
[aliases]
"myapp" = "localhost:5000/team/app"
)");
  auto a = ResolveShortName(c, Ref("myapp:v2"));
  ASSERT_TRUE(a) << a.error().message();
  ASSERT_EQ(a->candidates.size(), 1u);
  EXPECT_EQ(a->candidates[0].str(), "localhost:5000/team/app:v2");
  EXPECT_EQ(a->note, "Resolved \"myapp\" as an alias (/etc/containers/registries.conf)");
  // Ambiguous in enforcing mode: an error naming both candidates.
  auto amb = ResolveShortName(c, Ref("busybox"));
  ASSERT_FALSE(amb);
  EXPECT_EQ(amb.error().code(), Errc::kInvalidInput);
  EXPECT_NE(amb.error().message().find("quay.io/busybox:latest, docker.io/library/busybox:latest"),
            std::string::npos)
      << amb.error().message();
  // Permissive: every search registry in order.
  MergeRegistriesConf(c, Conf("short-name-mode = \"permissive\"\n", "/etc/containers/registries.conf.d/x.conf"));
  auto p = ResolveShortName(c, Ref("team/tool"));
  ASSERT_TRUE(p);
  ASSERT_EQ(p->candidates.size(), 2u);
  EXPECT_EQ(p->candidates[0].str(), "quay.io/team/tool:latest");
  EXPECT_EQ(p->candidates[1].str(), "docker.io/team/tool:latest");
  // No file sets a search list: docker.io, as Docker.
  auto none = ResolveShortName(RegistriesConf{}, Ref("busybox"));
  ASSERT_TRUE(none);
  ASSERT_EQ(none->candidates.size(), 1u);
  EXPECT_EQ(none->candidates[0].str(), "docker.io/library/busybox:latest");
  // A fully qualified name is left alone.
  auto full = ResolveShortName(c, Ref("quay.io/a/b"));
  ASSERT_TRUE(full);
  EXPECT_EQ(full->candidates[0].str(), "quay.io/a/b:latest");
}

TEST(RegistriesConf, DropInsOverrideKeysAndReplaceSamePrefix) {
  auto c = Conf(R"(
unqualified-search-registries = ["docker.io"]
[[registry]]
location = "r.example"
insecure = true
[[registry]]
location = "s.example"
[aliases]
"a" = "docker.io/library/a"
)");
  MergeRegistriesConf(c, Conf(R"(
unqualified-search-registries = ["quay.io"]
[[registry]]
location = "r.example"
blocked = true
[aliases]
"b" = "quay.io/b/b"
)", "/etc/containers/registries.conf.d/10-site.conf"));
  ASSERT_TRUE(c.search);
  EXPECT_EQ(*c.search, std::vector<std::string>{"quay.io"});
  EXPECT_EQ(c.search_file, "/etc/containers/registries.conf.d/10-site.conf");
  ASSERT_EQ(c.registries.size(), 2u);
  EXPECT_TRUE(c.registries[0].blocked);
  EXPECT_FALSE(c.registries[0].insecure);  // the whole entry is replaced
  EXPECT_EQ(c.aliases.size(), 2u);
  EXPECT_EQ(c.files.size(), 2u);
}

TEST(RegistriesConf, VersionOneIsConverted) {
  auto c = Conf(R"(
[registries.search]
registries = ["quay.io"]
[registries.insecure]
registries = ["old.example:5000"]
[registries.block]
registries = ["bad.example"]
)");
  ASSERT_TRUE(c.search);
  EXPECT_EQ(*c.search, std::vector<std::string>{"quay.io"});
  EXPECT_EQ(Sources(c, "old.example:5000/x"), (std::vector<std::string>{"old.example:5000/x:latest insecure"}));
  EXPECT_FALSE(PullSources(c, Ref("bad.example/x")));
}

TEST(RegistriesConf, BadFilesNameTheFileAndLine) {
  struct Case {
    const char* text;
    const char* want;
  } cases[] = {
      {"unqualified-search-registries = \"docker.io\"\n", "/r.conf:1: unqualified-search-registries must be an array"},
      {"\n\nshort-name-mode = \"strict\"\n", "/r.conf:3: short-name-mode \"strict\": use enforcing"},
      {"[[registry]]\nlocation = \"https://r.example\"\n", "must not have a scheme"},
      {"[[registry]]\nprefix = \"*.example/x\"\n", "must be \"*.domain\" only"},
      {"[[registry]]\nlocation = \"r.example\"\nmirorr = []\n", "/r.conf:3: [[registry]] #1: unknown key \"mirorr\""},
      {"[[registry]]\nlocation = \"r\"\n[[registry.mirror]]\nlocation = \"m\"\npull-from-mirror = \"some\"\n",
       "pull-from-mirror \"some\""},
      {"[aliases]\n\"x\" = \"x:1\"\n", "must be a fully qualified name without tag or digest"},
      {"[aliases]\n\"x\" = \"quay.io/x:1\"\n", "must be a fully qualified name without tag or digest"},
      {"short-name-mode = \"enforcing\"\n[registries.search]\nregistries = []\n", "mixes the version-1"},
      {"this is = not toml [\n", "/r.conf:1: "},
      {"[[registry]]\nlocation = \"a\"\n[[registry]]\nlocation = \"a\"\n", "defined twice"},
      {"unknown-key = 1\n", "unknown key \"unknown-key\""},
  };
  for (const auto& k : cases) {
    auto c = ParseRegistriesConf(k.text, "/r.conf");
    ASSERT_FALSE(c) << k.text;
    EXPECT_EQ(c.error().code(), Errc::kInvalidInput) << k.text;
    EXPECT_NE(c.error().message().find(k.want), std::string::npos) << c.error().message();
  }
}

}  // namespace
}  // namespace kiln::registry
