#include "kiln/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "kiln/fs.h"
#include "kiln/reference.h"
#include "support/scratch.h"
#include "support/temp_store.h"

namespace kiln {
namespace {

using kiln::testing::DirNames;

class StoreTest : public testing::TempStoreTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MakeTempStore("kiln-store-test-"));
  }

  /// A one-layer image whose layer blob is `content` (not a real tar: the
  /// store does not look inside layers).
  Descriptor MakeImage(const std::string& content, const std::string& cmd = "sh") {
    auto layer = store_->PutBlob(kMediaTypeOciLayer, content);
    EXPECT_TRUE(layer) << layer.error().message();
    ImageConfig c;
    c.set_platform(Platform::Host());
    c.config.cmd = std::vector<std::string>{cmd};
    c.diff_ids = {layer->digest};
    c.history = {{"2026-01-01T00:00:00Z", "test", "", "", false}};
    auto m = store_->WriteImage(c, {*layer});
    EXPECT_TRUE(m) << m.error().message();
    return *m;
  }

  /// AddImage(m, names), then the image as the store loads it.
  Expected<StoredImage> AddAndLoad(const Descriptor& m, const std::vector<std::string>& names) {
    KILN_TRY(store_->AddImage(m, names));
    return store_->LoadImage(m);
  }
};

TEST_F(StoreTest, OpenCreatesAnOciLayout) {
  const std::string& root = store_->root();
  for (const char* p : {"oci-layout", "index.json", "blobs/sha256", "layers", "cache", "containers", "tmp"})
    EXPECT_TRUE(PathExists(JoinPath(root, p))) << p;
  EXPECT_EQ(*ReadFile(JoinPath(root, "oci-layout")), R"({"imageLayoutVersion":"1.0.0"})");
  auto idx = ParseIndex(*ReadFile(JoinPath(root, "index.json")));
  ASSERT_TRUE(idx);
  EXPECT_TRUE(idx->manifests.empty());
  // Opening again is fine and keeps content.
  auto again = Store::Open(root);
  ASSERT_TRUE(again);
}

// tmp/ (where layers are unpacked and build steps fill their files) is a
// top directory for ext4's Orlov allocator (chattr +T), set on a new store
// and on an existing one that lacks it; where the file system has no such
// flag, opening the store still works.
TEST_F(StoreTest, TmpIsATopDirectoryWhereSupported) {
  const std::string tmp = JoinPath(store_->root(), "tmp");
  auto flags_of = [&](int* flags) {
    UniqueFd fd(::open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return fd && ::ioctl(fd.get(), FS_IOC_GETFLAGS, flags) == 0;
  };
  int flags = 0;
  if (!flags_of(&flags))
    GTEST_SKIP() << "no FS_IOC_GETFLAGS on this file system";
  {
    UniqueFd fd(::open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    int cleared = flags & ~FS_TOPDIR_FL;
    if (::ioctl(fd.get(), FS_IOC_SETFLAGS, &cleared) != 0)
      GTEST_SKIP() << "FS_IOC_SETFLAGS refused here";
  }
  if (!(flags & FS_TOPDIR_FL))
    GTEST_SKIP() << "this file system does not keep FS_TOPDIR_FL (not ext2/3/4)";
  ASSERT_TRUE(flags_of(&flags));
  ASSERT_FALSE(flags & FS_TOPDIR_FL);
  auto again = Store::Open(store_->root());
  ASSERT_TRUE(again) << again.error().message();
  ASSERT_TRUE(flags_of(&flags));
  EXPECT_TRUE(flags & FS_TOPDIR_FL) << "tmp/ is not marked +T after Store::Open";
}

TEST_F(StoreTest, BlobsAreVerified) {
  auto d = store_->PutBlob("text/plain", "hello");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->digest, Digest::Of("hello"));
  EXPECT_EQ(*store_->ReadBlob(d->digest), "hello");
  // A second write of the same content is a no-op success.
  ASSERT_TRUE(store_->PutBlob("text/plain", "hello"));

  {
  // Wrong expected digest: refused, nothing published.
  auto w = store_->NewBlobWriter(Digest::Of("other"));
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->Write("tampered"));
  auto c = w->Commit("x/y");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), Errc::kCorrupt);
  EXPECT_NE(c.error().message().find("digest mismatch"), std::string::npos);
  EXPECT_FALSE(store_->HasBlob(Digest::Of("tampered")));

  // Size cap: Write refuses to go past the expected size.
  auto w2 = store_->NewBlobWriter(Digest::Of("abc"), 2);
  ASSERT_TRUE(w2);
  auto s = w2->Write("abc");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("size mismatch"), std::string::npos);
  // Trailing bytes count: a short write fails the size check.
  auto w3 = store_->NewBlobWriter(std::nullopt, 10);
  ASSERT_TRUE(w3);
  ASSERT_TRUE(w3->Write("short"));
  EXPECT_FALSE(w3->Commit());

  // A producer writing through fd(): the file is re-hashed.
  auto w4 = store_->NewBlobWriter(Digest::Of("via fd"));
  ASSERT_TRUE(w4);
  ASSERT_TRUE(WriteAll(w4->fd(), "via fd"));
  auto c4 = w4->Commit("a/b");
  ASSERT_TRUE(c4) << c4.error().message();
  EXPECT_EQ(c4->size, 6);
  }
  // Writers that were not committed removed their temp files.
  auto l = DirNames(store_->TmpDir());
  EXPECT_TRUE(l.empty()) << l.front();

  // A corrupted blob on disk is detected on read.
  ASSERT_EQ(::chmod(store_->BlobPath(d->digest).c_str(), 0644), 0);
  ASSERT_TRUE(WriteFileAtomic(store_->BlobPath(d->digest), "jello"));
  auto r = store_->ReadBlob(d->digest);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::kCorrupt);
  auto chk = store_->Check();
  ASSERT_TRUE(chk);
  EXPECT_FALSE(chk->ok());
}

