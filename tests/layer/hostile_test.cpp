// Hostile-layer corpus (docs/security.md: H01-H20). Every case extracts a
// crafted layer into base/dest beside victim files; the fixture's TearDown
// asserts that nothing outside dest changed (oracle (a)/(b)).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "kiln/fs.h"
#include "kiln/layer.h"
#include "layer/stream.h"
#include "layer/tar_builder.h"

namespace kiln::layer {
namespace {

using test::TarBuilder;

std::string Gzip(const std::string& data) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, data.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(out.size() - zs.avail_out);
  deflateEnd(&zs);
  return out;
}

std::string Zstd(const std::string& data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3));
  return out;
}

class HostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::Create("kiln-hostile-");
    ASSERT_TRUE(t);
    base_ = t->path();
    tmp_.emplace(std::move(*t));
    root_ = base_ + "/dest";
    ASSERT_EQ(0, ::mkdir(root_.c_str(), 0755));
    ASSERT_TRUE(MakeDirs(base_ + "/victim"));
    ASSERT_TRUE(WriteFileAtomic(base_ + "/victim/hello", "hello\n", 0644));
    ASSERT_TRUE(MakeDirs(base_ + "/dest-evil"));
    ASSERT_TRUE(WriteFileAtomic(base_ + "/dest-evil/secret", "secret\n", 0600));
    ASSERT_TRUE(MakeDirs(base_ + "/canary_dir"));
    ASSERT_EQ(0, ::chmod((base_ + "/canary_dir").c_str(), 0700));
    ASSERT_TRUE(WriteFileAtomic(base_ + "/canary_dir/canary", "canary\n", 0640));
    struct timespec old[2] = {{1000000, 0}, {1000000, 0}};
    ::utimensat(AT_FDCWD, (base_ + "/canary_dir").c_str(), old, 0);
    before_ = test::Snapshot(base_, root_);
  }

  void TearDown() override {
    if (!tmp_)
      return;
    auto after = test::Snapshot(base_, root_);
    EXPECT_EQ(before_, after) << "HOST PATH WAS CHANGED! THIS IS A PATH ESCAPE!";
    struct stat st;
    ASSERT_EQ(0, ::lstat(root_.c_str(), &st));
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << "the root changed type";
  }

  Expected<UnpackStats> Unpack(const std::string& bytes, UnpackOptions opt = {}) {
    UniqueFd fd(::memfd_create("layer", MFD_CLOEXEC));
    if (!fd || !WriteAll(fd.get(), bytes) || ::lseek(fd.get(), 0, SEEK_SET) != 0)
      return Error(Errc::kIo, "memfd");
    return UnpackLayer(fd.get(), root_, opt);
  }

  void ExpectError(const Expected<UnpackStats>& r, const std::string& needle) {
    ASSERT_FALSE(r) << "layer was accepted, expected an error containing \"" << needle << "\"";
    EXPECT_NE(std::string::npos, r.error().message().find(needle)) << r.error().message();
  }

  std::string InRoot(const std::string& p) const { return root_ + "/" + p; }
  bool Exists(const std::string& p) const { return PathExists(p); }

  std::optional<TempDir> tmp_;
  std::string base_, root_;
  std::map<std::string, std::string> before_;
};

TEST_F(HostileTest, H01ParentTraversalRejected) {
  for (std::string name : {"../evil", "/../evil", "../../pwned", "..", "a/../../b", "a/../b", "./../victim/hello"}) {
    auto r = Unpack(TarBuilder().File(name, "pwned").Finish());
    ExpectError(r, "path escapes root");
    EXPECT_NE(std::string::npos, r.error().message().find(name)) << "error must name the entry";
    EXPECT_EQ(Errc::kCorrupt, r.error().code());
  }
  EXPECT_FALSE(Exists(base_ + "/evil"));
  EXPECT_FALSE(Exists(base_ + "/pwned"));
}

TEST_F(HostileTest, H02AbsoluteNamesAreRootRelative) {
  auto r = Unpack(TarBuilder().File("/etc/passwd", "root:x:0:0::/root:/bin/sh\n").File("//etc/x", "x").Finish());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ("root:x:0:0::/root:/bin/sh\n", *ReadFile(InRoot("etc/passwd")));
  EXPECT_EQ("x", *ReadFile(InRoot("etc/x")));
}

