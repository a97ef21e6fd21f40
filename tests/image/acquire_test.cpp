// image::Acquire (include/kiln/acquire.h): the name-resolution rule and the
// pull policies. The "registry" is a fake docker:// transport that serves
// an OCI layout made here (error paths: it can fail on demand); the real
// registry path is tested by tests/registry/integration_test.cpp
// (KilnRunAndBuildPullByPolicy) against a docker-registry on loopback.
#include "kiln/acquire.h"

#include <dirent.h>
#include <fcntl.h>

#include <cstdlib>
#include <memory>

#include <gtest/gtest.h>

#include "kiln/fs.h"
#include "kiln/reference.h"
#include "support/temp_store.h"

namespace kiln {
namespace {

using image::AcquireOptions;
using image::PullPolicy;

size_t CountEntries(const std::string& dir) {
  size_t n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (struct dirent* e = ::readdir(d))
      if (e->d_name[0] != '.')
        ++n;
    ::closedir(d);
  }
  return n;
}

class AcquireTest : public testing::TempStoreTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MakeTempStore("kiln-acquire-test-"));
    // Two small rootfs tars made with tar(1): "local" and "remote" content.
    for (const char* which : {"local", "remote"}) {
      std::string root = Path(std::string("rootfs-") + which);
      ASSERT_TRUE(MakeDirs(JoinPath(root, "etc")));
      ASSERT_TRUE(WriteFileAtomic(JoinPath(root, "etc/which"), std::string(which) + "\n"));
      ASSERT_NO_FATAL_FAILURE(testing::MakeRootfsTar(root, Path(std::string(which) + ".tar")));
    }
    // The "registry": an OCI layout holding the remote image as tag "1".
    auto remote = Store::Open(Path("remote-store"));
    ASSERT_TRUE(remote);
    remote_id_ = Import(*remote, "remote", {}).id();
    auto img = remote->ResolveImage(remote_id_.str());
    ASSERT_TRUE(img) << img.error().message();
    remote_digest_ = img->top.digest;
    ASSERT_TRUE(PushImage(*remote, *img, "", *TransportRef::Parse("oci:" + Path("layout") + ":1"), {}));
    InstallFakeRegistry();
  }

  /// Imports rootfs-<which> into `store` under `names`.
  StoredImage Import(Store& store, const std::string& which, std::vector<std::string> names) {
    auto fd = OpenFile(Path(which + ".tar"), O_RDONLY);
    EXPECT_TRUE(fd);
    auto d = ImportRootfsTar(store, fd->get(), ImportOptions{});
    EXPECT_TRUE(d) << d.error().message();
    EXPECT_TRUE(store.AddImage(*d, names));
    auto img = store.LoadImage(*d);
    EXPECT_TRUE(img);
    return *img;
  }

  /// docker:// served from the layout: every reference is the remote image
  /// (names carried as the registry does: the reference when it has a tag).
  void InstallFakeRegistry() {
    PullFn pull = [this](Store& store, const TransportRef& src, const TransferOptions&) -> Expected<PulledImage> {
      ++pulls_;
      leases_during_pull_ = CountEntries(Path("store/leases"));
      if (fail_)
        return Error(Errc::kNetwork, "GET https://registry.invalid/v2/: connection refused");
      KILN_ASSIGN_OR_RETURN(ImageReference ref, ImageReference::Parse(src.location));
      KILN_ASSIGN_OR_RETURN(PulledImage p, LoadOciLayout(store, Path("layout"), "1", {}));
      p.names.clear();
      if (!ref.tag.empty())
        p.names.push_back(ref.str());
      return p;
    };
    RegisterTransport("docker", nullptr, pull);
  }

  Expected<StoredImage> Acquire(const std::string& ref, PullPolicy policy) {
    AcquireOptions o;
    o.policy = policy;
    return image::Acquire(*store_, ref, o);
  }

  Digest remote_id_;
  Digest remote_digest_;
  int pulls_ = 0;
  size_t leases_during_pull_ = 0;
  bool fail_ = false;
};