TEST_F(StoreTest, NamesResolveLikePodman) {
  Descriptor a = MakeImage("layer-a", "a");
  Descriptor b = MakeImage("layer-b", "b");
  std::vector<std::string> names_a = {"localhost/app:latest", "docker.io/library/busybox:latest"};
  ASSERT_TRUE(store_->AddImage(a, names_a));
  std::vector<std::string> names_b = {"quay.io/x/y:1"};
  ASSERT_TRUE(store_->AddImage(b, names_b));

  auto by_short = store_->ResolveImage("app");
  ASSERT_TRUE(by_short) << by_short.error().message();
  EXPECT_EQ(by_short->top.digest, a.digest);
  EXPECT_EQ(by_short->names.size(), 2u);
  EXPECT_EQ(store_->ResolveImage("busybox")->top.digest, a.digest);
  EXPECT_EQ(store_->ResolveImage("quay.io/x/y:1")->top.digest, b.digest);
  // By ID (config digest), prefix and full, and by manifest digest.
  std::string id = by_short->id().hex();
  EXPECT_EQ(store_->ResolveImage(id.substr(0, 12))->top.digest, a.digest);
  EXPECT_EQ(store_->ResolveImage("sha256:" + id)->top.digest, a.digest);
  EXPECT_EQ(store_->ResolveImage(b.digest.str())->top.digest, b.digest);
  EXPECT_EQ(store_->ResolveImage("quay.io/x/y@" + b.digest.str())->top.digest, b.digest);
  // Missing and malformed.
  auto missing = store_->ResolveImage("nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::kNotFound);
  EXPECT_EQ(missing.error().message(), "image not known: nope");
  auto bad = store_->ResolveImage("Bad Name");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Errc::kInvalidInput);

  // Moving a name leaves the old image unnamed, not gone.
  std::vector<std::string> move = {"localhost/app:latest"};
  ASSERT_TRUE(store_->AddImage(b, move));
  EXPECT_EQ(store_->ResolveImage("app")->top.digest, b.digest);
  ASSERT_TRUE(store_->RemoveName("docker.io/library/busybox:latest"));
  auto list = store_->ListImages();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  int unnamed = 0;
  for (const auto& e : *list)
    unnamed += e.names.empty();
  EXPECT_EQ(unnamed, 1);
  EXPECT_EQ(store_->RemoveName("docker.io/library/busybox:latest").error().code(), Errc::kNotFound);
  // Still resolvable by ID.
  EXPECT_TRUE(store_->ResolveImage(id));
  ASSERT_TRUE(store_->RemoveImage(a.digest));
  EXPECT_FALSE(store_->ResolveImage(id));
  auto chk = store_->Check();
  ASSERT_TRUE(chk);
  EXPECT_TRUE(chk->ok()) << chk->problems.front();
}

