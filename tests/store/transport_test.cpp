#include "kiln/transport.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdlib>

#include <gtest/gtest.h>

#include "kiln/fs.h"
#include "kiln/reference.h"
#include "support/temp_store.h"

namespace kiln {
namespace {

class TransportTest : public testing::TempStoreTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MakeTempDir("kiln-transport-test-"));
    store_ = Open("a");
    // A small rootfs tar made with tar(1).
    std::string root = Path("rootfs");
    ASSERT_TRUE(MakeDirs(JoinPath(root, "etc")));
    ASSERT_TRUE(MakeDirs(JoinPath(root, "bin")));
    ASSERT_TRUE(WriteFileAtomic(JoinPath(root, "etc/hostname"), "kiln\n"));
    ASSERT_TRUE(WriteFileAtomic(JoinPath(root, "bin/tool"), std::string(100000, 'z'), 0755));
    ASSERT_EQ(::symlink("tool", JoinPath(root, "bin/link").c_str()), 0);
    tar_ = Path("rootfs.tar");
    ASSERT_NO_FATAL_FAILURE(testing::MakeRootfsTar(root, tar_));
  }

  std::unique_ptr<Store> Open(const std::string& name) { return OpenStore(name); }

  Descriptor Import(Store& store, std::vector<std::string> changes = {}) {
    auto fd = OpenFile(tar_, O_RDONLY);
    EXPECT_TRUE(fd);
    ImportOptions opts;
    opts.changes = std::move(changes);
    auto d = ImportRootfsTar(store, fd->get(), opts);
    EXPECT_TRUE(d) << d.error().message();
    return *d;
  }

  std::string tar_;
};

TEST_F(TransportTest, ImportMakesASingleGzipLayer) {
  Descriptor top = Import(*store_, {"CMD [\"/bin/tool\", \"x\"]", "ENV A=1 B=\"two words\"", "WORKDIR /srv",
                                    "USER 1000:1000", "LABEL org.x=y", "EXPOSE 80 53/udp", "ENTRYPOINT /bin/sh",
                                    "VOLUME /data", "STOPSIGNAL SIGINT"});
  std::vector<std::string> names = {"localhost/imported:latest"};
  ASSERT_TRUE(store_->AddImage(top, names));
  auto img = store_->ResolveImage("imported");
  ASSERT_TRUE(img) << img.error().message();
  ASSERT_EQ(img->manifest.layers.size(), 1u);
  EXPECT_EQ(img->manifest.layers[0].media_type, kMediaTypeOciLayerGzip);
  auto raw = ReadFile(tar_);
  ASSERT_TRUE(raw);
  EXPECT_EQ(img->config.diff_ids[0], Digest::Of(*raw)) << "diff_id is the sha256 of the raw tar";
  const ContainerConfig& c = img->config.config;
  EXPECT_EQ(*c.cmd, (std::vector<std::string>{"/bin/tool", "x"}));
  EXPECT_EQ(*c.entrypoint, (std::vector<std::string>{"/bin/sh", "-c", "/bin/sh"}));
  EXPECT_EQ(c.GetEnv("B"), "two words");
  EXPECT_TRUE(c.GetEnv("PATH"));
  EXPECT_EQ(c.working_dir, "/srv");
  EXPECT_EQ(c.user, "1000:1000");
  EXPECT_EQ(c.labels.at("org.x"), "y");
  EXPECT_EQ(c.exposed_ports, (std::vector<std::string>{"53/udp", "80/tcp"}));
  EXPECT_EQ(c.volumes, (std::vector<std::string>{"/data"}));
  EXPECT_EQ(img->config.history.size(), 1u);
  // Same tar, same layer blob (deterministic gzip).
  Descriptor again = Import(*store_, {"CMD [\"/bin/tool\", \"x\"]"});
  auto img2 = store_->LoadImage(again);
  ASSERT_TRUE(img2);
  EXPECT_EQ(img2->manifest.layers[0].digest, img->manifest.layers[0].digest);
  // A gzip-compressed input gives the same diff_id.
  ASSERT_EQ(std::system(("gzip -k " + tar_).c_str()), 0);
  auto gz = OpenFile(tar_ + ".gz", O_RDONLY);
  auto from_gz = ImportRootfsTar(*store_, gz->get(), {});
  ASSERT_TRUE(from_gz) << from_gz.error().message();
  EXPECT_EQ(store_->LoadImage(*from_gz)->config.diff_ids[0], img->config.diff_ids[0]);
  // Not a tar.
  ASSERT_TRUE(WriteFileAtomic(Path("junk"), std::string(2000, 'j')));
  auto junk = OpenFile(Path("junk"), O_RDONLY);
  auto bad = ImportRootfsTar(*store_, junk->get(), {});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Errc::kInvalidInput);
  auto chk = store_->Check();
  ASSERT_TRUE(chk);
  EXPECT_TRUE(chk->ok()) << chk->problems.front();
}

