// engine::Build over a fake sandbox (tests/support/fake_sandbox.h): the order
// of steps, cache hits and misses, what a failing or cancelled build leaves
// in the store. The real sandbox is tested by tests/sandbox and the build
// end to end by tests/integration.
//
// RUN steps are interpreted by the fake: the command (the last argv word of
// the shell form) is a list of `;`-separated actions:
//   write PATH TEXT   writes TEXT to PATH in the step's writable layer
//   print TEXT        writes TEXT and a newline to the step's stdout
//   exit N            ends the step with status N
//   error TEXT        the sandbox fails to start the step (kSandbox)
//   cancel            SIGTERM reaches kiln while the step runs
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/build.h"
#include "kiln/cancel.h"
#include "kiln/containerfile.h"
#include "kiln/fs.h"
#include "kiln/store.h"
#include "support/fake_sandbox.h"
#include "support/scratch.h"

extern char** environ;

namespace kiln::engine {
namespace {

using kiln::testing::DirNames;
using kiln::testing::FakeSandbox;
using kiln::testing::MakeScratchDir;

std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string part; std::getline(ss, part, sep);)
    out.push_back(part);
  return out;
}

Expected<SandboxResult> Interpret(const SandboxSpec& spec, FakeSandbox::Call& call) {
  SandboxResult r;
  for (std::string action : Split(spec.argv.back(), ';')) {
    while (!action.empty() && action.front() == ' ')
      action.erase(0, 1);
    std::string word = action.substr(0, action.find(' '));
    std::string rest = action.size() > word.size() ? action.substr(word.size() + 1) : "";
    if (word == "write") {
      std::string path = rest.substr(0, rest.find(' '));
      if (!call.WriteFile(path, rest.substr(path.size() + 1)))
        return Error(Errc::kIo, "fake: write " + path);
    } else if (word == "print") {
      call.Print(rest + "\n");
    } else if (word == "exit") {
      r.exit_code = std::stoi(rest);
      return r;
    } else if (word == "error") {
      return Error(Errc::kSandbox, "sandbox: " + rest);
    } else if (word == "cancel") {
      RequestCancel(SIGTERM);
      r.signal = SIGTERM;  // what the real sandbox reports after it stopped the step
      return r;
    }
  }
  return r;
}

class BuildTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeScratchDir("kiln-buildtest-");
    ASSERT_FALSE(dir_.empty());
    ASSERT_TRUE(MakeDirs(dir_ + "/context"));
    auto store = Store::Open(dir_ + "/store");
    ASSERT_TRUE(store) << store.error().message();
    store_.emplace(std::move(*store));
    fake_.script = Interpret;
  }
  void TearDown() override {
    store_.reset();
    (void)RemoveAll(dir_);
  }

  Expected<BuildResult> Build(const std::string& containerfile, BuildOptions opts = {}) {
    auto file = frontend::ParseContainerfile(containerfile);
    if (!file)
      return std::move(file).error();
    auto graph = frontend::Compile(*file, {});
    if (!graph)
      return std::move(graph).error();
    opts.context_dir = dir_ + "/context";
    opts.sandbox = &fake_;
    opts.jobs = 2;
    if (opts.tags.empty())
      opts.tags = {"localhost/test:latest"};
    Progress progress(ProgressMode::kQuiet, null_fd_.get());
    return engine::Build(*graph, *store_, opts, progress);
  }

  /// `r` failed with a message holding every one of `parts`.
  static void ExpectFailureSays(const Expected<BuildResult>& r, std::initializer_list<const char*> parts) {
    ASSERT_FALSE(r) << "the build succeeded";
    for (const char* part : parts)
      EXPECT_NE(r.error().message().find(part), std::string::npos) << r.error().message();
  }

  /// The commands the fake ran, in order.
  std::vector<std::string> Commands() const {
    std::vector<std::string> out;
    for (const auto& s : fake_.specs())
      out.push_back(s.argv.back());
    return out;
  }

  /// The build succeeded, and the fake ran `commands`, in this order.
  void ExpectBuiltRunning(const Expected<BuildResult>& r, const std::vector<std::string>& commands) const {
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(Commands(), commands);
  }

  /// The file `path` in the image's layers (top layer first), or "".
  std::string ImageFile(const BuildResult& r, const std::string& path) {
    auto m = store_->ReadManifest(r.manifest.digest);
    EXPECT_TRUE(m);
    auto config = store_->ReadConfig(m->config.digest);
    EXPECT_TRUE(config);
    for (size_t i = m->layers.size(); i-- > 0;) {
      auto dir = store_->UnpackedLayer(m->layers[i], config->diff_ids[i]);
      EXPECT_TRUE(dir) << dir.error().message();
      auto text = ReadFile(*dir + path, 1 << 20);
      if (text)
        return *text;
    }
    return "";
  }

  /// What a failed build may leave: nothing Prune() would remove (no blob,
  /// layer directory or temporary file without an owner), no lease, a
  /// consistent store, and no image.
  void ExpectNothingLeaked() {
    auto check = store_->Check();
    ASSERT_TRUE(check);
    EXPECT_TRUE(check->ok()) << check->problems.front();
    EXPECT_TRUE(check->notes.empty()) << check->notes.front();
    EXPECT_EQ(DirNames(dir_ + "/store/leases"), std::vector<std::string>{});
    EXPECT_EQ(DirNames(store_->TmpDir()), std::vector<std::string>{});
    auto images = store_->ListImages();
    ASSERT_TRUE(images);
    EXPECT_TRUE(images->empty());
    auto pruned = store_->Prune({.all = false, .cache = false, .dry_run = true}, 0);
    ASSERT_TRUE(pruned) << pruned.error().message();
    EXPECT_EQ(pruned->blobs_removed, 0);
    EXPECT_EQ(pruned->layer_dirs_removed, 0);
    EXPECT_EQ(pruned->tmp_removed, 0);
    EXPECT_EQ(pruned->roots_removed, 0);
  }

  std::string dir_;
  std::optional<Store> store_;
  FakeSandbox fake_;
  UniqueFd null_fd_{::open("/dev/null", O_WRONLY | O_CLOEXEC)};
};