TEST_F(StoreTest, IndexImagesPickThePlatform) {
  Descriptor host = MakeImage("host-layer", "host");
  Index idx;
  Descriptor h = host;
  h.platform = Platform::Host();
  Descriptor other = DescriptorFor(kMediaTypeOciManifest, "absent");
  other.platform = Platform{"linux", Platform::Host().architecture == "s390x" ? "ppc64le" : "s390x", "", "", {}};
  idx.manifests = {other, h};
  auto top = store_->PutBlob(kMediaTypeOciIndex, ToJson(idx));
  ASSERT_TRUE(top);
  std::vector<std::string> names = {"localhost/multi:latest"};
  ASSERT_TRUE(store_->AddImage(*top, names));
  auto img = store_->ResolveImage("multi");
  ASSERT_TRUE(img) << img.error().message();
  EXPECT_EQ(img->manifest_descriptor.digest, host.digest);
  auto missing = store_->ResolveImage("multi", other.platform);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("not in the store"), std::string::npos) << missing.error().message();
  auto chk = store_->Check();
  ASSERT_TRUE(chk);
  EXPECT_TRUE(chk->ok()) << chk->problems.front();
}

TEST_F(StoreTest, CacheRecordsAndLayerDirs) {
  ASSERT_TRUE(store_->PutCacheRecord("abc123", R"({"layer":"x"})"));
  EXPECT_EQ(*store_->GetCacheRecord("abc123"), R"({"layer":"x"})");
  EXPECT_EQ(store_->GetCacheRecord("nope").error().code(), Errc::kNotFound);
  for (const char* bad : {"../x", ".hidden", "a/b", ""})
    EXPECT_EQ(store_->PutCacheRecord(bad, "{}").error().code(), Errc::kInvalidInput) << bad;
  ASSERT_TRUE(store_->DeleteCacheRecord("abc123"));

  Digest key = Digest::Of("key");
  int fills = 0;
  auto fill = [&](const std::string& dir) -> Status {
    ++fills;
    return WriteFileAtomic(JoinPath(dir, "file"), "content");
  };
  auto d1 = store_->GetOrCreateLayerDir(key, fill);
  ASSERT_TRUE(d1) << d1.error().message();
  EXPECT_EQ(*d1, store_->LayerDir(key));
  EXPECT_EQ(*ReadFile(JoinPath(*d1, "file")), "content");
  auto d2 = store_->GetOrCreateLayerDir(key, fill);
  ASSERT_TRUE(d2);
  EXPECT_EQ(fills, 1);
  // A failing fill leaves nothing behind.
  Digest key2 = Digest::Of("key2");
  auto failed = store_->GetOrCreateLayerDir(key2, [](const std::string&) -> Status {
    return Error(Errc::kCorrupt, "boom");
  });
  ASSERT_FALSE(failed);
  EXPECT_FALSE(PathExists(store_->LayerDir(key2)));
  EXPECT_TRUE(DirNames(store_->TmpDir()).empty());
}

