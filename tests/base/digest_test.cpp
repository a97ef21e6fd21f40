#include "kiln/digest.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(DigestTest, HashesKnownVector) {
  EXPECT_EQ(Digest::Of("abc").str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Digest::Of("").str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(DigestTest, StreamingEqualsOneShot) {
  Sha256 h;
  h.Update("a");
  h.Update("bc");
  EXPECT_EQ(h.bytes(), 3u);
  EXPECT_EQ(h.Finish(), Digest::Of("abc"));
}

TEST(DigestTest, ParseRejectsMalformed) {
  EXPECT_TRUE(Digest::Parse("sha256:" + std::string(64, 'a')));
  EXPECT_FALSE(Digest::Parse("sha256:" + std::string(63, 'a')));
  EXPECT_FALSE(Digest::Parse("sha256:" + std::string(64, 'A')));
  EXPECT_FALSE(Digest::Parse("sha256:../../../etc/passwd" + std::string(40, 'a')));
  EXPECT_FALSE(Digest::Parse("md5:abc"));
  EXPECT_FALSE(Digest::Parse("nocolon"));
  auto d = Digest::Parse("sha512:" + std::string(128, '0'));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->algorithm(), "sha512");
}

}  // namespace
}  // namespace kiln