TEST_F(BuildTest, RunsStepsInOrderOverTheLayersBelow) {
  auto r = Build(
      "FROM scratch\n"
      "ENV GREETING=hello\n"
      "RUN write /a one\n"
      "RUN write /b two\n"
      "RUN write /a three\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(Commands(), (std::vector<std::string>{"write /a one", "write /b two", "write /a three"}));
  auto specs = fake_.specs();
  ASSERT_EQ(specs.size(), 3u);
  // Each step runs over the layers of the steps before it, top first, and
  // writes into a fresh upper directory.
  ASSERT_EQ(specs[1].lower_dirs.size(), 1u);
  ASSERT_EQ(specs[2].lower_dirs.size(), 2u);
  EXPECT_EQ(ReadFile(specs[2].lower_dirs[0] + "/b", 100).value_or(""), "two");
  EXPECT_EQ(ReadFile(specs[2].lower_dirs[1] + "/a", 100).value_or(""), "one");
  EXPECT_NE(specs[1].upper_dir, specs[2].upper_dir);
  // The step's environment: ENV, a default PATH, HOME; cwd /.
  auto has = [&](const std::string& e) {
    return std::find(specs[0].env.begin(), specs[0].env.end(), e) != specs[0].env.end();
  };
  EXPECT_TRUE(has("GREETING=hello"));
  EXPECT_TRUE(has("HOME=/"));
  EXPECT_TRUE(has("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
  EXPECT_EQ(specs[0].cwd, "/");
  EXPECT_TRUE(specs[0].default_capabilities);
  // The image holds the top-most version of each file, named as tagged.
  EXPECT_EQ(ImageFile(*r, "/a"), "three");
  EXPECT_EQ(ImageFile(*r, "/b"), "two");
  auto named = store_->ResolveImage("localhost/test:latest");
  ASSERT_TRUE(named);
  EXPECT_EQ(named->id(), r->image_id);
}

TEST_F(BuildTest, StagesRunAfterTheStagesTheyBuildOn) {
  auto r = Build(
      "FROM scratch AS base\n"
      "RUN write /base 1\n"
      "FROM base AS mid\n"
      "RUN write /mid 2\n"
      "FROM mid\n"
      "RUN write /top 3\n");
  ASSERT_NO_FATAL_FAILURE(ExpectBuiltRunning(r, {"write /base 1", "write /mid 2", "write /top 3"}));
  EXPECT_EQ(ImageFile(*r, "/base"), "1");
  EXPECT_EQ(ImageFile(*r, "/top"), "3");
}

TEST_F(BuildTest, ARebuildRunsNothingAndGivesTheSameImage) {
  const std::string file = "FROM scratch\nRUN write /a 1\nLABEL x=y\nRUN write /b 2\n";
  // A fixed --timestamp: the created times (and so the ID) do not depend on
  // the second the build ran in (a cached rebuild takes the new time).
  BuildOptions opts;
  opts.timestamp = 1700000000;
  auto first = Build(file, opts);
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(fake_.calls(), 2u);
  auto second = Build(file, opts);
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(fake_.calls(), 2u) << "a cached rebuild started a RUN step";
  EXPECT_EQ(second->image_id, first->image_id);
  EXPECT_EQ(second->manifest.digest, first->manifest.digest);
}

TEST_F(BuildTest, AChangedStepRunsAgainWithEverythingAfterIt) {
  ASSERT_TRUE(Build("FROM scratch\nRUN write /a 1\nRUN write /b 2\nRUN write /c 3\n"));
  ASSERT_EQ(fake_.calls(), 3u);
  auto r = Build("FROM scratch\nRUN write /a 1\nRUN write /b changed\nRUN write /c 3\n");
  ASSERT_TRUE(r) << r.error().message();
  auto cmds = Commands();
  // The first step hit the cache; the changed one and the one after it ran.
  EXPECT_EQ(std::vector<std::string>(cmds.begin() + 3, cmds.end()),
            (std::vector<std::string>{"write /b changed", "write /c 3"}));
  EXPECT_EQ(ImageFile(*r, "/b"), "changed");
  EXPECT_EQ(ImageFile(*r, "/a"), "1");
}

TEST_F(BuildTest, NoCacheRunsEveryStep) {
  const std::string file = "FROM scratch\nRUN write /a 1\nRUN write /b 2\n";
  ASSERT_TRUE(Build(file));
  BuildOptions opts;
  opts.use_cache = false;
  auto r = Build(file, opts);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(fake_.calls(), 4u);
}

TEST_F(BuildTest, AFailingStepLeavesNoImageAndNothingToPrune) {
  auto r = Build("FROM scratch\nRUN write /a 1\nRUN write /b 2; print it broke; exit 3\nRUN write /c 3\n");
  // Where, what, how; in quiet mode with the step's output.
  ASSERT_FALSE(r);
  ExpectFailureSays(r, {"Containerfile:3", "exited with status 3", "it broke"});
  EXPECT_EQ(r.error().code(), Errc::kFailed);
  EXPECT_EQ(fake_.calls(), 2u) << "a step after the failed one ran";
  ExpectNothingLeaked();
  // The step before the failure is cached: a fixed build runs only from
  // the failed step on.
  auto fixed = Build("FROM scratch\nRUN write /a 1\nRUN write /b 2\nRUN write /c 3\n");
  ASSERT_TRUE(fixed) << fixed.error().message();
  auto cmds = Commands();
  EXPECT_EQ(std::vector<std::string>(cmds.begin() + 2, cmds.end()),
            (std::vector<std::string>{"write /b 2", "write /c 3"}));
}

TEST_F(BuildTest, AKilledStepFailsTheBuild) {
  fake_.script = [](const SandboxSpec&, FakeSandbox::Call&) -> Expected<SandboxResult> {
    SandboxResult r;
    r.signal = SIGKILL;
    return r;
  };
  ExpectFailureSays(Build("FROM scratch\nRUN anything\n"), {"was killed by signal 9"});
  ExpectNothingLeaked();
}

// RUN --mount=type=ssh: the step gets a socket of its own with the mount's
// mode and owner (BuildKit), never the host agent's socket, and what it
// sends there reaches the agent and back.
TEST_F(BuildTest, AnSshMountForwardsToTheAgentOnASocketOfItsOwn) {
  const std::string agent = dir_ + "/agent.sock";
  int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(lfd, 0);
  UniqueFd listener(lfd);
  struct sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(agent.size(), sizeof addr.sun_path);
  std::memcpy(addr.sun_path, agent.c_str(), agent.size() + 1);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(lfd, 4), 0);
  std::thread server([lfd] {  // a stand-in agent: answers "pong " + what it got, once
    int c = ::accept(lfd, nullptr, nullptr);
    if (c < 0)
      return;
    char buf[64];
    ssize_t n = ::read(c, buf, sizeof buf);
    std::string reply = "pong " + std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
    (void)!::write(c, reply.data(), reply.size());
    ::close(c);
  });
  std::string got, source;
  unsigned mode = 0;
  uid_t owner = 1;
  fake_.script = [&](const SandboxSpec& spec, FakeSandbox::Call&) -> Expected<SandboxResult> {
    for (const auto& m : spec.mounts)
      if (m.target == "/run/buildkit/ssh_agent.0")
        source = m.source;
    struct stat st;
    if (::stat(source.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      mode = st.st_mode & 07777;
      owner = st.st_uid;
    }
    UniqueFd c(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un to{};
    to.sun_family = AF_UNIX;
    std::memcpy(to.sun_path, source.c_str(), std::min(source.size() + 1, sizeof to.sun_path - 1));
    if (::connect(c.get(), reinterpret_cast<struct sockaddr*>(&to), sizeof to) == 0 &&
        ::write(c.get(), "ping", 4) == 4) {
      char buf[64];
      ssize_t n;
      while ((n = ::read(c.get(), buf, sizeof buf)) > 0)
        got.append(buf, static_cast<size_t>(n));
    }
    return SandboxResult{};
  };
  BuildOptions opts;
  opts.ssh["default"] = agent;
  auto r = Build("FROM scratch\nRUN --mount=type=ssh,mode=0741,uid=" + std::to_string(::getuid()) + ",gid=" +
                     std::to_string(::getgid()) + " use-agent\n",
                 opts);
  ::shutdown(lfd, SHUT_RDWR);
  server.join();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_NE(source, agent) << "the host agent's socket itself was given to the step";
  EXPECT_EQ(mode, 0741u);
  EXPECT_EQ(owner, ::getuid());
  EXPECT_EQ(got, "pong ping");
  struct stat st;
  EXPECT_NE(::stat(source.c_str(), &st), 0) << "the step's socket outlived the step";
}

TEST_F(BuildTest, ASandboxErrorFailsTheBuildAndNamesTheStep) {
  auto r = Build("FROM scratch\nRUN write /a 1\nRUN error no helper\n");
  ASSERT_FALSE(r);
  ExpectFailureSays(r, {"Containerfile:3", "no helper"});
  EXPECT_EQ(r.error().code(), Errc::kSandbox);
  ExpectNothingLeaked();
}

TEST_F(BuildTest, AFailingStageStopsTheOthers) {
  // Two independent stages and a final one on both: a failure in one
  // leaves no image, and the final stage never runs.
  auto r = Build(
      "FROM scratch AS a\nRUN exit 1\n"
      "FROM scratch AS b\nRUN write /b 1\n"
      "FROM scratch\nCOPY --from=a /x /x\nCOPY --from=b /b /b\nRUN write /never 1\n");
  ASSERT_FALSE(r);
  for (const auto& c : Commands())
    EXPECT_NE(c, "write /never 1");
  ExpectNothingLeaked();
}

// A cancelled process stays cancelled (kiln/cancel.h), and fork() of this
// process (TBB threads) is not safe: the cancelled build runs in a fresh
// process of this binary (the disabled test below) on this test's store.
TEST_F(BuildTest, CancellationStopsTheBuildWithoutAnImage) {
  std::string self = "/proc/self/exe";
  std::string filter = "--gtest_filter=BuildTest.DISABLED_CancelledBuild";
  std::vector<char*> argv = {self.data(), filter.data(), const_cast<char*>("--gtest_also_run_disabled_tests"),
                             nullptr};
  std::string env_store = "KILN_BUILD_TEST_STORE=" + dir_ + "/store";
  std::vector<char*> envp;
  for (char** e = environ; *e; ++e)
    envp.push_back(*e);
  envp.push_back(env_store.data());
  envp.push_back(nullptr);
  store_.reset();  // the child opens it
  pid_t pid = 0;
  ASSERT_EQ(::posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), envp.data()), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the cancelled build (in a child process) failed its checks";
  auto store = Store::Open(dir_ + "/store");
  ASSERT_TRUE(store);
  store_.emplace(std::move(*store));
  ExpectNothingLeaked();
}

TEST_F(BuildTest, DISABLED_CancelledBuild) {
  const char* path = std::getenv("KILN_BUILD_TEST_STORE");
  if (!path)
    GTEST_SKIP() << "run by CancellationStopsTheBuildWithoutAnImage";
  auto store = Store::Open(path);
  ASSERT_TRUE(store);
  store_.emplace(std::move(*store));
  auto r = Build("FROM scratch\nRUN write /a 1\nRUN cancel\nRUN write /c 3\n");
  ASSERT_FALSE(r) << "the cancelled build succeeded";
  // main() reports any failure of a cancelled command as the cancellation.
  EXPECT_TRUE(Cancelled());
  EXPECT_EQ(fake_.calls(), 2u) << "a step after the cancelled one ran";
}

}  // namespace
}  // namespace kiln::engine