// Deferred layer durability (docs/store.md): a layer unpacked in one boot
// carries a durable record until a later syncfs; a store opened in another
// boot discards it -- the crash case, where the page cache died with it --
// and the layer is made again on its next use.
TEST_F(StoreTest, LayersOfAnEarlierBootThatNeverSyncedAreDiscarded) {
  std::string root = JoinPath(dir_->path(), "store");
  Digest key = Digest::Of("boot key");
  auto fill = [](const std::string& dir) { return WriteFileAtomic(JoinPath(dir, "file"), "v1"); };
  ::setenv("KILN_TEST_BOOT_ID", "boot-a", 1);
  ASSERT_TRUE(store_->GetOrCreateLayerDir(key, fill));
  EXPECT_EQ(*ReadFile(JoinPath(root, "unsynced/" + key.hex())), "boot-a");
  std::string layer_dir = store_->LayerDir(key);
  store_.reset();  // (prune below waits for every other open store)
  // Same boot: the layer is trusted.
  {
    auto again = Store::Open(root);
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_TRUE(PathExists(layer_dir));
  }
  // Another boot before any sync: discarded, record gone, leftovers in tmp/
  // (prune removes them), and the next use makes the layer again.
  ::setenv("KILN_TEST_BOOT_ID", "boot-b", 1);
  {
    auto later = Store::Open(root);
    ASSERT_TRUE(later) << later.error().message();
    EXPECT_FALSE(PathExists(later->LayerDir(key)));
    EXPECT_TRUE(DirNames(JoinPath(root, "unsynced")).empty());
    EXPECT_EQ(DirNames(later->TmpDir()).size(), 1u);
    auto made = later->GetOrCreateLayerDir(
        key, [](const std::string& dir) { return WriteFileAtomic(JoinPath(dir, "file"), "v2"); });
    ASSERT_TRUE(made) << made.error().message();
    EXPECT_EQ(*ReadFile(JoinPath(*made, "file")), "v2");
    EXPECT_EQ(*ReadFile(JoinPath(root, "unsynced/" + key.hex())), "boot-b");
    auto pruned = later->Prune({}, 5);
    ASSERT_TRUE(pruned);
    EXPECT_TRUE(DirNames(later->TmpDir()).empty());
  }
  // A torn (empty) record counts as another boot's.
  ASSERT_TRUE(WriteFileAtomic(JoinPath(root, "unsynced/" + key.hex()), ""));
  {
    auto torn = Store::Open(root);
    ASSERT_TRUE(torn);
    EXPECT_FALSE(PathExists(torn->LayerDir(key)));
  }
  ::unsetenv("KILN_TEST_BOOT_ID");
}

TEST_F(StoreTest, PruneKeepsWhatIsReferenced) {
  Descriptor kept = MakeImage("kept-layer");
  std::vector<std::string> names = {"localhost/kept:latest"};
  ASSERT_TRUE(store_->AddImage(kept, names));
  Descriptor dangling = MakeImage("dangling-layer", "x");
  ASSERT_TRUE(store_->AddImage(dangling));
  auto orphan = store_->PutBlob("x/y", "orphan");
  auto cached = store_->PutBlob(kMediaTypeOciLayerGzip, "cached-layer");
  GcRoot keep;
  keep.blobs = {*cached};
  ASSERT_TRUE(store_->PutCacheRecord("k1", R"({"layer":{"digest":")" + cached->digest.str() + R"("}})", keep));
  ASSERT_TRUE(MakeDirs(JoinPath(store_->TmpDir(), "stale-dir")));
  ASSERT_TRUE(WriteFileAtomic(JoinPath(store_->TmpDir(), "stale"), "x"));
  auto kept_img = store_->ResolveImage("kept");
  ASSERT_TRUE(kept_img);
  Digest kept_layer_key = kept_img->config.diff_ids[0];
  ASSERT_TRUE(store_->GetOrCreateLayerDir(kept_layer_key, [](const std::string&) -> Status { return Ok(); }));
  ASSERT_TRUE(store_->GetOrCreateLayerDir(Digest::Of("unused"), [](const std::string&) -> Status { return Ok(); }));

  auto dry = store_->Prune({.all = false, .cache = false, .dry_run = true}, 0);
  ASSERT_TRUE(dry) << dry.error().message();
  EXPECT_EQ(dry->blobs_removed, 1);
  EXPECT_TRUE(store_->HasBlob(orphan->digest));

  auto r = store_->Prune({}, 0);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->blobs_removed, 1);
  EXPECT_FALSE(store_->HasBlob(orphan->digest));
  EXPECT_TRUE(store_->HasBlob(cached->digest));
  EXPECT_EQ(r->tmp_removed, 2);
  EXPECT_EQ(r->layer_dirs_removed, 1);
  EXPECT_TRUE(PathExists(store_->LayerDir(kept_layer_key)));
  EXPECT_TRUE(store_->ResolveImage(dangling.digest.str()));

  auto all = store_->Prune({.all = true, .cache = true}, 0);
  ASSERT_TRUE(all) << all.error().message();
  EXPECT_EQ(all->images_removed, 1);
  EXPECT_EQ(all->cache_records_removed, 1);
  EXPECT_FALSE(store_->HasBlob(cached->digest));
  EXPECT_FALSE(store_->ResolveImage(dangling.digest.str()));
  EXPECT_TRUE(store_->ResolveImage("kept"));
  auto chk = store_->Check();
  ASSERT_TRUE(chk);
  EXPECT_TRUE(chk->ok()) << chk->problems.front();
  EXPECT_TRUE(chk->notes.empty());
}