TEST_F(AcquireTest, PullPoliciesParseLikePodman) {
  for (const char* p : {"missing", "always", "never", "newer"}) {
    auto policy = image::ParsePullPolicy(p);
    ASSERT_TRUE(policy) << p;
    EXPECT_EQ(image::PullPolicyName(*policy), p);
  }
  auto bad = image::ParsePullPolicy("sometimes");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Errc::kInvalidInput);
  EXPECT_EQ(bad.error().message(), "invalid --pull sometimes: use missing, always, never or newer");
}

TEST_F(AcquireTest, OneRuleForNamesIdsAndDigests) {
  StoredImage local = Import(*store_, "local", {"localhost/busybox:latest"});
  // A short name, the Docker Hub spelling FROM normalizes to, an ID, an ID
  // prefix and the manifest digest all find the localhost image.
  for (const std::string& ref :
       {std::string("busybox"), std::string("docker.io/library/busybox:latest"), local.id().str(),
        local.id().hex().substr(0, 12), local.top.digest.str()}) {
    auto img = image::ResolveLocal(*store_, ref);
    ASSERT_TRUE(img) << ref << ": " << img.error().message();
    EXPECT_EQ(img->id(), local.id()) << ref;
  }
  // A name of another registry is not rewritten.
  auto other = image::ResolveLocal(*store_, "quay.io/busybox:latest");
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code(), Errc::kNotFound);
  // The Hub image itself wins over the localhost one once it is stored.
  StoredImage hub = Import(*store_, "remote", {"docker.io/library/busybox:latest"});
  auto img = image::ResolveLocal(*store_, "docker.io/library/busybox:latest");
  ASSERT_TRUE(img);
  EXPECT_EQ(img->id(), hub.id());
}

TEST_F(AcquireTest, MissingUsesTheStoreElsePullsAndNames) {
  StoredImage local = Import(*store_, "local", {"localhost/busybox:latest"});
  auto img = Acquire("busybox", PullPolicy::kMissing);
  ASSERT_TRUE(img) << img.error().message();
  EXPECT_EQ(img->id(), local.id());
  EXPECT_EQ(pulls_, 0);

  img = Acquire("registry.example:5000/app:1", PullPolicy::kMissing);
  ASSERT_TRUE(img) << img.error().message();
  EXPECT_EQ(pulls_, 1);
  EXPECT_EQ(img->id(), remote_id_);
  EXPECT_EQ(img->names, std::vector<std::string>{"registry.example:5000/app:1"});
  EXPECT_EQ(leases_during_pull_, 1u) << "a pull holds a lease until the image is named";
  EXPECT_EQ(CountEntries(Path("store/leases")), 0u) << "and drops it after";
  // Named now: the second time it is found.
  img = Acquire("registry.example:5000/app:1", PullPolicy::kMissing);
  ASSERT_TRUE(img);
  EXPECT_EQ(pulls_, 1);
}

TEST_F(AcquireTest, AlwaysPullsAndUsesThePulledImageNotALocalShadow) {
  Import(*store_, "local", {"localhost/busybox:latest"});
  auto img = Acquire("busybox", PullPolicy::kAlways);
  ASSERT_TRUE(img) << img.error().message();
  EXPECT_EQ(pulls_, 1);
  EXPECT_EQ(img->id(), remote_id_);
  EXPECT_EQ(img->names, std::vector<std::string>{"docker.io/library/busybox:latest"});
  fail_ = true;
  auto failed = Acquire("busybox", PullPolicy::kAlways);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code(), Errc::kNetwork);
  EXPECT_EQ(failed.error().message(),
            "pull busybox: pull docker://busybox: GET https://registry.invalid/v2/: connection refused");
}

