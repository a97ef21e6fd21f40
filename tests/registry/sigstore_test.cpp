// Sigstore keys, signatures and policy.json evaluation (no network).
#include <gtest/gtest.h>

#include "kiln/fs.h"
#include "kiln/sigstore.h"

namespace kiln::registry {
namespace {

ImageReference Ref(std::string_view t) { return *ImageReference::Parse(t); }
const Digest kManifest = Digest::Of("manifest");

TEST(Sigstore, KeysSignAndVerify) {
  auto keys = GenerateSigstoreKey("s3cret");
  ASSERT_TRUE(keys) << keys.error().message();
  EXPECT_EQ(keys->private_pem.rfind("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n", 0), 0u);
  EXPECT_EQ(keys->public_pem.rfind("-----BEGIN PUBLIC KEY-----\n", 0), 0u);
  std::string payload = SigstorePayload(Ref("localhost:5000/app:1"), kManifest);
  EXPECT_NE(payload.find("\"docker-reference\":\"localhost:5000/app:1\""), std::string::npos);
  EXPECT_NE(payload.find("\"docker-manifest-digest\":\"" + kManifest.str() + "\""), std::string::npos);
  auto sig = SigstoreSign(keys->private_pem, "s3cret", payload);
  ASSERT_TRUE(sig) << sig.error().message();
  EXPECT_TRUE(SigstoreVerifySignature(keys->public_pem, payload, *sig));
  // Another payload, another key, a wrong passphrase.
  EXPECT_FALSE(SigstoreVerifySignature(keys->public_pem, payload + " ", *sig));
  auto other = GenerateSigstoreKey("");
  ASSERT_TRUE(other);
  EXPECT_FALSE(SigstoreVerifySignature(other->public_pem, payload, *sig));
  auto wrong = SigstoreSign(keys->private_pem, "guess", payload);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code(), Errc::kAuth);
  EXPECT_NE(wrong.error().message().find("wrong passphrase"), std::string::npos);
  EXPECT_FALSE(SigstoreSign("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "", payload));
}

class PolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>(std::move(*TempDir::Create("kiln-policy-")));
    keys_ = *GenerateSigstoreKey("pw");
    pub_ = dir_->path() + "/key.pub";
    ASSERT_TRUE(WriteFileAtomic(pub_, keys_.public_pem));
  }
  Policy Load(const std::string& docker_scopes) {
    std::string text = R"({"default":[{"type":"reject"}],"transports":{"docker":{)" + docker_scopes + "}}}";
    auto p = ParsePolicy(text, "/etc/containers/policy.json");
    EXPECT_TRUE(p) << (p ? "" : p.error().message());
    return p ? *p : Policy{};
  }
  SigstoreSignature Sign(const std::string& as, const Digest& d) {
    std::string payload = SigstorePayload(Ref(as), d);
    return SigstoreSignature{payload, *SigstoreSign(keys_.private_pem, "pw", payload)};
  }
  std::unique_ptr<TempDir> dir_;
  SigstoreKeyPair keys_;
  std::string pub_;
};

TEST_F(PolicyTest, ScopesFromReferenceToDefault) {
  auto p = Load(R"("r.example/team/app:1":[{"type":"insecureAcceptAnything"}],
                   "r.example/team":[{"type":"insecureAcceptAnything"}],
                   "*.corp.example":[{"type":"insecureAcceptAnything"}],
                   "":[{"type":"insecureAcceptAnything"}])");
  EXPECT_EQ(PolicyScope(p, Ref("r.example/team/app:1")).second, "r.example/team/app:1");
  EXPECT_EQ(PolicyScope(p, Ref("r.example/team/app:2")).second, "r.example/team");
  EXPECT_EQ(PolicyScope(p, Ref("a.b.corp.example:5000/x")).second, "*.corp.example");
  EXPECT_EQ(PolicyScope(p, Ref("quay.io/x")).second, "docker default");
  auto q = Load("");
  EXPECT_EQ(PolicyScope(q, Ref("quay.io/x")).second, "default");
  auto s = EvaluatePolicy(q, Ref("quay.io/x"), kManifest, {});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message(), "quay.io/x:latest: refused by the signature policy /etc/containers/policy.json "
                                 "(scope \"default\"): the requirement is \"reject\"");
}

TEST_F(PolicyTest, SigstoreSignedIdentityAndDigest) {
  auto p = Load(R"("localhost:5000/app":[{"type":"sigstoreSigned","keyPath":")" + pub_ + R"("}])");
  ImageReference tag = Ref("localhost:5000/app:1");
  EXPECT_TRUE(EvaluatePolicy(p, tag, kManifest, {Sign("localhost:5000/app:1", kManifest)}));
  // No signature; one for another digest; one for another tag (matchRepoDigestOrExact
  // needs the exact reference for a tag, the repository for a digest).
  auto none = EvaluatePolicy(p, tag, kManifest, {});
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("(scope \"localhost:5000/app\"): no sigstore signature for manifest"),
            std::string::npos) << none.error().message();
  auto other = EvaluatePolicy(p, tag, kManifest, {Sign("localhost:5000/app:1", Digest::Of("x"))});
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message().find("it signs manifest"), std::string::npos);
  EXPECT_FALSE(EvaluatePolicy(p, tag, kManifest, {Sign("localhost:5000/app:2", kManifest)}));
  ImageReference by_digest = Ref("localhost:5000/app@" + kManifest.str());
  EXPECT_TRUE(EvaluatePolicy(p, by_digest, kManifest, {Sign("localhost:5000/app:2", kManifest)}));
  // A payload changed after signing.
  auto sig = Sign("localhost:5000/app:1", kManifest);
  sig.payload[sig.payload.find("app:1") + 4] = '9';
  auto tampered = EvaluatePolicy(p, tag, kManifest, {sig});
  ASSERT_FALSE(tampered);
  EXPECT_NE(tampered.error().message().find("does not match the key"), std::string::npos)
      << tampered.error().message();
}

TEST_F(PolicyTest, UnsupportedRequirementsFailClosedInTheirScopeOnly) {
  auto p = Load(R"("registry.redhat.io":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k.gpg"}],
                   "":[{"type":"insecureAcceptAnything"}])");
  auto s = EvaluatePolicy(p, Ref("registry.redhat.io/ubi9"), kManifest, {});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Errc::kUnsupported);
  EXPECT_NE(s.error().message().find("signedBy (GPG simple signing) cannot be checked by kiln"), std::string::npos);
  EXPECT_TRUE(EvaluatePolicy(p, Ref("quay.io/x"), kManifest, {}));
  for (const char* bad : {R"({"transports":{}})", R"({"default":[]})", R"({"default":[{"type":"maybe"}]})",
                          R"({"default":[{"type":"sigstoreSigned"}]})",
                          R"({"default":[{"type":"sigstoreSigned","keyPath":"relative.pub"}]})"}) {
    auto r = ParsePolicy(bad, "/p.json");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), Errc::kInvalidInput) << bad;
    EXPECT_EQ(r.error().message().rfind("/p.json: ", 0), 0u) << r.error().message();
  }
}

}  // namespace
}  // namespace kiln::registry