// Issue [2.1]: a build's stage record names its base's manifest; the mark
// of the base image (still named) must not stop at that manifest because
// it is already live, or the base loses its config and layers.
TEST_F(StoreTest, PruneKeepsTheClosureOfAManifestACacheRecordNames) {
  Descriptor base = MakeImage("base-layer");
  std::vector<std::string> names = {"localhost/base:latest"};
  ASSERT_TRUE(store_->AddImage(base, names));
  ASSERT_TRUE(store_->PutCacheRecord("stage-x", R"({"base":)" + ToJson(base) + "}"));
  auto img = store_->ResolveImage("base");
  ASSERT_TRUE(img);
  for (bool all : {false, true}) {
    auto r = store_->Prune({.all = all}, 0);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->blobs_removed, 0) << "all=" << all;
    EXPECT_TRUE(store_->HasBlob(img->manifest.config.digest));
    EXPECT_TRUE(store_->HasBlob(img->manifest.layers[0].digest));
    auto chk = store_->Check();
    ASSERT_TRUE(chk);
    EXPECT_TRUE(chk->ok()) << chk->problems.front();
  }
}

TEST_F(StoreTest, PruneWaitsForOtherProcesses) {
  // Another process with the store open holds the shared gc lock.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto s = Store::Open(store_->root());
    char c = 'x';
    (void)!::write(ready[1], &c, 1);
    ::sleep(2);
    ::_exit(s ? 0 : 1);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  auto busy = store_->Prune({}, 0);
  ASSERT_FALSE(busy);
  EXPECT_NE(busy.error().message().find("in use"), std::string::npos);
  auto waited = store_->Prune({}, 10);
  EXPECT_TRUE(waited) << waited.error().message();
  int status;
  ::waitpid(pid, &status, 0);
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST_F(StoreTest, ConcurrentNamingLosesNothing) {
  Descriptor a = MakeImage("conc");
  const int kPerProcess = 25;
  std::vector<pid_t> pids;
  for (int p = 0; p < 3; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto s = Store::Open(store_->root());
      if (!s)
        ::_exit(1);
      for (int i = 0; i < kPerProcess; ++i) {
        std::vector<std::string> n = {"localhost/p" + std::to_string(p) + ":" + std::to_string(i)};
        if (!s->AddImage(a, n))
          ::_exit(2);
      }
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  auto list = store_->ListImages();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().names.size(), 3u * kPerProcess);
}

// ---------------------------------------------------------------- roots and leases

TEST_F(StoreTest, RegisteredRootsKeepTheirClosureUntilStaleOrDeleted) {
  Descriptor m = MakeImage("rooted-layer");  // never named: only the root keeps it
  auto img = store_->LoadImage(m);
  ASSERT_TRUE(img) << img.error().message();
  GcRoot root;
  root.blobs = {m};
  ASSERT_TRUE(store_->PutRoot("test", "r1", root));
  auto listed = store_->ListRoots();
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->count("test/r1"), 1u);
  auto r = store_->Prune({}, 0);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->blobs_removed, 0);
  EXPECT_TRUE(store_->HasBlob(img->manifest.config.digest));
  EXPECT_TRUE(store_->HasBlob(img->manifest.layers[0].digest));
  // An owner that does not exist makes the root stale: removed, and what it
  // kept goes.
  root.owner = "containers/gone/config.json";
  ASSERT_TRUE(store_->PutRoot("test", "r1", root));
  EXPECT_EQ(store_->ListRoots("test")->size(), 0u);
  r = store_->Prune({}, 0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->roots_removed, 1);
  EXPECT_EQ(r->blobs_removed, 3);
  EXPECT_FALSE(PathExists(store_->root() + "/roots/test/r1.json"));
  // Bad names and owners are refused.
  EXPECT_EQ(store_->PutRoot("../x", "a", {}).error().code(), Errc::kInvalidInput);
  GcRoot escape;
  escape.owner = "../outside";
  EXPECT_EQ(store_->PutRoot("test", "a", escape).error().code(), Errc::kInvalidInput);
}

