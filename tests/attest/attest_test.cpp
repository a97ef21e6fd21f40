// The attest module: package database parsers, the merged view of layers,
// the SPDX/SLSA documents and the attestation manifest in a store.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kiln/attest.h"
#include "kiln/fs.h"
#include "kiln/unique_fd.h"
#include "layer/tar_builder.h"
#include "support/temp_store.h"

namespace kiln::attest {
namespace {

using test::TarBuilder;

constexpr char kDpkg[] =
    "Package: libc6\n"
    "Status: install ok installed\n"
    "Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\n"
    "Architecture: amd64\n"
    "Multi-Arch: same\n"
    "Version: 2.36-9+deb12u4\n"
    "Description: GNU C Library: Shared libraries\n"
    " Contains the standard libraries.\n"
    " .\n"
    " More text.\n"
    "\n"
    "Package: removed\n"
    "Status: deinstall ok config-files\n"
    "Architecture: amd64\n"
    "Version: 1.0\n"
    "\n"
    "Package: tzdata\n"
    "Status: install ok installed\n"
    "Architecture: all\n"
    "Version: 2024a-0+deb12u1\n"
    "\n"
    "Package: bash\n"
    "Status: install ok unpacked\n"
    "Architecture: amd64\n"
    "Version: 1:5.2.15-2+b2\n";

std::vector<std::string> Names(const std::vector<Package>& ps) {
  std::vector<std::string> out;
  for (const auto& p : ps)
    out.push_back(p.name + "=" + p.version);
  return out;
}

TEST(ParseTest, DpkgStatusKeepsInstalledPackagesOnly) {
  auto ps = ParseDpkgStatus(kDpkg, "/var/lib/dpkg/status");
  EXPECT_EQ(Names(ps), (std::vector<std::string>{"libc6=2.36-9+deb12u4", "tzdata=2024a-0+deb12u1", "bash=1:5.2.15-2+b2"}));
  EXPECT_EQ(ps[0].arch, "amd64");
  EXPECT_EQ(ps[0].supplier, "GNU Libc Maintainers <debian-glibc@lists.debian.org>");
  EXPECT_EQ(ps[0].source, "/var/lib/dpkg/status");
}

TEST(ParseTest, DpkgStanzaWithoutPackageIsNamed) {
  std::vector<std::string> warnings;
  auto ps = ParseDpkgStatus("Version: 1\n\nPackage: a\nVersion: 2\n", "/s", &warnings);
  EXPECT_EQ(Names(ps), std::vector<std::string>{"a=2"});
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0], "/s:1: a stanza without Package: skipped");
}

TEST(ParseTest, ApkInstalled) {
  auto ps = ParseApkInstalled(
      "C:Q1abc=\nP:musl\nV:1.2.5-r0\nA:x86_64\nL:MIT\nm:Maintainer <m@example.org>\n\n"
      "C:Q1def=\nP:busybox\nV:1.36.1-r29\nA:x86_64\nL:GPL-2.0-only\n",
      "/lib/apk/db/installed");
  EXPECT_EQ(Names(ps), (std::vector<std::string>{"musl=1.2.5-r0", "busybox=1.36.1-r29"}));
  EXPECT_EQ(ps[1].license, "GPL-2.0-only");
}

TEST(ParseTest, PythonMetadataHeadersOnly) {
  auto p = ParsePythonMetadata(
      "Metadata-Version: 2.1\nName: Flask_Cors\nVersion: 4.0.0\nLicense: MIT\n\nName: not-this\n", "/x/METADATA");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->name, "Flask_Cors");
  EXPECT_EQ(p->version, "4.0.0");
  EXPECT_EQ(p->license, "MIT");
  EXPECT_FALSE(ParsePythonMetadata("Name: x\n", "/y"));  // no version
}

TEST(ParseTest, NpmPackageJson) {
  auto p = ParseNpmPackageJson(R"({"name":"@types/node","version":"20.1.0","license":{"type":"MIT"}})", "/p");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->name, "@types/node");
  EXPECT_EQ(p->license, "MIT");
  EXPECT_FALSE(ParseNpmPackageJson("{\"name\":\"x\"}", "/p"));
  EXPECT_FALSE(ParseNpmPackageJson("not json", "/p"));
}

