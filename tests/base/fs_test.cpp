#include "kiln/fs.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(FsTest, AtomicWriteThenRead) {
  auto dir = TempDir::Create();
  ASSERT_TRUE(dir);
  std::string p = JoinPath(dir->path(), "a/b/c.txt");
  ASSERT_TRUE(MakeDirs(DirName(p)));
  ASSERT_TRUE(WriteFileAtomic(p, "hello", 0600));
  auto data = ReadFile(p);
  ASSERT_TRUE(data);
  EXPECT_EQ(*data, "hello");
  struct stat st;
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(FsTest, ReadFileLimitAndMissing) {
  auto dir = TempDir::Create();
  ASSERT_TRUE(dir);
  std::string p = JoinPath(dir->path(), "f");
  ASSERT_TRUE(WriteFileAtomic(p, std::string(100, 'x')));
  EXPECT_FALSE(ReadFile(p, 10));
  auto missing = ReadFile(JoinPath(dir->path(), "nope"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::kNotFound);
}

TEST(FsTest, RemoveAllHandlesUnreadableDirs) {
  auto dir = TempDir::Create();
  ASSERT_TRUE(dir);
  std::string d = JoinPath(dir->path(), "x/y");
  ASSERT_TRUE(MakeDirs(d));
  ASSERT_TRUE(WriteFileAtomic(JoinPath(d, "f"), "1"));
  ASSERT_EQ(::chmod(d.c_str(), 0), 0);
  ASSERT_TRUE(RemoveAll(JoinPath(dir->path(), "x")));
  EXPECT_FALSE(PathExists(JoinPath(dir->path(), "x")));
}

TEST(FsTest, PathHelpers) {
  EXPECT_EQ(DirName("a/b"), "a");
  EXPECT_EQ(DirName("b"), ".");
  EXPECT_EQ(DirName("/b"), "/");
  EXPECT_EQ(BaseName("a/b/"), "b");
  EXPECT_EQ(JoinPath("a/", "/b"), "a/b");
}

}  // namespace
}  // namespace kiln