TEST_F(StoreTest, AContainersRootKeepsItsUnnamedImageThroughPruneAll) {
  Descriptor m = MakeImage("ctr-layer");
  ASSERT_TRUE(store_->AddImage(m));  // unnamed (<none>)
  auto img = store_->LoadImage(m);
  ASSERT_TRUE(img);
  ASSERT_TRUE(MakeDirs(store_->ContainersDir() + "/c1"));
  ASSERT_TRUE(WriteFileAtomic(store_->ContainersDir() + "/c1/config.json", "{}"));
  GcRoot root;
  root.image_ids = {img->id()};
  root.layers = {img->config.diff_ids[0]};
  root.owner = "containers/c1/config.json";
  ASSERT_TRUE(store_->PutRoot("containers", "c1", root));
  ASSERT_TRUE(store_->GetOrCreateLayerDir(img->config.diff_ids[0], [](const std::string&) -> Status { return Ok(); }));
  auto r = store_->Prune({.all = true}, 0);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->images_removed, 0);
  EXPECT_EQ(r->blobs_removed, 0);
  EXPECT_EQ(r->layer_dirs_removed, 0);
  EXPECT_TRUE(store_->ResolveImage(img->id().str()));
  // The container goes (its record removed): the image goes with prune -a.
  ASSERT_TRUE(RemoveAll(store_->ContainersDir() + "/c1"));
  r = store_->Prune({.all = true}, 0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->images_removed, 1);
  EXPECT_EQ(r->layer_dirs_removed, 1);
  EXPECT_FALSE(store_->HasBlob(img->manifest.layers[0].digest));
}

TEST_F(StoreTest, OldRecordsWithoutRootsAreStillProtected) {
  // A store written by an older kiln: a container record and a cache record
  // that only mention digests in their JSON.
  Descriptor m = MakeImage("legacy-layer");
  ASSERT_TRUE(store_->AddImage(m));
  auto img = store_->LoadImage(m);
  ASSERT_TRUE(img);
  ASSERT_TRUE(MakeDirs(store_->ContainersDir() + "/old"));
  ASSERT_TRUE(WriteFileAtomic(store_->ContainersDir() + "/old/config.json",
                              R"({"image_id":")" + img->id().str() + R"(","layers":[")" +
                                  img->config.diff_ids[0].str() + R"("]})"));
  auto cached = store_->PutBlob(kMediaTypeOciLayerGzip, "legacy-cached");
  ASSERT_TRUE(WriteFileAtomic(store_->root() + "/cache/oldkey.json",
                              R"({"layer":{"digest":")" + cached->digest.str() + R"("}})"));
  auto r = store_->Prune({.all = true}, 0);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->images_removed, 0);
  EXPECT_EQ(r->blobs_removed, 0);
  EXPECT_TRUE(store_->HasBlob(cached->digest));
  EXPECT_TRUE(store_->HasBlob(img->manifest.layers[0].digest));
}

TEST_F(StoreTest, ARecordBeingRemovedKeepsNothing) {
  // `run --rm` renames its record to containers/.rm-<id> before it answers
  // and removes the tree after: a prune -a right after must not keep the
  // image through it (store-model found this), while the same record under
  // its own name would.
  Descriptor m = MakeImage("removed-container-layer");
  ASSERT_TRUE(store_->AddImage(m));
  auto img = store_->LoadImage(m);
  ASSERT_TRUE(img);
  std::string json = R"({"image_id":")" + img->id().str() + R"(","layers":[")" + img->config.diff_ids[0].str() + R"("]})";
  ASSERT_TRUE(MakeDirs(store_->ContainersDir() + "/.rm-c1"));
  ASSERT_TRUE(WriteFileAtomic(store_->ContainersDir() + "/.rm-c1/config.json", json));
  auto r = store_->Prune({.all = true}, 0);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->images_removed, 1);
  EXPECT_FALSE(store_->HasBlob(img->manifest.layers[0].digest));
}

