// The context stat cache and parallel source hashing (docs/cache.md).
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "engine/copy.h"
#include "kiln/fs.h"

namespace kiln::engine {
namespace {

int64_t NowNs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

class StatCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-statcache-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)RemoveAll(dir_); }
  void Write(const std::string& rel, const std::string& data, mode_t mode = 0644) {
    ASSERT_TRUE(MakeDirs(DirName(JoinPath(dir_, rel))));
    ASSERT_TRUE(WriteFileAtomic(JoinPath(dir_, rel), data, mode));
  }
  /// Sets the mtime of `rel` to `secs` seconds ago.
  void Age(const std::string& rel, int secs) {
    struct timespec ts[2];
    ::clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= secs;
    ts[1] = ts[0];
    ASSERT_EQ(::utimensat(AT_FDCWD, JoinPath(dir_, rel).c_str(), ts, 0), 0);
  }
  CopyRequest Req() {
    CopyRequest r;
    r.src_root = dir_;
    r.sources = {"/"};
    return r;
  }
  std::string dir_;
};

TEST_F(StatCacheTest, SerializeLoadRoundTripAndHit) {
  Write("a.txt", "hello");
  Age("a.txt", 100);
  struct stat st;
  ASSERT_EQ(::stat(JoinPath(dir_, "a.txt").c_str(), &st), 0);
  StatCache first(NowNs());
  EXPECT_FALSE(first.Lookup("a.txt", st));
  first.Put("a.txt", st, Digest::Of("hello"));
  EXPECT_TRUE(first.dirty());
  StatCache second(NowNs());
  second.Load(first.Serialize());
  auto d = second.Lookup("a.txt", st);
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, Digest::Of("hello"));
  EXPECT_FALSE(second.dirty());
  // Any stat field that differs is a miss.
  struct stat other = st;
  other.st_size += 1;
  EXPECT_FALSE(second.Lookup("a.txt", other));
  other = st;
  other.st_ctim.tv_nsec ^= 1;
  EXPECT_FALSE(second.Lookup("a.txt", other));
  other = st;
  other.st_ino += 1;
  EXPECT_FALSE(second.Lookup("a.txt", other));
  other = st;
  other.st_mode ^= 0100;
  EXPECT_FALSE(second.Lookup("a.txt", other));
  EXPECT_FALSE(second.Lookup("b.txt", st));
}

TEST_F(StatCacheTest, RacyEntriesAreNotTrusted) {
  Write("a.txt", "hello");  // mtime: now
  struct stat st;
  ASSERT_EQ(::stat(JoinPath(dir_, "a.txt").c_str(), &st), 0);
  // The cache was taken before (or in the same tick as) the file's mtime.
  StatCache first(int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec);
  first.Put("a.txt", st, Digest::Of("hello"));
  StatCache second(NowNs());
  second.Load(first.Serialize());
  EXPECT_FALSE(second.Lookup("a.txt", st));
}

TEST_F(StatCacheTest, GarbageLoadsNothing) {
  StatCache c(NowNs());
  c.Load("not a stat cache\n1 2 3 4 644 abc x\n");
  struct stat st{};
  EXPECT_FALSE(c.Lookup("x", st));
  c.Load("");
  EXPECT_FALSE(c.Lookup("x", st));
}

// What the next build starts from: the entries `previous` wrote.
std::unique_ptr<StatCache> Reloaded(const StatCache& previous) {
  auto next = std::make_unique<StatCache>(NowNs());
  next->Load(previous.Serialize());
  return next;
}

TEST_F(StatCacheTest, HashWithCacheEqualsWithoutAndSeesChanges) {
  for (int i = 0; i < 8; ++i)
    Write("d/f" + std::to_string(i), std::string(300000, char('a' + i)));  // parallel path: 8 files, 2.4 MB
  Write("small", "x");
  for (int i = 0; i < 8; ++i)
    Age("d/f" + std::to_string(i), 100);
  Age("small", 100);
  auto plain = HashCopySources(Req());
  ASSERT_TRUE(plain) << plain.error().message();
  StatCache cache(NowNs());
  SourceListing listing;
  auto cached = HashCopySources(Req(), &cache, &listing);
  ASSERT_TRUE(cached);
  EXPECT_EQ(*plain, *cached);
  EXPECT_EQ(cache.misses(), 9);
  EXPECT_EQ(listing.size(), 10u);  // d, 8 files, small
  // A second build loads what the first wrote: nothing is read.
  auto again = Reloaded(cache);
  auto hit = HashCopySources(Req(), again.get());
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit, *plain);
  EXPECT_EQ(again->hits(), 9);
  EXPECT_EQ(again->misses(), 0);
  // Content change (same size): a miss and another digest.
  Write("d/f3", std::string(300000, 'z'));
  auto third = Reloaded(*again);
  auto changed = HashCopySources(Req(), third.get());
  ASSERT_TRUE(changed);
  EXPECT_NE(*changed, *plain);
  EXPECT_EQ(third->misses(), 1);
  // Mode change only: the digest changes (mode is hashed from lstat).
  ASSERT_EQ(::chmod(JoinPath(dir_, "small").c_str(), 0600), 0);
  auto moded = HashCopySources(Req(), third.get());
  ASSERT_TRUE(moded);
  EXPECT_NE(*moded, *changed);
}

TEST_F(StatCacheTest, IgnoredFilesAreNotHashed) {
  Write("keep", "1");
  Write("skip", "1");
  auto ignore = frontend::IgnoreMatcher::Create({"skip"});
  ASSERT_TRUE(ignore);
  CopyRequest r = Req();
  r.ignore = *ignore;
  SourceListing listing;
  auto d1 = HashCopySources(r, nullptr, &listing);
  ASSERT_TRUE(d1);
  ASSERT_EQ(listing.size(), 1u);
  EXPECT_EQ(listing[0].first, "keep");
  Write("skip", "2");
  auto d2 = HashCopySources(r);
  ASSERT_TRUE(d2);
  EXPECT_EQ(*d1, *d2);
}

}  // namespace
}  // namespace kiln::engine
