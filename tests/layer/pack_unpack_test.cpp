// Pack/unpack round trips, determinism, overlay upperdir packing, whiteout
// conversion, and interop with gzip/zstd/GNU tar.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include "kiln/fs.h"
#include "kiln/layer.h"
#include "layer/tar_builder.h"

namespace kiln::layer {
namespace {

using test::TarBuilder;

bool IsRoot() { return ::geteuid() == 0; }

void SetTimes(const std::string& path, int64_t sec) {
  struct timespec ts[2] = {{sec, 0}, {sec, 0}};
  ASSERT_EQ(0, ::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW)) << path;
}

void Write(const std::string& path, const std::string& data, mode_t mode = 0644) {
  ASSERT_TRUE(MakeDirs(DirName(path)));
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  ASSERT_TRUE(fd.valid()) << path;
  ASSERT_TRUE(WriteAll(fd.get(), data));
  ASSERT_EQ(0, ::fchmod(fd.get(), mode));
}

std::string LongName() { return std::string(120, 'L') + "/" + std::string(150, 'n') + ".txt"; }

// A tree with every kind of entry we support.
void BuildTree(const std::string& d) {
  Write(d + "/a.txt", "hello world\n");
  Write(d + "/bin/tool", "#!/bin/sh\necho tool\n", 04755);
  Write(d + "/bin/sgid", "x", 02711);
  Write(d + "/sub/deeper/file", std::string(300000, 'q') + "tail");
  ASSERT_TRUE(MakeDirs(d + "/empty"));
  ASSERT_TRUE(MakeDirs(d + "/sticky"));
  ASSERT_EQ(0, ::chmod((d + "/sticky").c_str(), 01777));
  ASSERT_EQ(0, ::symlink("a.txt", (d + "/link").c_str()));
  ASSERT_EQ(0, ::symlink("/etc/passwd", (d + "/abs").c_str()));
  ASSERT_EQ(0, ::symlink("does/not/exist", (d + "/dangling").c_str()));
  Write(d + "/hard1", "shared inode");
  ASSERT_EQ(0, ::link((d + "/hard1").c_str(), (d + "/sub/hard2").c_str()));
  Write(d + "/" + LongName(), "long");
  Write(d + "/caf\xc3\xa9/na\xc3\xafve.txt", "utf8");
  Write(d + "/bytes-\xff\xfe", "not utf8");
  ASSERT_EQ(0, ::mkfifo((d + "/fifo").c_str(), 0640));
  ASSERT_EQ(0, ::setxattr((d + "/a.txt").c_str(), "user.kiln.test", "value", 5, 0));
  Write(d + "/owned", "owned");
  if (IsRoot()) {
    ASSERT_EQ(0, ::chown((d + "/owned").c_str(), 1000, 1001));
    ASSERT_EQ(0, ::chmod((d + "/owned").c_str(), 0600));
    ASSERT_EQ(0, ::mknod((d + "/nulldev").c_str(), S_IFCHR | 0666, makedev(1, 3)));
    // A file capability survives the round trip.
    std::string cap("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);
    ASSERT_EQ(0, ::setxattr((d + "/bin/tool").c_str(), "security.capability", cap.data(), cap.size(), 0));
    ASSERT_EQ(0, ::chmod((d + "/bin/tool").c_str(), 04755));
  }
  // Fixed times everywhere (dirs last).
  for (const char* p : {"a.txt", "bin/tool", "bin/sgid", "sub/deeper/file", "link", "abs", "dangling", "hard1",
                        "fifo", "owned", "bytes-\xff\xfe", "caf\xc3\xa9/na\xc3\xafve.txt"})
    SetTimes(d + "/" + p, 1600000000);
  SetTimes(d + "/" + LongName(), 1600000001);
  if (IsRoot())
    SetTimes(d + "/nulldev", 1600000002);
  for (const char* p : {"bin", "sub/deeper", "sub", "empty", "sticky", "caf\xc3\xa9"})
    SetTimes(d + "/" + p, 1500000000);
  SetTimes(d + "/" + LongName().substr(0, 120), 1500000000);
}

// path -> description without inode numbers; hardlink groups by path.
struct TreeDesc {
  std::map<std::string, std::string> entries;
  std::set<std::set<std::string>> links;
  bool operator==(const TreeDesc&) const = default;
};

TreeDesc Describe(const std::string& dir, bool with_xattrs = true) {
  TreeDesc out;
  auto snap = test::Snapshot(dir);
  std::map<std::string, std::set<std::string>> by_ino;
  for (auto& [path, desc] : snap) {
    if (path == ".")
      continue;
    // desc: "mode uid:gid size mtime ino nlink rest"
    std::vector<std::string> f;
    size_t pos = 0;
    for (int i = 0; i < 6; ++i) {
      size_t sp = desc.find(' ', pos);
      f.push_back(desc.substr(pos, sp - pos));
      pos = sp == std::string::npos ? desc.size() : sp + 1;
    }
    std::string rest = desc.substr(pos);
    mode_t mode = static_cast<mode_t>(std::stoul(f[0]));
    if (!with_xattrs) {
      size_t x = rest.find(" xattrs:");
      if (x != std::string::npos)
        rest.resize(x);
    }
    std::string size = S_ISDIR(mode) ? "-" : f[2];
    out.entries[path] = f[0] + " " + f[1] + " " + size + " " + f[3] + " " + rest;
    if (!S_ISDIR(mode) && std::stoul(f[5]) > 1)
      by_ino[f[4]].insert(path);
  }
  for (auto& [ino, paths] : by_ino)
    out.links.insert(paths);
  return out;
}

// Every thread count's tree is the one 1 thread made (trees[1]).
void ExpectSameTrees(const std::map<int, TreeDesc>& trees) {
  const TreeDesc& one = trees.at(1);
  for (const auto& [threads, tree] : trees) {
    for (const auto& [path, desc] : one.entries) {
      auto it = tree.entries.find(path);
      if (it == tree.entries.end()) {
        ADD_FAILURE() << threads << " threads: missing " << path;
      } else {
        EXPECT_EQ(desc, it->second) << threads << " threads: " << path;
      }
    }
    EXPECT_EQ(one.entries.size(), tree.entries.size()) << threads;
    EXPECT_TRUE(one.links == tree.links) << threads << " threads: hardlink groups differ";
  }
}

struct Packed {
  LayerInfo info;
  std::string path;
};

Packed PackTo(const std::string& src, const std::string& out, PackOptions opt) {
  UniqueFd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  EXPECT_TRUE(fd.valid());
  auto info = PackDirectory(src, fd.get(), opt);
  EXPECT_TRUE(info) << (info ? "" : info.error().message());
  return {info ? *info : LayerInfo{}, out};
}

Expected<UnpackStats> UnpackFrom(const std::string& file, const std::string& dir, UnpackOptions opt = {}) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd)
    return Error::FromErrno("open " + file);
  return UnpackLayer(fd.get(), dir, opt);
}

