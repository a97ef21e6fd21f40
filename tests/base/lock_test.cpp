#include "kiln/lock.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <string>

#include <gtest/gtest.h>

#include "kiln/fs.h"
#include "kiln/random.h"

namespace kiln {
namespace {

TEST(LockTest, LockFileMakesItsDirectoryAndSaysBusy) {
  auto dir = TempDir::Create();
  ASSERT_TRUE(dir);
  std::string p = JoinPath(dir->path(), "sub/.lock");
  auto held = LockFile(p, LOCK_EX);
  ASSERT_TRUE(held);
  struct stat st;
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // flock locks belong to the open file: a second open of it is refused.
  auto again = LockFile(p, LOCK_EX | LOCK_NB);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Errc::kFailed);
  EXPECT_EQ(again.error().message(), "busy: " + p);
  held->reset();
  EXPECT_TRUE(LockFile(p, LOCK_EX | LOCK_NB));
}

TEST(RandomTest, RandomHexIsFreshHexOfTheLengthAsked) {
  for (size_t n : {1u, 25u, 64u}) {
    auto a = RandomHex(n);
    auto b = RandomHex(n);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->size(), n);
    EXPECT_EQ(a->find_first_not_of("0123456789abcdef"), std::string::npos) << *a;
    if (n >= 25) {
      EXPECT_NE(*a, *b);
    }
  }
}

}  // namespace
}  // namespace kiln