TEST(ParseTest, OsRelease) {
  auto os = ParseOsRelease("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n");
  EXPECT_EQ(os.id, "debian");
  EXPECT_EQ(os.version_id, "12");
}

TEST(ClassifyTest, Paths) {
  EXPECT_EQ(Classify("var/lib/dpkg/status", 0644), FileKind::kDpkgStatus);
  EXPECT_EQ(Classify("var/lib/dpkg/status-old", 0644), FileKind::kNone);
  EXPECT_EQ(Classify("var/lib/dpkg/status.d/base", 0644), FileKind::kDpkgStatusD);
  EXPECT_EQ(Classify("var/lib/dpkg/status.d/base.md5sums", 0644), FileKind::kNone);
  EXPECT_EQ(Classify("lib/apk/db/installed", 0644), FileKind::kApkInstalled);
  EXPECT_EQ(Classify("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA", 0644), FileKind::kPythonMetadata);
  EXPECT_EQ(Classify("usr/lib/python3/dist-packages/six.egg-info", 0644), FileKind::kPythonMetadata);
  EXPECT_EQ(Classify("app/node_modules/express/package.json", 0644), FileKind::kNpmPackage);
  EXPECT_EQ(Classify("app/node_modules/@types/node/package.json", 0644), FileKind::kNpmPackage);
  EXPECT_EQ(Classify("node_modules/a/node_modules/b/package.json", 0644), FileKind::kNpmPackage);
  EXPECT_EQ(Classify("app/node_modules/express/lib/package.json", 0644), FileKind::kNone);
  EXPECT_EQ(Classify("app/package.json", 0644), FileKind::kNone);
  EXPECT_EQ(Classify("usr/bin/app", 0755), FileKind::kExecutable);
  EXPECT_EQ(Classify("etc/os-release", 0644), FileKind::kOsRelease);
}

/// A fake Go binary: an ELF header, padding, then the build info at a
/// 16-byte aligned offset (Go >= 1.18 layout).
std::string GoBinary(const std::string& version, const std::string& modinfo, size_t pad = 5000) {
  std::string b("\x7f" "ELF", 4);
  b.resize(pad, 'x');
  b += std::string("\xff Go buildinf:", 14);  // a misaligned copy first (a string in rodata)
  b.resize((b.size() + 15) / 16 * 16, 'y');
  b += std::string("\xff Go buildinf:", 14);
  b += '\x08';
  b += '\x02';
  b.resize(b.size() + 16, '\0');
  auto varint = [&](size_t n) {
    while (n >= 0x80) {
      b += static_cast<char>((n & 0x7f) | 0x80);
      n >>= 7;
    }
    b += static_cast<char>(n);
  };
  std::string framed = std::string(16, 's') + modinfo + std::string(16, 'e');
  varint(version.size());
  b += version;
  varint(framed.size());
  b += framed;
  b.resize(b.size() + 3000, 'z');
  return b;
}

std::string ReadWithSelector(const std::string& path, const std::string& data, size_t chunk) {
  auto reader = PackageFileSelector()(path, 0755, static_cast<int64_t>(data.size()));
  if (!reader)
    return "<skipped>";
  for (size_t i = 0; i < data.size(); i += chunk)
    if (!reader->Add(std::string_view(data).substr(i, chunk)))
      break;
  return reader->Finish();
}

TEST(GoTest, BuildInfoAcrossChunkBoundaries) {
  std::string mod =
      "path\texample.com/app\nmod\texample.com/app\t(devel)\t\n"
      "dep\tgithub.com/pkg/errors\tv0.9.1\th1:abc=\n"
      "dep\tgolang.org/x/sys\tv0.1.0\th1:def=\n=>\tgolang.org/x/sys\tv0.2.0\th1:ghi=\n"
      "build\t-compiler=gc\n";
  std::string bin = GoBinary("go1.21.5", mod);
  for (size_t chunk : {7, 64, 4096, 1 << 20}) {
    std::string got = ReadWithSelector("usr/bin/app", bin, chunk);
    auto ps = ParseGoBuildInfo(got, "/usr/bin/app");
    EXPECT_EQ(Names(ps), (std::vector<std::string>{"stdlib=1.21.5", "github.com/pkg/errors=v0.9.1",
                                                   "golang.org/x/sys=v0.2.0"}))
        << "chunk " << chunk;
  }
  EXPECT_EQ(ReadWithSelector("usr/bin/sh", std::string(8000, 'a'), 4096), "");  // not ELF
}