int Sh(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::vector<std::string> TarNames(const std::string& file, std::map<std::string, std::vector<std::string>>* xattrs = nullptr,
                                  std::map<std::string, int64_t>* mtimes = nullptr) {
  std::vector<std::string> names;
  archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  EXPECT_EQ(ARCHIVE_OK, archive_read_open_filename(a, file.c_str(), 65536));
  archive_entry* e;
  int rc;
  while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
    names.push_back(archive_entry_pathname(e));
    if (xattrs) {
      const char* n;
      const void* v;
      size_t s;
      archive_entry_xattr_reset(e);
      while (archive_entry_xattr_next(e, &n, &v, &s) == ARCHIVE_OK)
        (*xattrs)[names.back()].push_back(n);
    }
    if (mtimes)
      (*mtimes)[names.back()] = archive_entry_mtime(e);
  }
  archive_read_free(a);
  return names;
}

class PackUnpackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tmp_) << tmp_.error().message();
    base_ = tmp_->path();
    src_ = base_ + "/src";
    ASSERT_TRUE(MakeDirs(src_));
  }
  // Unpacks the layer bytes `tar` into a new directory `dir` with `threads`
  // writer threads.
  Expected<UnpackStats> UnpackBytes(const std::string& tar, const std::string& dir, int threads) {
    KILN_TRY(MakeDirs(dir));
    std::string blob = base_ + "/blob";
    KILN_TRY(WriteFileAtomic(blob, tar, 0644));
    UnpackOptions uo;
    uo.threads = threads;
    return UnpackFrom(blob, dir, uo);
  }
  Expected<TempDir> tmp_ = TempDir::Create("kiln-layer-");
  std::string base_, src_;
};

class RoundTripTest : public PackUnpackTest, public ::testing::WithParamInterface<Compression> {};

TEST_P(RoundTripTest, PackUnpackCompare) {
  BuildTree(src_);
  PackOptions opt;
  opt.compression = GetParam();
  Packed p = PackTo(src_, base_ + "/layer", opt);
  auto blob = ReadFile(p.path);
  ASSERT_TRUE(blob);
  EXPECT_EQ(Digest::Of(*blob), p.info.digest);
  EXPECT_EQ(static_cast<int64_t>(blob->size()), p.info.size);
  EXPECT_EQ(LayerMediaType(GetParam()), p.info.media_type);
  EXPECT_GT(p.info.entries, 15);

  std::string dst = base_ + "/dst";
  ASSERT_TRUE(MakeDirs(dst));
  auto st = UnpackFrom(p.path, dst);
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_EQ(GetParam(), st->compression);
  EXPECT_EQ(p.info.diff_id, st->diff_id);
  EXPECT_EQ(p.info.uncompressed_size, st->uncompressed_size);
  EXPECT_EQ(p.info.digest, st->digest);
  EXPECT_EQ(p.info.entries, st->entries);
  TreeDesc a = Describe(src_), b = Describe(dst);
  EXPECT_EQ(a.entries, b.entries);
  EXPECT_EQ(a.links, b.links);
  EXPECT_EQ(1u, a.links.size());
}

INSTANTIATE_TEST_SUITE_P(AllCompressions, RoundTripTest,
                         ::testing::Values(Compression::kNone, Compression::kGzip, Compression::kZstd),
                         [](const auto& p) { return std::string(CompressionName(p.param)); });