TEST_F(TransportTest, ConfigChanges) {
  ContainerConfig c;
  EXPECT_TRUE(ApplyConfigChange(c, "env PATH /usr/bin:/bin"));
  EXPECT_EQ(c.GetEnv("PATH"), "/usr/bin:/bin");
  EXPECT_TRUE(ApplyConfigChange(c, "SHELL [\"/bin/bash\", \"-c\"]"));
  EXPECT_TRUE(ApplyConfigChange(c, "CMD echo hi"));
  EXPECT_EQ(*c.cmd, (std::vector<std::string>{"/bin/bash", "-c", "echo hi"}));
  for (const char* bad : {"FROM x", "CMD", "EXPOSE eighty", "VOLUME data", "ENV =x", "LABEL a", "SHELL sh",
                          "ENV A=\"unterminated"}) {
    auto s = ApplyConfigChange(c, bad);
    ASSERT_FALSE(s) << bad;
    EXPECT_EQ(s.error().code(), Errc::kInvalidInput);
    EXPECT_NE(s.error().message().find(std::string("invalid --change \"") + bad + "\""), std::string::npos)
        << s.error().message();
  }
}

TEST_F(TransportTest, TransportRefs) {
  auto r = TransportRef::Parse("oci:/tmp/x:localhost/a:1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->transport, "oci");
  EXPECT_EQ(r->location, "/tmp/x");
  EXPECT_EQ(r->ref, "localhost/a:1");
  EXPECT_EQ(r->str(), "oci:/tmp/x:localhost/a:1");
  EXPECT_EQ(TransportRef::Parse("dir:/a:b")->location, "/a:b");
  EXPECT_EQ(TransportRef::Parse("docker://quay.io/x")->transport, "docker");
  EXPECT_EQ(TransportRef::Parse("localhost:5000/x")->transport, "docker");
  EXPECT_EQ(TransportRef::Parse("alpine:3")->location, "alpine:3");
  EXPECT_EQ(TransportRef::Parse("docker-archive:f.tar")->ref, "");
  EXPECT_FALSE(TransportRef::Parse("oci:"));
  auto foreign = TransportRef::Parse("containers-storage:x");
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().code(), Errc::kInvalidInput);
  // The registry transport is not built into the store module.
  auto img = store_->LoadImage(Import(*store_));
  ASSERT_TRUE(img);
  auto s = PushImage(*store_, *img, "x", *TransportRef::Parse("docker://example.com/x"), {});
  if (!s) {
    EXPECT_EQ(s.error().code(), Errc::kUnsupported);
  }
}

TEST_F(TransportTest, ArchivesRoundTrip) {
  Descriptor top = Import(*store_, {"CMD [\"sh\"]"});
  std::vector<std::string> names = {"localhost/app:1", "docker.io/library/busy:latest"};
  ASSERT_TRUE(store_->AddImage(top, names));
  auto img = store_->ResolveImage("app:1");
  ASSERT_TRUE(img);

  for (auto format : {ArchiveFormat::kOciArchive, ArchiveFormat::kDockerArchive}) {
    std::string file = Path(format == ArchiveFormat::kOciArchive ? "oci.tar" : "docker.tar");
    ASSERT_TRUE(SaveArchive(*store_, {SaveItem{*img, names}}, file, format));
    auto other = Open(format == ArchiveFormat::kOciArchive ? "load-oci" : "load-docker");
    auto loaded = LoadArchive(*other, file);
    ASSERT_TRUE(loaded) << loaded.error().message();
    ASSERT_EQ(loaded->size(), format == ArchiveFormat::kOciArchive ? 2u : 1u);
    const PulledImage& p = loaded->front();
    ASSERT_TRUE(other->AddImage(p.top, p.names));
    auto back = other->ResolveImage("app:1");
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(back->id(), img->id()) << "same config bytes, same image ID";
    EXPECT_EQ(back->manifest.layers[0].digest, img->manifest.layers[0].digest);
    if (format == ArchiveFormat::kOciArchive) {
      EXPECT_EQ(back->top.digest, img->top.digest);
    } else {
      EXPECT_TRUE(other->ResolveImage("busy"));
    }
    auto chk = other->Check();
    ASSERT_TRUE(chk);
    EXPECT_TRUE(chk->ok()) << chk->problems.front();
  }
}