TEST_F(HostileTest, H03AbsoluteSymlinkResolvedInRoot) {
  std::string host_name = "kiln-h03-" + std::to_string(::getpid());
  auto r = Unpack(TarBuilder()
                      .Symlink("localetc", "/etc")
                      .File("/localetc/" + host_name, "unbroken")
                      .Symlink("localvictim", base_ + "/victim")
                      .File("localvictim/hello", "overwritten?")
                      .Symlink("chain1", "chain2")
                      .Symlink("chain2", "/chain3")
                      .File("chain1/f", "f")
                      .Finish());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(Exists("/etc/" + host_name));
  EXPECT_EQ("unbroken", *ReadFile(InRoot("etc/" + host_name)));
  EXPECT_EQ("overwritten?", *ReadFile(InRoot(base_.substr(1) + "/victim/hello")));
  EXPECT_EQ("f", *ReadFile(InRoot("chain3/f")));
}

TEST_F(HostileTest, H04SymlinkChainsContained) {
  auto r = Unpack(TarBuilder()
                      .Dir("inner")
                      .Symlink("inner/go_up", "..")
                      .Symlink("inner/go_up/escape", "../victim")
                      .File("inner/go_up/escape/newfile", "x")
                      .Symlink("escape2", "..")
                      .Symlink("escape2/absolute", base_ + "/victim")
                      .File("escape2/absolute/file", "y")
                      .Finish());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(Exists(base_ + "/victim/newfile"));
  EXPECT_FALSE(Exists(base_ + "/victim/file"));
  EXPECT_EQ("x", *ReadFile(InRoot("victim/newfile")));  // `..` clamped at the root
  EXPECT_EQ("y", *ReadFile(InRoot(base_.substr(1) + "/victim/file")));
}

TEST_F(HostileTest, H05HardlinksOutRejected) {
  struct stat victim;
  ASSERT_EQ(0, ::stat((base_ + "/victim/hello").c_str(), &victim));
  ExpectError(Unpack(TarBuilder().Hardlink("grab", "../victim/hello").Finish()), "path escapes root");
  ExpectError(Unpack(TarBuilder().Hardlink("grab", "/../victim/hello").Finish()), "path escapes root");
  ExpectError(Unpack(TarBuilder().Symlink("loophole", "../victim").Hardlink("grab", "loophole/hello").Finish()),
              "not found in the layer root");
  ExpectError(Unpack(TarBuilder()
                         .Symlink("loophole2", base_ + "/victim")
                         .Hardlink("grab2", "loophole2/hello")
                         .Finish()),
              "not found in the layer root");
  ExpectError(Unpack(TarBuilder()
                         .Dir("breakouts")
                         .Symlink("breakouts/d1", "../../etc")
                         .Hardlink("breakouts/passwd", "breakouts/d1/passwd")
                         .Finish()),
              "not found in the layer root");
  // No inode in the root is shared with the victim.
  auto snap = test::Snapshot(root_);
  for (const auto& [path, desc] : snap)
    EXPECT_EQ(std::string::npos, desc.find(" " + std::to_string(victim.st_ino) + " ")) << path;
}