TEST_F(PackUnpackTest, DeterministicAcrossRunsAndThreads) {
  BuildTree(src_);
  for (Compression c : {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    PackOptions opt;
    opt.compression = c;
    opt.threads = 1;
    Packed one = PackTo(src_, base_ + "/one", opt);
    opt.threads = 2;
    Packed two = PackTo(src_, base_ + "/two", opt);
    opt.threads = 4;
    Packed four = PackTo(src_, base_ + "/four", opt);
    EXPECT_EQ(one.info.digest, two.info.digest) << CompressionName(c);
    EXPECT_EQ(one.info.digest, four.info.digest) << CompressionName(c);
    EXPECT_EQ(one.info.diff_id, two.info.diff_id);
  }
  // Reading the files (atime) or re-creating them with the same content and
  // times changes nothing.
  PackOptions opt;
  Packed before = PackTo(src_, base_ + "/b", opt);
  ASSERT_TRUE(ReadFile(src_ + "/a.txt"));
  Packed after = PackTo(src_, base_ + "/c", opt);
  EXPECT_EQ(before.info.digest, after.info.digest);
}

// The writer threads keep the stream's order wherever it matters: a file
// written twice (the last wins), a file replaced by a directory and a
// directory with files just queued replaced by a file, files under a path
// that was a file, hardlinks to files just queued, whiteouts and opaque
// markers of files just queued. Every thread count gives the tree one thread
// gives, and every file has its data, mode and time.
TEST_F(PackUnpackTest, WriterThreadsKeepTheStreamOrder) {
  TarBuilder t;
  TarBuilder::Meta old_time{.perm = 0640, .mtime = 1600000000};
  t.Dir("d");
  for (int i = 0; i < 300; ++i)
    t.File("d/f" + std::to_string(i), "data " + std::to_string(i) + std::string(static_cast<size_t>(i * 7), 'x'),
           old_time);
  t.File("twice", "first");
  t.File("twice", "second");
  t.File("x", "file first");
  t.Dir("x");
  t.File("x/inside", "under what was a file");
  t.Dir("gone");
  t.File("gone/a", "a");
  t.File("gone/b", "b");
  t.File("gone", "now a file");
  t.File("target", "linked");
  t.Hardlink("link", "target");
  t.Dir("d2");  // (directories made implicitly would get the time of the run)
  t.File("d2/w", "whited out");
  t.Whiteout("d2/.wh.w");
  t.File("big", std::string(3 << 20, 'B'));  // over the queued-file size: written in order by the reader
  t.Dir("d3");
  t.File("d3/kept", "kept");
  t.Whiteout("d3/.wh..wh..opq");
  t.File("empty", "");
  std::string tar = t.Finish();
  std::map<int, TreeDesc> trees;
  for (int threads : {1, 2, 4, 8}) {
    std::string dir = base_ + "/t" + std::to_string(threads);
    auto stats = UnpackBytes(tar, dir, threads);
    ASSERT_TRUE(stats) << threads << ": " << stats.error().message();
    trees[threads] = Describe(dir);
    EXPECT_EQ("second", *ReadFile(dir + "/twice"));
    EXPECT_EQ("under what was a file", *ReadFile(dir + "/x/inside"));
    EXPECT_EQ("now a file", *ReadFile(dir + "/gone"));
    EXPECT_EQ("linked", *ReadFile(dir + "/link"));
    EXPECT_FALSE(PathExists(dir + "/d2/w"));
    EXPECT_EQ("kept", *ReadFile(dir + "/d3/kept"));
    EXPECT_EQ("data 299" + std::string(299 * 7, 'x'), *ReadFile(dir + "/d/f299"));
    struct stat st;
    ASSERT_EQ(0, ::lstat((dir + "/d/f17").c_str(), &st));
    EXPECT_EQ(0640u, st.st_mode & 07777);
    EXPECT_EQ(1600000000, st.st_mtim.tv_sec);
    struct stat a, b;
    ASSERT_EQ(0, ::lstat((dir + "/target").c_str(), &a));
    ASSERT_EQ(0, ::lstat((dir + "/link").c_str(), &b));
    EXPECT_EQ(a.st_ino, b.st_ino);
  }
  ExpectSameTrees(trees);
}

// An entry that fails after files were queued (here: a file under a queued
// file) fails the unpack with the entry's name, whatever the thread count.
TEST_F(PackUnpackTest, WriterThreadErrorsNameTheEntry) {
  TarBuilder t;
  for (int i = 0; i < 50; ++i)
    t.File("f" + std::to_string(i), "x");
  t.File("f3/under", "a file under a file");
  std::string tar = t.Finish();
  for (int threads : {1, 4}) {
    std::string dir = base_ + "/e" + std::to_string(threads);
    auto stats = UnpackBytes(tar, dir, threads);
    ASSERT_FALSE(stats) << threads;
    EXPECT_NE(std::string::npos, stats.error().message().find("f3/under")) << stats.error().message();
  }
}

// Two layers applied in turn (whiteouts applied: the lower layer is already
// in the directory), with every writer-thread count: whiteout then recreate
// (file and directory), opaque directories with files of the same layer
// still queued before and after the marker, hard links to files of the same
// layer (also chains and links across directories), a deep tree and many
// files. Every thread count gives the tree one thread gives.
TEST_F(PackUnpackTest, WriterThreadsOrderAcrossLayers) {
  TarBuilder lower;
  lower.Dir("w");
  lower.File("w/f", "lower f");
  lower.Dir("w/d");
  lower.File("w/d/old", "lower old");
  lower.Dir("o");
  for (int i = 0; i < 40; ++i)
    lower.File("o/lower" + std::to_string(i), "lower");
  lower.Dir("o2");
  lower.File("o2/lower", "lower");
  lower.File("keep", "untouched");
  const std::string lower_tar = lower.Finish();

  TarBuilder t;
  // Whiteout, then the same names again in this layer.
  t.Dir("w");
  t.Whiteout("w/.wh.f");
  t.File("w/f", "upper f");
  t.Whiteout("w/.wh.d");
  t.Dir("w/d");
  t.File("w/d/new", "upper new");
  // Opaque: files of this layer queued before the marker stay, the lower
  // ones go; files after it are made.
  t.Dir("o");
  for (int i = 0; i < 40; ++i)
    t.File("o/upper" + std::to_string(i), "upper " + std::to_string(i));
  t.Whiteout("o/.wh..wh..opq");
  t.File("o/after", "after the marker");
  // The marker first (as BuildKit writes it).
  t.Dir("o2");
  t.Whiteout("o2/.wh..wh..opq");
  t.File("o2/new", "new");
  // Hard links to files of this layer, still queued: in another directory,
  // a chain (link to a link), and a link made before its target is
  // replaced by a later entry (the link keeps the first data).
  t.Dir("h");
  t.Dir("h/deep");
  t.File("h/deep/target", "target data");
  t.Hardlink("h/l1", "h/deep/target");
  t.Hardlink("l2", "h/l1");
  t.File("first", "first data");
  t.Hardlink("first-link", "first");
  t.File("first", "replaced");
  // A deep tree with a file at every level.
  std::string deep = "deep";
  t.Dir(deep);
  for (int i = 0; i < 60; ++i) {
    t.File(deep + "/f", "level " + std::to_string(i));
    deep += "/d" + std::to_string(i);
    t.Dir(deep);
  }
  // Many files in many directories (more than the writer queue holds).
  t.Dir("many");  // (directories made implicitly would get the time of the run)
  for (int d = 0; d < 12; ++d) {
    t.Dir("many/d" + std::to_string(d));
    for (int i = 0; i < 60; ++i)
      t.File("many/d" + std::to_string(d) + "/f" + std::to_string(i), std::to_string(d * 1000 + i));
  }
  const std::string tar = t.Finish();

  std::map<int, TreeDesc> trees;
  for (int threads : {1, 2, 4, 8}) {
    std::string dir = base_ + "/t" + std::to_string(threads);
    auto ls = UnpackBytes(lower_tar, dir, threads);
    ASSERT_TRUE(ls) << threads << ": " << ls.error().message();
    auto stats = UnpackBytes(tar, dir, threads);
    ASSERT_TRUE(stats) << threads << ": " << stats.error().message();
    trees[threads] = Describe(dir);
    EXPECT_EQ("upper f", *ReadFile(dir + "/w/f")) << threads;
    EXPECT_FALSE(PathExists(dir + "/w/d/old")) << threads;
    EXPECT_EQ("upper new", *ReadFile(dir + "/w/d/new")) << threads;
    for (int i = 0; i < 40; ++i) {
      EXPECT_FALSE(PathExists(dir + "/o/lower" + std::to_string(i))) << threads;
      EXPECT_EQ("upper " + std::to_string(i), *ReadFile(dir + "/o/upper" + std::to_string(i))) << threads;
    }
    EXPECT_EQ("after the marker", *ReadFile(dir + "/o/after")) << threads;
    EXPECT_FALSE(PathExists(dir + "/o2/lower")) << threads;
    EXPECT_EQ("new", *ReadFile(dir + "/o2/new")) << threads;
    EXPECT_EQ("untouched", *ReadFile(dir + "/keep")) << threads;
    struct stat a, b, c;
    ASSERT_EQ(0, ::lstat((dir + "/h/deep/target").c_str(), &a));
    ASSERT_EQ(0, ::lstat((dir + "/h/l1").c_str(), &b));
    ASSERT_EQ(0, ::lstat((dir + "/l2").c_str(), &c));
    EXPECT_EQ(a.st_ino, b.st_ino) << threads;
    EXPECT_EQ(a.st_ino, c.st_ino) << threads;
    EXPECT_EQ(3u, a.st_nlink) << threads;
    EXPECT_EQ("target data", *ReadFile(dir + "/l2")) << threads;
    EXPECT_EQ("first data", *ReadFile(dir + "/first-link")) << threads;
    EXPECT_EQ("replaced", *ReadFile(dir + "/first")) << threads;
    EXPECT_EQ("level 59", *ReadFile(dir + "/" + deep.substr(0, deep.rfind('/')) + "/f")) << threads;
    EXPECT_TRUE(PathExists(dir + "/" + deep)) << threads;
    for (int d = 0; d < 12; d += 5)
      for (int i = 0; i < 60; i += 17)
        EXPECT_EQ(std::to_string(d * 1000 + i),
                  *ReadFile(dir + "/many/d" + std::to_string(d) + "/f" + std::to_string(i)))
            << threads;
    EXPECT_GT(stats->entries, 800) << threads;
  }
  ExpectSameTrees(trees);
}

// Parallel gzip: the blob is the same bytes whatever the thread count (a
// reproducible cache needs it) at every level, over many 256 KiB blocks with
// compressible and incompressible stretches (stored and deflated runs), and
// every gzip reader at hand accepts it and gives the tar back (gzip -t,
// pigz -t, Python's gzip module, zlib streaming).
TEST_F(PackUnpackTest, ParallelGzipSameBytesForAnyThreadCountAndReadable) {
  std::string mixed;
  uint64_t s = 0x243f6a8885a308d3ULL;
  for (int block = 0; block < 24; ++block) {
    for (int i = 0; i < 250000; ++i) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      mixed.push_back(block % 3 == 0 ? static_cast<char>(s) : "kiln layer text\n"[(i + (s & 1)) % 16]);
    }
  }
  Write(src_ + "/mixed.bin", mixed);
  Write(src_ + "/text.txt", std::string(700000, 'a') + "tail");
  for (int i = 0; i < 50; ++i)
    Write(src_ + "/small/f" + std::to_string(i), "small " + std::to_string(i));
  for (int level : {1, 6, 9}) {
    std::optional<Packed> first;
    for (int threads : {1, 2, 3, 8}) {
      PackOptions opt;
      opt.compression = Compression::kGzip;
      opt.level = level;
      opt.threads = threads;
      std::string out = base_ + "/l" + std::to_string(level) + "-" + std::to_string(threads) + ".tar.gz";
      Packed p = PackTo(src_, out, opt);
      if (!first) {
        first = p;
        EXPECT_GT(p.info.uncompressed_size, 6 << 20);  // ~25 blocks of 256 KiB
        continue;
      }
      EXPECT_EQ(first->info.digest, p.info.digest) << "level " << level << ", " << threads << " threads";
      EXPECT_EQ(0, Sh("cmp -s " + first->path + " " + out)) << out;
    }
    const std::string& gz = first->path;
    const std::string sum = base_ + "/sum";
    EXPECT_EQ(0, Sh("gzip -t " + gz)) << gz;
    if (Sh("command -v pigz >/dev/null") == 0) {
      EXPECT_EQ(0, Sh("pigz -t " + gz)) << gz;
    }
    if (Sh("command -v python3 >/dev/null") == 0) {
      EXPECT_EQ(0, Sh("python3 -c 'import gzip,hashlib,sys; print(hashlib.sha256(gzip.open(sys.argv[1]).read())"
                      ".hexdigest())' " + gz + " > " + sum));
      EXPECT_EQ(first->info.diff_id.hex() + "\n", *ReadFile(sum)) << "python gzip, level " << level;
      EXPECT_EQ(0, Sh("python3 -c 'import zlib,hashlib,sys; d=zlib.decompressobj(31); h=hashlib.sha256();"
                      "f=open(sys.argv[1],\"rb\")\nfor c in iter(lambda: f.read(4096), b\"\"): h.update(d.decompress(c))\n"
                      "h.update(d.flush()); assert d.eof and not d.unused_data; print(h.hexdigest())' " + gz + " > " + sum));
      EXPECT_EQ(first->info.diff_id.hex() + "\n", *ReadFile(sum)) << "python zlib, level " << level;
    }
    EXPECT_EQ(0, Sh("gzip -dc " + gz + " | sha256sum | cut -d' ' -f1 > " + sum));
    EXPECT_EQ(first->info.diff_id.hex() + "\n", *ReadFile(sum)) << "gzip -dc, level " << level;
  }
}