TEST_F(TransportTest, LayoutAndDirTransports) {
  Descriptor top = Import(*store_);
  auto img = store_->LoadImage(top);
  ASSERT_TRUE(img);
  auto oci = TransportRef::Parse("oci:" + Path("layout") + ":v1");
  ASSERT_TRUE(PushImage(*store_, *img, "", *oci, {}));
  ASSERT_TRUE(PushImage(*store_, *img, "", *TransportRef::Parse("oci:" + Path("layout") + ":v2"), {}));
  auto idx = ParseIndex(*ReadFile(Path("layout/index.json")));
  ASSERT_TRUE(idx);
  EXPECT_EQ(idx->manifests.size(), 2u);
  auto dir = TransportRef::Parse("dir:" + Path("dirdest"));
  ASSERT_TRUE(PushImage(*store_, *img, "", *dir, {}));
  EXPECT_TRUE(PathExists(Path("dirdest/manifest.json")));
  EXPECT_TRUE(PathExists(Path("dirdest/version")));

  auto other = Open("b");
  auto pulled = PullImage(*other, *TransportRef::Parse("oci:" + Path("layout") + ":v2"), {});
  ASSERT_TRUE(pulled) << pulled.error().message();
  EXPECT_EQ(pulled->top.digest, top.digest);
  auto ambiguous = PullImage(*other, *TransportRef::Parse("oci:" + Path("layout")), {});
  ASSERT_FALSE(ambiguous);
  EXPECT_NE(ambiguous.error().message().find("holds 2 images"), std::string::npos);
  auto from_dir = PullImage(*other, *dir, {});
  ASSERT_TRUE(from_dir) << from_dir.error().message();
  EXPECT_EQ(from_dir->top.digest, top.digest);

  // A tampered layer in a layout is refused and not stored.
  Digest layer = img->manifest.layers[0].digest;
  std::string blob = Path("layout/blobs/sha256/" + layer.hex());
  auto bytes = ReadFile(blob);
  ASSERT_TRUE(bytes);
  std::string tampered = *bytes;
  tampered[tampered.size() / 2] ^= 1;
  ASSERT_TRUE(WriteFileAtomic(blob, tampered));
  auto third = Open("c");
  auto bad = PullImage(*third, *TransportRef::Parse("oci:" + Path("layout") + ":v1"), {});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Errc::kCorrupt);
  EXPECT_NE(bad.error().message().find("digest mismatch"), std::string::npos) << bad.error().message();
  EXPECT_FALSE(third->HasBlob(layer));
}

}  // namespace
}  // namespace kiln

// ------------------------------------------------------------ verify before naming

namespace kiln {
namespace {

// An OCI layout written by hand: two gzip layers, a config, a manifest, and
// an index.json naming it "localhost/v:1". Each test breaks one thing.
class VerifyTest : public TransportTest {
 protected:
  void SetUp() override {
    TransportTest::SetUp();
    layout_ = Path("layout");
    ASSERT_TRUE(MakeDirs(JoinPath(layout_, "blobs/sha256")));
    ASSERT_TRUE(WriteFileAtomic(JoinPath(layout_, "oci-layout"), R"({"imageLayoutVersion":"1.0.0"})"));
    for (int i = 0; i < 2; ++i) {
      std::string root = Path("l" + std::to_string(i));
      ASSERT_TRUE(MakeDirs(root));
      ASSERT_TRUE(WriteFileAtomic(JoinPath(root, "f" + std::to_string(i)), std::string(1000 + i, 'a' + i)));
      std::string tar = Path("l" + std::to_string(i) + ".tar");
      std::string cmd = "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C " + root + " -cf " + tar +
                        " . && gzip -n -k " + tar;
      ASSERT_EQ(std::system(cmd.c_str()), 0);
      auto raw = ReadFile(tar);
      auto gz = ReadFile(tar + ".gz");
      ASSERT_TRUE(raw && gz);
      diff_ids_.push_back(Digest::Of(*raw));
      layers_.push_back(Blob(*gz, kMediaTypeOciLayerGzip));
    }
  }

