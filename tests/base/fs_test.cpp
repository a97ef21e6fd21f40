#include "kiln/fs.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kiln/lock.h"
#include "kiln/random.h"

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

TEST(FsTest, PathComponents) {
  EXPECT_EQ(PathComponents("/a//./b/"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(PathComponents("a/../b"), (std::vector<std::string>{"a", "..", "b"}));
  EXPECT_TRUE(PathComponents("").empty());
  EXPECT_TRUE(PathComponents("/./").empty());
}

TEST(FsTest, LineReaderSplitsReadsIntoLines) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  UniqueFd r(p[0]), w(p[1]);
  std::vector<std::string> lines;
  auto add = [&](std::string_view l) { lines.emplace_back(l); };
  LineReader reader;
  ASSERT_TRUE(WriteAll(w.get(), std::string("one\ntw")));
  EXPECT_EQ(reader.ReadOnce(r.get(), add), 6);
  EXPECT_EQ(lines, std::vector<std::string>{"one"});  // "tw" waits for its end
  ASSERT_TRUE(WriteAll(w.get(), std::string("o\n\nthree")));
  EXPECT_GT(reader.ReadOnce(r.get(), add), 0);
  w.reset();
  EXPECT_EQ(reader.ReadOnce(r.get(), add), 0);  // EOF: the last line without '\n'
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "", "three"}));
}

TEST(FsTest, ReadLinesToTheEnd) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  UniqueFd r(p[0]), w(p[1]);
  ASSERT_TRUE(WriteAll(w.get(), std::string("a\nb\n")));
  w.reset();
  std::vector<std::string> lines;
  ASSERT_TRUE(ReadLines(r.get(), [&](std::string_view l) { lines.emplace_back(l); }));
  EXPECT_EQ(lines, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(ReadLines(-1, [](std::string_view) {}));
}

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