TEST_F(PackUnpackTest, SortedNumericOwnersNoNames) {
  BuildTree(src_);
  Packed p = PackTo(src_, base_ + "/l.tar", {.compression = Compression::kNone});
  auto names = TarNames(p.path);
  ASSERT_FALSE(names.empty());
  // Depth-first, sorted per directory, directories with a trailing slash.
  EXPECT_EQ(std::string(120, 'L') + "/", names[0]);  // 'L' < 'a': plain byte order
  EXPECT_TRUE(std::is_sorted(names.begin() + 2, names.begin() + 5)) << names[2] << names[3] << names[4];
  auto pos = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) - names.begin(); };
  EXPECT_LT(pos("bin/"), pos("bin/sgid"));
  EXPECT_LT(pos("bin/sgid"), pos("bin/tool"));
  EXPECT_LT(pos("sub/deeper/file"), pos("sub/hard2"));
  EXPECT_EQ(static_cast<long>(names.size()), std::find(names.begin(), names.end(), "./") - names.begin());
  // uname/gname empty: GNU tar shows numeric ids only, and finds no
  // unknown pax keywords.
  EXPECT_EQ(0, Sh("tar -tvf " + p.path + " | awk '{print $2}' | grep -qv '^[0-9]*/[0-9]*$' ; test $? -eq 1"));
  // (hdrcharset=BINARY, standard pax, marks the one name that is not UTF-8.)
  EXPECT_EQ(0, Sh("tar -tvf " + p.path + " 2>&1 >/dev/null | grep -v \"keyword 'hdrcharset'\" | grep -q . ; test $? -eq 1"));
  EXPECT_EQ(0, Sh("test $(tar -tvf " + p.path + " 2>&1 >/dev/null | grep -c hdrcharset) -eq 1"));
}