  Descriptor Blob(const std::string& bytes, std::string_view media_type) {
    Descriptor d;
    d.media_type = std::string(media_type);
    d.digest = Digest::Of(bytes);
    d.size = static_cast<int64_t>(bytes.size());
    EXPECT_TRUE(WriteFileAtomic(JoinPath(layout_, "blobs/sha256/" + d.digest.hex()), bytes));
    return d;
  }

  // Writes config + manifest (+ index.json naming it) and returns the
  // manifest descriptor as index.json gives it.
  Descriptor Write(std::vector<Digest> diff_ids, std::vector<Descriptor> layers, int64_t manifest_size_delta = 0) {
    std::string ids;
    for (const auto& d : diff_ids)
      ids += (ids.empty() ? "\"" : ",\"") + d.str() + "\"";
    std::string cfg = R"({"architecture":")" + Platform::Host().architecture +
                      R"(","os":"linux","rootfs":{"type":"layers","diff_ids":[)" + ids + "]}}";
    Manifest m;
    m.config = Blob(cfg, kMediaTypeOciConfig);
    m.layers = std::move(layers);
    Descriptor top = Blob(ToJson(m), kMediaTypeOciManifest);
    top.size += manifest_size_delta;
    Index idx;
    Descriptor named = top;
    named.annotations[std::string(kAnnotationRefName)] = "localhost/v:1";
    idx.manifests.push_back(named);
    EXPECT_TRUE(WriteFileAtomic(JoinPath(layout_, "index.json"), ToJson(idx)));
    return top;
  }

  Expected<PulledImage> Pull(Store& store) { return PullImage(store, *TransportRef::Parse("oci:" + layout_), {}); }

  void ExpectRefused(Store& store, const std::string& needle) {
    auto before = ReadFile(JoinPath(store.root(), "index.json"));
    auto r = Pull(store);
    ASSERT_FALSE(r) << "accepted";
    EXPECT_NE(std::string::npos, r.error().message().find(needle)) << r.error().message();
    auto after = ReadFile(JoinPath(store.root(), "index.json"));
    EXPECT_EQ(before ? *before : "", after ? *after : "");
    auto check = store.Check();
    ASSERT_TRUE(check);
    EXPECT_TRUE(check->ok()) << (check->problems.empty() ? "" : check->problems[0]);
  }

  std::string layout_;
  std::vector<Digest> diff_ids_;
  std::vector<Descriptor> layers_;
};

TEST_F(VerifyTest, GoodLayoutPullsAndVerifies) {
  Write(diff_ids_, layers_);
  auto r = Pull(*store_);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(VerifyImageClosure(*store_, r->top));
}

TEST_F(VerifyTest, LayerSizeLiesAreRefusedNamingTheLayer) {
  for (int64_t delta : {int64_t(-1), int64_t(1)}) {
    auto layers = layers_;
    layers[1].size += delta;
    Write(diff_ids_, layers);
    ExpectRefused(*store_, layers_[1].digest.str());
  }
  auto layers = layers_;
  layers[1].size = 0;
  Write(diff_ids_, layers);
  ExpectRefused(*store_, layers_[1].digest.str());
  // The same lie about a layer the store already has (reused only when the
  // sizes agree).
  Write(diff_ids_, layers_);
  ASSERT_TRUE(Pull(*store_));
  layers[1].size = layers_[1].size + 1;
  Write(diff_ids_, layers);
  ExpectRefused(*store_, "size mismatch");
}

