#include "kiln/rootfs.h"

#include <gtest/gtest.h>

namespace kiln::rootfs {
namespace {

const char kPasswd[] =
    "root:x:0:0:root:/root:/bin/sh\n"
    "app:x:1000:1001:App:/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const char kGroup[] =
    "root:x:0:\n"
    "appgrp:x:1001:\n"
    "wheel:x:10:app,other\n"
    "video:x:44:app\n"
    "nogroup:x:65534:\n";

TEST(ResolveUserTest, NameGivesIdsHomeAndSupplementaryGroups) {
  auto u = ResolveUser("app", std::string(kPasswd), std::string(kGroup));
  ASSERT_TRUE(u) << u.error().message();
  EXPECT_EQ(u->uid, 1000u);
  EXPECT_EQ(u->gid, 1001u);
  EXPECT_EQ(u->home, "/home/app");
  EXPECT_EQ(u->supplementary_gids, (std::vector<uint32_t>{10, 44}));
}

TEST(ResolveUserTest, NumericIdsNeedNoEntry) {
  auto u = ResolveUser("4242", std::nullopt, std::nullopt);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->uid, 4242u);
  EXPECT_EQ(u->gid, 0u);
  auto v = ResolveUser("1000", std::string(kPasswd), std::string(kGroup));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->gid, 1001u);  // from the passwd entry
}

TEST(ResolveUserTest, ExplicitGroupByNameOrNumber) {
  auto u = ResolveUser("app:nogroup", std::string(kPasswd), std::string(kGroup));
  ASSERT_TRUE(u);
  EXPECT_EQ(u->gid, 65534u);
  EXPECT_TRUE(u->supplementary_gids.empty());
  auto v = ResolveUser("5:7", std::nullopt, std::nullopt);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->uid, 5u);
  EXPECT_EQ(v->gid, 7u);
}

TEST(ResolveUserTest, UnknownNamesAreClearErrors) {
  auto u = ResolveUser("ghost", std::string(kPasswd), std::string(kGroup));
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().code(), Errc::kInvalidInput);
  EXPECT_EQ(u.error().message(), "unable to find user ghost: no matching entries in passwd file");
  auto g = ResolveUser("app:ghosts", std::string(kPasswd), std::string(kGroup));
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().message(), "unable to find group ghosts: no matching entries in group file");
}

}  // namespace
}  // namespace kiln::rootfs