TEST_F(PackUnpackTest, ClampMtime) {
  Write(src_ + "/old", "o");
  Write(src_ + "/new", "n");
  SetTimes(src_ + "/old", 1000);
  SetTimes(src_ + "/new", 2000000000);
  std::map<std::string, int64_t> mtimes;
  Packed p = PackTo(src_, base_ + "/l.tar", {.compression = Compression::kNone, .clamp_mtime = 1700000000});
  TarNames(p.path, nullptr, &mtimes);
  EXPECT_EQ(1000, mtimes["old"]);
  EXPECT_EQ(1700000000, mtimes["new"]);
  // Clamping makes "touch" of new files irrelevant.
  SetTimes(src_ + "/new", 2000000123);
  Packed q = PackTo(src_, base_ + "/m.tar", {.compression = Compression::kNone, .clamp_mtime = 1700000000});
  EXPECT_EQ(p.info.digest, q.info.digest);
}

TEST_F(PackUnpackTest, ReadableByStandardTools) {
  BuildTree(src_);
  Packed gz = PackTo(src_, base_ + "/l.tar.gz", {.compression = Compression::kGzip});
  Packed zs = PackTo(src_, base_ + "/l.tar.zst", {.compression = Compression::kZstd});
  EXPECT_EQ(0, Sh("gzip -t " + gz.path));
  EXPECT_EQ(0, Sh("zstd -q -t " + zs.path));
  EXPECT_EQ(0, Sh("tar -tzf " + gz.path + " | grep -q '" + std::string(150, 'n') + ".txt'"));
  // diff_id is the sha256 of what gunzip/unzstd produce.
  std::string sum = base_ + "/sum";
  EXPECT_EQ(0, Sh("gzip -dc " + gz.path + " | sha256sum | cut -d' ' -f1 > " + sum));
  EXPECT_EQ(gz.info.diff_id.hex() + "\n", *ReadFile(sum));
  EXPECT_EQ(0, Sh("zstd -qdc " + zs.path + " | sha256sum | cut -d' ' -f1 > " + sum));
  EXPECT_EQ(zs.info.diff_id.hex() + "\n", *ReadFile(sum));
  EXPECT_EQ(gz.info.diff_id, zs.info.diff_id);
  // GNU tar extracts the same tree (xattrs aside).
  std::string gnu = base_ + "/gnu";
  ASSERT_TRUE(MakeDirs(gnu));
  ASSERT_EQ(0, Sh("tar --numeric-owner -xpzf " + gz.path + " -C " + gnu + " 2>/dev/null"));
  TreeDesc a = Describe(src_, false), b = Describe(gnu, false);
  EXPECT_EQ(a.entries, b.entries);
  EXPECT_EQ(a.links, b.links);
}

TEST_F(PackUnpackTest, SocketsSkipped) {
  Write(src_ + "/f", "f");
  int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string sp = src_ + "/sock";
  ASSERT_LT(sp.size(), sizeof addr.sun_path);
  std::strcpy(addr.sun_path, sp.c_str());
  ASSERT_EQ(0, ::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr));
  ::close(s);
  Packed p = PackTo(src_, base_ + "/l.tar", {.compression = Compression::kNone});
  EXPECT_EQ(std::vector<std::string>{"f"}, TarNames(p.path));
}