TEST_F(VerifyTest, DiffIdsCountMustEqualLayerCount) {
  Write({diff_ids_[0]}, layers_);
  ExpectRefused(*store_, "lists 1 diff_ids for 2 layers");
  Write({diff_ids_[0], diff_ids_[1], diff_ids_[1]}, layers_);
  ExpectRefused(*store_, "lists 3 diff_ids for 2 layers");
}

TEST_F(VerifyTest, DiffIdOfAnotherLayerIsRefused) {
  // First the honest image (its layers become known), then one whose config
  // claims layer 0's content for layer 1.
  Write(diff_ids_, layers_);
  ASSERT_TRUE(Pull(*store_));
  Write({diff_ids_[0], diff_ids_[0]}, layers_);
  ExpectRefused(*store_, "layer " + layers_[1].digest.str() + ": diff_id mismatch");
  // Also into a fresh store.
  auto fresh = Open("fresh");
  ExpectRefused(*fresh, "diff_id mismatch");
}

TEST_F(VerifyTest, ManifestSizeLieIsRefusedWhenTheManifestIsPresent) {
  Descriptor top = Write(diff_ids_, layers_);
  auto r = Pull(*store_);
  ASSERT_TRUE(r);
  ASSERT_TRUE(store_->AddImage(r->top, r->names));
  Write(diff_ids_, layers_, +1);
  ExpectRefused(*store_, top.digest.str() + ": size mismatch");
  auto images = store_->ListImages();
  ASSERT_TRUE(images);
  ASSERT_EQ(images->size(), 1u);
  EXPECT_EQ((*images)[0].descriptor.size, top.size) << "the stored size is the true one";
}

TEST_F(VerifyTest, OversizedConfigIsRefusedBeforeNaming) {
  Write(diff_ids_, layers_);
  std::string big = R"({"architecture":"amd64","os":"linux","config":{"Labels":{"x":")" + std::string(5 << 20, 'x') +
                    R"("}},"rootfs":{"type":"layers","diff_ids":[")" + diff_ids_[0].str() + "\",\"" +
                    diff_ids_[1].str() + "\"]}}";
  Manifest m;
  m.config = Blob(big, kMediaTypeOciConfig);
  m.layers = layers_;
  Descriptor top = Blob(ToJson(m), kMediaTypeOciManifest);
  Index idx;
  idx.manifests.push_back(top);
  ASSERT_TRUE(WriteFileAtomic(JoinPath(layout_, "index.json"), ToJson(idx)));
  ExpectRefused(*store_, m.config.digest.str());
  auto r = Pull(*store_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::kInvalidInput);
}

TEST_F(VerifyTest, NestedIndexesAreBoundedAndCyclesRefused) {
  Descriptor top = Write(diff_ids_, layers_);
  for (int depth = 0; depth < 10; ++depth) {
    Index idx;
    idx.manifests.push_back(top);
    top = Blob(ToJson(idx), kMediaTypeOciIndex);
  }
  Index outer;
  outer.manifests.push_back(top);
  ASSERT_TRUE(WriteFileAtomic(JoinPath(layout_, "index.json"), ToJson(outer)));
  auto fresh = Open("fresh");
  ExpectRefused(*fresh, "deep");
  EXPECT_FALSE(VerifyImageClosure(*fresh, top));
  // A -> B -> A can only be written by lying about file names: the digest
  // check at the door refuses it.
  std::string a_hex(64, 'a'), b_hex(64, 'b');
  auto idx_naming = [](const std::string& hex) {
    return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:)" +
           hex + R"(","size":200}]})";
  };
  ASSERT_TRUE(WriteFileAtomic(JoinPath(layout_, "blobs/sha256/" + a_hex), idx_naming(b_hex)));
  ASSERT_TRUE(WriteFileAtomic(JoinPath(layout_, "blobs/sha256/" + b_hex), idx_naming(a_hex)));
  ASSERT_TRUE(WriteFileAtomic(JoinPath(layout_, "index.json"),
                              R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:)" +
                                  a_hex + R"(","size":)" + std::to_string(idx_naming(b_hex).size()) + "}]}"));
  ExpectRefused(*fresh, "sha256:" + a_hex);
}

}  // namespace
}  // namespace kiln