TEST_F(AcquireTest, NeverDoesNotPull) {
  auto img = Acquire("busybox", PullPolicy::kNever);
  ASSERT_FALSE(img);
  EXPECT_EQ(img.error().code(), Errc::kNotFound);
  EXPECT_EQ(img.error().message(), "image not known: busybox");
  EXPECT_EQ(pulls_, 0);
}

TEST_F(AcquireTest, NewerFallsBackToTheStoredImageWhenThePullFails) {
  StoredImage local = Import(*store_, "local", {"docker.io/library/busybox:latest"});
  fail_ = true;
  auto img = Acquire("busybox", PullPolicy::kNewer);
  ASSERT_TRUE(img) << img.error().message();
  EXPECT_EQ(img->id(), local.id());
  EXPECT_EQ(pulls_, 1);
  // Nothing stored: the pull's error, not "image not known".
  auto none = Acquire("quay.io/nothing:1", PullPolicy::kNewer);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), Errc::kNetwork);
  fail_ = false;
  img = Acquire("busybox", PullPolicy::kNewer);
  ASSERT_TRUE(img);
  EXPECT_EQ(img->id(), remote_id_);
}

TEST_F(AcquireTest, ADigestReferenceIsNamedByItsDigest) {
  std::string ref = "registry.example:5000/app@" + remote_digest_.str();
  auto img = Acquire(ref, PullPolicy::kMissing);
  ASSERT_TRUE(img) << img.error().message();
  EXPECT_EQ(img->names, std::vector<std::string>{ref});
  EXPECT_EQ(pulls_, 1);
  ASSERT_TRUE(Acquire(ref, PullPolicy::kNever));
}

TEST_F(AcquireTest, OtherErrorsOfTheStoreAreNotPulledOver) {
  auto bad = Acquire("", PullPolicy::kMissing);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Errc::kInvalidInput);
  EXPECT_EQ(pulls_, 0);
  auto bad_transport = Acquire("docker-daemon:x", PullPolicy::kAlways);
  ASSERT_FALSE(bad_transport);
  EXPECT_EQ(bad_transport.error().code(), Errc::kInvalidInput);
}

TEST_F(AcquireTest, LocalTransportsPullToo) {
  AcquireOptions o;
  auto img = image::Pull(*store_, "oci:" + Path("layout") + ":1", o);
  ASSERT_TRUE(img) << img.error().message();
  EXPECT_EQ(img->id(), remote_id_);
  EXPECT_EQ(pulls_, 0);
}

TEST_F(AcquireTest, AcquireForPlatformRefusesAnImageOfAnotherPlatform) {
  Import(*store_, "local", {"localhost/busybox:latest"});  // the host's platform
  auto host = image::AcquireForPlatform(*store_, "busybox", Platform::Host().str(), "never");
  ASSERT_TRUE(host) << host.error().message();
  EXPECT_EQ(*host, "busybox") << "a single manifest is run by the name given";
  std::string other = Platform::Host().architecture == "arm64" ? "linux/amd64" : "linux/arm64";
  auto wrong = image::AcquireForPlatform(*store_, "busybox", other, "never");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code(), Errc::kNotFound);
  // the store's words: "image sha256:... is for linux/amd64, not linux/arm64"
  EXPECT_NE(wrong.error().message().find(other), std::string::npos) << wrong.error().message();
  EXPECT_NE(wrong.error().message().find(Platform::Host().str()), std::string::npos) << wrong.error().message();
  auto bad = image::AcquireForPlatform(*store_, "busybox", "", "never");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Errc::kInvalidInput);
  EXPECT_EQ(bad.error().message().rfind("--platform : ", 0), 0u) << bad.error().message();
  auto bad_pull = image::AcquireForPlatform(*store_, "busybox", other, "sometimes");
  ASSERT_FALSE(bad_pull);
  EXPECT_EQ(bad_pull.error().code(), Errc::kInvalidInput);
  EXPECT_EQ(pulls_, 0);
}

}  // namespace
}  // namespace kiln