TEST_F(StoreTest, CacheRecordsKeepWhatTheyRegisterNotWhatTheyMention) {
  auto layer = store_->PutBlob(kMediaTypeOciLayerGzip, "cache-layer");
  auto mentioned = store_->PutBlob(kMediaTypeOciLayerGzip, "only-mentioned");
  GcRoot keep;
  keep.blobs = {*layer};
  keep.layers = {Digest::Of("diff")};
  ASSERT_TRUE(store_->GetOrCreateLayerDir(Digest::Of("diff"), [](const std::string&) -> Status { return Ok(); }));
  ASSERT_TRUE(store_->PutCacheRecord("k1", R"({"base":")" + mentioned->digest.str() + R"("})", keep));
  auto r = store_->Prune({}, 0);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(store_->HasBlob(layer->digest));
  EXPECT_FALSE(store_->HasBlob(mentioned->digest));
  EXPECT_EQ(r->layer_dirs_removed, 0);
  ASSERT_TRUE(store_->DeleteCacheRecord("k1"));
  r = store_->Prune({}, 0);
  ASSERT_TRUE(r);
  EXPECT_FALSE(store_->HasBlob(layer->digest));
  EXPECT_EQ(r->layer_dirs_removed, 1);
  // prune --cache drops the records and what only they kept.
  auto l2 = store_->PutBlob(kMediaTypeOciLayerGzip, "cache-layer-2");
  GcRoot k2;
  k2.blobs = {*l2};
  ASSERT_TRUE(store_->PutCacheRecord("k2", "{}", k2));
  r = store_->Prune({.cache = true}, 0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->cache_records_removed, 1);
  EXPECT_FALSE(store_->HasBlob(l2->digest));
}

TEST_F(StoreTest, ALeaseProtectsWhatItsProcessWritesUntilItDies) {
  int ready[2], done[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(done), 0);
  std::string data = "leased blob";
  Digest d = Digest::Of(data);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Lease lease;
    {
      auto s = Store::Open(store_->root());
      if (!s)
        ::_exit(1);
      auto l = s->AcquireLease("test");
      if (!l)
        ::_exit(2);
      lease = std::move(*l);
      auto nested = s->AcquireLease("nested");  // joins the same lease
      if (!nested || !s->PutBlob("x/y", data))
        ::_exit(3);
    }  // the store is closed (gc lock released); the lease lives on
    char c = 'x';
    (void)!::write(ready[1], &c, 1);
    (void)!::read(done[0], &c, 1);
    ::_exit(0);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  auto leases = DirNames(store_->root() + "/leases");
  EXPECT_EQ(leases.size(), 1u);
  auto r = store_->Prune({}, 5);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(store_->HasBlob(d));
  EXPECT_EQ(r->blobs_removed, 0);
  // The holder dies without cleaning up (its file stays, unlocked).
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int status;
  ::waitpid(pid, &status, 0);
  r = store_->Prune({}, 5);
  ASSERT_TRUE(r);
  EXPECT_FALSE(store_->HasBlob(d));
  EXPECT_TRUE(DirNames(store_->root() + "/leases").empty());
  for (int fd : {ready[0], ready[1], done[0], done[1]})
    ::close(fd);
}