// The upperdir of an overlay mount: whiteout devices and opaque xattrs.
TEST_F(PackUnpackTest, OverlayUpperToOciWhiteouts) {
  if (!IsRoot())
    GTEST_SKIP() << "mknod 0/0 and trusted.* xattrs need root";
  std::string up = src_;
  ASSERT_EQ(0, ::mknod((up + "/gone").c_str(), S_IFCHR, makedev(0, 0)));
  ASSERT_TRUE(MakeDirs(up + "/opq"));
  Write(up + "/opq/new", "new");
  ASSERT_EQ(0, ::setxattr((up + "/opq").c_str(), "trusted.overlay.opaque", "y", 1, 0));
  ASSERT_TRUE(MakeDirs(up + "/uopq"));
  ASSERT_EQ(0, ::setxattr((up + "/uopq").c_str(), "user.overlay.opaque", "y", 1, 0));
  ASSERT_TRUE(MakeDirs(up + "/partial"));
  ASSERT_EQ(0, ::setxattr((up + "/partial").c_str(), "user.overlay.opaque", "x", 1, 0));
  Write(up + "/partial/xwh", "");
  ASSERT_EQ(0, ::setxattr((up + "/partial/xwh").c_str(), "user.overlay.whiteout", "", 0, 0));
  Write(up + "/kept", "k");
  ASSERT_EQ(0, ::setxattr((up + "/kept").c_str(), "trusted.overlay.origin", "zz", 2, 0));
  std::map<std::string, std::vector<std::string>> xattrs;
  Packed p = PackTo(up, base_ + "/l.tar", {.compression = Compression::kNone, .from_overlay_upper = true});
  auto names = TarNames(p.path, &xattrs);
  std::vector<std::string> want = {".wh.gone", "kept",         "opq/",         "opq/.wh..wh..opq", "opq/new",
                                   "partial/", "partial/.wh.xwh", "uopq/", "uopq/.wh..wh..opq"};
  EXPECT_EQ(want, names);
  for (auto& [n, xs] : xattrs)
    for (auto& x : xs)
      EXPECT_EQ(std::string::npos, x.find("overlay")) << n << " carries " << x;
  // Without from_overlay_upper the device is just a device.
  Packed plain = PackTo(up, base_ + "/p.tar", {.compression = Compression::kNone});
  auto plain_names = TarNames(plain.path);
  EXPECT_NE(plain_names.end(), std::find(plain_names.begin(), plain_names.end(), "gone"));
}

TEST_F(PackUnpackTest, WhiteoutsAppliedAndConvertedMatchOverlayMount) {
  // Lower layer.
  std::string lower_tar = test::TarBuilder()
                              .Dir("etc")
                              .File("etc/keep", "keep")
                              .File("etc/remove", "remove")
                              .Dir("var")
                              .Dir("var/cache")
                              .File("var/cache/old1", "1")
                              .File("var/cache/old2", "2")
                              .Dir("gonedir")
                              .File("gonedir/x", "x")
                              .Finish();
  // Upper layer: remove a file and a directory; make var/cache opaque with a
  // new file whose name sorts before the marker.
  std::string upper_tar = test::TarBuilder()
                              .Dir("etc")
                              .Whiteout("etc/.wh.remove")
                              .Whiteout(".wh.gonedir")
                              .Dir("var/cache")
                              .File("var/cache/-early", "e")
                              .Whiteout("var/cache/.wh..wh..opq")
                              .File("var/cache/new", "n")
                              .Finish();
  auto write_layer = [&](const std::string& name, const std::string& bytes) {
    Write(base_ + "/" + name, bytes);
    return base_ + "/" + name;
  };
  std::string lower = write_layer("lower.tar", lower_tar), upper = write_layer("upper.tar", upper_tar);
  // Flattened: both layers into one dir, whiteouts applied.
  std::string flat = base_ + "/flat";
  ASSERT_TRUE(MakeDirs(flat));
  ASSERT_TRUE(UnpackFrom(lower, flat));
  auto st = UnpackFrom(upper, flat);
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_EQ(3, st->whiteouts);
  EXPECT_TRUE(PathExists(flat + "/etc/keep"));
  EXPECT_FALSE(PathExists(flat + "/etc/remove"));
  EXPECT_FALSE(PathExists(flat + "/gonedir"));
  EXPECT_FALSE(PathExists(flat + "/var/cache/old1"));
  EXPECT_TRUE(PathExists(flat + "/var/cache/-early"));
  EXPECT_TRUE(PathExists(flat + "/var/cache/new"));

  // Converted: each layer in its own dir, whiteouts in overlay form (the
  // probed form, then the xattr form forced), mounted with overlayfs.
  std::vector<std::optional<WhiteoutFormat>> forms = {std::nullopt};
  if (IsRoot())
    forms.push_back(WhiteoutFormat::kXattr);
  int round = 0;
  for (const auto& form : forms) {
    SCOPED_TRACE(form ? "forced xattr whiteouts" : "probed whiteout form");
    std::string l1 = base_ + "/l1-" + std::to_string(round), l2 = base_ + "/l2-" + std::to_string(round);
    ++round;
    ASSERT_TRUE(MakeDirs(l1));
    ASSERT_TRUE(MakeDirs(l2));
    UnpackOptions ov;
    ov.whiteouts = WhiteoutMode::kOverlay;
    ov.whiteout_format = form;
    ASSERT_TRUE(UnpackFrom(lower, l1, ov));
    st = UnpackFrom(upper, l2, ov);
    ASSERT_TRUE(st) << st.error().message();
    WhiteoutFormat fmt = form ? *form : ProbeWhiteoutFormat(l2);
    ASSERT_NE(WhiteoutFormat::kNone, fmt);
    bool trusted = OverlayXattrsForMount() == OverlayXattrs::kTrusted;  // the namespace the unpack chose
    std::string ns = trusted ? "trusted" : "user";
    struct stat s;
    ASSERT_EQ(0, ::lstat((l2 + "/etc/remove").c_str(), &s));
    char v[4] = {};
    if (fmt == WhiteoutFormat::kCharDevice) {
      EXPECT_TRUE(S_ISCHR(s.st_mode));
      EXPECT_EQ(makedev(0, 0), s.st_rdev);
    } else {
      EXPECT_TRUE(S_ISREG(s.st_mode));
      EXPECT_EQ(0, ::getxattr((l2 + "/etc/remove").c_str(), (ns + ".overlay.whiteout").c_str(), v, sizeof v));
      ASSERT_EQ(1, ::getxattr((l2 + "/etc").c_str(), (ns + ".overlay.opaque").c_str(), v, sizeof v));
      EXPECT_EQ('x', v[0]);
    }
    std::string opq = ns + ".overlay.opaque";
    ASSERT_EQ(1, ::getxattr((l2 + "/var/cache").c_str(), opq.c_str(), v, sizeof v)) << opq;
    EXPECT_EQ('y', v[0]);

    if (!IsRoot())
      continue;
    std::string mnt = base_ + "/mnt";
    ASSERT_TRUE(MakeDirs(mnt));
    std::string opts = "lowerdir=" + l2 + ":" + l1;
    if (::mount("overlay", mnt.c_str(), "overlay", MS_RDONLY, opts.c_str()) != 0)
      GTEST_SKIP() << "cannot mount overlayfs here: " << std::strerror(errno);
    TreeDesc merged = Describe(mnt, false), flattened = Describe(flat, false);
    ::umount2(mnt.c_str(), MNT_DETACH);
    // Compare names (directory mtimes differ by construction).
    std::set<std::string> a, b;
    for (auto& [k, v2] : merged.entries)
      a.insert(k);
    for (auto& [k, v2] : flattened.entries)
      b.insert(k);
    EXPECT_EQ(b, a);
  }
}