TEST_F(HostileTest, H06HardlinkNeverFallsBackToCopy) {
  // A hardlink to a directory cannot be made: error, no copy of anything.
  ExpectError(Unpack(TarBuilder().Dir("d").File("d/f", "x").Hardlink("e", "d").Finish()), "is a directory");
  EXPECT_FALSE(Exists(InRoot("e")));
  // Hardlink to a symlink links the symlink itself, never its target.
  auto r = Unpack(TarBuilder().Symlink("l", base_ + "/victim/hello").Hardlink("h", "l").Finish());
  ASSERT_TRUE(r) << r.error().message();
  struct stat st;
  ASSERT_EQ(0, ::lstat(InRoot("h").c_str(), &st));
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

TEST_F(HostileTest, H07SiblingPrefixRejected) {
  ExpectError(Unpack(TarBuilder().Hardlink("grab", "../dest-evil/secret").Finish()), "path escapes root");
  ExpectError(Unpack(TarBuilder().File("../dest-evil/secret", "pwned").Finish()), "path escapes root");
}

TEST_F(HostileTest, H08RootNeverReplaced) {
  for (std::string name : {".", "./", "/", "//", "localetc/sub/.."}) {
    auto r = Unpack(TarBuilder().Symlink(name, base_ + "/canary_dir").Finish());
    ASSERT_FALSE(r) << name;
    EXPECT_TRUE(r.error().message().find("replace the root") != std::string::npos ||
                r.error().message().find("escapes root") != std::string::npos)
        << r.error().message();
  }
  ExpectError(Unpack(TarBuilder().Symlink("..", "/tmp").Finish()), "path escapes root");
  ExpectError(Unpack(TarBuilder().File("", "x").Finish()), "");
  EXPECT_FALSE(Unpack(TarBuilder().File("./", "x").Finish()));
  ExpectError(Unpack(TarBuilder().Hardlink("./", "x").Finish()), "replace the root");
  // A second layer still lands inside the (directory) root.
  auto r = Unpack(TarBuilder().File("second", "2").Finish());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ("2", *ReadFile(InRoot("second")));
  EXPECT_FALSE(Exists(base_ + "/canary_dir/second"));
}

TEST_F(HostileTest, H09WhiteoutAbuse) {
  ExpectError(Unpack(TarBuilder().Whiteout(".wh..").Finish()), "invalid whiteout");
  ExpectError(Unpack(TarBuilder().Whiteout(".wh...").Finish()), "invalid whiteout");
  ExpectError(Unpack(TarBuilder().Whiteout("etc/.wh..").Finish()), "invalid whiteout");
  ExpectError(Unpack(TarBuilder().Whiteout("dne/../.wh.etc").Finish()), "path escapes root");
  // Whiteout of a symlink removes the link, not its target.
  ASSERT_TRUE(Unpack(TarBuilder().Symlink("localvictim", base_ + "/victim").Finish()));
  auto r = Unpack(TarBuilder().Whiteout(".wh.localvictim").Finish());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(Exists(InRoot("localvictim")));
  // Whiteouts under a symlinked parent are resolved in the root.
  ASSERT_TRUE(Unpack(TarBuilder()
                         .Symlink("lv", base_ + "/victim")
                         .File(base_ + "/victim/hello", "in-root copy")
                         .File(base_ + "/victim/other", "o")
                         .Finish()));
  r = Unpack(TarBuilder().Whiteout("lv/.wh.hello").Whiteout("lv/.wh..wh..opq").Finish());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(Exists(InRoot(base_.substr(1) + "/victim/hello")));
  EXPECT_FALSE(Exists(InRoot(base_.substr(1) + "/victim/other")));
  EXPECT_TRUE(Exists(base_ + "/victim/hello"));
}

TEST_F(HostileTest, H10TypeFlipDeferredMetadata) {
  auto r = Unpack(TarBuilder()
                      .Dir("d", {.perm = 0777, .mtime = 12345})
                      .Symlink("d", base_ + "/canary_dir")
                      .Symlink("s", base_ + "/canary_dir/canary", {.perm = 0777, .xattrs = {{"user.evil", "1"}}})
                      .Symlink("l", base_ + "/canary_dir/canary")
                      .Hardlink("h", "l", {.perm = 07777})
                      .Finish());
  ASSERT_TRUE(r) << r.error().message();
  struct stat st;
  ASSERT_EQ(0, ::lstat(InRoot("d").c_str(), &st));
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  // TearDown checks canary_dir mode 0700, old mtime, canary's mode and xattrs.
}

TEST_F(HostileTest, H11ReplaceSymlinkWithoutWriteThrough) {
  ASSERT_TRUE(Unpack(TarBuilder()
                         .Dir("bin")
                         .File("bin/dash", "dash-binary", {.perm = 0755})
                         .Symlink("bin/sh", "dash")
                         .Symlink("bin/myapp", base_ + "/victim")
                         .Finish()));
  auto r = Unpack(TarBuilder().File("bin/sh", "new-sh", {.perm = 0755}).Dir("bin/myapp").File("bin/myapp/x", "x").Finish());
  ASSERT_TRUE(r) << r.error().message();
  struct stat st;
  ASSERT_EQ(0, ::lstat(InRoot("bin/sh").c_str(), &st));
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ("new-sh", *ReadFile(InRoot("bin/sh")));
  EXPECT_EQ("dash-binary", *ReadFile(InRoot("bin/dash")));
  ASSERT_EQ(0, ::lstat(InRoot("bin/myapp").c_str(), &st));
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_FALSE(Exists(base_ + "/victim/x"));
}

TEST_F(HostileTest, H12SpecialFiles) {
  auto r = Unpack(TarBuilder()
                      .Device("dev/kmsg", AE_IFCHR, 1, 11)
                      .Device("dev/sda", AE_IFBLK, 8, 0)
                      .Device("etc/passwd", AE_IFIFO, 0, 0)
                      .Finish());
  ASSERT_TRUE(r) << r.error().message();
  struct stat st;
  ASSERT_EQ(0, ::lstat(InRoot("etc/passwd").c_str(), &st));
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  if (::lstat(InRoot("dev/kmsg").c_str(), &st) == 0) {
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_EQ(makedev(1, 11), st.st_rdev);
  } else {
    EXPECT_GE(r->skipped, 1) << "device neither created nor counted as skipped";
  }
  // Replacing the FIFO must not open it (which would block forever).
  r = Unpack(TarBuilder().File("etc/passwd", "root:x:0:0::/:/bin/sh\n").Finish());
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(0, ::lstat(InRoot("etc/passwd").c_str(), &st));
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST_F(HostileTest, H13OwnershipAndModes) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "needs root (or root in a user namespace) to chown";
  auto map = ReadFile("/proc/self/uid_map");
  if (map && map->find("4294967295") == std::string::npos) {
    // Rootless with a partial id map: ids outside it give the clear error.
    auto r = Unpack(TarBuilder().File("sgid", "x", {.perm = 02755, .gid = 50000000}).Finish());
    ExpectError(r, "/etc/subuid");
    EXPECT_NE(std::string::npos, r.error().message().find("50000000"));
    EXPECT_EQ(Errc::kSandbox, r.error().code());
    return;
  }
  auto r = Unpack(TarBuilder()
                      .File("suid", "x", {.perm = 04755})
                      .File("sgid", "x", {.perm = 02755, .gid = 50})
                      .Dir("tmp", {.perm = 01777})
                      .File("bigid", "x", {.uid = 2147483648LL, .gid = 2147483648LL})
                      .Finish());
  ASSERT_TRUE(r) << r.error().message();
  struct stat st;
  ASSERT_EQ(0, ::lstat(InRoot("suid").c_str(), &st));
  EXPECT_EQ(04755u, st.st_mode & 07777);
  ASSERT_EQ(0, ::lstat(InRoot("sgid").c_str(), &st));
  EXPECT_EQ(02755u, st.st_mode & 07777);
  EXPECT_EQ(50u, st.st_gid);
  ASSERT_EQ(0, ::lstat(InRoot("tmp").c_str(), &st));
  EXPECT_EQ(01777u, st.st_mode & 07777);
  ASSERT_EQ(0, ::lstat(InRoot("bigid").c_str(), &st));
  EXPECT_EQ(2147483648u, st.st_uid);
  // uid -1 would mean "leave unchanged" to chown: refused.
  ExpectError(Unpack(TarBuilder().File("minus1", "x", {.uid = 4294967295LL}).Finish()), "out of range");
}

TEST_F(HostileTest, H14PathologicalNames) {
  ExpectError(Unpack(TarBuilder().File(std::string(5000, 'a'), "x").Finish()), "path");
  ExpectError(Unpack(TarBuilder().File(std::string(300, 'b'), "x").Finish()), "longer than 255");
  std::string deep;
  for (int i = 0; i < 10000; ++i)
    deep += "d/";
  ExpectError(Unpack(TarBuilder().File(deep + "f", "x").Finish()), "longer than");
  UnpackOptions shallow;
  shallow.limits.max_depth = 8;
  ExpectError(Unpack(TarBuilder().File("a/b/c/d/e/f/g/h/i/j", "x").Finish(), shallow), "deeper than 8");
  // NUL inside a PAX path: the name is cut or refused, never written outside.
  std::string pax = test::PaxRecord("path", std::string("a\0/../../evil", 13));
  std::string tar = test::RawHeader("PaxHeaders/x", 'x', test::Octal(pax.size())) + test::Pad512(pax) +
                    test::RawHeader("placeholder", '0', test::Octal(0)) + std::string(1024, '\0');
  auto r = Unpack(tar);
  if (r) {
    EXPECT_FALSE(Exists(base_ + "/evil"));
  }
  // Non-UTF-8 names are bytes.
  r = Unpack(TarBuilder().File("bad-\xff\xfe-name", "x").File("caf\xc3\xa9", "y").Finish());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ("x", *ReadFile(InRoot("bad-\xff\xfe-name")));
  EXPECT_EQ("y", *ReadFile(InRoot("caf\xc3\xa9")));
}

TEST_F(HostileTest, H15MalformedTar) {
  std::string good = TarBuilder().File("a", "aaaa").Finish();
  // Bad checksum.
  std::string bad = test::RawHeader("x", '0', test::Octal(0), /*break_checksum=*/true) + std::string(1024, '\0');
  EXPECT_FALSE(Unpack(bad));
  // Negative / garbage size.
  EXPECT_FALSE(Unpack(test::RawHeader("neg", '0', "-0000000001") + std::string(1024, '\0')));
  // Truncated in the middle of the data.
  std::string big = TarBuilder().File("big", std::string(100000, 'z')).Finish();
  ExpectError(Unpack(big.substr(0, 20000)), "");
  // Garbage after the end-of-archive blocks: accepted, counted in digests.
  std::string trailing = good + std::string("GARBAGE-TRAILER", 15);
  auto r = Unpack(trailing);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(Digest::Of(trailing), r->digest);
  EXPECT_EQ(Digest::Of(trailing), r->diff_id);
  EXPECT_EQ(static_cast<int64_t>(trailing.size()), r->size);
  // Same path twice: last wins.
  r = Unpack(TarBuilder().File("dup", "first").File("dup", "second").Finish());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ("second", *ReadFile(InRoot("dup")));
  // A PAX header over 1 MiB is refused with a bounded error.
  std::string huge = test::PaxRecord("comment", std::string(3 << 20, 'c'));
  std::string paxbomb = test::RawHeader("PaxHeaders/big", 'x', test::Octal(huge.size())) + test::Pad512(huge) +
                        test::RawHeader("after", '0', test::Octal(0)) + std::string(1024, '\0');
  r = Unpack(paxbomb);
  EXPECT_FALSE(r) << "a 3 MiB pax header was accepted";
  // Header only, no end blocks.
  r = Unpack(test::RawHeader("hdr-only", '0', test::Octal(0)));
  if (r) {
    EXPECT_TRUE(Exists(InRoot("hdr-only")));
  }
  // Not a tar at all.
  ExpectError(Unpack(std::string(4096, 'Q')), "");
}

TEST_F(HostileTest, H16XattrAllowlist) {
  std::string cap("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);
  auto r = Unpack(TarBuilder()
                      .Dir("opq", {.perm = 0755, .xattrs = {{"trusted.overlay.opaque", "y"}}})
                      .File("f", "x",
                            {.xattrs = {{"user.overlay.whiteout", ""},
                                        {"security.selinux", "system_u:object_r:shadow_t:s0"},
                                        {"trusted.foo", "1"},
                                        {"user.ok", "kept"}}})
                      .File("ping", "x", {.perm = 0755, .xattrs = {{"security.capability", cap}}})
                      .Finish());
  ASSERT_TRUE(r) << r.error().message();
  char buf[64];
  EXPECT_LT(::getxattr(InRoot("opq").c_str(), "trusted.overlay.opaque", buf, sizeof buf), 0);
  EXPECT_LT(::getxattr(InRoot("f").c_str(), "user.overlay.whiteout", buf, sizeof buf), 0);
  EXPECT_LT(::getxattr(InRoot("f").c_str(), "trusted.foo", buf, sizeof buf), 0);
  ssize_t n = ::getxattr(InRoot("f").c_str(), "user.ok", buf, sizeof buf);
  if (n >= 0) {
    EXPECT_EQ("kept", std::string(buf, static_cast<size_t>(n)));
  }
  ExpectError(Unpack(TarBuilder().File("big", "x", {.xattrs = {{"user.big", std::string(65537, 'v')}}}).Finish()),
              "larger than");
  std::vector<std::pair<std::string, std::string>> many;
  for (int i = 0; i < 10000; ++i)
    many.emplace_back("user.x" + std::to_string(i), "1");
  ExpectError(Unpack(TarBuilder().File("many", "x", {.xattrs = many}).Finish()), "xattrs");
}

TEST_F(HostileTest, H17RootMetadataAndWhiteoutParentMtime) {
  struct stat before;
  ASSERT_EQ(0, ::chmod(root_.c_str(), 0755));
  auto r = Unpack(TarBuilder().Dir("./", {.perm = 0000, .mtime = 1}).Dir(".", {.perm = 0777}).Finish());
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(0, ::stat(root_.c_str(), &before));
  EXPECT_EQ(0755u, before.st_mode & 07777);
  ASSERT_TRUE(Unpack(TarBuilder().Dir("d", {.perm = 0755, .mtime = 1234}).File("d/gone", "x").Finish()));
  struct stat d1, d2;
  ASSERT_EQ(0, ::stat(InRoot("d").c_str(), &d1));
  EXPECT_EQ(1234, d1.st_mtim.tv_sec);
  ASSERT_TRUE(Unpack(TarBuilder().Whiteout("d/.wh.gone").Finish()));
  ASSERT_EQ(0, ::stat(InRoot("d").c_str(), &d2));
  EXPECT_FALSE(Exists(InRoot("d/gone")));
  EXPECT_EQ(1234, d2.st_mtim.tv_sec);
}

TEST_F(HostileTest, H18DecompressionBombs) {
  std::string zeros_tar = TarBuilder().File("zeros", std::string(32 << 20, '\0')).Finish();
  UnpackOptions small;
  small.limits.max_uncompressed_bytes = 4 << 20;
  ExpectError(Unpack(Gzip(zeros_tar), small), "decompressed size limit exceeded");
  ExpectError(Unpack(Zstd(zeros_tar), small), "decompressed size limit exceeded");
  // zstd frame asking for a 2 GiB window.
  std::string frame("\x28\xb5\x2f\xfd\x00\xa8\x01\x00\x00", 9);
  ExpectError(Unpack(frame + std::string(64, '\0')), "zstd");
  UnpackOptions few;
  few.limits.max_entries = 10;
  TarBuilder many;
  for (int i = 0; i < 20; ++i)
    many.File("f" + std::to_string(i), "");
  ExpectError(Unpack(many.Finish(), few), "more than 10 entries");
}

// H18, ratio cap: a few hundred KiB of gzip or a few KiB of zstd that expand
// 1000x or more stop after the first 16 MiB of output, long before the
// absolute cap; an ordinary layer is untouched; HashLayer (the store's
// diff_id check without unpacking) applies the same bounds.
TEST_F(HostileTest, H18ExpansionRatioCap) {
  EXPECT_EQ(1000, UnpackLimits().max_expansion_ratio);
  std::string zeros_tar = TarBuilder().File("zeros", std::string(64 << 20, '\0')).Finish();
  std::string z = Zstd(zeros_tar);
  ASSERT_LT(z.size(), size_t(64) << 10);
  ExpectError(Unpack(z), "decompressed size limit exceeded");
  ExpectError(Unpack(z), ":1 (KILN_MAX_EXPANSION_RATIO)");
  std::string g = Gzip(zeros_tar);  // deflate tops out near 1030:1
  UnpackOptions tight;
  tight.limits.max_expansion_ratio = 100;
  ExpectError(Unpack(g, tight), "decompressed size limit exceeded");
  UnpackOptions off;
  off.limits.max_expansion_ratio = 0;
  auto ok = Unpack(z, off);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(Digest::Of(zeros_tar), ok->diff_id);

  auto hash = [](const std::string& bytes, const UnpackLimits& limits) {
    int p[2];
    EXPECT_EQ(0, ::pipe(p));
    std::string copy = bytes;
    std::thread writer([fd = p[1], copy] {
      (void)WriteAll(fd, copy);
      ::close(fd);
    });
    auto r = HashLayer(p[0], limits);
    ::close(p[0]);
    writer.join();
    return r;
  };
  auto bomb = hash(z, UnpackLimits());
  ASSERT_FALSE(bomb);
  EXPECT_NE(std::string::npos, bomb.error().message().find("decompressed size limit exceeded"));
  std::string text_tar = TarBuilder().File("t", std::string(3 << 20, 'x') + "tail").Finish();
  std::string text_gz = Gzip(text_tar);
  auto h = hash(text_gz, UnpackLimits());  // ~1000:1 too, but within the first 16 MiB
  ASSERT_TRUE(h) << h.error().message();
  EXPECT_EQ(Digest::Of(text_tar), h->diff_id);
  EXPECT_EQ(Digest::Of(text_gz), h->digest);
  EXPECT_EQ(static_cast<int64_t>(text_gz.size()), h->size);
}

TEST_F(HostileTest, H19ConcatenatedStreamsAndPadding) {
  std::string tar = TarBuilder().File("a", std::string(5000, 'a')).Finish();
  // Two gzip members: the first holds half the tar.
  std::string two = Gzip(tar.substr(0, 1024)) + Gzip(tar.substr(1024));
  auto r = Unpack(two);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(Digest::Of(two), r->digest);
  EXPECT_EQ(Digest::Of(tar), r->diff_id);
  EXPECT_EQ(Compression::kGzip, r->compression);
  // NUL padding after gzip (umoci #360).
  std::string padded = Gzip(tar) + std::string(4096, '\0');
  r = Unpack(padded);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(Digest::Of(padded), r->digest);
  EXPECT_EQ(static_cast<int64_t>(padded.size()), r->size);
  // Garbage after gzip is an error.
  ExpectError(Unpack(Gzip(tar) + std::string("\x00\x00junk", 6)), "garbage");
  // Multi-frame zstd with a skippable frame in between.
  std::string skippable("\x50\x2a\x4d\x18\x04\x00\x00\x00" "abcd", 12);
  std::string z = Zstd(tar.substr(0, 700)) + skippable + Zstd(tar.substr(700));
  r = Unpack(z);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(Digest::Of(z), r->digest);
  EXPECT_EQ(Digest::Of(tar), r->diff_id);
  EXPECT_EQ(std::string(5000, 'a'), *ReadFile(InRoot("a")));
}

TEST_F(HostileTest, H20SniffedCompressionAndDigestChecks) {
  std::string tar = TarBuilder().File("a", "x").Finish();
  UnpackOptions opt;
  opt.expect_diff_id = Digest::Of(tar);
  opt.expect_digest = Digest::Of(Zstd(tar));
  auto r = Unpack(Zstd(tar), opt);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(Compression::kZstd, r->compression);
  opt.expect_diff_id = Digest::Of("something else");
  opt.expect_digest.reset();
  ExpectError(Unpack(Gzip(tar), opt), "diff_id mismatch");
  ExpectError(Unpack(Gzip(tar).substr(0, 20)), "gzip");
}


// The two gzip readers of a layer (ISA-L's igzip when kiln was built with
// libisal-dev, zlib with KILN_GZIP_INFLATE=zlib or without it) must accept
// and reject the same streams and give the same bytes, whatever the chunks
// the input arrives in: members, NUL padding, header fields, truncation at
// every length, corrupted CRC, size and deflate data.
// Hands `data` out in chunks of `chunk` bytes.
class ChunkSource : public internal::ByteSource {
 public:
  ChunkSource(const std::string& data, size_t chunk) : data_(data), chunk_(chunk) {}
  Expected<std::string_view> Read() override {
    std::string_view v(data_);
    v = v.substr(std::min(pos_, v.size()), chunk_);
    pos_ += v.size();
    return v;
  }

 private:
  const std::string& data_;
  size_t chunk_;
  size_t pos_ = 0;
};

// The decompressed bytes, or nullopt and the error in *error.
std::optional<std::string> Inflate(const std::string& gz, size_t chunk, bool zlib, std::string* error) {
  if (zlib)
    ::setenv("KILN_GZIP_INFLATE", "zlib", 1);
  else
    ::unsetenv("KILN_GZIP_INFLATE");
  ChunkSource in(gz, chunk);
  auto dec = internal::MakeDecompressor(Compression::kGzip, &in);
  ::unsetenv("KILN_GZIP_INFLATE");
  if (!dec) {
    *error = dec.error().message();
    return std::nullopt;
  }
  std::string out;
  for (;;) {
    auto c = (*dec)->Read();
    if (!c) {
      *error = c.error().message();
      return std::nullopt;
    }
    if (c->empty())
      return out;
    out.append(c->data(), c->size());
  }
}

std::string Text(size_t n) {
  std::string s;
  uint32_t x = 12345;
  while (s.size() < n) {
    x = x * 1103515245 + 12345;
    s += "line " + std::to_string(x % 1000) + " of the quick brown fox\n";
  }
  s.resize(n);
  return s;
}

std::string Random(size_t n) {
  std::string s(n, '\0');
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return s;
}

// gz with FEXTRA, FNAME and FCOMMENT added to its (flag-less) header.
std::string WithHeaderFields(const std::string& gz) {
  std::string out = gz.substr(0, 10);
  out[3] = static_cast<char>(0x04 | 0x08 | 0x10);
  out += std::string("\x05\x00" "extra", 7);
  out += std::string("layer.tar\0", 10);
  out += std::string("a comment\0", 10);
  out += gz.substr(10);
  return out;
}

struct Case {
  std::string name, gz;
  std::optional<std::string> want;  // nullopt: must be refused
};

TEST(GzipReaders, AgreeOnEveryStreamAndChunking) {
  const std::string small = Text(5000), big = Text(3 << 20), noise = Random(1 << 20);
  const std::string gz_small = Gzip(small), gz_big = Gzip(big), gz_noise = Gzip(noise);
  std::vector<Case> cases = {
      {"small", gz_small, small},
      {"3 MiB of text (output buffer fills)", gz_big, big},
      {"1 MiB of noise (stored blocks)", gz_noise, noise},
      {"two members", Gzip(small.substr(0, 1024)) + Gzip(small.substr(1024)), small},
      {"three members, the middle one empty", Gzip("ab") + Gzip("") + Gzip("cd"), std::string("abcd")},
      {"NUL padding", gz_small + std::string(4096, '\0'), small},
      {"header fields", WithHeaderFields(gz_small), small},
      {"garbage after padding", gz_small + std::string("\0\0junk", 6), std::nullopt},
      {"garbage after a member", gz_small + "junk", std::nullopt},
  };
  for (size_t cut : {size_t(1), size_t(9), size_t(10), size_t(20), gz_small.size() / 2, gz_small.size() - 8,
                     gz_small.size() - 4, gz_small.size() - 1})
    cases.push_back({"truncated at " + std::to_string(cut), gz_small.substr(0, cut), std::nullopt});
  for (size_t at : {size_t(8), size_t(1), size_t(4)}) {  // from the end: CRC, size
    std::string bad = gz_small;
    bad[bad.size() - at] ^= 0x01;
    cases.push_back({"trailer byte -" + std::to_string(at) + " flipped", bad, std::nullopt});
  }
  for (size_t at : {size_t(12), gz_small.size() / 3, gz_small.size() / 2, gz_small.size() - 12}) {
    std::string bad = gz_small;
    bad[at] ^= 0x20;
    cases.push_back({"deflate byte " + std::to_string(at) + " flipped", bad, std::nullopt});
  }
  for (const Case& c : cases) {
    for (size_t chunk : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
      if (chunk == 1 && c.gz.size() > 100000)
        continue;  // a byte at a time through MiBs: slow, and 7 covers it
      std::string zerr, ierr;
      auto z = Inflate(c.gz, chunk, /*zlib=*/true, &zerr);
      auto i = Inflate(c.gz, chunk, /*zlib=*/false, &ierr);
      SCOPED_TRACE(c.name + ", chunks of " + std::to_string(chunk));
      if (c.want) {
        ASSERT_TRUE(z) << zerr;
        ASSERT_TRUE(i) << ierr;
        EXPECT_TRUE(*z == *c.want) << "zlib gave " << z->size() << " bytes";
        EXPECT_TRUE(*i == *c.want) << "default reader gave " << i->size() << " bytes";
      } else {
        EXPECT_FALSE(z) << "zlib accepted it";
        EXPECT_FALSE(i) << "the default reader accepted it";
        if (!i) {
          EXPECT_NE(std::string::npos, ierr.find("gzip")) << ierr;
        }
      }
    }
  }
}

}  // namespace
}  // namespace kiln::layer