TEST_F(StoreTest, MarkingHasItsOwnVisitedSet) {
  // Two images share a layer; the first walked is the one with a name. A
  // lease and a root name the second's manifest: still every blob of both
  // is kept.
  Descriptor a = MakeImage("shared-layer", "a");
  Descriptor b = MakeImage("shared-layer", "b");
  std::vector<std::string> na = {"localhost/a:latest"}, nb = {"localhost/b:latest"};
  ASSERT_TRUE(store_->AddImage(a, na));
  ASSERT_TRUE(store_->AddImage(b, nb));
  GcRoot root;
  root.blobs = {b};
  ASSERT_TRUE(store_->PutRoot("test", "b", root));
  ASSERT_TRUE(store_->PutCacheRecord("stage", R"({"base":)" + ToJson(a) + "}"));
  auto r = store_->Prune({.all = true}, 0);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->blobs_removed, 0);
  auto chk = store_->Check();
  ASSERT_TRUE(chk);
  EXPECT_TRUE(chk->ok()) << chk->problems.front();
}

// ---------------------------------------------------------------- damage and duplicates

TEST_F(StoreTest, DamagedImagesAreFoundAndRepairedByTheSameImage) {
  Descriptor m = MakeImage("damaged-layer");
  std::vector<std::string> names = {"localhost/d:latest"};
  auto img = AddAndLoad(m, names);
  ASSERT_TRUE(img);
  EXPECT_TRUE(store_->MissingBlobs(m).empty());
  std::string layer_bytes = "damaged-layer";
  ASSERT_EQ(::unlink(store_->BlobPath(img->manifest.layers[0].digest).c_str()), 0);
  auto missing = store_->MissingBlobs(m);
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_EQ(missing[0], "layer 0 " + img->manifest.layers[0].digest.str());
  ASSERT_EQ(::unlink(store_->BlobPath(img->manifest.config.digest).c_str()), 0);
  EXPECT_FALSE(store_->ResolveImage("d"));
  for (std::string text : {std::string("d"), m.digest.str(), img->id().hex().substr(0, 12)}) {
    auto found = store_->FindImageEntries(text);
    ASSERT_TRUE(found) << text << ": " << found.error().message();
    ASSERT_EQ(found->size(), 1u) << text;
    EXPECT_EQ(found->front().descriptor.digest, m.digest) << text;
  }
  EXPECT_EQ(store_->FindImageEntries("nope").error().code(), Errc::kNotFound);
  // The same image written again (a pull or load) repairs it.
  ASSERT_TRUE(store_->PutBlob(kMediaTypeOciLayer, layer_bytes));
  ASSERT_TRUE(store_->PutBlob(kMediaTypeOciConfig, img->config_json));
  ASSERT_TRUE(store_->AddImage(m, names));
  EXPECT_TRUE(store_->MissingBlobs(m).empty());
  EXPECT_TRUE(store_->ResolveImage("d"));
}

TEST_F(StoreTest, AnImageAlreadyPresentUnderAnotherManifestGetsTheNamesOnly) {
  Descriptor oci = MakeImage("dup-layer");
  auto img = AddAndLoad(oci, {"localhost/one:latest"});
  ASSERT_TRUE(img);
  // The same config under a docker manifest whose layer was compressed
  // again (a docker-archive load): same ID, other blobs.
  Manifest dm = img->manifest;
  dm.media_type = std::string(kMediaTypeDockerManifest);
  auto recompressed = store_->PutBlob(kMediaTypeDockerLayerGzip, "dup-layer, compressed again");
  ASSERT_TRUE(recompressed);
  dm.layers[0] = *recompressed;
  auto docker = store_->PutBlob(kMediaTypeDockerManifest, ToJson(dm));
  ASSERT_TRUE(docker) << docker.error().message();
  ASSERT_NE(docker->digest, oci.digest);
  std::vector<std::string> n2 = {"localhost/one:latest", "localhost/two:latest"};
  ASSERT_TRUE(store_->AddImage(*docker, n2));
  auto list = store_->ListImages();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().descriptor.digest, oci.digest);
  EXPECT_EQ(list->front().names, n2);
  // When the stored copy is damaged, the new one replaces it, names and all.
  ASSERT_EQ(::unlink(store_->BlobPath(img->manifest.layers[0].digest).c_str()), 0);
  std::vector<std::string> n3 = {"localhost/three:latest"};
  ASSERT_TRUE(store_->AddImage(*docker, n3));
  list = store_->ListImages();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().descriptor.digest, docker->digest);
  EXPECT_EQ(list->front().names.size(), 3u);
}

}  // namespace
}  // namespace kiln