// Rootless shape: a user namespace with one id mapped. Unmapped ids give a
// clear error; whiteout conversion uses user.overlay.* xattrs.
TEST_F(PackUnpackTest, UserNamespaceUnmappedIdsAndUserXattrWhiteouts) {
  std::string l1 = base_ + "/ids.tar", l2 = base_ + "/wh.tar";
  Write(l1, test::TarBuilder().File("mine", "x").File("theirs", "x", {.uid = 1000, .gid = 1000}).Finish());
  Write(l2, test::TarBuilder().Dir("d").Whiteout("d/.wh.x").Whiteout("d/.wh..wh..opq").Finish());
  std::string d1 = base_ + "/d1", d2 = base_ + "/d2";
  ASSERT_TRUE(MakeDirs(d1));
  ASSERT_TRUE(MakeDirs(d2));
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    uid_t uid = ::geteuid();
    gid_t gid = ::getegid();
    if (::unshare(CLONE_NEWUSER) != 0)
      ::_exit(77);
    if (!WriteAll(UniqueFd(::open("/proc/self/uid_map", O_WRONLY)).get(), "0 " + std::to_string(uid) + " 1\n"))
      ::_exit(78);
    (void)WriteAll(UniqueFd(::open("/proc/self/setgroups", O_WRONLY)).get(), "deny");
    if (!WriteAll(UniqueFd(::open("/proc/self/gid_map", O_WRONLY)).get(), "0 " + std::to_string(gid) + " 1\n"))
      ::_exit(79);
    auto r = UnpackFrom(l1, d1);
    if (r)
      ::_exit(10);
    const std::string& m = r.error().message();
    if (m.find("/etc/subuid") == std::string::npos || m.find("theirs") == std::string::npos ||
        m.find("1000") == std::string::npos)
      ::_exit(11);
    if (r.error().code() != Errc::kSandbox)
      ::_exit(12);
    UnpackOptions ov;
    ov.whiteouts = WhiteoutMode::kOverlay;
    auto r2 = UnpackFrom(l2, d2, ov);
    if (!r2)
      ::_exit(13);
    char v[2] = {};
    if (::getxattr((d2 + "/d").c_str(), "user.overlay.opaque", v, 1) != 1 || v[0] != 'y')
      ::_exit(14);
    struct stat st;
    if (::lstat((d2 + "/d/x").c_str(), &st) != 0)
      ::_exit(15);
    bool dev_form = S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
    bool xattr_form = S_ISREG(st.st_mode) && ::getxattr((d2 + "/d/x").c_str(), "user.overlay.whiteout", v, 1) >= 0;
    ::_exit(dev_form || xattr_form ? 0 : 16);
  }
  int status = 0;
  ASSERT_EQ(pid, ::waitpid(pid, &status, 0));
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77)
    GTEST_SKIP() << "user namespaces are not available here";
  EXPECT_EQ(0, WEXITSTATUS(status)) << "child check failed (see exit code in the test)";
}

TEST_F(PackUnpackTest, LargeFileStreams) {
  std::string big(24 << 20, '\0');
  for (size_t i = 0; i < big.size(); i += 4096)
    big[i] = static_cast<char>(i / 4096);
  Write(src_ + "/big", big);
  for (Compression c : {Compression::kGzip, Compression::kZstd}) {
    Packed p = PackTo(src_, base_ + "/big.layer", {.compression = c});
    std::string dst = base_ + "/dst-" + CompressionName(c);
    ASSERT_TRUE(MakeDirs(dst));
    auto st = UnpackFrom(p.path, dst);
    ASSERT_TRUE(st) << st.error().message();
    EXPECT_EQ(p.info.diff_id, st->diff_id);
    EXPECT_EQ(Digest::Of(big), Digest::Of(*ReadFile(dst + "/big")));
  }
}

// The content of a file read through its data extents only (a sparse
// file's holes read as zeros): "size|offset:bytes|..." hashed. Equal for two
// files with the same size, data and holes, in time proportional to the data.
std::string SparseContent(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd)
    return "cannot open " + path;
  struct stat st;
  ::fstat(fd.get(), &st);
  std::string out = std::to_string(st.st_size);
  off_t pos = 0;
  while (pos < st.st_size) {
    off_t data = ::lseek(fd.get(), pos, SEEK_DATA);
    if (data < 0)
      break;
    off_t hole = ::lseek(fd.get(), data, SEEK_HOLE);
    std::string buf(static_cast<size_t>(hole - data), '\0');
    if (::pread(fd.get(), buf.data(), buf.size(), data) != static_cast<ssize_t>(buf.size()))
      return "short read of " + path;
    // Leading/trailing zeros of an extent are the file system's block
    // rounding, not content: strip them so layouts may differ by a block.
    size_t b = buf.find_first_not_of('\0');
    if (b != std::string::npos) {
      size_t e = buf.find_last_not_of('\0');
      out += "|" + std::to_string(data + static_cast<off_t>(b)) + ":" + buf.substr(b, e - b + 1);
    }
    pos = hole;
  }
  return Digest::Of(out).str();
}

