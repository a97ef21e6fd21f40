#include "kiln/transport.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdlib>

#include <gtest/gtest.h>

#include "kiln/fs.h"
#include "kiln/reference.h"

namespace kiln {
namespace {

class TransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::Create("kiln-transport-test-");
    ASSERT_TRUE(d);
    dir_ = std::make_unique<TempDir>(std::move(*d));
    store_ = Open("a");
    // A small rootfs tar made with tar(1).
    std::string root = Path("rootfs");
    ASSERT_TRUE(MakeDirs(JoinPath(root, "etc")));
    ASSERT_TRUE(MakeDirs(JoinPath(root, "bin")));
    ASSERT_TRUE(WriteFileAtomic(JoinPath(root, "etc/hostname"), "kiln\n"));
    ASSERT_TRUE(WriteFileAtomic(JoinPath(root, "bin/tool"), std::string(100000, 'z'), 0755));
    ASSERT_EQ(::symlink("tool", JoinPath(root, "bin/link").c_str()), 0);
    tar_ = Path("rootfs.tar");
    std::string cmd = "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C " + root + " -cf " + tar_ + " .";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  std::string Path(const std::string& rel) { return JoinPath(dir_->path(), rel); }

  std::unique_ptr<Store> Open(const std::string& name) {
    auto s = Store::Open(Path(name));
    EXPECT_TRUE(s) << s.error().message();
    return std::make_unique<Store>(std::move(*s));
  }

  Descriptor Import(Store& store, std::vector<std::string> changes = {}) {
    auto fd = OpenFile(tar_, O_RDONLY);
    EXPECT_TRUE(fd);
    ImportOptions opts;
    opts.changes = std::move(changes);
    auto d = ImportRootfsTar(store, fd->get(), opts);
    EXPECT_TRUE(d) << d.error().message();
    return *d;
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Store> store_;
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
