// `kiln build` argument handling end to end ($KILN_BIN): Containerfile and
// ignore-file resolution, --print-graph, usage errors (exit 2), and the
// stub that stands in for the engine.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kiln/fs.h"
#include "support/shell.h"

namespace kiln {
namespace {

using RunResult = testing::ShellResult;
using testing::RunShell;
using testing::ShellQuote;

class BuildCliTest : public testing::KilnBinaryTest {
 protected:
  void SetUp() override {
    KilnBinaryTest::SetUp();
    if (IsSkipped())
      return;
    auto dir = TempDir::Create("kiln-build-cli-");
    ASSERT_TRUE(dir);
    dir_ = std::make_unique<TempDir>(std::move(*dir));
    root_ = dir_->path() + "/store";
  }
  void Write(const std::string& rel, const std::string& text) {
    ASSERT_TRUE(MakeDirs(DirName(dir_->path() + "/" + rel)));
    ASSERT_TRUE(WriteFileAtomic(dir_->path() + "/" + rel, text));
  }
  /// Runs kiln with `args` in the temp dir; stderr goes to stdout when `merge`.
  RunResult Kiln(const std::string& args, bool merge = false) {
    return RunShell("cd " + ShellQuote(dir_->path()) + " && " + ShellQuote(bin_) + " --root " + ShellQuote(root_) + " " + args +
                    (merge ? " 2>&1" : " 2>/dev/null"));
  }
  std::unique_ptr<TempDir> dir_;
  std::string root_;
};

TEST_F(BuildCliTest, PrintGraphUsesContainerfileThenDockerfile) {
  Write("ctx/Dockerfile", "FROM scratch\nCOPY d /d\n");
  auto r = Kiln("build --print-graph --platform linux/arm64 ctx");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["target_platform"], "linux/arm64");
  EXPECT_EQ(j["stages"][0]["steps"][0]["op"]["dest"], "/d");
  EXPECT_EQ(j["stages"][0]["steps"][0]["meta"]["location"]["file"], "ctx/Dockerfile");
  Write("ctx/Containerfile", "FROM scratch\nCOPY c /c\n");
  r = Kiln("build --print-graph ctx");
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(r.out)["stages"][0]["steps"][0]["op"]["dest"], "/c");
}

TEST_F(BuildCliTest, PrintGraphWithBuildArgsTargetAndStdin) {
  Write("ctx/.keep", "");
  auto r = RunShell("cd " + ShellQuote(dir_->path()) + " && printf 'ARG V=1\\nFROM scratch AS a\\nARG V\\nENV X=$V\\n"
                    "FROM scratch AS b\\n' | " + ShellQuote(bin_) + " --root " + ShellQuote(root_) +
                    " build -f - --target A --build-arg V=2 --print-graph ctx 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["stages"].size(), 1u);
  EXPECT_EQ(j["stages"][0]["name"], "a");
  EXPECT_EQ(j["stages"][0]["steps"][1]["op"]["vars"][0][1], "2");
  EXPECT_EQ(j["stages"][0]["steps"][1]["meta"]["location"]["file"], "<stdin>");
}

TEST_F(BuildCliTest, SeveralPlatformsPrintAnArray) {
  Write("Containerfile", "FROM scratch\n");
  auto r = Kiln("build --print-graph --platform linux/amd64,linux/arm/v7");
  ASSERT_EQ(r.exit_code, 0);
  auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_array());
  EXPECT_EQ(j[1]["target_platform"], "linux/arm/v7");
}