TEST(GoTest, RealGoBinaryOfThisHost) {
  // docker-registry is a Go program in Debian (GOPATH mode: no modules).
  std::ifstream f("/usr/bin/docker-registry", std::ios::binary);
  if (!f)
    GTEST_SKIP() << "no /usr/bin/docker-registry";
  std::stringstream ss;
  ss << f.rdbuf();
  auto ps = ParseGoBuildInfo(ReadWithSelector("usr/bin/docker-registry", ss.str(), 1 << 16), "/b");
  ASSERT_FALSE(ps.empty());
  EXPECT_EQ(ps[0].name, "stdlib");
  EXPECT_EQ(ps[0].version.substr(0, 2), "1.");
}

class MergedFilesTest : public kiln::testing::TempStoreTest {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(MakeTempDir("kiln-attest-")); }

  int Layer(const std::string& tar) {
    std::string path = Path("l" + std::to_string(fds_.size()));
    EXPECT_TRUE(WriteFileAtomic(path, tar));
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    fds_.push_back(UniqueFd(fd));
    return fd;
  }

  std::vector<UniqueFd> fds_;
};

TEST_F(MergedFilesTest, WhiteoutsOpaqueDirsAndReplacementsApply) {
  std::vector<int> layers;
  layers.push_back(Layer(TarBuilder()
                             .Dir("var/lib/dpkg")
                             .File("var/lib/dpkg/status", "Package: a\nVersion: 1\n")
                             .File("usr/lib/node_modules/x/package.json", R"({"name":"x","version":"1"})")
                             .File("usr/lib/node_modules/y/package.json", R"({"name":"y","version":"1"})")
                             .File("opt/app/node_modules/z/package.json", R"({"name":"z","version":"1"})")
                             .File("lib/apk/db/installed", "P:musl\nV:1\n")
                             .Finish()));
  layers.push_back(Layer(TarBuilder()
                             .File("var/lib/dpkg/status", "Package: a\nVersion: 2\n")  // replaced
                             .Whiteout("usr/lib/node_modules/.wh.x")                    // deleted
                             .Dir("opt/app/node_modules")
                             .Whiteout("opt/app/node_modules/.wh..wh..opq")             // emptied
                             .Symlink("lib/apk", "/nowhere")                            // parent replaced
                             .Finish()));
  auto files = layer::ReadMergedFiles(layers, PackageFileSelector());
  ASSERT_TRUE(files) << files.error().message();
  std::vector<std::string> paths;
  for (const auto& [p, d] : *files)
    paths.push_back(p);
  EXPECT_EQ(paths, (std::vector<std::string>{"usr/lib/node_modules/y/package.json", "var/lib/dpkg/status"}));
  auto scan = Scan(*files);
  EXPECT_EQ(Names(scan.packages), (std::vector<std::string>{"a=2", "y=1"}));
  EXPECT_EQ(scan.databases, (std::vector<std::string>{"/usr/lib/node_modules/y/package.json", "/var/lib/dpkg/status"}));
}

TEST_F(MergedFilesTest, GarbageLayerIsNamed) {
  std::vector<int> layers{Layer("this is no tar at all, not even close to one; padding padding padding")};
  auto files = layer::ReadMergedFiles(layers, PackageFileSelector());
  ASSERT_FALSE(files);
  EXPECT_NE(files.error().message().find("layer 0"), std::string::npos) << files.error().message();
}

Subject TestSubject() {
  Subject s;
  s.name = "localhost/app:1";
  s.manifest = Digest::Of("manifest");
  s.platform.os = "linux";
  s.platform.architecture = "amd64";
  s.created = "2024-01-02T03:04:05Z";
  s.tool_version = "0.9";
  return s;
}