// A sparse file (8 GiB apparent, a few KB of data) is packed as a PAX
// sparse entry: the layer and the time follow the data; unpack recreates
// the holes; GNU tar reads the same bytes (docs/security.md H15, issue 13).
TEST_F(PackUnpackTest, SparseFilesArePackedSparse) {
  const int64_t kSize = int64_t(8) << 30;
  {
    UniqueFd fd(::open((src_ + "/sparse").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(0, ::ftruncate(fd.get(), kSize));
    ASSERT_EQ(5, ::pwrite(fd.get(), "start", 5, 0));
    ASSERT_EQ(6, ::pwrite(fd.get(), "middle", 6, int64_t(3) << 30));
    ASSERT_EQ(3, ::pwrite(fd.get(), "end", 3, kSize - 3));
    struct stat st;
    ASSERT_EQ(0, ::fstat(fd.get(), &st));
    if (st.st_blocks * 512 >= kSize)
      GTEST_SKIP() << "this file system does not keep holes";
  }
  UniqueFd(::open((src_ + "/holes-only").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  ASSERT_EQ(0, ::truncate((src_ + "/holes-only").c_str(), int64_t(1) << 30));
  Write(src_ + "/dense", std::string(10000, 'd'));
  for (Compression c : {Compression::kNone, Compression::kGzip}) {
    auto t0 = std::chrono::steady_clock::now();
    Packed p = PackTo(src_, base_ + "/sparse.layer", {.compression = c});
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(p.info.size, 200000) << CompressionName(c);
    EXPECT_LT(p.info.uncompressed_size, 200000) << CompressionName(c);
    EXPECT_LT(secs, 2.0) << CompressionName(c);
    std::string dst = base_ + "/dst-" + CompressionName(c);
    ASSERT_TRUE(MakeDirs(dst));
    auto st = UnpackFrom(p.path, dst);
    ASSERT_TRUE(st) << st.error().message();
    EXPECT_EQ(p.info.diff_id, st->diff_id);
    struct stat a, b;
    ASSERT_EQ(0, ::stat((dst + "/sparse").c_str(), &a));
    EXPECT_EQ(kSize, a.st_size);
    ASSERT_LT(a.st_blocks * 512, int64_t(1) << 20) << "the unpacked file is not sparse";
    ASSERT_EQ(0, ::stat((dst + "/holes-only").c_str(), &b));
    EXPECT_EQ(int64_t(1) << 30, b.st_size);
    ASSERT_LT(b.st_blocks * 512, int64_t(1) << 20);
    EXPECT_EQ(SparseContent(src_ + "/sparse"), SparseContent(dst + "/sparse"));
    EXPECT_EQ(SparseContent(src_ + "/holes-only"), SparseContent(dst + "/holes-only"));
    EXPECT_EQ(*ReadFile(src_ + "/dense"), *ReadFile(dst + "/dense"));
  }
  // GNU tar understands the sparse map (as Go's archive/tar does).
  Packed p = PackTo(src_, base_ + "/sparse.tar", {.compression = Compression::kNone});
  std::string gnu = base_ + "/gnu";
  ASSERT_TRUE(MakeDirs(gnu));
  ASSERT_EQ(0, Sh("tar -xf " + p.path + " -C " + gnu + " sparse"));
  struct stat g;
  ASSERT_EQ(0, ::stat((gnu + "/sparse").c_str(), &g));
  ASSERT_EQ(kSize, g.st_size);
  ASSERT_LT(g.st_blocks * 512, int64_t(1) << 20) << "GNU tar made it dense";
  EXPECT_EQ(SparseContent(src_ + "/sparse"), SparseContent(gnu + "/sparse"));
  // Packing twice gives the same bytes.
  Packed q = PackTo(src_, base_ + "/sparse2.tar", {.compression = Compression::kNone});
  EXPECT_EQ(p.info.digest, q.info.digest);
}

TEST_F(PackUnpackTest, EmptyDirectoryIsAValidLayer) {
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    Packed p = PackTo(src_, base_ + "/empty.layer", {.compression = c});
    EXPECT_EQ(0, p.info.entries);
    EXPECT_EQ(1024, p.info.uncompressed_size);
    std::string dst = base_ + "/e-" + CompressionName(c);
    ASSERT_TRUE(MakeDirs(dst));
    auto st = UnpackFrom(p.path, dst);
    ASSERT_TRUE(st) << st.error().message();
    EXPECT_EQ(p.info.diff_id, st->diff_id);
  }
}

TEST_F(PackUnpackTest, CopyAndHash) {
  Write(base_ + "/in", "some bytes");
  UniqueFd in(::open((base_ + "/in").c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd out(::open((base_ + "/out").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  int64_t n = 0;
  auto d = CopyAndHash(in.get(), out.get(), 100, &n);
  ASSERT_TRUE(d);
  EXPECT_EQ(Digest::Of("some bytes"), *d);
  EXPECT_EQ(10, n);
  EXPECT_EQ("some bytes", *ReadFile(base_ + "/out"));
  ::lseek(in.get(), 0, SEEK_SET);
  EXPECT_FALSE(CopyAndHash(in.get(), -1, 5));
}

TEST_F(PackUnpackTest, SniffCompression) {
  EXPECT_EQ(Compression::kGzip, SniffCompression("\x1f\x8b\x08"));
  EXPECT_EQ(Compression::kZstd, SniffCompression("\x28\xb5\x2f\xfd"));
  EXPECT_EQ(Compression::kBzip2, SniffCompression("BZh9"));
  EXPECT_EQ(Compression::kXz, SniffCompression("\xfd" "7zXZ"));
  EXPECT_EQ(Compression::kNone, SniffCompression("a.txt"));
  EXPECT_EQ(Compression::kNone, SniffCompression(""));
}

TEST_F(PackUnpackTest, Bzip2AndXzLayersRead) {
  Write(src_ + "/f", "content");
  Packed p = PackTo(src_, base_ + "/l.tar", {.compression = Compression::kNone});
  for (const char* tool : {"bzip2", "xz"}) {
    if (Sh(std::string("command -v ") + tool + " >/dev/null") != 0)
      continue;
    std::string z = base_ + "/l." + tool;
    ASSERT_EQ(0, Sh(std::string(tool) + " -c " + p.path + " > " + z));
    std::string dst = base_ + "/d-" + tool;
    ASSERT_TRUE(MakeDirs(dst));
    auto st = UnpackFrom(z, dst);
    ASSERT_TRUE(st) << st.error().message();
    EXPECT_EQ(p.info.diff_id, st->diff_id);
    EXPECT_EQ("content", *ReadFile(dst + "/f"));
  }
}

}  // namespace
}  // namespace kiln::layer