TEST_F(BuildCliTest, ErrorsExitTwoWithLocation) {
  Write("Containerfile", "FROM scratch\nCOPY --bogus a b\n");
  auto r = Kiln("build --print-graph", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "kiln: error: Containerfile:2: unknown flag --bogus for COPY\n");
  r = Kiln("build --print-graph nothere", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "kiln: error: build context nothere: not a directory\n");
  Write("empty/.keep", "");
  r = Kiln("build --print-graph empty", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "kiln: error: no Containerfile or Dockerfile in empty (use -f FILE)\n");
  // A kiln network that does not exist: exit 2 before any step (docs/network.md "Builds").
  Write("netctx/Containerfile", "FROM scratch\nRUN true\n");
  r = Kiln("build --network no-such-net netctx", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--network: unable to find network with name or ID no-such-net"), std::string::npos) << r.out;
  r = Kiln("build --output type=zip,dest=x", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out,
            "kiln: error: --output type=zip,dest=x: type must be oci, oci-archive, docker-archive, local or tar\n");
}

TEST_F(BuildCliTest, UnusedBuildArgIsAWarning) {
  Write("Containerfile", "FROM scratch\n");
  auto r = Kiln("build --print-graph --build-arg NOPE=1 2>&1 >/dev/null; true", false);
  EXPECT_NE(r.out.find("kiln: warning: one or more build args were not consumed: NOPE"), std::string::npos)
      << r.out;
}

TEST_F(BuildCliTest, EveryFlagParses) {
  Write("Containerfile", "FROM scratch\n");
  Write("secret.txt", "s");
  Write("ign", "*.tmp\n");
  auto r = Kiln(
      "build -f Containerfile -t a:1 -t b --build-arg A=1 --target '' --platform linux/amd64 --no-cache "
      "--layers=false --pull=never --jobs 2 --label a=b --annotation c=d --secret id=s,src=secret.txt "
      "--ssh default --network none --build-context x=. --output type=local,dest=out --iidfile id.txt "
      "--format docker --compression zstd --squash --timestamp 0 --cache-from r/c --cache-to r/c "
      "--ignorefile ign --tls-verify=false --authfile auth.json -q --progress plain --print-graph .");
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

// docs/security.md H39: an ignore file in the context that links out of it is
// not read (exit 2, named); a link inside the context is; a FIFO does not
// hang the build.
TEST_F(BuildCliTest, IgnoreFileLinkingOutOfTheContextIsRefused) {
  Write("ctx/Containerfile", "FROM scratch\nCOPY . /c\n");
  Write("outside", "secret\n");
  ASSERT_EQ(0, ::symlink((dir_->path() + "/outside").c_str(), (dir_->path() + "/ctx/.containerignore").c_str()));
  auto r = Kiln("build --print-graph ctx", true);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("ctx/.containerignore: a symlink that leads out of the build context"), std::string::npos)
      << r.out;
  ASSERT_EQ(0, ::unlink((dir_->path() + "/ctx/.containerignore").c_str()));
  ASSERT_EQ(0, ::symlink("../outside", (dir_->path() + "/ctx/.dockerignore").c_str()));
  r = Kiln("build --print-graph ctx", true);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  // Named explicitly, a file outside is the user's choice.
  r = Kiln("build --print-graph --ignorefile outside ctx", true);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  ASSERT_EQ(0, ::unlink((dir_->path() + "/ctx/.dockerignore").c_str()));
  Write("ctx/lists/ignore", "x\n");
  ASSERT_EQ(0, ::symlink("lists/ignore", (dir_->path() + "/ctx/.dockerignore").c_str()));
  r = Kiln("build --print-graph ctx", true);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  ASSERT_EQ(0, ::unlink((dir_->path() + "/ctx/.dockerignore").c_str()));
  ASSERT_EQ(0, ::mkfifo((dir_->path() + "/ctx/.dockerignore").c_str(), 0644));
  r = Kiln("build --print-graph ctx", true);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("not a regular file"), std::string::npos) << r.out;
}

// docs/security.md H36 through the CLI: the doubling chain stops at its line.
TEST_F(BuildCliTest, ArgDoublingChainIsBounded) {
  std::string text = "FROM scratch\nARG A0=xxxxxxxxxxxxxxxx\n";
  for (int i = 1; i < 2000; ++i)
    text += "ARG A" + std::to_string(i) + "=${A" + std::to_string(i - 1) + "}${A" + std::to_string(i - 1) + "}\n";
  Write("ctx/Containerfile", text);
  auto r = Kiln("build --print-graph ctx", true);
  EXPECT_EQ(r.exit_code, 2) << r.out.substr(0, 2000);
  EXPECT_NE(r.out.find("ctx/Containerfile:19: "), std::string::npos) << r.out.substr(0, 2000);
  EXPECT_NE(r.out.find("larger than 1 MiB"), std::string::npos) << r.out.substr(0, 2000);
}

}  // namespace
}  // namespace kiln