TEST(SpdxTest, DocumentShape) {
  std::map<std::string, std::string> files = {{"var/lib/dpkg/status", kDpkg},
                                              {"etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"}};
  auto scan = Scan(files);
  auto doc = nlohmann::json::parse(SpdxDocument(scan, TestSubject()));
  EXPECT_EQ(doc["spdxVersion"], "SPDX-2.3");
  EXPECT_EQ(doc["dataLicense"], "CC0-1.0");
  EXPECT_EQ(doc["creationInfo"]["created"], "2024-01-02T03:04:05Z");
  EXPECT_EQ(doc["creationInfo"]["creators"][0], "Tool: kiln-0.9");
  ASSERT_EQ(doc["packages"].size(), 4u);  // the image + 3 packages
  EXPECT_EQ(doc["packages"][0]["primaryPackagePurpose"], "CONTAINER");
  EXPECT_EQ(doc["packages"][0]["externalRefs"][0]["referenceLocator"],
            "pkg:docker/localhost/app@1?platform=linux%2Famd64");
  const auto& bash = doc["packages"][1];
  EXPECT_EQ(bash["name"], "bash");
  EXPECT_EQ(bash["versionInfo"], "1:5.2.15-2+b2");
  EXPECT_EQ(bash["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/bash@1%3A5.2.15-2%2Bb2?arch=amd64&distro=debian-12");
  EXPECT_EQ(doc["relationships"].size(), 4u);
  EXPECT_EQ(doc["relationships"][1]["relationshipType"], "CONTAINS");
  // Deterministic: the same scan and subject give the same bytes.
  EXPECT_EQ(SpdxDocument(scan, TestSubject()), SpdxDocument(Scan(files), TestSubject()));
}

TEST(SpdxTest, NoPackagesSaysSo) {
  auto doc = nlohmann::json::parse(SpdxDocument(Scan({}), TestSubject()));
  EXPECT_EQ(doc["packages"].size(), 1u);
  EXPECT_NE(doc["comment"].get<std::string>().find("No package database was found"), std::string::npos);
}

TEST(ProvenanceTest, MinAndMaxAndRedaction) {
  ProvenanceInput in;
  in.containerfile_name = "Containerfile";
  in.containerfile_text = "FROM busybox\n";
  in.build_args = {{"URL", "https://user:s3cret@git.example/repo.git"}, {"V", "1"}};
  in.materials = {{"pkg:docker/docker.io/library/busybox@latest?platform=linux%2Famd64", Digest::Of("b")}};
  in.context_digest = Digest::Of("ctx");
  in.secret_ids = {"tok"};
  in.steps = {{"RUN echo", Digest::Of("l")}};
  in.tool_version = "0.9";
  auto min = nlohmann::json::parse(ProvenancePredicate(in));
  EXPECT_EQ(min["buildDefinition"]["buildType"], "https://mobyproject.org/buildkit@v1");
  EXPECT_EQ(min["buildDefinition"]["externalParameters"]["configSource"]["digest"]["sha256"],
            Digest::Of("FROM busybox\n").hex());
  EXPECT_EQ(min["buildDefinition"]["externalParameters"]["request"]["args"]["build-arg:URL"],
            "https://user:xxxxx@git.example/repo.git");
  EXPECT_EQ(min["buildDefinition"]["resolvedDependencies"].size(), 2u);
  EXPECT_EQ(min["buildDefinition"]["resolvedDependencies"][1]["uri"], "context");
  EXPECT_EQ(min["runDetails"]["builder"]["version"]["kiln"], "0.9");
  EXPECT_FALSE(min["buildDefinition"]["externalParameters"].contains("secrets"));
  in.max = true;
  std::string max_text = ProvenancePredicate(in);
  auto max = nlohmann::json::parse(max_text);
  EXPECT_EQ(max["buildDefinition"]["externalParameters"]["secrets"][0]["id"], "tok");
  EXPECT_EQ(max["runDetails"]["metadata"]["https://kiln.invalid/provenance/metadata"]["source"]["containerfile"],
            "FROM busybox\n");
  EXPECT_EQ(max_text.find("s3cret"), std::string::npos);
}

TEST(ProvenanceTest, RedactUrlCredentials) {
  EXPECT_EQ(RedactUrlCredentials("https://tok@host/x"), "https://xxxxx@host/x");
  EXPECT_EQ(RedactUrlCredentials("a git://u:p@h/r and https://h/p@x"), "a git://u:xxxxx@h/r and https://h/p@x");
  EXPECT_EQ(RedactUrlCredentials("plain"), "plain");
}

TEST(FlagsTest, SbomAndProvenanceValues) {
  EXPECT_TRUE(*ParseSbomFlag("true"));
  EXPECT_FALSE(*ParseSbomFlag("false"));
  auto preset = ParseSbomFlag("syft");
  ASSERT_FALSE(preset);
  EXPECT_NE(preset.error().message().find("--sbom=syft: want true or false"), std::string::npos);
  EXPECT_EQ(*ParseProvenanceFlag("true"), "min");
  EXPECT_EQ(*ParseProvenanceFlag("false"), "");
  EXPECT_EQ(*ParseProvenanceFlag("max"), "max");
  EXPECT_EQ(*ParseProvenanceFlag("mode=max"), "max");
  EXPECT_EQ(*ParseProvenanceFlag("mode=max,version=v1"), "max");
  EXPECT_EQ(*ParseProvenanceFlag("version=v1"), "min");
  auto v02 = ParseProvenanceFlag("mode=max,version=v0.2");
  ASSERT_FALSE(v02);
  EXPECT_NE(v02.error().message().find("v1 only"), std::string::npos);
  auto huge = ParseProvenanceFlag("mode=huge");
  ASSERT_FALSE(huge);
  EXPECT_EQ(huge.error().message(), "--provenance=mode=huge: want true, false, min, max or mode=min|max[,version=v1]");
}

class AttachTest : public kiln::testing::TempStoreTest {};

TEST_F(AttachTest, AttestationManifestRoundTrip) {
  ASSERT_NO_FATAL_FAILURE(MakeTempStore("kiln-attest-"));
  Store* store = store_.get();
  // An image, then an index holding it and its attestation manifest.
  ImageConfig config;
  config.architecture = "amd64";
  config.os = "linux";
  auto image = store->WriteImage(config, {});
  ASSERT_TRUE(image) << image.error().message();
  Subject s = TestSubject();
  s.manifest = image->digest;
  std::string sbom = SpdxDocument(Scan({}), s);
  auto att = WriteAttestationManifest(*store, *image, {{std::string(kPredicateSpdx),
                                                        InTotoStatement(kPredicateSpdx, sbom, s)}});
  ASSERT_TRUE(att) << att.error().message();
  EXPECT_EQ(att->platform->os, "unknown");
  EXPECT_EQ(att->annotations.at("vnd.docker.reference.type"), "attestation-manifest");
  EXPECT_EQ(att->annotations.at("vnd.docker.reference.digest"), image->digest.str());
  auto m = store->ReadManifest(att->digest);
  ASSERT_TRUE(m);
  ASSERT_EQ(m->layers.size(), 1u);
  EXPECT_EQ(m->layers[0].media_type, "application/vnd.in-toto+json");
  EXPECT_EQ(m->layers[0].annotations.at("in-toto.io/predicate-type"), "https://spdx.dev/Document");

  Index index;
  Descriptor d = *image;
  d.platform = config.platform();
  index.manifests = {d, *att};
  auto top = store->PutBlob(kMediaTypeOciIndex, ToJson(index));
  ASSERT_TRUE(top);
  ASSERT_TRUE(store->AddImage(*top, std::vector<std::string>{"localhost/app:1"}));
  auto loaded = store->ResolveImage("localhost/app:1", config.platform());
  ASSERT_TRUE(loaded) << loaded.error().message();
  EXPECT_EQ(loaded->manifest_descriptor.digest, image->digest);  // unknown/unknown is never chosen
  auto got = FindAttestation(*store, *loaded, kPredicateSpdx);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(nlohmann::json::parse(*got), nlohmann::json::parse(sbom));
  auto none = FindAttestation(*store, *loaded, kPredicateSlsa1);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), Errc::kNotFound);
  EXPECT_NE(none.error().message().find("has no https://slsa.dev/provenance/v1 attestation"), std::string::npos)
      << none.error().message();
}

}  // namespace
}  // namespace kiln::attest
